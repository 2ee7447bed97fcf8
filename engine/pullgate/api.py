"""Between pullgate's own types and the gRPC messages of ``proto/pullgate/v1/verifier.proto``."""

from __future__ import annotations

from .judgement import AuthorityResult, Judgement, PolicyResult, RuleResult
from .request import Descriptor, Request
from .v1 import verifier_pb2 as pb

__all__ = ["judgement_from_proto", "judgement_to_proto", "request_from_proto", "request_to_proto"]


def request_from_proto(m: pb.VerifyRequest) -> Request:
    d = m.descriptor
    return Request(
        image_name=m.image_name,
        descriptor=Descriptor(
            media_type=d.media_type,
            digest=d.digest,
            size=d.size,
            annotations=dict(d.annotations),
            artifact_type=d.artifact_type,
        ),
        operation=m.operation,
        namespace=m.namespace,
        annotations=dict(m.annotations),
        labels=dict(m.labels),
        pod_name=m.pod_name,
        pod_uid=m.pod_uid,
    )


def request_to_proto(r: Request) -> pb.VerifyRequest:
    d = r.descriptor
    return pb.VerifyRequest(
        image_name=r.image_name,
        descriptor=pb.Descriptor(
            media_type=d.media_type,
            digest=d.digest,
            size=d.size,
            annotations=dict(d.annotations),
            artifact_type=d.artifact_type,
        ),
        operation=r.operation,
        namespace=r.namespace,
        annotations=dict(r.annotations),
        labels=dict(r.labels),
        pod_name=r.pod_name,
        pod_uid=r.pod_uid,
    )


def judgement_to_proto(j: Judgement) -> pb.VerifyResponse:
    return pb.VerifyResponse(
        ok=j.ok,
        reason=j.reason,
        decision_id=j.decision_id,
        policy_revision=j.policy_revision,
        policies=[
            pb.PolicyResult(
                name=p.name,
                mode=p.mode,
                passed=p.passed,
                authorities=[
                    pb.AuthorityResult(
                        name=a.name,
                        verified=a.verified,
                        signatures=a.signatures,
                        error=a.error,
                        cached=a.cached,
                    )
                    for a in p.authorities
                ],
                rules=[
                    pb.RuleResult(name=r.name, passed=r.passed, message=r.message, error=r.error)
                    for r in p.rules
                ],
            )
            for p in j.policies
        ],
        warnings=list(j.warnings),
        cached=j.cached,
        code=j.code,
    )


def judgement_from_proto(m: pb.VerifyResponse, *, image: str = "", digest: str = "") -> Judgement:
    """A judgement as a daemon answered it (``image``/``digest`` are not in the message)."""
    return Judgement(
        ok=m.ok,
        reason=m.reason,
        decision_id=m.decision_id,
        policy_revision=m.policy_revision,
        image=image,
        digest=digest,
        policies=tuple(
            PolicyResult(
                name=p.name,
                mode=p.mode,
                passed=p.passed,
                authorities=tuple(
                    AuthorityResult(a.name, a.verified, a.signatures, a.error, a.cached)
                    for a in p.authorities
                ),
                rules=tuple(RuleResult(r.name, r.passed, r.message, r.error) for r in p.rules),
            )
            for p in m.policies
        ),
        warnings=tuple(m.warnings),
        cached=m.cached,
        code=m.code,
    )
