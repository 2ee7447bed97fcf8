"""pullgate's own CEL functions, as plain Python: RE2 ``matches`` and ``glob``.

Each engine wraps these for its value types; the semantics live here once. Patterns can come
from data (annotations), so their size is bounded and RE2 runs with a memory cap.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from ..globs import MAX_PATTERN_CHARS, GlobError, glob_match

__all__ = ["glob", "matches"]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 8 << 20


@lru_cache(maxsize=2048)
def _regex(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise re2.error(f"pattern is longer than {MAX_PATTERN_CHARS} characters")
    return re2.compile(pattern, _RE2_OPTIONS)


def _re2_message(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode() if isinstance(arg, bytes) else str(arg)


def matches(text: str, pattern: str) -> bool:
    """Whether RE2 ``pattern`` matches anywhere in ``text``; ValueError for a bad pattern."""
    try:
        return _regex(pattern).search(text) is not None
    except re2.error as exc:
        raise ValueError(
            f"invalid RE2 regular expression {pattern[:80]!r}: {_re2_message(exc)}"
        ) from None


def glob(text: str, pattern: str) -> bool:
    """Whether ``text`` matches the image glob ``pattern``; ValueError for a bad pattern."""
    try:
        return glob_match(text, pattern)
    except GlobError as exc:
        raise ValueError(str(exc)) from None
