"""Notation (Notary Project) signatures, verified natively: no ``notation`` binary, no plugins.

A Notation signature is an OCI manifest that refers to the image (artifact type
``application/vnd.cncf.notary.signature``) with one layer: a JWS (``application/jose+json``) or
COSE_Sign1 (``application/cose``) envelope. It signs a payload whose ``targetArtifact`` is the
image's descriptor.

Each envelope goes through Notation's checks in Notation's order (notation-go's verifier and the
Notary Project specification), each enforced or only logged as the authority's level says:

    level        integrity  authenticity  authenticTimestamp  expiry    revocation
    strict       enforced   enforced      enforced            enforced  enforced
    permissive   enforced   enforced      logged              logged    logged
    audit        enforced   logged        logged              logged    logged

A logged failure does not stop the signature from counting; it comes back as a warning worded
as ``notation verify`` prints it (``expiry was set to "log" and failed with error: ...``).
Reasons use notation's wording where notation has one, with certificate names written as Go
writes them, so they can be compared with the CLI's.

1. integrity: strict base64url (JWS) or CBOR (COSE) structure; protected headers ``alg``
   (PS256/384/512, ES256/384/512, and it must be the one the signing key's type and size
   dictate), ``cty`` ``application/vnd.cncf.notary.payload.v1+json``, ``crit`` (the headers
   Notation requires to be critical must be listed; every listed header must be present and
   understood), signing scheme ``notary.x509`` (with ``io.cncf.notary.signingTime``) or
   ``notary.x509.signingAuthority`` (with ``io.cncf.notary.authenticSigningTime``), optional
   ``io.cncf.notary.expiry`` after the signing time; the signature over the JWS signing input or
   the COSE ``Sig_structure`` with the leaf key (RSA-PSS with ``salt_length=PSS.AUTO``, ECDSA
   with raw ``r||s``); the certificate chain in the *unprotected* header, checked by hand as
   notation-core-go does: leaf first, each certificate issued by the next (names and signature,
   no SHA-1), ending at a self-signed root, leaf and CA key usage, basic constraints and path
   length; the payload parses.
2. A critical ``io.cncf.notary.verificationPlugin`` header fails closed at every level: pullgate
   runs no plugins, and skipping what a plugin would check is what the specification forbids.
3. authenticity: some certificate of the chain *is* (DER-equal to) a certificate of the
   authority's trust store, whose type matches the scheme (``ca`` for ``notary.x509``,
   ``signingAuthority`` for ``notary.x509.signingAuthority``): a trust store certificate with the
   same key but another body does not count, as with notation. Then the trusted identities:
   ``*``, or the leaf subject holds every RDN of one ``x509.subject`` entry (Notation's subset
   match; attribute types compared case-insensitively).
4. expiry: the signer's ``io.cncf.notary.expiry`` has not passed at ``now``.
5. authenticTimestamp: without a TSA trust store (a Notation authority here has none) every
   certificate of the chain must be valid at ``now`` for ``notary.x509``, and at the authentic
   signing time for ``notary.x509.signingAuthority``. RFC 3161 timestamps are not verified: a
   certificate that expired before ``now`` fails even when the envelope carries a timestamp, and
   the reason says so.
6. revocation: a certificate below the root that names a CRL distribution point or an OCSP
   responder cannot be checked natively (fails where enforced); one that names neither is not
   revocable and passes, as in notation-go.
7. The payload's ``targetArtifact`` media type, digest and size equal the image's descriptor,
   always (a signature moved onto another image fails).

Stricter than notation-go, as the specification asks: an unknown critical header fails (notation
-go only checks that it is present), a leaf whose extended key usage allows anything fails, and
chains longer than 16 certificates are refused.

Level ``skip`` never verifies: Notation would accept the image without looking at a signature,
but an authority that checks nothing proves nothing, so pullgate reports it unverified (a
deliberate difference from ``notation verify``, which exits 0).

The ``signingTime`` of a ``notary.x509`` signature is only the signer's claim: it goes into the
signature's annotations, never into ``signed_at``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from ..evidence import Evidence, Signature, Target
from ..policy import Authority, NotationAuthority
from ..registry import RegistryClient, RegistryError
from .identity import describe

__all__ = [
    "COSE",
    "JWS",
    "NOTATION_ARTIFACT",
    "PAYLOAD_TYPE",
    "EnvelopeResult",
    "NotationNativeVerifier",
    "NotationProblem",
    "verify_envelope",
]

log = logging.getLogger("pullgate.verifiers.notation")

NOTATION_ARTIFACT = "application/vnd.cncf.notary.signature"
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

SKIP_REASON = "level skip: Notation checks nothing, so this authority never verifies"
MAX_REASON = 1000
MAX_CHAIN = 16
_MAX_ONE_REASON = 400

# The checks of Notation's verification levels, and which of them each level enforces (the rest
# are logged). Integrity, the plugin check and the target descriptor are always enforced.
_CHECKS = ("integrity", "authenticity", "authenticTimestamp", "expiry", "revocation")
_ENFORCED: dict[str, frozenset[str]] = {
    "strict": frozenset(_CHECKS),
    "permissive": frozenset({"integrity", "authenticity"}),
    "audit": frozenset({"integrity"}),
}

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

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_WEAK_HASHES = (hashes.SHA1, hashes.MD5)


class NotationProblem(Exception):
    """Why one Notation signature does not count; the message is the reason, one line."""


@dataclass(frozen=True, slots=True)
class EnvelopeResult:
    """A signature that passed every enforced check, and the logged failures of the others."""

    signature: Signature
    warnings: tuple[str, ...]


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
    if spec.level == "skip":
        raise NotationProblem(SKIP_REASON)
    enforced = _ENFORCED.get(spec.level)
    if enforced is None:
        raise NotationProblem(f"unknown verification level {spec.level!r}")
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

    warnings: list[str] = []

    def check(name: str, problem: str) -> None:
        if not problem:
            return
        if name in enforced:
            raise NotationProblem(problem)
        warnings.append(f'{name} was set to "log" and failed with error: {problem}')

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
        warnings=tuple(warnings),
    )


# -- parsing: JWS --------------------------------------------------------------------------------


def _parse(data: bytes, media_type: str) -> _Envelope:
    if media_type == JWS:
        return _parse_jws(data)
    if media_type == COSE:
        return _parse_cose(data)
    raise NotationProblem(
        f"media type {media_type[:80]!r} is not a Notation envelope ({JWS} or {COSE})"
    )


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


# -- integrity ---------------------------------------------------------------------------------


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


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Names chain and ``parent``'s key made ``child``'s signature (not with SHA-1 or MD5)."""
    if child.issuer.public_bytes() != parent.subject.public_bytes():
        return False
    try:
        if isinstance(child.signature_hash_algorithm, _WEAK_HASHES):
            return False
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _check_chain(chain: Sequence[x509.Certificate]) -> None:
    """notation-core-go's ValidateCodeSigningCertChain, without time checks (those come later)."""
    if len(chain) == 1:
        cert = chain[0]
        if not _issued_by(cert, cert):
            raise NotationProblem(
                f'the single certificate "{_go_name(cert.subject)}" of the chain is not '
                "self-signed (a chain must end at a self-signed root)"
            )
        _check_leaf(cert)
        return
    for i, cert in enumerate(chain):
        subject = _go_name(cert.subject)
        if i == len(chain) - 1:
            if not _issued_by(cert, cert):
                raise NotationProblem(
                    f'root certificate "{subject}" is not self-signed; the chain must end with a '
                    "self-signed root"
                )
        else:
            if _issued_by(cert, cert):
                where = "leaf" if i == 0 else "intermediate"
                raise NotationProblem(f'{where} certificate "{subject}" is self-signed')
            if not _issued_by(cert, chain[i + 1]):
                raise NotationProblem(
                    f'certificate "{subject}" is not issued by "{_go_name(chain[i + 1].subject)}"'
                )
        if i == 0:
            _check_leaf(cert)
        else:
            _check_ca(cert, i - 1)


def _extension(cert: x509.Certificate, kind: type[Any]) -> x509.Extension[Any] | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # a duplicate or malformed extension
        raise NotationProblem(
            f'certificate "{_go_name(cert.subject)}" has malformed extensions: {_short(str(exc))}'
        ) from None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage:
    ext = _extension(cert, x509.KeyUsage)
    subject = _go_name(cert.subject)
    if ext is None:
        raise NotationProblem(f'certificate "{subject}": key usage extension must be present')
    if not ext.critical:
        raise NotationProblem(f'certificate "{subject}": key usage extension must be critical')
    value: x509.KeyUsage = ext.value
    return value


def _check_leaf(cert: x509.Certificate) -> None:
    subject = _go_name(cert.subject)
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.value.ca:
        raise NotationProblem(f'signing certificate "{subject}" is a CA certificate')
    usage = _key_usage(cert)
    if not usage.digital_signature:
        raise NotationProblem(
            f'signing certificate "{subject}": key usage must have digital signature set'
        )
    forbidden = [
        name
        for name, on in (
            ("KeyEncipherment", usage.key_encipherment),
            ("DataEncipherment", usage.data_encipherment),
            ("KeyAgreement", usage.key_agreement),
            ("CertSign", usage.key_cert_sign),
            ("CRLSign", usage.crl_sign),
            ("EncipherOnly", usage.key_agreement and usage.encipher_only),
            ("DecipherOnly", usage.key_agreement and usage.decipher_only),
        )
        if on
    ]
    if forbidden:
        raise NotationProblem(
            f'signing certificate "{subject}": key usage must be digital signature only, '
            f"found {', '.join(forbidden)}"
        )
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is not None:
        excluded = {
            ExtendedKeyUsageOID.SERVER_AUTH: "ServerAuth",
            ExtendedKeyUsageOID.CLIENT_AUTH: "ClientAuth",
            ExtendedKeyUsageOID.EMAIL_PROTECTION: "EmailProtection",
            ExtendedKeyUsageOID.TIME_STAMPING: "Timestamping",
            ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "Any",
        }
        for oid in eku.value:
            if oid in excluded:
                raise NotationProblem(
                    f'signing certificate "{subject}": extended key usage must not contain '
                    f"{excluded[oid]}"
                )
    _algorithm_of(cert)


def _check_ca(cert: x509.Certificate, below: int) -> None:
    subject = _go_name(cert.subject)
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.value.ca:
        raise NotationProblem(
            f'certificate "{subject}": basic constraints must be present with CA set to true'
        )
    path_length = constraints.value.path_length
    if path_length is not None and path_length < below:
        raise NotationProblem(
            f'certificate "{subject}": path length {path_length} is shorter than the '
            f"{below} CA certificate(s) below it"
        )
    if not _key_usage(cert).key_cert_sign:
        raise NotationProblem(f'certificate "{subject}": key usage must have key cert sign set')


def _parse_payload(raw: bytes) -> dict[str, Any]:
    doc = _json_object(raw, "the signed payload")
    target = doc.get("targetArtifact")
    if not isinstance(target, dict):
        raise NotationProblem("the signed payload has no targetArtifact descriptor")
    media_type, digest, size = target.get("mediaType"), target.get("digest"), target.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise NotationProblem("the signed targetArtifact has no mediaType")
    if not isinstance(digest, str) or not digest:
        raise NotationProblem("the signed targetArtifact has no digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise NotationProblem("the signed targetArtifact has no valid size")
    annotations = target.get("annotations", {})
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        raise NotationProblem("the signed targetArtifact annotations are not strings")
    return {"mediaType": media_type, "digest": digest, "size": size, "annotations": annotations}


# -- trust store and authenticity ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TrustStore:
    certificates: tuple[x509.Certificate, ...]
    ders: frozenset[bytes]


@lru_cache(maxsize=64)
def _trust_store(pem: str) -> _TrustStore:
    """The authority's certificates; like notation, only CA or self-signed ones are allowed."""
    try:
        certs = tuple(x509.load_pem_x509_certificates(pem.encode("ascii")))
    except (ValueError, UnicodeEncodeError):
        raise NotationProblem("the trust store holds no readable PEM certificate") from None
    for cert in certs:
        constraints = _extension(cert, x509.BasicConstraints)
        is_ca = constraints is not None and constraints.value.ca
        if not is_ca and not _self_signature_ok(cert):
            raise NotationProblem(
                f'trust store certificate "{_go_name(cert.subject)}" is not a CA certificate or '
                "self-signed signing certificate (Notation refuses such a trust store)"
            )
    return _TrustStore(certs, frozenset(c.public_bytes(Encoding.DER) for c in certs))


def _self_signature_ok(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _authenticity(env: _Envelope, spec: NotationAuthority, store: _TrustStore) -> str:
    needed = _STORE_TYPE[env.scheme]
    if spec.trust_store_type != needed:
        return (
            f"the signature uses signing scheme {env.scheme}, which needs a trust store of type "
            f"{needed}, and this authority's is of type {spec.trust_store_type}"
        )
    if not any(c.public_bytes(Encoding.DER) in store.ders for c in env.chain):
        return "the signature's certificate chain does not contain any trusted certificate"
    return ""


# -- trusted identities (Notation's x509.subject subset match) --------------------------------

# Go's pkix.Name.String() spells these attributes by name, in this order (reversed on output).
_GO_ORDER = (
    (NameOID.COUNTRY_NAME, "C"),
    (NameOID.STATE_OR_PROVINCE_NAME, "ST"),
    (NameOID.LOCALITY_NAME, "L"),
    (NameOID.STREET_ADDRESS, "STREET"),
    (NameOID.POSTAL_CODE, "POSTALCODE"),
    (NameOID.ORGANIZATION_NAME, "O"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
    (NameOID.COMMON_NAME, "CN"),
    (NameOID.SERIAL_NUMBER, "SERIALNUMBER"),
)
_GO_PARSED = {"2.5.4.3", "2.5.4.6", "2.5.4.7", "2.5.4.8", "2.5.4.9", "2.5.4.10", "2.5.4.11"}
_GO_PARSED.add("2.5.4.17")


def _go_rdns(name: x509.Name) -> list[list[tuple[str, str]]]:
    """The RDN sequence Go prints for ``name`` (before reversal), as (type, value) pairs."""
    rdns: list[list[tuple[str, str]]] = []
    attrs = list(name)
    names = dict(_GO_ORDER)
    for attr in attrs:  # attributes Go does not parse into fields come first
        dotted = attr.oid.dotted_string
        if dotted not in _GO_PARSED:
            rdns.append([(names.get(attr.oid, dotted), _value(attr))])
    for oid, label in _GO_ORDER:
        values = [_value(a) for a in attrs if a.oid == oid]
        if oid in (NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER):
            values = values[-1:]  # Go keeps one
        if values:
            rdns.append([(label, v) for v in values])
    return rdns


def _value(attr: x509.NameAttribute[Any]) -> str:
    value = attr.value
    return value if isinstance(value, str) else value.decode("latin-1")


def _go_escape(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        escape = ch in ',+"\\<>;' or (ch == " " and i in (0, len(value) - 1))
        escape = escape or (ch == "#" and i == 0)
        out.append("\\" + ch if escape else ch)
    return "".join(out)


def _go_name(name: x509.Name) -> str:
    """``name`` as Go's ``pkix.Name.String()`` writes it (what notation's messages show)."""
    rdns = _go_rdns(name)
    return ",".join("+".join(f"{t}={_go_escape(v)}" for t, v in rdn) for rdn in reversed(rdns))


def _dn_map(rdns: list[list[tuple[str, str]]], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for rdn in rdns:
        if len(rdn) > 1:
            raise NotationProblem(f"{what} has a multi-valued RDN, which Notation does not support")
        kind, value = rdn[0]
        kind = kind.upper()
        if kind in out:
            raise NotationProblem(f"{what} has more than one {kind} attribute")
        out[kind] = value
    missing = [k for k in ("C", "ST", "O") if not out.get(k)]
    if missing:
        raise NotationProblem(f"{what} lacks {', '.join(missing)}, which Notation requires")
    return out


def _parse_dn(text: str) -> list[list[tuple[str, str]]]:
    """An RFC 4514 distinguished name, as go-ldap's ParseDN reads it."""
    rdns: list[list[tuple[str, str]]] = [[]]
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            raise ValueError(f"no '=' after {text[i:][:40]!r}")
        kind = text[i:eq].strip()
        if not kind:
            raise ValueError("an attribute type is empty")
        i = eq + 1
        while i < n and text[i] == " ":
            i += 1
        value, i, sep = _dn_value(text, i)
        rdns[-1].append((kind, value))
        if sep == "+":
            continue
        if sep:
            rdns.append([])
    if not rdns[-1]:
        if len(rdns) > 1:
            raise ValueError("the name ends with a separator")
        raise ValueError("the name is empty")
    return rdns


def _dn_value(text: str, i: int) -> tuple[str, int, str]:
    """One attribute value from ``i``: (value, index after its separator, the separator)."""
    n = len(text)
    if i < n and text[i] == "#":
        j = i + 1
        while j < n and text[j] not in ",;+":
            j += 1
        return _ber_string(text[i + 1 : j].strip()), j + 1, text[j] if j < n else ""
    out = bytearray()
    trailing_spaces = 0  # unescaped spaces at the end are not part of the value
    quoted = i < n and text[i] == '"'
    if quoted:
        i += 1
    while i < n:
        ch = text[i]
        if quoted and ch == '"':
            quoted = False
            i += 1
            while i < n and text[i] == " ":
                i += 1
            break
        if not quoted and ch in ",;+":
            break
        if ch == "\\":
            if i + 1 >= n:
                raise ValueError("the name ends with a backslash")
            nxt = text[i + 1]
            if nxt in '\\ #+,;<=>"':
                out += nxt.encode()
                i += 2
            elif _HEX2.fullmatch(text[i + 1 : i + 3]):
                out.append(int(text[i + 1 : i + 3], 16))
                i += 3
            else:
                raise ValueError(f"bad escape {text[i : i + 3]!r}")
            trailing_spaces = 0
            continue
        out += ch.encode()
        trailing_spaces = trailing_spaces + 1 if ch == " " else 0
        i += 1
    if quoted:
        raise ValueError("an unterminated quoted value")
    if trailing_spaces:
        del out[-trailing_spaces:]
    if i < n and text[i] not in ",;+":
        raise ValueError(f"unexpected {text[i]!r} after a quoted value")
    sep = text[i] if i < n else ""
    return out.decode("utf-8", "replace"), i + 1, sep


def _ber_string(hexed: str) -> str:
    """The string inside a ``#``-hex BER value (a tag, a short or long length, then content)."""
    raw = bytes.fromhex(hexed)
    if len(raw) < 2:
        raise ValueError("a #hex value is too short")
    length, offset = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    return raw[offset : offset + length].decode("utf-8", "replace")


@lru_cache(maxsize=256)
def _identity_map(identity: str) -> dict[str, str]:
    prefix, sep, value = identity.partition(":")
    if not sep or prefix.strip() != "x509.subject" or not value.strip():
        raise NotationProblem(
            f"trusted identity {identity[:80]!r} is not '*' or 'x509.subject: <DN>'"
        )
    try:
        rdns = _parse_dn(value.strip())
    except ValueError as exc:
        raise NotationProblem(
            f"trusted identity {identity[:80]!r} is not an RFC 4514 name: {exc}"
        ) from None
    return _dn_map(rdns, f"trusted identity {identity[:80]!r}")


def _identity(leaf: x509.Certificate, identities: Sequence[str]) -> str:
    if "*" in identities:
        return ""
    wanted = [_identity_map(i) for i in identities]
    if not wanted:
        return "this authority lists no trusted identities"
    try:
        have = _dn_map(_go_rdns(leaf.subject), "the signing certificate's subject")
    except NotationProblem as exc:
        return str(exc)
    for entry in wanted:
        if all(have.get(k) == v for k, v in entry.items()):
            return ""
    listed = " ".join(
        "map[" + " ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(e.items())) + "]"
        for e in wanted
    )
    return (
        f'signing certificate "{_go_name(leaf.subject)}" from the digital signature does not '
        f"match the X.509 trusted identities [{listed}] of this authority"
    )


# -- time and revocation ---------------------------------------------------------------------------

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _rfc1123z(when: datetime) -> str:
    """Go's ``time.RFC1123Z`` (in ``when``'s own offset), as notation's messages show times."""
    offset = when.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return (
        f"{_DAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} {when.year:04d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {zone}"
    )


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _expiry(env: _Envelope, now: datetime) -> str:
    if env.expiry is not None and now >= env.expiry:
        return f'digital signature has expired on "{_rfc1123z(env.expiry)}"'
    return ""


def _authentic_timestamp(env: _Envelope, now: datetime) -> str:
    if env.scheme == SCHEME_SIGNING_AUTHORITY:
        at = env.signing_time
        for cert in env.chain:
            if at < cert.not_valid_before_utc or at > cert.not_valid_after_utc:
                return (
                    f'certificate "{_go_name(cert.subject)}" was not valid when the digital '
                    f'signature was produced at "{_rfc1123z(at)}"'
                )
        return ""
    for cert in env.chain:
        subject = _go_name(cert.subject)
        if now < cert.not_valid_before_utc:
            return (
                f'verification time is before certificate "{subject}" validity period, it will '
                f'be valid from "{_rfc1123z(cert.not_valid_before_utc)}"'
            )
        if now > cert.not_valid_after_utc:
            reason = (
                f'verification time is after certificate "{subject}" validity period, it was '
                f'expired at "{_rfc1123z(cert.not_valid_after_utc)}"'
            )
            if env.timestamp:
                reason += (
                    " (the envelope's RFC 3161 timestamp is not verified natively, so it cannot "
                    "vouch that the signature was made while the certificate was valid)"
                )
            return reason
    return ""


def _revocation(chain: Sequence[x509.Certificate]) -> str:
    """Certificates below the root that name a CRL or an OCSP responder cannot be checked here.

    The root is never revocable, and a certificate that names neither is "non-revokable" in
    notation-go's terms, which passes.
    """
    for cert in chain[:-1]:
        names = []
        dps = _extension(cert, x509.CRLDistributionPoints)
        if dps is not None and any(
            isinstance(n, x509.UniformResourceIdentifier)
            for dp in dps.value
            for n in dp.full_name or ()
        ):
            names.append("a CRL distribution point")
        aia = _extension(cert, x509.AuthorityInformationAccess)
        if aia is not None and any(
            d.access_method == AuthorityInformationAccessOID.OCSP for d in aia.value
        ):
            names.append("an OCSP responder")
        if names:
            return (
                f'revocation of "{_go_name(cert.subject)}" cannot be checked natively (CRL/OCSP): '
                f"the certificate names {' and '.join(names)}"
            )
    return ""


def _check_target(payload: Mapping[str, Any], descriptor: Mapping[str, Any]) -> None:
    signed = (payload["mediaType"], payload["digest"], payload["size"])
    wanted = (descriptor.get("mediaType"), descriptor.get("digest"), descriptor.get("size"))
    if signed == wanted:
        return
    types = signed[0] != wanted[0]
    signed_text = f"{signed[1][:80]} (size {signed[2]}{', ' + signed[0][:80] if types else ''})"
    wanted_text = f"{wanted[1]} (size {wanted[2]}{', ' + str(wanted[0]) if types else ''})"
    raise NotationProblem(f"the signature is for {signed_text}, not for this image {wanted_text}")


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the verifier ---------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


class NotationNativeVerifier:
    """Finds an image's Notation signatures through the referrers API (or its tag fallback) and
    verifies them for one ``notation`` authority with :func:`verify_envelope`.

    Signatures are tried in the registry's order, at most ``max_signatures``; the first that
    verifies verifies the authority (with its logged warnings) and the rest are not fetched, as
    with ``notation verify``. Never raises.
    """

    def __init__(
        self,
        registry: RegistryClient,
        *,
        max_signatures: int = 8,
        max_envelope_bytes: int = 1 << 20,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if max_signatures < 1:
            raise ValueError(f"max_signatures must be at least 1, not {max_signatures!r}")
        if max_envelope_bytes < 1:
            raise ValueError(f"max_envelope_bytes must be positive, not {max_envelope_bytes!r}")
        self.registry = registry
        self.max_signatures = max_signatures
        self.max_envelope_bytes = max_envelope_bytes
        self.clock = clock

    def verify(self, authority: Authority, target: Target) -> Evidence:
        try:
            return self._verify(authority, target)
        except Exception as exc:  # the Verifier contract: report, never raise
            log.exception("Notation verification of %s failed unexpectedly", target.ref)
            return Evidence.unverified(
                f"Notation verification failed unexpectedly: {type(exc).__name__}: "
                f"{_short(str(exc))}"
            )

    def _verify(self, authority: Authority, target: Target) -> Evidence:
        spec = authority.spec
        if not isinstance(spec, NotationAuthority):
            return Evidence.unverified(
                f"Notation signatures cannot satisfy a {authority.kind} authority"
            )
        if spec.level == "skip":
            return Evidence.unverified(SKIP_REASON)
        if not target.digest:
            return Evidence.unverified("no digest to verify")
        try:
            _trust_store(spec.certificates)
        except NotationProblem as exc:
            return Evidence.unverified(str(exc))
        ref = target.ref
        where = f"{ref.name}@{target.digest}"
        try:
            descriptor = self._descriptor(target)
        except RegistryError as exc:
            return Evidence.unverified(f"cannot read the manifest of {where}: {exc.reason}")
        try:
            found = self.registry.referrers(
                ref.registry, ref.repository, target.digest, artifact_type=NOTATION_ARTIFACT
            )
        except RegistryError as exc:
            return Evidence.unverified(
                f"cannot list the Notation signatures of {where}: {exc.reason}"
            )
        if not found:
            return Evidence.unverified(f"no Notation signature is associated with {where}")

        problems: list[str] = []
        for referrer in found[: self.max_signatures]:
            digest = str(referrer.get("digest", ""))
            try:
                data, media_type = self._envelope(ref.registry, ref.repository, digest)
                result = verify_envelope(
                    data, media_type, spec, descriptor=descriptor, now=self.clock()
                )
            except NotationProblem as exc:
                problems.append(f"{_short(str(exc), _MAX_ONE_REASON)} (signature {digest[:19]}…)")
                continue
            except RegistryError as exc:
                problems.append(f"{_short(exc.reason, _MAX_ONE_REASON)} (signature {digest[:19]}…)")
                continue
            return Evidence(signatures=(result.signature,), warnings=result.warnings)

        skipped = len(found) - self.max_signatures
        if skipped > 0:
            problems.append(
                f"{skipped} more signature(s) not examined (at most {self.max_signatures})"
            )
        if len(problems) == 1:
            reason = problems[0]
        else:
            reason = f"none of the {len(found)} Notation signatures of {where} verified: " + (
                "; ".join(problems)
            )
        return Evidence.unverified(_short(reason, MAX_REASON))

    def _descriptor(self, target: Target) -> dict[str, Any]:
        """The image's descriptor, as the signature payload must name it."""
        if target.media_type and target.size > 0:
            return {"mediaType": target.media_type, "digest": target.digest, "size": target.size}
        manifest = self.registry.manifest(target.ref.registry, target.ref.repository, target.digest)
        return {
            "mediaType": manifest.media_type,
            "digest": target.digest,
            "size": len(manifest.data),
        }

    def _envelope(self, registry: str, repository: str, digest: str) -> tuple[bytes, str]:
        """The envelope blob a signature manifest points at, and its media type."""
        doc = self.registry.manifest(registry, repository, digest).json()
        layers = doc.get("layers")
        if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict):
            count = len(layers) if isinstance(layers, list) else 0
            raise NotationProblem(
                f"the signature manifest has {count} layers; a Notation signature has exactly one"
            )
        layer = layers[0]
        media_type = layer.get("mediaType")
        if media_type not in (JWS, COSE):
            raise NotationProblem(
                f"the signature manifest's layer is {str(media_type)[:80]!r}, not a Notation "
                f"envelope ({JWS} or {COSE})"
            )
        blob = layer.get("digest")
        size = layer.get("size")
        if not isinstance(blob, str):
            raise NotationProblem("the signature manifest's layer has no digest")
        if isinstance(size, int) and size > self.max_envelope_bytes:
            raise NotationProblem(
                f"the envelope is {size} bytes, more than the {self.max_envelope_bytes} allowed"
            )
        data = self.registry.blob(registry, repository, blob, max_bytes=self.max_envelope_bytes)
        return data, str(media_type)
