"""Judgements, table-driven: selection, globs, namespaces, modes, when, defaults, rule errors,
k-of-n, exemptions, identities, and every way evidence can be missing. Each deny case checks
its reason."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    KEY_A,
    KEY_B,
    RESPONSE_KEYS,
    compile_dir,
    doc,
    key,
    keyless,
    verifiers,
    write_files,
)
from pullgate.decide import DEFAULT_OPTIONS, Decider, Options
from pullgate.evidence import Evidence, Signature, Target
from pullgate.logs import JsonFormatter
from pullgate.policy import Authority
from pullgate.request import Descriptor, InvalidRequest, Request
from pullgate.rules import CompiledPolicySet
from pullgate.verifiers import Verifiers

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


SETS: dict[str, str] = {
    "globs": "".join(
        doc(n, f"  images: [{g}]\n")
        for n, g in [
            ("star", '"ghcr.io/acme/*"'),
            ("deep", '"quay.io/team/**"'),
            ("middle", '"registry.example.com/**/app"'),
            ("exact", "docker.io/library/nginx"),
            ("any-registry", '"*/tools/kubectl"'),
            ("one-char", '"ghcr.io/proj/v?"'),
            ("port", '"localhost:5000/dev/*"'),
        ]
    )
    + doc("carved", '  images: ["gcr.io/corp/**"]\n  exclude: ["gcr.io/corp/sandbox/**"]\n'),
    "namespaces": doc(
        "prod-signed",
        '  images: ["ghcr.io/acme/**"]\n  namespaces: ["prod-*", "payments"]\n'
        f"  authorities:{key('release', KEY_A)}\n",
    )
    + doc("acme-base", '  images: ["ghcr.io/acme/**"]\n'),
    "modes": doc(
        "enforce-sig", f'  images: ["docker.io/acme/**"]\n  authorities:{key("release", KEY_A)}\n'
    )
    + doc(
        "audit-team",
        '  mode: audit\n  images: ["docker.io/acme/**"]\n  rules:\n'
        '    - name: team-label\n      expr: "has(request.pod.labels.team)"\n'
        "      message: pods must carry a team label\n",
    )
    + doc(
        "audit-only",
        f'  mode: audit\n  images: ["docker.io/beta/**"]\n  authorities:{key("release", KEY_A)}\n',
    ),
    "when": doc(
        "debug-in-dev",
        '  images: ["ghcr.io/acme/**"]\n  when: image.tag.startsWith("debug")\n  rules:\n'
        '    - name: dev-only\n      expr: request.namespace == "dev"\n'
        "      message: debug images run only in dev\n",
    )
    + doc(
        "run-by-digest",
        '  images: ["ghcr.io/acme/**"]\n  when: request.operation == "run"\n  rules:\n'
        '    - name: pinned\n      expr: image.reference.contains("@")\n'
        "      message: pods must reference images by digest\n",
    )
    + doc("acme-base", '  images: ["ghcr.io/acme/**"]\n')
    + doc(
        "web-signed",
        '  images: ["ghcr.io/web/**"]\n  when: request.pod.labels["tier"] == "web"\n'
        f"  authorities:{key('release', KEY_A)}\n",
    ),
    "errors": doc(
        "source-annotation",
        '  images: ["ghcr.io/e/**"]\n  rules:\n    - name: from-acme\n'
        '      expr: image.annotations["org.opencontainers.image.source"]'
        '.startsWith("https://github.com/acme/")\n'
        "      message: images must be built from acme repositories\n",
    )
    + doc(
        "numeric-tag",
        '  images: ["ghcr.io/n/**"]\n  rules:\n    - name: v2-or-later\n'
        "      expr: int(image.tag) >= 2\n",
    ),
    "kofn": doc(
        "two-of-three",
        '  images: ["ghcr.io/acme/**"]\n'
        f"  authorities:{key('a', KEY_A)}{key('b', KEY_B)}"
        f"{keyless('c', 'release@acme.example')}\n"
        "  rules:\n    - name: two-signers\n"
        "      expr: authorities.filter(k, authorities[k].verified).size() >= 2\n"
        "      message: two of the three signers must sign\n",
    ),
    "exempt": doc(
        "signed-or-exempt",
        '  images: ["ghcr.io/legacy/**"]\n'
        f"  authorities:{key('release', KEY_A)}\n"
        "  rules:\n    - name: signed\n"
        "      expr: >-\n"
        '        authorities["release"].verified ||\n'
        f'        (image.digest in ["{D1}"] && now < timestamp("2027-01-31T00:00:00Z"))\n'
        "      message: unsigned images need an unexpired exemption\n",
    ),
    "identity": doc(
        "from-api-repo",
        '  images: ["ghcr.io/acme/**"]\n'
        f"  authorities:{keyless('ci', 'https://github.com/acme/api/.github/workflows/r.yml@refs/tags/v1')}\n"
        "  rules:\n    - name: repository\n"
        '      expr: signatures.exists(s, s.extensions.githubWorkflowRepository == "acme/api")\n'
        "      message: must be built by acme/api\n"
        "    - name: fresh\n"
        "      expr: >-\n        signatures.exists(s, has(s.signedAt) &&\n"
        '        now - s.signedAt < duration("2160h"))\n'
        "      message: the signature must be younger than 90 days\n",
    ),
    "plain": doc("signed", f'  images: ["**"]\n  authorities:{key("release", KEY_A)}\n'),
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CompiledPolicySet]:
    out = {}
    for name, text in SETS.items():
        root = write_files(tmp_path_factory.mktemp(name), {"policies.yaml": text})
        out[name] = compile_dir(root)
    return out


def ci_signature(repo: str = "acme/api", age_days: int = 3) -> Evidence:
    return Evidence(
        signatures=(
            Signature(
                kind="keyless",
                subject="https://github.com/acme/api/.github/workflows/r.yml@refs/tags/v1",
                issuer="https://token.actions.githubusercontent.com",
                extensions={"githubWorkflowRepository": repo},
                signed_at=NOW - timedelta(days=age_days),
                tlog=True,
            ),
        )
    )


@dataclass
class Case:
    id: str
    set: str
    image: str
    ok: bool
    reason: str = ""  # substring of the judgement's reason
    digest: str = D1
    namespace: str = ""
    operation: str = "pull"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)  # descriptor annotations
    evidence: dict[str, Any] = field(default_factory=dict)
    options: Options = DEFAULT_OPTIONS
    now: datetime = NOW
    failing: str = ""  # the enforce policy that must have failed
    warning: str = ""  # substring of some warning
    no_warnings: bool = False


NO_POLICY = "no policy selects"
CASES = [
    # -- globs: * is one segment, ** any depth, anchored at both ends -----------------------
    Case("star-one-segment", "globs", "ghcr.io/acme/app:1", True, 'allowed by policy "star"'),
    Case("star-not-prefix-lookalike", "globs", "ghcr.io/acme-evil/x", False, NO_POLICY),
    Case("star-not-two-segments", "globs", "ghcr.io/acme/a/b", False, NO_POLICY),
    Case("star-not-parent", "globs", "ghcr.io/acme", False, NO_POLICY),
    Case("deep-one", "globs", "quay.io/team/a", True, '"deep"'),
    Case("deep-many", "globs", "quay.io/team/a/b/c", True, '"deep"'),
    Case("deep-not-parent", "globs", "quay.io/team", False, NO_POLICY),
    Case("deep-not-lookalike", "globs", "quay.io/teams/a", False, NO_POLICY),
    Case("middle-zero", "globs", "registry.example.com/app", True, '"middle"'),
    Case("middle-many", "globs", "registry.example.com/x/y/app", True, '"middle"'),
    Case("middle-last-segment-exact", "globs", "registry.example.com/x/app2", False, NO_POLICY),
    Case("exact-short-name", "globs", "nginx", True, '"exact"'),
    Case("exact-docker-io", "globs", "docker.io/nginx:1.25", True, '"exact"'),
    Case("exact-index-docker-io", "globs", "index.docker.io/library/nginx", True, '"exact"'),
    Case("exact-not-prefix", "globs", "nginx-unprivileged", False, NO_POLICY),
    Case("exact-with-digest", "globs", f"library/nginx@{D1}", True, '"exact"'),
    Case("any-registry", "globs", "ghcr.io/tools/kubectl", True, '"any-registry"'),
    Case("any-registry-other", "globs", "x.example/tools/kubectl", True, '"any-registry"'),
    Case("any-registry-not-deeper", "globs", "x.io/a/tools/kubectl", False, NO_POLICY),
    Case("question-mark-one-char", "globs", "ghcr.io/proj/v1", True, '"one-char"'),
    Case("question-mark-not-two", "globs", "ghcr.io/proj/v10", False, NO_POLICY),
    Case("registry-port", "globs", "localhost:5000/dev/app", True, '"port"'),
    Case("registry-other-port", "globs", "localhost:5001/dev/app", False, NO_POLICY),
    Case("exclude-keeps-rest", "globs", "gcr.io/corp/svc", True, '"carved"'),
    Case("exclude-carves-out", "globs", "gcr.io/corp/sandbox/x", False, NO_POLICY),
    Case("registry-case-folded", "globs", "GHCR.IO/acme/app", True, '"star"'),
    Case("tag-and-digest", "globs", f"ghcr.io/acme/app:v1@{D1}", True, '"star"'),
    # -- default action --------------------------------------------------------------------
    Case("default-deny", "globs", "docker.io/other/x", False, "default action is deny"),
    Case(
        "default-allow",
        "globs",
        "docker.io/other/x",
        True,
        "default action is allow",
        options=Options(default_action="allow"),
    ),
    # -- namespaces, known and unknown -----------------------------------------------------
    Case(
        "ns-glob-unsigned",
        "namespaces",
        "ghcr.io/acme/api",
        False,
        '"prod-signed"',
        namespace="prod-eu",
        failing="prod-signed",
    ),
    Case(
        "ns-exact-unsigned",
        "namespaces",
        "ghcr.io/acme/api",
        False,
        "no authority verified",
        namespace="payments",
    ),
    Case(
        "ns-other-unsigned", "namespaces", "ghcr.io/acme/api", True, '"acme-base"', namespace="dev"
    ),
    Case(
        "ns-glob-needs-dash",
        "namespaces",
        "ghcr.io/acme/api",
        True,
        '"acme-base"',
        namespace="production",
    ),
    Case("ns-unknown-applies", "namespaces", "ghcr.io/acme/api", False, '"prod-signed"'),
    Case(
        "ns-unknown-skip",
        "namespaces",
        "ghcr.io/acme/api",
        True,
        '"acme-base"',
        options=Options(unknown_namespace="skip"),
    ),
    Case(
        "ns-signed",
        "namespaces",
        "ghcr.io/acme/api",
        True,
        '"acme-base", "prod-signed"',
        namespace="prod-eu",
        evidence={"release": True},
    ),
    # -- modes -----------------------------------------------------------------------------
    Case(
        "audit-passes",
        "modes",
        "docker.io/acme/x",
        True,
        '"enforce-sig"',
        labels={"team": "a"},
        evidence={"release": True},
        no_warnings=True,
    ),
    Case(
        "audit-warns",
        "modes",
        "docker.io/acme/x",
        True,
        '"enforce-sig"',
        evidence={"release": True},
        warning='audit policy "audit-team" would deny: policy "audit-team" rule "team-label" '
        "failed: pods must carry a team label",
    ),
    Case(
        "enforce-denies-audit-warns",
        "modes",
        "docker.io/acme/x",
        False,
        'policy "enforce-sig": no authority verified',
        failing="enforce-sig",
        warning="audit-team",
    ),
    Case(
        "audit-only-allows",
        "modes",
        "docker.io/beta/x",
        True,
        "only audit policies",
        warning='"audit-only" would deny',
    ),
    Case(
        "audit-only-signed",
        "modes",
        "docker.io/beta/x",
        True,
        "only audit policies",
        evidence={"release": True},
        no_warnings=True,
    ),
    # -- when ------------------------------------------------------------------------------
    Case(
        "when-true-rule-passes",
        "when",
        "ghcr.io/acme/x:debug-1",
        True,
        '"debug-in-dev"',
        namespace="dev",
    ),
    Case(
        "when-true-rule-fails",
        "when",
        "ghcr.io/acme/x:debug-1",
        False,
        "debug images run only in dev",
        namespace="prod",
        failing="debug-in-dev",
    ),
    Case(
        "when-false-skips",
        "when",
        "ghcr.io/acme/x:1.0",
        True,
        'allowed by policy "acme-base"',
        namespace="prod",
    ),
    Case("when-run-unpinned", "when", "ghcr.io/acme/x:1.0", False, "by digest", operation="run"),
    Case(
        "when-run-pinned", "when", f"ghcr.io/acme/x@{D1}", True, '"run-by-digest"', operation="run"
    ),
    Case(
        "when-error-applies",
        "when",
        "ghcr.io/web/x",
        False,
        '"web-signed"',
        warning="applied because its when failed",
    ),
    Case(
        "when-true-signed",
        "when",
        "ghcr.io/web/x",
        True,
        '"web-signed"',
        labels={"tier": "web"},
        evidence={"release": True},
    ),
    Case(
        "when-false-default-deny",
        "when",
        "ghcr.io/web/x",
        False,
        'their when is false: "web-signed"',
        labels={"tier": "db"},
    ),
    Case(
        "when-false-default-allow",
        "when",
        "ghcr.io/web/x",
        True,
        "default action is allow",
        labels={"tier": "db"},
        options=Options(default_action="allow"),
    ),
    # -- rule errors fail the rule ---------------------------------------------------------
    Case("rule-error-missing-key", "errors", "ghcr.io/e/x", False, "evaluation error: no such key"),
    Case(
        "rule-true",
        "errors",
        "ghcr.io/e/x",
        True,
        '"source-annotation"',
        annotations={"org.opencontainers.image.source": "https://github.com/acme/x"},
    ),
    Case(
        "rule-false-message",
        "errors",
        "ghcr.io/e/x",
        False,
        "images must be built from acme repositories",
        annotations={"org.opencontainers.image.source": "https://github.com/evil/x"},
    ),
    Case("rule-numeric-ok", "errors", "ghcr.io/n/x:3", True, '"numeric-tag"'),
    Case(
        "rule-numeric-false",
        "errors",
        "ghcr.io/n/x:1",
        False,
        "expression is false: int(image.tag) >= 2",
    ),
    Case("rule-value-error", "errors", "ghcr.io/n/x:latest", False, "evaluation error"),
    # -- k of n ----------------------------------------------------------------------------
    Case("kofn-none", "kofn", "ghcr.io/acme/x", False, "two of the three signers must sign"),
    Case("kofn-one", "kofn", "ghcr.io/acme/x", False, "two of the three", evidence={"b": True}),
    Case(
        "kofn-two",
        "kofn",
        "ghcr.io/acme/x",
        True,
        '"two-of-three"',
        evidence={"a": True, "c": True},
    ),
    Case(
        "kofn-three",
        "kofn",
        "ghcr.io/acme/x",
        True,
        '"two-of-three"',
        evidence={"a": True, "b": True, "c": True},
    ),
    # -- exemptions with end dates ---------------------------------------------------------
    Case("exempt-before-end", "exempt", "ghcr.io/legacy/x", True, '"signed-or-exempt"'),
    Case(
        "exempt-after-end",
        "exempt",
        "ghcr.io/legacy/x",
        False,
        "unexpired exemption",
        now=datetime(2027, 2, 1, tzinfo=UTC),
    ),
    Case(
        "exempt-other-digest", "exempt", "ghcr.io/legacy/x", False, "unexpired exemption", digest=D2
    ),
    Case(
        "exempt-signed",
        "exempt",
        "ghcr.io/legacy/x",
        True,
        '"signed-or-exempt"',
        digest=D2,
        evidence={"release": True},
    ),
    # -- signer identity in CEL ------------------------------------------------------------
    Case(
        "identity-ok",
        "identity",
        "ghcr.io/acme/x",
        True,
        '"from-api-repo"',
        evidence={"ci": ci_signature()},
    ),
    Case(
        "identity-other-repo",
        "identity",
        "ghcr.io/acme/x",
        False,
        "must be built by acme/api",
        evidence={"ci": ci_signature("acme/other")},
    ),
    Case(
        "identity-stale",
        "identity",
        "ghcr.io/acme/x",
        False,
        "younger than 90 days",
        evidence={"ci": ci_signature(age_days=100)},
    ),
    Case(
        "identity-unverified",
        "identity",
        "ghcr.io/acme/x",
        False,
        "assumed: ci has no valid signature",
    ),
    # -- evidence that cannot be had -------------------------------------------------------
    Case("no-digest", "plain", "ghcr.io/acme/x:1", False, "no digest to verify", digest=""),
    Case("signed", "plain", "ghcr.io/acme/x:1", True, '"signed"', evidence={"release": True}),
    Case(
        "unsigned",
        "plain",
        "ghcr.io/acme/x:1",
        False,
        "release: assumed: release has no valid signature",
    ),
]


def _run(case: Case, compiled: dict[str, CompiledPolicySet]) -> Any:
    request = Request(
        image_name=case.image,
        descriptor=Descriptor(digest=case.digest, annotations=case.annotations),
        operation=case.operation,
        namespace=case.namespace,
        labels=case.labels,
    )
    decider = Decider(verifiers(case.evidence), options=case.options, log=None)
    return decider.decide(compiled[case.set], request, now=case.now)


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_judgement(case: Case, compiled: dict[str, CompiledPolicySet]) -> None:
    j = _run(case, compiled)
    assert j.ok is case.ok, j.reason
    assert j.reason.startswith("allowed" if case.ok else "denied")
    assert case.reason in j.reason
    assert j.policy_revision == compiled[case.set].revision
    assert len(j.decision_id) == 16
    if case.failing:
        failed = [p for p in j.policies if not p.passed and p.mode == "enforce"]
        assert case.failing in [p.name for p in failed]
    if case.warning:
        assert any(case.warning in w for w in j.warnings), j.warnings
    if case.no_warnings:
        assert j.warnings == ()
    if not case.ok:
        assert (
            any(not p.passed for p in j.policies)
            or "default action" in j.reason
            or "digest" in j.reason
        )


def test_per_policy_and_per_rule_results(compiled: dict[str, CompiledPolicySet]) -> None:
    case = next(c for c in CASES if c.id == "identity-stale")
    j = _run(case, compiled)
    (policy,) = j.policies
    assert policy.name == "from-api-repo" and policy.mode == "enforce" and not policy.passed
    assert [(a.name, a.verified, a.signatures) for a in policy.authorities] == [("ci", True, 1)]
    assert [(r.name, r.passed) for r in policy.rules] == [("repository", True), ("fresh", False)]
    assert policy.rules[1].message == "the signature must be younger than 90 days"
    doc = j.to_json()
    assert set(doc) == RESPONSE_KEYS
    assert doc["policies"][0]["rules"][1] == {
        "name": "fresh",
        "passed": False,
        "message": "the signature must be younger than 90 days",
        "error": "",
    }


def test_rule_error_is_recorded_on_the_rule(compiled: dict[str, CompiledPolicySet]) -> None:
    j = _run(next(c for c in CASES if c.id == "rule-error-missing-key"), compiled)
    (rule,) = j.policies[0].rules
    assert not rule.passed
    assert "no such key" in rule.error and "org.opencontainers.image.source" in rule.error
    assert "activation" not in rule.error.lower()


def test_each_distinct_authority_is_verified_once(tmp_path: Path) -> None:
    text = doc("a", f'  images: ["**"]\n  authorities:{key("release", KEY_A)}\n') + doc(
        "b", f'  images: ["ghcr.io/**"]\n  authorities:{key("same-key", KEY_A)}\n'
    )
    policies = compile_dir(write_files(tmp_path, {"p.yaml": text}))
    vs = verifiers({"release": True})
    double = vs.for_kind("key")
    j = Decider(vs, log=None).decide(policies, Request("ghcr.io/x/y", Descriptor(digest=D1)))
    assert j.ok
    assert double.calls == [("release", D1)]  # type: ignore[attr-defined]


class Exploding:
    def verify(self, authority: Authority, target: Target) -> Evidence:
        raise RuntimeError("registry on fire")


def test_a_verifier_that_raises_denies_with_its_error(
    compiled: dict[str, CompiledPolicySet],
) -> None:
    decider = Decider(Verifiers({"key": Exploding()}), log=None)
    j = decider.decide(compiled["plain"], Request("ghcr.io/x/y", Descriptor(digest=D1)))
    assert not j.ok
    assert "key verifier failed: RuntimeError: registry on fire" in j.reason


def test_a_kind_without_verifier_is_never_verified(compiled: dict[str, CompiledPolicySet]) -> None:
    j = Decider(log=None).decide(compiled["plain"], Request("ghcr.io/x/y", Descriptor(digest=D1)))
    assert not j.ok
    assert "release: no verifier for key yet" in j.reason


def test_reference_digest_must_match_the_resolved_digest(
    compiled: dict[str, CompiledPolicySet],
) -> None:
    decider = Decider(verifiers({"release": True}), log=None)
    j = decider.decide(compiled["plain"], Request(f"ghcr.io/x/y@{D1}", Descriptor(digest=D2)))
    assert not j.ok
    assert f"names digest {D1} but {D2} was resolved" in j.reason


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (Request(""), "image_name is empty"),
        (Request("NGINX"), "lowercase"),
        (Request("ghcr.io/x", Descriptor(digest="sha256:abc")), "descriptor digest"),
        (Request("ghcr.io/x", operation="delete"), "operation 'delete'"),
        (Request("ghcr.io/x", namespace="Bad_NS"), "namespace"),
    ],
)
def test_requests_that_cannot_be_judged_raise(
    request_: Request, message: str, compiled: dict[str, CompiledPolicySet]
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        Decider(log=None).decide(compiled["plain"], request_)


def test_one_json_log_line_per_decision(
    compiled: dict[str, CompiledPolicySet], caplog: pytest.LogCaptureFixture
) -> None:
    decider = Decider(verifiers({"release": True}))  # the default log: pullgate.decision
    with caplog.at_level(logging.INFO, logger="pullgate.decision"):
        j = decider.decide(compiled["plain"], Request("ghcr.io/x/y", Descriptor(digest=D1)))
    (rec,) = [r for r in caplog.records if r.name == "pullgate.decision"]
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    record = json.loads(line)
    assert record["event"] == "decision" and record["level"] == "info"
    assert record["decisionId"] == j.decision_id
    assert record["image"] == "ghcr.io/x/y" and record["digest"] == D1
    assert record["ok"] is True and record["policyRevision"] == compiled["plain"].revision
    assert record["reason"] == 'allowed by policy "signed"'
    assert isinstance(record["durationMs"], float)
