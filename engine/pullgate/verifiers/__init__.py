"""The evidence seam: a ``Verifier`` turns (authority, image) into ``Evidence``.

Each authority kind (``key``, ``keyless``, ``notation``) has one verifier. A kind without a
verifier is reported unverified with a reason, never verified.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..evidence import Evidence, Target
from ..policy import Authority

__all__ = ["KINDS", "AnyOf", "MissingVerifier", "Verifier", "Verifiers"]

KINDS = ("key", "keyless", "notation")


class Verifier(Protocol):
    def verify(self, authority: Authority, target: Target) -> Evidence:
        """Verify ``target`` against ``authority``.

        Return unverified evidence with a reason for anything that is not a verified signature
        (missing, invalid, unreachable). Raising is allowed but treated the same way.
        """
        ...


class MissingVerifier:
    """Stands in for a kind whose verifier is not available."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def verify(self, authority: Authority, target: Target) -> Evidence:
        return Evidence.unverified(f"no verifier for {self.kind} yet")


class AnyOf:
    """Several places a signature may be (cosign's .sig tag, Sigstore bundle referrers): the
    authority is verified by every signature any of them verifies."""

    def __init__(self, *verifiers: Verifier) -> None:
        if not verifiers:
            raise ValueError("AnyOf needs at least one verifier")
        self.verifiers = verifiers

    def verify(self, authority: Authority, target: Target) -> Evidence:
        results = [v.verify(authority, target) for v in self.verifiers]
        signatures = tuple(s for r in results for s in r.signatures)
        if signatures:
            warnings = tuple(w for r in results if r.verified for w in r.warnings)
            return Evidence(signatures=signatures, warnings=warnings)
        reasons = "; ".join(dict.fromkeys(r.error for r in results if r.error))
        return Evidence.unverified(reasons or "no signature verified")


class Verifiers:
    """The verifier for each authority kind."""

    def __init__(self, by_kind: Mapping[str, Verifier] | None = None) -> None:
        given = dict(by_kind or {})
        unknown = set(given) - set(KINDS)
        if unknown:
            raise ValueError(
                f"unknown authority kinds {sorted(unknown)}; known: {', '.join(KINDS)}"
            )
        # Not `given.get(k) or ...`: a verifier may be falsy (an empty cache has len 0).
        self._by_kind: dict[str, Verifier] = {
            k: given[k] if k in given else MissingVerifier(k) for k in KINDS
        }

    def for_kind(self, kind: str) -> Verifier:
        return self._by_kind[kind]
