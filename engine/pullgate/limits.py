"""Bounds on what pullgate reads and on how much registry work it takes on at once.

Every bound is a key of the config's ``limits:`` section (docs/deploy.md, "Limits"). The
message a user sees when one is hit says what was found, what the limit is, and which key
raises it. Policy bounds also apply to ``pullgate check`` and ``pullgate test`` (the defaults,
unless a config is given).

Imports nothing from pullgate, so any module (the policy loader, the verifiers) can use it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "DEFAULT_LIMITS",
    "Busy",
    "Limits",
    "VerificationSlots",
    "key",
    "not_examined",
    "over_limit",
    "too_large",
]

SECTION = "limits"


def key(name: str) -> str:
    """The config key of a bound, as users write it: ``limits.blobBytes``."""
    return f"{SECTION}.{name}"


@dataclass(frozen=True, slots=True)
class Limits:
    """The ``limits:`` section. Field comments give the config key."""

    policy_file_bytes: int = 1 << 20  # policyFileBytes: each policy file and file it reads
    documents_per_file: int = 1000  # documentsPerFile: YAML documents in one policy file
    expression_length: int = 4096  # expressionLength: characters of one CEL expression
    signatures_per_image: int = 8  # signaturesPerImage: signatures examined per authority
    manifest_bytes: int = 4 << 20  # manifestBytes: manifests, indexes, referrers lists
    blob_bytes: int = 256 << 10  # blobBytes: cosign simple-signing payloads, other blobs
    envelope_bytes: int = 1 << 20  # envelopeBytes: Sigstore bundles, Notation envelopes
    concurrent_verifications: int = 0  # concurrentVerifications; 0: half of server.workers
    verification_wait: float = 2.0  # verificationWait: seconds a verification waits for a slot


DEFAULT_LIMITS = Limits()


def over_limit(found: str, limit: int, name: str, unit: str = "bytes", fix: str = "") -> str:
    """``<found>, more than limits.<name> (<limit> <unit>); <fix>, or raise limits.<name>``.

    ``found`` says what was got ("the file is 2000000 bytes"); ``fix`` what to do instead of
    raising the limit, if anything.
    """
    k = key(name)
    advice = f"{fix}, or raise {k}" if fix else f"raise {k} if this is legitimate"
    return f"{found}, more than {k} ({limit} {unit}); {advice}"


def too_large(what: str, size: object, limit: int, name: str) -> str:
    """A download refused for its size; ``size`` is what the registry announced, if anything."""
    if isinstance(size, int) and not isinstance(size, bool) and size > limit:
        return over_limit(f"{what} is {size} bytes", limit, name)
    k = key(name)
    return f"{what} is larger than {k} ({limit} bytes); raise {k} if this is legitimate"


def not_examined(kind: str, total: int, limit: int) -> str:
    """Said when none of the examined signatures verified and some were not examined."""
    k = key("signaturesPerImage")
    return (
        f"the image has {total} {kind}, more than {k} ({limit}): only the first {limit} were "
        f"examined and {total - limit} were not; raise {k} if a valid one may be among them"
    )


class Busy(Exception):
    """No verification slot came free in time: the RPC is refused (RESOURCE_EXHAUSTED)."""


class VerificationSlots:
    """At most ``capacity`` verifications doing registry work at once (backpressure).

    A verification that finds every slot taken waits up to ``wait`` seconds for one; at most
    ``max_waiting`` wait at a time, so that threads remain for cached judgements and health
    checks. Anything beyond is refused at once with :class:`Busy`.
    """

    def __init__(self, capacity: int, *, wait: float, max_waiting: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity!r}")
        self.capacity = capacity
        self.wait = max(0.0, wait)
        self.max_waiting = max(0, max_waiting)
        self.in_use = 0
        self.waiting = 0
        self.refused = 0
        self._cond = threading.Condition()

    def _refuse(self, why: str) -> Busy:
        self.refused += 1
        return Busy(
            f"{self.capacity} verifications are already in progress "
            f"({key('concurrentVerifications')}) and {why}; the pull is not judged: retry later, "
            f"or raise {key('concurrentVerifications')} (and server.workers) if the registry "
            "can take more"
        )

    @contextmanager
    def slot(self, deadline: float | None = None) -> Iterator[None]:
        """Hold a slot for the ``with`` block; ``deadline`` (seconds) shortens the wait."""
        wait = self.wait if deadline is None else max(0.0, min(self.wait, deadline))
        with self._cond:
            if self.in_use >= self.capacity:
                if self.waiting >= self.max_waiting or wait <= 0:
                    raise self._refuse(
                        f"{self.waiting} more are waiting for a slot, the most that may"
                        if self.waiting
                        else "none may wait for a slot"
                    )
                self.waiting += 1
                try:
                    free = self._cond.wait_for(lambda: self.in_use < self.capacity, timeout=wait)
                finally:
                    self.waiting -= 1
                if not free:
                    raise self._refuse(
                        f"none came free within {wait:g} s ({key('verificationWait')})"
                    )
            self.in_use += 1
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= 1
                self._cond.notify()
