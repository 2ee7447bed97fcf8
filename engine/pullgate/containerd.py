"""``pullgate-containerd``: the program containerd's image-verifier ``bin_dir`` plugin runs.

containerd 2.x runs it once per pull, after resolving the digest and before fetching layers::

    pullgate-containerd -name REF -digest ALGO:HEX -stdin-media-type MEDIA_TYPE  < descriptor JSON

It asks the pullgate daemon (one ``Verify`` over a unix socket), prints a one-line reason on
stdout (containerd shows it in the pull error) and exits 0 (allowed), 1 (denied) or 2 (could
not decide: bad input, daemon unreachable, timeout). containerd blocks the pull on any
non-zero exit. With ``--fail-open`` it exits 0 when the daemon cannot answer (never on bad
input or a denial). At most 1 MiB of stdin is read (``-max-stdin-bytes N`` or
``PULLGATE_MAX_STDIN_BYTES``); more is bad input.

Start-up is on every pull's path: this module imports only what the call needs (no policy,
CEL or YAML code), and on a unix socket it talks HTTP/2 itself (``grpclite``): ``grpc`` and the
protobuf runtime are imported only if that client meets something it does not handle.
"""

from __future__ import annotations

import json
import os
import sys
import time

from .durations import parse_duration
from .grpclite.call import CallError

# Not typing.TYPE_CHECKING: importing typing costs ~5 ms on every pull. Type checkers treat
# any TYPE_CHECKING as true.
TYPE_CHECKING = False

if TYPE_CHECKING:  # annotations only: typing and collections.abc cost import time per pull
    from collections.abc import Mapping, Sequence
    from typing import Any, BinaryIO, TextIO

__all__ = ["main"]

EXIT_ALLOWED, EXIT_DENIED, EXIT_ERROR = 0, 1, 2
DESCRIPTOR_TYPE = "application/vnd.oci.descriptor.v1+json"
INPUT_TYPE = "application/vnd.containerd.image-verifier.input.v1+json"
DEFAULT_ADDRESS = "unix:///run/pullgate/pullgate.sock"
DEFAULT_TIMEOUT = "8s"  # containerd's per_verifier_timeout defaults to 10s
MAX_TIMEOUT = 86400.0  # seconds; gRPC's grpc-timeout header has at most 8 digits
MAX_STDIN = 1 << 20  # the default; -max-stdin-bytes or PULLGATE_MAX_STDIN_BYTES change it
MAX_STDIN_CEILING = 64 << 20  # the buffer is allocated up front: a bound on the bound
MAX_REASON = 4096  # containerd keeps 32 KiB of stdout; one readable line is the goal
NAMESPACE_ANNOTATION = "io.kubernetes.cri.sandbox-namespace"
POD_NAME_ANNOTATION = "io.kubernetes.cri.sandbox-name"
POD_UID_ANNOTATION = "io.kubernetes.cri.sandbox-uid"
_VALUE_FLAGS = (
    "name",
    "digest",
    "stdin-media-type",
    "operation",
    "address",
    "timeout",
    "max-stdin-bytes",
)
_BOOL_FLAGS = ("fail-open", "help")

# Reason codes of the answers this program makes itself (docs/troubleshooting.md); the
# daemon's judgements carry theirs (pullgate.judgement.CODES). Added, never renamed.
INVALID_REQUEST = "INVALID_REQUEST"  # bad argv or stdin, or the daemon said INVALID_ARGUMENT
DIGEST_MISMATCH = "DIGEST_MISMATCH"  # -digest is not the descriptor's digest
NO_POLICY_SET = "NO_POLICY_SET"  # the daemon runs but no policy set has loaded yet
DAEMON_UNREACHABLE = "DAEMON_UNREACHABLE"  # no daemon at the address (or it hung up)
DAEMON_TIMEOUT = "DAEMON_TIMEOUT"  # no answer within the timeout
DAEMON_BUSY = "DAEMON_BUSY"  # the daemon refused the call: every verification slot is taken
DAEMON_ERROR = "DAEMON_ERROR"  # the daemon failed (INTERNAL or another gRPC status)
ALLOWED_FAIL_OPEN = "ALLOWED_FAIL_OPEN"  # the daemon could not answer and --fail-open is on
INTERNAL_ERROR = "INTERNAL_ERROR"  # this program crashed
CODES = (
    INVALID_REQUEST,
    DIGEST_MISMATCH,
    NO_POLICY_SET,
    DAEMON_UNREACHABLE,
    DAEMON_TIMEOUT,
    DAEMON_BUSY,
    DAEMON_ERROR,
    ALLOWED_FAIL_OPEN,
    INTERNAL_ERROR,
)
_STATUS_CODES = {
    "DEADLINE_EXCEEDED": DAEMON_TIMEOUT,
    "RESOURCE_EXHAUSTED": DAEMON_BUSY,
    "UNAVAILABLE": DAEMON_UNREACHABLE,
}


class InputError(Exception):
    """The call cannot be judged as given: exit 2."""


class Args:
    """The flags containerd (and the wrapper) pass. A plain class: importing ``dataclasses``
    costs ~10 ms on every pull."""

    def __init__(self) -> None:
        self.name = ""
        self.digest = ""
        self.stdin_media_type = ""
        self.operation = ""
        self.address = ""
        self.timeout = ""
        self.max_stdin_bytes = ""
        self.fail_open = False
        self.help = False
        self.ignored: list[str] = []


def parse_args(argv: Sequence[str]) -> Args:
    """Go ``flag`` style: ``-name x``, ``--name x``, ``-name=x``; booleans take no value.

    Unknown flags are ignored with a note (a newer containerd may pass more); their value is
    skipped when it does not look like a flag.
    """
    args = Args()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            args.ignored.append(arg)
            continue
        key, eq, value = arg.lstrip("-").partition("=")
        if key in _BOOL_FLAGS:
            on = value.lower() not in ("false", "0") if eq else True
            setattr(args, key.replace("-", "_"), on)
        elif key in _VALUE_FLAGS:
            if not eq:
                if i >= len(argv):
                    raise InputError(f"flag needs an argument: -{key}")
                value = argv[i]
                i += 1
            setattr(args, key.replace("-", "_"), value)
        else:
            args.ignored.append(arg)
            if not eq and i < len(argv) and not argv[i].startswith("-"):
                args.ignored.append(argv[i])
                i += 1
    return args


class Call:
    """What to ask the daemon, taken from argv and stdin."""

    def __init__(self, name: str, descriptor: dict[str, Any]) -> None:
        self.name = name
        self.descriptor = descriptor
        self.operation = "pull"
        self.namespace = ""
        self.annotations: dict[str, str] = {}
        self.labels: dict[str, str] = {}
        self.pod_name = ""
        self.pod_uid = ""


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InputError(f"{what} must be a JSON object of strings")
    return dict(value)


def _descriptor(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError("the descriptor must be a JSON object")
    digest, media_type = value.get("digest"), value.get("mediaType", "")
    size = value.get("size", 0)
    if not isinstance(digest, str) or not digest:
        raise InputError("the descriptor has no digest")
    if not isinstance(media_type, str):
        raise InputError("the descriptor's mediaType must be a string")
    if isinstance(size, bool) or not isinstance(size, int):
        raise InputError("the descriptor's size must be an integer")
    if not -(1 << 63) <= size < 1 << 63:
        raise InputError("the descriptor's size does not fit in 64 bits")
    artifact_type = value.get("artifactType", "")
    return {
        "media_type": media_type,
        "digest": digest,
        "size": size,
        "annotations": _strings(value.get("annotations"), "descriptor annotations"),
        "artifact_type": artifact_type if isinstance(artifact_type, str) else "",
    }


def max_stdin(args: Args, environ: Mapping[str, str]) -> int:
    """The stdin bound: ``-max-stdin-bytes``, else ``PULLGATE_MAX_STDIN_BYTES``, else 1 MiB."""
    if args.max_stdin_bytes:
        text, what = args.max_stdin_bytes, "-max-stdin-bytes"
    elif environ.get("PULLGATE_MAX_STDIN_BYTES"):
        text, what = environ["PULLGATE_MAX_STDIN_BYTES"], "PULLGATE_MAX_STDIN_BYTES"
    else:
        return MAX_STDIN
    digits = text.isascii() and text.isdigit() and len(text) <= 12
    if not digits or not 0 < int(text) <= MAX_STDIN_CEILING:
        raise InputError(
            f"{what}: {text[:40]!r} is not a number of bytes from 1 to {MAX_STDIN_CEILING}"
        )
    return int(text)


def read_call(args: Args, stdin: BinaryIO, limit: int = MAX_STDIN) -> Call:
    """Validate argv and stdin into one call. Raises InputError (exit 2) when they are bad.

    At most ``limit`` bytes of stdin are read (one more, to know it is over).
    """
    if not args.name:
        raise InputError("missing -name (the image reference)")
    if not args.digest:
        raise InputError("missing -digest (the resolved digest)")
    raw = stdin.read(limit + 1)
    if len(raw) > limit:
        raise InputError(
            f"stdin is larger than {limit} bytes (the rest was not read); containerd sends a "
            "descriptor of a few hundred bytes: check the caller, or raise the limit with "
            "-max-stdin-bytes or PULLGATE_MAX_STDIN_BYTES"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"stdin is not JSON: {str(exc)[:120]}") from None
    media_type = args.stdin_media_type
    if not media_type:  # containerd always says; guess the shape only when it does not
        media_type = (
            INPUT_TYPE if isinstance(data, dict) and "descriptor" in data else DESCRIPTOR_TYPE
        )
    if media_type == DESCRIPTOR_TYPE:
        call = Call(args.name, _descriptor(data))
    elif media_type == INPUT_TYPE:
        call = _wrapped(args.name, data)
    else:
        raise InputError(
            f"unknown -stdin-media-type {media_type[:100]!r}; "
            f"understood: {DESCRIPTOR_TYPE}, {INPUT_TYPE}"
        )
    if args.operation:
        call.operation = args.operation
    if call.operation not in ("pull", "run"):
        raise InputError(f"operation {call.operation[:40]!r} is not pull or run")
    return call


def _wrapped(name: str, data: Any) -> Call:
    """Both proposed shapes of the wrapped input."""
    if not isinstance(data, dict):
        raise InputError(f"{INPUT_TYPE} input must be a JSON object")
    call = Call(name, _descriptor(data.get("descriptor")))
    operation = data.get("operation") or "pull"
    if not isinstance(operation, str):
        raise InputError("operation must be a string")
    call.operation = operation
    annotations = _strings(data.get("annotations"), "annotations")
    runtime = data.get("runtime_config")
    if runtime is not None:
        if not isinstance(runtime, dict):
            raise InputError("runtime_config must be a JSON object")
        meta = runtime.get("metadata") or {}
        if not isinstance(meta, dict):
            raise InputError("runtime_config.metadata must be a JSON object")
        annotations.update(_strings(runtime.get("annotations"), "runtime_config.annotations"))
        call.labels = _strings(runtime.get("labels"), "runtime_config.labels")
        call.namespace = _str(meta.get("namespace"))
        call.pod_name = _str(meta.get("name"))
        call.pod_uid = _str(meta.get("uid"))
    call.annotations = annotations
    call.namespace = call.namespace or annotations.get(NAMESPACE_ANNOTATION, "")
    call.pod_name = call.pod_name or annotations.get(POD_NAME_ANNOTATION, "")
    call.pod_uid = call.pod_uid or annotations.get(POD_UID_ANNOTATION, "")
    return call


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _check_text(call: Call, address: str) -> None:
    """Lone surrogates (JSON ``\\ud800`` escapes, undecodable argv) cannot be sent, and a
    NUL cannot be in a socket path: bad input, not an internal error."""
    d = call.descriptor
    texts = [call.name, d["media_type"], d["digest"], d["artifact_type"], call.operation]
    texts += [call.namespace, call.pod_name, call.pod_uid, address]
    for strings in (d["annotations"], call.annotations, call.labels):
        texts += [*strings, *strings.values()]
    try:
        "".join(texts).encode()
    except UnicodeEncodeError:
        raise InputError("the input holds text that is not valid UTF-8") from None
    if "\0" in address:
        raise InputError("the daemon address holds a NUL character")


def _one_line(text: str) -> str:
    """One line of at most MAX_REASON characters; clipping keeps the final ``[...]`` (the
    reason code and decision id)."""
    text = " ".join(text.split())
    if len(text) <= MAX_REASON:
        return text
    head, bracket, tail = text.rpartition(" [")
    if bracket and len(tail) < 200:
        return head[: MAX_REASON - len(tail) - 3] + "…" + bracket + tail
    return text[: MAX_REASON - 1] + "…"


VERIFY = "/pullgate.v1.ImageVerifier/Verify"


def _answer(ok: bool, reason: str, decision_id: str, revision: str, code: str) -> tuple[bool, str]:
    """``<reason> [CODE, pullgate decision ID, policy revision REV]``: the daemon's reason as it
    gave it, then the reason code (none from a daemon older than codes) and the ids."""
    tag = f"{code}, " if code else ""
    return ok, f"{reason} [{tag}pullgate decision {decision_id}, policy revision {revision}]"


def _status_code(exc: CallError) -> str:
    """The reason code of a call the daemon did not answer with a judgement."""
    if exc.code == "UNAVAILABLE" and exc.details.startswith("no policy set has loaded"):
        return NO_POLICY_SET
    return _STATUS_CODES.get(exc.code, DAEMON_ERROR)


def ask(call: Call, address: str, timeout: float, stderr: TextIO) -> tuple[bool, str]:
    """One Verify; returns (ok, reason) or raises CallError when the daemon cannot answer.

    On a unix socket the standard-library client answers (no grpc or protobuf import); if it
    meets something it does not handle, grpcio makes the call instead.
    """
    if address.startswith("unix://"):
        from .grpclite.call import ProtocolError, unary_call
        from .grpclite.messages import WireError, decode_verify_response, encode_verify_request

        d = call.descriptor
        message = encode_verify_request(
            image_name=call.name,
            media_type=d["media_type"],
            digest=d["digest"],
            size=d["size"],
            descriptor_annotations=d["annotations"],
            artifact_type=d["artifact_type"],
            operation=call.operation,
            namespace=call.namespace,
            annotations=call.annotations,
            labels=call.labels,
            pod_name=call.pod_name,
            pod_uid=call.pod_uid,
        )
        try:
            raw = unary_call(address[len("unix://") :], VERIFY, message, timeout=timeout)
            r = decode_verify_response(raw)
            return _answer(
                bool(r["ok"]),
                str(r["reason"]),
                str(r["decision_id"]),
                str(r["policy_revision"]),
                str(r["code"]),
            )
        except (ProtocolError, WireError) as exc:
            print(f"pullgate-containerd: falling back to grpcio ({exc})", file=stderr)
    return _ask_grpcio(call, address, timeout)


def _ask_grpcio(call: Call, address: str, timeout: float) -> tuple[bool, str]:
    import grpc

    from .v1 import verifier_pb2 as pb

    target = address if address.startswith("unix://") else address.removeprefix("tcp://")
    request = pb.VerifyRequest(
        image_name=call.name,
        descriptor=pb.Descriptor(**call.descriptor),
        operation=call.operation,
        namespace=call.namespace,
        annotations=call.annotations,
        labels=call.labels,
        pod_name=call.pod_name,
        pod_uid=call.pod_uid,
    )
    try:
        with grpc.insecure_channel(target) as channel:
            verify = channel.unary_unary(
                VERIFY,
                request_serializer=pb.VerifyRequest.SerializeToString,
                response_deserializer=pb.VerifyResponse.FromString,
            )
            response = verify(request, timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code()
        raise CallError(code.name if code else "UNKNOWN", str(exc.details())) from None
    return _answer(
        response.ok, response.reason, response.decision_id, response.policy_revision, response.code
    )


def run(
    argv: Sequence[str],
    stdin: BinaryIO,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
) -> int:
    started = time.perf_counter()

    def answer(code: int, reason: str) -> int:
        print(_one_line(reason), file=stdout)
        elapsed = (time.perf_counter() - started) * 1000
        print(f"pullgate-containerd: exit {code} after {elapsed:.0f} ms", file=stderr)
        return code

    try:
        args = parse_args(argv)
        if args.help:
            print(__doc__, file=stderr)
            return EXIT_ERROR
        if args.ignored:
            print(f"pullgate-containerd: ignoring arguments {args.ignored!r}", file=stderr)
        address = args.address or environ.get("PULLGATE_ADDRESS") or DEFAULT_ADDRESS
        try:
            timeout = parse_duration(
                args.timeout or environ.get("PULLGATE_TIMEOUT") or DEFAULT_TIMEOUT
            )
        except ValueError as exc:
            raise InputError(f"timeout: {exc}") from None
        if not 0 < timeout <= MAX_TIMEOUT:
            raise InputError(f"timeout: {timeout:g}s is out of range; give 1ms to 24h")
        fail_open = args.fail_open or environ.get("PULLGATE_FAIL_OPEN", "") in ("1", "true")
        call = read_call(args, stdin, max_stdin(args, environ))
        _check_text(call, address)
    except InputError as exc:
        return answer(EXIT_ERROR, f"pullgate could not decide: {exc} [{INVALID_REQUEST}]")

    resolved = call.descriptor["digest"]
    if resolved != args.digest:
        return answer(
            EXIT_DENIED,
            f"denied: -digest {args.digest[:80]} differs from the descriptor's digest "
            f"{resolved[:80]} [{DIGEST_MISMATCH}]",
        )

    try:
        ok, reason = ask(call, address, timeout, stderr)
    except CallError as exc:
        detail = f"{exc.code}: {exc.details}"
        if exc.code == "INVALID_ARGUMENT":
            return answer(
                EXIT_ERROR, f"pullgate could not decide: bad request: {detail} [{INVALID_REQUEST}]"
            )
        code = _status_code(exc)
        if fail_open:
            return answer(
                EXIT_ALLOWED,
                f"allowed by --fail-open: pullgate at {address} did not answer ({detail}) "
                f"[{ALLOWED_FAIL_OPEN}]",
            )
        return answer(
            EXIT_ERROR, f"pullgate could not decide (fail closed): {address}: {detail} [{code}]"
        )
    return answer(EXIT_ALLOWED if ok else EXIT_DENIED, reason)


def main() -> int:
    try:
        return run(sys.argv[1:], sys.stdin.buffer, sys.stdout, sys.stderr, os.environ)
    except Exception as exc:  # a crash must read as "could not decide", not as a denial
        print(_one_line(f"pullgate could not decide: internal error: {exc!r} [{INTERNAL_ERROR}]"))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
