"""Load with faults: 10,000 Verify calls from 32 concurrent clients against the real daemon,
while a fault proxy fails 20 % of registry requests at random and the policy directory is
republished (a ConfigMap swap) every second.

Held: every call is answered; no image that must be denied is ever allowed (a fault may turn
an allow into a deny, never the reverse); images judged without the registry keep their exact
verdict; after warm-up, RSS grows by at most 10 % and the daemon's file descriptors do not
grow. Throughput, latency percentiles and the proxy's fault counts are printed (``-s``).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from conftest import doc
from lab.configmap import publish
from lab.daemon import Daemon
from lab.faultproxy import FaultProxy, start_fault_proxy
from lab.registry import Registry
from lab.sigstore import Cosign, cosign_binary
from pullgate.v1 import verifier_pb2 as pb
from pullgate.v1 import verifier_pb2_grpc as pb_grpc

CALLS = int(os.environ.get("PULLGATE_SOAK_CALLS", "10000"))  # longer runs: set it
WARM_UP = 2_000
CLIENTS = 32
FAIL_RATE = 0.2
SIGNED, UNSIGNED = 6, 6
OPEN, CLOSED = "ghcr.io/open/app:1", "ghcr.io/closed/app:1"
OTHER_DIGEST = "sha256:" + "0" * 64


@dataclass(frozen=True)
class Case:
    image: str
    digest: str
    expect: bool  # the verdict with a healthy registry
    registry: bool  # judged with evidence from the registry (a fault may deny it)


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    answers: list[tuple[Case, bool, str, str]] = field(default_factory=list)  # ok, reason, rev
    errors: list[tuple[Case, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def policies(host: str, pub: str, generation: int) -> dict[str, str]:
    """The policy files; only the churn policy changes between generations (its verdicts
    concern no image the clients ask about), so every revision gives the same verdicts."""
    signed = f'  images: ["{host}/**"]\n  authorities:\n'
    signed += "    - name: release\n      key: {path: release.pub}\n"
    closed = '  images: ["ghcr.io/closed/**"]\n  rules:\n    - name: shut\n      expr: "false"\n'
    churn = '  images: ["ghcr.io/unused/**"]\n  rules:\n    - name: gen\n'
    churn += f"      expr: 'image.tag != \"{generation}\"'\n"
    return {
        "signed.yaml": doc("signed", signed),
        "open.yaml": doc("open", '  images: ["ghcr.io/open/**"]\n'),
        "closed.yaml": doc("closed", closed + "      message: closed\n"),
        "churn.yaml": doc("churn", churn),
        "release.pub": pub,
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def hammer(daemon: Daemon, cases: list[Case], calls: int, results: Results) -> float:
    """``calls`` Verify calls from CLIENTS threads; returns the wall time in seconds."""
    counter = itertools.count()

    def client() -> None:
        with grpc.insecure_channel(daemon.address) as channel:
            stub = pb_grpc.ImageVerifierStub(channel)
            while (i := next(counter)) < calls:
                case = cases[i % len(cases)]
                request = pb.VerifyRequest(
                    image_name=case.image, descriptor=pb.Descriptor(digest=case.digest)
                )
                started = time.perf_counter()
                try:
                    r = stub.Verify(request, timeout=30)
                except grpc.RpcError as exc:
                    with results.lock:
                        results.errors.append((case, f"{exc.code().name}: {exc.details()}"))
                    continue
                took = time.perf_counter() - started
                with results.lock:
                    results.latencies.append(took)
                    results.answers.append((case, r.ok, r.reason, r.policy_revision))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not any(t.is_alive() for t in threads), "a client hung"
    return time.perf_counter() - started


class Sampler(threading.Thread):
    """(phase, calls answered, RSS KiB, open fds) of the daemon every quarter second."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid = pid
        self.phase = "warm-up"
        self.results = Results()
        self.samples: list[tuple[str, int, int, int]] = []
        self.done = threading.Event()

    def take(self) -> tuple[int, int]:
        rss, n = rss_kib(self.pid), fds(self.pid)
        self.samples.append((self.phase, len(self.results.answers), rss, n))
        return rss, n

    def run(self) -> None:
        while not self.done.wait(0.25):
            self.take()

    def quiet(self) -> tuple[int, int]:
        """(RSS KiB, open fds) once in-flight work settled."""
        time.sleep(1.5)
        return self.take()

    def high(self, phase: str) -> tuple[int, int]:
        """The highest RSS and fd count seen in ``phase``."""
        mine = [(rss, n) for p, _, rss, n in self.samples if p == phase]
        return max(r for r, _ in mine), max(n for _, n in mine)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


@pytest.mark.slow
def test_load_with_registry_faults_and_reloads(
    registry: Registry, daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    cosign = Cosign(cosign_binary(), tmp_path / "cosign")
    private, public = cosign.key_pair("release")
    proxy: FaultProxy = start_fault_proxy(registry.host, seed=7, fail_rate=0.0)
    try:
        repo = f"soak/app-{uuid.uuid4().hex[:6]}"
        cases: list[Case] = []
        for i in range(SIGNED + UNSIGNED):
            signed = i < SIGNED
            digest = registry.push_image(repo, f"t{i}", content=f"soak {i} {signed}")
            if signed:
                cosign.sign(f"{registry.host}/{repo}@{digest}", private)
            cases.append(Case(f"{proxy.address}/{repo}:t{i}", digest, signed, True))
        cases += [Case(OPEN, OTHER_DIGEST, True, False), Case(CLOSED, OTHER_DIGEST, False, False)]

        root = tmp_path / "policies"
        pub = public.read_text()
        publish(root, policies(proxy.address, pub, 0))
        d = daemons(
            root,
            config=(
                f"registry: {{insecure: ['{proxy.address}'], timeout: 2s, retries: 1}}\n"
                "cache: {ttl: 50ms, failureTtl: 20ms, judgementTtl: 0s}\n"
                # server.workers and limits.concurrentVerifications keep their defaults (64 and
                # 32): 32 clients verifying at once fit, none is refused for want of a slot
            ),
        )
        pid = d.process.pid
        # with a healthy registry, every verdict is the expected one
        for case in cases:
            r = d.verify(case.image, case.digest)
            assert r.ok is case.expect, (case, r.reason)

        stop = threading.Event()
        generations = itertools.count(1)

        def reload_every_second() -> None:
            while not stop.wait(1.0):
                publish(root, policies(proxy.address, pub, next(generations)))

        reloader = threading.Thread(target=reload_every_second)
        reloader.start()
        proxy.fail_rate = FAIL_RATE
        sampler = Sampler(pid)
        sampler.start()
        try:
            sampler.results = Results()
            hammer(d, cases, WARM_UP, sampler.results)
            sampler.quiet()
            # After warm-up: the working set, including the transient buffers of requests the
            # faults cut short or made oversized, as the busiest moment of the warm-up held it.
            rss_warm, fds_warm = sampler.high("warm-up")
            sampler.phase, sampler.results = "load", Results()
            results = sampler.results
            before = dict(proxy.counts)
            wall = hammer(d, cases, CALLS, results)
            faults = {k: v - before.get(k, 0) for k, v in proxy.counts.items()}
            rss_high, fds_high = sampler.high("load")
            sampler.phase = "after"
            rss_end, fds_end = sampler.quiet()
        finally:
            sampler.done.set()
            sampler.join()
            stop.set()
            reloader.join()
            proxy.fail_rate = 0.0
        assert d.process.poll() is None, "the daemon died"
    finally:
        proxy.stop()

    # -- what held --------------------------------------------------------------------------
    answered = len(results.answers)
    wrong_allows = [
        (c.image, reason) for c, ok, reason, _ in results.answers if ok and not c.expect
    ]
    fault_denies = [(c, reason) for c, ok, reason, _ in results.answers if c.expect and not ok]
    revisions = {rev for *_, rev in results.answers}
    injected = sum(v for k, v in faults.items() if k != "ok")
    summary = {
        "calls": CALLS,
        "clients": CLIENTS,
        "answered": answered,
        "unanswered": len(results.errors),
        "wrong_allows": len(wrong_allows),
        "allows_denied_by_faults": len(fault_denies),
        "throughput_per_s": round(CALLS / wall, 1),
        "wall_s": round(wall, 1),
        "p50_ms": round(percentile(results.latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(results.latencies, 0.99) * 1000, 1),
        "max_ms": round(max(results.latencies) * 1000, 1),
        "revisions_seen": len(revisions),
        "registry_requests": sum(faults.values()),
        "faults_injected": injected,
        "fault_counts": {k: v for k, v in sorted(faults.items()) if v},
        "rss_kib_warm": rss_warm,
        "rss_kib_end": rss_end,
        "rss_kib_load_high": rss_high,
        "rss_growth_pct": round(100 * (rss_end - rss_warm) / rss_warm, 1),
        "rss_kib_timeline": [
            f"{phase} {n}: {kib}"
            for phase, n, kib, _ in sampler.samples[:: max(1, len(sampler.samples) // 16)]
        ],
        "fds_warm": fds_warm,
        "fds_load_high": fds_high,
        "fds_end": fds_end,
    }
    print("\nsoak:", json.dumps(summary, indent=2))
    summary_file = os.environ.get("PULLGATE_SOAK_SUMMARY")
    if summary_file:  # for docs/reliability.md
        Path(summary_file).write_text(json.dumps(summary, indent=2) + "\n")

    assert not results.errors, Counter(e for _, e in results.errors).most_common(5)
    assert answered == CALLS
    assert not wrong_allows, wrong_allows[:5]
    for case, ok, reason, _ in results.answers:  # judged without the registry: exact
        if not case.registry:
            assert ok is case.expect, (case, reason)
        if not ok:
            assert reason.strip(), case
    # the faults and the reloads did happen, and did not deny everything
    assert 0.1 < injected / sum(faults.values()) < 0.3, faults
    assert len(revisions) >= 5, revisions
    assert any(c.registry and ok for c, ok, _, _ in results.answers)
    # no leak: memory settles, file descriptors do not grow
    assert rss_end <= rss_warm * 1.10, summary
    assert fds_end <= fds_warm, summary
