"""Sigstore bundles (cosign v3, ``--new-bundle-format``), attached to images as OCI referrers.

The offline core, :func:`verify_bundle`, checks one bundle with sigstore-python against a pinned
trusted root and then does what sigstore-python leaves to its caller:

* identity: sigstore's own policy check is switched off (its ``Identity`` matches exactly); the
  authority's subject and issuer, exact or RE2, are matched with :mod:`.identity`;
* DSSE: ``verify_dsse`` does not look at the statement, so the payload type must be in-toto and
  a subject of the statement must carry the image digest;
* ``ctlog: required``: the leaf must embed an SCT (sigstore-python verifies an SCT, and in fact
  requires one, but says so in its own words).

:class:`BundleVerifier` is the seam's verifier: it finds the bundles among the referrers of the
image digest and runs :func:`verify_bundle` on each, up to a bound.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from pydantic import ValidationError
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, InvalidBundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore_models.common.v1 import HashAlgorithm

from ..evidence import Evidence, Signature, Target
from ..limits import not_examined, too_large
from ..policy import Authority, KeylessAuthority
from ..registry import RegistryError, TooLarge
from ..trust import TrustRoot, TrustRootError, load_root
from .identity import describe, mismatch

__all__ = [
    "BUNDLE_MEDIA_TYPES",
    "IN_TOTO_PAYLOAD_TYPE",
    "BundleError",
    "BundleVerifier",
    "is_bundle_media_type",
    "verify_bundle",
]

BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",  # cosign v3, sigstore-python 3+
    "application/vnd.dev.sigstore.bundle+json;version=0.3",  # the first spelling of v0.3
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"  # OCI 1.1 RCs: "blobs"
MAX_REASON = 300  # one bundle's reason
MAX_EVIDENCE_REASON = 1000  # the reasons of every bundle examined, together

_SHA256 = re.compile(r"sha256:([0-9a-f]{64})")
_NORMALISED_BUNDLE_TYPES = frozenset(t.replace(" ", "") for t in BUNDLE_MEDIA_TYPES)


class BundleError(Exception):
    """Why a bundle does not count; the message is the reason, one line."""


def _one_line(text: str, limit: int = MAX_REASON) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fail(reason: str) -> BundleError:
    return BundleError(_one_line(reason))


def is_bundle_media_type(value: object) -> bool:
    """True for every spelling of a Sigstore bundle media type (v0.1 to v0.3)."""
    return isinstance(value, str) and value.replace(" ", "").lower() in _NORMALISED_BUNDLE_TYPES


# --- the trusted root, as sigstore-python wants it ---------------------------------------------

_verifiers_lock = threading.Lock()
_verifiers: dict[str, tuple[int, Verifier]] = {}


def _root_name(root: TrustRoot) -> str:
    if root.source in ("production", "staging"):
        return f"the {root.source} trusted root"
    return f"the trusted root {root.path}"


def _verifier(root: TrustRoot) -> Verifier:
    """sigstore-python's verifier for a pinned root file, rebuilt when the file changes.

    Never ``Verifier.production()``: that trusts whatever the user cache holds.
    """
    path = Path(root.path)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise _fail(f"cannot read trusted root {path}: {exc.strerror}") from None
    key = str(path)
    with _verifiers_lock:
        hit = _verifiers.get(key)
        if hit is not None and hit[0] == mtime:
            return hit[1]
    try:
        verifier = Verifier(trusted_root=TrustedRoot.from_file(key))
    except (SigstoreError, ValidationError, ValueError, KeyError, OSError) as exc:
        raise _fail(f"sigstore cannot use {_root_name(root)}: {_describe(exc)}") from None
    with _verifiers_lock:
        _verifiers[key] = (mtime, verifier)
    return verifier


def _describe(exc: BaseException) -> str:
    """An exception in one line; pydantic's many-line report cut to its first error."""
    if isinstance(exc, InvalidBundle) and isinstance(exc.__context__, ValidationError):
        return f"failed to load bundle: {_describe(exc.__context__)}"
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return f"{first.get('msg', '')} at {where}" if where else str(first.get("msg", ""))
    return str(exc).strip() or type(exc).__name__


# --- one bundle ---------------------------------------------------------------------------------


class _IdentityMatchedAfterwards:
    """sigstore's policy step, left empty: the identity is matched after verification.

    Equivalent to ``sigstore.verify.policy.UnsafeNoOp`` without its warning, which would be
    logged on every pull although the identity is in fact checked (by :func:`verify_bundle`).
    """

    def verify(self, cert: x509.Certificate) -> None:
        return None


_NO_POLICY = _IdentityMatchedAfterwards()


def _sha256_hex(digest: str) -> str:
    match = _SHA256.fullmatch(digest)
    if match is None:
        raise _fail(
            f"digest {digest[:80]!r} is not sha256:<64 hex digits>; "
            "Sigstore bundles here bind a sha256 image digest"
        )
    return match.group(1)


def _has_sct(cert: x509.Certificate) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)
    except x509.ExtensionNotFound:
        return False
    return True


def _parse(data: bytes) -> Bundle:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _fail(f"not a usable Sigstore bundle: not JSON: {exc}") from None
    material = doc.get("verificationMaterial") if isinstance(doc, dict) else None
    if isinstance(material, dict) and "publicKey" in material:
        raise _fail(
            "the bundle is signed with a public key, not a Fulcio certificate: "
            "only keyless bundles are verified"
        )
    try:
        return Bundle.from_json(data)
    except (SigstoreError, ValidationError, ValueError, KeyError, TypeError) as exc:
        raise _fail(f"not a usable Sigstore bundle: {_describe(exc)}") from None


def _check_message_digest(bundle: Bundle, hex_digest: str, digest: str) -> None:
    """The digest a message signature names (a hint), for a clear reason when it differs."""
    signature = bundle._inner.message_signature
    named = signature.message_digest if signature is not None else None
    if named is None or named.algorithm != HashAlgorithm.SHA2_256:
        return
    if named.digest.hex() != hex_digest:
        raise _fail(f"the bundle signs sha256:{named.digest.hex()}, not the image digest {digest}")


def _check_statement(payload_type: str, payload: bytes, hex_digest: str, digest: str) -> None:
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise _fail(
            f"DSSE payload type is {payload_type[:80]!r}, expected {IN_TOTO_PAYLOAD_TYPE!r}"
        )
    try:
        statement = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise _fail(f"the DSSE payload is not JSON: {exc}") from None
    if not isinstance(statement, dict):
        raise _fail("the in-toto statement is not a JSON object")
    kind = statement.get("_type")
    if kind not in IN_TOTO_STATEMENT_TYPES:
        raise _fail(
            f"the DSSE payload is not an in-toto statement: _type is {str(kind)[:80]!r}, "
            f"expected {IN_TOTO_STATEMENT_TYPES[0]!r}"
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise _fail("the in-toto statement has no subject")
    found: list[str] = []
    for subject in subjects:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        value = digests.get("sha256") if isinstance(digests, dict) else None
        if isinstance(value, str):
            if value.lower() == hex_digest:
                return
            found.append(f"sha256:{value[:64]}")
    if not found:
        raise _fail(f"no subject of the in-toto statement has a sha256 digest; expected {digest}")
    shown = ", ".join(found[:2]) + (f" (and {len(found) - 2} more)" if len(found) > 2 else "")
    verb = "is" if len(found) == 1 else "are"
    plural = "" if len(found) == 1 else "s"
    raise _fail(f"statement subject{plural} {shown} {verb} not the image digest {digest}")


def _signed_at(verifier: Verifier, bundle: Bundle) -> datetime | None:
    """The time a transparency log (integrated time under a verified SET) or a TSA vouches for."""
    entry = bundle.log_entry._inner
    if entry.integrated_time and entry.inclusion_promise:
        # sigstore-python verified the SET over integratedTime (the inclusion promise).
        return datetime.fromtimestamp(entry.integrated_time, tz=UTC)
    if bundle.verification_material.timestamp_verification_data is None:
        return None
    # Only the timestamps that verify against the trusted root's TSAs; a bundle may carry more.
    try:
        verified = verifier._verify_timestamp_authority(bundle)
    except (SigstoreError, ValueError, AttributeError):
        return None
    if not verified:
        return None
    when = min(v.time for v in verified)
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def verify_bundle(
    data: bytes,
    root: TrustRoot,
    *,
    digest: str,
    identity: KeylessAuthority | None,
    kind: str = "keyless",
) -> Signature:
    """Verify one Sigstore bundle binding ``digest`` (``sha256:<hex>``), offline.

    ``identity`` names who must have signed; ``None`` accepts any signer (fixtures only).
    Raises :class:`BundleError` with the reason when the bundle does not count.
    """
    hex_digest = _sha256_hex(digest)
    bundle = _parse(data)
    cert = bundle.signing_certificate
    if identity is not None and identity.ctlog == "required" and not _has_sct(cert):
        raise _fail(
            "the certificate carries no SCT, and this authority requires one (ctlog: required)"
        )
    verifier = _verifier(root)
    where = _root_name(root)
    try:
        if bundle._dsse_envelope is not None:
            payload_type, payload = verifier.verify_dsse(bundle, _NO_POLICY)
        else:
            _check_message_digest(bundle, hex_digest, digest)
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(hex_digest))
            verifier.verify_artifact(hashed, bundle, _NO_POLICY)
    except BundleError:
        raise
    except InvalidBundle as exc:
        raise _fail(f"not a usable Sigstore bundle: {_describe(exc)}") from None
    except (SigstoreError, ValidationError, ValueError, KeyError, TypeError) as exc:
        text = _describe(exc)
        if "does not contain a signed certificate timestamp" in text:
            # sigstore-python requires an SCT whatever the authority says.
            raise _fail(
                "the certificate carries no SCT, and sigstore-python cannot verify a bundle "
                "without one (ctlog: optional is not honoured for bundles)"
            ) from None
        raise _fail(f"bundle does not verify against {where}: {text}") from None
    signer = describe(cert)
    if identity is not None:
        reason = mismatch(identity, signer)
        if reason:
            raise _fail(reason)
    if bundle._dsse_envelope is not None:
        _check_statement(payload_type, payload, hex_digest, digest)
    return Signature(
        kind=kind,
        subject=signer.subject,
        issuer=signer.issuer,
        san=signer.sans,
        extensions=signer.extensions,
        key_id="",
        signed_at=_signed_at(verifier, bundle),
        tlog=True,  # sigstore-python requires and verifies exactly one log entry
        annotations={},
    )


# --- the seam -----------------------------------------------------------------------------------


class ManifestLike(Protocol):
    """What this verifier reads of ``pullgate.registry.Manifest``."""

    @property
    def media_type(self) -> str: ...
    @property
    def digest(self) -> str: ...
    def json(self) -> Any: ...


class RegistryLike(Protocol):
    """What this verifier needs of ``pullgate.registry.RegistryClient``."""

    def referrers(
        self, registry: str, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> list[dict[str, Any]]: ...

    def manifest(
        self, registry: str, repository: str, reference: str, *, accept: Sequence[str] = ...
    ) -> ManifestLike: ...

    def blob(
        self, registry: str, repository: str, digest: str, *, max_bytes: int | None = None
    ) -> bytes: ...


def _short_digest(digest: object) -> str:
    text = str(digest)
    return text[:19] if text.startswith("sha256:") else text[:40]


class BundleVerifier:
    """Finds the Sigstore bundles attached to an image and verifies them for a keyless authority."""

    def __init__(
        self, registry: RegistryLike, *, max_signatures: int = 8, max_bundle_bytes: int = 1 << 20
    ) -> None:
        self.registry = registry
        self.max_signatures = max_signatures
        self.max_bundle_bytes = max_bundle_bytes

    def verify(self, authority: Authority, target: Target) -> Evidence:
        try:
            return self._verify(authority, target)
        except Exception as exc:  # the seam never raises; a bug still gets a reason
            return Evidence.unverified(
                _one_line(f"bundle verification failed: {type(exc).__name__}: {exc}")
            )

    def _verify(self, authority: Authority, target: Target) -> Evidence:
        spec = authority.spec
        if not isinstance(spec, KeylessAuthority):
            return Evidence.unverified("bundle verification needs a keyless authority")
        ref = target.ref
        if not target.digest:
            return Evidence.unverified(
                f"no digest for {ref.name}: a Sigstore bundle binds an image digest"
            )
        where = f"{ref.name}@{target.digest}"
        try:
            root = load_root(spec.trusted_root)
        except TrustRootError as exc:
            return Evidence.unverified(_one_line(str(exc)))
        try:
            referrers = self.registry.referrers(ref.registry, ref.repository, target.digest)
        except RegistryError as exc:
            return Evidence.unverified(
                _one_line(f"cannot list the referrers of {where}: {exc.reason}")
            )
        bundles = [d for d in referrers if is_bundle_media_type(d.get("artifactType"))]
        if not bundles:
            return Evidence.unverified(f"no Sigstore bundle is attached to {where}")
        signatures: list[Signature] = []
        problems: list[str] = []
        for descriptor in bundles[: self.max_signatures]:
            label = f"bundle {_short_digest(descriptor.get('digest'))}"
            try:
                data = self._fetch(ref.registry, ref.repository, descriptor)
                signatures.append(verify_bundle(data, root, digest=target.digest, identity=spec))
            except BundleError as exc:
                problems.append(f"{label}: {exc}")
            except RegistryError as exc:
                problems.append(_one_line(f"{label}: {exc.reason}"))
            except Exception as exc:  # one odd bundle must not hide the others
                problems.append(_one_line(f"{label}: {type(exc).__name__}: {exc}"))
        if signatures:
            return Evidence(signatures=tuple(signatures))
        if len(bundles) > self.max_signatures:  # said first: long reasons are clipped
            note = not_examined("Sigstore bundles", len(bundles), self.max_signatures)
            return Evidence.unverified(
                _one_line(
                    f"{note}; none of the {self.max_signatures} examined verified: "
                    + "; ".join(problems),
                    MAX_EVIDENCE_REASON,
                )
            )
        if len(bundles) == 1:
            return Evidence.unverified(
                f"the Sigstore bundle attached to {where} does not count: "
                + problems[0].split(": ", 1)[1]
            )
        return Evidence.unverified(
            _one_line(
                f"none of the {len(bundles)} Sigstore bundles attached to {where} verified: "
                + "; ".join(problems),
                MAX_EVIDENCE_REASON,
            )
        )

    def _fetch(self, registry: str, repository: str, descriptor: dict[str, Any]) -> bytes:
        """The bundle of one referrer: its manifest's bundle layer, bounded and digest-checked."""
        digest = descriptor.get("digest")
        if not isinstance(digest, str) or not digest:
            raise _fail("the referrer descriptor has no digest")
        manifest = self.registry.manifest(
            registry, repository, digest, accept=(OCI_MANIFEST, OCI_ARTIFACT_MANIFEST)
        )
        doc = manifest.json()
        layers = doc.get("layers", doc.get("blobs")) if isinstance(doc, dict) else None
        if not isinstance(layers, list):
            raise _fail("the referrer manifest has no layers")
        layer = next(
            (x for x in layers if isinstance(x, dict) and is_bundle_media_type(x.get("mediaType"))),
            None,
        )
        if layer is None:
            raise _fail("the referrer manifest has no layer with a Sigstore bundle media type")
        blob = layer.get("digest")
        if not isinstance(blob, str) or not blob:
            raise _fail("the bundle layer has no digest")
        size = layer.get("size")
        bound = self.max_bundle_bytes
        if isinstance(size, int) and size > bound:  # refused before downloading it
            raise _fail(too_large("the bundle", size, bound, "envelopeBytes"))
        try:
            return self.registry.blob(registry, repository, blob, max_bytes=bound)
        except TooLarge:
            raise _fail(too_large("the bundle", None, bound, "envelopeBytes")) from None
