"""Crash safety: SIGKILL the daemon under load and restart it. Meanwhile pullgate-containerd
fails closed (exit 2, with a reason); the new daemon serves the last applied policy revision,
from the state directory when the policy directory is broken or gone by then."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from conftest import KEY_A, doc, indent_pem, write_files
from lab.configmap import publish
from lab.daemon import Daemon, start_daemon
from pullgate.policy import load_policy_dir
from pullgate.reload import PolicyState, Reloader
from pullgate.rules import load_policies
from pullgate.snapshot import PolicySnapshot, SnapshotError
from pullgate.v1 import verifier_pb2 as pb
from test_containerd import descriptor, run

D = "sha256:" + "a" * 64
OPEN = "ghcr.io/open/app:1"
SIGNED = "127.0.0.1:9/signed/app:1"  # nothing listens on port 9: the signatures never verify


def policies() -> dict[str, str]:
    signed = '  images: ["127.0.0.1:9/signed/**"]\n  authorities:\n'
    signed += "    - name: release\n      key:\n        path: keys/release.pub\n"
    return {
        "open.yaml": doc("open", '  images: ["ghcr.io/open/**"]\n'),
        "teams/signed.yaml": doc("signed", signed),
        "keys/release.pub": KEY_A,
    }


def status(d: Daemon) -> pb.StatusResponse:
    return d.stub().Status(pb.StatusRequest(), timeout=10)  # type: ignore[no-any-return]


def verdicts(d: Daemon) -> dict[str, tuple[bool, str, str]]:
    """(ok, reason, revision) of each image, asked over gRPC."""
    out = {}
    for image in (OPEN, SIGNED):
        r = d.verify(image, D)
        out[image] = (r.ok, r.reason, r.policy_revision)
    return out


@dataclass
class Hammer:
    """Clients that keep asking for Verify until stopped; what each answer said."""

    address: str
    answers: list[tuple[str, bool, str]] = field(default_factory=list)  # image, ok, revision
    errors: list[str] = field(default_factory=list)  # status codes of failed calls
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, clients: int = 6) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        return threads

    def _client(self, n: int) -> None:
        image = (OPEN, SIGNED)[n % 2]
        while not self.stop.is_set():
            with grpc.insecure_channel(self.address) as channel:
                stub = pb_grpc_stub(channel)
                while not self.stop.is_set():
                    request = pb.VerifyRequest(image_name=image, descriptor=pb.Descriptor(digest=D))
                    try:
                        r = stub.Verify(request, timeout=5)
                    except grpc.RpcError as exc:
                        self.errors.append(exc.code().name)
                        self.stop.wait(0.02)
                        break  # a new channel: the daemon may be a new process
                    self.answers.append((image, r.ok, r.policy_revision))


def pb_grpc_stub(channel: grpc.Channel):  # type: ignore[no-untyped-def]
    from pullgate.v1 import verifier_pb2_grpc

    return verifier_pb2_grpc.ImageVerifierStub(channel)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Path, Path, list[Daemon]]]:
    """(policy dir, daemon dir, started daemons); every daemon is killed at the end."""
    root = write_files(tmp_path / "policies", policies())
    started: list[Daemon] = []
    yield root, tmp_path / "daemon", started
    for d in started:
        d.stop(signal.SIGKILL)


def kill(d: Daemon) -> None:
    d.process.send_signal(signal.SIGKILL)
    d.process.wait(10)
    assert d.process.returncode == -signal.SIGKILL


def test_sigkill_under_load_fails_closed_then_the_restart_serves_the_same_revision(
    lab: tuple[Path, Path, list[Daemon]],
) -> None:
    root, home, started = lab
    started.append(first := start_daemon(home, root))
    revision = status(first).policy_revision
    before = verdicts(first)
    assert before[OPEN][0] is True and before[SIGNED][0] is False
    assert {rev for _, _, rev in before.values()} == {revision}

    hammer = Hammer(first.address)
    threads = hammer.run()
    try:
        while len(hammer.answers) < 200:
            hammer.stop.wait(0.05)
        kill(first)
        assert first.socket.exists()  # a stale socket: nobody cleaned up
        answered = len(hammer.answers)

        # The gap: containerd asks, and the pull is blocked with a reason.
        gap = run(OPEN, descriptor(D), address=first.address, digest=D)
        assert gap.returncode == 2, gap.stdout + gap.stderr
        assert gap.stdout.startswith("pullgate could not decide (fail closed)")
        assert f"{first.address}: " in gap.stdout and "Connection refused" in gap.stdout

        started.append(second := start_daemon(home, root))
        assert status(second).policy_revision == revision
        assert not status(second).load_errors
        assert verdicts(second) == before
        allowed = run(OPEN, descriptor(D), address=second.address, digest=D)
        assert allowed.returncode == 0 and f"policy revision {revision}" in allowed.stdout
        denied = run(SIGNED, descriptor(D), address=second.address, digest=D)
        assert denied.returncode == 1 and denied.stdout.startswith("denied")
        assert 'policy "signed": no authority verified' in denied.stdout
        while len(hammer.answers) < answered + 200:  # the clients are served again
            hammer.stop.wait(0.05)
    finally:
        hammer.stop.set()
        for t in threads:
            t.join(20)
    assert not any(t.is_alive() for t in threads)
    # Every answer, before and after the crash, came from the one revision, and the signed
    # image was never allowed; calls during the gap failed (clients fail closed on those).
    assert {rev for _, _, rev in hammer.answers} == {revision}
    assert {(image, ok) for image, ok, _ in hammer.answers} == {(OPEN, True), (SIGNED, False)}
    assert set(hammer.errors) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}, hammer.errors
    assert hammer.errors, "no call failed while the daemon was down"
    print(f"\n{len(hammer.answers)} answers, {len(hammer.errors)} failed calls in the gap")


@pytest.mark.parametrize(
    "damage", ["broken", pytest.param("missing", marks=pytest.mark.slow), "emptied"]
)
def test_a_policy_dir_damaged_while_down_serves_the_saved_revision(
    lab: tuple[Path, Path, list[Daemon]], damage: str
) -> None:
    root, home, started = lab
    started.append(first := start_daemon(home, root))
    revision = status(first).policy_revision
    before = verdicts(first)
    kill(first)

    if damage == "broken":
        (root / "open.yaml").write_text("apiVersion: pullgate.dev/v1alpha1\nkind: [\n")
        (root / "keys" / "release.pub").write_text("not a key\n")
    elif damage == "missing":
        shutil.rmtree(root)
    else:
        for path in root.rglob("*.yaml"):
            path.unlink()

    started.append(second := start_daemon(home, root))
    now = status(second)
    assert now.policy_revision == revision
    assert now.policy_dir == str(root)
    assert now.load_errors, "the load error is not reported"
    expected = {
        "broken": "open.yaml:3:1: YAML syntax error",
        "missing": "policy directory does not exist",
        "emptied": "an empty policy set is refused",
    }[damage]
    assert any(expected in e for e in now.load_errors), now.load_errors
    assert verdicts(second) == before
    r = run(OPEN, descriptor(D), address=second.address, digest=D)
    assert r.returncode == 0 and f"policy revision {revision}" in r.stdout
    loud = [e for e in second.events() if e.get("event") == "serving_snapshot"]
    assert len(loud) == 1 and loud[0]["level"] == "error", second.events()
    assert loud[0]["revision"] == revision and loud[0]["errors"]

    if damage != "missing":
        return
    # The directory is fixed with new content: it replaces the saved revision.
    fixed = policies()
    fixed["open.yaml"] = doc("open", '  images: ["ghcr.io/open/**", "ghcr.io/more/**"]\n')
    write_files(root, fixed)
    second.stop(signal.SIGKILL)  # a second crash: the fixed revision is the one saved now
    started.append(third := start_daemon(home, root))
    after = status(third)
    assert after.policy_revision not in ("", revision) and not after.load_errors
    shutil.rmtree(root)
    kill(third)
    started.append(fourth := start_daemon(home, root))
    assert status(fourth).policy_revision == after.policy_revision


@pytest.mark.slow
def test_sigkill_while_revisions_are_saved_never_leaves_a_torn_snapshot(tmp_path: Path) -> None:
    """Kill the daemon while a ConfigMap changes every 20 ms (a save every time), at random
    moments: what is on disk is always one whole applied revision."""
    root = tmp_path / "policies"
    files = {  # a ConfigMap is flat
        "open.yaml": policies()["open.yaml"],
        "signed.yaml": policies()["teams/signed.yaml"].replace("keys/release.pub", "release.pub"),
        "release.pub": KEY_A,
        # many files: each save takes long enough for some kills to land in the middle
        **{
            f"team-{i}.yaml": doc(f"team-{i}", f'  images: ["ghcr.io/team-{i}/**"]\n')
            for i in range(150)
        },
    }
    publish(root, files)
    rng = random.Random(5)
    torn_leftovers = 0
    saved: set[str] = set()
    for attempt in range(6):
        d = start_daemon(tmp_path / "daemon", root)
        stop = threading.Event()

        def churn(stop: threading.Event, attempt: int) -> None:
            for n in itertools.count():
                if stop.wait(0.02):
                    return
                extra = doc("churn", f'  images: ["ghcr.io/churn-{attempt}-{n}/**"]\n')
                publish(root, {**files, "churn.yaml": extra})

        thread = threading.Thread(target=churn, args=(stop, attempt))
        thread.start()
        try:
            time.sleep(rng.uniform(0.3, 1.0))
            kill(d)
        finally:
            stop.set()
            thread.join()
        state = tmp_path / "daemon" / "state"
        linked = os.readlink(state / "snapshot")
        torn_leftovers += sum(
            1 for p in state.iterdir() if p.name.startswith("snapshot-") and p.name != linked
        )
        restored = PolicySnapshot(str(state)).restore(root=str(root), display=str(root))
        assert restored.revision == restored.policies.revision  # the files hash to the meta's
        saved.add(restored.revision)
    assert len(saved) > 1  # the kills landed on different revisions
    print(f"\n6 kills during saves; {torn_leftovers} copies a kill interrupted were left")


def test_the_directory_coming_back_replaces_the_saved_revision(
    lab: tuple[Path, Path, list[Daemon]],
) -> None:
    root, home, started = lab
    started.append(first := start_daemon(home, root))
    revision = status(first).policy_revision
    kill(first)
    shutil.move(root, root.with_name("aside"))
    started.append(second := start_daemon(home, root))
    assert status(second).load_errors
    shutil.move(root.with_name("aside"), root)  # the same content returns
    deadline = threading.Event()
    for _ in range(100):
        now = status(second)
        if not now.load_errors:
            break
        deadline.wait(0.05)
    assert now.policy_revision == revision and not now.load_errors
    applied = [e for e in second.events() if e.get("event") == "policies_applied"]
    assert applied and applied[-1]["revision"] == revision


def test_without_a_snapshot_a_broken_directory_is_not_served(tmp_path: Path) -> None:
    root = tmp_path / "policies"  # never existed
    d = start_daemon(tmp_path / "daemon", root, serving=False)
    try:
        with pytest.raises(grpc.RpcError) as info:
            d.verify(OPEN, D)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no policy set has loaded yet" in (info.value.details() or "")
        events = [e.get("event") for e in d.events()]
        assert "snapshot_unusable" in events and "serving_snapshot" not in events
        r = run(OPEN, descriptor(D), address=d.address, digest=D)
        assert r.returncode == 2 and "no policy set has loaded yet" in r.stdout
    finally:
        d.stop()


def test_state_dir_empty_disables_the_snapshot(lab: tuple[Path, Path, list[Daemon]]) -> None:
    root, home, started = lab
    started.append(first := start_daemon(home, root, config='stateDir: ""\n'))
    assert status(first).policy_revision
    kill(first)
    assert not (home / "state").exists()
    shutil.rmtree(root)
    started.append(start_daemon(home, root, config='stateDir: ""\n', serving=False))
    with pytest.raises(grpc.RpcError) as info:
        started[-1].verify(OPEN, D)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


# -- the snapshot in process -----------------------------------------------------------------


def test_a_snapshot_of_another_directory_is_not_served(tmp_path: Path) -> None:
    one = write_files(tmp_path / "one", policies())
    snap = PolicySnapshot(str(tmp_path / "state"))
    assert snap.save(load_policies(str(one)), root=str(one), display=str(one))
    with pytest.raises(SnapshotError, match=f"is of {one}, not {tmp_path / 'two'}"):
        snap.restore(root=str(tmp_path / "two"), display="two")
    restored = snap.restore(root=str(one), display=str(one))
    assert restored.revision == restored.policies.revision == load_policies(str(one)).revision


def test_the_saved_copy_has_the_directory_layout_and_loads_alone(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", policies())
    write_files(root / ".store", {"extra.yaml": doc("extra", '  images: ["ghcr.io/x/**"]\n')})
    os.symlink(".store/extra.yaml", root / "linked.yaml")  # a symlink becomes a plain file
    loaded = load_policies(str(root), display="/etc/pullgate/policies")
    state = tmp_path / "state"
    assert PolicySnapshot(str(state)).save(loaded, root=str(root), display="/etc/pullgate/policies")
    copy = state / "snapshot" / "policies"
    names = sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file())
    assert names == ["keys/release.pub", "linked.yaml", "open.yaml", "teams/signed.yaml"]
    meta = json.loads((state / "snapshot" / "meta.json").read_text())
    assert meta["revision"] == loaded.revision and meta["root"] == str(root)
    # the copy is a policy directory in its own right
    assert load_policy_dir(copy, display="/etc/pullgate/policies").revision == loaded.revision
    # one copy at a time: a new revision replaces the old one whole
    (root / "open.yaml").write_text(doc("open", '  images: ["ghcr.io/other/**"]\n'))
    newer = load_policies(str(root), display="/etc/pullgate/policies")
    PolicySnapshot(str(state)).save(newer, root=str(root), display="/etc/pullgate/policies")
    current = os.readlink(state / "snapshot")
    assert current.startswith(f"snapshot-{newer.revision}-")
    assert sorted(p.name for p in state.iterdir()) == ["snapshot", current]


class Events(logging.Handler):
    """The events one logger emits (the daemon's loggers may not propagate to caplog)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(name)
        self.fields: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.fields.append(dict(getattr(record, "fields", {})))

    def __enter__(self) -> Events:
        self.logger.addHandler(self)
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)


def test_files_that_changed_after_loading_are_not_saved(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", policies())
    loaded = load_policies(str(root))
    (root / "keys" / "release.pub").write_text(indent_pem(KEY_A, 0) + "\n\n")  # other bytes
    snap = PolicySnapshot(str(tmp_path / "state"))
    with Events("pullgate.snapshot") as seen:
        assert not snap.save(loaded, root=str(root), display=str(root))
    assert seen.fields == [
        {
            "event": "snapshot_skipped",
            "revision": loaded.revision,
            "reason": "the policy files changed while being saved",
        }
    ]
    assert not (tmp_path / "state" / "snapshot").exists()
    with pytest.raises(SnapshotError, match="no snapshot in"):
        snap.restore(root=str(root), display=str(root))


def test_leftovers_of_a_crash_mid_save_are_removed(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", policies())
    state = tmp_path / "state"
    (state / "snapshot-0123456789abcdef-1").mkdir(parents=True)  # written, never swapped in
    (state / "snapshot-0123456789abcdef-1" / "meta.json").write_text("{")
    loaded = load_policies(str(root))
    assert PolicySnapshot(str(state)).save(loaded, root=str(root), display=str(root))
    assert [p.name for p in state.iterdir() if p.name != "snapshot"] == [
        os.readlink(state / "snapshot")
    ]


def test_an_unwritable_state_dir_is_reported_and_serving_goes_on(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", policies())
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the state directory should be: even root cannot
    state = PolicyState()
    reloader = Reloader(str(root), state, snapshot=PolicySnapshot(str(blocker / "state")))
    with Events("pullgate.reload") as seen:
        reloader.start()
        reloader.stop()
    assert state.current is not None and state.failure is None
    (failed,) = [f for f in seen.fields if f.get("event") == "snapshot_failed"]
    assert failed["revision"] == state.current.revision
    assert "Not a directory" in str(failed["reason"]), failed
