"""The registry client: manifests, blobs and referrers, read with docker's authentication.

Authentication follows docker's: anonymous first, then the ``WWW-Authenticate`` challenge
(``Basic`` with the host's credentials, or ``Bearer`` with a token from the realm, cached per
host and scope). Credentials come from a :class:`~.credentials.CredentialStore`.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import ipaddress
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import __version__, metrics
from ..reference import DIGEST_HEX_LENGTHS, ImageRef, InvalidReference, parse_digest
from .budget import Budget, current_budget
from .challenges import Challenge, parse_challenges
from .credentials import DOCKER_HUB, Credentials, CredentialStore
from .errors import (
    BadReference,
    BadResponse,
    DigestMismatch,
    NotFound,
    TooLarge,
    Unauthorized,
    Unreachable,
)
from .transport import Response, Transport, Urllib3Transport, _display_url

__all__ = [
    "DOCKER_HUB_API",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "MAX_REDIRECTS",
    "MAX_REFERRER_PAGES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Manifest",
    "RegistryClient",
]

log = logging.getLogger("pullgate.registry")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES: tuple[str, ...] = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
"""Every manifest type this client accepts, in the order of preference sent in ``Accept``."""

INDEX_TYPES: tuple[str, ...] = (OCI_INDEX, DOCKER_MANIFEST_LIST)

DOCKER_HUB_API = "registry-1.docker.io"
"""The host that serves the distribution API for ``docker.io`` images."""

MAX_REDIRECTS = 5
MAX_REFERRER_PAGES = 10
"""Pages of the referrers API followed through ``Link: <...>; rel="next"`` before giving up."""
_MAX_TOKEN_BYTES = 1 << 20
_MAX_ERROR_BYTES = 64 << 10
_DEFAULT_TOKEN_LIFETIME = 60.0
_TOKEN_EXPIRY_MARGIN = 1.0
"""Seconds before ``expires_in`` at which a cached token is no longer sent (clock skew)."""
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_FIRST_BACKOFF = 0.5
"""Wait before the first retry when the registry sends no ``Retry-After``; doubles each time."""
_USER_AGENT = f"pullgate/{__version__}"
_GENERIC_TYPES = frozenset({"application/json", "application/octet-stream"})
"""Content-Types some registries serve manifests with; the document's own mediaType decides."""

# A bearer token goes into a header: printable ASCII without spaces (RFC 6750 b64token and JWTs).
_BEARER_RE = re.compile(r"[!-~]+")
_LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest or index exactly as served; ``digest`` is the sha256 of ``data``."""

    media_type: str
    digest: str
    data: bytes = field(repr=False)

    def json(self) -> dict[str, Any]:
        """The parsed document; :class:`BadResponse` unless it is a JSON object."""
        return _json_object(self.data, f"manifest {self.digest}")


# --- the client --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    """A response and how the request was authenticated (for error messages)."""

    response: Response
    auth: str


@dataclass(slots=True)
class _Token:
    value: str = field(repr=False)
    expires: float


class RegistryClient:
    """Read-only access to OCI registries with docker's authentication and strict bounds.

    One client serves many registries and threads: tokens are cached per (host, scope) until
    they expire and connections are pooled by the transport. ``registry`` arguments are the
    normalised host of ``ImageRef.registry`` (``docker.io`` is reached at
    ``registry-1.docker.io``).

    ``sleep`` and ``clock`` (monotonic seconds, for token expiry) are there for tests.

    ``insecure`` lists hosts (``host`` matches every port, ``host:port`` one) reached over plain
    HTTP. Credentials and tokens are only ever sent over HTTPS, or over HTTP to an insecure or
    loopback host, and never to a redirect target on another host. Each request is retried
    ``retries`` times on 429/500/502/503/504, waiting as ``Retry-After`` says (or 0.5 s, 1 s, ...)
    but never longer than ``timeout``. Inside :func:`~.budget.registry_budget` (one
    verification) ``timeout`` bounds all the requests, retries and waits together.
    """

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        credentials: CredentialStore | None = None,
        insecure: Iterable[str] = (),
        timeout: float = 5.0,
        retries: int = 2,
        max_manifest_bytes: int = 4 << 20,
        max_blob_bytes: int = 4 << 20,
        bound_names: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries!r}")
        if max_manifest_bytes <= 0 or max_blob_bytes <= 0:
            raise ValueError("max_manifest_bytes and max_blob_bytes must be positive")
        self.transport: Transport = transport or Urllib3Transport()
        self.credentials = credentials
        self.insecure = frozenset(h.strip().lower() for h in insecure if h.strip())
        self.timeout = timeout
        self.retries = retries
        self.max_manifest_bytes = max_manifest_bytes
        self.max_blob_bytes = max_blob_bytes
        # What users call the bounds in messages (the daemon: its config keys).
        self.bound_names = dict(bound_names or {})
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._basic: dict[str, Credentials] = {}

    def __repr__(self) -> str:
        return (
            f"RegistryClient(transport={type(self.transport).__name__}, "
            f"insecure={sorted(self.insecure)!r}, timeout={self.timeout:g})"
        )

    # - public API -

    def manifest(
        self,
        registry: str,
        repository: str,
        reference: str,
        *,
        accept: Sequence[str] = MANIFEST_TYPES,
    ) -> Manifest:
        """The manifest or index at ``reference`` (a tag or a digest).

        With a digest the body must hash to it (:class:`DigestMismatch` otherwise). The body
        must be a JSON object of one of the ``accept`` media types.
        """
        ref = _check_reference(registry, repository, reference)
        what = f"manifest {_name(registry, repository, reference)}"
        call = self._get(
            registry,
            repository,
            "GET",
            f"manifests/{reference}",
            {"Accept": ", ".join(accept)},
            self.max_manifest_bytes,
            what,
            "max_manifest_bytes",
        )
        self._expect_ok(call, what, registry, repository)
        body = call.response.body
        if ref.digest is not None:
            _verify_digest(body, ref.digest, what)
        doc = _json_object(body, what)
        media_type = _media_type(doc, call.response, what)
        if media_type not in accept:
            raise BadResponse(
                f"{what} is of type {media_type!r}, not one of the accepted {', '.join(accept)}"
                + (" (its Content-Type)" if not doc.get("mediaType") else "")
            )
        return Manifest(media_type, _sha256(body), body)

    def resolve(self, registry: str, repository: str, reference: str) -> str:
        """The digest of the manifest at ``reference``.

        A ``HEAD`` whose ``Docker-Content-Digest`` is a sha256 digest answers it (and must equal
        ``reference`` when that is a digest); otherwise the manifest is fetched and hashed.
        """
        ref = _check_reference(registry, repository, reference)
        what = f"manifest {_name(registry, repository, reference)}"
        call = self._get(
            registry,
            repository,
            "HEAD",
            f"manifests/{reference}",
            {"Accept": ", ".join(MANIFEST_TYPES)},
            0,
            what,
            "max_manifest_bytes",
        )
        if call.response.status in (401, 403):
            self._expect_ok(call, what, registry, repository)
        header = call.response.headers.get("docker-content-digest", "")
        if (
            call.response.status == 200
            and header.startswith("sha256:")
            and _is_digest(header)
            and (ref.digest is None or ref.digest == header)
        ):
            return header
        log.debug(
            "HEAD %s gave no usable digest (status %d); fetching it", what, call.response.status
        )
        return self.manifest(registry, repository, reference).digest

    def blob(
        self, registry: str, repository: str, digest: str, *, max_bytes: int | None = None
    ) -> bytes:
        """The blob ``digest``, at most ``max_bytes`` (default ``max_blob_bytes``), verified."""
        _check_reference(registry, repository, digest, digest_only=True)
        bound = self.max_blob_bytes if max_bytes is None else max_bytes
        what = f"blob {_name(registry, repository, digest)}"
        call = self._get(
            registry,
            repository,
            "GET",
            f"blobs/{digest}",
            {},
            bound,
            what,
            "max_bytes" if max_bytes is not None else "max_blob_bytes",
        )
        self._expect_ok(call, what, registry, repository)
        _verify_digest(call.response.body, digest, what)
        return call.response.body

    def referrers(
        self,
        registry: str,
        repository: str,
        digest: str,
        *,
        artifact_type: str | None = None,
    ) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose ``subject`` is ``digest`` (signatures, SBOMs...).

        Uses the OCI 1.1 referrers API, and the ``<alg>-<hex>`` tag schema when the registry has
        no such API (404, 400, 405 or 501). Only descriptors of ``artifact_type`` are returned
        when it is given (filtered here even when the registry filtered too). No referrers at all
        is ``[]``.
        """
        _check_reference(registry, repository, digest, digest_only=True)
        what = f"referrers of {_name(registry, repository, digest)}"
        path = f"referrers/{digest}"
        if artifact_type is not None:
            path += "?" + urllib.parse.urlencode({"artifactType": artifact_type})
        found: list[dict[str, Any]] = []
        for page in range(MAX_REFERRER_PAGES):
            call = self._get(
                registry,
                repository,
                "GET",
                path,
                {"Accept": OCI_INDEX},
                self.max_manifest_bytes,
                what,
                "max_manifest_bytes",
            )
            status = call.response.status
            if page == 0 and status in (400, 404, 405, 501):
                log.debug("%s: no referrers API (status %d); using the tag schema", what, status)
                return _filter(self._referrers_tag(registry, repository, digest), artifact_type)
            self._expect_ok(call, what, registry, repository)
            found.extend(_descriptors(_json_object(call.response.body, what), what))
            link = _LINK_NEXT_RE.search(call.response.headers.get("link", ""))
            if link is None:
                return _filter(found, artifact_type)
            path = self._same_registry_path(registry, repository, call.response.url, link.group(1))
        raise BadResponse(
            f"{what}: more than {MAX_REFERRER_PAGES} pages of referrers; the registry's Link "
            "headers do not end"
        )

    # - referrers helpers -

    def _referrers_tag(self, registry: str, repository: str, digest: str) -> list[dict[str, Any]]:
        algorithm, _, hex_digest = digest.partition(":")
        tag = f"{algorithm[:32]}-{hex_digest[:64]}"
        what = f"referrers tag {_name(registry, repository, tag)}"
        try:
            index = self.manifest(registry, repository, tag)
        except NotFound:
            return []
        if index.media_type != OCI_INDEX:
            raise BadResponse(
                f"{what} holds a {index.media_type}, not the OCI index that the referrers tag "
                "schema puts there; something else uses that tag"
            )
        return _descriptors(index.json(), what)

    def _same_registry_path(self, registry: str, repository: str, url: str, link: str) -> str:
        """The path below ``/v2/<repository>/`` of a ``Link`` target, which must stay there."""
        target = urllib.parse.urlsplit(urllib.parse.urljoin(url, link))
        prefix = f"/v2/{repository}/"
        if target.netloc.lower() != self._api_host(registry) or not target.path.startswith(prefix):
            raise BadResponse(
                f"referrers of {registry}/{repository}: the next-page Link points outside the "
                f"repository ({_display_url(target.geturl())})"
            )
        return target.path[len(prefix) :] + (f"?{target.query}" if target.query else "")

    # - status handling -

    def _expect_ok(self, call: _Call, what: str, registry: str, repository: str) -> None:
        """Raise the error that a non-200 answer means, in terms of ``what`` was asked."""
        resp = call.response
        if resp.status == 200:
            return
        detail = _error_detail(resp)
        other = urllib.parse.urlsplit(resp.url).netloc.lower()
        if resp.status != 404 and other != self._api_host(registry).lower():
            # A storage redirect: the other host's refusal is not the registry's.
            raise BadResponse(
                f"{what}: the registry redirected the request to another host, {other}, which "
                f"answered HTTP {resp.status}{detail}; the registry's storage is misconfigured "
                "or refuses this node"
            )
        if resp.status == 404:
            raise NotFound(f"{what} not found{detail}; check the repository, tag or digest")
        if resp.status in (401, 403):
            how = call.auth
            if how == "anonymously":
                found = self._lookup(registry) is not None
                how += (
                    f" (credentials for {registry} exist, but the registry did not ask for them)"
                    if found
                    else f" ({self._no_credentials(registry)})"
                )
            raise Unauthorized(
                f"{registry} denied pull access to {repository} ({resp.status}{detail}) when "
                f"asked {how}; check that the account may pull it"
            )
        raise BadResponse(
            f"{what}: unexpected HTTP status {resp.status}{detail} from {_display_url(resp.url)}"
        )

    # - authentication -

    def _get(
        self,
        registry: str,
        repository: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        max_bytes: int,
        what: str,
        bound_name: str,
    ) -> _Call:
        """One authenticated request to ``/v2/<repository>/<path>``.

        Sends cached credentials for the host and scope first; on a 401 answers the challenge
        and retries once. Returns any other status for the caller to interpret.
        """
        url = f"{self._base_url(registry)}/v2/{repository}/{path}"
        scope = f"repository:{repository}:pull"
        authorization, auth = self._cached_authorization(registry, scope)
        try:
            resp = self._send(method, url, headers, authorization, max_bytes, what)
            if resp.status != 401 or not self._same_host(resp.url, url):
                return _Call(resp, auth)
            authorization, auth = self._answer(registry, repository, resp, authorization, what)
            resp = self._send(method, url, headers, authorization, max_bytes, what)
        except TooLarge as exc:
            name = self.bound_names.get(bound_name, bound_name)
            advice = f"; raise {name} if this is legitimate" if name != bound_name else ""
            raise TooLarge(
                f"{what} is larger than {name}={max_bytes} bytes; it was not downloaded "
                f"({exc.reason}){advice}"
            ) from None
        if resp.status == 401 and self._same_host(resp.url, url):
            self._forget(registry)
            raise Unauthorized(
                f"{registry} rejected the request for {what} {auth}{_error_detail(resp)}; "
                "check the username and password (or token) for this registry"
            )
        return _Call(resp, auth)

    def _cached_authorization(self, registry: str, scope: str) -> tuple[str | None, str]:
        with self._lock:
            token = self._tokens.get((registry, scope))
            if token is not None and token.expires > self._clock():
                return f"Bearer {token.value}", "with a cached bearer token"
            basic = self._basic.get(registry)
        if basic is not None:
            return _basic_header(basic), f"with the credentials for {registry} ({basic.username})"
        return None, "anonymously"

    def _forget(self, registry: str) -> None:
        with self._lock:
            self._basic.pop(registry, None)
            for key in [k for k in self._tokens if k[0] == registry]:
                del self._tokens[key]

    def _answer(
        self,
        registry: str,
        repository: str,
        resp: Response,
        sent: str | None,
        what: str,
    ) -> tuple[str, str]:
        """The ``Authorization`` value that answers ``resp``'s challenge, and how it was got."""
        header = resp.headers.get("www-authenticate", "")
        challenges = {c.scheme: c for c in parse_challenges(header)}
        if "bearer" in challenges:
            return self._bearer(registry, repository, challenges["bearer"], sent, what)
        if "basic" in challenges:
            creds = self._lookup(registry)
            if creds is None:
                realm = challenges["basic"].params.get("realm", "")
                raise Unauthorized(
                    f"{registry} requires a username and password (Basic realm {realm!r}) for "
                    f"{what}, and {self._no_credentials(registry)}"
                )
            if not self._may_send_credentials(resp.url):
                raise Unauthorized(self._plain_http_refusal(registry, what))
            with self._lock:
                self._basic[registry] = creds
            return _basic_header(creds), f"with the credentials for {registry} ({creds.username})"
        if not challenges:
            raise Unauthorized(
                f"{registry} answered 401 for {what} without a WWW-Authenticate challenge; "
                "it cannot be logged in to this way"
            )
        raise Unauthorized(
            f"{registry} asks for authentication scheme(s) {', '.join(sorted(challenges))} for "
            f"{what}; only Basic and Bearer are supported"
        )

    def _bearer(
        self,
        registry: str,
        repository: str,
        challenge: Challenge,
        sent: str | None,
        what: str,
    ) -> tuple[str, str]:
        """A token from the challenge's realm (docker's token protocol), cached until it expires.

        The host's credentials go to the realm as basic auth, as docker does; an identity token
        (user ``<token>``) goes the same way, which registries that only take it as an OAuth2
        ``refresh_token`` POST will refuse (the Transport has no request body).
        """
        realm = challenge.params.get("realm", "")
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadResponse(
                f"{registry} sent a Bearer challenge whose realm {_display_url(realm)!r} is not "
                "an http(s) URL; the registry is misconfigured"
            )
        scope = challenge.params.get("scope") or f"repository:{repository}:pull"
        with self._lock:
            cached = self._tokens.get((registry, scope))
        if (
            cached is not None
            and cached.expires > self._clock()
            and sent != f"Bearer {cached.value}"
        ):
            return f"Bearer {cached.value}", "with a cached bearer token"
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        query.extend(("scope", s) for s in scope.split())
        sep = "&" if parts.query else "?"
        token_url = realm + (sep + urllib.parse.urlencode(query) if query else "")
        creds = self._lookup(registry)
        authorization = None
        if creds is not None and self._may_send_credentials(token_url):
            authorization = _basic_header(creds)
            note = f"the credentials for {registry} ({creds.username}) were sent"
        elif creds is not None:
            note = (
                f"credentials for {registry} exist but were not sent to the plain-HTTP token "
                f"service {parts.netloc}"
            )
        else:
            note = self._no_credentials(registry)
        how = f"with a bearer token ({note})"
        token_what = f"the token for {what} from {parts.netloc}"
        try:
            resp = self._send("GET", token_url, {}, authorization, _MAX_TOKEN_BYTES, token_what)
        except TooLarge:
            raise BadResponse(
                f"{token_what}: the token service answered more than {_MAX_TOKEN_BYTES} bytes"
            ) from None
        if resp.status in (401, 403):
            raise Unauthorized(
                f"the token service {parts.netloc} of {registry} refused a token for {scope} "
                f"({resp.status}{_error_detail(resp)}); {note}"
            )
        if resp.status != 200:
            raise BadResponse(
                f"{token_what}: unexpected HTTP status {resp.status}{_error_detail(resp)}"
            )
        doc = _json_object(resp.body, token_what)
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not _BEARER_RE.fullmatch(token):
            raise BadResponse(
                f"{token_what}: the answer has no usable 'token' or 'access_token' (a string of "
                "printable characters without spaces)"
            )
        lifetime = doc.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = _DEFAULT_TOKEN_LIFETIME
        cached = _Token(token, self._clock() + float(lifetime) - _TOKEN_EXPIRY_MARGIN)
        with self._lock:
            self._tokens[(registry, scope)] = cached
            # Under the repository's pull scope too, so the next request sends it at once.
            self._tokens[(registry, f"repository:{repository}:pull")] = cached
        return f"Bearer {token}", how

    def _lookup(self, registry: str) -> Credentials | None:
        if self.credentials is None:
            return None
        try:
            return self.credentials.get(registry)
        except Exception as exc:  # a broken store must not break pulls of public images
            log.warning(
                "the credential store failed for %s (%s); continuing without credentials",
                registry,
                type(exc).__name__,
            )
            return None

    def _no_credentials(self, registry: str) -> str:
        if self.credentials is None:
            return "no credential store is configured; give the client a docker config.json"
        source = getattr(self.credentials, "source", None) or type(self.credentials).__name__
        return (
            f"no credentials were found for {registry} in {source}; run `docker login "
            f"{registry}` with that config or add an auths entry"
        )

    def _plain_http_refusal(self, registry: str, what: str) -> str:
        return (
            f"{registry} asks for credentials for {what} over plain HTTP; they are only sent "
            "over HTTPS or to hosts listed as insecure; use HTTPS or list the host as insecure"
        )

    # - HTTP: retries and redirects -

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        authorization: str | None,
        max_bytes: int,
        what: str,
    ) -> Response:
        """``_follow`` with bounded retries on 429 and 5xx gateway errors."""
        attempts = self.retries + 1
        budget = current_budget()
        stopped = ""
        for attempt in range(attempts):
            resp = self._follow(method, url, headers, authorization, max_bytes, what)
            if resp.status not in _RETRY_STATUSES:
                return resp
            if attempt + 1 == attempts:
                break
            wait = self._retry_wait(resp, attempt)
            if budget is not None and wait >= budget.remaining():
                attempts = attempt + 1
                asked = " (as Retry-After asked)" if resp.headers.get("retry-after") else ""
                stopped = f"; {budget.gave_up()}: the next try was due in {wait:g} s{asked}"
                break
            log.info(
                "%s: %s answered %d; retry %d of %d in %.2f s",
                what,
                _display_url(resp.url),
                resp.status,
                attempt + 1,
                self.retries,
                wait,
            )
            self._sleep(wait)
        advice = (
            "the registry is rate-limiting this node; wait, or log in (Docker Hub limits "
            "anonymous pulls)"
            if resp.status == 429
            else "the registry is failing; try again later"
        )
        tries = f"all {attempts} attempts" if not stopped else f"{attempts} attempt(s)"
        # The host alone when it answered the URL asked for (``what`` names that already).
        where = self._host_of(url) if resp.url == url else _display_url(resp.url)
        label = " (rate-limited)" if resp.status == 429 else ""  # said early: reasons get clipped
        raise BadResponse(
            f"{what}: {where} answered {resp.status}{label}{_error_detail(resp)} to {tries}"
            f"{stopped}; {advice}"
        )

    def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        max_bytes: int,
        what: str,
        origin: str,
        budget: Budget | None,
    ) -> Response:
        """One exchange through the transport, in the time the budget leaves (if any); network
        failures are said in terms of ``what`` was fetched."""
        timeout = self.timeout
        if budget is not None:
            timeout = min(timeout, budget.remaining())
            if timeout <= 0:
                raise Unreachable(f"{what}: {budget.gave_up()}, before it was fetched")
        try:
            resp = self.transport.request(
                method, url, headers, timeout=timeout, max_bytes=max_bytes
            )
        except (TooLarge, BadResponse):
            metrics.registry_request("invalid")  # the one place registry requests are counted
            raise
        except Unreachable as exc:
            metrics.registry_request("unreachable")
            host = urllib.parse.urlsplit(url).netloc.lower()
            where = f" (redirected to {host})" if host != origin else ""
            spent = (
                f"{budget.gave_up()}: "
                if budget is not None and budget.remaining() <= 0.05 * budget.seconds
                else ""
            )
            raise Unreachable(f"{what}{where}: {spent}{exc.reason}") from None
        metrics.registry_request(resp.status)
        return resp

    def _retry_wait(self, resp: Response, attempt: int) -> float:
        wait = _retry_after(resp.headers.get("retry-after", ""))
        if wait is None:
            wait = _FIRST_BACKOFF * (2**attempt)
        return min(max(wait, 0.0), self.timeout)

    def _follow(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        authorization: str | None,
        max_bytes: int,
        what: str,
    ) -> Response:
        """One request, following up to ``MAX_REDIRECTS`` redirects. ``authorization`` goes only
        to the first host, and only while it may carry credentials; once dropped it stays
        dropped."""
        budget = current_budget()
        origin = urllib.parse.urlsplit(url).netloc.lower()
        seen = {url}
        for hop in range(MAX_REDIRECTS + 1):
            sent = dict(headers)
            sent["User-Agent"] = _USER_AGENT
            if authorization is not None:
                if urllib.parse.urlsplit(url).netloc.lower() == origin and (
                    self._may_send_credentials(url)
                ):
                    sent["Authorization"] = authorization
                else:
                    authorization = None
            resp = self._request(method, url, sent, max_bytes, what, origin, budget)
            log.debug("%s %s -> %d", method, _display_url(url), resp.status)
            if resp.status not in _REDIRECT_STATUSES:
                return resp
            location = resp.headers.get("location")
            if not location:
                raise BadResponse(
                    f"{method} {_display_url(url)} answered {resp.status} without a Location"
                )
            target = urllib.parse.urljoin(url, location.strip())
            if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
                raise BadResponse(
                    f"{method} {_display_url(url)} redirects to a non-HTTP URL "
                    f"({_display_url(target)})"
                )
            if target in seen:
                raise BadResponse(
                    f"{what}: redirect loop: {method} {_display_url(url)} redirects back to "
                    f"{_display_url(target)}; the registry or its storage is misconfigured"
                )
            if hop == MAX_REDIRECTS:
                break
            seen.add(target)
            if resp.status == 303 and method != "HEAD":
                method = "GET"
            url = target
        raise BadResponse(
            f"{what}: more than {MAX_REDIRECTS} redirects (too many redirects), last to "
            f"{_display_url(url)}; the registry or its storage is misconfigured"
        )

    # - hosts -

    def _api_host(self, registry: str) -> str:
        return DOCKER_HUB_API if registry == DOCKER_HUB else registry

    def _base_url(self, registry: str) -> str:
        scheme = "http" if self._is_insecure(registry) else "https"
        return f"{scheme}://{self._api_host(registry)}"

    def _is_insecure(self, netloc: str) -> bool:
        netloc = netloc.lower()
        host = _strip_port(netloc)
        return netloc in self.insecure or host in self.insecure

    def _may_send_credentials(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "https":
            return True
        return self._is_insecure(parts.netloc) or _is_loopback(parts.hostname or "")

    @staticmethod
    def _host_of(url: str) -> str:
        return urllib.parse.urlsplit(url).netloc.lower()

    @staticmethod
    def _same_host(a: str, b: str) -> bool:
        return urllib.parse.urlsplit(a).netloc.lower() == urllib.parse.urlsplit(b).netloc.lower()


# --- small helpers -----------------------------------------------------------------------------


def _check_reference(
    registry: str, repository: str, reference: str, *, digest_only: bool = False
) -> ImageRef:
    """Validate the arguments so that nothing odd reaches a URL path (:class:`BadReference`)."""
    try:
        if digest_only or ":" in reference:
            parse_digest(reference)
            return ImageRef(registry=registry, repository=repository, digest=reference)
        return ImageRef(registry=registry, repository=repository, tag=reference)
    except (InvalidReference, TypeError) as exc:
        raise BadReference(str(exc)) from None


def _name(registry: str, repository: str, reference: str) -> str:
    sep = "@" if ":" in reference else ":"
    return f"{registry}/{repository}{sep}{reference}"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _is_digest(text: str) -> bool:
    algorithm, _, hex_digest = text.partition(":")
    return (
        len(hex_digest) == DIGEST_HEX_LENGTHS.get(algorithm, -1)
        and hex_digest == hex_digest.lower()
        and all(c in "0123456789abcdef" for c in hex_digest)
    )


def _verify_digest(data: bytes, digest: str, what: str) -> None:
    algorithm, _, expected = digest.partition(":")
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != expected:
        raise DigestMismatch(
            f"{what}: the {len(data)} bytes served hash to {algorithm}:{actual}, not the digest "
            "asked for; the registry or something between it and this node altered the content"
        )


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadResponse(f"{what} is not JSON ({len(data)} bytes)") from None
    if not isinstance(doc, dict):
        raise BadResponse(f"{what} is JSON but not an object")
    return doc


def _media_type(doc: Mapping[str, Any], resp: Response, what: str) -> str:
    """The document's own ``mediaType``, else the ``Content-Type`` it was served with."""
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise BadResponse(f"{what}: mediaType is not a string")
    served = resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if declared and served and served != declared.lower() and served not in _GENERIC_TYPES:
        # containerd goes by the Content-Type: a manifest served as another type is refused.
        raise BadResponse(
            f"{what} was served with Content-Type {served!r}, but the document says it is a "
            f"{declared}; something other than the registry (a proxy or portal) may have "
            "answered, or the registry is misconfigured"
        )
    if declared:
        return declared
    if served:
        return served
    raise BadResponse(f"{what} has neither a mediaType nor a Content-Type")


def _descriptors(doc: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    manifests = doc.get("manifests", [])
    if not isinstance(manifests, list) or not all(isinstance(d, dict) for d in manifests):
        raise BadResponse(f"{what}: 'manifests' is not a list of descriptor objects")
    for descriptor in manifests:
        digest = descriptor.get("digest")
        if not isinstance(digest, str) or not _is_digest(digest):
            raise BadResponse(f"{what}: a descriptor has no valid digest")
    return list(manifests)


def _filter(descriptors: list[dict[str, Any]], artifact_type: str | None) -> list[dict[str, Any]]:
    if artifact_type is None:
        return descriptors
    return [d for d in descriptors if d.get("artifactType") == artifact_type]


def _error_detail(resp: Response) -> str:
    """``": CODE message"`` from a distribution error body, short and printable, or ``""``."""
    try:
        doc = json.loads(resp.body[:_MAX_ERROR_BYTES])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    code, message = errors[0].get("code"), errors[0].get("message")
    text = " ".join(str(x) for x in (code, message) if isinstance(x, str) and x)
    text = "".join(c if c.isprintable() else "?" for c in text)[:200]
    return f": {text}" if text else ""


def _retry_after(value: str) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - time.time()


def _basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _strip_port(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc.split("]", 1)[0] + "]"
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
