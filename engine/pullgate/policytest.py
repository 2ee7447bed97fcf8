"""Run ``PolicyTest`` cases offline: assumed evidence in, judgements checked against expectations.

The cases go through the same ``Decider`` as the daemon; only the verifiers are replaced by one
that answers with the evidence each case assumes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .cel import DEFAULT_ENGINE
from .decide import DEFAULT_OPTIONS, Decider, Options
from .evidence import Evidence, Target
from .judgement import Judgement
from .limits import DEFAULT_LIMITS, Limits
from .policy import Authority, Issue, Mark, PolicyLoadError, PolicyTest, TestCase
from .request import InvalidRequest
from .rules import CompiledPolicySet, load_policies
from .verifiers import KINDS, Verifiers

__all__ = ["CaseResult", "run_policy_tests"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    test: str
    case: str
    mark: Mark
    problems: tuple[str, ...]
    judgement: Judgement | None = None

    @property
    def passed(self) -> bool:
        return not self.problems


class _AssumedEvidence:
    """A verifier that answers with what a test case assumes, by policy/authority or authority."""

    def __init__(self, evidence: Mapping[str, Evidence], owners: Mapping[Authority, str]) -> None:
        self.evidence = evidence
        self.owners = owners

    def verify(self, authority: Authority, target: Target) -> Evidence:
        key = f"{self.owners.get(authority, '')}/{authority.name}"
        found = self.evidence.get(key) or self.evidence.get(authority.name)
        if found is None:
            return Evidence.unverified("no evidence assumed for this authority by the test case")
        sigs = tuple(replace(s, kind=authority.kind) for s in found.signatures)
        return replace(found, signatures=sigs)


def _check(case: TestCase, j: Judgement) -> list[str]:
    problems = []
    expect = case.expect
    if j.ok != expect.ok:
        want, got = ("allowed", "denied") if expect.ok else ("denied", "allowed")
        problems.append(f"expected {want}, got {got}: {j.reason}")
    if expect.policy:
        result = next((p for p in j.policies if p.name == expect.policy), None)
        if result is None:
            names = ", ".join(p.name for p in j.policies) or "none"
            problems.append(
                f"expected policy {expect.policy!r} to fail, but it did not apply ({names} did)"
            )
        elif result.passed:
            problems.append(f"expected policy {expect.policy!r} to fail, but it passed")
        elif expect.rule:
            rule = next((r for r in result.rules if r.name == expect.rule), None)
            if rule is None:
                problems.append(f"policy {expect.policy!r} has no rule {expect.rule!r}")
            elif rule.passed:
                problems.append(f"expected rule {expect.rule!r} to fail, but it passed")
    if expect.reason and expect.reason not in j.reason:
        problems.append(f"expected the reason to contain {expect.reason!r}, got {j.reason!r}")
    return problems


def _run_case(
    policies: CompiledPolicySet, case: TestCase, options: Options
) -> tuple[list[str], Judgement | None]:
    owners = {a: p.name for p in policies.policies for a in p.policy.authorities}
    verifier = _AssumedEvidence(case.evidence, owners)
    decider = Decider(Verifiers(dict.fromkeys(KINDS, verifier)), options=options, log=None)
    try:
        judgement = decider.decide(policies, case.request, now=case.now)
    except InvalidRequest as exc:
        return [f"the request cannot be judged: {exc}"], None
    return _check(case, judgement), judgement


def run_policy_tests(
    root: str,
    *,
    display: str | None = None,
    options: Options = DEFAULT_OPTIONS,
    engine: str = DEFAULT_ENGINE,
    limits: Limits = DEFAULT_LIMITS,
) -> list[CaseResult]:
    """Load ``root`` (policies and tests) and run every test case in it on the CEL ``engine``.

    Raises PolicyLoadError when ``root`` or a directory a test names does not load.
    """
    shown = display if display is not None else root
    here = load_policies(root, display=shown, require_policies=False, engine=engine, limits=limits)
    compiled: dict[str, CompiledPolicySet] = {}

    def policies_for(test: PolicyTest) -> CompiledPolicySet:
        if not test.policies:
            if not here.policies:
                raise PolicyLoadError(
                    [Issue(test.mark, f"no ImagePolicy in {shown} to test; set spec.policies")]
                )
            return here
        # The test file's real directory: display paths are the root's display + relative.
        rel_dir = os.path.dirname(os.path.relpath(test.mark.file, shown))
        path = os.path.normpath(os.path.join(root, rel_dir, test.policies))
        if path not in compiled:
            compiled[path] = load_policies(path, engine=engine, limits=limits)
        return compiled[path]

    results = []
    for test in here.tests:
        policies = policies_for(test)
        for case in test.cases:
            problems, judgement = _run_case(policies, case, options)
            results.append(CaseResult(test.name, case.name, case.mark, tuple(problems), judgement))
    return results
