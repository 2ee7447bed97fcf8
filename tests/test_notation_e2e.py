"""Notation authorities end to end: Notation's own signed layouts in the real registry, judged
by the daemon as containerd asks; and which backend `notation.backend: auto` picks."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from conftest import doc, shared_fixtures, write_files
from lab.daemon import BIN
from lab.oci_layout import push_layouts
from lab.registry import Registry
from pullgate.v1 import verifier_pb2 as pb
from test_signed_pulls import containerd_asks

E2E = "notation/notation/test/e2e/testdata"
IMAGE = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
IMAGE_SIZE = 517  # the descriptor containerd resolves; Notation signs it exactly
FAKE_NOTATION = Path(__file__).resolve().parent / "lab" / "fake_notation"


def policies(tmp: Path, registry: Registry, level: str) -> Path:
    store = shared_fixtures() / E2E / "config/localkeys/e2e.crt"
    body = (
        f'  images: ["{registry.host}/notation/**"]\n  authorities:\n    - name: e2e\n'
        f"      notation:\n        trustStore: {{type: ca, path: {store}}}\n"
        f'        trustedIdentities: ["*"]\n        level: {level}\n'
    )
    return write_files(tmp / f"policies-{level}", {"p.yaml": doc("notary", body)})


def push(registry: Registry, layout: str) -> str:
    repo = f"notation/{layout}-{uuid.uuid4().hex[:6]}"
    push_layouts(registry, repo, [shared_fixtures() / E2E / "registry/oci_layout" / layout])
    return repo


@pytest.mark.parametrize(
    ("layout", "level", "ok", "reason"),
    [
        ("e2e-valid-signature", "strict", True, 'allowed by policy "notary"'),
        ("e2e-expired-signature", "strict", False, "digital signature has expired"),
        ("e2e-expired-signature", "permissive", True, 'allowed by policy "notary"'),
        ("e2e", "strict", False, "no Notation signature is associated with"),
        (
            "e2e-invalid-signature",
            "strict",
            False,
            'denied: policy "notary": no authority verified',
        ),
    ],
)
def test_the_daemon_judges_notation_signatures(
    daemons, registry, tmp_path, layout, level, ok, reason
) -> None:
    d = daemons(
        policies(tmp_path, registry, level),
        config=f"registry: {{insecure: ['{registry.host}']}}\nnotation: {{backend: native}}\n",
    )
    repo = push(registry, layout)
    r = containerd_asks(d.address, f"{registry.host}/{repo}:v1", IMAGE, size=IMAGE_SIZE)
    assert r.returncode == (0 if ok else 1), r.stdout + r.stderr
    assert reason in r.stdout
    if ok and level == "permissive":
        response = d.stub().Verify(
            pb.VerifyRequest(
                image_name=f"{registry.host}/{repo}:v1",
                descriptor=pb.Descriptor(
                    digest=IMAGE,
                    size=IMAGE_SIZE,
                    media_type="application/vnd.oci.image.manifest.v1+json",
                ),
            ),
            timeout=10,
        )
        assert any("expiry was set to" in w for w in response.warnings), response.warnings


@pytest.mark.parametrize(("on_path", "backend"), [(False, "native"), (True, "cli")])
def test_auto_picks_the_cli_when_it_is_on_path(
    daemons, registry, tmp_path, on_path, backend
) -> None:
    path = os.environ.get("PATH", "")
    env = {**os.environ, "PATH": f"{FAKE_NOTATION}:{path}" if on_path else f"{BIN}:/usr/bin:/bin"}
    d = daemons(policies(tmp_path, registry, "strict"), env=env)
    (event,) = [e for e in d.events() if e.get("event") == "notation_backend"]
    assert event["backend"] == backend
