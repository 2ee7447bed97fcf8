"""``registry.timeout`` bounds all the registry work of one verification, not each request.

One verification makes several requests (the signature manifest, its payload blobs, a token,
referrers) and may retry each one; with the timeout per request it could take several times
the timeout, and containerd gives up on a verifier after 10 s. So the daemon's Verify and the
CLI's ``verify`` run their evidence gathering inside :func:`registry_budget`: a deadline held
in a :class:`~contextvars.ContextVar`, so each RPC (each thread) has its own. Inside it the
:class:`~.client.RegistryClient` gives every request ``min(timeout, time left)``, does not
start a retry (or a ``Retry-After`` wait) that would end past the deadline, and says so in the
reason ("gave up after 1.0 s (registry.timeout) ..."). Outside any budget (a library caller
using the client directly) each request has ``timeout`` to itself, as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["Budget", "current_budget", "registry_budget"]


@dataclass(frozen=True, slots=True)
class Budget:
    """``seconds`` for the registry work of one verification, ending at ``deadline``
    (``time.monotonic()`` seconds)."""

    seconds: float
    deadline: float

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def used(self) -> float:
        return self.seconds - self.remaining()

    def gave_up(self) -> str:
        """The start of a reason: how long was spent, and which setting bounds it."""
        return f"gave up after {self.used():.1f} s (registry.timeout is {self.seconds:g} s)"


_current: ContextVar[Budget | None] = ContextVar("pullgate_registry_budget", default=None)


@contextmanager
def registry_budget(seconds: float) -> Iterator[Budget]:
    """Bound the registry work done inside the block to ``seconds`` in all.

    Nested blocks share the outermost budget: a verification cannot extend its own deadline.
    """
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    budget = Budget(seconds, time.monotonic() + seconds)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def current_budget() -> Budget | None:
    """The budget of the verification running in this context, if any."""
    return _current.get()
