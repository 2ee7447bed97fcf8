"""A fault-injecting HTTP reverse proxy on 127.0.0.1, in front of the real test registry.

pullgate is pointed at the proxy (its ``host:port`` listed in ``registry.insecure``); the proxy
forwards every request to the registry and answers with what it got, unless a fault applies.
A fault applies to a request when ``set_fault(fault, match=...)`` named a substring of its path
(the most recent matching rule wins), or at random with probability ``fail_rate``, drawn from
``random_faults`` with a seeded generator (so a run can be repeated).

The faults (``FAULTS``), each what a real network, registry or middlebox does:

- ``refuse``: close the connection at once, without an answer;
- ``reset_mid_body``: send the headers and part of the body, then RST (``SO_LINGER`` 0);
- ``slow``: answer only after ``slow_seconds`` (longer than the client's timeout);
- ``status_500``, ``status_502``, ``status_503``: that status, with a distribution error body;
- ``status_429``: 429 without ``Retry-After``; ``status_429_retry_after``: ``Retry-After: 1``;
- ``redirect_other_host``: 302 to the same path on another host (``127.0.0.2``, or
  ``localhost`` where ``127.0.0.2`` cannot be bound), which serves no registry content: it
  answers 403 DENIED, as a storage host does to a request it has no grant for;
- ``redirect_loop``: 302 to the path with ``?redirect-loop``, which redirects back: a loop;
- ``wrong_content_type``: the registry's answer, served as ``text/html``;
- ``truncated_body``: the real ``Content-Length``, half the body, then a clean close (FIN);
- ``oversized_body``: 200 with ``oversize_bytes`` of junk, chunked (no length announced);
- ``blob_digest_mismatch``: the registry's answer with one byte of the body changed;
- ``manifest_not_json``: the registry's status and headers with a body that is not JSON.

``EXTRA_FAULTS`` are outside ``FAULTS`` (so loops over ``FAULTS`` stay as they were).

The bodies the proxy invents never contain the words a client's reason is expected to use
("refused", "timed out", "rate-limit", ...), so a test that finds them found the client's.
Thread-safe; starts and stops in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import random
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["EXTRA_FAULTS", "FAST_FAULTS", "FAULTS", "FaultProxy", "start_fault_proxy"]

log = logging.getLogger("lab.faultproxy")

FAULTS: tuple[str, ...] = (
    "refuse",
    "reset_mid_body",
    "slow",
    "status_500",
    "status_502",
    "status_503",
    "status_429",
    "status_429_retry_after",
    "redirect_other_host",
    "redirect_loop",
    "wrong_content_type",
    "truncated_body",
    "oversized_body",
    "blob_digest_mismatch",
    "manifest_not_json",
)
FAST_FAULTS: tuple[str, ...] = tuple(f for f in FAULTS if f != "slow")
"""Every fault that answers at once (``slow`` waits ``slow_seconds``)."""
EXTRA_FAULTS: tuple[str, ...] = ("drip_body",)
"""Accepted by ``set_fault`` but not in ``FAULTS``: ``drip_body`` sends the real headers, then
the body a byte every ``drip_seconds`` (each read is quick; the whole never ends in time)."""

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_STATUS = {
    "status_500": (500, "UNKNOWN"),
    "status_502": (502, "UNKNOWN"),
    "status_503": (503, "UNAVAILABLE"),
    "status_429": (429, "TOOMANYREQUESTS"),
    "status_429_retry_after": (429, "TOOMANYREQUESTS"),
}
_LOOP_MARK = "redirect-loop"
_NOT_JSON = b"<html><body>injected by the fault proxy</body></html>\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], proxy: FaultProxy, *, other: bool) -> None:
        self.proxy = proxy
        self.other = other  # the "other host" a redirect points to
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up on faults all the time (that is the point): not worth a traceback.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def setup(self) -> None:
        super().setup()
        self.server.proxy._opened(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()
        self.server.proxy._closed(self.connection)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_GET
    do_POST = do_GET
    do_PUT = do_GET
    do_PATCH = do_GET
    do_DELETE = do_GET

    # - the answer -

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._request_body()
        if self.server.other:
            proxy._count("ok")
            self._answer(403, _error_body("DENIED", "no grant for this object"), {})
            return
        fault = proxy._choose(self.path)
        proxy._count(fault or "ok")
        try:
            self._apply(fault, body)
        except OSError:
            self.close_connection = True  # the client hung up (it timed out, or gave up)

    def _apply(self, fault: str | None, body: bytes | None) -> None:
        proxy = self.server.proxy
        if fault == "refuse":
            self._hang_up(reset=False)
            return
        if fault in _STATUS:
            status, code = _STATUS[fault]
            extra = {"Retry-After": "1"} if fault == "status_429_retry_after" else {}
            self._answer(status, _error_body(code, "fault proxy"), extra)
            return
        if fault == "redirect_other_host":
            self._answer(302, b"", {"Location": f"http://{proxy.other_address}{self.path}"})
            return
        if fault == "redirect_loop":
            path, _, query = self.path.partition("?")
            target = path if query == _LOOP_MARK else f"{path}?{_LOOP_MARK}"
            self._answer(302, b"", {"Location": target})
            return
        if fault == "oversized_body":
            self._oversized()
            return
        if fault == "slow" and proxy._stopping.wait(proxy.slow_seconds):
            self._hang_up(reset=False)  # stopping: do not keep the client waiting
            return
        status, headers, payload, length = proxy._forward(
            self.command, self.path.partition("?" + _LOOP_MARK)[0], self.headers, body
        )
        if fault == "wrong_content_type":
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.append(("Content-Type", "text/html; charset=utf-8"))
        elif fault == "blob_digest_mismatch" and payload:
            payload = payload[:-1] + bytes([payload[-1] ^ 0x01])
        elif fault == "manifest_not_json" and self.command != "HEAD":
            payload = _NOT_JSON
        if self.command != "HEAD":
            length = len(payload)
        if fault in ("reset_mid_body", "truncated_body"):
            self._cut(status, headers, payload, reset=fault == "reset_mid_body")
            return
        if fault == "drip_body" and self.command != "HEAD":
            self.wfile.write(self._head(status, headers, len(payload)))
            for i in range(len(payload)):
                if proxy._stopping.wait(proxy.drip_seconds):
                    break
                self.wfile.write(payload[i : i + 1])
            self._hang_up(reset=False)
            return
        self._send(status, headers, payload, length=length)

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        pairs = [("Content-Type", "application/json")] if body else []
        self._send(status, [*pairs, *headers.items()], body, length=len(body))

    def _head(self, status: int, headers: list[tuple[str, str]], length: int | None) -> bytes:
        reason = http.client.responses.get(status, "Unknown")
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        else:
            lines.append("Transfer-Encoding: chunked")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(
        self, status: int, headers: list[tuple[str, str]], body: bytes, *, length: int
    ) -> None:
        data = self._head(status, headers, length)
        if self.command != "HEAD":
            data += body
        self.wfile.write(data)

    def _cut(
        self, status: int, headers: list[tuple[str, str]], body: bytes, *, reset: bool
    ) -> None:
        """The full length announced, half of what follows sent, then the connection ended."""
        head = self._head(status, headers, len(body))
        if self.command != "HEAD" and body:
            self.wfile.write(head + body[: len(body) // 2])
        else:
            self.wfile.write(head[: len(head) // 2])
        self._hang_up(reset=reset)

    def _oversized(self) -> None:
        headers = [("Content-Type", "application/vnd.oci.image.manifest.v1+json")]
        self.wfile.write(self._head(200, headers, None))
        if self.command == "HEAD":
            return
        chunk = b"x" * (64 << 10)
        left = self.server.proxy.oversize_bytes
        while left > 0 and not self.server.proxy._stopping.is_set():
            piece = chunk[:left]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            left -= len(piece)
        self.wfile.write(b"0\r\n\r\n")

    def _hang_up(self, *, reset: bool) -> None:
        """End the connection now: RST when ``reset`` (SO_LINGER 0), else a clean FIN."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError, ValueError):
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
            # The buffered files hold references: the descriptor closes with the last of them.
            self.wfile.close()
            self.rfile.close()
            sock.close()

    def _request_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is not None and length.isdigit():
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return None


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


class FaultProxy:
    """A running proxy; see the module docstring. ``address`` is ``127.0.0.1:PORT``."""

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        fail_rate: float = 0.0,
        random_faults: tuple[str, ...] = FAST_FAULTS,
    ) -> None:
        unknown = set(random_faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        self.upstream = upstream
        self.fail_rate = fail_rate
        self.random_faults = tuple(random_faults)
        self.counts: dict[str, int] = dict.fromkeys((*FAULTS, *EXTRA_FAULTS, "ok"), 0)
        self.slow_seconds = 3.0
        self.drip_seconds = 0.2
        self.oversize_bytes = 8 << 20
        self._random = random.Random(seed)
        self._rules: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), self, other=False)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        try:
            self._other = _Server(("127.0.0.2", 0), self, other=True)
            self.other_address = f"127.0.0.2:{self._other.server_address[1]}"
        except OSError:  # no 127.0.0.2 here: "localhost" is still another host name
            self._other = _Server(("127.0.0.1", 0), self, other=True)
            self.other_address = f"localhost:{self._other.server_address[1]}"
        self._threads = [
            threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True)
            for s in (self._server, self._other)
        ]
        for thread in self._threads:
            thread.start()

    def __repr__(self) -> str:
        return f"FaultProxy({self.address} -> {self.upstream}, rules={self._rules!r})"

    def set_fault(self, fault: str | None, *, match: str = "") -> None:
        """Every request whose path contains ``match`` gets ``fault``; ``None`` clears the rule
        for ``match`` (``set_fault(None)`` clears every rule)."""
        if fault is not None and fault not in FAULTS + EXTRA_FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS + EXTRA_FAULTS)}")
        with self._lock:
            if fault is None:
                if match:
                    self._rules.pop(match, None)
                else:
                    self._rules.clear()
                return
            self._rules.pop(match, None)
            self._rules[match] = fault  # most recent last

    def stop(self) -> None:
        self._stopping.set()
        for server in (self._server, self._other):
            server.shutdown()
            server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # kept-alive client connections: end them too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)

    # - used by the handlers -

    def _choose(self, path: str) -> str | None:
        with self._lock:
            for match, fault in reversed(self._rules.items()):
                if match in path:
                    return fault
            if self.random_faults and self._random.random() < self.fail_rate:
                return self._random.choice(self.random_faults)
        return None

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def _opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _forward(
        self, method: str, path: str, headers: Any, body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes, int]:
        """The registry's answer to the request, read whole, and its length (for a HEAD, the
        length the registry announced)."""
        host, _, port = self.upstream.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            # Keep the client's Host: the registry builds Location URLs from it.
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            payload = resp.read()
            pairs = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
            length = len(payload)
            announced = resp.getheader("Content-Length") or ""
            if method == "HEAD" and announced.isdigit():
                length = int(announced)
            return resp.status, pairs, payload, length
        finally:
            conn.close()


def start_fault_proxy(
    upstream: str,
    *,
    seed: int = 0,
    fail_rate: float = 0.0,
    random_faults: tuple[str, ...] = FAST_FAULTS,
) -> FaultProxy:
    """A proxy on ``127.0.0.1`` forwarding to ``upstream`` (``host:port``); stop() it after."""
    return FaultProxy(upstream, seed=seed, fail_rate=fail_rate, random_faults=random_faults)
