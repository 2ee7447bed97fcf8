"""Where something is in a policy file, and what is wrong there."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Issue", "Mark", "PolicyLoadError"]


@dataclass(frozen=True, slots=True, order=True)
class Mark:
    """A position in a policy file: 1-based line and column, as editors count them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True, order=True)
class Issue:
    """One problem: where it is and a message that says what is wrong and how to fix it."""

    mark: Mark
    message: str

    def __str__(self) -> str:
        return f"{self.mark}: {self.message}"


class PolicyLoadError(Exception):
    """A policy revision that does not load. It carries every issue found, in file order."""

    def __init__(
        self, issues: Iterable[Issue], *, partial: Sequence[Any] = (), complete: int = 0
    ) -> None:
        self.issues: tuple[Issue, ...] = tuple(sorted(set(issues)))
        # What did load, so later stages can report their own issues in the same run: the
        # first ``complete`` entries validated fully, the rest are partial models.
        self.partial = tuple(partial)
        self.complete = complete
        if not self.issues:
            raise ValueError("PolicyLoadError needs at least one issue")
        super().__init__(self.summary())

    def summary(self) -> str:
        n = len(self.issues)
        head = f"{n} error{'s' if n != 1 else ''} in the policy revision; nothing was applied"
        return "\n".join([head, *(str(i) for i in self.issues)])
