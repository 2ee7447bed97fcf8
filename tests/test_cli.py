"""The pullgate command as users run it: a real subprocess, exit codes, stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, RESPONSE_KEYS, doc, key, write_files

DIGEST = "sha256:" + "b" * 64
# The console script the package installs, next to the interpreter running the tests.
PULLGATE = Path(sys.executable).parent / "pullgate"


def pullgate(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PULLGATE), *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


POLICY = doc(
    "signed", f'  images: ["127.0.0.1:9/acme/**"]\n  authorities:{key("release")}\n'
) + doc(
    "tools",
    '  images: ["docker.io/library/busybox"]\n  namespaces: ["tools"]\n  rules:\n'
    '    - name: run-only-in-tools\n      expr: request.namespace == "tools"\n'
    "      message: busybox runs only in the tools namespace\n",
)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return write_files(tmp_path / "policies", {"p.yaml": POLICY})


def test_check_ok(policies: Path) -> None:
    r = pullgate("check", str(policies))
    assert r.returncode == 0, r.stderr
    assert "OK: 2 policies, 1 rules" in r.stdout


def test_check_reports_every_error_as_file_line_col(tmp_path: Path) -> None:
    bad = write_files(
        tmp_path / "bad",
        {
            "a.yaml": POLICY.replace("name: signed", "name: Signed"),
            "b.yaml": POLICY.replace('request.namespace == "tools"', "request.namespce == 1"),
        },
    )
    r = pullgate("check", str(bad))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == "3 errors in the policy revision; nothing was applied"
    assert lines[1].startswith(f"{bad}/a.yaml:5:9: metadata.name 'Signed' must be a DNS-1123")
    assert lines[2].startswith(
        f"{bad}/b.yaml:17:1: duplicate ImagePolicy name 'tools' "
        f"(first defined at {bad}/a.yaml:17:1)"
    )
    assert lines[3].startswith(
        f"{bad}/b.yaml:26:21: rule 'run-only-in-tools': request has no field 'namespce'; "
        "did you mean 'namespace'?"
    )
    assert r.stdout == ""


def test_check_empty_directory_is_invalid(tmp_path: Path) -> None:
    r = pullgate("check", str(tmp_path))
    assert r.returncode == 1
    assert "no ImagePolicy documents" in r.stderr


def test_verify_denied_exit_1_with_reason(policies: Path) -> None:
    # The signatures' registry refuses connections: the authority cannot verify, so: deny.
    r = pullgate("verify", f"127.0.0.1:9/acme/app@{DIGEST}", "--policies", str(policies))
    assert r.returncode == 1
    assert r.stdout.startswith(f"DENIED 127.0.0.1:9/acme/app@{DIGEST}\n")
    assert (
        'reason:   denied: policy "signed": no authority verified (release: cannot fetch the '
        f"cosign signatures of 127.0.0.1:9/acme/app@{DIGEST}: " in r.stdout
    )
    decision = json.loads(r.stderr.strip().splitlines()[-1])
    assert decision["event"] == "decision" and decision["ok"] is False


def test_verify_allowed_exit_0(policies: Path) -> None:
    r = pullgate(
        "verify",
        "busybox:1.36",
        "--policies",
        str(policies),
        "--namespace",
        "tools",
        "--digest",
        DIGEST,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ALLOWED docker.io/library/busybox:1.36@" + DIGEST)
    assert "rule run-only-in-tools: true" in r.stdout


def test_verify_json_is_the_verify_response(policies: Path) -> None:
    r = pullgate(
        "verify", "busybox", "--policies", str(policies), "--namespace", "default", "--json"
    )
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    assert doc["reason"] == (
        "denied: no policy selects docker.io/library/busybox and the default action is deny"
    )
    assert set(doc) == RESPONSE_KEYS


def test_verify_unknown_namespace_applies_namespace_policies(policies: Path) -> None:
    r = pullgate("verify", "busybox", "--policies", str(policies), "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1
    assert doc["reason"].startswith('denied: policy "tools" rule "run-only-in-tools" failed')
    r = pullgate(
        "verify", "busybox", "--policies", str(policies), "--json", "--unknown-namespace", "skip"
    )
    assert r.returncode == 1 and "no policy selects" in json.loads(r.stdout)["reason"]


def test_verify_default_action_from_config(policies: Path, tmp_path: Path) -> None:
    config = tmp_path / "pullgate.yaml"
    config.write_text(f"policies: {policies}\ndefaultAction: allow\n")
    r = pullgate("verify", "docker.io/library/redis", "--config", str(config))
    assert r.returncode == 0
    assert "the default action is allow" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NGINX"], "repository names must be lowercase"),
        (["nginx", "--digest", "sha256:xyz"], "--digest"),
        (["nginx", "--policies", "/nonexistent"], "policy directory does not exist"),
        (["nginx", "--label", "novalue"], "--label takes KEY=VALUE"),
    ],
)
def test_verify_errors_exit_2(policies: Path, args: list[str], message: str) -> None:
    if "--policies" not in args:
        args = [*args, "--policies", str(policies)]
    r = pullgate("verify", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert "ALLOWED" not in r.stdout


def test_verify_bad_config_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "pullgate.yaml"
    config.write_text("defaultAction: maybe\n")
    r = pullgate("verify", "nginx", "--config", str(config))
    assert r.returncode == 2
    assert f"{config}:1:16: defaultAction must be one of deny, allow" in r.stderr


@pytest.mark.parametrize("engine", ["cel-python", "cel-expr"])
def test_test_command(engine: str) -> None:
    r = pullgate("test", "policies", "--cel-engine", engine)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("7 passed, 0 failed")
    r = pullgate("test", "samples/policies", "--cel-engine", engine)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith(" passed, 0 failed")


def test_check_and_verify_on_cel_expr(policies: Path) -> None:
    r = pullgate("check", str(policies), "--cel-engine", "cel-expr")
    assert r.returncode == 0, r.stderr
    assert "OK: 2 policies, 1 rules" in r.stdout
    args = ["verify", "busybox", "--digest", "sha256:" + "b" * 64, "--policies", str(policies)]
    r = pullgate(*args, "--cel-engine", "cel-expr")  # no namespace: the rule sees ""
    assert r.returncode == 1
    assert 'policy "tools" rule "run-only-in-tools" failed' in r.stdout
    assert "busybox runs only in the tools namespace" in r.stdout
    r = pullgate(*args, "--namespace", "tools", "--cel-engine", "cel-expr")
    assert r.returncode == 0, r.stdout + r.stderr


def test_cel_expr_not_installed_says_how_to_install(policies: Path, tmp_path: Path) -> None:
    """A Python where cel_expr_python cannot be imported: every command says what to do."""
    shadow = write_files(
        tmp_path / "shadow", {"cel_expr_python/__init__.py": "raise ImportError('absent')\n"}
    )
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    hint = "pip install 'pullgate[cel-expr]'"
    for args in (
        ["check", str(policies)],
        ["test", "policies"],
        ["verify", "docker.io/library/busybox", "--policies", str(policies)],
    ):
        r = subprocess.run(
            [str(PULLGATE), *args, "--cel-engine", "cel-expr"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=60,
        )
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert hint in r.stderr, args
    config = write_files(tmp_path / "cfg", {"pullgate.yaml": "cel: {engine: cel-expr}\n"})
    r = subprocess.run(
        [
            str(PULLGATE),
            "serve",
            "--config",
            str(config / "pullgate.yaml"),
            "--policies",
            str(policies),
            "--state-dir",
            str(tmp_path / "state"),
            "--listen",
            f"unix://{tmp_path}/s.sock",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 2
    assert "pullgate serve: cel.engine: cel engine 'cel-expr' needs the cel-expr-python" in r.stderr
    assert hint in r.stderr


def test_test_command_fails_on_a_wrong_case(policies: Path) -> None:
    (policies / "t.yaml").write_text(
        "apiVersion: pullgate.dev/v1alpha1\nkind: PolicyTest\nmetadata: {name: t}\nspec:\n"
        "  cases:\n    - name: wrong\n      image: ghcr.io/acme/x\n      expect: {ok: true}\n"
    )
    r = pullgate("test", str(policies))
    assert r.returncode == 1
    assert f"FAIL t / wrong  ({policies}/t.yaml:6:7)" in r.stdout
    assert "expected allowed, got denied" in r.stdout
    assert r.stdout.rstrip().endswith("0 passed, 1 failed")


def test_test_command_without_cases_fails(policies: Path) -> None:
    r = pullgate("test", str(policies))
    assert r.returncode == 1
    assert "no PolicyTest cases found" in r.stderr
