"""Go-style durations (``500ms``, ``30s``, ``10m``, ``1h30m``), shared by config and flags."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|h|m|s))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration. Raises ValueError with an example of what to write."""
    if not _DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration; write e.g. 500ms, 30s, 10m or 1h")
    return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))
