"""PolicyTest documents: the shipped ones pass, and wrong expectations are caught precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import KEY_A, REPO, indent_pem, write_files
from pullgate.policy import PolicyLoadError
from pullgate.policytest import run_policy_tests

POLICY = f"""
apiVersion: pullgate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: signed}}
spec:
  images: ["ghcr.io/acme/**"]
  authorities:
    - name: release
      key:
        publicKey: |
{indent_pem(KEY_A, 10)}
  rules:
    - name: from-acme
      expr: 'signatures.exists(s, s.subject.endsWith("@acme.example"))'
      message: must be signed by someone at acme
"""


def header(cases: str) -> str:
    return f"""
apiVersion: pullgate.dev/v1alpha1
kind: PolicyTest
metadata: {{name: t}}
spec:
  cases:
{cases}"""


DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("directory", ["policies", "samples/policies"])
def test_shipped_policy_tests_pass(directory: str) -> None:
    results = run_policy_tests(str(REPO / directory), display=directory)
    assert results, f"{directory} has no PolicyTest cases"
    failed = [(r.case, r.problems) for r in results if not r.passed]
    assert failed == []


def run(tmp_path: Path, cases: str) -> list:
    write_files(tmp_path, {"policy.yaml": POLICY, "tests/t.yaml": header(cases)})
    return run_policy_tests(str(tmp_path))


def test_evidence_with_signer_identity_reaches_the_rules(tmp_path: Path) -> None:
    cases = f"""
    - name: good signer
      image: ghcr.io/acme/app
      digest: {DIGEST}
      evidence:
        release: {{verified: true, signatures: [{{subject: dev@acme.example}}]}}
      expect: {{ok: true}}
    - name: other signer
      image: ghcr.io/acme/app
      digest: {DIGEST}
      evidence:
        signed/release: {{verified: true, signatures: [{{subject: dev@evil.example}}]}}
      expect: {{ok: false, policy: signed, rule: from-acme, reason: someone at acme}}
"""
    results = run(tmp_path, cases)
    assert [(r.case, r.passed) for r in results] == [("good signer", True), ("other signer", True)]
    assert results[0].judgement is not None and results[0].judgement.ok


@pytest.mark.parametrize(
    ("expect", "problem"),
    [
        ("{ok: true}", "expected allowed, got denied"),
        ("{ok: false, policy: other}", "expected policy 'other' to fail, but it did not apply"),
        ("{ok: false, policy: signed, rule: nope}", "policy 'signed' has no rule 'nope'"),
        ("{ok: false, reason: 'not in the reason'}", "expected the reason to contain"),
    ],
)
def test_wrong_expectations_are_reported(tmp_path: Path, expect: str, problem: str) -> None:
    cases = f"""
    - name: unsigned
      image: ghcr.io/acme/app
      digest: {DIGEST}
      expect: {expect}
"""
    (result,) = run(tmp_path, cases)
    assert not result.passed
    assert any(problem in p for p in result.problems), result.problems
    assert result.mark.file.endswith("tests/t.yaml") and result.mark.line == 7


def test_a_passing_policy_expected_to_fail_is_reported(tmp_path: Path) -> None:
    cases = f"""
    - name: signed but expected to fail
      image: ghcr.io/acme/app
      digest: {DIGEST}
      evidence:
        release: {{verified: true, signatures: [{{subject: a@acme.example}}]}}
      expect: {{ok: true, policy: signed}}
"""
    (result,) = run(tmp_path, cases)
    assert result.problems == ("expected policy 'signed' to fail, but it passed",)


def test_tests_can_name_a_policy_directory_elsewhere(tmp_path: Path) -> None:
    write_files(tmp_path / "policies", {"p.yaml": POLICY})
    cases = f"""
    - name: unsigned
      image: ghcr.io/acme/app
      digest: {DIGEST}
      expect: {{ok: false, policy: signed}}
"""
    text = header(cases).replace("spec:\n", "spec:\n  policies: ../policies\n")
    write_files(tmp_path / "tests", {"t.yaml": text})
    (result,) = run_policy_tests(str(tmp_path / "tests"))
    assert result.passed, result.problems


def test_tests_without_policies_are_an_error(tmp_path: Path) -> None:
    cases = """
    - name: x
      image: ghcr.io/acme/app
      expect: {ok: false}
"""
    write_files(tmp_path, {"t.yaml": header(cases)})
    with pytest.raises(PolicyLoadError, match=r"no ImagePolicy in .* to test; set spec\.policies"):
        run_policy_tests(str(tmp_path))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("image: NGINX\n      expect: {ok: true}", "lowercase"),
        ("image: ghcr.io/x\n      expect: {ok: maybe}", "expect.ok must be true or false"),
        ("image: ghcr.io/x\n      expect: {ok: true, rule: r}", "expect.rule needs expect.policy"),
        ("image: ghcr.io/x\n      digest: sha256:1\n      expect: {ok: true}", "digest"),
        (
            "image: ghcr.io/x\n      now: tomorrow\n      expect: {ok: true}",
            "must be an RFC 3339 time",
        ),
        (
            "image: ghcr.io/x\n      evidence: {r: {verified: false, signatures: [{}]}}\n"
            "      expect: {ok: true}",
            "signatures are listed but verified is false",
        ),
        (
            "image: ghcr.io/x\n      request: {operation: delete}\n      expect: {ok: true}",
            "operation must be one of pull, run",
        ),
    ],
)
def test_bad_test_cases_are_load_errors(tmp_path: Path, case: str, message: str) -> None:
    write_files(tmp_path, {"p.yaml": POLICY, "t.yaml": header(f"    - name: c\n      {case}\n")})
    with pytest.raises(PolicyLoadError) as info:
        run_policy_tests(str(tmp_path))
    assert any(
        message in i.message and i.mark.file.endswith("t.yaml") for i in info.value.issues
    ), info.value.issues
