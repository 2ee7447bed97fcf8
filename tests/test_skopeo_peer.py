"""The skopeo peer of bench/verify.py is sound: Debian trixie's skopeo 1.18, under a containers
policy.json that requires a sigstoreSigned signature by the key, accepts an image signed by real
cosign 2.5 and rejects one that is unsigned (and one signed with another key)."""

from __future__ import annotations

from pathlib import Path

from lab.registry import Registry
from lab.sigstore import Cosign, cosign_binary
from lab.skopeo import Skopeo, skopeo_command, write_sigstore_policy


def test_skopeo_accepts_a_cosign_signature_and_rejects_an_unsigned_image(
    registry: Registry, tmp_path: Path
) -> None:
    cosign = Cosign(cosign_binary(), tmp_path)
    key, pub = cosign.key_pair("release")
    other_key, _ = cosign.key_pair("other")
    repo = "bench-peer/app"
    refs = {}
    for name in ("signed", "unsigned", "other-key"):
        digest = registry.push_image(repo, name, content=f"skopeo peer: {name}")
        refs[name] = f"{registry.host}/{repo}@{digest}"
    cosign.sign(refs["signed"], key)
    cosign.sign(refs["other-key"], other_key)

    skopeo = Skopeo(skopeo_command(), tmp_path)
    assert skopeo.version().startswith("skopeo version 1.18.")
    policy = write_sigstore_policy(tmp_path / "policy", registry.host, repo, pub)
    out = tmp_path / "image"

    accepted = skopeo.copy(policy, refs["signed"], out)
    assert accepted.returncode == 0, accepted.stderr
    assert (out / "manifest.json").is_file()

    unsigned = skopeo.copy(policy, refs["unsigned"], out)
    assert unsigned.returncode != 0
    assert "A signature was required, but no signature exists" in unsigned.stderr, unsigned.stderr

    other = skopeo.copy(policy, refs["other-key"], out)
    assert other.returncode != 0
    assert "Source image rejected" in other.stderr, other.stderr
