"""Build the registry client and the verifiers a daemon or a CLI run uses, from the config.

Kept apart from ``verifiers/__init__`` so that modules needing only the seam (``decide.py``,
``pullgate check``) do not import the registry client, the cosign code or sigstore.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..config import Config
from ..limits import key as limit_key
from ..logs import event
from . import AnyOf, Verifier, Verifiers
from .cache import EvidenceCache

if TYPE_CHECKING:
    from ..registry import CredentialStore, RegistryClient

__all__ = ["build_notation", "build_registry", "build_verifiers"]

log = logging.getLogger("pullgate.verifiers")


def _credentials(config: Config) -> CredentialStore | None:
    from ..registry import DockerConfig

    # dockerConfig: "" means no credentials at all (not docker's default file).
    path = config.registry.docker_config
    return DockerConfig(path) if path else None


def build_registry(config: Config) -> RegistryClient:
    from ..registry import RegistryClient, Urllib3Transport

    reg = config.registry
    return RegistryClient(
        Urllib3Transport(),
        credentials=_credentials(config),
        insecure=reg.insecure,
        timeout=reg.timeout,
        retries=reg.retries,
        max_manifest_bytes=config.limits.manifest_bytes,
        max_blob_bytes=config.limits.blob_bytes,
        bound_names={
            "max_manifest_bytes": limit_key("manifestBytes"),
            "max_blob_bytes": limit_key("blobBytes"),
        },
    )


def build_notation(config: Config, registry: RegistryClient) -> Verifier:
    """``notation.backend``: ``cli`` runs the notation CLI, ``native`` verifies in process,
    ``auto`` (the default) uses the CLI when ``notation.binary`` is on PATH at start."""
    from .notation_cli import NotationCli, available
    from .notation_native import NotationNativeVerifier

    n = config.notation
    if n.backend == "native" or (n.backend == "auto" and not available(n.binary)):
        event(log, logging.INFO, "notation_backend", backend="native", configured=n.backend)
        limits = config.limits
        return NotationNativeVerifier(
            registry,
            max_signatures=limits.signatures_per_image,
            max_envelope_bytes=limits.envelope_bytes,
        )
    event(log, logging.INFO, "notation_backend", backend="cli", binary=n.binary)
    return NotationCli(
        n.binary,
        timeout=n.timeout,
        insecure=config.registry.insecure,
        credentials=_credentials(config),
    )


def build_verifiers(config: Config, registry: RegistryClient | None = None) -> Verifiers:
    """``key``: classic cosign signatures; ``keyless``: cosign's and Sigstore bundles;
    ``notation``: the notation CLI or the native verifier; each behind the evidence cache.
    The ``limits`` section bounds the signatures examined and the bytes read for each."""
    from .bundle import BundleVerifier
    from .cosign import CosignVerifier

    registry = registry or build_registry(config)
    limits = config.limits
    cosign = CosignVerifier(
        registry, max_signatures=limits.signatures_per_image, max_payload_bytes=limits.blob_bytes
    )
    bundles = BundleVerifier(
        registry,
        max_signatures=limits.signatures_per_image,
        max_bundle_bytes=limits.envelope_bytes,
    )

    def cached(verifier: Verifier) -> EvidenceCache:
        c = config.cache
        return EvidenceCache(
            verifier, ttl=c.ttl, failure_ttl=c.failure_ttl, max_entries=c.max_entries
        )

    return Verifiers(
        {
            "key": cached(cosign),
            "keyless": cached(AnyOf(cosign, bundles)),
            "notation": cached(build_notation(config, registry)),
        }
    )
