"""Timing helpers shared by the bench scripts: samples, medians and 99th percentiles."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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


def p50_p99(samples: list[float]) -> tuple[float, float]:
    """Median and 99th percentile, in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[
        min(len(ordered) - 1, int(len(ordered) * 0.99))
    ] * 1e3
