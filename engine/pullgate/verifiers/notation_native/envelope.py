"""What a Notation envelope says: its media types and headers, the signed attributes both JWS and
COSE must carry (signing scheme, times, ``crit``), the certificate chain as read, the algorithm the
signing key dictates and the signature check."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .errors import NotationProblem, _short
from .goformat import _go_name

JWS = "application/jose+json"
COSE = "application/cose"
PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"

SCHEME_X509 = "notary.x509"
SCHEME_SIGNING_AUTHORITY = "notary.x509.signingAuthority"
_STORE_TYPE = {SCHEME_X509: "ca", SCHEME_SIGNING_AUTHORITY: "signingAuthority"}

SIGNING_SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
EXPIRY = "io.cncf.notary.expiry"
VERIFICATION_PLUGIN = "io.cncf.notary.verificationPlugin"
VERIFICATION_PLUGIN_MIN_VERSION = "io.cncf.notary.verificationPluginMinVersion"
TIMESTAMP_SIGNATURE = "io.cncf.notary.timestampSignature"
SIGNING_AGENT = "io.cncf.notary.signingAgent"

MAX_CHAIN = 16

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_ALGORITHMS = ("PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_COSE_ALGORITHMS = {
    -37: "PS256",
    -38: "PS384",
    -39: "PS512",
    -7: "ES256",
    -35: "ES384",
    -36: "ES512",
}
_RSA_ALG = {2048: "PS256", 3072: "PS384", 4096: "PS512"}
_EC_ALG = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_EC_BYTES = {"ES256": 32, "ES384": 48, "ES512": 66}


@dataclass(frozen=True, slots=True)
class _Envelope:
    """What a JWS or COSE envelope says, before anything of it is trusted."""

    form: str  # "JWS" | "COSE"
    alg: str  # the JWS name of the algorithm (COSE's are mapped)
    content_type: object
    scheme: str
    signing_time: datetime  # signingTime, or authenticSigningTime for signingAuthority
    expiry: datetime | None
    critical: tuple[str, ...]  # critical headers Notation does not define (extended attributes)
    plugin: str
    chain: tuple[x509.Certificate, ...]
    timestamp: bytes  # the RFC 3161 countersignature, b"" when absent
    signed: bytes  # the bytes the signature is over
    signature: bytes
    payload: bytes


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:60]!r}")
        out[key] = value
    return out


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotationProblem(f"{what} is not JSON: {_short(str(exc))}") from None
    if not isinstance(doc, dict):
        raise NotationProblem(f"{what} is not a JSON object")
    return doc


# -- parsing: what both forms share ----------------------------------------------------------------


def _certificates(ders: Sequence[bytes]) -> tuple[x509.Certificate, ...]:
    if len(ders) > MAX_CHAIN:
        raise NotationProblem(
            f"the certificate chain has {len(ders)} certificates, more than the {MAX_CHAIN} allowed"
        )
    chain = []
    for i, der in enumerate(ders):
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise NotationProblem(f"certificate {i + 1} of the chain is not DER X.509") from None
    return tuple(chain)


def _envelope(
    *,
    form: str,
    alg: str,
    content_type: object,
    scheme: object,
    times: Mapping[str, datetime],
    crit: list[str],
    present: set[str],
    known: set[str],
    plugin: object,
    chain: tuple[x509.Certificate, ...],
    timestamp: bytes,
    signed: bytes,
    signature: bytes,
    payload: bytes,
) -> _Envelope:
    """The signed attributes every envelope must have, as notation-core-go checks them."""
    if scheme not in _STORE_TYPE:
        raise NotationProblem(f"unsupported signing scheme {str(scheme)[:60]!r}")
    if scheme == SCHEME_X509:
        if AUTHENTIC_SIGNING_TIME in times:
            raise NotationProblem(f"{AUTHENTIC_SIGNING_TIME} must not be present for {scheme}")
        signing_time = times.get(SIGNING_TIME)
        if signing_time is None:
            raise NotationProblem(f"the signature has no {SIGNING_TIME}")
    else:
        if SIGNING_TIME in times:
            raise NotationProblem(f"{SIGNING_TIME} must not be present for {scheme}")
        signing_time = times.get(AUTHENTIC_SIGNING_TIME)
        if signing_time is None:
            raise NotationProblem(f"the signature has no {AUTHENTIC_SIGNING_TIME}")
    expiry = times.get(EXPIRY)
    if expiry is not None and expiry <= signing_time:
        raise NotationProblem("the signature's expiry is not after its signing time")

    must = {SIGNING_SCHEME}
    if expiry is not None:
        must.add(EXPIRY)
    if scheme == SCHEME_SIGNING_AUTHORITY:
        must.add(AUTHENTIC_SIGNING_TIME)
    missing = sorted(must - set(crit))
    if missing:
        raise NotationProblem(f"header {missing[0]} is not marked critical")
    for name in crit:
        if name not in present:
            raise NotationProblem(f"header {name[:60]!r} is marked critical but not present")
    if plugin is not None and (not isinstance(plugin, str) or not plugin):
        raise NotationProblem(f"header {VERIFICATION_PLUGIN} is not a plugin name")
    unknown = tuple(n for n in crit if n not in known and n != VERIFICATION_PLUGIN)
    if plugin:
        unknown = tuple(n for n in unknown if n != VERIFICATION_PLUGIN_MIN_VERSION)
    return _Envelope(
        form=form,
        alg=alg,
        content_type=content_type,
        scheme=str(scheme),
        signing_time=signing_time,
        expiry=expiry,
        critical=unknown,
        plugin=str(plugin or ""),
        chain=chain,
        timestamp=timestamp,
        signed=signed,
        signature=signature,
        payload=payload,
    )


# -- integrity: the key's algorithm and the signature ----------------------------------------------


def _algorithm_of(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size in _RSA_ALG:
        return _RSA_ALG[key.key_size]
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALG:
        return _EC_ALG[key.curve.name]
    raise NotationProblem(
        f'the signing certificate "{_go_name(cert.subject)}" has a key Notation does not allow '
        "(RSA 2048/3072/4096 or ECDSA P-256/P-384/P-521)"
    )


def _signature_verifies(cert: x509.Certificate, alg: str, signature: bytes, data: bytes) -> bool:
    key = cert.public_key()
    digest = _HASHES[alg[2:]]()
    try:
        if alg.startswith("PS") and isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)
            key.verify(signature, data, pss, digest)
        elif alg.startswith("ES") and isinstance(key, ec.EllipticCurvePublicKey):
            size = _EC_BYTES[alg]
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True
