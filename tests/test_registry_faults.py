"""Registry faults, injected by a proxy in front of the real registry, judged by a real daemon.

An image signed by real cosign sits in the real registry; pullgate reaches it only through
``lab.faultproxy`` and a policy requires the cosign key signature. For every fault, applied to
the signature manifest (the ``.sig`` tag) and to the signature payload blob: the Verify RPC
answers within ``registry.timeout`` + 1 s, the answer is a deny, and the reason names the fault
in a user's words. With no fault the same image is allowed (the control). The CLI's own
registry work (resolving a tag) gets the same faults and the same bound.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import doc, write_files
from lab.daemon import BIN, Daemon, start_daemon
from lab.faultproxy import FAULTS, FaultProxy, start_fault_proxy
from lab.registry import Registry, free_port
from lab.sigstore import Cosign, cosign_binary
from pullgate.registry import BadResponse, RegistryClient, Unreachable
from pullgate.registry.budget import current_budget, registry_budget

TIMEOUT = 1.0  # registry.timeout in the daemon's config
BOUND = TIMEOUT + 1.0  # every judgement arrives within this, from the call
SIGNATURE = ".sig"  # the path of the signature manifest: /v2/<repo>/manifests/sha256-<hex>.sig
BLOB = "/blobs/"  # the signature payload (the only blob the cosign verifier reads)

# What the reason must say for each fault, by the request it hits (None: same as "signature").
REASONS: dict[str, dict[str, str | None]] = {
    "refuse": {"signature": "closed without an answer", "blob": None},
    "reset_mid_body": {"signature": "connection reset", "blob": None},
    "slow": {"signature": "timed out", "blob": None},
    "status_500": {"signature": "answered 500", "blob": None},
    "status_502": {"signature": "answered 502", "blob": None},
    "status_503": {"signature": "answered 503", "blob": None},
    "status_429": {"signature": "rate-limit", "blob": None},
    "status_429_retry_after": {"signature": "rate-limit", "blob": None},
    "redirect_other_host": {"signature": "redirected the request to another host", "blob": None},
    "redirect_loop": {"signature": "redirect loop", "blob": None},
    # A blob's Content-Type means nothing (its bytes are checked against its digest): below.
    "wrong_content_type": {"signature": "Content-Type"},
    "truncated_body": {"signature": "truncated", "blob": None},
    "oversized_body": {"signature": "larger than", "blob": None},
    # One byte changed: a blob no longer hashes to its digest; a manifest is no longer JSON.
    "blob_digest_mismatch": {"signature": "not JSON", "blob": "not the digest asked for"},
    # A blob's digest is checked before anything reads it.
    "manifest_not_json": {"signature": "not JSON", "blob": "not the digest asked for"},
}
CASES = [
    (fault, kind, words or by_kind["signature"])
    for fault, by_kind in REASONS.items()
    for kind, words in by_kind.items()
]


@dataclass
class Lab:
    proxy: FaultProxy
    daemon: Daemon
    image: str  # PROXY/REPO, the name pullgate is asked about
    digest: str
    repo: str
    closed: str  # 127.0.0.1:PORT where nothing listens
    config: Path


@pytest.fixture(scope="module")
def lab(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("faults")
    cosign = Cosign(cosign_binary(), tmp / "cosign")
    key, pub = cosign.key_pair("release")
    repo = f"faults/app-{uuid.uuid4().hex[:8]}"
    digest = registry.push_image(repo, "v1", content=repo)
    cosign.sign(f"{registry.host}/{repo}@{digest}", key)  # straight to the registry
    proxy = start_fault_proxy(registry.host)
    proxy.slow_seconds = BOUND + 1  # longer than any client here waits
    closed = f"127.0.0.1:{free_port()}"
    policy = "  authorities:\n    - name: release\n      key: {path: " + str(pub) + "}\n"
    policies = write_files(
        tmp / "policies",
        {
            "signed.yaml": doc("signed", f'  images: ["{proxy.address}/**"]\n' + policy),
            "closed.yaml": doc("closed", f'  images: ["{closed}/**"]\n' + policy),
        },
    )
    # No caches: every call below goes to the registry.
    settings = (
        f"registry: {{insecure: ['{proxy.address}', '{closed}'], timeout: {TIMEOUT:g}s, "
        "retries: 2}\n"
        "cache: {ttl: 0s, failureTtl: 0s, judgementTtl: 0s}\n"
    )
    daemon = start_daemon(tmp / "daemon", policies, config=settings)
    config = tmp / "pullgate.yaml"
    config.write_text(f"policies: {policies}\n{settings}")
    try:
        yield Lab(proxy, daemon, f"{proxy.address}/{repo}", digest, repo, closed, config)
    finally:
        daemon.stop()
        proxy.stop()


@pytest.fixture
def faults(lab: Lab) -> Iterator[FaultProxy]:
    """The proxy, with every fault cleared after the test."""
    lab.proxy.set_fault(None)
    yield lab.proxy
    lab.proxy.set_fault(None)


def judged(lab: Lab, image: str | None = None) -> tuple[bool, str, float]:
    """(allowed, reason, seconds) of one Verify RPC, timed from the call."""
    started = time.monotonic()
    response = lab.daemon.verify(image or lab.image, digest=lab.digest)
    return response.ok, response.reason, time.monotonic() - started


def test_the_image_is_allowed_through_the_proxy_without_faults(lab: Lab, faults) -> None:
    before = faults.counts["ok"]
    ok, reason, seconds = judged(lab)
    assert ok, reason
    assert reason == 'allowed by policy "signed"'
    assert seconds < BOUND
    assert faults.counts["ok"] >= before + 2  # the signature manifest and its payload, proxied


def test_every_fault_has_a_case() -> None:
    assert set(REASONS) == set(FAULTS)


@pytest.mark.parametrize(("fault", "kind", "words"), CASES, ids=[f"{f}-{k}" for f, k, _ in CASES])
def test_a_fault_denies_in_time_naming_it(
    lab: Lab, faults: FaultProxy, fault: str, kind: str, words: str
) -> None:
    faults.set_fault(fault, match=SIGNATURE if kind == "signature" else BLOB)
    before = faults.counts[fault]
    ok, reason, seconds = judged(lab)
    assert faults.counts[fault] > before, "the fault was not applied"
    assert not ok, f"{fault} on the {kind} allowed the image: {reason}"
    assert reason.startswith('denied: policy "signed": no authority verified (release: '), reason
    assert words.lower() in reason.lower(), reason
    assert seconds <= BOUND, f"{fault} on the {kind}: judged after {seconds:.2f} s: {reason}"
    # The fault gone, the same image is allowed again: nothing was cached or broken.
    faults.set_fault(None)
    ok, reason, _ = judged(lab)
    assert ok, reason


def test_a_blob_served_with_a_wrong_content_type_is_still_verified(lab: Lab, faults) -> None:
    """A blob is bytes checked against their digest: its Content-Type decides nothing."""
    faults.set_fault("wrong_content_type", match=BLOB)
    before = faults.counts["wrong_content_type"]
    ok, reason, _ = judged(lab)
    assert faults.counts["wrong_content_type"] > before
    assert ok, reason


def test_a_truly_refused_connection_denies_naming_it(lab: Lab) -> None:
    ok, reason, seconds = judged(lab, f"{lab.closed}/{lab.repo}")
    assert not ok
    assert reason.startswith('denied: policy "closed": no authority verified (release: '), reason
    assert "connection refused" in reason
    assert seconds <= BOUND


@pytest.mark.parametrize("match", [SIGNATURE, BLOB])
def test_a_body_sent_a_byte_at_a_time_is_cut_off_at_the_timeout(
    lab: Lab, faults: FaultProxy, match: str
) -> None:
    """No single read times out, but the whole body would take minutes: the deadline holds."""
    faults.set_fault("drip_body", match=match)
    ok, reason, seconds = judged(lab)
    assert faults.counts["drip_body"] > 0
    assert not ok
    assert "still sending the body" in reason and "timed out" in reason, reason
    assert seconds <= BOUND, f"judged after {seconds:.2f} s: {reason}"


def test_faults_on_every_request_are_bounded_by_the_timeout(lab: Lab, faults) -> None:
    """The retried faults on every request: retries and Retry-After waits stop at the budget."""
    for fault in ("status_503", "status_429_retry_after", "slow"):
        faults.set_fault(fault)
        ok, reason, seconds = judged(lab)
        assert not ok
        assert seconds <= BOUND, f"{fault}: judged after {seconds:.2f} s: {reason}"


# -- the CLI: `pullgate verify REF:TAG` resolves the tag through the proxy ---------------------


def cli_verify(lab: Lab) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    r = subprocess.run(
        [str(BIN / "pullgate"), "verify", f"{lab.image}:v1", "--config", str(lab.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return r, time.monotonic() - started


def test_the_cli_resolves_and_allows_through_the_proxy(lab: Lab, faults) -> None:
    r, _ = cli_verify(lab)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resolves to {lab.digest}" in r.stderr


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("refuse", "closed without an answer"),
        ("slow", "timed out"),
        ("status_503", "answered 503"),
        ("redirect_other_host", "redirected the request to another host"),
    ],
)
def test_the_cli_denies_when_the_tag_cannot_be_resolved(
    lab: Lab, faults: FaultProxy, fault: str, words: str
) -> None:
    faults.set_fault(fault, match="/manifests/v1")
    r, _ = cli_verify(lab)
    assert r.returncode == 1, r.stdout + r.stderr  # denied
    assert r.stdout.startswith("DENIED"), r.stdout
    assert f"cannot resolve {lab.image}:v1 to a digest" in r.stderr
    assert words in r.stderr, r.stderr
    assert "no digest to verify" in r.stdout


# -- the budget itself, on the real client through the proxy ------------------------------------


def test_without_a_budget_each_request_has_the_timeout_and_every_retry(lab: Lab, faults) -> None:
    """A library caller outside any verification keeps the per-request behaviour."""
    client = RegistryClient(insecure=[lab.proxy.address], timeout=TIMEOUT, retries=1)
    faults.set_fault("status_503")
    with pytest.raises(BadResponse) as caught:
        client.manifest(lab.proxy.address, lab.repo, "v1")
    assert "answered 503" in caught.value.reason and "to all 2 attempts" in caught.value.reason
    assert "gave up" not in caught.value.reason


def test_a_budget_stops_retries_that_would_pass_it(lab: Lab, faults) -> None:
    client = RegistryClient(insecure=[lab.proxy.address], timeout=5.0, retries=5)
    faults.set_fault("status_429_retry_after")  # Retry-After: 1
    before = faults.counts["status_429_retry_after"]
    with registry_budget(0.5), pytest.raises(BadResponse) as caught:
        client.manifest(lab.proxy.address, lab.repo, "v1")
    assert faults.counts["status_429_retry_after"] == before + 1  # no retry was started
    reason = caught.value.reason
    assert "rate-limited" in reason and "to 1 attempt(s)" in reason
    assert "(registry.timeout is 0.5 s): the next try was due in 1 s (as Retry-After asked)" in (
        reason
    )


def test_a_spent_budget_sends_nothing_more(lab: Lab, faults) -> None:
    client = RegistryClient(insecure=[lab.proxy.address], timeout=5.0)
    before = dict(faults.counts)
    with registry_budget(0.01):
        time.sleep(0.05)
        with pytest.raises(Unreachable, match=r"gave up after 0\.\d s .*before it was fetched"):
            client.manifest(lab.proxy.address, lab.repo, "v1")
    assert faults.counts == before


def test_a_nested_budget_cannot_extend_the_outer_one() -> None:
    assert current_budget() is None
    with registry_budget(1.0) as outer:
        with registry_budget(60.0) as inner:
            assert inner is outer and current_budget() is outer
        assert current_budget() is outer
    assert current_budget() is None


def test_the_budget_is_per_thread() -> None:
    """Each RPC runs in its own worker thread: one verification's budget is not another's."""
    seen: list[object] = []
    with registry_budget(1.0):
        thread = threading.Thread(target=lambda: seen.append(current_budget()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_random_faults_on_every_request_always_deny_in_time(lab: Lab, faults) -> None:
    """Every request gets a fault drawn at random (seeded), retries included: no verification
    can succeed, and each is judged within the bound."""
    faults.fail_rate = 1.0
    try:
        before = sum(faults.counts[f] for f in FAULTS)
        for _ in range(25):
            ok, reason, seconds = judged(lab)
            assert not ok, reason
            assert seconds <= BOUND, f"judged after {seconds:.2f} s: {reason}"
        assert sum(faults.counts[f] for f in FAULTS) >= before + 25
    finally:
        faults.fail_rate = 0.0
