"""A JWS envelope (``application/jose+json``): strict base64url, the flattened JSON serialization,
the protected header and its ``crit`` list."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime

from .envelope import (
    _ALGORITHMS,
    AUTHENTIC_SIGNING_TIME,
    EXPIRY,
    SIGNING_SCHEME,
    SIGNING_TIME,
    TIMESTAMP_SIGNATURE,
    VERIFICATION_PLUGIN,
    _certificates,
    _Envelope,
    _envelope,
    _json_object,
)
from .errors import NotationProblem

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

# -- parsing: JWS --------------------------------------------------------------------------------


def _b64url(value: object, what: str) -> bytes:
    """Base64url as JWS has it: no padding, no other characters, no stray bits."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value) or len(value) % 4 == 1:
        raise NotationProblem(f"the JWS {what} is not unpadded base64url")
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != value:
        raise NotationProblem(f"the JWS {what} is not canonical base64url")
    return raw


def _b64std(value: object, what: str) -> bytes:
    """Standard base64 (JSON's encoding of bytes in the unprotected header)."""
    if not isinstance(value, str):
        raise NotationProblem(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise NotationProblem(f"{what} is not base64") from None


def _rfc3339_time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise NotationProblem(f"header {name} is not an RFC 3339 time")
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise NotationProblem(f"header {name} {value[:40]!r} is not an RFC 3339 time")
    day, clock, fraction, zone = m.groups()
    fraction = (fraction or "")[:7]  # Python keeps microseconds
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{day}T{clock}{fraction}{zone}")
    except ValueError:
        raise NotationProblem(f"header {name} {value[:40]!r} is not a valid time") from None


def _parse_jws(data: bytes) -> _Envelope:
    doc = _json_object(data, "the JWS envelope")
    extra = sorted(set(doc) - {"payload", "protected", "header", "signature"})
    if extra:
        raise NotationProblem(
            f"the JWS envelope has member {extra[0][:40]!r}; only the flattened JSON "
            "serialization (payload, protected, header, signature) is a Notation envelope"
        )
    for member in ("payload", "protected", "signature"):
        if member not in doc:
            raise NotationProblem(f"the JWS envelope has no {member}")
    payload = _b64url(doc["payload"], "payload")
    protected_raw = _b64url(doc["protected"], "protected header")
    signature = _b64url(doc["signature"], "signature")
    if not signature:
        raise NotationProblem("the JWS signature is empty")
    protected = _json_object(protected_raw, "the JWS protected header")

    header = doc.get("header", {})
    if not isinstance(header, dict):
        raise NotationProblem("the JWS unprotected header is not an object")
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise NotationProblem("the JWS envelope has no certificate chain (x5c)")
    chain = _certificates([_b64std(c, "an x5c certificate") for c in x5c])
    timestamp = b""
    if TIMESTAMP_SIGNATURE in header:
        timestamp = _b64std(header[TIMESTAMP_SIGNATURE], "the timestamp countersignature")

    alg = protected.get("alg")
    if alg not in _ALGORITHMS:
        raise NotationProblem(f"unsupported signature algorithm {str(alg)[:20]!r}")
    crit = protected.get("crit")
    if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
        raise NotationProblem('the protected header has no "crit" list of header names')
    for name in crit:
        if name in ("alg", "cty", "crit", "typ", "kid", "jku", "jwk", "x5u", "x5c", "x5t", "b64"):
            raise NotationProblem(f"the JWS crit list names registered header {name!r}")
    known = {"alg", "cty", "crit", SIGNING_SCHEME, SIGNING_TIME, AUTHENTIC_SIGNING_TIME, EXPIRY}
    times = {
        name: _rfc3339_time(protected[name], name)
        for name in (SIGNING_TIME, AUTHENTIC_SIGNING_TIME, EXPIRY)
        if name in protected
    }
    return _envelope(
        form="JWS",
        alg=str(alg),
        content_type=protected.get("cty"),
        scheme=protected.get(SIGNING_SCHEME),
        times=times,
        crit=list(crit),
        present=set(protected),
        known=known,
        plugin=protected.get(VERIFICATION_PLUGIN),
        chain=chain,
        timestamp=timestamp,
        signed=doc["protected"].encode("ascii") + b"." + doc["payload"].encode("ascii"),
        signature=signature,
        payload=payload,
    )
