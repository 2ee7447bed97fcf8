"""The engine seam: what ``rules.py`` and ``decide.py`` need from a CEL implementation.

Env → Compile → Program → Eval, as in cel-go: an :class:`Engine` is the environment (the
declared names and functions), :func:`pullgate.cel.compile_expression` checks an expression
and has the engine build a :class:`Program` once, at load; per request, the engine converts
the context once (:meth:`Engine.convert`), binds it (:meth:`Engine.bind`) and programs
evaluate against that binding, from any thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .check import Checked

__all__ = ["Engine", "Program"]


class Program(Protocol):
    """A checked, ready-to-run predicate. Immutable and safe to share between threads."""

    @property
    def text(self) -> str: ...

    @property
    def names(self) -> frozenset[str]:
        """The top-level context names the expression reads."""
        ...

    def evaluate(self, activation: Any) -> bool:
        """``true`` or ``false``; anything else raises :class:`~pullgate.cel.EvalError`
        (:class:`~pullgate.cel.NotABool` for a value that is not a bool), with a short
        message that never embeds the activation."""
        ...

    def evaluate_value(self, activation: Any) -> Any:
        """The value of the expression, of any type, as plain Python (str, int, float, bool,
        bytes, None, datetime, timedelta, lists, dicts): for explanations, never on the
        request path. Raises :class:`~pullgate.cel.EvalError` for an error value."""
        ...


class Engine(Protocol):
    name: str

    def check_literal(self, function: str, text: str) -> str:
        """What is wrong with ``timestamp(text)`` or ``duration(text)`` here ("" if nothing)."""
        ...

    def program(self, checked: Checked) -> Program:
        """Build a program from a checked expression; raises CompileError."""
        ...

    def convert(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Plain Python values (str, int, bool, datetime, lists, dicts) as this engine's values.

        Done once per request for the request-wide names and once per policy for evidence.
        """
        ...

    def bind(self, values: Mapping[str, Any]) -> Any:
        """An activation of converted values that programs evaluate against, for one request:
        cel-expr keeps what every evaluation allocates until the activation is dropped."""
        ...
