"""`pullgate verify --explain` and reason codes.

Explanations: in process on both CEL engines (keyless evidence in the shape the cosign verifier
gives it), through the real CLI, and once with a real cosign keyless signature in a real
registry. Reason codes: every way a judgement ends, in the judgement, its JSON, the decision
log record, and the one line pullgate-containerd prints for containerd.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import doc, key, keyless, verifiers, write_files
from lab.daemon import BIN
from lab.silent import silent_server
from pullgate import containerd, judgement
from pullgate.cel import EngineUnavailable
from pullgate.decide import Decider, Options, Trace
from pullgate.evidence import Evidence, Signature
from pullgate.explain import Explanation, Node, cel_literal, explain
from pullgate.grpclite.call import CallError
from pullgate.judgement import Judgement
from pullgate.policy import load_policy_dir
from pullgate.request import Descriptor, Request
from pullgate.rules import CompiledPolicySet, compile_policy_set, engine_named

REPO_ROOT = Path(__file__).resolve().parent.parent
D = "sha256:" + "a" * 64
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
ISSUER = "https://token.actions.githubusercontent.com"
LOGGED = datetime(2026, 5, 30, 12, 0, tzinfo=UTC)

FROM_MAIN = (
    'signatures.exists(s, s.extensions.githubWorkflowRepository == "acme/web" '
    '&& s.subject.endsWith("@refs/heads/main"))'
)
POLICIES = {
    "keyless.yaml": doc(
        "prod-keyless",
        '  images: ["ghcr.io/acme/**"]\n'
        '  exclude: ["ghcr.io/acme/sandbox/**"]\n'
        f"  authorities:{keyless('ci', SUBJECT)}\n"
        "  rules:\n"
        "    - name: from-main\n"
        f"      expr: '{FROM_MAIN}'\n"
        "      message: release images are built from main by acme/web\n"
        "    - name: logged\n"
        "      expr: 'signatures.all(s, s.tlog)'\n",
    )
    + doc(
        "team-only",
        '  images: ["ghcr.io/team/**"]\n'
        '  namespaces: ["team-*"]\n'
        '  when: \'request.operation == "run" && request.pod.labels.tier == "web"\'\n'
        "  rules:\n"
        "    - name: labelled\n"
        "      expr: 'has(request.pod.labels.owner)'\n",
    ),
}


def keyless_signature(repository: str = "acme/app") -> Signature:
    """A keyless signature as the cosign verifier describes one (tests/test_cosign.py)."""
    return Signature(
        kind="keyless",
        subject=SUBJECT,
        issuer=ISSUER,
        san=(SUBJECT,),
        extensions={"githubWorkflowRepository": repository, "issuer": ISSUER},
        signed_at=LOGGED,
        tlog=True,
    )


def available(name: str) -> str:
    try:
        engine_named(name)
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    return name


@pytest.fixture(params=["cel-python", "cel-expr"])
def engine(request: pytest.FixtureRequest) -> str:
    return available(request.param)


def compiled(tmp_path: Path, engine: str, files: dict[str, str] = POLICIES) -> CompiledPolicySet:
    root = write_files(tmp_path / f"policies-{engine}", files)
    return compile_policy_set(load_policy_dir(root), engine=engine)


def judge(
    policies: CompiledPolicySet,
    image: str,
    evidence: dict[str, Evidence | bool] | None = None,
    *,
    options: Options | None = None,
    **request: Any,
) -> tuple[Judgement, Explanation]:
    decider = Decider(verifiers(evidence), options=options or Options(), log=None)
    req = Request(image_name=image, descriptor=Descriptor(digest=D), **request)
    trace = Trace()
    j = decider.decide(policies, req, now=NOW, trace=trace)
    return j, explain(policies, req, j, trace, options=decider.options)


def find(node: Node, text: str) -> list[Node]:
    """Every node of the tree whose expression is ``text``."""
    here = [node] if node.text == text else []
    return here + [n for c in node.children for n in find(c, text)]


# -- explanations --------------------------------------------------------------------------------


def test_a_failing_keyless_rule_shows_the_values_that_made_it_fail(
    tmp_path: Path, engine: str
) -> None:
    policies = compiled(tmp_path, engine)
    j, why = judge(policies, "ghcr.io/acme/app:v1", {"ci": Evidence((keyless_signature(),))})
    assert not j.ok and j.code == "RULE_FAILED"
    assert why.code == "RULE_FAILED"
    (policy,) = why.policies
    assert policy.name == "prod-keyless" and policy.applied and policy.passed is False
    assert policy.selected_by == ('image glob "ghcr.io/acme/**" matches ghcr.io/acme/app',)
    (ci,) = policy.authorities
    assert (ci.kind, ci.verified) == ("keyless", True)
    (signer,) = ci.signatures
    assert (signer.subject, signer.issuer, signer.signed_at) == (SUBJECT, ISSUER, LOGGED)
    from_main, logged = policy.rules
    assert (logged.value, logged.tree) == ("true", None)
    assert from_main.value == "false"
    assert from_main.message == "release images are built from main by acme/web"
    tree = from_main.tree
    assert tree is not None and tree.value == "false"
    # the list the macro ranged over, then the one element, with its failing parts
    assert tree.children[0].text == "signatures"
    assert tree.children[0].value.startswith(
        '[{"annotations": {}, "authority": "ci", "extensions": {"githubWorkflowRepository": '
        '"acme/app", '
    )
    (element,) = tree.children[1:]
    assert element.note == "s = signatures[0]" and element.value == "false"
    (repository,) = find(element, "s.extensions.githubWorkflowRepository")
    assert repository.value == '"acme/app"'
    (subject,) = find(element, "s.subject")
    assert subject.value == json.dumps(SUBJECT)
    (ends,) = find(element, 's.subject.endsWith("@refs/heads/main")')
    assert ends.value == "false"
    # both conjuncts failed, so both are shown; literals are not repeated as children
    assert [c.text for c in element.children] == [
        's.extensions.githubWorkflowRepository == "acme/web"',
        's.subject.endsWith("@refs/heads/main")',
    ]
    text = "\n".join(why.lines())
    assert "authority ci (keyless): verified, 1 signature(s)" in text
    assert f'signer: subject "{SUBJECT}", issuer "{ISSUER}", logged at 2026-05-30T12:00:00Z' in (
        text
    )
    assert '[s = signatures[0]] s.extensions.githubWorkflowRepository == "acme/web"' in text


def test_only_the_conjuncts_that_failed_are_shown(tmp_path: Path, engine: str) -> None:
    policies = compiled(tmp_path, engine)
    sig = keyless_signature("acme/web")  # the repository is right; the ref is a tag
    _, why = judge(policies, "ghcr.io/acme/app:v1", {"ci": Evidence((sig,))})
    tree = why.policies[0].rules[0].tree
    assert tree is not None
    element = tree.children[1]
    assert [c.text for c in element.children] == ['s.subject.endsWith("@refs/heads/main")']
    (receiver,) = element.children[0].children  # the argument is a literal: not repeated
    assert (receiver.text, receiver.value) == ("s.subject", json.dumps(SUBJECT))


def test_both_engines_explain_alike(tmp_path: Path) -> None:
    available("cel-expr")
    evidence: dict[str, Evidence | bool] = {"ci": Evidence((keyless_signature(),))}
    documents = []
    for name in ("cel-python", "cel-expr"):
        _, why = judge(compiled(tmp_path, name), "ghcr.io/acme/app:v1", evidence)
        documents.append(why.to_json())
    assert documents[0] == documents[1]
    assert documents[0]["policies"][0]["rules"][0]["explanation"]["value"] == "false"


def test_a_passing_case(tmp_path: Path, engine: str) -> None:
    policies = compiled(tmp_path, engine)
    sig = keyless_signature("acme/web")
    good = Signature(**{**_fields(sig), "subject": SUBJECT.replace("tags/v1.2.0", "heads/main")})
    j, why = judge(policies, "ghcr.io/acme/app:v1", {"ci": Evidence((good,))})
    assert j.ok and j.code == why.code == "ALLOWED"
    (policy,) = why.policies
    assert policy.passed is True
    assert [(r.name, r.value, r.tree) for r in policy.rules] == [
        ("from-main", "true", None),
        ("logged", "true", None),
    ]
    assert "  policy prod-keyless (enforce): passed" in why.lines()


def _fields(sig: Signature) -> dict[str, Any]:
    return {name: getattr(sig, name) for name in Signature.__dataclass_fields__}


def test_an_unverified_authority_says_why(tmp_path: Path, engine: str) -> None:
    policies = compiled(tmp_path, engine)
    j, why = judge(policies, "ghcr.io/acme/app:v1")
    assert j.code == "RULE_FAILED"
    (ci,) = why.policies[0].authorities
    assert not ci.verified and ci.error == "assumed: ci has no valid signature"
    assert "    authority ci (keyless): not verified: assumed: ci has no valid signature" in (
        why.lines()
    )
    tree = why.policies[0].rules[0].tree
    assert tree is not None and [(c.text, c.value) for c in tree.children] == [("signatures", "[]")]


def test_not_selected_says_which_policies_nearly_matched(tmp_path: Path, engine: str) -> None:
    policies = compiled(tmp_path, engine)
    j, why = judge(policies, "ghcr.io/acme/sandbox/tool:v1")
    assert not j.ok and j.code == "NO_POLICY_SELECTED"
    assert why.policies == ()
    assert why.not_selected == (
        (
            "prod-keyless",
            'its images match but exclude glob "ghcr.io/acme/sandbox/**" matches '
            "ghcr.io/acme/sandbox/tool",
        ),
    )
    assert why.notes == ("no policy selects ghcr.io/acme/sandbox/tool; the default action is deny",)
    _, why = judge(policies, "ghcr.io/team/app:v1", namespace="prod")
    assert why.not_selected == (
        ("team-only", 'its images match but namespace "prod" matches none of "team-*"'),
    )
    _, why = judge(policies, "quay.io/other/app:v1")
    assert why.not_selected == ()  # policies whose images do not match are not listed


def test_a_false_when_is_explained(tmp_path: Path, engine: str) -> None:
    policies = compiled(tmp_path, engine)
    j, why = judge(
        policies,
        "ghcr.io/team/app:v1",
        namespace="team-a",
        operation="run",
        labels={"tier": "batch"},
    )
    assert not j.ok and j.code == "NO_POLICY_APPLIES"
    (policy,) = why.policies
    assert not policy.applied and policy.passed is None and policy.rules == ()
    assert policy.selected_by == (
        'image glob "ghcr.io/team/**" matches ghcr.io/team/app',
        'namespace glob "team-*" matches "team-a"',
    )
    assert policy.when is not None and policy.when.value == "false"
    (tier,) = find(policy.when, "request.pod.labels.tier")
    assert tier.value == '"batch"'
    assert find(policy.when, "request.operation") == []  # that conjunct was true


def test_a_rule_error_shows_the_map_it_read(tmp_path: Path, engine: str) -> None:
    files = {
        "p.yaml": doc(
            "owners",
            '  images: ["ghcr.io/**"]\n  rules:\n    - name: owner\n'
            '      expr: \'request.pod.labels["owner"] == "web"\'\n',
        )
    }
    j, why = judge(compiled(tmp_path, engine, files), "ghcr.io/x/y:1", labels={"team": "a"})
    assert j.code == "RULE_ERROR"
    rule = why.policies[0].rules[0]
    assert rule.value.startswith("error: ")
    assert rule.tree is not None
    (labels,) = find(rule.tree, "request.pod.labels")
    assert labels.value == '{"team": "a"}'


def test_values_are_clipped_cel_literals() -> None:
    assert cel_literal("x" * 500).endswith('…"') and len(cel_literal("x" * 500)) < 110
    big = {f"k{i:03}": i for i in range(1000)}
    assert cel_literal(big) == '{"k000": 0, "k001": 1, "k002": 2, "k003": 3, "k004": 4, … 995 more}'
    assert cel_literal([True, None, 1.5, b"ab"]) == '[true, null, 1.5, b"ab"]'
    assert cel_literal(NOW) == 'timestamp("2026-06-01T00:00:00Z")'
    assert cel_literal(NOW - LOGGED) == 'duration("129600s")'
    assert len(cel_literal([{"a": "y" * 300}] * 10)) <= 160


# -- the CLI -----------------------------------------------------------------------------------


def pullgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "pullgate"), *args], capture_output=True, text=True, timeout=60, check=False
    )


WHEN_FILES = {
    "p.yaml": doc(
        "tier",
        '  images: ["ghcr.io/**"]\n  rules:\n    - name: web-tier\n'
        '      expr: \'request.pod.labels.tier in ["web", "api"] || request.namespace == "x"\'\n'
        "      message: only web and api pods\n",
    )
}


def test_cli_explain_prints_the_tree_after_the_verdict(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", WHEN_FILES)
    r = pullgate(
        "verify",
        f"ghcr.io/acme/app@{D}",
        "--policies",
        str(root),
        "--label",
        "tier=batch",
        "--namespace",
        "prod",
        "--explain",
    )
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"DENIED ghcr.io/acme/app@{D}"
    assert "  code:     RULE_FAILED" in lines
    start = lines.index("explanation [RULE_FAILED]:")
    assert lines[start:] == [
        "explanation [RULE_FAILED]:",
        "  policy tier (enforce): FAILED",
        '    selected: image glob "ghcr.io/**" matches ghcr.io/acme/app',
        "    rule web-tier: false (only web and api pods)",
        '      request.pod.labels.tier in ["web", "api"] || request.namespace == "x" = false',
        '        request.pod.labels.tier in ["web", "api"] = false',
        '          request.pod.labels.tier = "batch"',
        '        request.namespace == "x" = false',
        '          request.namespace = "prod"',
    ]


def test_cli_explain_json(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", WHEN_FILES)
    args = ["verify", f"ghcr.io/acme/app@{D}", "--policies", str(root), "--json"]
    r = pullgate(*args, "--label", "tier=web", "--explain")
    assert r.returncode == 0, r.stderr
    document = json.loads(r.stdout)
    assert document["code"] == "ALLOWED"
    explanation = document["explanation"]
    assert explanation["code"] == "ALLOWED"
    rule = explanation["policies"][0]["rules"][0]
    assert (rule["name"], rule["value"], rule["explanation"]) == ("web-tier", "true", None)
    plain = json.loads(pullgate(*args, "--label", "tier=web").stdout)
    assert "explanation" not in plain and plain["code"] == "ALLOWED"


def test_cli_explain_needs_local_policies() -> None:
    r = pullgate("verify", f"ghcr.io/a/b@{D}", "--server", "unix:///nonexistent", "--explain")
    assert r.returncode == 2
    assert "--explain judges locally; drop --server" in r.stderr


@pytest.mark.slow
def test_cli_explain_with_a_real_cosign_keyless_signature(registry, tmp_path: Path) -> None:
    """cosign 2.5 signs with a certificate from a private Sigstore; pullgate verifies it in the
    registry and explains why a rule about the workflow's repository fails."""
    from lab.sigstore import Cosign, PrivateSigstore, cosign_binary
    from test_cosign import sign_keyless

    sigstore = PrivateSigstore()
    (tmp_path / "cosign").mkdir()
    cosign = Cosign(cosign_binary(), tmp_path / "cosign")
    root = sigstore.trusted_root(tmp_path / "trusted_root.json")
    repo, digest, ref = sign_keyless(
        registry, cosign, sigstore, extensions={5: "acme/api", 12: "https://github.com/acme/api"}
    )
    policies = write_files(
        tmp_path / "policies",
        {
            "p.yaml": doc(
                "ci",
                f'  images: ["{registry.host}/**"]\n  authorities:\n    - name: ci\n'
                "      keyless:\n        issuer: https://accounts.acme.example\n"
                f"        subject: signer@acme.example\n        trustedRoot: {root}\n"
                "  rules:\n    - name: repository\n"
                "      expr: 'signatures.exists(s, s.extensions.githubWorkflowRepository == "
                '"acme/web")\'\n',
            )
        },
    )
    config = tmp_path / "pullgate.yaml"
    config.write_text(
        f"policies: {policies}\nregistry: {{insecure: ['{registry.host}'], timeout: 5s}}\n"
    )
    r = pullgate("verify", ref, "--config", str(config), "--explain")
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "  code:     RULE_FAILED" in out
    assert "authority ci (keyless): verified, 1 signature(s)" in out
    assert 'signer: subject "signer@acme.example", issuer "https://accounts.acme.example", ' in out
    assert "logged at 20" in out  # the log's integrated time
    assert '[s = signatures[0]] s.extensions.githubWorkflowRepository == "acme/web" = false' in out
    assert '  s.extensions.githubWorkflowRepository = "acme/api"' in out
    assert repo in r.stdout and digest in r.stdout


# -- reason codes ------------------------------------------------------------------------------

CODE_FILES = {
    "p.yaml": doc("keyed", f'  images: ["ghcr.io/keyed/**"]\n  authorities:{key("release")}\n')
    + doc(
        "ruled",
        '  images: ["ghcr.io/ruled/**"]\n  rules:\n    - name: team\n'
        "      expr: 'request.namespace == \"team\"'\n      message: team only\n"
        '    - name: owner\n      expr: \'request.pod.labels["owner"] != ""\'\n',
    )
    + doc(
        "guarded",
        '  images: ["ghcr.io/guarded/**"]\n  when: \'request.operation == "run"\'\n',
    )
    + doc("watch", '  images: ["ghcr.io/audit/**"]\n  mode: audit\n  authorities:' + key("r2")),
}


@pytest.mark.parametrize(
    ("image", "request_fields", "evidence", "default", "code", "ok", "reason"),
    [
        ("ghcr.io/keyed/a", {}, {"release": True}, "deny", "ALLOWED", True, "allowed by policy"),
        ("ghcr.io/audit/a", {}, {}, "deny", "ALLOWED_AUDIT_ONLY", True, "only audit policies"),
        ("quay.io/x/y", {}, {}, "allow", "ALLOWED_BY_DEFAULT", True, "default action is allow"),
        ("quay.io/x/y", {}, {}, "deny", "NO_POLICY_SELECTED", False, "no policy selects"),
        ("ghcr.io/guarded/a", {}, {}, "deny", "NO_POLICY_APPLIES", False, "when is false"),
        (f"ghcr.io/keyed/a@sha256:{'b' * 64}", {}, {}, "deny", "DIGEST_MISMATCH", False, "names"),
        ("ghcr.io/keyed/a", {}, {}, "deny", "NO_AUTHORITY_VERIFIED", False, "no authority"),
        ("ghcr.io/ruled/a", {"labels": {"owner": "x"}}, {}, "deny", "RULE_FAILED", False, "team"),
        ("ghcr.io/ruled/a", {"namespace": "team"}, {}, "deny", "RULE_ERROR", False, "evaluation"),
    ],
)
def test_every_way_a_judgement_ends_has_its_code(
    tmp_path: Path,
    image: str,
    request_fields: dict[str, Any],
    evidence: dict[str, Evidence | bool],
    default: str,
    code: str,
    ok: bool,
    reason: str,
) -> None:
    policies = compiled(tmp_path, "cel-python", CODE_FILES)
    j, why = judge(
        policies, image, evidence, options=Options(default_action=default), **request_fields
    )
    assert (j.ok, j.code) == (ok, code), j.reason
    assert reason in j.reason
    assert j.to_json()["code"] == code and j.log_record()["code"] == code
    assert why.code == code
    assert code in judgement.CODES


def test_a_cached_judgement_keeps_its_code_and_a_trace_skips_the_cache(tmp_path: Path) -> None:
    from pullgate.judgements import JudgementCache

    policies = compiled(tmp_path, "cel-python", CODE_FILES)
    decider = Decider(verifiers({}), log=None, judgements=JudgementCache(ttl=60))
    req = Request(image_name="ghcr.io/keyed/a", descriptor=Descriptor(digest=D))
    first, again = decider.decide(policies, req), decider.decide(policies, req)
    assert again.cached and again.code == first.code == "NO_AUTHORITY_VERIFIED"
    trace = Trace()
    traced = decider.decide(policies, req, trace=trace)
    assert not traced.cached and trace.now is not None and len(trace.evidence) == 1


def test_every_code_is_documented() -> None:
    docs = (REPO_ROOT / "docs/troubleshooting.md").read_text()
    for code in (*judgement.CODES, *containerd.CODES):
        assert f"`{code}`" in docs, code
    assert len(set(judgement.CODES) | set(containerd.CODES)) == 17  # DIGEST_MISMATCH is shared


@pytest.mark.parametrize(
    ("status", "details", "code"),
    [
        ("UNAVAILABLE", "no policy set has loaded yet (loading)", "NO_POLICY_SET"),
        ("UNAVAILABLE", "connection refused", "DAEMON_UNREACHABLE"),
        ("DEADLINE_EXCEEDED", "no answer within 1s", "DAEMON_TIMEOUT"),
        ("RESOURCE_EXHAUSTED", "every verification slot is busy", "DAEMON_BUSY"),
        ("INTERNAL", "internal error; see the daemon log", "DAEMON_ERROR"),
        ("UNKNOWN", "", "DAEMON_ERROR"),
    ],
)
def test_status_codes_map_to_reason_codes(status: str, details: str, code: str) -> None:
    assert containerd._status_code(CallError(status, details)) == code


# -- the containerd reason line ------------------------------------------------------------------

DESCRIPTOR = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": D, "size": 1}


def ask(
    address: str, name: str, *extra: str, digest: str = D, env: dict[str, str] | None = None
) -> tuple[int, str]:
    r = subprocess.run(
        [str(BIN / "pullgate-containerd"), "-name", name, "-digest", digest, *extra],
        input=(json.dumps(DESCRIPTOR) + "\n").encode(),
        capture_output=True,
        timeout=15,
        env={"PATH": "/usr/bin:/bin", "PULLGATE_ADDRESS": address, **(env or {})},
        check=False,
    )
    out = r.stdout.decode()
    assert out.count("\n") == 1, out
    return r.returncode, out.rstrip("\n")


@pytest.fixture
def daemon(daemons, tmp_path: Path):  # type: ignore[no-untyped-def]
    return daemons(write_files(tmp_path / "codes", CODE_FILES))


TAGGED = re.compile(
    r"^(?P<message>.*) \[(?P<code>[A-Z_]+)"
    r"(?:, pullgate decision (?P<decision>[0-9a-f]{16}), policy revision (?P<revision>\S+))?\]$"
)


def tagged(line: str) -> tuple[str, str, str]:
    """(message, code, decision id) of a pullgate-containerd line, as a machine reads it."""
    m = TAGGED.match(line)
    assert m is not None, line
    return m["message"], m["code"], m["decision"] or ""


def test_the_containerd_line_carries_code_policy_rule_and_decision(daemon) -> None:
    code, line = ask(daemon.address, "ghcr.io/ruled/a:1")
    assert code == 1
    message, reason_code, decision = tagged(line)
    assert message == 'denied: policy "ruled" rule "team" failed: team only'
    assert reason_code == "RULE_FAILED" and len(decision) == 16
    decisions = [e for e in daemon.events() if e.get("event") == "decision"]
    assert (decisions[-1]["decisionId"], decisions[-1]["code"]) == (decision, "RULE_FAILED")
    for image, want_code, want_message in [
        ("ghcr.io/keyed/a:1", "NO_AUTHORITY_VERIFIED", 'denied: policy "keyed": no authority'),
        ("quay.io/x/y:1", "NO_POLICY_SELECTED", "denied: no policy selects quay.io/x/y"),
        ("ghcr.io/guarded/a:1", "NO_POLICY_APPLIES", "denied: no policy applies to ghcr.io/"),
        ("ghcr.io/ruled/a:1", "RULE_FAILED", 'denied: policy "ruled" rule "team" failed'),
        ("ghcr.io/audit/a:1", "ALLOWED_AUDIT_ONLY", "allowed: only audit policies select"),
    ]:
        exit_code, line = ask(daemon.address, image)
        message, reason_code, decision = tagged(line)
        assert (reason_code, exit_code) == (want_code, 0 if want_code.startswith("ALLOWED") else 1)
        assert message.startswith(want_message) and decision, line


def test_the_containerd_deny_paths_of_its_own(daemon, tmp_path: Path) -> None:
    assert ask(daemon.address, "ghcr.io/keyed/a:1", digest="sha256:" + "c" * 64) == (
        1,
        f"denied: -digest sha256:{'c' * 64} differs from the descriptor's digest {D} "
        "[DIGEST_MISMATCH]",
    )
    assert ask(daemon.address, "") == (
        2,
        "pullgate could not decide: missing -name (the image reference) [INVALID_REQUEST]",
    )
    code, line = ask(daemon.address, "GHCR.IO/Bad")
    assert code == 2 and tagged(line)[1] == "INVALID_REQUEST"
    assert line.startswith("pullgate could not decide: bad request: INVALID_ARGUMENT: ")
    none = f"unix://{tmp_path}/none.sock"
    code, line = ask(none, "ghcr.io/keyed/a:1")
    assert code == 2 and tagged(line)[1] == "DAEMON_UNREACHABLE"
    assert line.startswith(f"pullgate could not decide (fail closed): {none}: UNAVAILABLE")
    code, line = ask(none, "ghcr.io/keyed/a:1", "--fail-open")
    assert code == 0 and tagged(line)[1] == "ALLOWED_FAIL_OPEN"
    assert line.startswith(f"allowed by --fail-open: pullgate at {none} did not answer")
    with silent_server(tmp_path / "silent.sock") as path:
        code, line = ask(f"unix://{path}", "ghcr.io/keyed/a:1", env={"PULLGATE_TIMEOUT": "300ms"})
    assert code == 2 and tagged(line)[1] == "DAEMON_TIMEOUT"
    assert "(fail closed)" in line and "DEADLINE_EXCEEDED" in line


def test_a_daemon_without_a_policy_set_is_no_policy_set(daemons, tmp_path: Path) -> None:
    bad = write_files(tmp_path / "bad", {"p.yaml": doc("Bad", '  images: ["ghcr.io/**"]\n')})
    d = daemons(bad, serving=False)
    code, line = ask(d.address, "ghcr.io/a/b:1")
    assert code == 2 and tagged(line)[1] == "NO_POLICY_SET"
    assert line.startswith(
        f"pullgate could not decide (fail closed): {d.address}: UNAVAILABLE: "
        "no policy set has loaded yet"
    )


def test_a_daemon_without_codes_still_gets_a_line() -> None:
    """An older daemon sends no code: the line is its reason and the ids, as before."""
    assert containerd._answer(False, "denied: x", "d1", "r1", "") == (
        False,
        "denied: x [pullgate decision d1, policy revision r1]",
    )
    assert containerd._answer(True, 'allowed by policy "p"', "d", "r", "ALLOWED")[1] == (
        'allowed by policy "p" [ALLOWED, pullgate decision d, policy revision r]'
    )


def test_a_clipped_line_keeps_its_code() -> None:
    line = containerd._one_line(
        "denied: "
        + "x" * 10_000
        + " [RULE_FAILED, pullgate decision "
        + "a" * 16
        + ", policy revision r]"
    )
    assert len(line) == containerd.MAX_REASON
    assert tagged(line)[1:] == ("RULE_FAILED", "a" * 16)


def test_explanations_never_print_whole_large_maps(tmp_path: Path) -> None:
    unique = uuid.uuid4().hex[:4]
    files = {
        "p.yaml": doc(
            "annotated",
            '  images: ["ghcr.io/**"]\n  rules:\n    - name: approved\n'
            '      expr: \'request.pod.annotations["approved"] == "yes"\'\n',
        )
    }
    annotations = {f"note-{unique}-{i}": "v" * 200 for i in range(200)}
    _, why = judge(compiled(tmp_path, "cel-python", files), "ghcr.io/a/b", annotations=annotations)
    text = "\n".join(why.lines())
    assert 1 <= text.count(f"note-{unique}-") <= 5
    assert max(len(line) for line in text.splitlines()) < 300
