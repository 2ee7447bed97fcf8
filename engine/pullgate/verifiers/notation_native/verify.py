"""One envelope, verified for one authority: the checks in Notation's order, each enforced or
logged as the level says."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from ...evidence import Signature
from ...policy import NotationAuthority
from ..identity import describe
from .chain import _authentic_timestamp, _authenticity, _check_chain, _revocation, _trust_store
from .cose import _parse_cose
from .envelope import COSE, JWS, PAYLOAD_TYPE, _algorithm_of, _Envelope, _signature_verifies
from .errors import NotationProblem
from .goformat import _rfc1123z
from .jws import _parse_jws
from .levels import _Checks
from .payload import _check_target, _parse_payload
from .trusted_identities import _identity


@dataclass(frozen=True, slots=True)
class EnvelopeResult:
    """A signature that passed every enforced check, and the logged failures of the others."""

    signature: Signature
    warnings: tuple[str, ...]


# -- entry point -------------------------------------------------------------------------------


def verify_envelope(
    data: bytes,
    media_type: str,
    spec: NotationAuthority,
    *,
    descriptor: Mapping[str, Any],
    now: datetime,
) -> EnvelopeResult:
    """Verify one envelope for ``spec`` against the image ``descriptor`` at time ``now``.

    ``descriptor`` holds the image's ``mediaType``, ``digest`` and ``size``. Raises
    :class:`NotationProblem` with the reason when an enforced check fails; checks the level only
    logs come back as ``warnings``, worded as ``notation verify`` prints them.
    """
    check = _Checks(spec.level)  # raises for skip and unknown levels
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    trusted = _trust_store(spec.certificates)

    # 1. integrity
    env = _parse(data, media_type)
    _check_integrity(env)
    payload = _parse_payload(env.payload)
    # 2. plugins and other critical headers this verifier does not understand
    if env.plugin:
        raise NotationProblem(
            f"the signature needs verification plugin {env.plugin!r}, which pullgate does not run"
        )
    if env.critical:
        raise NotationProblem(
            f"the signature has critical header {env.critical[0]!r}, which Notation does not "
            "define and pullgate does not understand"
        )

    # 3-6, in notation-go's order
    check("authenticity", _authenticity(env, spec, trusted))
    check("authenticity", _identity(env.chain[0], spec.trusted_identities))
    check("expiry", _expiry(env, now))
    check("authenticTimestamp", _authentic_timestamp(env, now))
    check("revocation", _revocation(env.chain))
    # 7. the signature is for this image
    _check_target(payload, descriptor)

    leaf = env.chain[0]
    annotations = dict(payload.get("annotations") or {})
    annotations["signingTime"] = _rfc3339(env.signing_time)
    return EnvelopeResult(
        signature=Signature(
            kind="notation",
            subject=leaf.subject.rfc4514_string(),
            issuer=leaf.issuer.rfc4514_string(),
            san=describe(leaf).sans,
            key_id=hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
            signed_at=None,
            tlog=False,
            annotations=annotations,
        ),
        warnings=tuple(check.warnings),
    )


# -- parsing and integrity -------------------------------------------------------------------------


def _parse(data: bytes, media_type: str) -> _Envelope:
    if media_type == JWS:
        return _parse_jws(data)
    if media_type == COSE:
        return _parse_cose(data)
    raise NotationProblem(
        f"media type {media_type[:80]!r} is not a Notation envelope ({JWS} or {COSE})"
    )


def _check_integrity(env: _Envelope) -> None:
    leaf = env.chain[0]
    expected = _algorithm_of(leaf)
    if env.alg != expected:
        raise NotationProblem(
            f"the signature algorithm {env.alg} is not the one the signing key dictates "
            f"({expected})"
        )
    if not _signature_verifies(leaf, env.alg, env.signature, env.signed):
        raise NotationProblem(
            f"the {env.form} signature does not verify with the signing certificate's key "
            "(the envelope was altered or not signed by that key)"
        )
    _check_chain(env.chain)
    if env.content_type != PAYLOAD_TYPE:
        raise NotationProblem(
            f"payload content type {str(env.content_type)[:60]!r} is not {PAYLOAD_TYPE}"
        )


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _expiry(env: _Envelope, now: datetime) -> str:
    if env.expiry is not None and now >= env.expiry:
        return f'digital signature has expired on "{_rfc1123z(env.expiry)}"'
    return ""
