"""Native Notation verification of one image in a local registry: Notation's own e2e signed
layout pushed into Debian's docker-registry, verified cold (no evidence cached, pooled
connections) by pullgate's native verifier. No Notation CLI can be installed here, so there is
no peer process to time beside it; the registry round trips are measured as the floor.

Run: .venv/bin/python bench/notation.py [--runs 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import p50_p99, timed
from lab.oci_layout import push_layouts
from lab.registry import start_registry
from pullgate.evidence import Target
from pullgate.policy import Authority, Mark, NotationAuthority
from pullgate.reference import parse_reference
from pullgate.registry import RegistryClient, Urllib3Transport
from pullgate.verifiers.notation_native import NotationNativeVerifier

SHARED = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "fixtures"
    / "notation/notation/test/e2e/testdata"
)
IMAGE = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"


def row(label: str, samples: list[float]) -> None:
    p50, p99 = p50_p99(samples)
    print(f"{label:<56} {p50:9.2f} {p99:9.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"{SHARED} is missing: the Notation fixtures are needed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        registry = start_registry(Path(tmp) / "registry")
        try:
            push_layouts(
                registry, "bench/notation", [SHARED / "registry/oci_layout/e2e-valid-signature"]
            )
            client = RegistryClient(Urllib3Transport(), insecure=[registry.host], retries=0)
            spec = NotationAuthority(
                trust_store_type="ca",
                certificates=(SHARED / "config/localkeys/e2e.crt").read_text(),
                trusted_identities=("*",),
            )
            authority = Authority("e2e", spec, Mark("bench", 1, 1))
            target = Target(
                parse_reference(f"{registry.host}/bench/notation@{IMAGE}"),
                IMAGE,
                "application/vnd.oci.image.manifest.v1+json",
                517,
            )
            verifier = NotationNativeVerifier(client)
            assert verifier.verify(authority, target).verified
            verify = timed(lambda: verifier.verify(authority, target), args.runs)
            trips = timed(
                lambda: client.referrers(registry.host, "bench/notation", IMAGE), args.runs
            )
        finally:
            registry.stop()
    print(f"python {sys.version.split()[0]}; local docker-registry 2.8; {args.runs} runs")
    print(f"{'case':<56} {'p50 ms':>9} {'p99 ms':>9}")
    row("floor: list the referrers (API 404, then the sha256- tag)", trips)
    row("native Notation verification, cold (+ manifest, envelope)", verify)
    return 0


if __name__ == "__main__":
    sys.exit(main())
