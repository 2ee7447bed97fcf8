"""Evidence cache in front of a verifier: (repository, digest, authority fingerprint) → Evidence.

Verified evidence lives ``ttl`` seconds, failures ``failure_ttl`` (short: a registry hiccup
must not deny for long, and a signature pushed a moment later should count soon). Concurrent
identical verifications share one call (single flight). The fingerprint covers everything the
authority trusts, the trusted root included, so a policy edit never reuses stale evidence.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..evidence import Evidence, Target
from ..policy import Authority
from . import Verifier

__all__ = ["CacheStats", "EvidenceCache"]

Key = tuple[str, str, str, str]  # registry, repository, digest, authority fingerprint


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    shared: int = 0  # calls that waited for an identical verification in flight


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Evidence | None = None


class EvidenceCache:
    def __init__(
        self,
        inner: Verifier,
        *,
        ttl: float = 600.0,
        failure_ttl: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.max_entries = max_entries
        self.clock = clock
        self.stats = CacheStats()
        self._entries: OrderedDict[Key, tuple[float, Evidence]] = OrderedDict()
        self._flights: dict[Key, _Flight] = {}
        self._lock = threading.Lock()

    def verify(self, authority: Authority, target: Target) -> Evidence:
        if not target.digest:
            return self.inner.verify(authority, target)
        # The repository is part of the key: signatures live beside the image, and one digest
        # in two repositories may be signed in one and not the other.
        key = (target.ref.registry, target.ref.repository, target.digest, authority.fingerprint)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > self.clock():
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return replace(hit[1], cached=True)
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
                self.stats.misses += 1
            else:
                self.stats.shared += 1
        if not leader:
            flight.done.wait()
            assert flight.result is not None
            return replace(flight.result, cached=True)
        try:
            result = self.inner.verify(authority, target)
        except Exception as exc:  # the caller turns this into an unverified authority
            result = Evidence.unverified(
                f"{authority.kind} verifier failed: {type(exc).__name__}: {exc}"
            )
        with self._lock:
            life = self.ttl if result.verified else self.failure_ttl
            if life > 0:
                self._entries[key] = (self.clock() + life, result)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            flight.result = result
            del self._flights[key]
        flight.done.set()
        return result

    def __len__(self) -> int:
        return len(self._entries)
