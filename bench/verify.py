"""Verification of a cosign key-signed image in a local registry: cold (no evidence cached) and
warm (evidence cached), in process, beside `cosign verify` on the same image in the same run.

Needs Debian's docker-registry (make test installs it) and fetches cosign 2.5 from Debian trixie
into the tools cache, as the tests do.

Run: .venv/bin/python bench/verify.py [--runs 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import p50_p99, timed
from lab.registry import start_registry
from lab.sigstore import Cosign, cosign_binary
from pullgate.evidence import Target
from pullgate.policy import Authority, KeyAuthority, Mark
from pullgate.reference import parse_reference
from pullgate.registry import RegistryClient, Urllib3Transport
from pullgate.verifiers.cache import EvidenceCache
from pullgate.verifiers.cosign import CosignVerifier


def row(label: str, samples: list[float], peer: float) -> float:
    p50, p99 = p50_p99(samples)
    print(f"{label:<52} {p50:9.2f} {p99:9.2f} {peer / p50 if p50 else 0:9.1f}x")
    return p50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry = start_registry(root / "registry")
        try:
            cosign = Cosign(cosign_binary(), root / "cosign")
            (root / "cosign").mkdir()
            key, pub = cosign.key_pair("release")
            digest = registry.push_image("bench/app", "v1", content="bench")
            ref = f"{registry.host}/bench/app@{digest}"
            cosign.sign(ref, key)
            authority = Authority(
                "release", KeyAuthority(public_key=pub.read_text()), Mark("bench", 1, 1)
            )
            target = Target(parse_reference(ref), digest)

            def fresh_client() -> RegistryClient:
                return RegistryClient(Urllib3Transport(), insecure=[registry.host], retries=0)

            client = fresh_client()
            verifier = CosignVerifier(client)
            assert verifier.verify(authority, target).verified
            cache = EvidenceCache(verifier)
            cache.verify(authority, target)

            peer = timed(
                lambda: cosign.verify(ref, "--key", str(pub), "--insecure-ignore-tlog"),
                max(10, args.runs // 4),
            )
            cold = timed(lambda: verifier.verify(authority, target), args.runs)
            cold_new = timed(
                lambda: CosignVerifier(fresh_client()).verify(authority, target), args.runs
            )
            warm = timed(lambda: cache.verify(authority, target), args.runs * 50)
        finally:
            registry.stop()
    base = p50_p99(peer)[0]
    print(
        f"python {sys.version.split()[0]}; local docker-registry 2.8; "
        "ratio = cosign verify p50 / case p50"
    )
    print(f"{'case':<52} {'p50 ms':>9} {'p99 ms':>9} {'vs cosign':>10}")
    row("peer: cosign verify --key (one process)", peer, base)
    row("pullgate cold (no evidence cached, pooled connections)", cold, base)
    row("pullgate cold (no evidence cached, new connections)", cold_new, base)
    row("pullgate warm (evidence cached)", warm, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
