"""Prometheus metrics of the daemon, served on ``metrics.address`` (off unless configured).

A small facade: the decision, registry and reload code report what happened through the
functions below, and this module owns the ``prometheus_client`` objects, in a
:class:`CollectorRegistry` of its own (never the library's global one). Until :func:`serve` (or
:func:`enable`) runs, every function is a no-op costing a global read, and
``prometheus_client`` is not imported: ``pullgate check``, ``pullgate test`` and
``pullgate-containerd`` never load it.

State that already exists (the policy state, the verification slots, the evidence caches'
counters) is read when Prometheus scrapes, not reported on the request path.

Every metric is in :data:`SPECS`; docs/metrics.md lists them, and a test keeps the two equal.
Labels are bounded: result words, reason codes, policy names (bounded by the policy set), HTTP
statuses, stages, authority kinds; never image names or digests.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from .judgement import Judgement
    from .limits import VerificationSlots
    from .reload import PolicyState
    from .verifiers import Verifiers
    from .verifiers.cache import EvidenceCache

__all__ = [
    "BUCKETS",
    "SHADOW_KINDS",
    "SPECS",
    "STAGES",
    "Metrics",
    "MetricsError",
    "MetricsServer",
    "Spec",
    "active",
    "decided",
    "disable",
    "enable",
    "observe_stage",
    "parse_address",
    "policy_reloaded",
    "registry_request",
    "serve",
    "shadow_difference",
    "shadow_evaluated",
]

STAGES = ("select", "evidence", "evaluate")
SHADOW_KINDS = ("would_deny", "would_allow")
# From a cached judgement (~10 µs) to a registry round trip that hits registry.timeout.
BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@dataclass(frozen=True, slots=True)
class Spec:
    """One metric as exposed: its name (counters with ``_total``), type, labels and help."""

    name: str
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str


SPECS: tuple[Spec, ...] = (
    Spec(
        "pullgate_decisions_total",
        "counter",
        ("result", "code"),
        "Judgements returned, by result (allowed, denied) and reason code.",
    ),
    Spec(
        "pullgate_policy_decisions_total",
        "counter",
        ("policy", "mode", "result"),
        "Policies that applied to a judgement, by policy name, mode and result (passed, failed).",
    ),
    Spec(
        "pullgate_decision_duration_seconds",
        "histogram",
        ("cached",),
        "Time to judge one request; cached=true when the judgement cache answered.",
    ),
    Spec(
        "pullgate_stage_duration_seconds",
        "histogram",
        ("stage",),
        "Time in each stage of an evaluated judgement: select, evidence, evaluate.",
    ),
    Spec(
        "pullgate_evidence_cache_requests_total",
        "counter",
        ("kind", "result"),
        "Evidence cache lookups by authority kind and result (hit, miss, shared).",
    ),
    Spec(
        "pullgate_evidence_cache_entries",
        "gauge",
        ("kind",),
        "Entries in the evidence cache of each authority kind.",
    ),
    Spec(
        "pullgate_registry_requests_total",
        "counter",
        ("status",),
        "HTTP exchanges with registries, by status code (or unreachable, invalid).",
    ),
    Spec(
        "pullgate_policy_reloads_total",
        "counter",
        ("result",),
        "Policy revisions applied (success) and rejected (failure).",
    ),
    Spec(
        "pullgate_policy_revision_info",
        "gauge",
        ("revision",),
        "Always 1, labelled with the policy revision being served.",
    ),
    Spec(
        "pullgate_policy_last_reload_successful",
        "gauge",
        (),
        "1 when the policy directory loaded at the last attempt, 0 when it was rejected.",
    ),
    Spec(
        "pullgate_policy_loaded_timestamp_seconds",
        "gauge",
        (),
        "When the revision being served was applied, in Unix seconds.",
    ),
    Spec(
        "pullgate_policies",
        "gauge",
        (),
        "ImagePolicy documents in the revision being served.",
    ),
    Spec(
        "pullgate_verifications_in_flight",
        "gauge",
        (),
        "Verifications holding a slot (limits.concurrentVerifications) now.",
    ),
    Spec(
        "pullgate_verifications_waiting",
        "gauge",
        (),
        "Verifications waiting for a free slot now.",
    ),
    Spec(
        "pullgate_verification_slots",
        "gauge",
        (),
        "Verification slots: limits.concurrentVerifications.",
    ),
    Spec(
        "pullgate_verifications_refused_total",
        "counter",
        (),
        "Requests refused with RESOURCE_EXHAUSTED because no verification slot came free.",
    ),
    Spec(
        "pullgate_shadow_evaluations_total",
        "counter",
        (),
        "Judgements also evaluated against the shadow policies.",
    ),
    Spec(
        "pullgate_shadow_differences_total",
        "counter",
        ("kind",),
        "Shadow judgements that differ from the real one (would_deny, would_allow).",
    ),
)
_SPEC = {s.name: s for s in SPECS}


class MetricsError(Exception):
    """``metrics.address`` cannot be served; the message says what to fix."""


class _Histogram:
    """Observations per bucket of :data:`BUCKETS` (the last: above them all), and their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1  # the first bucket with le >= seconds
        self.sum += seconds

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        buckets, total = [], 0
        for le, count in zip((*[repr(b) for b in BUCKETS], "+Inf"), self.counts, strict=True):
            total += count
            buckets.append((le, float(total)))
        return buckets, self.sum


class _Judgements:
    """What is counted per judgement, as plain numbers under one lock: about 1 µs a judgement,
    where prometheus_client's objects take about 1 µs for each increment (a lock each)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.decisions: dict[tuple[str, str], int] = {}
        self.policies: dict[tuple[str, str, str], int] = {}
        self.durations = {"false": _Histogram(), "true": _Histogram()}
        self.stages = {stage: _Histogram() for stage in STAGES}

    def decided(self, judgement: Judgement) -> None:
        decision = ("allowed" if judgement.ok else "denied", judgement.code or "UNKNOWN")
        duration = self.durations["true" if judgement.cached else "false"]
        with self.lock:
            self.decisions[decision] = self.decisions.get(decision, 0) + 1
            for p in judgement.policies:
                key = (p.name, p.mode, "passed" if p.passed else "failed")
                self.policies[key] = self.policies.get(key, 0) + 1
            duration.observe(judgement.duration_ms / 1000)

    def observe_stage(self, stage: str, seconds: float) -> None:
        histogram = self.stages[stage]
        with self.lock:
            histogram.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        with self.lock:  # one consistent snapshot
            decisions, policies = dict(self.decisions), dict(self.policies)
            durations = {k: h.cumulative() for k, h in self.durations.items()}
            stages = {k: h.cumulative() for k, h in self.stages.items()}
        for name, counts in (
            ("pullgate_decisions_total", decisions),
            ("pullgate_policy_decisions_total", policies),
        ):
            spec = _SPEC[name]
            counter = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
            for labels, count in counts.items():
                counter.add_metric(list(labels), count)
            yield counter
        for name, histograms in (
            ("pullgate_decision_duration_seconds", durations),
            ("pullgate_stage_duration_seconds", stages),
        ):
            spec = _SPEC[name]
            histogram = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
            for label, (buckets, total) in histograms.items():
                histogram.add_metric([label], buckets, total)
            yield histogram


class _Live:
    """Values read at scrape time from objects the daemon keeps anyway."""

    def __init__(self) -> None:
        self.state: PolicyState | None = None
        self.slots: VerificationSlots | None = None
        self.caches: dict[str, EvidenceCache] = {}

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        def counter(name: str) -> CounterMetricFamily:
            s = _SPEC[name]
            return CounterMetricFamily(s.name, s.help, labels=s.labels)

        def gauge(name: str) -> GaugeMetricFamily:
            s = _SPEC[name]
            return GaugeMetricFamily(s.name, s.help, labels=s.labels)

        state = self.state
        if state is not None:
            current, failure = state.current, state.failure
            if current is not None:
                info = gauge("pullgate_policy_revision_info")
                info.add_metric([current.revision], 1)
                yield info
                loaded = gauge("pullgate_policy_loaded_timestamp_seconds")
                loaded.add_metric([], state.loaded_at)
                yield loaded
                count = gauge("pullgate_policies")
                count.add_metric([], len(current.policies))
                yield count
            ok = gauge("pullgate_policy_last_reload_successful")
            ok.add_metric([], 1 if current is not None and failure is None else 0)
            yield ok
        slots = self.slots
        if slots is not None:
            for name, value in (
                ("pullgate_verifications_in_flight", slots.in_use),
                ("pullgate_verifications_waiting", slots.waiting),
                ("pullgate_verification_slots", slots.capacity),
            ):
                g = gauge(name)
                g.add_metric([], value)
                yield g
            refused = counter("pullgate_verifications_refused_total")
            refused.add_metric([], slots.refused)
            yield refused
        if self.caches:
            lookups = counter("pullgate_evidence_cache_requests_total")
            entries = gauge("pullgate_evidence_cache_entries")
            for kind, cache in self.caches.items():
                stats = cache.stats
                lookups.add_metric([kind, "hit"], stats.hits)
                lookups.add_metric([kind, "miss"], stats.misses)
                lookups.add_metric([kind, "shared"], stats.shared)
                entries.add_metric([kind], len(cache))
            yield lookups
            yield entries


class Metrics:
    """The metric objects of one daemon, in a registry of their own."""

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            PlatformCollector,
            ProcessCollector,
            disable_created_metrics,
        )

        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series
        self.registry: CollectorRegistry = CollectorRegistry()
        r = self.registry

        def counter(name: str) -> Counter:
            s = _SPEC[name]
            return Counter(s.name, s.help, s.labels, registry=r)

        self.judgements = _Judgements()  # the per-judgement metrics: the hot path
        r.register(self.judgements)
        self.registry_requests = counter("pullgate_registry_requests_total")
        reloads = counter("pullgate_policy_reloads_total")
        self._reloads = {ok: reloads.labels("success" if ok else "failure") for ok in (True, False)}
        self.shadow_evaluations = counter("pullgate_shadow_evaluations_total")
        shadow = counter("pullgate_shadow_differences_total")
        self._shadow = {kind: shadow.labels(kind) for kind in SHADOW_KINDS}
        self.live = _Live()
        r.register(self.live)
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        PlatformCollector(registry=r)  # python_info
        # Children by label value: labels() takes a lock and validates; a dict read does not.
        self._status_children: dict[str, Any] = {}

    def track(
        self,
        *,
        state: PolicyState | None = None,
        slots: VerificationSlots | None = None,
        verifiers: Verifiers | None = None,
    ) -> None:
        """Read these at scrape time: the policy state, the slots, the evidence caches."""
        from .verifiers import KINDS
        from .verifiers.cache import EvidenceCache

        self.live.state = state
        self.live.slots = slots
        if verifiers is not None:
            self.live.caches = {
                kind: v
                for kind in KINDS
                if isinstance(v := verifiers.for_kind(kind), EvidenceCache)
            }

    def decided(self, judgement: Judgement) -> None:
        self.judgements.decided(judgement)

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.judgements.observe_stage(stage, seconds)

    def registry_request(self, status: str) -> None:
        child = self._status_children.get(status)
        if child is None:
            child = self._status_children[status] = self.registry_requests.labels(status)
        child.inc()

    def policy_reloaded(self, ok: bool) -> None:
        self._reloads[ok].inc()

    def shadow_difference(self, kind: str) -> None:
        self._shadow[kind].inc()

    def shadow_evaluated(self) -> None:
        self.shadow_evaluations.inc()

    def exposition(self) -> str:
        """The text a scrape returns."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


_active: Metrics | None = None


def enable() -> Metrics:
    """Start counting, in a fresh registry (replacing any earlier one), and return it."""
    global _active
    _active = Metrics()
    return _active


def disable() -> None:
    """Stop counting: every reporting function is a no-op again."""
    global _active
    _active = None


def active() -> Metrics | None:
    return _active


# -- reporting: no-ops until enabled -------------------------------------------------------------


def decided(judgement: Judgement) -> None:
    """A judgement was returned (evaluated or from the judgement cache)."""
    m = _active
    if m is not None:
        m.decided(judgement)


def observe_stage(stage: str, seconds: float) -> None:
    """Seconds spent in one of :data:`STAGES` of an evaluated judgement."""
    m = _active
    if m is not None:
        m.observe_stage(stage, seconds)


def registry_request(status: int | str) -> None:
    """One HTTP exchange with a registry: its status, or ``unreachable`` (no answer) or
    ``invalid`` (an answer that could not be read within the limits)."""
    m = _active
    if m is not None:
        m.registry_request(str(status))


def policy_reloaded(ok: bool) -> None:
    """A policy revision was applied (``ok``) or rejected."""
    m = _active
    if m is not None:
        m.policy_reloaded(ok)


def shadow_difference(kind: str) -> None:
    """A shadow judgement differs from the real one: ``would_deny`` or ``would_allow``."""
    if kind not in SHADOW_KINDS:
        raise ValueError(f"shadow difference kind {kind!r}: use one of {', '.join(SHADOW_KINDS)}")
    m = _active
    if m is not None:
        m.shadow_difference(kind)


def shadow_evaluated() -> None:
    """A judgement was also evaluated against the shadow policies."""
    m = _active
    if m is not None:
        m.shadow_evaluated()


# -- the /metrics listener -----------------------------------------------------------------------


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → (host, port); :class:`MetricsError` otherwise."""
    host, sep, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or "/" in address or not port.isdigit() or int(port) > 65535:
        raise MetricsError(
            f"metrics.address {address!r}: write HOST:PORT, e.g. 127.0.0.1:9469 (this node "
            'only) or 0.0.0.0:9469 (every interface); "" turns metrics off'
        )
    return host, int(port)


class MetricsServer:
    """The HTTP listener answering ``GET /metrics``."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread, metrics: Metrics) -> None:
        self.httpd = httpd
        self.thread = thread
        self.metrics = metrics

    @property
    def address(self) -> str:
        """Where it listens, as ``host:port`` (the port chosen when 0 was configured)."""
        host, port = self.httpd.server_address[:2]
        host = str(host)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
        if _active is self.metrics:
            disable()


def serve(
    address: str,
    *,
    state: PolicyState | None = None,
    slots: VerificationSlots | None = None,
    verifiers: Verifiers | None = None,
) -> MetricsServer:
    """Enable metrics and serve them on ``address`` (``HOST:PORT``) until ``stop()``."""
    host, port = parse_address(address)
    try:
        from prometheus_client import start_http_server
    except ImportError:
        raise MetricsError(
            "metrics.address is set but prometheus-client is not installed; "
            'pip install prometheus-client, or set metrics.address to ""'
        ) from None
    metrics = enable()
    metrics.track(state=state, slots=slots, verifiers=verifiers)
    try:
        httpd, thread = start_http_server(port, host, registry=metrics.registry)
    except OSError as exc:  # in use, not an address of this host, unknown name
        disable()
        raise MetricsError(
            f"cannot serve metrics on {address}: {exc.strerror or exc}; choose another "
            "metrics.address, or stop the process that listens there"
        ) from None
    thread.name = "pullgate-metrics"
    return MetricsServer(httpd, thread, metrics)
