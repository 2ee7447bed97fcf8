"""A short-lived cache of whole judgements, for the many pulls of one image on a node.

Keyed by the policy revision and every field of the request, so any change (another digest,
namespace, pod label, a policy edit) is a miss. Entries live ``ttl`` seconds (default 5): rules
that read ``now`` (exemption end dates, signature age) may see a time up to ``ttl`` old, and
evidence is not re-fetched within that window. ``ttl = 0`` turns the cache off.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping

from .judgement import Judgement
from .request import Request

__all__ = ["JudgementCache", "request_key"]


def _items(m: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(m.items()))


def request_key(revision: str, r: Request) -> Hashable:
    d = r.descriptor
    return (
        revision,
        r.image_name,
        (d.media_type, d.digest, d.size, _items(d.annotations), d.artifact_type),
        r.operation,
        r.namespace,
        _items(r.annotations),
        _items(r.labels),
        r.pod_name,
        r.pod_uid,
    )


class JudgementCache:
    def __init__(
        self,
        ttl: float = 5.0,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Judgement]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Hashable) -> Judgement | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] <= self.clock():
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return hit[1]

    def put(self, key: Hashable, judgement: Judgement) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (self.clock() + self.ttl, judgement)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
