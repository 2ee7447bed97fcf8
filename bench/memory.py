"""Daemon memory with many policies loaded: RSS of `pullgate serve` with 10,000 policies
(20,000 rules, no two alike), per CEL engine, and how long it takes to start serving them.

The peer, measured in the same run with the same engine, is the same daemon serving one
policy: what pullgate costs before any policy. Figures are read from /proc/PID/status (VmRSS,
and VmHWM, the peak) once the daemon reports SERVING and has answered one Verify.

Run: .venv/bin/python bench/memory.py [--policies 10000] [--engines cel-python,cel-expr]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import TEAM_REGISTRY, rss_mb, team_policy
from lab.daemon import start_daemon

QUIET = "{debounce: 100ms, interval: 10m}"  # no periodic rescan of 10,000 files mid-measure


def measure(root: Path, policies: Path, engine: str, timeout: float) -> tuple[float, float, float]:
    """(seconds to SERVING, RSS MiB, peak RSS MiB) of a daemon started on ``policies``."""
    started = time.perf_counter()
    daemon = start_daemon(
        root,
        policies,
        config=f"cel: {{engine: {engine}}}\nlog: {{format: text}}\n",
        reload=QUIET,
        ready_timeout=timeout,
    )
    ready = time.perf_counter() - started
    try:
        answer = daemon.verify(f"{TEAM_REGISTRY}/team-0/app:v1", namespace="team-0")
        assert answer.reason, answer
        rss, peak = rss_mb(daemon.process.pid)
    finally:
        daemon.stop()
    return ready, rss, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=10_000)
    parser.add_argument("--engines", default="cel-python,cel-expr")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    n = args.policies
    print(f"python {sys.version.split()[0]}; {n} policies, {2 * n} rules, none alike")
    print(f"{'case':<52} {'ready s':>8} {'RSS MiB':>8} {'peak MiB':>8} {'KiB/policy':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one, many = root / "one", root / "many"
        one.mkdir()
        many.mkdir()
        (one / "team-0.yaml").write_text(team_policy(0))
        for i in range(n):
            (many / f"team-{i}.yaml").write_text(team_policy(i))
        for engine in args.engines.split(","):
            ready0, rss0, peak0 = measure(root / f"{engine}-one", one, engine, args.timeout)
            print(f"{engine + ': peer: 1 policy':<52} {ready0:8.1f} {rss0:8.0f} {peak0:8.0f}")
            ready, rss, peak = measure(root / f"{engine}-many", many, engine, args.timeout)
            per = (rss - rss0) * 1024 / n
            label = f"{engine}: {n} policies"
            print(f"{label:<52} {ready:8.1f} {rss:8.0f} {peak:8.0f} {per:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
