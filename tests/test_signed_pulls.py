"""End to end: images signed by real cosign in a real registry, judged by the daemon the way
containerd asks (pullgate-containerd), by `pullgate verify` (resolving the tag), and pulled by
a real containerd. The evidence cache answers the second time."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import doc, write_files
from lab.containerd import start_containerd
from lab.daemon import BIN
from lab.registry import Registry
from lab.sigstore import Cosign, cosign_binary


@pytest.fixture(scope="module")
def cosign(tmp_path_factory: pytest.TempPathFactory) -> Cosign:
    return Cosign(cosign_binary(), tmp_path_factory.mktemp("cosign"))


@pytest.fixture(scope="module")
def release(cosign: Cosign) -> tuple[Path, Path]:
    return cosign.key_pair("release")


@pytest.fixture
def setup(tmp_path: Path, registry: Registry, release: tuple[Path, Path]) -> tuple[Path, Path]:
    """A policy directory requiring the release key for this registry, and a config file."""
    policies = write_files(
        tmp_path / "policies",
        {
            "signed.yaml": doc(
                "signed",
                f'  images: ["{registry.host}/**"]\n  authorities:\n'
                f"    - name: release\n      key: {{path: {release[1]}}}\n",
            )
        },
    )
    config = tmp_path / "pullgate.yaml"
    config.write_text(
        f"policies: {policies}\nregistry: {{insecure: ['{registry.host}'], timeout: 3s}}\n"
    )
    return policies, config


def containerd_asks(
    address: str,
    name: str,
    digest: str,
    *,
    media_type: str = "application/vnd.oci.image.manifest.v1+json",
    size: int = 1,
) -> subprocess.CompletedProcess[str]:
    """pullgate-containerd run as containerd runs it, with the descriptor containerd resolved."""
    descriptor = json.dumps({"mediaType": media_type, "digest": digest, "size": size})
    return subprocess.run(
        [
            str(BIN / "pullgate-containerd"),
            "-name",
            name,
            "-digest",
            digest,
            "-stdin-media-type",
            "application/vnd.oci.descriptor.v1+json",
        ],
        input=descriptor + "\n",
        capture_output=True,
        text=True,
        timeout=15,
        env={"PATH": "/usr/bin:/bin", "PULLGATE_ADDRESS": address},
        check=False,
    )


def test_the_daemon_allows_signed_and_denies_unsigned(
    daemons, registry, cosign, release, setup
) -> None:
    policies, config = setup
    extra = config.read_text().split("\n", 1)[1]  # the registry section
    d = daemons(policies, config=extra)
    repo = f"team/app-{uuid.uuid4().hex[:6]}"
    signed = registry.push_image(repo, "v1", content="signed")
    unsigned = registry.push_image(repo, "v2", content="unsigned")
    cosign.sign(f"{registry.host}/{repo}@{signed}", release[0])

    r = containerd_asks(d.address, f"{registry.host}/{repo}:v1", signed)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith('allowed by policy "signed"')
    r = containerd_asks(d.address, f"{registry.host}/{repo}:v2", unsigned)
    assert r.returncode == 1
    assert r.stdout.startswith(
        f'denied: policy "signed": no authority verified (release: no cosign signature for '
        f"{registry.host}/{repo}@{unsigned}"
    )
    # asked again: the evidence cache answers, and says so
    again = d.verify(f"{registry.host}/{repo}:v1", digest=signed)
    assert again.ok and again.policies[0].authorities[0].cached
    decisions = [e for e in d.events() if e.get("event") == "decision"]
    assert [e["evidenceCached"] for e in decisions] == [0, 0, 1]


def test_pullgate_verify_resolves_the_tag(registry, cosign, release, setup) -> None:
    _, config = setup
    repo = f"team/cli-{uuid.uuid4().hex[:6]}"
    digest = registry.push_image(repo, "v1", content="cli")
    cosign.sign(f"{registry.host}/{repo}@{digest}", release[0])
    r = subprocess.run(
        [str(BIN / "pullgate"), "verify", f"{registry.host}/{repo}:v1", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resolves to {digest}" in r.stderr
    assert r.stdout.startswith(f"ALLOWED {registry.host}/{repo}:v1@{digest}")
    assert "authority release: verified (1 signature(s))" in r.stdout


def test_containerd_pulls_the_signed_image_and_blocks_the_unsigned(
    daemons, registry, cosign, release, setup, tmp_path
) -> None:
    policies, config = setup
    d = daemons(policies, config=config.read_text().split("\n", 1)[1])
    containerd = start_containerd(tmp_path / "containerd", d.address)
    try:
        repo = f"team/pulled-{uuid.uuid4().hex[:6]}"
        signed = registry.push_image(repo, "signed", content="signed for containerd")
        registry.push_image(repo, "unsigned", content="not signed")
        cosign.sign(f"{registry.host}/{repo}@{signed}", release[0])
        ok = containerd.pull(f"{registry.host}/{repo}:signed")
        assert ok.returncode == 0, ok.stderr
        blocked = containerd.pull(f"{registry.host}/{repo}:unsigned")
        assert blocked.returncode != 0
        assert "verifier pullgate rejected image (exit code 1): denied" in blocked.stderr
        assert "no cosign signature for" in blocked.stderr
    finally:
        containerd.stop()
