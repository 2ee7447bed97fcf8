"""Registry credentials: the :class:`CredentialStore` the client asks, and :class:`DockerConfig`,
which reads docker's ``config.json`` and its credential helpers."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_CONFIG_KEY",
    "IDENTITY_TOKEN_USER",
    "CredentialStore",
    "Credentials",
    "DockerConfig",
    "default_docker_config",
]

log = logging.getLogger("pullgate.registry")

DOCKER_HUB = "docker.io"
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
"""How docker names Docker Hub in ``config.json`` and to credential helpers."""
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

IDENTITY_TOKEN_USER = "<token>"  # noqa: S105 - a marker user name, not a secret
"""The user name docker writes for an identity (refresh) token instead of a password."""

_HELPER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and password, or an identity token with user name ``"<token>"``."""

    username: str
    password: str = field(repr=False)


class CredentialStore(Protocol):
    """Where the client looks up credentials for a registry host, e.g. :class:`DockerConfig`."""

    def get(self, host: str) -> Credentials | None:
        """Credentials for ``host`` (as in ``ImageRef.registry``), or None when there are none."""
        ...


def _config_key(key: str) -> str:
    """Normalise a ``config.json`` key or a registry name to the host it names.

    Docker writes ``host``, ``https://host`` and ``https://host/v1/`` interchangeably, and four
    spellings of Docker Hub; all become the lower-cased host (``docker.io`` for Hub).
    """
    text = key.strip()
    if "://" in text:
        text = urllib.parse.urlsplit(text).netloc or text.split("://", 1)[1]
    host = text.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def default_docker_config() -> Path:
    """Where docker itself looks: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    directory = os.environ.get("DOCKER_CONFIG")
    if directory:
        return Path(os.path.expanduser(directory)) / "config.json"
    return Path.home() / ".docker" / "config.json"


@dataclass(frozen=True, slots=True)
class _ParsedConfig:
    auths: dict[str, Credentials]
    helpers: dict[str, str]
    store: str | None


_EMPTY_CONFIG = _ParsedConfig({}, {}, None)


class DockerConfig:
    """Credentials from a docker ``config.json``: ``auths``, ``credHelpers`` and ``credsStore``.

    ``path=None`` means docker's default location (:func:`default_docker_config`); ``~`` is
    expanded. The file is re-read when it changes, so rotated secrets (a remounted Kubernetes
    secret, a new ``docker login``) apply without a restart. A missing file means no credentials.

    Lookup order is docker's: the host's ``credHelpers`` entry, else ``credsStore``; when the
    helper has nothing, the ``auths`` entry. A helper is run as ``docker-credential-<name> get``
    with the server on stdin (no shell, ``helper_timeout`` seconds). A helper that fails, hangs
    or answers garbage counts as "no credentials" and logs a warning that never includes its
    output, which may hold secrets.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, helper_timeout: float = 5.0
    ) -> None:
        raw = default_docker_config() if path is None else Path(os.fspath(path))
        self.path = Path(os.path.expanduser(raw))
        self.helper_timeout = helper_timeout
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._parsed = _EMPTY_CONFIG

    def __repr__(self) -> str:
        return f"DockerConfig({str(self.path)!r})"

    @property
    def source(self) -> str:
        """Where credentials come from, for error messages."""
        return f"docker config {self.path}"

    def get(self, host: str) -> Credentials | None:
        key = _config_key(host)
        config = self._load()
        helper = config.helpers.get(key) or config.store
        if helper is not None:
            found = self._run_helper(helper, key)
            if found is not None:
                return found
        return config.auths.get(key)

    def _load(self) -> _ParsedConfig:
        """The parsed file, re-read only when its inode, size or mtime changed."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return _EMPTY_CONFIG
        except OSError as exc:
            log.warning("cannot read %s: %s; using no credentials", self.source, exc.strerror)
            return _EMPTY_CONFIG
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if stamp == self._stamp:
                return self._parsed
            try:
                parsed = self._parse(self.path.read_bytes())
            except OSError as exc:
                log.warning("cannot read %s: %s; using no credentials", self.source, exc.strerror)
                parsed = _EMPTY_CONFIG
            self._stamp, self._parsed = stamp, parsed
            return parsed

    def _parse(self, data: bytes) -> _ParsedConfig:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            # Only the position is reported: the text around it may be a secret.
            where = ""
            if isinstance(exc, json.JSONDecodeError):
                where = f" (at line {exc.lineno} column {exc.colno})"
            log.warning(
                "%s is not valid JSON%s; fix it or run `docker login` again; using no credentials",
                self.source,
                where,
            )
            return _EMPTY_CONFIG
        if not isinstance(doc, dict):
            log.warning("%s is not a JSON object; using no credentials", self.source)
            return _EMPTY_CONFIG
        auths: dict[str, Credentials] = {}
        exact: set[str] = set()
        raw_auths = doc.get("auths")
        for raw_key, entry in raw_auths.items() if isinstance(raw_auths, dict) else ():
            if not isinstance(raw_key, str) or not isinstance(entry, dict):
                continue
            key = _config_key(raw_key)
            creds = self._entry_credentials(raw_key, entry)
            if creds is None:
                continue
            # "host" beats "https://host/v1/" when both are present: it is the newer spelling.
            is_exact = raw_key.lower() == key
            if key not in auths or (is_exact and key not in exact):
                auths[key] = creds
                if is_exact:
                    exact.add(key)
        helpers: dict[str, str] = {}
        raw_helpers = doc.get("credHelpers")
        for raw_key, name in raw_helpers.items() if isinstance(raw_helpers, dict) else ():
            if isinstance(raw_key, str) and isinstance(name, str) and self._helper_ok(name):
                helpers[_config_key(raw_key)] = name
        store = doc.get("credsStore")
        if not (isinstance(store, str) and store and self._helper_ok(store)):
            store = None
        return _ParsedConfig(auths, helpers, store)

    def _helper_ok(self, name: str) -> bool:
        if _HELPER_NAME_RE.fullmatch(name):
            return True
        log.warning(
            "%s names credential helper %r, which is not a valid helper name (letters, digits, "
            "'.', '_', '-'); ignoring it",
            self.source,
            name[:64],
        )
        return False

    def _entry_credentials(self, key: str, entry: dict[str, Any]) -> Credentials | None:
        token = entry.get("identitytoken")
        if isinstance(token, str) and token:
            return Credentials(IDENTITY_TOKEN_USER, token)
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                decoded = base64.b64decode(auth, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            user, sep, password = decoded.partition(":")
            if not sep or not user:
                log.warning(
                    "the 'auth' of %r in %s is not base64 of 'user:password'; run `docker login` "
                    "again for that registry",
                    key,
                    self.source,
                )
                return None
            return Credentials(user, password)
        name, secret = entry.get("username"), entry.get("password")
        if isinstance(name, str) and name and isinstance(secret, str):
            return Credentials(name, secret)
        return None

    def _run_helper(self, name: str, key: str) -> Credentials | None:
        """Ask ``docker-credential-<name>``; None (with a warning) on any failure."""
        program = f"docker-credential-{name}"
        server = DOCKER_HUB_CONFIG_KEY if key == DOCKER_HUB else key
        path = shutil.which(program)
        if path is None:
            log.warning(
                "credential helper %s (from %s) is not on PATH; install it or remove it from the "
                "config; no credentials from it for %s",
                program,
                self.source,
                key,
            )
            return None
        try:
            proc = subprocess.Popen(
                [path, "get"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # so a timeout kills the helper's children too
            )
        except OSError as exc:
            log.warning("cannot run credential helper %s: %s", program, exc.strerror)
            return None
        try:
            out, _ = proc.communicate(server.encode(), timeout=self.helper_timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            log.warning(
                "credential helper %s did not answer within %g s for %s; no credentials from it "
                "(run `echo %s | %s get` to see why)",
                program,
                self.helper_timeout,
                key,
                server,
                program,
            )
            return None
        if proc.returncode != 0:
            if b"credentials not found" in out.lower():
                log.debug("credential helper %s has no credentials for %s", program, key)
                return None
            log.warning(
                "credential helper %s failed for %s (exit status %d); its output is not logged "
                "because it may hold secrets (run `echo %s | %s get` to see it)",
                program,
                key,
                proc.returncode,
                server,
                program,
            )
            return None
        try:
            answer = json.loads(out)
        except (UnicodeDecodeError, json.JSONDecodeError):
            answer = None
        user = answer.get("Username") if isinstance(answer, dict) else None
        secret = answer.get("Secret") if isinstance(answer, dict) else None
        if not (isinstance(user, str) and isinstance(secret, str) and user and secret):
            log.warning(
                "credential helper %s answered for %s without the JSON object "
                '{"Username": ..., "Secret": ...} it must print; no credentials from it',
                program,
                key,
            )
            return None
        return Credentials(user, secret)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.communicate()
