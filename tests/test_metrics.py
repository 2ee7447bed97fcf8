"""Prometheus metrics and the decision log: a real daemon with `metrics.address`, scraped over
real HTTP and parsed with prometheus_client's parser, after known traffic; the registry
requests of a real cosign verification against the real registry; every decision log line
checked against the JSON Schema in docs/metrics.md; and the docs' metrics table against what
is exposed."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, doc, key, verifiers, write_files
from lab.daemon import BIN, Daemon, start_daemon
from lab.registry import Registry, free_port
from lab.sigstore import Cosign, cosign_binary
from pullgate import metrics
from pullgate.decide import Decider
from pullgate.judgement import CODES
from pullgate.limits import VerificationSlots
from pullgate.policy import load_policy_dir
from pullgate.reload import PolicyState
from pullgate.request import Descriptor, Request
from pullgate.rules import compile_policy_set
from pullgate.v1 import verifier_pb2 as pb
from pullgate.verifiers import KINDS, Verifiers
from pullgate.verifiers.cache import EvidenceCache

DOC = REPO / "docs" / "metrics.md"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- helpers ---------------------------------------------------------------------------------


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Samples by (name, labels), and the type of each family (by exposed name)."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name + ("_total" if family.type == "counter" else "")] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(response.read().decode())[0]


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def documented_schema() -> dict[str, Any]:
    """The JSON Schema block under "The decision log schema" in docs/metrics.md."""
    section = DOC.read_text().split("## The decision log schema", 1)[1]
    block = re.search(r"```json\n(.*?)\n```", section, re.DOTALL)
    assert block, "docs/metrics.md has no JSON Schema block under 'The decision log schema'"
    schema: dict[str, Any] = json.loads(block.group(1))
    return schema


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}
_KNOWN = {"$schema", "title", "type", "required", "properties", "items", "enum", "pattern"}
_KNOWN |= {"minLength", "maxLength", "minimum"}


def schema_errors(value_: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """The JSON Schema keywords docs/metrics.md uses, checked strictly (an unknown keyword is an
    error, so the schema cannot grow a keyword this check silently ignores)."""
    unknown = set(schema) - _KNOWN
    assert not unknown, f"{where}: schema keywords this check does not implement: {unknown}"
    errors = []
    if "type" in schema and not _TYPES[schema["type"]](value_):
        return [f"{where}: {value_!r} is not of type {schema['type']}"]
    if "enum" in schema and not any(
        value_ == e and type(value_) is type(e) for e in schema["enum"]
    ):
        errors.append(f"{where}: {value_!r} is not one of {schema['enum']}")
    if isinstance(value_, str):
        if "pattern" in schema and not re.search(schema["pattern"], value_):
            errors.append(f"{where}: {value_!r} does not match {schema['pattern']}")
        if len(value_) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value_) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']}")
    if "minimum" in schema and _TYPES["number"](value_) and value_ < schema["minimum"]:
        errors.append(f"{where}: {value_!r} is below {schema['minimum']}")
    if isinstance(value_, dict):
        errors += [
            f"{where}: {k!r} is missing" for k in schema.get("required", ()) if k not in value_
        ]
        for k, sub in schema.get("properties", {}).items():
            if k in value_:
                errors += schema_errors(value_[k], sub, f"{where}.{k}")
    if isinstance(value_, list) and "items" in schema:
        for i, item in enumerate(value_):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


def documented_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name → (type, labels) from the table of docs/metrics.md."""
    rows = re.findall(r"^\| `(pullgate_\w+)` \| (\w+) \|([^|]*)\|", DOC.read_text(), re.MULTILINE)
    return {name: (kind, tuple(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def listening_tcp(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket the process holds, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            if table == "tcp":
                host = socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1])
            else:
                words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, 32, 8)]
                host = socket.inet_ntop(socket.AF_INET6, b"".join(words))
            found.add((host, int(port, 16)))
    return found


def decisions(d: Daemon) -> list[dict[str, Any]]:
    return [e for e in d.events() if e.get("logger") == "pullgate.decision"]


def wait_for(check: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def enabled() -> Iterator[metrics.Metrics]:
    m = metrics.enable()
    yield m
    metrics.disable()


# -- the facade, in process ------------------------------------------------------------------


def test_the_documented_metrics_are_the_exposed_ones(enabled: metrics.Metrics, tmp_path) -> None:
    policies = write_files(
        tmp_path / "p",
        {
            "a.yaml": doc(
                "tagged", '  images: ["ghcr.io/**"]\n  rules:\n    - name: t\n      expr: "true"\n'
            )
        },
    )
    state = PolicyState(current=compile_policy_set(load_policy_dir(policies)), loaded_at=1.0)
    caches = {kind: EvidenceCache(verifiers().for_kind(kind)) for kind in KINDS}
    enabled.track(
        state=state,
        slots=VerificationSlots(4, wait=1, max_waiting=2),
        verifiers=Verifiers(caches),
    )
    # one of everything, so that every labelled family has a sample
    Decider(verifiers(), log=lambda j: None).decide(
        state.current, Request("ghcr.io/x/y:1", Descriptor(digest=D1))
    )
    metrics.registry_request(200)
    metrics.policy_reloaded(True)
    metrics.shadow_difference("would_deny")
    metrics.shadow_evaluated()

    samples, types = parse(enabled.exposition())
    exposed: dict[str, tuple[str, set[str]]] = {}
    for (name, labels), _ in samples.items():
        family = re.sub(r"_(bucket|count|sum)$", "", name) if name not in types else name
        if not family.startswith("pullgate_"):
            continue
        kind = types[family]
        exposed.setdefault(family, (kind, set()))[1].update(k for k, _ in labels if k != "le")
    as_exposed = {name: (kind, sorted(labels)) for name, (kind, labels) in exposed.items()}
    as_documented = {
        name: (kind, sorted(labels)) for name, (kind, labels) in documented_metrics().items()
    }
    as_specified = {s.name: (s.type, sorted(s.labels)) for s in metrics.SPECS}
    assert as_exposed == as_documented == as_specified

    for name, (kind, labels) in as_exposed.items():
        assert kind != "counter" or name.endswith("_total"), name
        assert kind != "histogram" or name.endswith("_seconds"), name
        assert not set(labels) & {"image", "digest", "reason", "repository", "tag"}, name


def test_every_hook_is_a_no_op_until_enabled(tmp_path) -> None:
    assert metrics.active() is None
    metrics.registry_request(500)
    metrics.policy_reloaded(False)
    metrics.observe_stage("select", 0.1)
    metrics.shadow_evaluated()
    metrics.shadow_difference("would_allow")
    m = metrics.enable()
    metrics.disable()
    metrics.shadow_evaluated()  # after disable(): not counted in the old registry
    assert value(parse(m.exposition())[0], "pullgate_shadow_evaluations_total") == 0


def test_the_cli_and_containerd_paths_never_import_prometheus_client(tmp_path) -> None:
    """`pullgate check`, `pullgate test` and pullgate-containerd run without the client."""
    policies = write_files(
        tmp_path / "p",
        {
            "a.yaml": doc(
                "tagged", '  images: ["ghcr.io/**"]\n  rules:\n    - name: t\n      expr: "true"\n'
            )
        },
    )
    probe = (
        "import sys; from pullgate.cli import main; import pullgate.containerd, pullgate.server; "
        f"rc = main(['check', {str(policies)!r}]); "
        "print(rc, 'prometheus_client' in sys.modules)"
    )
    r = subprocess.run([str(BIN / "python"), "-c", probe], capture_output=True, text=True)
    assert r.stdout.split()[-2:] == ["0", "False"], r.stdout + r.stderr


def test_shadow_hooks_count_by_kind_and_refuse_unknown_kinds(enabled: metrics.Metrics) -> None:
    for _ in range(3):
        metrics.shadow_evaluated()
    metrics.shadow_difference("would_deny")
    metrics.shadow_difference("would_deny")
    metrics.shadow_difference("would_allow")
    with pytest.raises(ValueError, match="use one of would_deny, would_allow"):
        metrics.shadow_difference("would_maybe")
    s = parse(enabled.exposition())[0]
    assert value(s, "pullgate_shadow_evaluations_total") == 3
    assert value(s, "pullgate_shadow_differences_total", kind="would_deny") == 2
    assert value(s, "pullgate_shadow_differences_total", kind="would_allow") == 1
    assert value(s, "pullgate_shadow_differences_total", kind="would_maybe") is None


def test_stages_are_observed_for_evaluated_judgements_of_a_logging_decider(
    enabled: metrics.Metrics, tmp_path
) -> None:
    policies = write_files(
        tmp_path / "p",
        {
            "a.yaml": doc(
                "signed",
                '  images: ["ghcr.io/acme/**"]\n  authorities:'
                + key("release")
                + '\n  rules:\n    - name: signed\n      expr: authorities["release"].verified\n',
            )
        },
    )
    compiled = compile_policy_set(load_policy_dir(policies))
    logged = Decider(verifiers({"release": True}), log=lambda j: None)
    silent = Decider(verifiers({"release": True}), log=None)  # policy tests, shadow policies
    assert logged.decide(compiled, Request("ghcr.io/acme/a:1", Descriptor(digest=D1))).ok
    assert not logged.decide(compiled, Request("quay.io/x/y:1", Descriptor(digest=D1))).ok
    mismatch = logged.decide(compiled, Request(f"ghcr.io/acme/a@{D2}", Descriptor(digest=D1)))
    assert mismatch.code == "DIGEST_MISMATCH"
    for _ in range(5):
        silent.decide(compiled, Request("ghcr.io/acme/a:1", Descriptor(digest=D1)))

    s = parse(enabled.exposition())[0]
    count = "pullgate_stage_duration_seconds_count"
    # select: the two evaluated judgements; evidence and evaluate: the one a policy applied to
    assert [value(s, count, stage=st) for st in metrics.STAGES] == [2, 1, 1]
    assert value(s, "pullgate_decisions_total", result="allowed", code="ALLOWED") == 1
    assert value(s, "pullgate_decisions_total", result="denied", code="NO_POLICY_SELECTED") == 1
    assert value(s, "pullgate_decisions_total", result="denied", code="DIGEST_MISMATCH") == 1
    policy = {"policy": "signed", "mode": "enforce"}
    assert value(s, "pullgate_policy_decisions_total", result="passed", **policy) == 1
    assert value(s, "pullgate_decision_duration_seconds_count", cached="false") == 3


def test_parse_address_forms() -> None:
    assert metrics.parse_address("127.0.0.1:9469") == ("127.0.0.1", 9469)
    assert metrics.parse_address("[::1]:9469") == ("::1", 9469)
    assert metrics.parse_address("node.local:80") == ("node.local", 80)
    for bad in ("9469", ":9469", "127.0.0.1", "http://127.0.0.1:9469", "h:99999", "h:x"):
        with pytest.raises(metrics.MetricsError, match=r"write HOST:PORT, e\.g\. 127\.0\.0\.1:"):
            metrics.parse_address(bad)


def test_the_schema_check_can_fail() -> None:
    schema = documented_schema()
    good = {
        "time": "2025-01-31T12:00:00.000Z",
        "level": "info",
        "logger": "pullgate.decision",
        "event": "decision",
        "schemaVersion": 1,
        "decisionId": "0123456789abcdef",
        "image": "ghcr.io/a/b:1",
        "digest": D1,
        "ok": True,
        "code": "ALLOWED",
        "reason": 'allowed by policy "p"',
        "policyRevision": "55f1a9041ad969e2",
        "policies": ["p"],
        "warnings": [],
        "cached": False,
        "evidenceCached": 0,
        "durationMs": 0.5,
    }
    assert schema_errors(good, schema) == []
    assert schema_errors({**good, "newKey": 1}, schema) == []  # the schema only grows
    assert schema_errors({k: v for k, v in good.items() if k != "code"}, schema) == [
        "$: 'code' is missing"
    ]
    assert schema_errors({**good, "ok": 1}, schema) == ["$.ok: 1 is not of type boolean"]
    assert schema_errors({**good, "evidenceCached": True}, schema) == [
        "$.evidenceCached: True is not of type integer"
    ]
    assert schema_errors({**good, "decisionId": "XYZ"}, schema)
    assert schema_errors({**good, "policies": ["p", 3]}, schema)
    assert schema_errors({**good, "schemaVersion": 2}, schema)
    # the schema's reason codes are the engine's
    assert schema["properties"]["code"]["enum"] == list(CODES)
    # every key the policies.md table documents is required by the schema, and the reverse
    table = (REPO / "docs" / "policies.md").read_text().split("## The decision log", 1)[1]
    assert set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)) == set(schema["required"])


# -- a real daemon ---------------------------------------------------------------------------

TAGGED = doc(
    "acme-tagged",
    '  images: ["ghcr.io/acme/**"]\n  rules:\n    - name: not-debug\n'
    '      expr: image.tag != "debug"\n      message: debug builds are not pulled\n',
)
AUDIT = doc(
    "acme-audit",
    '  mode: audit\n  images: ["ghcr.io/acme/**"]\n  rules:\n    - name: no-latest\n'
    '      expr: image.tag != "latest"\n',
)


def test_known_traffic_gives_exact_counts_and_schema_valid_log_lines(
    daemons, tmp_path: Path
) -> None:
    policies = write_files(tmp_path / "policies", {"tagged.yaml": TAGGED, "audit.yaml": AUDIT})
    port = free_port()
    d = daemons(
        policies,
        config=f"metrics: {{address: '127.0.0.1:{port}'}}\ncache: {{judgementTtl: 10m}}\n",
    )
    assert ("127.0.0.1", port) in listening_tcp(d.process.pid)  # bound where configured
    served = [e for e in d.events() if e.get("event") == "metrics_serving"]
    assert [e["address"] for e in served] == [f"127.0.0.1:{port}"]

    before = scrape(port)
    status = pb.StatusRequest()
    revision = d.stub().Status(status).policy_revision
    assert value(before, "pullgate_policy_revision_info", revision=revision) == 1
    assert value(before, "pullgate_policy_reloads_total", result="success") == 1  # first load
    assert value(before, "pullgate_policy_reloads_total", result="failure") == 0
    assert value(before, "pullgate_policy_last_reload_successful") == 1
    assert value(before, "pullgate_policies") == 2
    assert value(before, "pullgate_decision_duration_seconds_count", cached="false") == 0

    # known traffic: 3 allows (one of them fails the audit policy), 2 denies by rule, 1 deny
    # by default, then one identical repeat of the first allow (the judgement cache answers)
    answers = [
        d.verify("ghcr.io/acme/api:v1", digest=D1),
        d.verify("ghcr.io/acme/api:v2", digest=D2),
        d.verify("ghcr.io/acme/api:latest", digest=D1),
        d.verify("ghcr.io/acme/api:debug", digest=D1),
        d.verify("ghcr.io/acme/web:debug", digest=D2),
        d.verify("quay.io/other/x:1"),
        d.verify("ghcr.io/acme/api:v1", digest=D1),
    ]
    assert [a.ok for a in answers] == [True, True, True, False, False, False, True]
    assert [a.cached for a in answers] == [False] * 6 + [True]
    s = scrape(port)
    decided = "pullgate_decisions_total"
    assert value(s, decided, result="allowed", code="ALLOWED") == 4
    assert value(s, decided, result="denied", code="RULE_FAILED") == 2
    assert value(s, decided, result="denied", code="NO_POLICY_SELECTED") == 1
    assert sum(v for (n, _), v in s.items() if n == decided) == 7
    per_policy = "pullgate_policy_decisions_total"
    tagged, audit = (
        {"policy": "acme-tagged", "mode": "enforce"},
        {
            "policy": "acme-audit",
            "mode": "audit",
        },
    )
    assert value(s, per_policy, result="passed", **tagged) == 4
    assert value(s, per_policy, result="failed", **tagged) == 2
    assert value(s, per_policy, result="passed", **audit) == 5
    assert value(s, per_policy, result="failed", **audit) == 1
    assert value(s, "pullgate_decision_duration_seconds_count", cached="false") == 6
    assert value(s, "pullgate_decision_duration_seconds_count", cached="true") == 1
    inf = {"le": "+Inf"}
    assert value(s, "pullgate_decision_duration_seconds_bucket", cached="true", **inf) == 1
    stages = [value(s, "pullgate_stage_duration_seconds_count", stage=st) for st in metrics.STAGES]
    assert stages == [6, 5, 5]  # the default deny selected nothing: no evidence, no rules
    assert 0 < value(s, "pullgate_stage_duration_seconds_sum", stage="evaluate") < 10
    assert value(s, "pullgate_verifications_in_flight") == 0
    assert value(s, "pullgate_verification_slots") == 32
    assert value(s, "pullgate_verifications_refused_total") == 0
    for kind in KINDS:  # no authority in these policies: the evidence caches were not asked
        assert value(s, "pullgate_evidence_cache_requests_total", kind=kind, result="miss") == 0
    assert not [n for (n, _), _ in s.items() if n == "pullgate_registry_requests_total"]

    # the decision log: one line per judgement, each valid against the documented schema
    schema = documented_schema()
    lines = decisions(d)
    assert [e["decisionId"] for e in lines] == [a.decision_id for a in answers]
    assert [e["code"] for e in lines] == [a.code for a in answers]
    for line in lines:
        assert schema_errors(line, schema) == [], line
    assert lines[-1]["cached"] is True and lines[2]["warnings"]

    # a reload that applies, then a revision that is rejected
    (policies / "tagged.yaml").write_text(TAGGED.replace("debug builds", "debug images"))
    wait_for(lambda: d.stub().Status(status).policy_revision != revision, "the reload")
    applied = d.stub().Status(status).policy_revision
    (policies / "broken.yaml").write_text("apiVersion: pullgate.dev/v1alpha1\nkind: Nonsense\n")
    wait_for(lambda: d.stub().Status(status).load_errors, "the rejection")
    time.sleep(2.5)  # past reload.interval (2 s): the same broken content is retried
    s = scrape(port)
    assert value(s, "pullgate_policy_reloads_total", result="success") == 2
    assert value(s, "pullgate_policy_reloads_total", result="failure") == 1  # counted once
    assert value(s, "pullgate_policy_last_reload_successful") == 0
    assert value(s, "pullgate_policy_revision_info", revision=applied) == 1  # still served
    assert value(s, "pullgate_policy_revision_info", revision=revision) is None
    assert [n for (n, _), _ in s.items() if n == "pullgate_policy_revision_info"] == [
        "pullgate_policy_revision_info"
    ]
    (policies / "broken.yaml").unlink()
    wait_for(lambda: not d.stub().Status(status).load_errors, "the recovery")
    assert value(scrape(port), "pullgate_policy_last_reload_successful") == 1
    assert d.stop() == 0
    with pytest.raises(OSError):  # the listener closes with the daemon
        scrape(port)


def test_metrics_are_off_by_default(daemons, tmp_path: Path) -> None:
    d = daemons(write_files(tmp_path / "policies", {"tagged.yaml": TAGGED}))
    assert d.verify("ghcr.io/acme/api:v1").ok
    assert listening_tcp(d.process.pid) == set()
    assert not [e for e in d.events() if e.get("event") == "metrics_serving"]


@pytest.mark.parametrize("address", ["9469", "busy"])
def test_a_bad_or_busy_metrics_address_stops_the_daemon(tmp_path: Path, address: str) -> None:
    policies = write_files(tmp_path / "policies", {"tagged.yaml": TAGGED})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        if address == "busy":
            address = f"127.0.0.1:{busy.getsockname()[1]}"
            expected = f"cannot serve metrics on {address}: Address already in use; choose"
        else:
            expected = "metrics.address '9469': write HOST:PORT, e.g. 127.0.0.1:9469"
        with pytest.raises(RuntimeError, match=r"pullgate serve exited 2") as failed:
            start_daemon(tmp_path / "d", policies, config=f"metrics: {{address: '{address}'}}\n")
    assert expected in str(failed.value)


# -- registry requests of a real cosign verification ----------------------------------------


@pytest.fixture(scope="module")
def cosign(tmp_path_factory: pytest.TempPathFactory) -> Cosign:
    return Cosign(cosign_binary(), tmp_path_factory.mktemp("cosign"))


def test_registry_requests_by_status_for_cosign_verifications(
    daemons, registry: Registry, cosign: Cosign, tmp_path: Path
) -> None:
    private, public = cosign.key_pair("release")
    policies = write_files(
        tmp_path / "policies",
        {
            "signed.yaml": doc(
                "signed",
                f'  images: ["{registry.host}/**"]\n  authorities:\n'
                f"    - name: release\n      key: {{path: {public}}}\n",
            )
        },
    )
    port = free_port()
    d = daemons(
        policies,
        config=f"metrics: {{address: '127.0.0.1:{port}'}}\n"
        f"registry: {{insecure: ['{registry.host}'], timeout: 3s}}\n",
    )
    repo = f"team/app-{uuid.uuid4().hex[:6]}"
    signed = registry.push_image(repo, "v1", content="signed")
    unsigned = registry.push_image(repo, "v2", content="unsigned")
    cosign.sign(f"{registry.host}/{repo}@{signed}", private)

    assert d.verify(f"{registry.host}/{repo}:v1", digest=signed).ok
    denied = d.verify(f"{registry.host}/{repo}:v2", digest=unsigned)
    assert not denied.ok and "no cosign signature" in denied.reason
    # another namespace: a new judgement, but the evidence cache answers (no registry request)
    again = d.verify(f"{registry.host}/{repo}:v1", digest=signed, namespace="other")
    assert again.ok and not again.cached and again.policies[0].authorities[0].cached

    s = scrape(port)
    requests = {
        dict(labels)["status"]: v
        for (name, labels), v in s.items()
        if name == "pullgate_registry_requests_total"
    }
    # signed: the .sig manifest and its one payload blob; unsigned: the .sig manifest, 404
    assert requests == {"200": 2, "404": 1}
    cache = "pullgate_evidence_cache_requests_total"
    assert value(s, cache, kind="key", result="miss") == 2
    assert value(s, cache, kind="key", result="hit") == 1
    assert value(s, "pullgate_evidence_cache_entries", kind="key") == 2
    assert value(s, "pullgate_decisions_total", result="allowed", code="ALLOWED") == 2
    assert value(s, "pullgate_decisions_total", result="denied", code="NO_AUTHORITY_VERIFIED") == 1
    assert value(s, "pullgate_stage_duration_seconds_count", stage="evidence") == 3
    schema = documented_schema()
    lines = decisions(d)
    assert [e["evidenceCached"] for e in lines] == [0, 0, 1]
    assert all(schema_errors(e, schema) == [] for e in lines)
