"""Classic cosign signatures: the ``sha256-<hex>.sig`` tag, one signature per layer.

Key-based: the signature over the payload bytes verifies with the authority's key, a Rekor SET
verifies when present (and must be present with ``tlog: required``), and the payload names
the image digest.

Keyless, in this order (each step trusts only what the steps before established):
1. the Rekor SET verifies with a log key of the trusted root: ``integratedTime`` is now true;
2. the log entry is this signature's (payload hash, signature and certificate all equal):
   otherwise a valid SET of another signature could be replayed;
3. the certificate chains to a certificate authority of the trusted root that was valid at
   ``integratedTime``, every certificate valid then, code signing allowed;
4. an embedded SCT verifies with a CT log key (required with ``ctlog: required``);
5. the signature verifies with the certificate's key, and the payload names the image digest;
6. the certificate's subject and issuer are the ones the authority names.
The certificate chain annotation is an untrusted hint and is not used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from cryptography.x509.certificate_transparency import LogEntryType, SignedCertificateTimestamp
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..evidence import Evidence, Signature, Target
from ..limits import not_examined, too_large
from ..policy import Authority, KeyAuthority, KeylessAuthority
from ..registry import NotFound, RegistryClient, RegistryError, TooLarge
from ..trust import TrustRoot, TrustRootError, load_root
from .identity import describe, mismatch

__all__ = ["CosignVerifier", "SignatureLayer", "SignatureProblem", "verify_layer"]

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
PAYLOAD_TYPE = "cosign container image signature"
MAX_REASON = 300


class SignatureProblem(Exception):
    """Why one signature does not count; the message is the reason."""


@dataclass(frozen=True, slots=True)
class SignatureLayer:
    payload: bytes
    signature: bytes
    annotations: dict[str, str]

    @classmethod
    def from_annotations(cls, payload: bytes, annotations: dict[str, str]) -> SignatureLayer:
        encoded = annotations.get(SIGNATURE_ANNOTATION, "")
        if not encoded:
            raise SignatureProblem(f"the layer has no {SIGNATURE_ANNOTATION} annotation")
        try:
            # As Go's decoder (cosign's), line breaks are ignored; nothing else is.
            signature = base64.b64decode(encoded.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureProblem("the signature annotation is not base64") from None
        return cls(payload, signature, annotations)


# -- primitives ------------------------------------------------------------------------------


def _verify_signature(key: PublicKeyTypes, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            digest = {"secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}.get(
                key.curve.name, hashes.SHA256()
            )
            key.verify(signature, data, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _check_payload(payload: bytes, digest: str) -> dict[str, str]:
    """The payload's claims must name this image; returns its optional annotations."""
    try:
        doc = json.loads(payload)
        critical = doc["critical"]
        kind = critical["type"]
        named = critical["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise SignatureProblem("the payload is not a cosign simple-signing document") from None
    if kind != PAYLOAD_TYPE:
        raise SignatureProblem(f"the payload type is {str(kind)[:60]!r}, expected {PAYLOAD_TYPE!r}")
    if named != digest:
        raise SignatureProblem(
            f"the payload is for {str(named)[:80]}, not for this image ({digest})"
        )
    optional = doc.get("optional") or {}
    if not isinstance(optional, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in optional.items()}


@dataclass(frozen=True, slots=True)
class _LogEntry:
    integrated_time: datetime
    body: dict[str, Any]


_MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z


def _verify_set(bundle_text: str, root: TrustRoot) -> _LogEntry:
    """Step 1: the Rekor SET. Only after this is ``integratedTime`` worth anything."""
    try:
        bundle = json.loads(bundle_text)
        set_signature = base64.b64decode(bundle["SignedEntryTimestamp"], validate=True)
        entry = bundle["Payload"]
        signed = {
            "body": entry["body"],
            "integratedTime": int(entry["integratedTime"]),
            "logIndex": int(entry["logIndex"]),
            "logID": entry["logID"],
        }
        log_id = bytes.fromhex(entry["logID"])
        body = json.loads(base64.b64decode(entry["body"], validate=True))
        # A time datetime can hold and integers RFC 8785 can write (the signed form).
        if not (0 <= signed["integratedTime"] <= _MAX_TIME and 0 <= signed["logIndex"] < 2**53):
            raise ValueError("out of range")
    except (ValueError, KeyError, TypeError, binascii.Error, OverflowError, RecursionError):
        raise SignatureProblem("the Rekor bundle annotation is malformed") from None
    log = root.tlog(log_id)
    if log is None:
        raise SignatureProblem(
            f"the Rekor entry is from log {log_id.hex()[:16]}…, which the {root.source} "
            "trusted root does not know"
        )
    when = datetime.fromtimestamp(signed["integratedTime"], UTC)
    if not log.valid.contains(when):
        raise SignatureProblem(f"the Rekor log key was not valid at {when.isoformat()}")
    if not _verify_signature(log.key, set_signature, rfc8785.dumps(signed)):
        raise SignatureProblem("the Rekor SET does not verify with the log's key")
    if not isinstance(body, dict):
        raise SignatureProblem("the Rekor entry body is not an object")
    return _LogEntry(when, body)


def _bind(entry: _LogEntry, layer: SignatureLayer, signer: bytes) -> None:
    """Step 2: the log entry must be about this very signature (no replayed SETs)."""
    try:
        kind = entry.body["kind"]
        spec = entry.body["spec"]
        logged_hash = spec["data"]["hash"]["value"]
        logged_signature = base64.b64decode(spec["signature"]["content"])
        logged_key = base64.b64decode(spec["signature"]["publicKey"]["content"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise SignatureProblem("the Rekor entry is not a hashedrekord/rekord entry") from None
    if kind not in ("hashedrekord", "rekord"):
        raise SignatureProblem(f"the Rekor entry kind {str(kind)[:40]!r} is not supported")
    if logged_hash != hashlib.sha256(layer.payload).hexdigest():
        raise SignatureProblem("the Rekor entry is for another payload (replayed SET?)")
    if logged_signature != layer.signature:
        raise SignatureProblem("the Rekor entry is for another signature (replayed SET?)")
    if _der_of_pem(logged_key) != signer:
        raise SignatureProblem("the Rekor entry is for another key or certificate (replayed SET?)")


def _der_of_pem(data: bytes) -> bytes:
    """DER of the certificate or public key a log entry carries (PEM, as cosign uploads it)."""
    try:
        if b"CERTIFICATE" in data:
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        return _spki(load_pem_public_key(data))
    except ValueError:
        return b""


def _valid_at(cert: x509.Certificate, when: datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def _chain(leaf: x509.Certificate, root: TrustRoot, when: datetime) -> x509.Certificate:
    """Step 3: the CA of the trusted root that issued ``leaf``, valid at ``when``."""
    authorities = [
        ca for ca in root.certificate_authorities if ca.valid.contains(when) and ca.chain
    ]
    if not authorities:
        raise SignatureProblem(
            f"no certificate authority of the {root.source} trusted root was valid at "
            f"{when.isoformat()} (expired CA?)"
        )
    for ca in authorities:
        chain = ca.chain
        try:
            leaf.verify_directly_issued_by(chain[0])
            for child, parent in itertools.pairwise(chain):
                child.verify_directly_issued_by(parent)
            chain[-1].verify_directly_issued_by(chain[-1])
        except (ValueError, TypeError, InvalidSignature):
            continue
        expired = [c for c in (leaf, *chain) if not _valid_at(c, when)]
        if expired:
            raise SignatureProblem(
                f"certificate {expired[0].subject.rfc4514_string()[:80]!r} was not valid at "
                f"{when.isoformat()}"
            )
        return chain[0]
    raise SignatureProblem(
        f"the certificate was not issued by a certificate authority of the {root.source} "
        f"trusted root valid at {when.isoformat()}"
    )


def _check_usage(leaf: x509.Certificate) -> None:
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # as Go's x509 (and cosign) read it: no EKU restricts nothing
    if ExtendedKeyUsageOID.CODE_SIGNING not in usages:
        raise SignatureProblem("the certificate does not allow code signing")


def _sct_signed_data(
    sct: SignedCertificateTimestamp, leaf: x509.Certificate, issuer: x509.Certificate
) -> bytes:
    """RFC 6962 digitally-signed data of a precertificate SCT."""
    tbs = leaf.tbs_precertificate_bytes
    issuer_key_hash = hashlib.sha256(_spki(issuer.public_key())).digest()
    timestamp = int(sct.timestamp.replace(tzinfo=UTC).timestamp() * 1000)
    return (
        struct.pack("!BBQH", sct.version.value, 0, timestamp, sct.entry_type.value)
        + issuer_key_hash
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack("!H", len(sct.extension_bytes))
        + sct.extension_bytes
    )


def _check_sct(
    leaf: x509.Certificate, issuer: x509.Certificate, root: TrustRoot, required: bool
) -> None:
    """Step 4: an SCT embedded in the certificate, from a CT log of the trusted root."""
    try:
        scts = leaf.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        ).value
    except x509.ExtensionNotFound:
        if required:
            raise SignatureProblem(
                "the certificate carries no SCT, and this authority requires one (ctlog: required)"
            ) from None
        return
    for sct in scts:
        log = root.ctlog(sct.log_id)
        if log is None or sct.entry_type != LogEntryType.PRE_CERTIFICATE:
            continue
        if _verify_signature(log.key, sct.signature, _sct_signed_data(sct, leaf, issuer)):
            return
    raise SignatureProblem(
        f"no SCT of the certificate verifies with a CT log of the {root.source} trusted root"
    )


# -- one layer ---------------------------------------------------------------------------------


def verify_layer(layer: SignatureLayer, authority: Authority, digest: str) -> Signature:
    """Verify one signature layer for ``authority``; raises SignatureProblem with the reason."""
    spec = authority.spec
    if isinstance(spec, KeyAuthority):
        return _verify_key(layer, spec, digest)
    if isinstance(spec, KeylessAuthority):
        return _verify_keyless(layer, spec, digest)
    raise SignatureProblem(f"cosign signatures cannot satisfy a {authority.kind} authority")


def _root(name: str) -> TrustRoot:
    try:
        return load_root(name)
    except TrustRootError as exc:
        raise SignatureProblem(str(exc)) from None


def _verify_key(layer: SignatureLayer, spec: KeyAuthority, digest: str) -> Signature:
    key = load_pem_public_key(spec.public_key.encode())
    if not _verify_signature(key, layer.signature, layer.payload):
        raise SignatureProblem("the signature does not verify with this authority's key")
    annotations = _check_payload(layer.payload, digest)
    signed_at, tlog = None, False
    bundle = layer.annotations.get(BUNDLE_ANNOTATION)
    if bundle:
        entry = _verify_set(bundle, _root(spec.trusted_root))
        _bind(entry, layer, _spki(key))
        signed_at, tlog = entry.integrated_time, True
    elif spec.tlog == "required":
        raise SignatureProblem(
            "the signature has no Rekor SET, and this authority requires one (tlog: required)"
        )
    key_id = hashlib.sha256(_spki(key)).hexdigest()
    return Signature(
        kind="key", key_id=key_id, signed_at=signed_at, tlog=tlog, annotations=annotations
    )


def _verify_keyless(layer: SignatureLayer, spec: KeylessAuthority, digest: str) -> Signature:
    pem = layer.annotations.get(CERTIFICATE_ANNOTATION, "")
    if not pem:
        raise SignatureProblem(
            "the signature carries no certificate (signed with a key, not keyless?)"
        )
    try:
        leaf = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise SignatureProblem("the certificate annotation is not a PEM certificate") from None
    root = _root(spec.trusted_root)
    bundle = layer.annotations.get(BUNDLE_ANNOTATION)
    if bundle:
        entry = _verify_set(bundle, root)  # 1
        _bind(entry, layer, leaf.public_bytes(Encoding.DER))  # 2
        when, tlog = entry.integrated_time, True
    elif spec.tlog == "required":
        raise SignatureProblem(
            "the signature has no Rekor SET, so nothing proves when the short-lived certificate "
            "was used (tlog: required)"
        )
    else:
        when, tlog = datetime.now(UTC), False  # private PKI without a log: valid now
    issuer = _chain(leaf, root, when)  # 3
    _check_usage(leaf)
    _check_sct(leaf, issuer, root, spec.ctlog == "required")  # 4
    if not _verify_signature(leaf.public_key(), layer.signature, layer.payload):  # 5
        raise SignatureProblem("the signature does not verify with the certificate's key")
    annotations = _check_payload(layer.payload, digest)
    identity = describe(leaf)
    problem = mismatch(spec, identity)  # 6
    if problem:
        raise SignatureProblem(problem)
    return Signature(
        kind="keyless",
        subject=identity.subject,
        issuer=identity.issuer,
        san=identity.sans,
        extensions=identity.extensions,
        key_id=hashlib.sha256(_spki(leaf.public_key())).hexdigest(),
        signed_at=when if tlog else None,
        tlog=tlog,
        annotations=annotations,
    )


# -- the verifier ------------------------------------------------------------------------------


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-", 1) + ".sig"


class CosignVerifier:
    """Fetches an image's classic cosign signatures and verifies them for one authority."""

    def __init__(
        self,
        registry: RegistryClient,
        *,
        max_signatures: int = 8,
        max_payload_bytes: int = 256 << 10,
    ) -> None:
        self.registry = registry
        self.max_signatures = max_signatures
        self.max_payload_bytes = max_payload_bytes

    def verify(self, authority: Authority, target: Target) -> Evidence:
        if not target.digest:
            return Evidence.unverified("no digest to verify")
        ref = target.ref
        where = f"{ref.name}@{target.digest}"
        try:
            manifest = self.registry.manifest(
                ref.registry, ref.repository, signature_tag(target.digest)
            )
            layers = manifest.json().get("layers")
        except NotFound:
            return Evidence.unverified(
                f"no cosign signature for {where} (no tag {signature_tag(target.digest)})"
            )
        except RegistryError as exc:
            return Evidence.unverified(
                f"cannot fetch the cosign signatures of {where}: {exc.reason}"
            )
        if not isinstance(layers, list) or not layers:
            return Evidence.unverified(f"the cosign signature manifest of {where} has no layers")
        signatures: list[Signature] = []
        problems: list[str] = []
        for i, descriptor in enumerate(layers[: self.max_signatures], start=1):
            try:
                layer = self._layer(ref.registry, ref.repository, descriptor)
                signatures.append(verify_layer(layer, authority, target.digest))
            except SignatureProblem as exc:
                problems.append(f"signature {i}: {exc}")
            except RegistryError as exc:
                problems.append(f"signature {i}: {exc.reason}")
        if signatures:
            return Evidence(signatures=tuple(signatures))
        if len(layers) > self.max_signatures:  # said first: long reasons are clipped
            reason = (
                f"{not_examined('cosign signatures', len(layers), self.max_signatures)}; none "
                f"of the {self.max_signatures} examined verified: " + "; ".join(problems)
            )
        elif len(problems) == 1:
            reason = problems[0].split(": ", 1)[1]
        else:
            reason = f"none of {len(layers)} cosign signatures verified: " + "; ".join(problems)
        return Evidence.unverified(reason[:MAX_REASON])

    def _layer(self, registry: str, repository: str, descriptor: Any) -> SignatureLayer:
        if not isinstance(descriptor, dict):
            raise SignatureProblem("a layer of the signature manifest is not an object")
        if descriptor.get("mediaType") != SIMPLESIGNING:
            raise SignatureProblem(
                f"layer media type {str(descriptor.get('mediaType'))[:60]!r} is not simple signing"
            )
        annotations = descriptor.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise SignatureProblem("the layer annotations are not an object")
        digest = descriptor.get("digest")
        if not isinstance(digest, str):
            raise SignatureProblem("the layer has no digest")
        size, bound = descriptor.get("size"), self.max_payload_bytes
        what = f"the signature payload {digest[:19]}…"
        if isinstance(size, int) and size > bound:  # refused before downloading it
            raise SignatureProblem(too_large(what, size, bound, "blobBytes"))
        try:
            payload = self.registry.blob(registry, repository, digest, max_bytes=bound)
        except TooLarge:
            raise SignatureProblem(too_large(what, None, bound, "blobBytes")) from None
        return SignatureLayer.from_annotations(
            payload, {str(k): str(v) for k, v in annotations.items()}
        )
