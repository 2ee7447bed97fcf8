"""pullgate-containerd's argv and stdin: whatever containerd (or anything else) passes, the
program exits 1 or 2 with one reason line, never 0 and never with a traceback.

In process (``containerd.run``) for the many generated examples, as a real subprocess for the
big ones: 100 MB of stdin, invalid UTF-8, 100,000-deep JSON.
"""

from __future__ import annotations

import io
import json
import subprocess
import threading
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import doc, key, write_files
from lab.daemon import BIN
from pullgate import containerd
from pullgate.containerd import DESCRIPTOR_TYPE, INPUT_TYPE

from .conftest import FUZZ, scaled
from .strategies import deep, json_bytes, json_values, mutated

pytestmark = pytest.mark.slow  # 10,000 examples a target: more than 10 s


D = "sha256:" + "e" * 64
DEAD = "/nonexistent/pullgate-fuzz/pullgate.sock"
DEAD_ADDRESSES = [
    f"unix://{DEAD}",
    "unix://" + "/x" * 100,  # longer than a unix socket path may be
    "unix://",
    "unix:///dev/null",  # exists, is no socket
    "unix://relative.sock",
    "unix:///nul\x00byte",
    "unix:///bad\udcffutf8",
]

# -- argv -------------------------------------------------------------------------------------

VALUE_FLAGS = [
    "name",
    "digest",
    "stdin-media-type",
    "operation",
    "timeout",
    "address",
    "max-stdin-bytes",
]
odd_text = st.text(max_size=20) | st.sampled_from(["", "-", "--", "=", "-x", "\udcff", "\x00"])
flag_values = {
    "name": st.sampled_from(["ghcr.io/acme/app:v1", "nginx", "", "UPPER/x", "a" * 5000]) | odd_text,
    "digest": st.sampled_from([D, "sha256:" + "f" * 64, "sha256:abc", "", "md5:00"]) | odd_text,
    "stdin-media-type": st.sampled_from([DESCRIPTOR_TYPE, INPUT_TYPE, "", "text/plain"]) | odd_text,
    "operation": st.sampled_from(["pull", "run", "", "delete", "PULL"]) | odd_text,
    "timeout": st.sampled_from(["8s", "1ms", "0s", "0ms", "1.5s", "99999999999h", "1e9s", "-1s"])
    | odd_text,
    "address": st.sampled_from(DEAD_ADDRESSES),
    "max-stdin-bytes": st.sampled_from(["1", "100", "1048576", "0", "-1", "99999999999999", "1e3"])
    | odd_text,
}


@st.composite
def argv_lists(draw: st.DrawFn) -> list[str]:
    """containerd's argv (name, digest, media type), shuffled, dropped, repeated, spelled in
    every Go flag style, with unknown flags, stray words, booleans and ``--``."""
    out: list[str] = []
    image = draw(st.sampled_from(["ghcr.io/acme/app:v1", SIGNED]))
    wanted = {"name": image, "digest": D, "stdin-media-type": DESCRIPTOR_TYPE}
    for name, value in wanted.items():
        if draw(st.integers(0, 9)) > 0:  # usually present
            out += [f"-{name}", value]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 5))
        if kind <= 1:
            flag = draw(st.sampled_from(VALUE_FLAGS))
            value = draw(flag_values[flag])
            style = draw(st.sampled_from(["-{}", "--{}", "-{}=", "--{}="]))
            spelled = style.format(flag)
            out += [spelled + value] if spelled.endswith("=") else [spelled, value]
        elif kind == 2:
            out.append(draw(st.sampled_from(["-help", "--help", "-help=false", "-fail-open=0"])))
        elif kind == 3:
            out.append(draw(st.sampled_from(["--", "-", "-unknown", "--new-flag=1", "-name"])))
        else:
            out.append(draw(odd_text))
    if draw(st.booleans()):
        out = draw(st.permutations(out))
    return out


# -- stdin ------------------------------------------------------------------------------------

descriptor_dicts = st.fixed_dictionaries(
    {"mediaType": st.sampled_from(["application/vnd.oci.image.index.v1+json", ""]) | json_values},
    optional={
        "digest": st.sampled_from([D, D.upper(), "", "sha256:x"]) | json_values,
        "size": st.sampled_from([0, 1234, -1, 2**63, 2**64 + 5, -(2**70), True, 1.5]) | json_values,
        "annotations": st.dictionaries(
            st.text(max_size=10), st.text(max_size=10) | json_values, max_size=4
        )
        | json_values,
        "artifactType": json_values,
    },
)
wrapped_dicts = st.fixed_dictionaries(
    {"descriptor": descriptor_dicts | json_values},
    optional={
        "operation": st.sampled_from(["pull", "run", "", "push"]) | json_values,
        "annotations": st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=4)
        | json_values,
        "runtime_config": st.fixed_dictionaries(
            {},
            optional={
                "metadata": st.fixed_dictionaries(
                    {}, optional={"namespace": json_values, "name": json_values, "uid": json_values}
                )
                | json_values,
                "labels": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)
                | json_values,
                "annotations": json_values,
            },
        )
        | json_values,
    },
)
stdin_bytes = st.one_of(
    json_bytes(descriptor_dicts),
    json_bytes(wrapped_dicts),
    json_bytes(json_values),
    st.binary(max_size=200),
    st.builds(lambda d: (json.dumps(d) + "\n").encode(), descriptor_dicts),
    mutated(st.builds(json.dumps, descriptor_dicts)).map(
        lambda t: t.encode("utf-8", "surrogatepass")
    ),
)


def _run(argv: list[str], stdin: bytes, environ: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = containerd.run(argv, io.BytesIO(stdin), out, err, environ)
    return code, out.getvalue(), err.getvalue()


def _fail_open(argv: list[str]) -> bool:
    try:
        return containerd.parse_args(argv).fail_open
    except containerd.InputError:
        return False


def _check(argv: list[str], code: int, out: str) -> None:
    helped = any(a.lstrip("-").partition("=")[0] == "help" for a in argv)
    if code == containerd.EXIT_ALLOWED:
        # Only --fail-open allows, and only because the daemon could not answer.
        assert _fail_open(argv), out
        assert out.startswith("allowed by --fail-open"), out
    else:
        assert code in (containerd.EXIT_DENIED, containerd.EXIT_ERROR), code
    if code == containerd.EXIT_ERROR and out == "" and helped:
        return  # -help prints the usage on stderr, exit 2 as any refusal
    assert out.endswith("\n") and out.count("\n") == 1, repr(out[:300])
    assert len(out) <= containerd.MAX_REASON * 4 + 1
    assert "internal error" not in out, out
    if code == containerd.EXIT_DENIED:  # by this program (digests differ) or by the daemon
        assert out.startswith("denied"), out
    if code == containerd.EXIT_ERROR:
        assert out.startswith("pullgate could not decide"), out


@FUZZ
@given(argv_lists(), stdin_bytes)
@example(["-name", "a", "-digest", D], b"")
@example(["-name", "a", "-digest", D], deep(5000))
@example(["-name", "a", "-digest", D], b'{"digest": "' + D.encode() + b'", "size": 1e999}')
@example(["-name", "a", "-digest", D], b'{"digest": "' + D.encode() + b'", "mediaType": "\\ud800"}')
@example(["-name", "a\udcff", "-digest", D], b'{"digest": "' + D.encode() + b'"}')
@example(
    ["-name", "a", "-digest", D, "-timeout", "99999999999h"], b'{"digest": "' + D.encode() + b'"}'
)
@example(
    ["-name", "a", "-digest", D, "-address", "unix:///nul\x00"],
    b'{"digest": "' + D.encode() + b'"}',
)
def test_no_daemon_never_allows(argv: list[str], stdin: bytes) -> None:
    code, out, _ = _run(argv, stdin, {"PULLGATE_ADDRESS": f"unix://{DEAD}"})
    _check(argv, code, out)


# -- a real daemon that denies ----------------------------------------------------------------

# Port 9 of 127.0.0.1 refuses connections: the signed policy's signature fetch fails at once,
# offline; every other image is selected by no policy and denied by default.
SIGNED = "127.0.0.1:9/signed/app:v1"
DENY_ALL = {
    "p.yaml": doc(
        "signed", f'  images: ["127.0.0.1:9/signed/**"]\n  authorities:{key("release")}\n'
    ),
}


@pytest.fixture(scope="module")
def denying_daemon(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from lab.daemon import start_daemon

    tmp = tmp_path_factory.mktemp("deny")
    daemon = start_daemon(tmp / "daemon", write_files(tmp / "policies", DENY_ALL))
    yield daemon
    daemon.stop()


@scaled(0.2, minimum=200)
@given(argv_lists(), stdin_bytes)
def test_a_denying_daemon_is_never_turned_into_an_allow(
    denying_daemon: Any, argv: list[str], stdin: bytes
) -> None:
    code, out, _ = _run(argv, stdin, {"PULLGATE_ADDRESS": denying_daemon.address})
    _check(argv, code, out)


well_formed = st.fixed_dictionaries(
    {"digest": st.just(D)},
    optional={
        "mediaType": st.text(max_size=60),
        "size": st.integers(-(2**63), 2**63 - 1),
        "annotations": st.dictionaries(st.text(max_size=40), st.text(max_size=200), max_size=8),
        "artifactType": st.text(max_size=30),
    },
)


@scaled(0.05, minimum=100)
@given(
    well_formed,
    st.sampled_from([DESCRIPTOR_TYPE, INPUT_TYPE]),
    st.sampled_from(["ghcr.io/acme/app:v1", SIGNED]),
)
def test_well_formed_calls_reach_the_daemon_and_are_denied(
    denying_daemon: Any, descriptor: dict[str, Any], media_type: str, image: str
) -> None:
    stdin = {"descriptor": descriptor} if media_type == INPUT_TYPE else descriptor
    argv = ["-name", image, "-digest", D, "-stdin-media-type", media_type]
    code, out, _ = _run(
        argv, json.dumps(stdin).encode(), {"PULLGATE_ADDRESS": denying_daemon.address}
    )
    _check(argv, code, out)
    # Nothing wrong with the call: the daemon judged it, and denied (no signature, or no
    # policy selects the image).
    assert code == containerd.EXIT_DENIED, out
    assert "pullgate decision" in out, out


# -- the real program, with input too big to generate per example -----------------------------


def _program(
    stdin: bytes | None, address: str, argv: list[str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[bytes]:
    args = (
        argv
        if argv is not None
        else ["-name", "ghcr.io/acme/app:v1", "-digest", D, "-stdin-media-type", DESCRIPTOR_TYPE]
    )
    return subprocess.run(
        [str(BIN / "pullgate-containerd"), *args],
        input=stdin,
        capture_output=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "PULLGATE_ADDRESS": address},
        check=False,
        **kw,
    )


def _one_reason(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.stdout.count(b"\n") == 1, r.stdout[:500]
    assert b"Traceback" not in r.stderr, r.stderr[-2000:]
    reason = r.stdout.decode()
    assert "internal error" not in reason, reason
    return reason


def test_100_mb_of_stdin_is_refused_without_reading_it_all() -> None:
    """Streamed through a pipe: the program refuses after its bound and exits; it neither
    waits for nor holds the other 99 MB."""
    chunk = b" " * (1 << 20)
    process = subprocess.Popen(
        [str(BIN / "pullgate-containerd"), "-name", "ghcr.io/acme/app:v1", "-digest", D],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "PULLGATE_ADDRESS": f"unix://{DEAD}"},
    )
    sent = [0]

    def feed() -> None:
        assert process.stdin is not None
        try:
            for _ in range(100):
                process.stdin.write(chunk)
                sent[0] += len(chunk)
            process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # the program stopped reading and exited: what should happen

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    assert process.wait(timeout=30) == containerd.EXIT_ERROR, (out, err[-2000:])
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert out.count(b"\n") == 1 and b"larger than" in out, out
    assert b"Traceback" not in err
    assert sent[0] < 100 << 20, "the program read all 100 MB before refusing"


@pytest.mark.parametrize(
    "stdin",
    [
        b"\xff\xfe\x00garbage",
        b'{"digest": "' + D.encode() + b'", "mediaType": "\xc3\x28"}',
        b'{"digest": "' + D.encode() + b'", "mediaType": "\\udc80"}',
        deep(100_000),
        deep(100_000, "{"),
        b"",
    ],
    ids=[
        "not-utf8",
        "invalid-utf8-in-string",
        "lone-surrogate",
        "deep-array",
        "deep-object",
        "empty",
    ],
)
def test_the_program_refuses_bad_stdin_with_one_line(stdin: bytes) -> None:
    r = _program(stdin, f"unix://{DEAD}")
    assert r.returncode == containerd.EXIT_ERROR, (r.stdout, r.stderr[-2000:])
    assert _one_reason(r).startswith("pullgate could not decide")


def test_the_program_refuses_undecodable_argv() -> None:
    """Linux argv is bytes: Python hands invalid UTF-8 on as lone surrogates."""
    r = _program(
        json.dumps({"digest": D}).encode(),
        f"unix://{DEAD}",
        argv=[b"-name".decode(), "ghcr.io/acme/\udcffapp", "-digest", D],
    )
    assert r.returncode == containerd.EXIT_ERROR, (r.stdout, r.stderr[-2000:])
    assert _one_reason(r).startswith("pullgate could not decide")
