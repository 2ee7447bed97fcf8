"""Compile a loaded ``PolicySet`` once: CEL programs, globs, and the selection index.

Every expression is parsed and checked (``cel/``), then probe-evaluated on sample contexts so
type errors the parse tree cannot show surface at load, with their file position. Identical
expressions in the same context share one program, across policies and across revisions.
A revision is compiled for one CEL engine (``cel.engine``: cel-python or cel-expr) and carries
it, so the request path converts values for the engine that built the programs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from . import cel
from .cel import (
    DEFAULT_ENGINE,
    CelIssue,
    CompileError,
    Engine,
    EvalError,
    MapOf,
    NotABool,
    Program,
    ProgramCache,
    Shape,
    compile_expression,
)
from .context import (
    AUTHORITY,
    DECLARATIONS,
    base_context,
    policy_value,
    policy_values,
    rule_names,
    sample_evidence,
    sample_now,
    sample_requests,
    when_hint,
    when_names,
)
from .globs import Glob
from .index import PrefixIndex
from .limits import DEFAULT_LIMITS, Limits, over_limit
from .policy import (
    Expr,
    ImagePolicy,
    Issue,
    ParseCache,
    PolicyLoadError,
    PolicySet,
    PolicyTest,
    Rule,
    load_policy_dir,
)
from .reference import parse_reference

__all__ = [
    "CompiledPolicy",
    "CompiledPolicySet",
    "CompiledRule",
    "compile_policy_set",
    "engine_named",
    "load_policies",
]

EVIDENCE_NAMES = frozenset({"signatures", "authorities"})
_DEFAULT_CACHE = ProgramCache()


@cache
def engine_named(name: str) -> Engine:
    """The shared engine called ``name``, declared with every context name policies can read.

    ValueError for an unknown name; ``cel.EngineUnavailable`` when it is not installed.
    """
    return cel.engine(name, DECLARATIONS)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    program: Program

    @property
    def name(self) -> str:
        return self.rule.name


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    policy: ImagePolicy
    when: Program | None
    rules: tuple[CompiledRule, ...]
    value: Any  # the CEL value of the `policy` name
    # False when rules decide without looking at evidence: nothing needs fetching then.
    needs_evidence: bool

    @property
    def name(self) -> str:
        return self.policy.name

    def scoped_to(self, name: str, namespace: str, digest: str, *, unknown_applies: bool) -> bool:
        """Everything of selection but the image globs (which the index and set check)."""
        p = self.policy
        if any(g.match(name) for g in p.exclude):
            return False
        if p.digests and digest not in p.digests:
            return False
        if p.namespaces:
            if not namespace:
                return unknown_applies
            return any(g.match(namespace) for g in p.namespaces)
        return True


@dataclass(frozen=True, slots=True)
class CompiledPolicySet:
    """One immutable, compiled policy revision. The request path only ever reads it."""

    revision: str
    root: str
    policies: tuple[CompiledPolicy, ...]
    engine: Engine = field(default_factory=lambda: engine_named(DEFAULT_ENGINE))
    tests: tuple[PolicyTest, ...] = ()
    references: tuple[str, ...] = ()  # files policies read through `path:` (for reload)
    _index: PrefixIndex[tuple[Glob, int]] = field(default_factory=PrefixIndex, repr=False)

    def select(
        self, name: str, *, namespace: str = "", digest: str = "", unknown_applies: bool = True
    ) -> list[CompiledPolicy]:
        """The policies whose globs, exclusions, namespaces and digests select this image.

        ``name`` is the normalised ``registry/repository``. With no namespace known, policies
        scoped to namespaces apply when ``unknown_applies`` (fail closed), else they are skipped.
        """
        hits = {i for glob, i in self._index.candidates(name) if glob.match(name)}
        out = []
        for i in sorted(hits):
            policy = self.policies[i]
            if policy.scoped_to(name, namespace, digest, unknown_applies=unknown_applies):
                out.append(policy)
        return out


@lru_cache(maxsize=256)
def _probe_values(authorities: tuple[tuple[str, str], ...], engine_name: str) -> tuple[Any, ...]:
    """Converted sample values for a policy with these (name, kind) authorities; shared and
    read-only. Each probe binds them afresh: an activation is for one request (cel-expr keeps
    what every evaluation allocates until its activation is dropped)."""
    engine = engine_named(engine_name)
    samples = []
    value = policy_value("sample", "sample", engine)
    for request in sample_requests():
        ref = parse_reference(request.image_name)
        base = base_context(ref, request, sample_now(), engine)
        for verified in (True, False):
            evidence = [(name, sample_evidence(kind, verified)) for name, kind in authorities]
            samples.append(policy_values(base, value, evidence, engine))
    return tuple(samples)


def _probe(program: Program, samples: Sequence[Any], engine: Engine) -> str:
    """Why the program cannot be a predicate, or "" when the samples show no problem."""
    for values in samples:
        try:
            program.evaluate(engine.bind(values))
        except NotABool as exc:
            return str(exc)
        except EvalError as exc:
            if exc.data_dependent:
                continue  # a missing key or an empty list: depends on the request
            return f"fails on any input: {exc}"
    return ""


class _Compiler:
    def __init__(
        self, cache: ProgramCache, engine: Engine, max_expression: int | None = None
    ) -> None:
        self.cache = cache
        self.engine = engine
        self.max_expression = max_expression or DEFAULT_LIMITS.expression_length
        self.issues: list[Issue] = []

    def program(
        self,
        expr: Expr,
        what: str,
        names: dict[str, Shape],
        hint: Callable[[str], str],
        contexts: Callable[[], Sequence[Any]],
        key: Any,
        *,
        probe: bool = True,
    ) -> Program | None:
        def build() -> Program:
            program = compile_expression(expr.text, names, hint=hint, engine=self.engine)
            problem = _probe(program, contexts(), self.engine) if probe else ""
            if problem:
                raise CompileError([CelIssue(problem, positioned=False)])
            return program

        if len(expr.text) > self.max_expression:
            found = f"{what} is {len(expr.text)} characters long"
            fix = "split it into several rules"
            message = over_limit(found, self.max_expression, "expressionLength", "characters", fix)
            self.issues.append(Issue(expr.mark, message))
            return None
        try:
            return self.cache.get((self.engine.name, expr.text, key), build)
        except CompileError as exc:
            for issue in exc.issues:
                mark = expr.locate(issue.line, issue.column) if issue.positioned else expr.mark
                self.issues.append(Issue(mark, f"{what}: {issue.message}"))
            return None

    def policy(
        self, policy: ImagePolicy, revision: str, *, complete: bool = True
    ) -> CompiledPolicy | None:
        """Compile one policy. A partial model (``complete=False``) may have lost authorities
        to validation errors, so its rules are not checked against the authority names."""
        before = len(self.issues)
        authorities = tuple(sorted((a.name, a.kind) for a in policy.authorities))
        authority_key: tuple[Any, ...] = authorities if complete else ("partial", authorities)
        when_key = "when" if complete else "partial-when"
        names = rule_names(a.name for a in policy.authorities)
        if not complete:
            names["authorities"] = MapOf("authorities", AUTHORITY)
        ordered = tuple((a.name, a.kind) for a in policy.authorities)

        def contexts() -> Sequence[Any]:
            return _probe_values(ordered, self.engine.name)

        when = None
        if policy.when is not None:
            when = self.program(
                policy.when,
                "spec.when",
                when_names(),
                when_hint,
                contexts,
                when_key,
                probe=complete,
            )
        rules = []
        for rule in policy.rules:
            program = self.program(
                rule.expr,
                f"rule {rule.name!r}",
                names,
                lambda _: "",
                contexts,
                ("rule", authority_key),
                probe=complete,  # a partial model's samples would miss authorities
            )
            if program is not None:
                rules.append(CompiledRule(rule, program))
        if len(self.issues) > before:
            return None
        reads_evidence = any(r.program.names & EVIDENCE_NAMES for r in rules)
        return CompiledPolicy(
            policy=policy,
            when=when,
            rules=tuple(rules),
            value=policy_value(policy.name, revision, self.engine),
            needs_evidence=bool(policy.authorities) and (not rules or reads_evidence),
        )


def compile_policy_set(
    policy_set: PolicySet,
    *,
    cache: ProgramCache | None = None,
    engine: str = DEFAULT_ENGINE,
    limits: Limits = DEFAULT_LIMITS,
) -> CompiledPolicySet:
    """Compile every policy of a loaded set for the CEL ``engine`` named; raise
    PolicyLoadError with every issue found. Expressions longer than
    ``limits.expression_length`` are refused."""
    compiler = _Compiler(cache or _DEFAULT_CACHE, engine_named(engine), limits.expression_length)
    compiled = [compiler.policy(p, policy_set.revision) for p in policy_set.policies]
    if compiler.issues:
        raise PolicyLoadError(compiler.issues)
    policies = tuple(p for p in compiled if p is not None)
    index: PrefixIndex[tuple[Glob, int]] = PrefixIndex()
    for i, policy in enumerate(policies):
        for glob in policy.policy.images:
            index.add(glob.prefix, (glob, i))
    return CompiledPolicySet(
        revision=policy_set.revision,
        root=policy_set.root,
        policies=policies,
        engine=compiler.engine,
        tests=policy_set.tests,
        references=policy_set.references,
        _index=index,
    )


def load_policies(
    root: str,
    *,
    display: str | None = None,
    cache: ProgramCache | None = None,
    require_policies: bool = True,
    engine: str = DEFAULT_ENGINE,
    parse_cache: ParseCache | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> CompiledPolicySet:
    """Load and compile a policy directory for the CEL ``engine`` named, reporting every
    issue of both stages at once. The caches let a reload redo only what changed; ``limits``
    bounds file sizes, documents per file and expression lengths."""
    try:
        policy_set = load_policy_dir(
            root,
            display=display,
            require_policies=require_policies,
            cache=parse_cache,
            limits=limits,
        )
    except PolicyLoadError as exc:
        compiler = _Compiler(
            cache or _DEFAULT_CACHE, engine_named(engine), limits.expression_length
        )
        for i, policy in enumerate(exc.partial):
            compiler.policy(policy, "", complete=i < exc.complete)
        if not compiler.issues:
            raise
        raise PolicyLoadError([*exc.issues, *compiler.issues]) from None
    return compile_policy_set(policy_set, cache=cache, engine=engine, limits=limits)
