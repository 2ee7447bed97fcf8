"""Security properties, each shown with a live attack: RE2 keeps a catastrophic regex linear
(in both CEL engines), YAML never constructs Python objects (config files too), a symlink out
of the policy directory is refused by the running daemon, and registry credentials never reach
any output of a failing authenticated run.

Covered elsewhere (not repeated here): the unix socket's mode 0660 and parent 0750
(test_server.py::test_socket_mode_and_parent_directory), mTLS refusing clients without a
certificate from the CA (test_server.py::test_mtls_refuses_clients_without_a_certificate_from_
the_ca), plain TCP refused at start (test_server.py::test_plain_tcp_is_refused), python tags and
symlinks in the policy loader (test_policy_load.py), and bearer tokens kept out of errors,
reprs and logs (test_registry.py::test_no_secret_in_errors_reprs_or_logs).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from conftest import doc, key, write_files
from lab.daemon import BIN, Daemon, start_daemon
from lab.registry import Registry, start_registry
from pullgate.cel import ENGINES
from pullgate.config import ConfigError, load_config
from pullgate.v1 import verifier_pb2 as pb
from test_containerd import descriptor, run

D = "sha256:" + "b" * 64

# -- RE2: a catastrophic pattern stays linear ------------------------------------------------

EVIL = "(a+)+$"
VICTIM = "a" * 40 + "b"  # (a+)+$ backtracks 2^40 times on this in a backtracking engine

JUDGE = textwrap.dedent(
    """
    import sys
    from pullgate.decide import Decider
    from pullgate.request import Descriptor, Request
    from pullgate.rules import load_policies

    root, engine, name = sys.argv[1:4]
    policies = load_policies(root, engine=engine)
    judgement = Decider(log=None).decide(
        policies, Request(name, Descriptor(digest="sha256:" + "b" * 64))
    )
    print(judgement.ok, judgement.reason)
    """
)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_catastrophic_regex_stays_linear(tmp_path: Path, engine: str) -> None:
    rules = (
        "  rules:\n"
        f"    - name: evil\n      expr: 'image.repository.matches(\"{EVIL}\")'\n"
        "      message: evil pattern did not match\n"
    )
    root = write_files(
        tmp_path / "p", {"p.yaml": doc("evil", '  images: ["ghcr.io/**"]\n' + rules)}
    )
    r = subprocess.run(
        [sys.executable, "-c", JUDGE, str(root), engine, f"ghcr.io/acme/{VICTIM}"],
        capture_output=True,
        text=True,
        timeout=60,  # generous: RE2 answers in milliseconds; python's re would take days
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("False ") and "evil pattern did not match" in r.stdout
    # and the rule is live: a repository it matches is allowed
    r = subprocess.run(
        [sys.executable, "-c", JUDGE, str(root), engine, "ghcr.io/acme/aaaa"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0 and r.stdout.startswith("True "), r.stdout + r.stderr


def test_the_regex_payload_is_live_in_a_backtracking_engine() -> None:
    """Without RE2 the test above could not finish: python's re is still backtracking."""
    code = f"import re; re.search({EVIL!r}, 'acme/' + {VICTIM!r})"
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", code], timeout=3, check=False)


# -- YAML never constructs objects ------------------------------------------------------------


def test_python_tags_in_a_config_file_are_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    payload = f'!!python/object/apply:os.system ["touch {marker}"]'
    yaml.unsafe_load(f"x: {payload}")  # the payload is live with an unsafe loader
    assert marker.exists()
    marker.unlink()

    config = tmp_path / "pullgate.yaml"
    config.write_text(
        f"policies: {payload}\n"
        f'stateDir: !!python/name:os.system ""\n'
        f'cache: !!python/object/new:os.system {{args: ["touch {marker}"]}}\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert any("python/object/apply:os.system' is not allowed" in str(i) for i in info.value.issues)
    assert not marker.exists()
    policies = write_files(tmp_path / "p", {"p.yaml": doc("open", '  images: ["ghcr.io/**"]\n')})
    for argv in (
        ["serve", "--config", str(config)],
        ["verify", f"ghcr.io/a/b@{D}", "--config", str(config)],
        ["check", str(policies), "--config", str(config)],
    ):
        r = subprocess.run(
            [str(BIN / "pullgate"), *argv], capture_output=True, text=True, timeout=30, check=False
        )
        if argv[0] == "check" and r.returncode != 0 and "unrecognized arguments" in r.stderr:
            continue  # `check` takes no config
        assert r.returncode != 0, (argv, r.stdout, r.stderr)
        assert "is not allowed" in r.stderr, (argv, r.stderr)
        assert not marker.exists(), argv


# -- a symlink out of the policy directory, while the daemon runs -------------------------------


def test_the_daemon_refuses_a_symlink_out_of_the_policy_directory(
    daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    closed = '  images: ["ghcr.io/**"]\n  rules:\n    - name: shut\n      expr: "false"\n'
    root = write_files(
        tmp_path / "p", {"p.yaml": doc("closed", closed + "      message: closed\n")}
    )
    outside = write_files(
        tmp_path / "elsewhere", {"x.yaml": doc("open", '  images: ["ghcr.io/evil/**"]\n')}
    )
    d = daemons(root)
    stub = d.stub()
    before = stub.Status(pb.StatusRequest(), timeout=5).policy_revision
    assert not d.verify("ghcr.io/evil/app:1").ok

    os.symlink(outside / "x.yaml", root / "evil.yaml")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        now = stub.Status(pb.StatusRequest(), timeout=5)
        if now.load_errors:
            break
        time.sleep(0.05)
    assert now.policy_revision == before
    (error,) = now.load_errors
    assert "evil.yaml:1:1: symlink resolves outside the policy directory" in error
    r = d.verify("ghcr.io/evil/app:1")
    assert not r.ok and r.policy_revision == before and "closed" in r.reason


# -- credentials never leak -------------------------------------------------------------------

USER, PASSWORD, WRONG = "ci-user", "pw-TOPSECRET-4711", "pw-WRONGSECRET-0815"


def needles(*passwords: str) -> list[str]:
    out = []
    for password in passwords:
        pair = f"{USER}:{password}".encode()
        out += [password, base64.b64encode(pair).decode(), base64.urlsafe_b64encode(pair).decode()]
    return out


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = start_registry(tmp_path_factory.mktemp("locked"), htpasswd={USER: PASSWORD})
    yield registry
    registry.stop()


@pytest.mark.slow
def test_credentials_never_appear_in_any_output_of_a_failing_run(
    locked: Registry, tmp_path: Path
) -> None:
    repo = f"team/app-{uuid.uuid4().hex[:6]}"
    unsigned = locked.push_image(repo, "v1", content="unsigned")
    name = f"{locked.host}/{repo}"
    root = write_files(
        tmp_path / "p",
        {
            "p.yaml": doc(
                "signed", f'  images: ["{locked.host}/**"]\n  authorities:{key("release")}\n'
            )
        },
    )
    outputs: list[tuple[str, str]] = []  # (where, text)

    for label, password in (("right", PASSWORD), ("wrong", WRONG)):
        home = tmp_path / label
        auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
        docker = (
            write_files(home, {"config.json": json.dumps({"auths": {locked.host: {"auth": auth}}})})
            / "config.json"
        )
        registry_conf = (
            f"registry: {{insecure: ['{locked.host}'], dockerConfig: {docker}, timeout: 3s, "
            "retries: 0}\n"
        )
        (home / "pullgate.yaml").write_text(f"policies: {root}\n{registry_conf}")
        d = start_daemon(home / "daemon", root, config=registry_conf)
        try:
            answer = d.verify(f"{name}:v1", unsigned)
            assert not answer.ok
            outputs.append((f"{label}: VerifyResponse", str(answer)))
            if label == "right":  # the registry let us in: the deny is about the signature
                assert f"no cosign signature for {name}@{unsigned}" in answer.reason, answer.reason
            else:
                assert "credential" in answer.reason.lower() or "401" in answer.reason, (
                    answer.reason
                )
            status = d.stub().Status(pb.StatusRequest(), timeout=5)
            outputs.append((f"{label}: Status", str(status)))
            r = run(f"{name}:v1", descriptor(unsigned), address=d.address, digest=unsigned)
            assert r.returncode == 1, r.stdout + r.stderr
            outputs += [
                (f"{label}: containerd stdout", r.stdout),
                (f"{label}: containerd stderr", r.stderr),
            ]
            cmdline = Path(f"/proc/{d.process.pid}/cmdline").read_bytes().decode(errors="replace")
            environ = Path(f"/proc/{d.process.pid}/environ").read_bytes().decode(errors="replace")
            outputs += [(f"{label}: daemon argv", cmdline), (f"{label}: daemon environ", environ)]
        finally:
            d.stop()
        outputs.append((f"{label}: daemon log", d.log.read_text()))
        for ref in (f"{name}:v1", f"{name}@{unsigned}"):  # resolving the tag asks the registry too
            r = subprocess.run(
                [
                    str(BIN / "pullgate"),
                    "verify",
                    ref,
                    "--config",
                    str(home / "pullgate.yaml"),
                    "--json",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert r.returncode != 0, r.stdout + r.stderr
            outputs += [
                (f"{label}: verify {ref} stdout", r.stdout),
                (f"{label}: verify stderr", r.stderr),
            ]

    assert len(outputs) == 22  # 11 outputs for each password
    for where, text in outputs:
        for needle in needles(PASSWORD, WRONG):
            assert needle not in text, f"a secret leaked into {where}: {text[:300]}"
        assert "Authorization" not in text and "Basic " not in text, where
