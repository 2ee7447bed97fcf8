"""Decide one request: normalise → select → when → evidence → rules → judgement.

The semantics of docs/policies.md ("How a decision is made"), and nothing else:
- no policy selects the image → the default action (deny unless configured otherwise);
- a selected policy passes when all its rules are true; with no rules, when one of its
  authorities verified (or it has none);
- the image is allowed when every selected ``enforce`` policy passes; ``audit`` failures are
  warnings;
- a rule that raises fails; a ``when`` that raises applies the policy; a verifier that raises
  leaves its authority unverified. Nothing is ever allowed because something broke.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from . import metrics
from .cel import EvalError
from .context import BaseContext, base_context, policy_context, when_context
from .evidence import Evidence, Target
from .judgement import (
    ALLOWED,
    ALLOWED_AUDIT_ONLY,
    ALLOWED_BY_DEFAULT,
    DIGEST_MISMATCH,
    NO_AUTHORITY_VERIFIED,
    NO_POLICY_APPLIES,
    NO_POLICY_SELECTED,
    RULE_ERROR,
    RULE_FAILED,
    AuthorityResult,
    Judgement,
    PolicyResult,
    RuleResult,
)
from .judgements import JudgementCache, request_key
from .policy import Authority
from .reference import InvalidReference, parse_reference
from .request import InvalidRequest, Request, check_request
from .rules import CompiledPolicy, CompiledPolicySet
from .verifiers import Verifiers

__all__ = ["DEFAULT_OPTIONS", "Decider", "Options", "Trace", "log_decision"]

MAX_REASON_CHARS = 1000
MAX_DETAIL_CHARS = 600  # a registry failure names the image twice before the fault
NOT_NEEDED = "not checked: no rule of this policy reads authorities or signatures"
NO_DIGEST = "no digest to verify: give the image as REF@sha256:... or pass --digest"

decision_logger = logging.getLogger("pullgate.decision")


def log_decision(judgement: Judgement) -> None:
    """One line per decision on the ``pullgate.decision`` logger (JSON with ``logs.py``)."""
    if decision_logger.isEnabledFor(logging.INFO):
        decision_logger.info("decision", extra={"fields": judgement.log_record()})


@dataclass(frozen=True, slots=True)
class Options:
    default_action: str = "deny"  # "deny" | "allow": when no policy selects the image
    unknown_namespace: str = "apply"  # "apply" | "skip": namespace-scoped policies at pull time
    # registry.timeout: bounds all the registry work of one decision (pullgate.registry.budget)
    registry_timeout: float | None = None


DEFAULT_OPTIONS = Options()


@dataclass(slots=True)
class Trace:
    """What one decision saw, kept only when asked for (``explain.py``, ``verify --explain``):
    the time its rules saw as ``now`` and the evidence of each authority, by fingerprint."""

    now: datetime | None = None
    evidence: dict[str, Evidence] = field(default_factory=dict)


def _code(result: PolicyResult) -> str:
    """The reason code of a failed policy."""
    failed = next((r for r in result.rules if not r.passed), None)
    if failed is None:
        return NO_AUTHORITY_VERIFIED
    return RULE_ERROR if failed.error else RULE_FAILED


def _clip(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(names: Sequence[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _why_unverified(found: Sequence[tuple[str, Evidence]]) -> str:
    """``a, b: reason; c: other reason``: authorities that failed the same way share a line."""
    by_error: dict[str, list[str]] = {}
    for name, evidence in found:
        if not evidence.verified:
            by_error.setdefault(evidence.error, []).append(name)
    return "; ".join(f"{', '.join(names)}: {error}" for error, names in by_error.items())


def _lap(stage: str, since: float) -> float:
    """Report the time since ``since`` as ``stage``; returns now (the next stage's start)."""
    now = time.perf_counter()
    metrics.observe_stage(stage, now - since)
    return now


def _registry_budget(seconds: float | None) -> AbstractContextManager[object]:
    """``registry.timeout`` for all the evidence of one decision; imported only when set, so
    that ``pullgate check`` and ``test`` do not load the registry client."""
    if seconds is None:
        return nullcontext()
    from .registry.budget import registry_budget

    return registry_budget(seconds)


class Decider:
    """Judges requests against whichever compiled policy set the caller passes in.

    Holds no policy state, so a reloader can swap sets between calls without locks. With
    ``log=None`` it is silent (policy tests, shadow policies): no decision log line and nothing
    counted in the metrics.
    """

    def __init__(
        self,
        verifiers: Verifiers | None = None,
        *,
        options: Options = DEFAULT_OPTIONS,
        log: Callable[[Judgement], None] | None = log_decision,
        judgements: JudgementCache | None = None,
    ) -> None:
        self.verifiers = verifiers or Verifiers()
        self.options = options
        self.log = log
        self.judgements = judgements

    def decide(
        self,
        policies: CompiledPolicySet,
        request: Request,
        *,
        now: datetime | None = None,
        trace: Trace | None = None,
    ) -> Judgement:
        """Judge one request. Raises :class:`InvalidRequest` when it cannot be judged at all.

        With a ``trace``, the judgement cache is bypassed and the trace records what the
        decision saw."""
        started = time.perf_counter()
        request = check_request(request, require_digest=False)
        try:
            ref = parse_reference(request.image_name)
        except InvalidReference as exc:
            raise InvalidRequest(str(exc)) from None
        digest = request.descriptor.digest or ref.digest or ""
        cacheable = self.judgements and now is None and trace is None
        key = request_key(policies.revision, request) if cacheable else None
        hit = self.judgements.get(key) if self.judgements and key is not None else None
        if hit is not None:
            judgement = replace(
                hit,
                decision_id=secrets.token_hex(8),
                cached=True,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
            if self.log is not None:
                self.log(judgement)
                metrics.decided(judgement)
            return judgement
        if ref.digest and digest != ref.digest:
            ok, code, reason = (
                False,
                DIGEST_MISMATCH,
                f"denied: the reference names digest {ref.digest} but {digest} was resolved",
            )
            results: tuple[PolicyResult, ...] = ()
            warnings: tuple[str, ...] = ()
        else:
            decision = _Decision(self, policies, request, now or datetime.now(UTC), trace)
            with _registry_budget(self.options.registry_timeout):
                ok, code, reason, results, warnings = decision.run(
                    ref.name,
                    digest,
                    Target(ref, digest, request.descriptor.media_type, request.descriptor.size),
                )
        judgement = Judgement(
            ok=ok,
            reason=_clip(reason, MAX_REASON_CHARS),
            decision_id=secrets.token_hex(8),
            policy_revision=policies.revision,
            image=str(ref),
            digest=digest,
            policies=results,
            warnings=warnings,
            duration_ms=(time.perf_counter() - started) * 1000,
            code=code,
        )
        if self.judgements is not None and key is not None:
            self.judgements.put(key, judgement)
        if self.log is not None:
            self.log(judgement)
            metrics.decided(judgement)
        return judgement


class _Decision:
    """The working state of one decision."""

    def __init__(
        self,
        decider: Decider,
        policies: CompiledPolicySet,
        request: Request,
        now: datetime,
        trace: Trace | None = None,
    ) -> None:
        self.decider = decider
        self.policies = policies
        self.request = request
        self.now = now
        self.warnings: list[str] = []
        self.trace = trace
        if trace is not None:
            trace.now = now

    def run(
        self, name: str, digest: str, target: Target
    ) -> tuple[bool, str, str, tuple[PolicyResult, ...], tuple[str, ...]]:
        options = self.decider.options
        # stage timings (metrics.py), when metrics are on; a silent decider is not measured
        observe = self.decider.log is not None and metrics.active() is not None
        lap = time.perf_counter() if observe else 0.0
        selected = self.policies.select(
            name,
            namespace=self.request.namespace,
            digest=digest,
            unknown_applies=options.unknown_namespace == "apply",
        )
        base = base_context(target.ref, self.request, self.now, self.policies.engine)
        applied = [p for p in selected if self._applies(p, base)]
        if observe:
            lap = _lap("select", lap)
        if not applied:
            ok = options.default_action == "allow"
            verb = "allowed" if ok else "denied"
            skipped = [p.name for p in selected]
            why = (
                f"no policy applies to {name} (their when is false: {_quote(skipped)})"
                if skipped
                else f"no policy selects {name}"
            )
            reason = f"{verb}: {why} and the default action is {options.default_action}"
            code = (
                ALLOWED_BY_DEFAULT if ok else NO_POLICY_APPLIES if skipped else NO_POLICY_SELECTED
            )
            return ok, code, reason, (), tuple(self.warnings)

        evidence = self._gather(applied, target)
        if observe:
            lap = _lap("evidence", lap)
        if self.trace is not None:
            self.trace.evidence.update(evidence)
        results = tuple(self._evaluate(p, base, evidence) for p in applied)
        if observe:
            _lap("evaluate", lap)
        failed = [r for r in results if not r.passed and r.mode == "enforce"]
        for r in results:
            if not r.passed and r.mode == "audit":
                self.warnings.append(f'audit policy "{r.name}" would deny: {r.detail}')
        if failed:
            others = len(failed) - 1
            more = (
                f" (and {others} more failing polic{'y' if others == 1 else 'ies'})"
                if others
                else ""
            )
            reason = f"denied: {failed[0].detail}{more}"
            return False, _code(failed[0]), reason, results, tuple(self.warnings)
        passed = [r.name for r in results if r.mode == "enforce"]
        if passed:
            code = ALLOWED
            reason = f"allowed by {'policy' if len(passed) == 1 else 'policies'} {_quote(passed)}"
        else:
            code = ALLOWED_AUDIT_ONLY
            reason = f"allowed: only audit policies select {name}"
        return True, code, reason, results, tuple(self.warnings)

    def _applies(self, policy: CompiledPolicy, base: BaseContext) -> bool:
        if policy.when is None:
            return True
        try:
            return policy.when.evaluate(when_context(base, policy.value, self.policies.engine))
        except EvalError as exc:
            self.warnings.append(
                f'policy "{policy.name}" applied because its when failed: {_clip(str(exc))}'
            )
            return True

    def _gather(self, policies: Sequence[CompiledPolicy], target: Target) -> dict[str, Evidence]:
        """Verify every distinct authority once, however many policies name it."""
        evidence: dict[str, Evidence] = {}
        for policy in policies:
            if not policy.needs_evidence:
                continue
            for authority in policy.policy.authorities:
                if authority.fingerprint not in evidence:
                    evidence[authority.fingerprint] = self._verify(authority, target)
        return evidence

    def _verify(self, authority: Authority, target: Target) -> Evidence:
        if not target.digest:
            return Evidence.unverified(NO_DIGEST)
        try:
            return self.decider.verifiers.for_kind(authority.kind).verify(authority, target)
        except Exception as exc:  # a broken verifier must never turn into an allow
            return Evidence.unverified(
                _clip(f"{authority.kind} verifier failed: {type(exc).__name__}: {exc}")
            )

    def _evaluate(
        self, policy: CompiledPolicy, base: BaseContext, evidence: dict[str, Evidence]
    ) -> PolicyResult:
        authorities = policy.policy.authorities
        found = [
            (a.name, evidence.get(a.fingerprint) or Evidence.unverified(NOT_NEEDED))
            for a in authorities
        ]
        authority_results = tuple(
            AuthorityResult(
                name=n,
                verified=e.verified,
                signatures=len(e.signatures),
                error=e.error,
                cached=e.cached,
            )
            for n, e in found
        )
        for name, ev in found:
            self.warnings.extend(
                f'policy "{policy.name}" authority "{name}": {w}' for w in ev.warnings
            )
        unverified = _why_unverified(found)
        if not policy.rules:
            passed = not authorities or any(e.verified for _, e in found)
            detail = (
                ""
                if passed
                else f'policy "{policy.name}": no authority verified ({_clip(unverified)})'
            )
            return PolicyResult(
                policy.name, policy.policy.mode, passed, authority_results, (), detail
            )

        context = policy_context(base, policy.value, found, self.policies.engine)
        rule_results = []
        detail = ""
        for compiled in policy.rules:
            passed, error = True, ""
            try:
                passed = compiled.program.evaluate(context)
            except EvalError as exc:
                passed, error = False, str(exc)
            rule = compiled.rule
            rule_results.append(RuleResult(rule.name, passed, rule.message, error))
            if not passed and not detail:
                detail = self._rule_detail(
                    policy,
                    compiled.rule.name,
                    rule.message,
                    rule.expr.text,
                    error,
                    compiled.program.names,
                    unverified,
                )
        passed = all(r.passed for r in rule_results)
        return PolicyResult(
            policy.name, policy.policy.mode, passed, authority_results, tuple(rule_results), detail
        )

    @staticmethod
    def _rule_detail(
        policy: CompiledPolicy,
        rule: str,
        message: str,
        expr: str,
        error: str,
        names: frozenset[str],
        unverified: str,
    ) -> str:
        if error:
            why = f"{message + '; ' if message else ''}evaluation error: {error}"
        else:
            why = message or f"expression is false: {_clip(expr, 120)}"
        if unverified and names & {"signatures", "authorities"}:
            why = f"{why} [{_clip(unverified)}]"
        return f'policy "{policy.name}" rule "{rule}" failed: {why}'
