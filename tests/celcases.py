"""Contexts for the CEL tests, built the way the request path builds them, for any engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pullgate import context
from pullgate.cel import Engine
from pullgate.evidence import Evidence, Signature
from pullgate.reference import parse_reference
from pullgate.request import Descriptor, Request

AUTHORITIES = ("release", "ci", "backup")
RULE_NAMES = context.rule_names(AUTHORITIES)
D1 = "sha256:" + "1" * 64
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def signature(repo: str = "acme/api") -> Signature:
    return Signature(
        kind="keyless",
        subject=f"https://github.com/{repo}/.github/workflows/release.yml@refs/tags/v1",
        issuer="https://token.actions.githubusercontent.com",
        san=(f"https://github.com/{repo}/.github/workflows/release.yml@refs/tags/v1",),
        extensions={"githubWorkflowRepository": repo},
        signed_at=NOW - timedelta(days=3),
        tlog=True,
    )


SIGNED = {
    "release": Evidence(signatures=(signature(),)),
    "ci": Evidence(signatures=(signature(),)),
}


def make_context(
    engine: Engine,
    image: str = "ghcr.io/acme/app:v1",
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    evidence: dict[str, Evidence] | None = None,
    now: datetime = NOW,
) -> Any:
    """A rule activation for ``engine``: a pod in prod-eu running ``image``."""
    request = Request(
        image_name=image,
        descriptor=Descriptor(
            media_type="application/vnd.oci.image.index.v1+json",
            digest=D1,
            size=1234,
            annotations=annotations or {},
        ),
        operation="run",
        namespace="prod-eu",
        labels=labels or {},
        pod_name="web-0",
    )
    base = context.base_context(parse_reference(image), request, now, engine)
    found = evidence or {}
    pairs = [(a, found.get(a) or Evidence.unverified(f"{a}: not signed")) for a in AUTHORITIES]
    value = context.policy_value("prod", "rev-1", engine)
    return context.policy_context(base, value, pairs, engine)
