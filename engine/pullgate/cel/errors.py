"""Compile and evaluation errors, the same for every engine."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_ERROR_CHARS", "CelIssue", "CompileError", "EvalError", "NotABool"]

MAX_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class CelIssue:
    message: str
    line: int = 1  # 1-based, inside the expression
    column: int = 1
    positioned: bool = True  # False: about the whole expression (a probe finding)


class CompileError(Exception):
    def __init__(self, issues: list[CelIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(i.message for i in issues))


class EvalError(Exception):
    """An evaluation error, with a short message that never embeds the activation.

    ``data_dependent`` errors come from the values (a missing map key, an empty list, a tag
    that is not a number); the others (no such overload) would fail on any input.
    """

    def __init__(self, message: str, *, data_dependent: bool) -> None:
        super().__init__(message[:MAX_ERROR_CHARS])
        self.data_dependent = data_dependent


class NotABool(EvalError):
    """The expression yielded a value that is not ``true`` or ``false``."""

    def __init__(self, got: str) -> None:
        super().__init__(f"yields {_a(got)}, but must yield true or false", data_dependent=False)
        self.got = got


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"
