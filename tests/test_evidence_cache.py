"""The evidence cache: TTLs, the short failure TTL, the bound, single flight, hit reporting."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from conftest import KEY_A, KEY_B
from pullgate.evidence import Evidence, Signature, Target
from pullgate.policy import Authority, KeyAuthority, Mark
from pullgate.reference import parse_reference
from pullgate.verifiers import AnyOf
from pullgate.verifiers.cache import EvidenceCache

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
A = Authority("a", KeyAuthority(public_key=KEY_A), Mark("t", 1, 1))
B = Authority("b", KeyAuthority(public_key=KEY_B), Mark("t", 2, 1))


def target(digest: str) -> Target:
    return Target(parse_reference("ghcr.io/acme/app"), digest)


class Counting:
    def __init__(self, verified: bool = True, delay: float = 0.0) -> None:
        self.calls = 0
        self.verified = verified
        self.delay = delay
        self.lock = threading.Lock()

    def verify(self, authority: Authority, t: Target) -> Evidence:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        if self.verified:
            return Evidence(signatures=(Signature(kind="key"),))
        return Evidence.unverified("no signature")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_hits_within_the_ttl_and_misses_after() -> None:
    inner, clock = Counting(), Clock()
    cache = EvidenceCache(inner, ttl=60, failure_ttl=5, clock=clock)
    first = cache.verify(A, target(D1))
    assert first.verified and not first.cached
    second = cache.verify(A, target(D1))
    assert second.verified and second.cached and inner.calls == 1
    clock.now = 61
    assert not cache.verify(A, target(D1)).cached and inner.calls == 2
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)


def test_failures_live_only_the_failure_ttl() -> None:
    inner, clock = Counting(verified=False), Clock()
    cache = EvidenceCache(inner, ttl=600, failure_ttl=5, clock=clock)
    assert cache.verify(A, target(D1)).error == "no signature"
    clock.now = 4
    assert cache.verify(A, target(D1)).cached
    clock.now = 6
    assert not cache.verify(A, target(D1)).cached and inner.calls == 2


def test_keyed_by_digest_and_authority_fingerprint() -> None:
    inner = Counting()
    cache = EvidenceCache(inner)
    cache.verify(A, target(D1))
    cache.verify(A, target(D2))
    cache.verify(B, target(D1))
    renamed = replace(A, name="renamed")  # same trust, other name: same entry
    assert cache.verify(renamed, target(D1)).cached
    assert inner.calls == 3


def test_keyed_by_repository_too() -> None:
    """One digest in two repositories: signatures live beside each, so a failure (or a
    success) found in one must not answer for the other."""
    unsigned_here = Target(parse_reference("ghcr.io/acme/mirror"), D1)
    signed_there = Target(parse_reference("ghcr.io/acme/app"), D1)
    other_registry = Target(parse_reference("quay.io/acme/app"), D1)

    class ByRepository:
        def verify(self, authority: Authority, t: Target) -> Evidence:
            if t.ref.repository == "acme/app" and t.ref.registry == "ghcr.io":
                return Evidence(signatures=(Signature(kind="key"),))
            return Evidence.unverified(f"no signature in {t.ref.registry}/{t.ref.repository}")

    cache = EvidenceCache(ByRepository())
    miss = cache.verify(A, unsigned_here)
    assert not miss.verified and "acme/mirror" in miss.error
    assert cache.verify(A, signed_there).verified  # not the mirror's cached failure
    other = cache.verify(A, other_registry)
    assert not other.verified and not other.cached and "quay.io/acme/app" in other.error


def test_bounded_size_evicts_the_least_recently_used() -> None:
    inner = Counting()
    cache = EvidenceCache(inner, max_entries=2)
    cache.verify(A, target(D1))
    cache.verify(A, target(D2))
    cache.verify(A, target(D1))  # D1 used last
    cache.verify(B, target(D1))  # evicts D2
    assert len(cache) == 2
    assert cache.verify(A, target(D1)).cached
    assert not cache.verify(A, target(D2)).cached


def test_concurrent_identical_verifications_share_one_call() -> None:
    inner = Counting(delay=0.3)
    cache = EvidenceCache(inner)
    results: list[Evidence] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.verify(A, target(D1))))
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inner.calls == 1
    assert len(results) == 16 and all(r.verified for r in results)
    assert sum(not r.cached for r in results) == 1  # the one that did the work
    assert cache.stats.shared == 15


def test_a_verifier_that_raises_is_an_unverified_result() -> None:
    class Broken:
        def verify(self, authority: Authority, t: Target) -> Evidence:
            raise RuntimeError("boom")

    ev = EvidenceCache(Broken()).verify(A, target(D1))
    assert not ev.verified and ev.error == "key verifier failed: RuntimeError: boom"


def test_without_a_digest_nothing_is_cached() -> None:
    inner = Counting()
    cache = EvidenceCache(inner)
    cache.verify(A, target(""))
    cache.verify(A, target(""))
    assert inner.calls == 2 and len(cache) == 0


def test_any_of_merges_signatures_and_reasons() -> None:
    yes, no = Counting(), Counting(verified=False)
    assert len(AnyOf(yes, yes).verify(A, target(D1)).signatures) == 2
    both_fail = AnyOf(no, no).verify(A, target(D1))
    assert not both_fail.verified and both_fail.error == "no signature"
