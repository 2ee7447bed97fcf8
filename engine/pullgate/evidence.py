"""What verifiers hand to the rules: verified signatures and their signers, or why none."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from .reference import ImageRef

__all__ = ["Evidence", "Signature", "Target"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature that verified, described the way CEL rules see it."""

    kind: str  # "key" | "keyless" | "notation"
    subject: str = ""
    issuer: str = ""
    san: tuple[str, ...] = ()
    extensions: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    key_id: str = ""
    signed_at: datetime | None = None  # only when a transparency log or a TSA vouches for it
    tlog: bool = False
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Evidence:
    """An authority's verdict on one image digest.

    ``verified`` is derived: an authority is verified exactly when at least one signature
    verified. ``error`` says why not (or what else went wrong) in words a person can act on.
    """

    signatures: tuple[Signature, ...] = ()
    error: str = ""
    cached: bool = False
    # Checks that failed but were only logged (Notation's permissive and audit levels): the
    # authority still counts, and the judgement carries these as warnings.
    warnings: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return bool(self.signatures)

    @classmethod
    def unverified(cls, reason: str) -> Evidence:
        if not reason:
            raise ValueError("unverified evidence needs a reason")
        return cls(signatures=(), error=reason)


@dataclass(frozen=True, slots=True)
class Target:
    """The image a verifier checks: its name and the digest containerd resolved."""

    ref: ImageRef
    digest: str  # "" when unknown: nothing can be verified then
    media_type: str = ""
    size: int = 0
