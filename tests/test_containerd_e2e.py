"""The real caller: containerd 2.1 (Debian sid's package) with pullgate's sample wrapper in its
image-verifier bin_dir, pulling from a real registry through its transfer service."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator

import pytest

from conftest import doc, key, write_files
from lab.containerd import SAMPLES, Containerd, start_containerd
from lab.daemon import Daemon, start_daemon
from lab.registry import Registry

POLICIES = {
    "p.yaml": doc("lab-allowed", '  images: ["*/lab/allowed"]\n')
    + doc("lab-signed", f'  images: ["*/lab/unsigned"]\n  authorities:{key("release")}\n')
}


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory, registry: Registry
) -> Iterator[tuple[Containerd, Daemon]]:
    tmp = tmp_path_factory.mktemp("containerd")
    daemon = start_daemon(
        tmp / "pullgate",
        write_files(tmp / "policies", POLICIES),
        config=f"registry: {{insecure: ['{registry.host}']}}\n",
    )
    containerd = start_containerd(tmp / "containerd", daemon.address)
    yield containerd, daemon
    containerd.stop()
    daemon.stop()


def test_the_sample_config_is_valid_toml_for_containerd_2() -> None:
    doc = tomllib.loads((SAMPLES / "pullgate-verifier.toml").read_text())
    assert doc["version"] == 3
    plugin = doc["plugins"]["io.containerd.image-verifier.v1.bindir"]
    assert plugin["bin_dir"] == "/opt/pullgate/verifiers"
    assert plugin["per_verifier_timeout"] == "10s"
    lines = (SAMPLES / "pullgate").read_text().splitlines()
    assert len(lines) == 2 and lines[0] == "#!/bin/sh"
    assert lines[1].startswith("exec ") and lines[1].endswith('"$@"')


def test_an_allowed_image_is_pulled(lab, registry: Registry) -> None:
    containerd, daemon = lab
    digest = registry.push_image("lab/allowed", "v1", content="allowed")
    r = containerd.pull(f"{registry.host}/lab/allowed:v1")
    assert r.returncode == 0, r.stdout + r.stderr
    decisions = [
        e for e in daemon.events() if e.get("event") == "decision" and e["digest"] == digest
    ]
    assert decisions and decisions[-1]["ok"] is True  # pullgate judged this exact digest


def test_a_denied_image_is_blocked_with_pullgates_reason(lab, registry: Registry) -> None:
    containerd, _ = lab
    digest = registry.push_image("lab/unsigned", "v1", content="unsigned")
    ref = f"{registry.host}/lab/unsigned:v1"
    r = containerd.pull(ref)
    assert r.returncode != 0
    assert (
        f"image verifier bindir blocked pull of {ref} with digest {digest} for reason: "
        "verifier pullgate rejected image (exit code 1): "
        'denied: policy "lab-signed": no authority verified (release: no cosign signature for '
        f"{registry.host}/lab/unsigned@{digest}"
    ) in r.stderr


def test_an_image_no_policy_selects_is_blocked(lab, registry: Registry) -> None:
    containerd, _ = lab
    registry.push_image("lab/other", "v1", content="other")
    r = containerd.pull(f"{registry.host}/lab/other:v1")
    assert r.returncode != 0
    assert "no policy selects" in r.stderr and "default action is deny" in r.stderr


def test_local_pulls_bypass_verifiers(lab, registry: Registry) -> None:
    """Documented bypass: `ctr image pull --local` skips the transfer service and verifiers."""
    containerd, _ = lab
    registry.push_image("lab/unsigned", "local", content="local")
    r = containerd.pull(f"{registry.host}/lab/unsigned:local", "--local")
    assert r.returncode == 0, r.stderr


def test_daemon_down_blocks_pulls(lab, registry: Registry) -> None:
    containerd, daemon = lab
    registry.push_image("lab/allowed", "v2", content="while down")
    daemon.stop()
    r = containerd.pull(f"{registry.host}/lab/allowed:v2")
    assert r.returncode != 0
    assert (
        "verifier pullgate rejected image (exit code 2): pullgate could not decide (fail closed)"
        in r.stderr
    )
