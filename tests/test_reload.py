"""Live reload with real inotify (and the polling fallback): each way a directory changes in
practice reaches the decisions within 2 s; bad updates change nothing and are reported; under
load every answer comes from one complete policy set."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from conftest import KEY_A, KEY_B, write_files
from lab.configmap import publish
from pullgate.decide import Decider
from pullgate.reload import PolicyState, Reloader
from pullgate.request import Descriptor, Request

D = "sha256:" + "c" * 64
WITHIN = 2.0  # seconds: the issue's bound for a change to reach decisions


def policy(name: str, expr: str, message: str = "") -> str:
    return f"""apiVersion: pullgate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: {name}}}
spec:
  images: ["ghcr.io/acme/**"]
  rules:
    - name: r
      expr: '{expr}'
      message: "{message or name}"
"""


ALLOW = policy("gate", "true", "allowed version")
DENY = policy("gate", "false", "denied version")
BROKEN = policy("gate", "image.tagg == 1")


def decide(state: PolicyState) -> bool:
    assert state.current is not None
    j = Decider(log=None).decide(state.current, Request("ghcr.io/acme/app", Descriptor(digest=D)))
    return j.ok


@pytest.fixture
def follow(tmp_path: Path):  # type: ignore[no-untyped-def]
    reloaders: list[Reloader] = []

    def start(root: Path, **kwargs: object) -> tuple[PolicyState, Reloader]:
        state = PolicyState()
        r = Reloader(str(root), state, debounce=0.05, **kwargs)  # type: ignore[arg-type]
        r.start()
        reloaders.append(r)
        return state, r

    yield start
    for r in reloaders:
        r.stop()


def wait_for(check: Callable[[], bool], within: float = WITHIN) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"not within {within} s")


def test_configmap_update(tmp_path: Path, follow) -> None:
    root = tmp_path / "policies"
    publish(root, {"gate.yaml": ALLOW})
    state, _ = follow(root)
    first = state.current
    assert first is not None and decide(state)
    publish(root, {"gate.yaml": DENY})
    wait_for(lambda: state.current is not first and not decide(state))
    assert state.failure is None


def test_editor_save_temp_and_rename(tmp_path: Path, follow) -> None:
    root = write_files(tmp_path / "policies", {"gate.yaml": ALLOW})
    state, _ = follow(root)
    tmp = root / ".gate.yaml.swp"
    tmp.write_text(DENY)
    os.replace(tmp, root / "gate.yaml")
    wait_for(lambda: not decide(state))


def test_in_place_write(tmp_path: Path, follow) -> None:
    root = write_files(tmp_path / "policies", {"gate.yaml": ALLOW})
    state, _ = follow(root)
    with open(root / "gate.yaml", "w") as f:
        f.write(DENY)
    wait_for(lambda: not decide(state))


def test_new_file_in_a_subdirectory(tmp_path: Path, follow) -> None:
    root = write_files(tmp_path / "policies", {"gate.yaml": ALLOW})
    state, _ = follow(root)
    write_files(root / "team", {"more.yaml": DENY.replace("name: gate", "name: more")})
    wait_for(lambda: not decide(state))


def test_directory_deleted_and_recreated(tmp_path: Path, follow) -> None:
    root = write_files(tmp_path / "policies", {"gate.yaml": ALLOW})
    state, _ = follow(root)
    revision = state.current.revision
    shutil.rmtree(root)
    wait_for(lambda: state.failure is not None)  # reported, and the last good set stays
    assert state.current is not None and state.current.revision == revision and decide(state)
    assert "policy directory does not exist" in str(state.failure.issues[0])
    write_files(root, {"gate.yaml": DENY})
    wait_for(lambda: state.current.revision != revision and not decide(state))
    assert state.failure is None
    with open(root / "gate.yaml", "w") as f:  # and the new directory is watched
        f.write(ALLOW)
    wait_for(lambda: decide(state))


def test_directory_swapped_by_rename(tmp_path: Path, follow) -> None:
    root = write_files(tmp_path / "policies", {"gate.yaml": ALLOW})
    state, _ = follow(root)
    staged = write_files(tmp_path / "staged", {"gate.yaml": DENY})
    os.rename(root, tmp_path / "old")
    os.rename(staged, root)
    wait_for(lambda: not decide(state))
    (root / "gate.yaml").write_text(ALLOW)
    wait_for(lambda: decide(state))


def test_an_invalid_update_changes_nothing_and_is_reported(
    tmp_path: Path, follow, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "policies"
    publish(root, {"gate.yaml": ALLOW})
    state, _ = follow(root)
    good = state.current

    def rejected() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if getattr(r, "fields", {}).get("event") == "policies_rejected"
        ]

    with caplog.at_level("ERROR", logger="pullgate.reload"):
        publish(root, {"gate.yaml": BROKEN})
        wait_for(lambda: state.failure is not None and bool(rejected()))
    assert state.current is good and decide(state)
    (issue,) = state.failure.issues
    assert str(issue).startswith(f"{root}/gate.yaml:8:20: rule 'r': image has no field 'tagg'")
    (record,) = rejected()
    assert record.fields["keeping"] == good.revision
    assert record.fields["errors"] == [str(issue)]
    publish(root, {"gate.yaml": DENY})  # the next good update applies and clears the failure
    wait_for(lambda: state.failure is None and not decide(state))


def test_a_key_file_referenced_by_path_is_followed(tmp_path: Path, follow) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "release.pub").write_text(KEY_A)
    text = f"""apiVersion: pullgate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: gate}}
spec:
  images: ["ghcr.io/acme/**"]
  authorities:
    - name: release
      key: {{path: {keys / "release.pub"}}}
"""
    root = write_files(tmp_path / "policies", {"gate.yaml": text})
    state, _ = follow(root, interval=0.2)  # the key is outside the watched directory
    before = state.current
    (keys / "release.pub").write_text(KEY_B)
    wait_for(lambda: state.current is not before)
    (fingerprint,) = [a.fingerprint for a in state.current.policies[0].policy.authorities]
    assert fingerprint != before.policies[0].policy.authorities[0].fingerprint


def test_polling_observer_fallback(tmp_path: Path, follow) -> None:
    root = tmp_path / "policies"
    publish(root, {"gate.yaml": ALLOW})
    state, reloader = follow(root, polling=True)
    assert reloader.polling
    publish(root, {"gate.yaml": DENY})
    wait_for(lambda: not decide(state))


def test_the_periodic_rescan_catches_what_events_miss(tmp_path: Path, follow) -> None:
    root = write_files(tmp_path / "policies", {"gate.yaml": ALLOW})
    state, reloader = follow(root, interval=0.3)
    reloader._observer.stop()  # no more events at all
    reloader._observer.join()
    (root / "gate.yaml").write_text(DENY)
    wait_for(lambda: not decide(state))


def test_unchanged_content_is_not_recompiled(tmp_path: Path, follow) -> None:
    root = write_files(tmp_path / "policies", {"gate.yaml": ALLOW})
    state, reloader = follow(root)
    current = state.current
    os.utime(root / "gate.yaml")  # an event, same bytes
    (root / "gate.yaml").write_text(ALLOW)
    time.sleep(0.5)
    assert state.current is current
    assert reloader.rescan() is False


def test_verify_under_load_during_reloads(daemons, tmp_path: Path) -> None:
    """200+ concurrent Verify calls across 20 ConfigMap swaps: every answer comes from one
    complete revision, and each revision always answers the same way."""
    version_a = {"one.yaml": policy("one", "true"), "two.yaml": policy("two", "true")}
    version_b = {
        "one.yaml": policy("one", "false", "version B one"),
        "two.yaml": policy("two", "false", "version B two"),
    }
    root = tmp_path / "policies"
    publish(root, version_a)
    d = daemons(root)
    stub = d.stub()
    stop = threading.Event()
    answers: list[tuple[str, bool, str]] = []
    errors: list[grpc.RpcError] = []

    def client() -> None:
        from lab.daemon import DIGEST
        from pullgate.v1 import verifier_pb2 as pb

        request = pb.VerifyRequest(
            image_name="ghcr.io/acme/app", descriptor=pb.Descriptor(digest=DIGEST)
        )
        while not stop.is_set():
            try:
                r = stub.Verify(request, timeout=10)
                answers.append((r.policy_revision, r.ok, r.reason))
            except grpc.RpcError as exc:
                errors.append(exc)

    with ThreadPoolExecutor(16) as pool:
        for _ in range(16):
            pool.submit(client)
        for i in range(20):
            publish(root, version_b if i % 2 == 0 else version_a)
            time.sleep(0.15)
        wait_for(lambda: len(answers) >= 200, within=30)
        stop.set()
    assert errors == []
    assert len(answers) >= 200
    by_revision: dict[str, set[tuple[bool, str]]] = {}
    for revision, ok, reason in answers:
        by_revision.setdefault(revision, set()).add((ok, reason))
    assert 1 <= len(by_revision) <= 2, by_revision.keys()
    for outcomes in by_revision.values():
        assert len(outcomes) == 1, outcomes  # one complete set: never half A, half B
    verdicts = {next(iter(o)) for o in by_revision.values()}
    assert verdicts <= {
        (True, 'allowed by policies "one", "two"'),
        (False, 'denied: policy "one" rule "r" failed: version B one (and 1 more failing policy)'),
    }
    applied = [e for e in d.events() if e.get("event") == "policies_applied"]
    assert len(applied) >= 10  # swaps were applied, not coalesced into nothing


@pytest.mark.parametrize(
    ("rel", "visible"),
    [
        (".", True),
        ("policy.yaml", True),
        ("team/policy.yaml", True),
        ("..data", True),  # the ConfigMap swap
        ("..data_tmp", False),
        ("..2026_11_27_00_00_00.000", False),
        ("..2026_11_27_00_00_00.000/policy.yaml", False),
        (".policy.yaml.swp", False),  # an editor's temp file; its rename to policy.yaml counts
        ("team/.hidden/p.yaml", False),
    ],
)
def test_only_changes_the_loader_can_see_are_hints(rel: str, visible: bool) -> None:
    from pullgate.reload import _visible

    root = "/etc/pullgate/policies"
    assert _visible(os.path.normpath(os.path.join(root, rel)), root) is visible
