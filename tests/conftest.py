"""Shared helpers: policy directories written on the fly, keys, and an evidence double."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pullgate.evidence import Evidence, Signature, Target
from pullgate.policy import Authority, load_policy_dir
from pullgate.rules import CompiledPolicySet, compile_policy_set
from pullgate.verifiers import KINDS, Verifiers

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def shared_fixtures() -> Path:
    """../shared/fixtures, read in place. Skips only outside CI when it is absent."""
    path = SHARED / "fixtures"
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing; CI needs the shared fixtures")
        pytest.skip(f"{path} is absent")
    return path


def public_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


KEY_A = public_key_pem()
KEY_B = public_key_pem()


def indent_pem(pem: str, spaces: int) -> str:
    return textwrap.indent(pem.strip(), " " * spaces)


def key(name: str, pem: str = KEY_A) -> str:
    """An entry of ``spec.authorities`` (to follow a line ``  authorities:``)."""
    return f"""
    - name: {name}
      key:
        publicKey: |
{indent_pem(pem, 10)}"""


def keyless(name: str, subject: str) -> str:
    return f"""
    - name: {name}
      keyless:
        issuer: https://token.actions.githubusercontent.com
        subject: {subject}"""


def doc(name: str, body: str) -> str:
    """One ImagePolicy document; ``body`` is the YAML under ``spec:``, indented by two."""
    return f"""---
apiVersion: pullgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: {name}
spec:
{body}"""


# Every key of a VerifyResponse in the protobuf JSON mapping.
RESPONSE_KEYS = {
    "ok",
    "code",
    "reason",
    "decisionId",
    "policyRevision",
    "policies",
    "warnings",
    "cached",
}


def write_files(root: Path, files: Mapping[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def compile_dir(root: Path) -> CompiledPolicySet:
    return compile_policy_set(load_policy_dir(root))


class AssumedVerifier:
    """The Verifier seam's test double: evidence by authority name, or a callable."""

    def __init__(self, evidence: Mapping[str, Evidence | bool] | None = None) -> None:
        self.evidence = dict(evidence or {})
        self.calls: list[tuple[str, str]] = []

    def verify(self, authority: Authority, target: Target) -> Evidence:
        self.calls.append((authority.name, target.digest))
        found = self.evidence.get(authority.name)
        if found is None or found is False:
            return Evidence.unverified(f"assumed: {authority.name} has no valid signature")
        if found is True:
            return Evidence(signatures=(Signature(kind=authority.kind, key_id=authority.name),))
        return found


def verifiers(evidence: Mapping[str, Evidence | bool] | None = None) -> Verifiers:
    double = AssumedVerifier(evidence)
    return Verifiers(dict.fromkeys(KINDS, double))


@pytest.fixture
def policy_dir(tmp_path: Path) -> Callable[..., Path]:
    """Write policy files into a fresh directory: policy_dir({"a.yaml": "..."})."""

    def make(files: Mapping[str, str], name: str = "policies") -> Path:
        return write_files(tmp_path / name, files)

    return make


@pytest.fixture
def daemons(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start daemons with start(policies, ...); every one is stopped after the test."""
    from lab.daemon import Daemon, start_daemon

    started: list[Daemon] = []

    def start(policies: Path, **kwargs: object) -> Daemon:
        daemon = start_daemon(tmp_path / f"daemon-{len(started)}", policies, **kwargs)  # type: ignore[arg-type]
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Debian's docker-registry on 127.0.0.1, one per session (tests use their own repos)."""
    from lab.registry import start_registry

    r = start_registry(tmp_path_factory.mktemp("registry"))
    yield r
    r.stop()
