"""The network seam of the registry client: all HTTP goes through one :class:`Transport`.

HTTP goes through ``urllib3`` (v2) because it gives pooled keep-alive connections, separate
connect and read timeouts and streamed bodies that we can cut off at a bound, while letting us
turn off its redirects and retries so that this module decides which headers follow a redirect.
``requests`` would add automatic redirects and its own auth handling that we would have to fight,
and ``http.client`` alone has no connection pool.

The network sits behind one seam, :class:`Transport` (modelled on python-tuf's
``FetcherInterface``): tests plug in a scripted network to produce timeouts, retries, redirects
and oversized bodies on demand.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import urllib3
import urllib3.exceptions

from .errors import BadResponse, TooLarge, Unreachable

__all__ = ["Response", "Transport", "Urllib3Transport"]

log = logging.getLogger("pullgate.registry")

_CHUNK = 64 << 10


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP exchange's answer. ``headers`` have lower-case keys (repeated headers joined with
    ``", "``, as HTTP allows)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def __repr__(self) -> str:
        # Bodies may be tokens and URLs may be pre-signed: show neither.
        where = _display_url(self.url)
        return f"Response(status={self.status}, url={where!r}, body=<{len(self.body)} bytes>)"


class Transport(Protocol):
    """All network I/O goes through this one method, so tests plug in a faulty network.

    Implementations raise :class:`Unreachable` on connection errors and timeouts and
    :class:`TooLarge` when the body exceeds ``max_bytes`` (without reading past it), return every
    HTTP status as a :class:`Response` (errors included), and never follow redirects: the client
    decides what a redirect may carry.
    """

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        max_bytes: int,
    ) -> Response: ...


class Urllib3Transport:
    """:class:`Transport` over a ``urllib3.PoolManager``: keep-alive connections are reused across
    requests to the same host, TLS is verified against the system CA bundle, and urllib3's own
    retries and redirects are off.

    ``timeout`` bounds the whole exchange: connecting, waiting for the headers and reading the
    body together, so a registry that accepts and then stalls, or sends a byte now and then,
    is cut off after ``timeout`` seconds. A request that fails because the server dropped the
    connection before answering is sent once more on a fresh connection, within the same
    ``timeout``: with keep-alive, a registry may close an idle pooled connection just as a
    request goes out (only GET and HEAD are sent here, so repeating one is safe).
    """

    def __init__(self, pool: urllib3.PoolManager | None = None) -> None:
        self._pool = pool or urllib3.PoolManager(num_pools=16, maxsize=4, retries=False)

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        max_bytes: int,
    ) -> Response:
        where = _display_url(url)
        host = urllib.parse.urlsplit(url).netloc
        started = time.monotonic()
        wait = timeout
        for attempt in (1, 2):
            try:
                resp = self._pool.request(
                    method,
                    url,
                    headers=dict(headers),
                    # total: connecting and waiting for the headers share ``wait``
                    timeout=urllib3.Timeout(connect=wait, read=wait, total=wait),
                    redirect=False,
                    retries=False,
                    preload_content=False,
                )
                break
            except urllib3.exceptions.ProtocolError as exc:
                # Sent again only within the same ``timeout``: the two tries share it.
                wait = timeout - (time.monotonic() - started)
                if attempt == 2 or wait <= 0:
                    raise _unreachable(exc, host, where, timeout) from None
                log.debug("%s %s: connection dropped before an answer; once more", method, where)
            except urllib3.exceptions.HTTPError as exc:
                raise _unreachable(exc, host, where, timeout) from None
        complete = False
        deadline = started + timeout
        try:
            body = b"" if method == "HEAD" else self._read(resp, method, where, max_bytes, deadline)
            complete = True
        except urllib3.exceptions.DecodeError:
            raise BadResponse(
                f"{method} {where}: the body could not be decoded with its Content-Encoding"
            ) from None
        except urllib3.exceptions.ReadTimeoutError as exc:
            if time.monotonic() < deadline:
                raise _unreachable(exc, host, where, timeout) from None
            raise _too_slow(host, timeout) from None
        except urllib3.exceptions.HTTPError as exc:
            raise _unreachable(exc, host, where, timeout) from None
        finally:
            if not complete:
                resp.close()  # unread data would poison the next request on this connection
            resp.release_conn()
        # HTTPHeaderDict's [] joins repeated headers with ", " (its items() would not).
        return Response(resp.status, {k.lower(): resp.headers[k] for k in resp.headers}, body, url)

    @staticmethod
    def _read(
        resp: urllib3.BaseHTTPResponse, method: str, where: str, max_bytes: int, deadline: float
    ) -> bytes:
        """The whole body, or TooLarge as soon as it is known to exceed ``max_bytes``.

        Read as it arrives, and only until ``deadline``: a registry that sends a byte now and
        then is cut off there, though no single read from the socket times out.
        """
        length = resp.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise TooLarge(
                f"{method} {where} announced {int(length)} bytes, over the limit of "
                f"{max_bytes} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise urllib3.exceptions.ReadTimeoutError(None, where, "body deadline")  # type: ignore[arg-type]
            sock = getattr(resp.connection, "sock", None)
            if sock is not None:
                sock.settimeout(left)  # the next read waits no longer than the deadline
            chunk = resp.read1(_CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(
                    f"the body of {method} {where} is over the limit of {max_bytes} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _unreachable(
    exc: urllib3.exceptions.HTTPError, host: str, where: str, timeout: float
) -> Unreachable:
    """Say which network failure happened, in words an operator can act on.

    The reason names the host but not ``where`` (the URL): the registry client puts what it
    was fetching in front. The order matters: urllib3 derives NameResolutionError from
    NewConnectionError, and that from ConnectTimeoutError, so a refused connection is also a
    "ConnectTimeoutError".
    """
    log.debug("%s: %s", where, type(exc).__name__)
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return Unreachable(
            f"cannot resolve the host name of {host} (DNS); check the registry name and the "
            "node's DNS"
        )
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return Unreachable(
            f"cannot connect to {host}: {_os_error_text(exc)}; check that the registry is "
            "running and the host and port are right"
        )
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return Unreachable(
            f"connecting to {host} timed out (connect timeout {timeout:.3g} s); check that the "
            "registry is up and reachable from this node"
        )
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return Unreachable(
            f"{host} accepted the connection but sent nothing for {timeout:.3g} s: timed out "
            f"(read timeout {timeout:.3g} s); the registry is stalled or overloaded, or raise the "
            "timeout"
        )
    if isinstance(exc, urllib3.exceptions.SSLError):
        return Unreachable(
            f"TLS with {host} failed: {_os_error_text(exc)}; if the registry serves plain "
            "HTTP, list it as insecure, or install its CA in the system trust store"
        )
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        cause = _cause(exc)
        if isinstance(cause, http.client.IncompleteRead):
            got, missing = _incomplete(cause)
            return Unreachable(
                f"{host} closed the connection after {got} bytes of the body, {missing} bytes "
                "short of its Content-Length: the body is truncated (incomplete); the registry "
                "or a proxy cut it off"
            )
        if isinstance(cause, http.client.RemoteDisconnected):
            return Unreachable(
                f"the connection to {host} broke: closed without an answer; the registry or a "
                "proxy in between dropped the request"
            )
        return Unreachable(
            f"the connection to {host} broke: {_os_error_text(exc)}; the registry or a proxy "
            "closed it"
        )
    return Unreachable(f"request to {host} failed: {type(exc).__name__}")


def _too_slow(host: str, timeout: float) -> Unreachable:
    return Unreachable(
        f"{host} was still sending the body after {timeout:.3g} s: timed out (each request "
        "gets the timeout in all); the registry or the network is too slow, or raise the timeout"
    )


def _cause(exc: urllib3.exceptions.ProtocolError) -> BaseException | None:
    """What broke the connection: urllib3 passes it as the second argument."""
    for arg in exc.args[1:]:
        if isinstance(arg, BaseException):
            return arg
    return exc.__cause__ or exc.__context__


def _incomplete(exc: http.client.IncompleteRead) -> tuple[int, int]:
    """(bytes received, bytes missing) of a body cut short."""
    partial = exc.partial if isinstance(exc.partial, int) else len(exc.partial)
    expected = exc.expected if isinstance(exc.expected, int) else 0
    return partial, expected


def _os_error_text(exc: BaseException) -> str:
    """The operating system's words for the failure under ``exc`` (e.g. 'connection refused'),
    without urllib3's wrapper text, which embeds object reprs."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
        for arg in getattr(current, "args", ()):
            if isinstance(arg, OSError) and arg.strerror:
                return arg.strerror.lower()
        current = current.__cause__ or current.__context__
    return type(exc).__name__


def _display_url(url: str) -> str:
    """``url`` without user info, query or fragment: pre-signed storage URLs carry credentials
    in the query, and none of it is needed to act on an error."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
