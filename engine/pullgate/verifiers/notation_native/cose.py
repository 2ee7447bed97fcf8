"""A COSE_Sign1 envelope (``application/cose``): strict CBOR, the protected and unprotected
headers, ``crit`` labels and the ``Sig_structure`` the signature is over."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import cbor2

from .envelope import (
    _COSE_ALGORITHMS,
    AUTHENTIC_SIGNING_TIME,
    EXPIRY,
    SIGNING_SCHEME,
    SIGNING_TIME,
    TIMESTAMP_SIGNATURE,
    VERIFICATION_PLUGIN,
    _certificates,
    _Envelope,
    _envelope,
)
from .errors import NotationProblem, _short

# -- parsing: COSE -------------------------------------------------------------------------------


def _cbor(raw: bytes, what: str) -> Any:
    stream = io.BytesIO(raw)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises many kinds on hostile input
        raise NotationProblem(f"{what} is not valid CBOR: {_short(str(exc))}") from None
    if stream.read(1):
        raise NotationProblem(f"{what} has bytes after its CBOR item")
    return value


def _parse_cose(data: bytes) -> _Envelope:
    message = _cbor(data, "the COSE envelope")
    if not isinstance(message, cbor2.CBORTag) or message.tag != 18:
        raise NotationProblem("the COSE envelope is not a COSE_Sign1_Tagged message (tag 18)")
    parts = message.value
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise NotationProblem("the COSE_Sign1 message is not an array of four items")
    protected_raw, unprotected, payload, signature = parts
    if not isinstance(protected_raw, bytes) or not protected_raw:
        raise NotationProblem("the COSE protected header is not a non-empty byte string")
    if not isinstance(unprotected, Mapping):  # cbor2 gives a frozendict inside a tag
        raise NotationProblem("the COSE unprotected header is not a map")
    if not isinstance(payload, bytes):
        raise NotationProblem("the COSE payload is missing (detached payloads are not Notation's)")
    if not isinstance(signature, bytes) or not signature:
        raise NotationProblem("the COSE signature is missing")
    protected = _cbor(protected_raw, "the COSE protected header")
    if not isinstance(protected, Mapping):
        raise NotationProblem("the COSE protected header is not a map")
    overlap = set(protected) & set(unprotected)
    if overlap:
        raise NotationProblem(
            f"COSE header {sorted(map(str, overlap))[0][:40]!r} is both protected and unprotected"
        )

    x5chain = unprotected.get(33)
    if not isinstance(x5chain, list | tuple) or not x5chain:
        raise NotationProblem("the COSE envelope has no certificate chain (x5chain)")
    if not all(isinstance(c, bytes) for c in x5chain):
        raise NotationProblem("the COSE x5chain is not a list of DER certificates")
    chain = _certificates(list(x5chain))
    timestamp = unprotected.get(TIMESTAMP_SIGNATURE, b"")
    if not isinstance(timestamp, bytes):
        raise NotationProblem("the COSE timestamp countersignature is not a byte string")

    label = protected.get(1)
    alg = _COSE_ALGORITHMS.get(label) if isinstance(label, int) else None
    if alg is None:
        raise NotationProblem(f"unsupported COSE signature algorithm {str(label)[:20]!r}")
    crit = protected.get(2)
    if not isinstance(crit, list | tuple) or not crit:
        raise NotationProblem("the COSE protected header has no crit list")
    names: list[str] = []
    for label in crit:
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label <= 8:
            raise NotationProblem(f"the COSE crit list names common header label {label}")
        if not isinstance(label, str | int) or isinstance(label, bool):
            raise NotationProblem("the COSE crit list holds something other than labels")
        names.append(str(label))
    times: dict[str, datetime] = {}
    for name in (SIGNING_TIME, AUTHENTIC_SIGNING_TIME, EXPIRY):
        if name in protected:
            value = protected[name]
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise NotationProblem(f"header {name} is not a CBOR date/time")
            times[name] = value
    known = {"1", "2", "3", SIGNING_SCHEME, SIGNING_TIME, AUTHENTIC_SIGNING_TIME, EXPIRY}
    signed = cbor2.dumps(["Signature1", protected_raw, b"", payload])
    return _envelope(
        form="COSE",
        alg=alg,
        content_type=protected.get(3),
        scheme=protected.get(SIGNING_SCHEME),
        times=times,
        crit=names,
        present={str(k) for k in protected},
        known=known,
        plugin=protected.get(VERIFICATION_PLUGIN),
        chain=chain,
        timestamp=timestamp,
        signed=signed,
        signature=signature,
        payload=payload,
    )
