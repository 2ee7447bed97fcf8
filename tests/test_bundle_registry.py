"""Sigstore bundles found through a real registry: attached as OCI referrers, listed through the
``sha256-<hex>`` tag (docker-registry 2.8 has no referrers API), verified by BundleVerifier.

The bundles are sigstore-python's real staging signatures (read in place from
../shared/fixtures). The "image" digest is the signed artifact's digest: a referrer index can
be tagged for any digest, so the registry path is exercised with material nobody here forged.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import shared_fixtures
from lab.registry import OCI_INDEX, Registry
from pullgate.evidence import Target
from pullgate.policy import Authority, KeylessAuthority, Mark
from pullgate.reference import parse_reference
from pullgate.registry import RegistryClient, Urllib3Transport
from pullgate.verifiers.bundle import BundleVerifier

BUNDLE_ARTIFACT = "application/vnd.dev.sigstore.bundle.v0.3+json"


def attach(registry: Registry, repo: str, digest: str, bundles: list[bytes]) -> None:
    """Push each bundle as a referrer of ``digest`` and the fallback index listing them."""
    config = b"{}"
    config_digest = registry.push_blob(repo, config)
    referrers = []
    for bundle in bundles:
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": BUNDLE_ARTIFACT,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": BUNDLE_ARTIFACT,
                        "digest": registry.push_blob(repo, bundle),
                        "size": len(bundle),
                    }
                ],
                "subject": {"mediaType": OCI_INDEX, "digest": digest, "size": 1},
            }
        ).encode()
        manifest_digest = registry.push_manifest(repo, f"bundle-{len(referrers)}", manifest)
        referrers.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest),
                "artifactType": BUNDLE_ARTIFACT,
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": referrers})
    registry.push_manifest(repo, digest.replace(":", "-"), index.encode(), media_type=OCI_INDEX)


@pytest.fixture
def client(registry: Registry) -> RegistryClient:
    return RegistryClient(Urllib3Transport(), insecure=[registry.host], timeout=5, retries=0)


def authority(subject: str, root: str = "staging") -> Authority:
    spec = KeylessAuthority(
        issuer="https://github.com/login/oauth", subject=subject, trusted_root=root
    )
    return Authority("staging-signer", spec, Mark("test", 1, 1))


@pytest.mark.parametrize(
    ("subject", "root", "ok", "reason"),
    [
        ("a@tny.town", "staging", True, ""),
        ("someone@else.example", "staging", False, "subject is 'a@tny.town'"),
        ("a@tny.town", "production", False, "does not count"),
    ],
)
def test_bundle_referrers_through_the_registry(registry, client, subject, root, ok, reason) -> None:
    assets = shared_fixtures() / "sigstore/sigstore-python/test/assets"
    artifact = (assets / "bundle.txt").read_bytes()
    digest = "sha256:" + hashlib.sha256(artifact).hexdigest()
    repo = f"bundles/{root}-{abs(hash(subject)) % 10_000}"
    attach(registry, repo, digest, [(assets / "bundle.txt.sigstore").read_bytes()])
    target = Target(parse_reference(f"{registry.host}/{repo}@{digest}"), digest)
    ev = BundleVerifier(client).verify(authority(subject, root), target)
    assert ev.verified is ok, ev.error
    if ok:
        (sig,) = ev.signatures
        assert (sig.subject, sig.issuer, sig.tlog) == (
            "a@tny.town",
            "https://github.com/login/oauth",
            True,
        )
    else:
        assert reason in ev.error


def test_no_bundles_attached(registry, client) -> None:
    digest = "sha256:" + "e" * 64
    target = Target(parse_reference(f"{registry.host}/bundles/none@{digest}"), digest)
    ev = BundleVerifier(client).verify(authority("a@tny.town"), target)
    assert ev.error == f"no Sigstore bundle is attached to {registry.host}/bundles/none@{digest}"
