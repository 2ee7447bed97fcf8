"""Warm judgement cost in process, with 1 / 100 / 1,000 policies loaded.

"evaluated" runs the whole pipeline with evidence cached (the judgement cache off);
"judgement cache hit" is a repeat of the same request within `cache.judgementTtl` (what a node
sees when many pods pull one image). A typical image (ghcr.io/acme/api) is selected by 3
policies (one with a keyless authority and two rules, one namespace-scoped, one with a `when`
guard); the rest select other teams' repositories. Evidence comes from an in-memory verifier
(the evidence-cached case), so the figure is pullgate's own cost: normalise, select, build the
CEL context, evaluate, combine.

Peers measured in the same run, on the same machine:
- one cel-python evaluation of `image.registry == "ghcr.io"` with a prepared context: the
  floor of any rule on this engine;
- building the CEL context for one request (converting Python values to CEL values).

Run: .venv/bin/python bench/judgement.py [--sizes 1,100,1000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import for_seconds, p50_p99
from pullgate.cel import compile_expression
from pullgate.context import base_context, rule_names
from pullgate.decide import Decider
from pullgate.evidence import Evidence, Signature, Target
from pullgate.judgements import JudgementCache
from pullgate.policy import Authority
from pullgate.reference import parse_reference
from pullgate.request import Descriptor, Request
from pullgate.rules import load_policies
from pullgate.verifiers import KINDS, Verifiers

DIGEST = "sha256:" + "c" * 64
HEADER = "apiVersion: pullgate.dev/v1alpha1\nkind: ImagePolicy\n"

SELECTING = f"""{HEADER}metadata: {{name: acme-release}}
spec:
  images: ["ghcr.io/acme/**"]
  authorities:
    - name: ci
      keyless:
        issuer: https://token.actions.githubusercontent.com
        subjectRegExp: '^https://github\\.com/acme/[^/]+/\\.github/workflows/release\\.yml@.*$'
  rules:
    - name: signed
      expr: authorities["ci"].verified
    - name: repository
      expr: 'signatures.exists(s, s.extensions.githubWorkflowRepository == "acme/api")'
---
{HEADER}metadata: {{name: acme-prod}}
spec:
  images: ["ghcr.io/acme/*"]
  namespaces: ["prod-*"]
  rules:
    - name: run-by-digest
      expr: 'request.operation != "run" || image.digest != ""'
---
{HEADER}metadata: {{name: acme-debug}}
spec:
  images: ["ghcr.io/acme/**"]
  when: 'image.tag != "debug"'
  rules:
    - name: tag-set
      expr: 'image.tag != ""'
"""


def other(i: int) -> str:
    return f"""{HEADER}metadata: {{name: team-{i}}}
spec:
  images: ["registry.example.com/team-{i}/**"]
  rules:
    - name: namespace
      expr: 'request.namespace == "team-{i}"'
"""


class Cached:
    """Evidence as the cache would hand it back: already verified."""

    def verify(self, authority: Authority, target: Target) -> Evidence:
        return Evidence(
            signatures=(
                Signature(
                    kind=authority.kind,
                    subject="https://github.com/acme/api/.github/workflows/release.yml@refs/tags/v1",
                    issuer="https://token.actions.githubusercontent.com",
                    extensions={"githubWorkflowRepository": "acme/api"},
                ),
            ),
            cached=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    request = Request(
        image_name="ghcr.io/acme/api:v1.2.0",
        descriptor=Descriptor(digest=DIGEST, media_type="application/vnd.oci.image.index.v1+json"),
        namespace="prod-eu",
    )
    decider = Decider(Verifiers(dict.fromkeys(KINDS, Cached())), log=None)
    cached = Decider(
        Verifiers(dict.fromkeys(KINDS, Cached())), log=None, judgements=JudgementCache(3600)
    )
    now = datetime.now(UTC)

    # Peers: the engine floor, measured in this run.
    program = compile_expression('image.registry == "ghcr.io"', rule_names(()))
    ref = parse_reference(request.image_name)
    context = base_context(ref, request, now)
    floor = p50_p99(for_seconds(lambda: program.evaluate(context), args.seconds))
    convert = p50_p99(for_seconds(lambda: base_context(ref, request, now), args.seconds))

    print(f"python {sys.version.split()[0]}; {args.seconds:.0f} s per measurement")
    print(f"{'case':<44} {'p50 ms':>8} {'p99 ms':>8} {'x floor':>8}")
    print(f"{'peer: one CEL evaluation (cel-python)':<44} {floor[0]:8.3f} {floor[1]:8.3f} {1:8.1f}")
    print(
        f"{'peer: build the request CEL context':<44} {convert[0]:8.3f} {convert[1]:8.3f} "
        f"{convert[0] / floor[0]:8.1f}"
    )
    results = {}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "acme.yaml").write_text(SELECTING)
            for i in range(max(0, n - 3)):
                (root / f"team-{i}.yaml").write_text(other(i))
            started = time.perf_counter()
            policies = load_policies(str(root))
            load_s = time.perf_counter() - started
        judgement = decider.decide(policies, request, now=now)
        assert judgement.ok and len(judgement.policies) == 3, judgement.reason
        p50, p99 = p50_p99(
            for_seconds(lambda p=policies: decider.decide(p, request, now=now), args.seconds)
        )
        results[n] = p50
        label = f"evaluated, {n} policies (load {load_s:.2f} s)"
        print(f"{label:<44} {p50:8.3f} {p99:8.3f} {p50 / floor[0]:8.1f}")
        hit50, hit99 = p50_p99(
            for_seconds(lambda p=policies: cached.decide(p, request), args.seconds / 3)
        )
        label = f"judgement cache hit, {n} policies"
        print(f"{label:<44} {hit50:8.3f} {hit99:8.3f} {hit50 / floor[0]:8.1f}")
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"growth {lo} -> {hi} policies: {results[hi] / results[lo]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
