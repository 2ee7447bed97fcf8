"""Timing helpers shared by the bench scripts: samples, medians and 99th percentiles."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """``runs`` wall-clock durations of ``fn()``, in seconds."""
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def for_seconds(fn: Callable[[], object], seconds: float, warmup: int = 20) -> list[float]:
    """Durations of ``fn()`` called again and again for ``seconds``, after a warm-up."""
    for _ in range(warmup):
        fn()
    out = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def profile(fn: Callable[[], object], seconds: float, title: str, top: int = 20) -> None:
    """Call ``fn()`` for ``seconds`` under pyinstrument and print where the time went.

    pyinstrument is not a pullgate dependency: ``.venv/bin/pip install pyinstrument``."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        print(f"profile of {title}: skipped; .venv/bin/pip install pyinstrument")
        return
    profiler = Profiler(interval=0.0002)
    profiler.start()
    deadline = time.perf_counter() + seconds
    calls = 0
    while time.perf_counter() < deadline:
        fn()
        calls += 1
    profiler.stop()
    print(f"--- profile of {title}: {calls} calls in {seconds:g} s (pyinstrument)")
    text = profiler.output_text(time="percent_of_total", flat=True, flat_time="self")
    lines = [line for line in text.splitlines() if line.strip()]
    body = [line for line in lines if "%" in line][:top]
    print("self time, share of the total, by function:")
    print("\n".join(body))


def p50_p99(samples: list[float]) -> tuple[float, float]:
    """Median and 99th percentile, in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[
        min(len(ordered) - 1, int(len(ordered) * 0.99))
    ] * 1e3


HEADER = "apiVersion: pullgate.dev/v1alpha1\nkind: ImagePolicy\n"


TEAM_REGISTRY = "127.0.0.1:9"


def team_policy(i: int, variant: str = "") -> str:
    """Team ``i``'s policy: a keyless authority and two rules, none shared with another team
    (the worst case for memory and compile time: nothing to share). A different ``variant``
    changes both rules, as an edit of every file would. Images are on 127.0.0.1:9, where
    nothing listens: fetching signatures fails at once (and is cached), never on a network."""
    team = f"team-{i}{variant}"
    return f"""{HEADER}metadata: {{name: team-{i}}}
spec:
  images: ["{TEAM_REGISTRY}/team-{i}/**"]
  authorities:
    - name: ci
      keyless:
        issuer: https://token.actions.githubusercontent.com
        subject: https://github.com/acme/{team}/.github/workflows/release.yml@refs/heads/main
  rules:
    - name: built-by-team
      expr: 'authorities["ci"].verified && signatures.exists(s,
        s.extensions.githubWorkflowRepository == "acme/{team}")'
    - name: namespace
      expr: 'request.namespace == "{team}" || request.namespace.startsWith("{team}-")'
"""


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident set size and its peak (VmHWM) of process ``pid``, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]
