"""Verification of a cosign key-signed image in a local registry: cold (no evidence cached) and
warm (evidence cached), in process, beside two peers on the same image in the same run:
`cosign verify` and `skopeo copy` under a containers policy.json of type sigstoreSigned.

Needs Debian's docker-registry (make test installs it) and fetches cosign 2.5 and skopeo 1.18
(with the trixie libraries skopeo runs on) from Debian trixie into the tools cache, as the tests
do. Before timing, each peer must accept the signed image and skopeo must also reject an
unsigned one, so both peers are seen to verify. skopeo enforces a policy only when it copies:
each skopeo run also downloads the image's config and its one tiny layer into a dir:, which
neither cosign verify nor pullgate does. Without network to deb.debian.org the skopeo peer is
skipped, with the reason printed.

Run: .venv/bin/python bench/verify.py [--runs 40]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import p50_p99, profile, timed
from lab.registry import start_registry
from lab.sigstore import Cosign, cosign_binary
from lab.skopeo import Skopeo, skopeo_command, write_sigstore_policy
from pullgate.evidence import Target
from pullgate.policy import Authority, KeyAuthority, Mark
from pullgate.reference import parse_reference
from pullgate.registry import RegistryClient, Urllib3Transport
from pullgate.verifiers.cache import EvidenceCache
from pullgate.verifiers.cosign import CosignVerifier

WIDTH = 62


def row(label: str, samples: list[float], peer: float) -> float:
    p50, p99 = p50_p99(samples)
    print(f"{label:<{WIDTH}} {p50:9.2f} {p99:9.2f} {peer / p50 if p50 else 0:9.1f}x")
    return p50


def start_skopeo(root: Path) -> tuple[Skopeo | None, str]:
    """(skopeo, its version), or (None, why it cannot be used here)."""
    try:
        skopeo = Skopeo(skopeo_command(), root)
        return skopeo, skopeo.version().removeprefix("skopeo version ")
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
        return None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--profile", action="store_true", help="profile the cold verification")
    args = parser.parse_args()
    peer_runs = max(10, args.runs // 4)
    skopeo_peer: list[float] | None = None
    rejection = ""
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
            unsigned = registry.push_image("bench/app", "unsigned", content="not signed")
            unsigned_ref = f"{registry.host}/bench/app@{unsigned}"
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

            def cosign_verify() -> None:
                r = cosign.verify(ref, "--key", str(pub), "--insecure-ignore-tlog")
                assert r.returncode == 0, f"cosign verify rejects the signed image: {r.stderr}"

            cosign_verify()

            (root / "skopeo").mkdir()
            skopeo, skopeo_version = start_skopeo(root / "skopeo")
            if skopeo is not None:
                policy = write_sigstore_policy(root / "skopeo", registry.host, "bench/app", pub)
                out = root / "skopeo" / "image"

                def skopeo_verify() -> None:
                    r = skopeo.copy(policy, ref, out)
                    assert r.returncode == 0, f"skopeo rejects the signed image: {r.stderr}"

                skopeo_verify()
                rejected = skopeo.copy(policy, unsigned_ref, out)
                assert rejected.returncode != 0, "skopeo accepts an unsigned image"
                assert "signature" in rejected.stderr, rejected.stderr
                rejection = rejected.stderr.strip().splitlines()[-1].split("msg=", 1)[-1]
                rejection = rejection.strip('"')
                skopeo_peer = timed(skopeo_verify, peer_runs)

            peer = timed(cosign_verify, peer_runs)
            cold = timed(lambda: verifier.verify(authority, target), args.runs)
            cold_new = timed(
                lambda: CosignVerifier(fresh_client()).verify(authority, target), args.runs
            )
            warm = timed(lambda: cache.verify(authority, target), args.runs * 50)
            if args.profile:
                profile(
                    lambda: verifier.verify(authority, target),
                    5,
                    "pullgate cold verification (pooled connections)",
                )
        finally:
            registry.stop()
    base = p50_p99(peer)[0]
    print(
        f"python {sys.version.split()[0]}; local docker-registry 2.8; "
        "ratio = cosign verify p50 / case p50"
    )
    print(f"{'case':<{WIDTH}} {'p50 ms':>9} {'p99 ms':>9} {'vs cosign':>10}")
    row("peer: cosign verify --key (one process)", peer, base)
    if skopeo_peer is not None:
        short = ".".join(skopeo_version.split(".")[:2])
        row(f"peer: skopeo {short} copy --policy sigstoreSigned (one process)", skopeo_peer, base)
    cold_p50 = row("pullgate cold (no evidence cached, pooled connections)", cold, base)
    cold_new_p50 = row("pullgate cold (no evidence cached, new connections)", cold_new, base)
    row("pullgate warm (evidence cached)", warm, base)
    if skopeo_peer is None:
        print(f"peer: skopeo skipped (cannot fetch or run trixie's skopeo: {skopeo_version})")
        return 0
    print(
        f"note: skopeo {skopeo_version} copy also downloads the image's config and layer "
        f"(a few hundred bytes) into a dir:; it rejected the unsigned image: {rejection}"
    )
    skopeo_p50 = p50_p99(skopeo_peer)[0]
    print(
        f"pullgate cold vs skopeo: {skopeo_p50 / cold_p50:.1f}x "
        f"(new connections: {skopeo_p50 / cold_new_p50:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
