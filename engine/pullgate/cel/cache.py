"""One program per distinct (engine, expression, context), shared across policies and revisions."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .engine import Program
from .errors import CompileError

__all__ = ["ProgramCache"]


class ProgramCache:
    """Programs by key; compile errors are kept too, so a bad expression fails fast again.

    Keys are chosen by the caller and must name the engine (``rules.py`` uses the engine name,
    the expression text and what its context holds).
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self._entries: OrderedDict[tuple[Any, ...], Program | CompileError] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], build: Callable[[], Program]) -> Program:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
        if hit is None:
            try:
                hit = build()
            except CompileError as exc:
                hit = exc
            with self._lock:
                self._entries[key] = hit
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        if isinstance(hit, CompileError):
            raise hit
        return hit
