"""The answer to one request, with every policy's and rule's part in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AuthorityResult", "Judgement", "PolicyResult", "RuleResult"]


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

    def to_json(self) -> dict[str, Any]:
        """The ``VerifyResponse`` in the protobuf JSON mapping (every field present)."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "decisionId": self.decision_id,
            "policyRevision": self.policy_revision,
            "policies": [p.to_json() for p in self.policies],
            "warnings": list(self.warnings),
            "cached": self.cached,
        }

    def log_record(self) -> dict[str, Any]:
        """The decision log line (schema documented in docs/policies.md)."""
        return {
            "event": "decision",
            "decisionId": self.decision_id,
            "image": self.image,
            "digest": self.digest,
            "ok": self.ok,
            "reason": self.reason,
            "policyRevision": self.policy_revision,
            "policies": [p.name for p in self.policies],
            "warnings": list(self.warnings),
            "cached": self.cached,
            "evidenceCached": sum(a.cached for p in self.policies for a in p.authorities),
            "durationMs": round(self.duration_ms, 3),
        }
