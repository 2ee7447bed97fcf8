"""pullgate-containerd run exactly as containerd's bindir plugin runs it: argv, a JSON
descriptor on stdin (with the trailing newline Go's encoder writes), a timeout, and the exit
code and one stdout line containerd acts on."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import doc, key, write_files
from lab.daemon import BIN
from lab.silent import silent_server

D = "sha256:" + "e" * 64
OTHER = "sha256:" + "f" * 64
DESCRIPTOR_TYPE = "application/vnd.oci.descriptor.v1+json"
INPUT_TYPE = "application/vnd.containerd.image-verifier.input.v1+json"

POLICIES = {
    "p.yaml": doc("open", '  images: ["ghcr.io/open/**"]\n')
    + doc("signed", f'  images: ["127.0.0.1:9/signed/**"]\n  authorities:{key("release")}\n')
    + doc(
        "team-pods",
        '  images: ["ghcr.io/team/**"]\n  rules:\n    - name: team-namespace\n'
        '      expr: \'request.namespace == "team-a" && request.pod.name != ""\'\n'
        "      message: team images run only in team-a pods\n",
    )
}


def descriptor(digest: str = D, **extra: object) -> dict[str, object]:
    return {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest,
        "size": 1234,
        **extra,
    }


def run(
    name: str,
    stdin: bytes | dict[str, object],
    *,
    address: str,
    digest: str = D,
    media_type: str = DESCRIPTOR_TYPE,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    data = stdin if isinstance(stdin, bytes) else (json.dumps(stdin) + "\n").encode()
    args = (
        argv
        if argv is not None
        else ["-name", name, "-digest", digest, "-stdin-media-type", media_type]
    )
    r = subprocess.run(
        [str(BIN / "pullgate-containerd"), *args, *extra],
        input=data,
        capture_output=True,
        timeout=15,  # containerd's per_verifier_timeout is 10 s
        env={"PATH": "/usr/bin:/bin", "PULLGATE_ADDRESS": address, **(env or {})},
        check=False,
    )
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


@pytest.fixture
def daemon(daemons, tmp_path: Path):  # type: ignore[no-untyped-def]
    return daemons(write_files(tmp_path / "policies", POLICIES))


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.stdout.count("\n") == 1, r.stdout
    return r.stdout.rstrip("\n")


def test_allow(daemon) -> None:
    r = run("ghcr.io/open/app:1", descriptor(), address=daemon.address)
    assert r.returncode == 0, r.stdout + r.stderr
    line = one_line(r)
    assert line.startswith('allowed by policy "open" [ALLOWED, pullgate decision ')
    assert "policy revision " in line
    assert "exit 0 after" in r.stderr


def test_deny_with_the_reason(daemon) -> None:
    r = run("127.0.0.1:9/signed/app:1", descriptor(), address=daemon.address)
    assert r.returncode == 1
    assert one_line(r).startswith(
        'denied: policy "signed": no authority verified (release: cannot fetch the cosign '
        f"signatures of 127.0.0.1:9/signed/app@{D}: "
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--name", "ghcr.io/open/app:1", "--digest", D, "--stdin-media-type", DESCRIPTOR_TYPE],
        ["-name=ghcr.io/open/app:1", f"-digest={D}", f"-stdin-media-type={DESCRIPTOR_TYPE}"],
        ["--name=ghcr.io/open/app:1", "-digest", D, "-stdin-media-type", DESCRIPTOR_TYPE],
        # a flag a newer containerd may add is ignored, with its value
        [
            "-name",
            "ghcr.io/open/app:1",
            "-digest",
            D,
            "-future-flag",
            "x",
            "-stdin-media-type",
            DESCRIPTOR_TYPE,
        ],
    ],
    ids=["double-dash", "equals", "mixed", "unknown-flag"],
)
def test_go_flag_styles(daemon, argv: list[str]) -> None:
    r = run("", descriptor(), address=daemon.address, argv=argv)
    assert r.returncode == 0, r.stdout + r.stderr


def test_operation_flag_reaches_the_rules(daemon) -> None:
    r = run("ghcr.io/open/app:1", descriptor(), address=daemon.address, extra=("-operation", "run"))
    assert r.returncode == 0
    r = run(
        "ghcr.io/open/app:1", descriptor(), address=daemon.address, extra=("-operation", "exec")
    )
    assert r.returncode == 2 and "operation 'exec' is not pull or run" in r.stdout


@pytest.mark.parametrize(
    "payload",
    [
        {
            "descriptor": descriptor(),
            "operation": "run",
            "annotations": {
                "io.kubernetes.cri.sandbox-namespace": "team-a",
                "io.kubernetes.cri.sandbox-name": "api-0",
            },
        },
        {
            "descriptor": descriptor(),
            "runtime_config": {
                "metadata": {"name": "api-0", "uid": "u-1", "namespace": "team-a"},
                "labels": {"app": "api"},
                "annotations": {},
            },
        },
    ],
    ids=["operation-and-annotations", "runtime-config"],
)
def test_wrapped_inputs_carry_the_pod(daemon, payload: dict[str, object]) -> None:
    r = run("ghcr.io/team/api:1", payload, address=daemon.address, media_type=INPUT_TYPE)
    assert r.returncode == 0, r.stdout
    other = json.loads(json.dumps(payload).replace("team-a", "team-b"))
    r = run("ghcr.io/team/api:1", other, address=daemon.address, media_type=INPUT_TYPE)
    assert r.returncode == 1 and "team images run only in team-a pods" in r.stdout


def test_bare_descriptor_has_no_pod(daemon) -> None:
    r = run("ghcr.io/team/api:1", descriptor(), address=daemon.address)
    assert r.returncode == 1 and "team images run only in team-a pods" in r.stdout


def test_digest_mismatch_is_a_deny(daemon) -> None:
    r = run("ghcr.io/open/app:1", descriptor(OTHER), address=daemon.address, digest=D)
    assert r.returncode == 1
    assert one_line(r) == (
        f"denied: -digest {D} differs from the descriptor's digest {OTHER} [DIGEST_MISMATCH]"
    )


@pytest.mark.parametrize(
    ("stdin", "media_type", "message"),
    [
        (b"not json\n", DESCRIPTOR_TYPE, "stdin is not JSON"),
        (b"\xff\xfe\n", DESCRIPTOR_TYPE, "stdin is not JSON"),
        (b"[]\n", DESCRIPTOR_TYPE, "the descriptor must be a JSON object"),
        (b'{"mediaType": "x"}\n', DESCRIPTOR_TYPE, "the descriptor has no digest"),
        (json.dumps(descriptor(size="big")).encode(), DESCRIPTOR_TYPE, "size must be an integer"),
        (json.dumps(descriptor()).encode(), "application/x-unknown", "unknown -stdin-media-type"),
        (
            json.dumps({"descriptor": 1}).encode(),
            INPUT_TYPE,
            "the descriptor must be a JSON object",
        ),
        (b"[" * 100_000 + b"]" * 100_000, DESCRIPTOR_TYPE, "stdin is not JSON"),
        (b" " * (2 << 20), DESCRIPTOR_TYPE, "stdin is larger than 1048576 bytes"),
    ],
    ids=[
        "garbage",
        "not-utf8",
        "list",
        "no-digest",
        "bad-size",
        "unknown-media-type",
        "bad-wrapper",
        "deep-json",
        "huge",
    ],
)
def test_bad_stdin_cannot_be_decided(daemon, stdin: bytes, media_type: str, message: str) -> None:
    r = run("ghcr.io/open/app:1", stdin, address=daemon.address, media_type=media_type)
    assert r.returncode == 2
    assert one_line(r).startswith("pullgate could not decide: ") and message in r.stdout
    assert one_line(r).endswith(" [INVALID_REQUEST]")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-digest", D, "-stdin-media-type", DESCRIPTOR_TYPE], "missing -name"),
        (["-name", "ghcr.io/open/a", "-stdin-media-type", DESCRIPTOR_TYPE], "missing -digest"),
        (["-name"], "flag needs an argument: -name"),
    ],
)
def test_bad_argv_cannot_be_decided(daemon, argv: list[str], message: str) -> None:
    r = run("", descriptor(), address=daemon.address, argv=argv)
    assert r.returncode == 2 and message in r.stdout


def test_a_malformed_request_is_not_failed_open(daemon) -> None:
    r = run("GHCR.IO/Bad", descriptor(), address=daemon.address, extra=("--fail-open",))
    assert r.returncode == 2
    assert "bad request: INVALID_ARGUMENT" in r.stdout


def test_daemon_down_fails_closed(tmp_path: Path) -> None:
    r = run("ghcr.io/open/app:1", descriptor(), address=f"unix://{tmp_path}/none.sock")
    assert r.returncode == 2
    assert one_line(r).startswith("pullgate could not decide (fail closed): unix://")
    assert one_line(r).endswith(" [DAEMON_UNREACHABLE]")
    assert "UNAVAILABLE" in r.stdout


def test_fail_open_lets_the_pull_through_when_the_daemon_is_down(tmp_path: Path) -> None:
    for extra, env in ((("--fail-open",), {}), ((), {"PULLGATE_FAIL_OPEN": "1"})):
        r = run(
            "127.0.0.1:9/signed/app:1",
            descriptor(),
            address=f"unix://{tmp_path}/none.sock",
            extra=extra,
            env=env,
        )
        assert r.returncode == 0
        assert one_line(r).startswith("allowed by --fail-open: pullgate at unix://")
        assert one_line(r).endswith(" [ALLOWED_FAIL_OPEN]")


def test_fail_open_never_overrides_a_denial(daemon) -> None:
    r = run(
        "127.0.0.1:9/signed/app:1", descriptor(), address=daemon.address, extra=("--fail-open",)
    )
    assert r.returncode == 1


def test_a_daemon_that_does_not_answer_times_out(tmp_path: Path) -> None:
    with silent_server(tmp_path / "silent.sock") as path:
        started = time.monotonic()
        r = run(
            "ghcr.io/open/app:1",
            descriptor(),
            address=f"unix://{path}",
            env={"PULLGATE_TIMEOUT": "700ms"},
        )
        elapsed = time.monotonic() - started
    assert r.returncode == 2
    assert "DEADLINE_EXCEEDED" in r.stdout
    assert elapsed < 10  # well inside containerd's per-verifier timeout


def test_bad_timeout_setting(daemon) -> None:
    r = run(
        "ghcr.io/open/app:1", descriptor(), address=daemon.address, env={"PULLGATE_TIMEOUT": "soon"}
    )
    assert r.returncode == 2 and "timeout: 'soon' is not a duration" in r.stdout


def test_the_executable_imports_no_policy_code() -> None:
    """Every pull runs it: nothing it does not need, not even typing or dataclasses."""
    probe = (
        "import sys, pullgate.containerd; "
        "heavy = [m for m in ('celpy', 'yaml', 'cryptography', 'watchdog', 'pullgate.rules', "
        "'pullgate.policy', 'grpc', 'google.protobuf', 'typing', 'dataclasses') "
        "if m in sys.modules]; print(heavy)"
    )
    r = subprocess.run(
        [str(BIN / "python"), "-c", probe], capture_output=True, text=True, check=True
    )
    assert r.stdout.strip() == "[]"


def test_an_unexpected_peer_falls_back_to_grpcio_and_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "odd.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(4)
    stop = threading.Event()

    def answer() -> None:  # a frame bigger than HTTP/2 allows without negotiation, then hang up
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            conn.recv(65536)
            conn.sendall(b"\x00\x40\x01\x0a\x00\x00\x00\x00\x00" + b"x" * 16385)
            conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        r = run("ghcr.io/open/app:1", descriptor(), address=f"unix://{path}")
    finally:
        stop.set()
        thread.join()
        server.close()
    assert r.returncode == 2
    assert "falling back to grpcio" in r.stderr
    assert one_line(r).startswith("pullgate could not decide (fail closed)")
