"""Shadow policies (issue 8): a candidate policy set judged beside the live one on real
requests, through the real daemon over real gRPC. It counts and logs every difference
(``would_deny``, ``would_allow``), never changes a live judgement, is off and reported when
its directory does not load, follows its directory live, and never makes a live answer wait
for its registry work."""

from __future__ import annotations

import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from conftest import doc, key, write_files
from lab.daemon import BIN, Daemon, start_daemon
from lab.registry import free_port
from lab.silent import silent_server
from pullgate.config import Config, ConfigError, RegistryConfig, load_config
from pullgate.decide import Decider, Options
from pullgate.judgement import Judgement
from pullgate.request import Descriptor, Request
from pullgate.shadow import WOULD_ALLOW, WOULD_DENY, Shadow
from pullgate.v1 import verifier_pb2 as pb
from pullgate.verifiers.configure import build_verifiers

StartDaemon = Callable[..., Daemon]

PROD_ONLY = (
    '  rules:\n    - name: prod-only\n      expr: request.namespace.startsWith("prod-")\n'
    "      message: runs only in prod-* namespaces\n"
)
# Live: everything from ghcr.io/acme is allowed; anything else is denied by default.
LIVE = {"live.yaml": doc("acme", '  images: ["ghcr.io/acme/**"]\n')}
# The candidate: acme images only in prod-* namespaces (stricter), and beta images there too
# (looser: the live set denies them).
SHADOW = {
    "shadow.yaml": doc("acme", '  images: ["ghcr.io/acme/**"]\n' + PROD_ONLY)
    + doc("beta", '  images: ["ghcr.io/beta/**"]\n' + PROD_ONLY)
}
BROKEN = {"shadow.yaml": doc("acme", '  images: ["ghcr.io/acme/**"]\n  rules: [\n')}


def digest(i: int) -> str:
    return "sha256:" + f"{i:064x}"


# (image, namespace, what the shadow says relative to the live set): "" when they agree.
STREAM: list[tuple[str, str, str]] = [
    *[(f"ghcr.io/acme/app{i}", "prod-eu", "") for i in range(6)],  # both allow
    *[(f"ghcr.io/acme/app{i}", "dev", WOULD_DENY) for i in range(4)],  # live allows
    ("ghcr.io/acme/app0", "dev", WOULD_DENY),  # a repeat: a cached live judgement
    *[(f"ghcr.io/beta/svc{i}", "prod-us", WOULD_ALLOW) for i in range(3)],  # live denies
    *[(f"ghcr.io/beta/svc{i}", "team-a", "") for i in range(4)],  # both deny
    ("quay.io/other/x", "prod-eu", ""),  # both deny: no policy selects it
    ("ghcr.io/acme/app1", "", WOULD_DENY),  # namespace unknown: the rule is false
]
N = len(STREAM)
K = sum(kind == WOULD_DENY for *_, kind in STREAM)
J = sum(kind == WOULD_ALLOW for *_, kind in STREAM)


def request(i: int, image: str, namespace: str) -> pb.VerifyRequest:
    # The repeat (same image and namespace as an earlier entry) keeps that entry's digest.
    first = next(n for n, (im, ns, _) in enumerate(STREAM) if (im, ns) == (image, namespace))
    return pb.VerifyRequest(
        image_name=image, descriptor=pb.Descriptor(digest=digest(first)), namespace=namespace
    )


def send_stream(d: Daemon) -> list[pb.VerifyResponse]:
    stub = d.stub()
    return [stub.Verify(request(i, im, ns), timeout=10) for i, (im, ns, _) in enumerate(STREAM)]


def status(d: Daemon) -> pb.StatusResponse:
    return d.stub().Status(pb.StatusRequest(), timeout=5)


def wait_for(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The daemon's /metrics, by sample name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def shadow_config(shadow: Path) -> str:
    return f"shadowPolicies: {shadow}\n"


def events(d: Daemon, name: str) -> list[dict[str, Any]]:
    return [e for e in d.events() if e.get("event") == name]


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return write_files(tmp_path / "live", LIVE)


# -- the stream with known differences --------------------------------------------------------


def test_a_stream_with_known_differences_is_counted_and_logged(
    daemons: StartDaemon, live: Path, tmp_path: Path
) -> None:
    shadow_dir = write_files(tmp_path / "shadow", SHADOW)
    port = free_port()
    d = daemons(
        live, config=shadow_config(shadow_dir) + f"metrics: {{address: '127.0.0.1:{port}'}}\n"
    )
    plain = daemons(live)  # the same live set, no shadow
    answers = send_stream(d)
    expected = send_stream(plain)

    # Every live judgement is the one a daemon without a shadow gives.
    assert [(a.ok, a.code, a.reason, a.policy_revision) for a in answers] == [
        (a.ok, a.code, a.reason, a.policy_revision) for a in expected
    ]
    assert [a.ok for a in answers] == [im.startswith("ghcr.io/acme/") for im, _, _ in STREAM]
    assert answers[10].cached  # the repeat was answered from the judgement cache

    wait_for(lambda: status(d).shadow_evaluations == N)
    s = status(d)
    assert (s.shadow_would_deny, s.shadow_would_allow, s.shadow_errors, s.shadow_dropped) == (
        K,
        J,
        0,
        0,
    )
    assert (K, J) == (6, 3)
    assert s.shadow_dir == str(shadow_dir) and s.shadow_policies == 2
    assert len(s.shadow_revision) == 16 and s.shadow_revision != s.policy_revision
    assert not s.shadow_load_errors and not s.load_errors
    # The live part of Status is what it was.
    assert s.policy_revision == answers[0].policy_revision and s.policies == 1

    lines = events(d, "shadow_difference")
    by_id = {a.decision_id: (i, a) for i, a in enumerate(answers)}
    assert len(lines) == K + J
    for line in lines:
        i, live_answer = by_id[line["decisionId"]]
        image, namespace, kind = STREAM[i]
        assert line["kind"] == kind
        assert line["logger"] == "pullgate.shadow" and line["level"] == "info"
        assert line["image"] == image and line["namespace"] == namespace
        assert line["digest"] == request(i, image, namespace).descriptor.digest
        assert line["liveRevision"] == live_answer.policy_revision
        assert line["shadowRevision"] == s.shadow_revision
        assert (line["liveOk"], line["liveCode"], line["liveReason"]) == (
            live_answer.ok,
            live_answer.code,
            live_answer.reason,
        )
        assert line["shadowOk"] is (kind == WOULD_ALLOW)
        if kind == WOULD_DENY:
            assert line["liveCode"] == "ALLOWED" and line["shadowCode"] == "RULE_FAILED"
            assert line["shadowReason"] == (
                'denied: policy "acme" rule "prod-only" failed: runs only in prod-* namespaces'
            )
        else:
            assert line["liveCode"] == "NO_POLICY_SELECTED"
            assert line["shadowCode"] == "ALLOWED"
            assert line["shadowReason"] == 'allowed by policy "beta"'
    assert sorted(line["kind"] for line in lines) == sorted(k for *_, k in STREAM if k)

    # The shadow writes no decision lines: one per live request, as without a shadow.
    assert len(events(d, "decision")) == N == len(events(plain, "decision"))
    assert {e["policyRevision"] for e in events(d, "decision")} == {s.policy_revision}
    # Its reload events are its own; the live set's are not repeated for it.
    assert [e["revision"] for e in events(d, "shadow_policies_applied")] == [s.shadow_revision]
    assert [e["revision"] for e in events(d, "policies_applied")] == [s.policy_revision]

    # The metrics count the same; the shadow adds no judgements and no policy reloads to them.
    samples = scrape(port)
    assert samples[("pullgate_shadow_evaluations_total", frozenset())] == N
    for kind, count in ((WOULD_DENY, K), (WOULD_ALLOW, J)):
        labels = frozenset({("kind", kind)})
        assert samples[("pullgate_shadow_differences_total", labels)] == count
    decisions = sum(v for (name, _), v in samples.items() if name == "pullgate_decisions_total")
    assert decisions == N
    reloads = frozenset({("result", "success")})
    assert samples[("pullgate_policy_reloads_total", reloads)] == 1

    # pullgate status shows the counts, and the shadow never changes its exit code.
    r = subprocess.run(
        [str(BIN / "pullgate"), "status", "--server", d.address],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert (
        f"shadow revision {s.shadow_revision} (2 policies from {shadow_dir}): {N} requests "
        f"judged by both, {K} would be denied, {J} would be allowed, 0 errors, 0 dropped"
    ) in r.stdout
    r = subprocess.run(
        [str(BIN / "pullgate"), "status", "--server", plain.address],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0 and "shadow" not in r.stdout
    assert status(plain).shadow_dir == "" and status(plain).shadow_evaluations == 0


def test_the_same_set_as_shadow_finds_no_difference(daemons: StartDaemon, live: Path) -> None:
    """The live directory as its own shadow: every request is judged twice and none differs
    (a check that the comparison is not biased towards finding differences)."""
    d = daemons(live, config=shadow_config(live))
    send_stream(d)
    wait_for(lambda: status(d).shadow_evaluations == N)
    s = status(d)
    assert (s.shadow_would_deny, s.shadow_would_allow, s.shadow_errors) == (0, 0, 0)
    assert s.shadow_revision == s.policy_revision
    assert events(d, "shadow_difference") == []


# -- a shadow directory that does not load ----------------------------------------------------


@pytest.mark.parametrize("how", ["broken", "missing"])
def test_a_shadow_that_does_not_load_is_off_and_reported(
    daemons: StartDaemon, live: Path, tmp_path: Path, how: str
) -> None:
    shadow_dir = tmp_path / "shadow"
    if how == "broken":
        write_files(shadow_dir, BROKEN)
    d = daemons(live, config=shadow_config(shadow_dir))
    plain = daemons(live)
    assert d.health() == health_pb2.HealthCheckResponse.SERVING
    answers = send_stream(d)
    expected = send_stream(plain)
    assert [(a.ok, a.code, a.reason) for a in answers] == [
        (a.ok, a.code, a.reason) for a in expected
    ]
    s = status(d)
    assert s.policy_revision and not s.load_errors  # the live set is fine
    assert s.shadow_dir == str(shadow_dir) and s.shadow_revision == "" and s.shadow_policies == 0
    assert s.shadow_evaluations == s.shadow_would_deny == s.shadow_would_allow == 0
    assert s.shadow_load_errors
    if how == "broken":
        assert s.shadow_load_errors[0].startswith(f"{shadow_dir}/shadow.yaml:")
    rejected = events(d, "shadow_policies_rejected")
    assert len(rejected) == 1 and rejected[0]["logger"] == "pullgate.shadow"
    assert rejected[0]["errors"] == list(s.shadow_load_errors)
    assert events(d, "policies_rejected") == []  # nothing says the live set was rejected
    started = events(d, "shadow_started")
    assert len(started) == 1 and started[0]["active"] is False and started[0]["level"] == "warning"

    r = subprocess.run(
        [str(BIN / "pullgate"), "status", "--server", d.address],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stdout  # a broken shadow is not a serving problem
    assert f"shadow off: no policy set from {shadow_dir} has loaded" in r.stdout
    assert f"last shadow load rejected:\n  {s.shadow_load_errors[0]}" in r.stdout


# -- hot reload --------------------------------------------------------------------------------


def test_the_shadow_directory_reloads_live(
    daemons: StartDaemon, live: Path, tmp_path: Path
) -> None:
    shadow_dir = write_files(tmp_path / "shadow", BROKEN)
    d = daemons(live, config=shadow_config(shadow_dir))
    stub = d.stub()
    dev = pb.VerifyRequest(
        image_name="ghcr.io/acme/app", descriptor=pb.Descriptor(digest=digest(1)), namespace="dev"
    )
    assert stub.Verify(dev, timeout=10).ok
    assert status(d).shadow_revision == ""

    # Fixed: the shadow starts judging, and finds the difference.
    write_files(shadow_dir, SHADOW)
    wait_for(lambda: status(d).shadow_revision != "")
    first = status(d)
    assert not first.shadow_load_errors and first.shadow_evaluations == 0
    assert stub.Verify(dev, timeout=10).ok
    wait_for(lambda: status(d).shadow_evaluations == 1)
    assert status(d).shadow_would_deny == 1

    # Broken again: the last good shadow set keeps judging; the errors are reported.
    write_files(shadow_dir, BROKEN)
    wait_for(lambda: bool(status(d).shadow_load_errors))
    assert status(d).shadow_revision == first.shadow_revision
    assert stub.Verify(dev, timeout=10).ok
    wait_for(lambda: status(d).shadow_evaluations == 2)
    assert status(d).shadow_would_deny == 2

    # A new candidate that allows dev too: no more differences, new revision.
    write_files(shadow_dir, {"shadow.yaml": LIVE["live.yaml"]})
    wait_for(lambda: status(d).shadow_revision not in ("", first.shadow_revision))
    s = status(d)
    assert not s.shadow_load_errors
    assert s.shadow_policies == 1
    assert stub.Verify(dev, timeout=10).ok
    wait_for(lambda: status(d).shadow_evaluations == 3)
    assert status(d).shadow_would_deny == 2
    applied = events(d, "shadow_policies_applied")
    assert [e["revision"] for e in applied] == [first.shadow_revision, s.shadow_revision]
    assert [e["revision"] for e in events(d, "policies_applied")] == [s.policy_revision]


# -- a slow shadow never slows live answers ------------------------------------------------


def test_a_slow_shadow_does_not_slow_live_answers(daemons: StartDaemon, tmp_path: Path) -> None:
    """The shadow requires a signature from a registry that accepts connections and never
    answers, so each shadow judgement takes the whole registry.timeout (5 s). 300 requests
    for distinct digests: every live answer comes without waiting for it, the shadow's two
    workers and its queue of 256 fill up and the rest is dropped and counted."""
    with silent_server() as host:
        images = f'  images: ["{host}/**"]\n'
        live = write_files(tmp_path / "live", {"p.yaml": doc("open", images)})
        shadow_dir = write_files(
            tmp_path / "shadow",
            {"p.yaml": doc("signed", images + f"  authorities:{key('release')}\n")},
        )
        d = daemons(
            live,
            config=shadow_config(shadow_dir)
            + f"registry: {{insecure: ['{host}'], timeout: 5s, retries: 0}}\n",
        )
        stub = d.stub()
        total, slowest = 300, 0.0
        for i in range(total):
            started = time.monotonic()
            answer = stub.Verify(
                pb.VerifyRequest(
                    image_name=f"{host}/acme/app", descriptor=pb.Descriptor(digest=digest(i))
                ),
                timeout=10,
            )
            slowest = max(slowest, time.monotonic() - started)
            assert answer.ok and answer.reason == 'allowed by policy "open"'
            # An answer that waited for a shadow judgement would take registry.timeout.
            assert slowest < 5.0, f"request {i} took {slowest:.1f} s"
        s = status(d)
        finished = s.shadow_evaluations + s.shadow_errors
        # At most 2 in the workers and 256 queued; everything else was dropped.
        assert total - 256 - 2 - finished <= s.shadow_dropped <= total - 256
        assert s.shadow_dropped > 0
        assert s.shadow_revision and s.shadow_errors == 0
        # The first shadow judgements end when the registry budget runs out: would deny.
        wait_for(lambda: status(d).shadow_would_deny >= 2, within=15)
        line = events(d, "shadow_difference")[0]
        assert line["kind"] == WOULD_DENY and line["liveCode"] == "ALLOWED"
        assert line["shadowCode"] == "NO_AUTHORITY_VERIFIED"
        assert "registry.timeout is 5 s" in line["shadowReason"], line["shadowReason"]
        dropped = events(d, "shadow_dropped")
        assert len(dropped) == 1 and dropped[0]["level"] == "warning"  # logged once a minute
        assert dropped[0]["queue"] == 256
        # Stopping does not wait for the stuck shadow judgements beyond the drain.
        started = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - started < 10  # server.drain 2 s + shadow stop 1 s, generous
    assert events(d, "stopped")


# -- the CLI flag and the config key -----------------------------------------------------


def test_serve_shadow_policies_flag(live: Path, tmp_path: Path) -> None:
    shadow_dir = write_files(tmp_path / "shadow", SHADOW)
    d = start_daemon(tmp_path / "d", live)  # writes the config; restarted below with the flag
    d.stop()
    process = subprocess.Popen(
        [
            str(BIN / "pullgate"),
            "serve",
            "--config",
            str(d.config),
            "--shadow-policies",
            str(shadow_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=d.log.open("wb"),
    )
    flagged = Daemon(process, d.socket, d.log, d.config)
    try:
        wait_for(lambda: d.socket.exists() and _serving(flagged), within=20)
        assert status(flagged).shadow_dir == str(shadow_dir)
        assert flagged.verify("ghcr.io/acme/app", namespace="dev").ok
        wait_for(lambda: status(flagged).shadow_would_deny == 1)
    finally:
        assert flagged.stop() == 0


def _serving(d: Daemon) -> bool:
    try:
        return d.health() == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def test_the_shadow_policies_config_key(tmp_path: Path) -> None:
    path = tmp_path / "pullgate.yaml"
    path.write_text("shadowPolicies: /etc/pullgate/candidate\n")
    assert load_config(path).shadow_policies == "/etc/pullgate/candidate"
    assert Config().shadow_policies == ""
    path.write_text('shadowPolicies: ""\n')
    assert load_config(path).shadow_policies == ""
    path.write_text("shadowPolicies: [a]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value.issues[0]).startswith(f"{path}:1:17: shadowPolicies")


# -- in process: the queue bound, the metrics hook -------------------------------------------


@pytest.fixture
def shadow_metrics(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[object, ...]]]:
    """A ``pullgate.metrics`` that records the calls (the real module may not exist yet)."""
    calls: list[tuple[str, tuple[object, ...]]] = []
    module = types.ModuleType("pullgate.metrics")
    module.shadow_evaluated = lambda *a: calls.append(("shadow_evaluated", a))  # type: ignore[attr-defined]
    module.shadow_difference = lambda *a: calls.append(("shadow_difference", a))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pullgate.metrics", module)
    return calls


def _live(ok: bool, image: str = "ghcr.io/acme/app") -> Judgement:
    return Judgement(
        ok=ok,
        reason="live reason",
        decision_id="0123456789abcdef",
        policy_revision="live-revision",
        image=image,
        digest=digest(1),
        code="ALLOWED" if ok else "NO_POLICY_SELECTED",
    )


@pytest.fixture
def started() -> Iterator[Callable[[Shadow], Shadow]]:
    shadows: list[Shadow] = []

    def start(shadow: Shadow) -> Shadow:
        shadow.start()
        shadows.append(shadow)
        return shadow

    yield start
    for shadow in shadows:
        shadow.stop()


def test_metrics_hooks_are_called_per_evaluation_and_difference(
    tmp_path: Path,
    shadow_metrics: list[tuple[str, tuple[object, ...]]],
    started: Callable[[Shadow], Shadow],
) -> None:
    shadow_dir = write_files(tmp_path / "shadow", SHADOW)
    shadow = started(Shadow(str(shadow_dir), Decider(log=None), Config()))
    same = Request("ghcr.io/acme/app", Descriptor(digest=digest(1)), namespace="prod-eu")
    deny = Request("ghcr.io/acme/app", Descriptor(digest=digest(1)), namespace="dev")
    allow = Request("ghcr.io/beta/app", Descriptor(digest=digest(1)), namespace="prod-eu")
    shadow.offer(same, _live(True))
    shadow.offer(deny, _live(True))
    shadow.offer(allow, _live(False, "ghcr.io/beta/app"))
    wait_for(lambda: shadow.status().evaluations == 3)
    assert sorted(shadow_metrics) == sorted(
        [("shadow_evaluated", ())] * 3
        + [("shadow_difference", (WOULD_DENY,)), ("shadow_difference", (WOULD_ALLOW,))]
    )


def test_without_a_metrics_module_the_shadow_still_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: Callable[[Shadow], Shadow]
) -> None:
    monkeypatch.setitem(sys.modules, "pullgate.metrics", None)  # import raises ImportError
    shadow_dir = write_files(tmp_path / "shadow", SHADOW)
    shadow = started(Shadow(str(shadow_dir), Decider(log=None), Config()))
    shadow.offer(
        Request("ghcr.io/acme/a", Descriptor(digest=digest(2)), namespace="dev"), _live(True)
    )
    wait_for(lambda: shadow.status().evaluations == 1)
    s = shadow.status()
    assert (s.would_deny, s.would_allow, s.errors) == (1, 0, 0)


def test_a_full_queue_drops_without_blocking(
    tmp_path: Path, started: Callable[[Shadow], Shadow]
) -> None:
    """One worker stuck in a registry that never answers, a queue of 3: of 10 more requests
    3 wait and 7 are dropped; offering never waits for the worker."""
    with silent_server() as host:
        config = Config(registry=RegistryConfig(insecure=(host,), timeout=30.0, retries=0))
        shadow_dir = write_files(
            tmp_path / "shadow",
            {"p.yaml": doc("signed", f'  images: ["{host}/**"]\n  authorities:{key("release")}\n')},
        )
        decider = Decider(build_verifiers(config), options=Options(registry_timeout=30.0), log=None)
        shadow = started(Shadow(str(shadow_dir), decider, config, workers=1, queue_size=3))
        live = _live(True, f"{host}/app")

        def offer(i: int) -> None:
            shadow.offer(Request(f"{host}/app", Descriptor(digest=digest(i))), live)

        offer(0)
        wait_for(lambda: shadow._queue.qsize() == 0)  # the worker took it, and is stuck
        for i in range(1, 11):
            offer(i)
        s = shadow.status()
        assert (s.dropped, s.evaluations, s.errors) == (7, 0, 0)
        assert shadow._queue.qsize() == 3


def test_offer_is_a_no_op_while_the_shadow_is_off(
    tmp_path: Path, started: Callable[[Shadow], Shadow]
) -> None:
    shadow = started(Shadow(str(tmp_path / "absent"), Decider(log=None), Config()))
    assert shadow.state.current is None and shadow.status().load_errors
    for i in range(1000):  # far more than the queue holds: nothing queued, nothing dropped
        shadow.offer(Request("ghcr.io/acme/a", Descriptor(digest=digest(i))), _live(True))
    s = shadow.status()
    assert (s.evaluations, s.dropped, s.errors, s.revision) == (0, 0, 0, "")
    assert shadow._queue.qsize() == 0


def test_the_status_fields_are_additive() -> None:
    fields = {f.name: f.number for f in pb.StatusResponse.DESCRIPTOR.fields}
    assert fields == {
        "policy_revision": 1,
        "policy_dir": 2,
        "policies": 3,
        "loaded_at": 4,
        "load_errors": 5,
        "failed_at": 6,
        "shadow_dir": 7,
        "shadow_revision": 8,
        "shadow_policies": 9,
        "shadow_load_errors": 10,
        "shadow_evaluations": 11,
        "shadow_would_deny": 12,
        "shadow_would_allow": 13,
        "shadow_errors": 14,
        "shadow_dropped": 15,
    }
