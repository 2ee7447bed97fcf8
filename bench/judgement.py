"""Warm judgement cost in process, with 1 / 100 / 1,000 / 10,000 policies loaded, per CEL engine.

"evaluated" runs the whole pipeline with evidence cached (the judgement cache off);
"judgement cache hit" is a repeat of the same request within `cache.judgementTtl` (what a node
sees when many pods pull one image). A typical image (ghcr.io/acme/api) is selected by 3
policies (one with a keyless authority and two rules, one namespace-scoped, one with a `when`
guard); the rest select other teams' repositories. Evidence comes from an in-memory verifier
(the evidence-cached case), so the figure is pullgate's own cost: normalise, select, build the
CEL context, evaluate, combine.

Peers measured in the same run, on the same machine, for each engine:
- one evaluation of `image.registry == "ghcr.io"` with a prepared context: the floor of any
  rule on that engine;
- building the CEL context for one request (converting Python values to the engine's values).

Run: .venv/bin/python bench/judgement.py [--sizes 1,100,1000,10000] [--engines cel-python,cel-expr]
     [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import for_seconds, p50_p99, profile
from pullgate.cel import compile_expression
from pullgate.context import base_context, policy_context, policy_value, rule_names
from pullgate.decide import Decider
from pullgate.evidence import Evidence, Signature, Target
from pullgate.judgements import JudgementCache
from pullgate.policy import Authority
from pullgate.reference import parse_reference
from pullgate.request import Descriptor, Request
from pullgate.rules import engine_named, load_policies
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
    parser.add_argument("--sizes", default="1,100,1000,10000")
    parser.add_argument("--engines", default="cel-python,cel-expr")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--profile", action="store_true", help="profile the evaluated judgement at each size"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    engines = args.engines.split(",")

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
    ref = parse_reference(request.image_name)

    print(f"python {sys.version.split()[0]}; {args.seconds:.0f} s per measurement")
    print(f"{'case':<58} {'p50 ms':>8} {'p99 ms':>8} {'x floor':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for n in sizes:
            root = roots[n] = Path(tmp) / str(n)
            root.mkdir()
            (root / "acme.yaml").write_text(SELECTING)
            for i in range(max(0, n - 3)):
                (root / f"team-{i}.yaml").write_text(other(i))
        for name in engines:
            engine = engine_named(name)
            # Peers: the engine's floor, measured in this run.
            program = compile_expression(
                'image.registry == "ghcr.io"', rule_names(()), engine=engine
            )
            value = policy_value("p", "r", engine)
            base = base_context(ref, request, now, engine)
            activation = policy_context(base, value, [], engine)
            floor = p50_p99(
                for_seconds(lambda p=program, a=activation: p.evaluate(a), args.seconds)
            )
            convert = p50_p99(
                for_seconds(lambda e=engine: base_context(ref, request, now, e), args.seconds)
            )
            row(f"{name}: peer: one CEL evaluation", floor, floor[0])
            row(f"{name}: peer: build the request context", convert, floor[0])
            results = {}
            for n in sizes:
                started = time.perf_counter()
                policies = load_policies(str(roots[n]), engine=name)
                load_s = time.perf_counter() - started
                judgement = decider.decide(policies, request, now=now)
                assert judgement.ok and len(judgement.policies) == 3, judgement.reason
                evaluated = p50_p99(
                    for_seconds(
                        lambda p=policies: decider.decide(p, request, now=now), args.seconds
                    )
                )
                results[n] = evaluated[0]
                row(f"{name}: evaluated, {n} policies (load {load_s:.1f} s)", evaluated, floor[0])
                if args.profile:
                    profile(
                        lambda p=policies: decider.decide(p, request, now=now),
                        args.seconds,
                        f"{name}: evaluated judgement, {n} policies",
                    )
                hit = p50_p99(
                    for_seconds(lambda p=policies: cached.decide(p, request), args.seconds / 3)
                )
                row(f"{name}: judgement cache hit, {n} policies", hit, floor[0])
                del policies
            hi = sizes[-1]
            for lo in sorted({sizes[0], 100} & set(sizes[:-1])):  # the target reads 100 -> max
                print(f"{name}: growth {lo} -> {hi} policies: {results[hi] / results[lo]:.2f}x")
    return 0


def row(label: str, figures: tuple[float, float], floor: float) -> None:
    p50, p99 = figures
    print(f"{label:<58} {p50:8.3f} {p99:8.3f} {p50 / floor:8.1f}")


if __name__ == "__main__":
    sys.exit(main())
