"""Build the registry client and the verifiers a daemon or a CLI run uses, from the config.

Kept apart from ``verifiers/__init__`` so that modules needing only the seam (``decide.py``,
``pullgate check``) do not import the registry client, the cosign code or sigstore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Config
from . import AnyOf, Verifier, Verifiers
from .cache import EvidenceCache

if TYPE_CHECKING:
    from ..registry import RegistryClient

__all__ = ["build_registry", "build_verifiers"]


def build_registry(config: Config) -> RegistryClient:
    from ..registry import DockerConfig, RegistryClient, Urllib3Transport

    reg = config.registry
    return RegistryClient(
        Urllib3Transport(),
        # dockerConfig: "" means no credentials at all (not docker's default file).
        credentials=DockerConfig(reg.docker_config) if reg.docker_config else None,
        insecure=reg.insecure,
        timeout=reg.timeout,
        retries=reg.retries,
    )


def build_verifiers(config: Config, registry: RegistryClient | None = None) -> Verifiers:
    """``key``: classic cosign signatures; ``keyless``: cosign's and Sigstore bundles; each
    behind the evidence cache. ``notation`` has no verifier yet (reported unverified)."""
    from .bundle import BundleVerifier
    from .cosign import CosignVerifier

    registry = registry or build_registry(config)
    cosign = CosignVerifier(registry)
    bundles = BundleVerifier(registry)

    def cached(verifier: Verifier) -> EvidenceCache:
        c = config.cache
        return EvidenceCache(
            verifier, ttl=c.ttl, failure_ttl=c.failure_ttl, max_entries=c.max_entries
        )

    return Verifiers({"key": cached(cosign), "keyless": cached(AnyOf(cosign, bundles))})
