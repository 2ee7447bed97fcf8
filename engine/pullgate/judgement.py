"""The answer to one request, with every policy's and rule's part in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALLOWED",
    "ALLOWED_AUDIT_ONLY",
    "ALLOWED_BY_DEFAULT",
    "CODES",
    "DIGEST_MISMATCH",
    "NO_AUTHORITY_VERIFIED",
    "NO_POLICY_APPLIES",
    "NO_POLICY_SELECTED",
    "RULE_ERROR",
    "RULE_FAILED",
    "AuthorityResult",
    "Judgement",
    "PolicyResult",
    "RuleResult",
]

# Reason codes: how a judgement ended, for machines (docs/troubleshooting.md). A contract:
# codes are added, never renamed or reused. pullgate-containerd adds its own (containerd.py).
ALLOWED = "ALLOWED"  # every applying enforce policy passed
ALLOWED_AUDIT_ONLY = "ALLOWED_AUDIT_ONLY"  # only audit policies applied
ALLOWED_BY_DEFAULT = "ALLOWED_BY_DEFAULT"  # no policy applied; the default action is allow
NO_POLICY_SELECTED = "NO_POLICY_SELECTED"  # no policy selects the image; default deny
NO_POLICY_APPLIES = "NO_POLICY_APPLIES"  # policies select it but every `when` is false
DIGEST_MISMATCH = "DIGEST_MISMATCH"  # the reference's digest is not the resolved one
NO_AUTHORITY_VERIFIED = "NO_AUTHORITY_VERIFIED"  # a policy without rules: nothing verified
RULE_FAILED = "RULE_FAILED"  # a rule was false
RULE_ERROR = "RULE_ERROR"  # a rule could not be evaluated (an error denies)
CODES = (
    ALLOWED,
    ALLOWED_AUDIT_ONLY,
    ALLOWED_BY_DEFAULT,
    NO_POLICY_SELECTED,
    NO_POLICY_APPLIES,
    DIGEST_MISMATCH,
    NO_AUTHORITY_VERIFIED,
    RULE_FAILED,
    RULE_ERROR,
)


@dataclass(frozen=True, slots=True)
class RuleResult:
    name: str
    passed: bool
    message: str = ""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "message": self.message,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class AuthorityResult:
    name: str
    verified: bool
    signatures: int = 0
    error: str = ""
    cached: bool = False  # the evidence came from the evidence cache

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verified": self.verified,
            "signatures": self.signatures,
            "error": self.error,
            "cached": self.cached,
        }


@dataclass(frozen=True, slots=True)
class PolicyResult:
    name: str
    mode: str
    passed: bool
    authorities: tuple[AuthorityResult, ...] = ()
    rules: tuple[RuleResult, ...] = ()
    detail: str = ""  # why it failed, in one line ("" when it passed)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "passed": self.passed,
            "authorities": [a.to_json() for a in self.authorities],
            "rules": [r.to_json() for r in self.rules],
        }


@dataclass(frozen=True, slots=True)
class Judgement:
    ok: bool
    reason: str
    decision_id: str
    policy_revision: str
    image: str  # the normalised reference
    digest: str
    policies: tuple[PolicyResult, ...] = ()
    warnings: tuple[str, ...] = ()
    cached: bool = False
    duration_ms: float = 0.0
    code: str = ""  # one of CODES ("" only from a daemon older than reason codes)

    def to_json(self) -> dict[str, Any]:
        """The ``VerifyResponse`` in the protobuf JSON mapping (every field present)."""
        return {
            "ok": self.ok,
            "code": self.code,
            "reason": self.reason,
            "decisionId": self.decision_id,
            "policyRevision": self.policy_revision,
            "policies": [p.to_json() for p in self.policies],
            "warnings": list(self.warnings),
            "cached": self.cached,
        }

    def log_record(self) -> dict[str, Any]:
        """The decision log line (schema: docs/policies.md#the-decision-log, docs/metrics.md)."""
        return {
            "event": "decision",
            "schemaVersion": 1,  # raised only if a key ever changes meaning; keys only grow
            "decisionId": self.decision_id,
            "image": self.image,
            "digest": self.digest,
            "ok": self.ok,
            "code": self.code,
            "reason": self.reason,
            "policyRevision": self.policy_revision,
            "policies": [p.name for p in self.policies],
            "warnings": list(self.warnings),
            "cached": self.cached,
            "evidenceCached": sum(a.cached for p in self.policies for a in p.authorities),
            "durationMs": round(self.duration_ms, 3),
        }
