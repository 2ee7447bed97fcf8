"""One unary gRPC call over HTTP/2 on a unix socket, with the standard library only.

pullgate-containerd makes exactly one call per process, and ``import grpc`` alone costs more
than the rest of its life (70-190 ms here against ~25 ms for this module). This is HTTP/2 with
prior knowledge (RFC 9113) reduced to that one call: preface and SETTINGS, one HEADERS and one
DATA frame out, then frames in until the stream ends, answering SETTINGS and PING, following
flow control by opening a large window up front, and reading headers, message and trailers.

Anything it does not expect raises :class:`ProtocolError`, and the caller falls back to grpcio;
a gRPC status raises :class:`CallError` with the status name.
"""

from __future__ import annotations

import socket
import struct
import time

from .hpack import Decoder, HpackError, encode

__all__ = ["CallError", "ProtocolError", "unary_call"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
(
    DATA,
    HEADERS,
    PRIORITY,
    RST_STREAM,
    SETTINGS,
    PUSH_PROMISE,
    PING,
    GOAWAY,
    WINDOW_UPDATE,
    CONTINUATION,
) = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE's default: the most a peer must accept
MAX_INITIAL_WINDOW = 65535  # what the server lets us send before its first WINDOW_UPDATE
OUR_WINDOW = 1 << 24
MAX_RESPONSE = 8 << 20
STATUS = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)


class CallError(Exception):
    """The call ended with a gRPC status other than OK (or could not be made at all)."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class ProtocolError(Exception):
    """Something this minimal client does not handle; use a full gRPC client instead."""


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack("!I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack("!I", stream)
        + payload
    )


def _unquote(text: str) -> str:
    """grpc-message is percent-encoded UTF-8 (gRPC over HTTP/2 spec)."""
    if "%" not in text:
        return text
    out, i, raw = bytearray(), 0, text.encode()
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw) + 1:
            try:
                out.append(int(raw[i + 1 : i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return out.decode("utf-8", "replace")


class _Connection:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()

    def _recv_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise CallError("UNAVAILABLE", "the daemon closed the connection")
            self.buffer += chunk
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def frame(self) -> tuple[int, int, int, bytes]:
        head = self._recv_exactly(9)
        length = int.from_bytes(head[:3], "big")
        if length > MAX_FRAME:
            raise ProtocolError(f"frame of {length} bytes")
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        return head[3], head[4], stream, self._recv_exactly(length)


def _unpad(flags: int, payload: bytes, has_priority: bool = False) -> bytes:
    if flags & PADDED:
        if not payload:
            raise ProtocolError("empty padded frame")
        pad = payload[0]
        payload = payload[1 : len(payload) - pad] if pad else payload[1:]
    if has_priority and flags & PRIORITY_FLAG:
        payload = payload[5:]
    return payload


def unary_call(socket_path: str, method: str, message: bytes, *, timeout: float) -> bytes:
    """Call ``method`` (``/package.Service/Method``) with a serialised request; return the
    serialised response. Raises CallError (with the gRPC status name) or ProtocolError."""
    body = b"\x00" + len(message).to_bytes(4, "big") + message
    if len(body) > MAX_INITIAL_WINDOW:
        raise ProtocolError("request larger than the initial flow-control window")
    deadline = time.monotonic() + timeout
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", f"{max(1, int(timeout * 1000))}m"),
        ("user-agent", "pullgate-containerd"),
    ]
    settings = struct.pack("!HI", 2, 0) + struct.pack("!HI", 4, OUR_WINDOW)  # no push; big window
    chunks = [body[i : i + MAX_FRAME] for i in range(0, len(body), MAX_FRAME)]
    out = (
        PREFACE
        + _frame(SETTINGS, 0, 0, settings)
        + _frame(WINDOW_UPDATE, 0, 0, struct.pack("!I", OUR_WINDOW - 65535))
        + _frame(HEADERS, END_HEADERS, 1, encode(headers))
        + b"".join(
            _frame(DATA, END_STREAM if i == len(chunks) - 1 else 0, 1, chunk)
            for i, chunk in enumerate(chunks)
        )
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except OSError as exc:
            raise CallError(
                "UNAVAILABLE", f"cannot connect to {socket_path}: {exc.strerror or exc}"
            ) from None
        try:
            sock.sendall(out)
            return _read_response(_Connection(sock, deadline))
        except TimeoutError:
            raise CallError("DEADLINE_EXCEEDED", f"no answer within {timeout:g}s") from None
        except OSError as exc:
            raise CallError(
                "UNAVAILABLE", f"connection to {socket_path} failed: {exc.strerror or exc}"
            ) from None
        except HpackError as exc:
            raise ProtocolError(f"header block: {exc}") from None
    finally:
        sock.close()


def _read_response(conn: _Connection) -> bytes:
    decoder = Decoder()
    blocks: list[list[tuple[str, str]]] = []
    block = bytearray()
    pending_end = False
    data = bytearray()
    while True:
        kind, flags, stream, payload = conn.frame()
        if kind == SETTINGS:
            if not flags & ACK:
                conn.sock.sendall(_frame(SETTINGS, ACK, 0))
        elif kind == PING:
            if not flags & ACK:
                conn.sock.sendall(_frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF if len(payload) >= 4 else 0
            if last < 1:
                raise CallError("UNAVAILABLE", "the daemon refused the call (GOAWAY)")
        elif kind in (WINDOW_UPDATE, PRIORITY) or stream not in (0, 1):
            continue
        elif kind == RST_STREAM:
            code = int.from_bytes(payload[:4], "big") if len(payload) >= 4 else 0
            raise CallError(
                "UNAVAILABLE" if code == 7 else "INTERNAL", f"stream reset (HTTP/2 error {code})"
            )
        elif kind in (HEADERS, CONTINUATION):
            block += _unpad(flags, payload, has_priority=kind == HEADERS)
            pending_end = pending_end or bool(kind == HEADERS and flags & END_STREAM)
            if flags & END_HEADERS:
                blocks.append(decoder.decode(bytes(block)))
                block.clear()
                if pending_end:
                    break
        elif kind == DATA:
            data += _unpad(flags, payload)
            if len(data) > MAX_RESPONSE:
                raise ProtocolError("response too large")
            if flags & END_STREAM:
                break
        else:
            raise ProtocolError(f"unexpected frame type {kind}")
    return _message(blocks, bytes(data))


def _message(blocks: list[list[tuple[str, str]]], data: bytes) -> bytes:
    if not blocks:
        raise ProtocolError("no response headers")
    first = dict(blocks[0])
    if first.get(":status") != "200":
        raise CallError("UNAVAILABLE", f"HTTP status {first.get(':status')} from the daemon")
    trailers = dict(blocks[-1])
    if "grpc-status" not in trailers:
        raise ProtocolError("no grpc-status in the trailers")
    status = trailers["grpc-status"]
    if status != "0":
        code = STATUS[int(status)] if status.isdigit() and int(status) < len(STATUS) else "UNKNOWN"
        raise CallError(code, _unquote(trailers.get("grpc-message", "")))
    if len(data) < 5 or data[0] != 0:
        raise ProtocolError("missing or compressed response message")
    length = int.from_bytes(data[1:5], "big")
    if len(data) != 5 + length:
        raise ProtocolError("response message length does not match")
    return data[5:]
