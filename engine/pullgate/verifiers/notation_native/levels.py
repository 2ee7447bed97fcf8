"""Notation's verification levels: which checks each enforces, which it only logs, and the
warning a logged failure becomes (worded as ``notation verify`` prints it)."""

from __future__ import annotations

from .errors import NotationProblem

SKIP_REASON = "level skip: Notation checks nothing, so this authority never verifies"

# The checks of Notation's verification levels, and which of them each level enforces (the rest
# are logged). Integrity, the plugin check and the target descriptor are always enforced.
_CHECKS = ("integrity", "authenticity", "authenticTimestamp", "expiry", "revocation")
_ENFORCED: dict[str, frozenset[str]] = {
    "strict": frozenset(_CHECKS),
    "permissive": frozenset({"integrity", "authenticity"}),
    "audit": frozenset({"integrity"}),
}


def _enforced(level: str) -> frozenset[str]:
    """The checks ``level`` enforces; ``skip`` and unknown levels never verify."""
    if level == "skip":
        raise NotationProblem(SKIP_REASON)
    enforced = _ENFORCED.get(level)
    if enforced is None:
        raise NotationProblem(f"unknown verification level {level!r}")
    return enforced


class _Checks:
    """Enforces or logs each check as one level says; the logged failures are its ``warnings``."""

    def __init__(self, level: str) -> None:
        self.enforced = _enforced(level)
        self.warnings: list[str] = []

    def __call__(self, name: str, problem: str) -> None:
        if not problem:
            return
        if name in self.enforced:
            raise NotationProblem(problem)
        self.warnings.append(f'{name} was set to "log" and failed with error: {problem}')
