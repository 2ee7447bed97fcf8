"""Hot reload of 1,000 policy files after a ConfigMap swap, under Verify load, per CEL engine.

The policy directory is a ConfigMap volume (`..data` symlink swapped the way the kubelet does)
holding 1,000 team policies of two rules each. A warm daemon serves 16 client threads sending
distinct Verify requests (the judgement cache misses). Two swaps:
- one file edited (the usual change): one policy's two rules are new;
- every file edited (the worst case): all 2,000 expressions are new and compile.
Each reports the time from the swap (the `..data` rename) until `Status` names the new revision
(polled every 10 ms), and the p99 of the
Verify calls that started during that time, beside the p99 of the same load before the swap
(the peer, measured in the same run).

Run: .venv/bin/python bench/reload.py [--files 1000] [--clients 16] [--engines cel-python,cel-expr]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import TEAM_REGISTRY, p50_p99, team_policy
from lab.configmap import publish
from lab.daemon import Daemon, start_daemon
from pullgate.v1 import verifier_pb2 as pb
from pullgate.v1 import verifier_pb2_grpc as pb_grpc

DIGEST = "sha256:" + "e" * 64


class Load:
    """Client threads sending distinct Verify requests; every call's start time and latency."""

    def __init__(self, daemon: Daemon, clients: int, teams: int) -> None:
        self.calls: list[tuple[float, float]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        counter = itertools.count()
        verify = pb_grpc.ImageVerifierStub(daemon.channel()).Verify

        def client() -> None:
            while not self._stop.is_set():
                n = next(counter)
                request = pb.VerifyRequest(
                    image_name=f"{TEAM_REGISTRY}/team-{n % teams}/app:v1",
                    descriptor=pb.Descriptor(digest=DIGEST),
                    namespace=f"team-{n % teams}",
                    pod_name=f"pod-{n}",
                )
                started = time.perf_counter()
                try:
                    verify(request, timeout=30)
                except Exception:
                    with self._lock:
                        self.errors += 1
                self.calls.append((started, time.perf_counter() - started))  # atomic

        self._threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def between(self, start: float, end: float) -> list[float]:
        return [latency for t, latency in list(self.calls) if start <= t < end]


def wait_for_revision(stub: pb_grpc.ImageVerifierStub, old: str, timeout: float) -> str:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        status = stub.Status(pb.StatusRequest(), timeout=5)
        if status.policy_revision and status.policy_revision != old:
            if status.load_errors:
                raise RuntimeError(f"the new revision failed: {status.load_errors[:3]}")
            return status.policy_revision
        time.sleep(0.01)
    raise RuntimeError(f"no new revision within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--engines", default="cel-python,cel-expr")
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of load before")
    args = parser.parse_args()
    n = args.files
    print(f"python {sys.version.split()[0]}; {n} files x 2 rules; {args.clients} clients")
    print(f"{'case':<44} {'serving s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x p99 before':>12}")
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            volume = root / "policies"
            publish(volume, {f"team-{i}.yaml": team_policy(i) for i in range(n)})
            daemon = start_daemon(
                root / "d",
                volume,
                config=f"cel: {{engine: {engine}}}\nlog: {{format: text}}\n",
                reload="{debounce: 100ms, interval: 10m}",
                ready_timeout=300,
            )
            load: Load | None = None
            try:
                stub = daemon.stub()
                revision = stub.Status(pb.StatusRequest(), timeout=5).policy_revision
                load = Load(daemon, args.clients, n)
                time.sleep(1.0)  # warm up
                t0 = time.perf_counter()
                time.sleep(args.baseline)
                before = load.between(t0, time.perf_counter())
                b50, b99 = p50_p99(before)
                rate = len(before) / args.baseline
                label = f"{engine}: peer: before the swap ({rate:.0f}/s)"
                print(f"{label:<44} {'':>9} {b50:8.2f} {b99:8.2f} {1:12.2f}")
                swaps = (
                    ("one file edited", {0}),
                    ("every file edited", set(range(n))),
                )
                for i, (what, edited) in enumerate(swaps, start=2):
                    files = {
                        f"team-{t}.yaml": team_policy(t, f"-v{i}" if t in edited else "")
                        for t in range(n)
                    }
                    started = publish(volume, files)  # the moment of the ..data swap
                    revision = wait_for_revision(stub, revision, timeout=300)
                    ended = time.perf_counter()
                    during = load.between(started, ended)
                    d50, d99 = p50_p99(during) if during else (0.0, 0.0)
                    label = f"{engine}: {what} ({len(during)} calls)"
                    print(
                        f"{label:<44} {ended - started:9.2f} {d50:8.2f} {d99:8.2f} "
                        f"{d99 / b99:12.2f}"
                    )
                    time.sleep(1.0)
                load.stop()
                if load.errors:
                    print(f"{engine}: {load.errors} calls failed")
            finally:
                if load is not None:
                    load.stop()
                daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
