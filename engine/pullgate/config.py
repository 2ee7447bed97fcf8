"""The daemon config (``pullgate.yaml``): defaults, validation, and CLI overrides.

Every key has a default, so an empty file (or none) is a valid config. Unknown keys and wrong
types are errors with FILE:LINE:COL, like policy errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from .cel import ENGINES
from .durations import parse_duration
from .limits import Limits
from .policy.errors import Issue, Mark, PolicyLoadError
from .policy.reader import Reader
from .policy.source import Node, parse_documents

__all__ = [
    "CacheConfig",
    "CelConfig",
    "Config",
    "ConfigError",
    "Limits",
    "NotationConfig",
    "RegistryConfig",
    "load_config",
    "parse_duration",
]

DEFAULT_SOCKET = "unix:///run/pullgate/pullgate.sock"
T = TypeVar("T")


class ConfigError(PolicyLoadError):
    """A config file that does not load; it carries every issue."""

    def summary(self) -> str:
        n = len(self.issues)
        return "\n".join(
            [f"{n} error{'s' if n != 1 else ''} in the config", *map(str, self.issues)]
        )


@dataclass(frozen=True, slots=True)
class CacheConfig:
    ttl: float = 600.0
    failure_ttl: float = 30.0
    max_entries: int = 10_000
    judgement_ttl: float = 5.0  # whole judgements, for repeated pulls of one image


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    insecure: tuple[str, ...] = ()
    docker_config: str = "~/.docker/config.json"
    timeout: float = 5.0
    retries: int = 2


@dataclass(frozen=True, slots=True)
class NotationConfig:
    backend: str = "auto"
    binary: str = "notation"
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class CelConfig:
    engine: str = "cel-python"  # or "cel-expr" (the pullgate[cel-expr] extra)


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """TLS for TCP listeners; with ``client_ca``, clients must present a certificate (mTLS)."""

    cert: str = ""
    key: str = ""
    client_ca: str = ""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    workers: int = 64  # threads answering RPCs (most wait on registries)
    max_concurrent: int = 256  # RPCs in flight before new ones are refused (RESOURCE_EXHAUSTED)
    drain: float = 5.0  # seconds in-flight RPCs get to finish on SIGTERM


@dataclass(frozen=True, slots=True)
class ReloadConfig:
    poll: bool = False  # use polling instead of inotify (filesystems without inotify)
    debounce: float = 0.1
    interval: float = 30.0  # safety rescan


@dataclass(frozen=True, slots=True)
class Config:
    listen: tuple[str, ...] = (DEFAULT_SOCKET,)
    policies: str = "/etc/pullgate/policies"
    default_action: str = "deny"
    unknown_namespace: str = "apply"
    cache: CacheConfig = field(default_factory=CacheConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    notation: NotationConfig = field(default_factory=NotationConfig)
    cel: CelConfig = field(default_factory=CelConfig)
    log_format: str = "json"
    metrics_address: str = ""
    tls: TLSConfig = field(default_factory=TLSConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    reload: ReloadConfig = field(default_factory=ReloadConfig)
    state_dir: str = "/var/lib/pullgate"  # the last applied policy revision; "" disables
    limits: Limits = field(default_factory=Limits)
    shadow_policies: str = ""  # a candidate policy directory judged beside, never deciding

    @property
    def concurrent_verifications(self) -> int:
        """``limits.concurrentVerifications``, or its default: half of ``server.workers``."""
        return self.limits.concurrent_verifications or max(1, self.server.workers // 2)

    def with_overrides(self, **changes: str | None) -> Config:
        """A copy with the given string fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]

    def with_cel_engine(self, engine: str | None) -> Config:
        return replace(self, cel=CelConfig(engine=engine)) if engine else self

    def with_listen(self, addresses: list[str] | None) -> Config:
        return replace(self, listen=tuple(addresses)) if addresses else self


class _ConfigReader(Reader):
    def duration(self, node: Node, what: str) -> float | None:
        if isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return float(node.value)
        text = self.string(node, what)
        if text is None:
            return None
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.fail(node.mark, f"{what}: {exc}")
            return None

    def size(self, node: Node, what: str) -> int | None:
        """A number of bytes: an integer, or one with a binary suffix (``256Ki``, ``4Mi``)."""
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        text = self.string(node, what)
        if text is None:
            return None
        number = text.rstrip("KMGi")
        unit = text[len(number) :]
        if not number.isdigit() or unit not in _SIZE_UNITS:
            self.fail(
                node.mark,
                f"{what}: {text[:40]!r} is not a size; write bytes (1048576) or 256Ki, 1Mi, 1Gi",
            )
            return None
        return int(number) * _SIZE_UNITS[unit]

    def section(
        self, fields: dict[str, Node], key: str, allowed: tuple[str, ...]
    ) -> dict[str, Node]:
        if key not in fields:
            return {}
        return self.mapping(fields[key], key, allowed=allowed) or {}


_LIMIT_KEYS = (
    "policyFileBytes",
    "documentsPerFile",
    "expressionLength",
    "signaturesPerImage",
    "manifestBytes",
    "blobBytes",
    "envelopeBytes",
    "concurrentVerifications",
    "verificationWait",
)
_SIZE_UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def _get(fields: dict[str, Node], key: str, read: Callable[[Node], T | None], default: T) -> T:
    """The value under ``key``, or ``default`` when absent or invalid (the issue is recorded)."""
    if key not in fields:
        return default
    value = read(fields[key])
    return default if value is None else value


def _read(r: _ConfigReader, doc: Node) -> Config:
    top_keys = (
        "listen",
        "policies",
        "defaultAction",
        "unknownNamespace",
        "stateDir",
        "shadowPolicies",
    )
    sections = (
        "cache",
        "registry",
        "notation",
        "cel",
        "log",
        "metrics",
        "tls",
        "server",
        "reload",
        "limits",
    )
    top = r.mapping(doc, "the config", allowed=(*top_keys, *sections))
    if top is None:
        return Config()
    d = Config()

    def listen(node: Node) -> tuple[str, ...] | None:
        values = r.strings(node, "listen", non_empty=True)
        for value, item in values:
            if not value.startswith(("unix://", "tcp://")):
                r.fail(item.mark, f"listen address {value!r} must start with unix:// or tcp://")
        return tuple(v for v, _ in values)

    cache = r.section(top, "cache", ("ttl", "failureTtl", "maxEntries", "judgementTtl"))
    reg = r.section(top, "registry", ("insecure", "dockerConfig", "timeout", "retries"))
    nota = r.section(top, "notation", ("backend", "binary", "timeout"))
    cel = r.section(top, "cel", ("engine",))
    log = r.section(top, "log", ("format",))
    metrics = r.section(top, "metrics", ("address",))
    tls = r.section(top, "tls", ("cert", "key", "clientCA"))
    server = r.section(top, "server", ("workers", "maxConcurrent", "drain"))
    reload = r.section(top, "reload", ("poll", "debounce", "interval"))
    lim = r.section(top, "limits", _LIMIT_KEYS)
    if bool(tls.get("cert")) != bool(tls.get("key")):
        r.fail(top["tls"].mark, "tls needs both 'cert' and 'key' (PEM file paths)")

    def positive(what: str) -> Callable[[Node], int | None]:
        def read(n: Node) -> int | None:
            value = r.integer(n, what)
            if value is not None and value < 1:
                r.fail(n.mark, f"{what} must be at least 1, got {value}")
                return None
            return value

        return read

    def size(what: str) -> Callable[[Node], int | None]:
        def read(n: Node) -> int | None:
            value = r.size(n, what)
            if value is not None and value < 1:
                r.fail(n.mark, f"{what} must be at least 1 byte, got {value}")
                return None
            return value

        return read

    dl = d.limits
    workers = _get(server, "workers", positive("server.workers"), d.server.workers)
    concurrent = _get(
        lim,
        "concurrentVerifications",
        positive("limits.concurrentVerifications"),
        dl.concurrent_verifications,
    )
    if concurrent and concurrent >= workers:
        r.fail(
            lim["concurrentVerifications"].mark,
            f"limits.concurrentVerifications ({concurrent}) must be less than server.workers "
            f"({workers}): the other threads answer cached judgements and health checks; raise "
            "server.workers too",
        )
    limits = Limits(
        policy_file_bytes=_get(
            lim, "policyFileBytes", size("limits.policyFileBytes"), dl.policy_file_bytes
        ),
        documents_per_file=_get(
            lim, "documentsPerFile", positive("limits.documentsPerFile"), dl.documents_per_file
        ),
        expression_length=_get(
            lim, "expressionLength", positive("limits.expressionLength"), dl.expression_length
        ),
        signatures_per_image=_get(
            lim,
            "signaturesPerImage",
            positive("limits.signaturesPerImage"),
            dl.signatures_per_image,
        ),
        manifest_bytes=_get(lim, "manifestBytes", size("limits.manifestBytes"), dl.manifest_bytes),
        blob_bytes=_get(lim, "blobBytes", size("limits.blobBytes"), dl.blob_bytes),
        envelope_bytes=_get(lim, "envelopeBytes", size("limits.envelopeBytes"), dl.envelope_bytes),
        concurrent_verifications=concurrent,
        verification_wait=_get(
            lim,
            "verificationWait",
            lambda n: r.duration(n, "limits.verificationWait"),
            dl.verification_wait,
        ),
    )

    return Config(
        listen=_get(top, "listen", listen, d.listen),
        policies=_get(top, "policies", lambda n: r.string(n, "policies"), d.policies),
        state_dir=_get(
            top, "stateDir", lambda n: r.string(n, "stateDir", allow_empty=True), d.state_dir
        ),
        default_action=_get(
            top, "defaultAction", lambda n: r.choice(n, "defaultAction", ("deny", "allow")), "deny"
        ),
        unknown_namespace=_get(
            top,
            "unknownNamespace",
            lambda n: r.choice(n, "unknownNamespace", ("apply", "skip")),
            "apply",
        ),
        cache=CacheConfig(
            ttl=_get(cache, "ttl", lambda n: r.duration(n, "cache.ttl"), d.cache.ttl),
            failure_ttl=_get(
                cache,
                "failureTtl",
                lambda n: r.duration(n, "cache.failureTtl"),
                d.cache.failure_ttl,
            ),
            max_entries=_get(
                cache, "maxEntries", lambda n: r.integer(n, "cache.maxEntries"), d.cache.max_entries
            ),
            judgement_ttl=_get(
                cache,
                "judgementTtl",
                lambda n: r.duration(n, "cache.judgementTtl"),
                d.cache.judgement_ttl,
            ),
        ),
        registry=RegistryConfig(
            insecure=_get(
                reg,
                "insecure",
                lambda n: tuple(v for v, _ in r.strings(n, "registry.insecure")),
                (),
            ),
            docker_config=_get(
                reg,
                "dockerConfig",
                lambda n: r.string(n, "registry.dockerConfig"),
                d.registry.docker_config,
            ),
            timeout=_get(
                reg, "timeout", lambda n: r.duration(n, "registry.timeout"), d.registry.timeout
            ),
            retries=_get(
                reg, "retries", lambda n: r.integer(n, "registry.retries"), d.registry.retries
            ),
        ),
        notation=NotationConfig(
            backend=_get(
                nota,
                "backend",
                lambda n: r.choice(n, "notation.backend", ("auto", "cli", "native")),
                "auto",
            ),
            binary=_get(nota, "binary", lambda n: r.string(n, "notation.binary"), "notation"),
            timeout=_get(
                nota, "timeout", lambda n: r.duration(n, "notation.timeout"), d.notation.timeout
            ),
        ),
        cel=CelConfig(
            engine=_get(cel, "engine", lambda n: r.choice(n, "cel.engine", ENGINES), "cel-python")
        ),
        log_format=_get(
            log, "format", lambda n: r.choice(n, "log.format", ("json", "text")), "json"
        ),
        metrics_address=_get(
            metrics, "address", lambda n: r.string(n, "metrics.address", allow_empty=True), ""
        ),
        tls=TLSConfig(
            cert=_get(tls, "cert", lambda n: r.string(n, "tls.cert"), ""),
            key=_get(tls, "key", lambda n: r.string(n, "tls.key"), ""),
            client_ca=_get(tls, "clientCA", lambda n: r.string(n, "tls.clientCA"), ""),
        ),
        server=ServerConfig(
            workers=workers,
            max_concurrent=_get(
                server, "maxConcurrent", positive("server.maxConcurrent"), d.server.max_concurrent
            ),
            drain=_get(server, "drain", lambda n: r.duration(n, "server.drain"), d.server.drain),
        ),
        reload=ReloadConfig(
            poll=_get(reload, "poll", lambda n: r.boolean(n, "reload.poll"), False),
            debounce=_get(
                reload, "debounce", lambda n: r.duration(n, "reload.debounce"), d.reload.debounce
            ),
            interval=_get(
                reload, "interval", lambda n: r.duration(n, "reload.interval"), d.reload.interval
            ),
        ),
        limits=limits,
        shadow_policies=_get(
            top, "shadowPolicies", lambda n: r.string(n, "shadowPolicies", allow_empty=True), ""
        ),
    )


def load_config(path: str | Path | None) -> Config:
    """Read a config file; ``None`` gives the defaults. Raises ConfigError with every issue."""
    if path is None:
        return Config()
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Issue(Mark(shown, 1, 1), f"cannot read the config: {exc}")]) from None
    docs, issues = parse_documents(text, shown)
    if issues:
        raise ConfigError(issues)
    if len(docs) > 1:
        raise ConfigError([Issue(docs[1].mark, "the config is one YAML document; remove '---'")])
    if not docs:
        return Config()
    r = _ConfigReader()
    config = _read(r, docs[0])
    if r.issues:
        raise ConfigError(r.issues)
    return config
