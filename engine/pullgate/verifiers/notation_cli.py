"""Notation signatures through the ``notation`` CLI (v1.3.x): ``notation verify`` in a sandbox.

Per authority and repository, a private config directory holds a ``trustpolicy.json`` with one
statement (scoped to exactly that repository) and the authority's certificates as a trust
store. ``notation verify`` then runs with an environment of only ``PATH``, a private ``HOME``,
``NOTATION_CONFIG`` and ``XDG_CONFIG_HOME`` (both naming that directory), and the registry
credentials as ``NOTATION_USERNAME``/``NOTATION_PASSWORD``, never on the command line.

What counts, as observed of v1.3.2 (the design notes on Notation and the recorded transcripts):

* verified: exit status 0 **and** ``Successfully verified signature for <ref@digest>`` on stdout
  for the very reference asked about; ``Warning:`` lines on stderr become evidence warnings
  (checks that the ``permissive`` and ``audit`` levels only log);
* exit status 0 with ``Trust policy is configured to skip signature verification …`` is not
  verified: level ``skip`` checks nothing;
* anything else is unverified, with notation's ``Error:`` line (and, with ``-v``, the failed
  checks it logged) as the reason.

Traps the design follows: notation reads ``$HOME/.docker/config.json`` when it gets no
credentials, so ``HOME`` is a private empty directory (credentials come only from the
credential store); v1.3.2 reads ``insecureRegistries`` from the config it finds through
``XDG_CONFIG_HOME`` before it applies ``NOTATION_CONFIG``, so both point at the sandbox and
``--insecure-registry`` is passed explicitly; ``localhost:<port>`` is plain HTTP to notation
whatever the flags say, ``127.0.0.1:<port>`` is not; a ``skip`` statement must not name trust
stores or identities, or notation rejects the whole policy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..evidence import Evidence, Signature, Target
from ..policy import Authority, NotationAuthority
from ..registry.credentials import IDENTITY_TOKEN_USER, Credentials, CredentialStore

__all__ = ["MAX_REASON", "NotationCli", "available"]

log = logging.getLogger("pullgate.notation")

MAX_REASON = 300
MAX_CONFIGS = 256  # sandboxes kept (one per authority and repository), least recently used go
SUCCESS_PREFIX = "Successfully verified signature for "
SKIP_PREFIX = "Trust policy is configured to skip signature verification for "
TRUST_POLICY_VERSION = "1.0"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_NO_ENV: Mapping[str, str] = MappingProxyType({})

# notation-go's validateRegistryScopeFormat: a scope it cannot write cannot be verified at all,
# since notation checks the artifact's own registry/repository against the same expressions.
_SCOPE_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?"
)
_SCOPE_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?"
    r"(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?"
)
_STORE_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")  # notation: [a-zA-Z0-9_.-]+
_LOG_LINE = re.compile(r"^(?:time=\S+ )?level=(\w+) msg=(.*)$")
_CHECK_FAILED = re.compile(r"^(\w+) validation failed\. Failure reason: (.*)$")
_DIGEST = re.compile(r"\b(sha256:[0-9a-f]{12})[0-9a-f]{52}\b")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def available(binary: str) -> bool:
    """True when ``binary`` (a name on PATH or a path) is an executable notation can run as."""
    return shutil.which(binary) is not None


# -- text ------------------------------------------------------------------------------------------


def _one_line(text: str, limit: int = MAX_REASON) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shorten_digests(text: str) -> str:
    """``sha256:`` and 12 hex digits are enough for a person; the full digest is logged apart."""
    return _DIGEST.sub(r"\1…", text)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True, slots=True)
class _Output:
    """What notation printed, split the way the transcripts show it."""

    stdout_lines: tuple[str, ...]
    errors: tuple[str, ...]  # "Error: " lines, without the prefix
    warnings: tuple[str, ...]  # "Warning: " lines, without the prefix
    checks: tuple[str, ...]  # per-check failures logged with -v/-d
    other: tuple[str, ...]  # any other stderr line that is not a log line

    @classmethod
    def parse(cls, stdout: str, stderr: str) -> _Output:
        errors: list[str] = []
        warnings: list[str] = []
        checks: list[str] = []
        other: list[str] = []
        for raw in stderr.splitlines():
            line = raw.strip()
            if not line:
                continue
            if line.startswith("Error: "):
                errors.append(line[len("Error: ") :])
            elif line.startswith("Warning: "):
                warnings.append(line[len("Warning: ") :])
            elif logged := _LOG_LINE.match(line):
                if logged.group(1) == "error":
                    failed = _CHECK_FAILED.match(logged.group(2))
                    checks.append(
                        f"{failed.group(1)} validation failed: {failed.group(2)}"
                        if failed
                        else logged.group(2)
                    )
            elif not line.startswith(("<", ">", '"')):  # -d HTTP dumps: headers, requests
                other.append(line)
        return cls(
            stdout_lines=tuple(line.rstrip("\r") for line in stdout.splitlines()),
            errors=tuple(errors),
            warnings=tuple(warnings),
            checks=tuple(checks),
            other=tuple(other),
        )


def _failure_reason(out: _Output, returncode: int) -> str:
    if out.errors:
        message = "; ".join(out.errors)
        details = [c for c in dict.fromkeys(out.checks) if c.split(": ", 1)[-1] not in message]
        reason = f"notation: {message}"
        if details:
            reason += f" ({'; '.join(details)})"
        return reason
    said = f": {out.other[0]}" if out.other else ""
    return f"notation failed with exit status {returncode} and no error message{said}"


def _judge(out: _Output, returncode: int, reference: str) -> Evidence:
    """Evidence from one finished ``notation verify`` of ``reference``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return Evidence.unverified(f"notation was killed by signal {name}")
    if returncode != 0:
        return Evidence.unverified(_failure_reason(out, returncode))
    if SUCCESS_PREFIX + reference in out.stdout_lines:
        signature = Signature(kind="notation")
        warnings = tuple(dict.fromkeys(_one_line(w) for w in out.warnings))
        return Evidence(signatures=(signature,), warnings=warnings)
    if any(line.startswith(SKIP_PREFIX) for line in out.stdout_lines):
        return Evidence.unverified(
            "the notation trust policy level is 'skip', so notation checked nothing; pullgate "
            "does not count skipped verification (use level strict, permissive or audit)"
        )
    others = [
        line[len(SUCCESS_PREFIX) :] for line in out.stdout_lines if line.startswith(SUCCESS_PREFIX)
    ]
    if others:
        return Evidence.unverified(
            f"notation reported success for {others[0]}, not for {reference}; not counted"
        )
    printed = next((line for line in out.stdout_lines if line.strip()), "")
    said = f" (it printed: {printed.strip()[:80]!r})" if printed else ""
    return Evidence.unverified(
        f"notation exited 0 without its line 'Successfully verified signature for "
        f"{reference}'; not counted as verified{said}"
    )


# -- the sandbox -----------------------------------------------------------------------------------


def _store_name(authority: Authority) -> str:
    """A trust store (and statement) name notation accepts: ``[a-zA-Z0-9_.-]+``, not a path."""
    name = _STORE_NAME_BAD.sub("-", authority.name).strip(".-")[:64]
    return name or "pullgate"


def _certificates(pem: str) -> list[str]:
    """One PEM text per certificate, as the trust store wants them (one file each)."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return []
    return [c.public_bytes(Encoding.PEM).decode("ascii") for c in certs]


def trust_policy(name: str, scope: str, spec: NotationAuthority) -> dict[str, Any]:
    """The ``trustpolicy.json`` document for one authority and one repository."""
    statement: dict[str, Any] = {
        "name": name,
        "registryScopes": [scope],
        "signatureVerification": {"level": spec.level},
    }
    if spec.level != "skip":  # notation rejects a skip statement that names stores or identities
        statement["trustStores"] = [f"{spec.trust_store_type}:{name}"]
        statement["trustedIdentities"] = list(spec.trusted_identities)
    return {"version": TRUST_POLICY_VERSION, "trustPolicies": [statement]}


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


class _Sandbox:
    """Config directories by (authority fingerprint, scope), under one private temp dir."""

    def __init__(self, workdir: str | None, max_entries: int) -> None:
        self._workdir = workdir
        self._max = max_entries
        self._lock = threading.Lock()
        self._root: Path | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._dirs: OrderedDict[str, Path] = OrderedDict()
        self._users: dict[str, int] = {}

    @property
    def root(self) -> Path | None:
        return self._root

    def home(self) -> Path:
        with self._lock:
            return self._ensure_root() / "home"

    def _ensure_root(self) -> Path:
        if self._root is not None and not (self._root / "home").is_dir():
            # removed under us (a temp dir cleaner on a long-running node): start afresh
            if self._finalizer is not None:
                self._finalizer()
            self._root, self._finalizer = None, None
            self._dirs.clear()
        if self._root is None:
            root = Path(tempfile.mkdtemp(prefix="pullgate-notation-", dir=self._workdir))
            os.chmod(root, 0o700)
            (root / "home").mkdir(mode=0o700)
            (root / "configs").mkdir(mode=0o700)
            self._root = root
            self._finalizer = weakref.finalize(self, shutil.rmtree, root, ignore_errors=True)
        return self._root

    def acquire(
        self, authority: Authority, spec: NotationAuthority, scope: str
    ) -> tuple[str, Path]:
        """The config directory (``.../notation``) for this authority and scope, in use until
        :meth:`release`. Raises OSError or ValueError when it cannot be written."""
        key = hashlib.sha256(f"{authority.fingerprint}\0{scope}".encode()).hexdigest()[:32]
        with self._lock:
            root = self._ensure_root()
            found = self._dirs.get(key)
            if found is None or not found.is_dir():
                found = self._build(root, key, authority, spec, scope)
                self._dirs[key] = found
            self._dirs.move_to_end(key)
            self._users[key] = self._users.get(key, 0) + 1
            self._evict()
            return key, found

    def release(self, key: str) -> None:
        with self._lock:
            left = self._users.get(key, 1) - 1
            if left > 0:
                self._users[key] = left
            else:
                self._users.pop(key, None)

    def _build(
        self, root: Path, key: str, authority: Authority, spec: NotationAuthority, scope: str
    ) -> Path:
        name = _store_name(authority)
        certs = _certificates(spec.certificates)
        if not certs and spec.level != "skip":
            raise ValueError(f"authority {authority.name!r} has no PEM certificate to trust")
        staging = Path(tempfile.mkdtemp(prefix=".new-", dir=root / "configs"))
        try:
            config = staging / "notation"
            config.mkdir(mode=0o700)
            document = trust_policy(name, scope, spec)
            _write(config / "trustpolicy.json", json.dumps(document, indent=4) + "\n")
            if spec.level != "skip":
                store = config / "truststore" / "x509" / spec.trust_store_type / name
                store.mkdir(mode=0o700, parents=True)
                for d in (store, *store.parents):
                    if d == config:
                        break
                    os.chmod(d, 0o700)
                for i, pem in enumerate(certs, start=1):
                    _write(store / f"{i}.crt", pem)
            final = root / "configs" / key
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return final / "notation"

    def _evict(self) -> None:
        for key in list(self._dirs):
            if len(self._dirs) <= self._max:
                return
            if self._users.get(key):
                continue  # a verification is using it
            path = self._dirs.pop(key)
            shutil.rmtree(path.parent, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._root, self._finalizer = None, None
            self._dirs.clear()
            self._users.clear()


# -- the verifier ----------------------------------------------------------------------------------


class NotationCli:
    """The ``notation`` verifier: runs ``notation verify`` for each (authority, image).

    ``insecure`` lists registries reached over plain HTTP, as for the registry client (``host``
    matches every port, ``host:port`` one); they get ``--insecure-registry``. ``credentials``
    answers for the image's registry host. ``workdir`` is where the private sandbox directory
    is made (default: the system temp dir); :meth:`close` removes it. ``extra_env`` is for
    tests only (the test double's ``FAKE_NOTATION_*`` settings); it never overrides the
    variables set here. ``verbose`` adds ``-v``, so that failures name the check that failed.
    """

    def __init__(
        self,
        binary: str = "notation",
        *,
        timeout: float = 5.0,
        insecure: Iterable[str] = (),
        credentials: CredentialStore | None = None,
        workdir: str | None = None,
        verbose: bool = True,
        extra_env: Mapping[str, str] = _NO_ENV,
        max_configs: int = MAX_CONFIGS,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.binary = binary
        self.timeout = timeout
        self.insecure = frozenset(h.strip().lower() for h in insecure if h.strip())
        self.credentials = credentials
        self.verbose = verbose
        self.extra_env = dict(extra_env)
        self._sandbox = _Sandbox(workdir, max_configs)

    def __repr__(self) -> str:
        return f"NotationCli({self.binary!r}, timeout={self.timeout:g})"

    def __enter__(self) -> NotationCli:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the sandbox (trust policies, trust stores, the private HOME)."""
        self._sandbox.close()

    @property
    def sandbox(self) -> Path | None:
        """The private directory, once the first verification made it."""
        return self._sandbox.root

    # - the seam -

    def verify(self, authority: Authority, target: Target) -> Evidence:
        try:
            return self._verify(authority, target)
        except Exception as exc:  # the seam never raises; say what broke instead
            log.exception("notation verification of %s failed unexpectedly", target.ref.name)
            return Evidence.unverified(
                _one_line(f"the notation verifier failed: {type(exc).__name__}: {exc}")
            )

    def _verify(self, authority: Authority, target: Target) -> Evidence:
        spec = authority.spec
        if not isinstance(spec, NotationAuthority):
            return Evidence.unverified(
                f"the notation CLI verifies notation authorities only, not {authority.kind}"
            )
        if not target.digest:
            return Evidence.unverified("no digest to verify")
        ref = target.ref
        scope = f"{ref.registry}/{ref.repository}"
        if not (
            _SCOPE_DOMAIN.fullmatch(ref.registry) and _SCOPE_REPOSITORY.fullmatch(ref.repository)
        ):
            return Evidence.unverified(
                f"notation cannot verify images of {scope}: its trust policy accepts registries "
                "named by a domain or IPv4 address (with an optional port) only"
            )
        path = shutil.which(self.binary)
        if path is None:
            return Evidence.unverified(
                f"the notation CLI ({self.binary}) is not installed or not on PATH; install "
                "notation v1.3 or set notation.binary to its path"
            )
        creds, problem = self._credentials(ref.registry)
        if problem:
            return Evidence.unverified(problem)
        try:
            key, config = self._sandbox.acquire(authority, spec, scope)
        except (OSError, ValueError) as exc:
            what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return Evidence.unverified(
                _one_line(f"cannot write the notation trust policy of {authority.name!r}: {what}")
            )
        try:
            reference = f"{scope}@{target.digest}"
            return self._run(path, reference, config, creds, ref.registry)
        finally:
            self._sandbox.release(key)

    def _credentials(self, host: str) -> tuple[Credentials | None, str]:
        if self.credentials is None:
            return None, ""
        try:
            return self.credentials.get(host), ""
        except Exception as exc:  # a store that fails is reported, its message is not (secrets)
            log.warning("credential lookup for %s failed: %s", host, type(exc).__name__)
            return None, f"cannot look up registry credentials for {host} ({type(exc).__name__})"

    def argv(self, path: str, reference: str, registry: str) -> list[str]:
        args = [path, "verify"]
        if self.verbose:
            args.append("-v")
        if self._is_insecure(registry):
            args.append("--insecure-registry")
        args.append(reference)
        return args

    def _is_insecure(self, registry: str) -> bool:
        netloc = registry.lower()
        host = netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc
        return netloc in self.insecure or host in self.insecure

    def environment(self, config: Path, creds: Credentials | None) -> dict[str, str]:
        env = dict(self.extra_env)
        env.update(
            PATH=os.environ.get("PATH") or DEFAULT_PATH,
            HOME=str(self._sandbox.home()),
            NOTATION_CONFIG=str(config),
            XDG_CONFIG_HOME=str(config.parent),
        )
        for name in ("NOTATION_USERNAME", "NOTATION_PASSWORD"):
            env.pop(name, None)
        if creds is not None:
            # notation takes a password without a user name as an identity (refresh) token
            if creds.username and creds.username != IDENTITY_TOKEN_USER:
                env["NOTATION_USERNAME"] = creds.username
            env["NOTATION_PASSWORD"] = creds.password
        return env

    def _run(
        self, path: str, reference: str, config: Path, creds: Credentials | None, registry: str
    ) -> Evidence:
        argv = self.argv(path, reference, registry)
        env = self.environment(config, creds)
        secrets = (creds.password,) if creds is not None else ()
        log.debug("running %s", " ".join(argv))
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=env["HOME"],
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
        except OSError as exc:
            return Evidence.unverified(
                _one_line(f"cannot run {path}: {exc.strerror or type(exc).__name__}")
            )
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            log.debug("notation verify %s: no answer within %gs, killed", reference, self.timeout)
            return Evidence.unverified(
                f"notation did not answer within {self.timeout:g}s (stopped; raise "
                "notation.timeout if the registry is slow)"
            )
        log.debug(
            "notation verify %s: exit status %d after %.0f ms",
            reference,
            proc.returncode,
            (time.monotonic() - started) * 1000,
        )
        parsed = _Output.parse(
            _scrub(out.decode("utf-8", "replace"), secrets),
            _scrub(err.decode("utf-8", "replace"), secrets),
        )
        evidence = _judge(parsed, proc.returncode, reference)
        if evidence.verified:
            return evidence
        reason = _shorten_digests(_scrub(evidence.error, secrets))
        return Evidence.unverified(_one_line(reason))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    try:
        proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:  # a descendant left the group and holds the pipes
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()
