"""The verifier of ``notation`` authorities: finds an image's Notation signatures in its registry
and reports the first that verifies, or why none did."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ...evidence import Evidence, Target
from ...limits import not_examined, too_large
from ...policy import Authority, NotationAuthority
from ...registry import RegistryClient, RegistryError, TooLarge
from .chain import _trust_store
from .envelope import COSE, JWS
from .errors import NotationProblem, _short
from .levels import SKIP_REASON
from .verify import verify_envelope

log = logging.getLogger("pullgate.verifiers.notation")

NOTATION_ARTIFACT = "application/vnd.cncf.notary.signature"

MAX_REASON = 1000
_MAX_ONE_REASON = 400

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

        if len(found) > self.max_signatures:  # said first: long reasons are clipped
            note = not_examined("Notation signatures", len(found), self.max_signatures)
            reason = f"{note}; none of the {self.max_signatures} examined verified: " + (
                "; ".join(problems)
            )
        elif len(problems) == 1:
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
        bound = self.max_envelope_bytes
        if isinstance(size, int) and size > bound:  # refused before downloading it
            raise NotationProblem(too_large("the envelope", size, bound, "envelopeBytes"))
        try:
            data = self.registry.blob(registry, repository, blob, max_bytes=bound)
        except TooLarge:
            raise NotationProblem(too_large("the envelope", None, bound, "envelopeBytes")) from None
        return data, str(media_type)
