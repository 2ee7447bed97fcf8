"""The CEL context: the names policies see, their shapes, and how requests become values.

The shapes here are what ``cel/`` checks expressions against at load; the builders are the
only way values for those names are made, for real requests and for probe samples alike, so
the two cannot drift apart. Builders make plain Python values and hand them to the engine that
runs the policies, which converts them once: request-wide values once per request, evidence
once per policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from .cel import Engine, Field, ListOf, MapOf, Record, Shape
from .evidence import Evidence, Signature
from .reference import ImageRef
from .request import Descriptor, Request

__all__ = [
    "DECLARATIONS",
    "BaseContext",
    "base_context",
    "policy_context",
    "policy_value",
    "policy_values",
    "rule_names",
    "when_context",
    "when_names",
]

STRING, BOOL, INT, TIMESTAMP = Field("string"), Field("bool"), Field("int"), Field("timestamp")

IMAGE = Record(
    "image",
    {
        "reference": STRING,
        "registry": STRING,
        "repository": STRING,
        "name": STRING,
        "tag": STRING,
        "digest": STRING,
        "mediaType": STRING,
        "size": INT,
        "annotations": MapOf("image.annotations", STRING),
    },
)
REQUEST = Record(
    "request",
    {
        "operation": STRING,
        "namespace": STRING,
        "pod": Record(
            "request.pod",
            {
                "name": STRING,
                "uid": STRING,
                "labels": MapOf("request.pod.labels", STRING),
                "annotations": MapOf("request.pod.annotations", STRING),
            },
        ),
    },
)
SIGNATURE = Record(
    "a signature",
    {
        "authority": STRING,
        "kind": STRING,
        "subject": STRING,
        "issuer": STRING,
        "san": ListOf("san", STRING),
        "extensions": MapOf("signature extensions", STRING),
        "keyId": STRING,
        "signedAt": TIMESTAMP,
        "tlog": BOOL,
        "annotations": MapOf("signature annotations", STRING),
    },
)
AUTHORITY = Record(
    "an authority",
    {
        "verified": BOOL,
        "count": INT,
        "error": STRING,
        "signatures": ListOf("signatures", SIGNATURE),
    },
)
POLICY = Record("policy", {"name": STRING, "revision": STRING})
_EVIDENCE_NAMES = ("signatures", "authorities")


def rule_names(authorities: Iterable[str]) -> dict[str, Shape]:
    """The names a rule may use, given the names of its policy's authorities."""
    return {
        "image": IMAGE,
        "request": REQUEST,
        "signatures": ListOf("signatures", SIGNATURE),
        "authorities": MapOf("authorities", AUTHORITY, keys=frozenset(authorities)),
        "now": TIMESTAMP,
        "policy": POLICY,
    }


def when_names() -> dict[str, Shape]:
    """The names a ``when`` guard may use: no evidence, since it runs before any is fetched."""
    return {k: v for k, v in rule_names(()).items() if k not in _EVIDENCE_NAMES}


# Every name an expression may read, with its shape: what engines with a type checker declare.
DECLARATIONS: Mapping[str, Shape] = MappingProxyType(rule_names(()))


def when_hint(name: str) -> str:
    if name in _EVIDENCE_NAMES:
        return (
            f"; 'when' decides whether the policy applies before any signature is fetched, "
            f"so it cannot use {name!r}: move the condition into a rule"
        )
    return ""


BaseContext = dict[str, Any]


def base_context(
    ref: ImageRef, request: Request, now: datetime | None, engine: Engine
) -> BaseContext:
    """The request-wide part of the context, converted for ``engine`` once per request."""
    d = request.descriptor
    image = {
        "reference": request.image_name,
        "registry": ref.registry,
        "repository": ref.repository,
        "name": ref.name,
        "tag": ref.effective_tag,
        "digest": d.digest or ref.digest or "",
        "mediaType": d.media_type,
        "size": d.size,
        "annotations": dict(d.annotations),
    }
    req = {
        "operation": request.operation or "pull",
        "namespace": request.namespace,
        "pod": {
            "name": request.pod_name,
            "uid": request.pod_uid,
            "labels": dict(request.labels),
            "annotations": dict(request.annotations),
        },
    }
    return engine.convert({"image": image, "request": req, "now": now or datetime.now(UTC)})


def _signature(authority: str, s: Signature) -> dict[str, Any]:
    value: dict[str, Any] = {
        "authority": authority,
        "kind": s.kind,
        "subject": s.subject,
        "issuer": s.issuer,
        "san": list(s.san),
        "extensions": dict(s.extensions),
        "keyId": s.key_id,
        "tlog": s.tlog,
        "annotations": dict(s.annotations),
    }
    if s.signed_at is not None:  # absent unless a log or TSA vouches for it: use has()
        value["signedAt"] = s.signed_at
    return value


def policy_value(name: str, revision: str, engine: Engine) -> Any:
    """The value of the ``policy`` name, converted once when the policy is compiled."""
    return engine.convert({"policy": {"name": name, "revision": revision}})["policy"]


def when_context(base: BaseContext, policy: Any, engine: Engine) -> Any:
    """The activation of a policy's ``when``: the request and the policy, no evidence."""
    return engine.bind({**base, "policy": policy})


def policy_values(
    base: BaseContext,
    policy: Any,
    evidence: Sequence[tuple[str, Evidence]],
    engine: Engine,
) -> dict[str, Any]:
    """The converted values of one policy's rules: ``base`` plus its evidence and itself.

    ``policy`` is the policy's value (see :func:`policy_value`), ``evidence`` pairs each
    authority name with what its verifier found.
    """
    signatures: list[dict[str, Any]] = []
    authorities: dict[str, Any] = {}
    for name, ev in evidence:
        sigs = [_signature(name, s) for s in ev.signatures]
        signatures.extend(sigs)
        authorities[name] = {
            "verified": ev.verified,
            "count": len(ev.signatures),
            "error": ev.error,
            "signatures": sigs,
        }
    found = engine.convert({"signatures": signatures, "authorities": authorities})
    return {**base, **found, "policy": policy}


def policy_context(
    base: BaseContext,
    policy: Any,
    evidence: Sequence[tuple[str, Evidence]],
    engine: Engine,
) -> Any:
    """The activation of one policy's rules, for one request (see :func:`policy_values`)."""
    return engine.bind(policy_values(base, policy, evidence, engine))


def sample_evidence(kind: str, verified: bool) -> Evidence:
    """Evidence with every field set (or none at all), for probe evaluation at load."""
    if not verified:
        return Evidence.unverified("sample: not verified")
    return Evidence(
        signatures=(
            Signature(
                kind=kind,
                subject="https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1",
                issuer="https://token.actions.githubusercontent.com",
                san=("https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1",),
                extensions={"githubWorkflowRepository": "acme/app"},
                key_id="sample",
                signed_at=datetime(2026, 1, 1, tzinfo=UTC),
                tlog=True,
                annotations={"sample": "value"},
            ),
        )
    )


def sample_requests() -> list[Request]:
    """Two requests that between them set and leave empty every optional field."""
    return [
        Request(
            image_name="registry.example/team/app:v1",
            descriptor=Descriptor(
                media_type="application/vnd.oci.image.index.v1+json",
                digest="sha256:" + "0" * 64,
                size=1234,
                annotations={"org.opencontainers.image.source": "https://example.com"},
            ),
            operation="run",
            namespace="default",
            labels={"app": "sample"},
            annotations={"sample": "value"},
            pod_name="sample",
            pod_uid="00000000-0000-0000-0000-000000000000",
        ),
        Request(image_name="registry.example/team/app"),
    ]


def sample_now() -> datetime:
    return datetime(2026, 6, 1, tzinfo=UTC)
