"""Run every benchmark and write bench/results/latest.md: each script's output as it printed it,
the machine it ran on, and the targets of the performance issue beside the figures.

`make bench` runs this. Each script also runs on its own (see its docstring).

Run: .venv/bin/python bench/run.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# (script, arguments, arguments with --quick, what it measures)
BENCHES = [
    ("judgement.py", ["--seconds", "2"], ["--sizes", "1,100", "--seconds", "1"], "P1"),
    ("grpc_load.py", ["--seconds", "5"], ["--seconds", "2"], "P2"),
    ("containerd_exec.py", ["--runs", "40"], ["--runs", "10"], "P3"),
    ("verify.py", ["--runs", "40"], ["--runs", "10"], "P4"),
    ("reload.py", [], ["--files", "100", "--baseline", "2"], "P5"),
    ("memory.py", [], ["--policies", "1000"], "P6"),
    ("notation.py", [], ["--runs", "10"], "Notation"),
]

TARGETS = [
    (
        "P1",
        "warm judgement in process (evidence cached), 1 / 100 / 1,000 / 10,000 policies, "
        "image selected by 3 policies",
        "p50 ≤ 0.5 ms at every size; growth 100 → 10,000 ≤ 2x",
    ),
    (
        "P2",
        "gRPC `Verify` over the unix socket, warm, 16 concurrent clients",
        "≥ 2,000 judgements/s, p99 ≤ 5 ms",
    ),
    ("P3", "`pullgate-containerd` exec-to-exit with a warm daemon", "p50 ≤ 75 ms"),
    (
        "P4",
        "cold verification of a cosign key-signed image in the local registry",
        "p50 ≤ 10 ms and ≥ 3x faster than `cosign verify`",
    ),
    (
        "P5",
        "reload of 1,000 policy files (2 rules each) after a ConfigMap swap",
        "new revision serving ≤ 3 s; P2's p99 during the reload ≤ 2x its baseline",
    ),
    ("P6", "daemon RSS with 10,000 policies (20,000 rules)", "≤ 400 MB"),
]


def machine() -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem_kib = int(line.split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", ".", ":!bench/results"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {commit or 'unknown'}{' (with uncommitted changes)' if dirty else ''}",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; memory {mem_kib / 1024 / 1024:.1f} GiB",
        f"- OS: {platform.platform()}; Python {platform.python_version()}",
        f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the scripts")
    parser.add_argument("--out", default=str(HERE / "results" / "latest.md"))
    args = parser.parse_args()
    started = time.monotonic()
    sections = []
    failed = []
    for script, full, quick, measure in BENCHES:
        argv = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"== {measure}: {' '.join(argv[1:])}", flush=True)
        t = time.monotonic()
        r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - t
        output = r.stdout.rstrip()
        print(output, flush=True)
        if r.returncode != 0:
            failed.append(script)
            output += f"\n\nFAILED (exit {r.returncode}):\n{r.stderr[-3000:]}"
            print(r.stderr[-3000:], file=sys.stderr)
        command = f"python bench/{script} {' '.join(quick if args.quick else full)}".strip()
        sections.append(f"## {measure}: `{command}` ({seconds:.0f} s)\n\n```\n{output}\n```\n")
    total = time.monotonic() - started
    text = "\n".join(
        [
            "# pullgate benchmarks: latest run",
            "",
            "Written by `make bench` (bench/run.py); docs/performance.md explains the figures.",
            f"{'A --quick run: small sizes, not the reference figures. ' if args.quick else ''}"
            f"All benchmarks took {total:.0f} s.",
            "",
            *machine(),
            "",
            "## Targets",
            "",
            "| # | measure | target |",
            "|---|---|---|",
            *(f"| {n} | {what} | {target} |" for n, what, target in TARGETS),
            "",
            *sections,
        ]
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"== wrote {out} ({total:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
