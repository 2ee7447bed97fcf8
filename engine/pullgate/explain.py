"""Why a judgement came out as it did: ``pullgate verify --explain``.

Runs only on request, never per RPC. Data flows one way: it takes the compiled policy set, the
request, what the decision saw (a :class:`~pullgate.decide.Trace`: its ``now`` and evidence)
and the :class:`~pullgate.judgement.Judgement`, and says per selected policy why it was
selected, what each authority found (signer identity, log time, failure reason) and each
rule's value; for a rule that failed, the values of the sub-expressions that made it fail.

Sub-expressions are recompiled from the rule's source text on the engine that judged, and
evaluated on the same context, so an explanation shows what that engine computed. A
sub-expression inside a macro (``signatures.exists(s, ...)``) is evaluated per element by
binding the variable with ``[ELEMENT].map(s, SUBEXPR)[0]``, which both engines understand.
Values print as CEL literals, clipped: a long string, list or map never prints whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import lark

from .cel import CompileError, Engine, EvalError, Shape, compile_expression
from .cel.check import check_expression
from .context import base_context, policy_context, rule_names, when_context, when_names
from .decide import DEFAULT_OPTIONS, NOT_NEEDED, Options, Trace
from .evidence import Evidence, Signature
from .judgement import DIGEST_MISMATCH, Judgement, PolicyResult
from .reference import parse_reference
from .request import Request, check_request
from .rules import CompiledPolicy, CompiledPolicySet

__all__ = [
    "AuthorityExplanation",
    "Explanation",
    "Node",
    "PolicyExplanation",
    "RuleExplanation",
    "cel_literal",
    "explain",
    "explain_expression",
]

MAX_VALUE_CHARS = 160  # one value, as printed
MAX_STRING_CHARS = 100  # one string inside a value
MAX_ITEMS = 5  # entries of a list or map printed
MAX_ELEMENTS = 10  # elements of a macro's range explained one by one
MAX_NODES = 80  # sub-expressions explained per expression
MAX_DEPTH = 8
MAX_TEXT_CHARS = 120  # a sub-expression's text, as printed
MAX_NEAR_MISSES = 20
MACROS = frozenset({"exists", "all", "exists_one", "filter", "map"})

# -- values as CEL literals ----------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _string(text: str) -> str:
    return json.dumps(_clip(text, MAX_STRING_CHARS), ensure_ascii=False)


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:g}s"


def _literal(value: Any, depth: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bytes):
        return "b" + _string(value.decode("utf-8", "replace"))
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return f'timestamp("{stamp}")'
    if isinstance(value, timedelta):
        return f'duration("{_duration(value)}")'
    if isinstance(value, Mapping):
        if depth >= 3 and value:
            return "{…}"
        keys = sorted(value, key=str)
        shown = [f"{_literal(k, depth + 1)}: {_literal(value[k], depth + 1)}" for k in keys]
        return "{" + _items(shown) + "}"
    if isinstance(value, list | tuple):
        if depth >= 3 and value:
            return "[…]"
        return "[" + _items([_literal(v, depth + 1) for v in value]) + "]"
    return _clip(repr(value), MAX_STRING_CHARS)


def _items(shown: list[str]) -> str:
    more = len(shown) - MAX_ITEMS
    return ", ".join(shown[:MAX_ITEMS] + ([f"… {more} more"] if more > 0 else []))


def cel_literal(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """``value`` (plain Python, as engines' ``evaluate_value`` give it) as a CEL literal,
    clipped to ``limit`` characters, with at most a few entries of any list or map."""
    return _clip(_literal(value, 0), limit)


# -- sub-expressions ----------------------------------------------------------------------------

Tree = lark.Tree[Any]
_PASS_THROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication"}
    | {"unary", "member", "primary", "paren_expr"}
)
_BINARY = {
    "conditionalor": "||",
    "conditionaland": "&&",
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}


def _strip(node: Tree | lark.Token) -> Tree | lark.Token:
    """The node under the grammar levels (and parentheses) that only pass a value up."""
    while isinstance(node, lark.Tree) and node.data in _PASS_THROUGH and len(node.children) == 1:
        node = node.children[0]
    return node


def _args(exprlist: Tree | lark.Token | None) -> list[Tree]:
    if not isinstance(exprlist, lark.Tree):
        return []
    return [c for c in exprlist.children if isinstance(c, lark.Tree)]


def _source(node: Tree | lark.Token) -> str:
    """The CEL text of a parse tree (normalised spacing; the same value as the original)."""
    if isinstance(node, lark.Token):
        return str(node)
    kind, kids = node.data, node.children
    if len(kids) == 1 and kind in _PASS_THROUGH - {"paren_expr"}:
        return _source(kids[0])
    if kind == "expr":
        return f"{_source(kids[0])} ? {_source(kids[1])} : {_source(kids[2])}"
    if kind in ("conditionalor", "conditionaland"):
        return f"{_source(kids[0])} {_BINARY[kind]} {_source(kids[1])}"
    if kind in ("relation", "addition", "multiplication"):
        op = kids[0]
        assert isinstance(op, lark.Tree)
        return f"{_source(op.children[0])} {_BINARY[op.data]} {_source(kids[1])}"
    if kind == "unary":
        op = kids[0]
        sign = "!" if isinstance(op, lark.Tree) and op.data == "unary_not" else "-"
        return f"{sign}{_source(kids[1])}"
    if kind == "member_dot":
        return f"{_source(kids[0])}.{kids[1]}"
    if kind == "member_dot_arg":
        args = ", ".join(_source(a) for a in _args(kids[2] if len(kids) > 2 else None))
        return f"{_source(kids[0])}.{kids[1]}({args})"
    if kind == "member_index":
        return f"{_source(kids[0])}[{_source(kids[1])}]"
    if kind in ("ident_arg", "dot_ident_arg"):
        args = ", ".join(_source(a) for a in _args(kids[1] if len(kids) > 1 else None))
        return f"{'.' if kind == 'dot_ident_arg' else ''}{kids[0]}({args})"
    if kind in ("ident", "dot_ident"):
        return f"{'.' if kind == 'dot_ident' else ''}{kids[0]}"
    if kind == "paren_expr":
        return f"({_source(kids[0])})"
    if kind == "list_lit":
        return "[" + ", ".join(_source(a) for a in _args(kids[0] if kids else None)) + "]"
    if kind == "map_lit":
        parts = _args(kids[0] if kids else None)
        pairs = [
            f"{_source(k)}: {_source(v)}" for k, v in zip(parts[::2], parts[1::2], strict=True)
        ]
        return "{" + ", ".join(pairs) + "}"
    if kind == "literal":
        return str(kids[0])
    return " ".join(_source(k) for k in kids)


@dataclass(frozen=True, slots=True)
class Node:
    """One sub-expression: its text, its value (a CEL literal or ``error: ...``), what it
    is evaluated for (``s = signatures[0]`` inside a macro), and the parts that explain it."""

    text: str
    value: str
    note: str = ""
    children: tuple[Node, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"expr": self.text, "value": self.value}
        if self.note:
            out["for"] = self.note
        if self.children:
            out["children"] = [c.to_json() for c in self.children]
        return out

    def lines(self, indent: str = "") -> list[str]:
        where = f"[{self.note}] " if self.note else ""
        out = [f"{indent}{where}{_clip(self.text, MAX_TEXT_CHARS)} = {self.value}"]
        for child in self.children:
            out.extend(child.lines(indent + "  "))
        return out


class _Missing:
    """The value of a sub-expression that could not be evaluated."""


_ERROR = _Missing()


@dataclass(frozen=True, slots=True)
class _Bound:
    var: str
    element: str  # CEL text of the element, valid in the enclosing scope
    shown: str  # how the element is named in the output


class _Explainer:
    def __init__(self, engine: Engine, names: Mapping[str, Shape], activation: Any) -> None:
        self.engine = engine
        self.names = names
        self.activation = activation
        self.nodes = 0

    def value(self, text: str, scope: Sequence[_Bound]) -> tuple[Any, str]:
        """(value, "") or (_ERROR, why)."""
        for bound in reversed(scope):
            text = f"[{bound.element}].map({bound.var}, {text})[0]"
        try:
            program = compile_expression(text, self.names, engine=self.engine)
        except CompileError as exc:
            return _ERROR, f"not evaluated: {_clip(str(exc), MAX_STRING_CHARS)}"
        try:
            return program.evaluate_value(self.activation), ""
        except EvalError as exc:
            return _ERROR, f"error: {_clip(str(exc), MAX_STRING_CHARS)}"

    def explain(
        self,
        tree: Tree | lark.Token,
        scope: Sequence[_Bound] = (),
        want: bool | None = True,
        depth: int = 0,
        note: str = "",
    ) -> Node:
        """``tree``'s value in ``scope``; when it is not ``want`` (or ``want`` is None, for an
        operand), the sub-expressions that made it so."""
        node = _strip(tree)
        text = _source(node)
        value, error = self.value(text, scope)
        shown = error or cel_literal(value)
        self.nodes += 1
        failed = want is None or error != "" or value is not want
        if not failed or depth >= MAX_DEPTH or self.nodes >= MAX_NODES:
            return Node(text, shown, note)
        if not isinstance(node, lark.Tree):
            return Node(text, shown, note)
        children = self._children(node, scope, want, depth + 1, value)
        # A literal's value is its text: nothing to learn from it.
        kept = tuple(c for c in children if c.children or c.text != c.value or c.note)
        return Node(text, shown, note, kept)

    def _children(
        self, node: Tree, scope: Sequence[_Bound], want: bool | None, depth: int, value: Any
    ) -> list[Node]:
        kind, kids = node.data, node.children
        if kind in ("conditionalor", "conditionaland") and want is not None:
            parts = self._chain(node, kind)
            results = [self.explain(p, scope, want, depth) for p in parts]
            # ||: every disjunct; &&: the conjuncts that failed (all of them, under a `!`).
            failing = [r for p, r in zip(parts, results, strict=True) if self._missed(r, want)]
            if kind == "conditionaland" and want and failing:
                return failing
            return results
        if kind == "unary":
            op = kids[0]
            if isinstance(op, lark.Tree) and op.data == "unary_not":
                flipped = None if want is None else not want
                return [self.explain(kids[1], scope, flipped, depth)]
            return [self.explain(kids[1], scope, None, depth)]
        if kind == "expr" and len(kids) == 3:
            condition = self.explain(kids[0], scope, None, depth)
            taken = kids[1] if condition.value == "true" else kids[2]
            if condition.value not in ("true", "false"):
                return [condition]
            return [condition, self.explain(taken, scope, want, depth)]
        if kind in ("relation", "addition", "multiplication"):
            op = kids[0]
            assert isinstance(op, lark.Tree)
            return [
                self.explain(op.children[0], scope, None, depth),
                self.explain(kids[1], scope, None, depth),
            ]
        if kind == "member_dot_arg":
            method = str(kids[1])
            args = _args(kids[2] if len(kids) > 2 else None)
            if method in MACROS and len(args) == 2:
                return self._macro(kids[0], method, args[0], args[1], scope, want, depth)
            return [self.explain(t, scope, None, depth) for t in (kids[0], *args)]
        if kind in ("ident_arg", "dot_ident_arg"):
            args = _args(kids[1] if len(kids) > 1 else None)
            if str(kids[0]) == "has" and len(args) == 1:
                selection = _strip(args[0])
                if isinstance(selection, lark.Tree) and selection.data == "member_dot":
                    return [self.explain(selection.children[0], scope, None, depth)]
            return [self.explain(a, scope, None, depth) for a in args]
        if kind in ("member_dot", "member_index") and value is _ERROR:
            return [self.explain(kids[0], scope, None, depth)]
        return []

    @staticmethod
    def _missed(node: Node, want: bool) -> bool:
        return node.value != ("true" if want else "false")

    @staticmethod
    def _chain(node: Tree, kind: str) -> list[Tree]:
        """The operands of ``a || b || c`` (a left-nested chain), in order."""
        parts: list[Tree] = []
        while isinstance(node, lark.Tree) and node.data == kind and len(node.children) == 2:
            left, right = node.children
            parts.append(right)
            node = left
        parts.append(node)
        return parts[::-1]

    def _macro(
        self,
        target: Tree,
        method: str,
        var_tree: Tree,
        body: Tree,
        scope: Sequence[_Bound],
        want: bool | None,
        depth: int,
    ) -> list[Node]:
        over = self.explain(target, scope, None, depth)
        var = str(_source(_strip(var_tree)))
        if method == "map":
            return [over]
        values, _ = self.value(_source(_strip(target)), scope)
        range_text = _source(_strip(target))
        if isinstance(values, Mapping):
            keys = sorted(values, key=str)
            elements = [
                _Bound(var, json.dumps(str(k), ensure_ascii=False), f"{var} = {_string(str(k))}")
                for k in keys
            ]
        elif isinstance(values, list):
            shown_range = _clip(range_text, 40)
            elements = [
                _Bound(var, f"({range_text})[{i}]", f"{var} = {shown_range}[{i}]")
                for i in range(len(values))
            ]
        else:
            return [over]
        # Which elements explain the result: for a failed `exists`, every one (none held);
        # for a failed `all`, those that did not hold; under a `!`, those that did.
        keep_value = (
            "true"
            if (method, want) == ("exists", False)
            else "not true"
            if (method, want) == ("all", True)
            else None
        )
        out = [over]
        shown = 0
        for bound in elements:
            if shown >= MAX_ELEMENTS or self.nodes >= MAX_NODES:
                out.append(Node("…", f"{len(elements) - shown} more element(s) not shown"))
                break
            element_want = want if method in ("exists", "all") and want is not None else True
            result = self.explain(body, [*scope, bound], element_want, depth, bound.shown)
            if keep_value == "true" and result.value != "true":
                continue
            if keep_value == "not true" and result.value == "true":
                continue
            out.append(result)
            shown += 1
        return out


def explain_expression(
    text: str,
    names: Mapping[str, Shape],
    engine: Engine,
    activation: Any,
    *,
    want: bool = True,
) -> Node:
    """The value of the expression ``text`` on ``activation`` and, when it is not ``want``,
    the sub-expressions that made it so. ``names`` are the names it may read."""
    try:
        checked = check_expression(text, names)
    except CompileError as exc:
        return Node(_clip(text, MAX_TEXT_CHARS), f"not evaluated: {exc}")
    return _Explainer(engine, names, activation).explain(checked.tree, want=want)


# -- policies ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorityExplanation:
    name: str
    kind: str
    verified: bool
    error: str
    cached: bool
    signatures: tuple[Signature, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "verified": self.verified,
            "error": self.error,
            "cached": self.cached,
            "signatures": [_signer(s) for s in self.signatures],
        }

    def lines(self, indent: str) -> list[str]:
        if not self.verified:
            return [f"{indent}authority {self.name} ({self.kind}): not verified: {self.error}"]
        count = len(self.signatures)
        cached = ", from the evidence cache" if self.cached else ""
        out = [
            f"{indent}authority {self.name} ({self.kind}): verified, {count} signature(s){cached}"
        ]
        for s in self.signatures[:MAX_ELEMENTS]:
            out.append(f"{indent}  signer: {_signer_line(s)}")
        if count > MAX_ELEMENTS:
            out.append(f"{indent}  … {count - MAX_ELEMENTS} more signature(s)")
        return out


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _signer(s: Signature) -> dict[str, Any]:
    return {
        "subject": s.subject,
        "issuer": s.issuer,
        "keyId": s.key_id,
        "signedAt": _stamp(s.signed_at) if s.signed_at else "",
        "tlog": s.tlog,
    }


def _signer_line(s: Signature) -> str:
    parts = []
    if s.subject:
        parts.append(f"subject {_string(s.subject)}")
    if s.issuer:
        parts.append(f"issuer {_string(s.issuer)}")
    if s.key_id:
        parts.append(f"key {_string(s.key_id)}")
    if s.signed_at is not None:
        parts.append(f"{'logged' if s.tlog else 'timestamped'} at {_stamp(s.signed_at)}")
    elif not s.tlog:
        parts.append("no transparency log entry")
    return ", ".join(parts) or "(no identity)"


@dataclass(frozen=True, slots=True)
class RuleExplanation:
    name: str
    value: str  # "true", "false" or "error: ..."
    message: str
    tree: Node | None  # for a rule that failed

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "message": self.message,
            "explanation": self.tree.to_json() if self.tree else None,
        }

    def lines(self, indent: str) -> list[str]:
        message = f" ({self.message})" if self.message and self.value != "true" else ""
        out = [f"{indent}rule {self.name}: {self.value}{message}"]
        if self.tree is not None:
            out.extend(self.tree.lines(indent + "  "))
        return out


@dataclass(frozen=True, slots=True)
class PolicyExplanation:
    name: str
    mode: str
    selected_by: tuple[str, ...]
    when: Node | None
    applied: bool
    passed: bool | None  # None when it did not apply
    authorities: tuple[AuthorityExplanation, ...] = ()
    rules: tuple[RuleExplanation, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "selectedBy": list(self.selected_by),
            "when": self.when.to_json() if self.when else None,
            "applied": self.applied,
            "passed": self.passed,
            "authorities": [a.to_json() for a in self.authorities],
            "rules": [r.to_json() for r in self.rules],
        }

    def lines(self) -> list[str]:
        state = "did not apply" if not self.applied else "passed" if self.passed else "FAILED"
        out = [f"  policy {self.name} ({self.mode}): {state}"]
        out.extend(f"    selected: {why}" for why in self.selected_by)
        if self.when is not None:
            out.append("    when:")
            out.extend(self.when.lines("      "))
        for a in self.authorities:
            out.extend(a.lines("    "))
        for r in self.rules:
            out.extend(r.lines("    "))
        return out


@dataclass(frozen=True, slots=True)
class Explanation:
    code: str
    image: str
    digest: str
    policies: tuple[PolicyExplanation, ...]
    not_selected: tuple[tuple[str, str], ...]  # (policy, why) for images its globs match
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "image": self.image,
            "digest": self.digest,
            "policies": [p.to_json() for p in self.policies],
            "notSelected": [{"policy": p, "why": why} for p, why in self.not_selected],
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        out = [f"explanation [{self.code or 'no code'}]:"]
        out.extend(f"  {note}" for note in self.notes)
        for p in self.policies:
            out.extend(p.lines())
        for name, why in self.not_selected:
            out.append(f"  policy {name}: not selected: {why}")
        return out


def _quoted(globs: Sequence[Any]) -> str:
    return ", ".join(f'"{g.pattern}"' for g in globs)


def _selected_by(p: CompiledPolicy, name: str, namespace: str, digest: str) -> tuple[str, ...]:
    policy = p.policy
    image = next((g for g in policy.images if g.match(name)), None)
    why = [f'image glob "{image.pattern}" matches {name}' if image else f"images match {name}"]
    if policy.namespaces:
        if namespace:
            glob = next(g for g in policy.namespaces if g.match(namespace))
            why.append(f'namespace glob "{glob.pattern}" matches "{namespace}"')
        else:
            why.append(
                f"the namespace is unknown, so its namespaces ({_quoted(policy.namespaces)}) "
                "apply (unknownNamespace: apply)"
            )
    if policy.digests:
        why.append(f"its digests list {digest}")
    return tuple(why)


def _not_selected(p: CompiledPolicy, name: str, namespace: str, digest: str) -> str:
    policy = p.policy
    excluded = next((g for g in policy.exclude if g.match(name)), None)
    if excluded is not None:
        return f'its images match but exclude glob "{excluded.pattern}" matches {name}'
    if policy.digests and digest not in policy.digests:
        return f"its images match but its digests do not list {digest or '(no digest)'}"
    if policy.namespaces:
        if not namespace:
            return "its images match; the namespace is unknown and unknownNamespace is skip"
        return (
            f'its images match but namespace "{namespace}" matches none of '
            f"{_quoted(policy.namespaces)}"
        )
    return "its images match but it was not selected"


def _rule_value(result: PolicyResult | None, name: str) -> tuple[str, str] | None:
    if result is None:
        return None
    rule = next((r for r in result.rules if r.name == name), None)
    if rule is None:
        return None
    if rule.error:
        return f"error: {rule.error}", rule.message
    return ("true" if rule.passed else "false"), rule.message


def explain(
    policies: CompiledPolicySet,
    request: Request,
    judgement: Judgement,
    trace: Trace,
    *,
    options: Options = DEFAULT_OPTIONS,
) -> Explanation:
    """Explain ``judgement``, made by a decider with ``options`` on ``request`` against
    ``policies`` with ``trace`` recording what it saw (``Decider.decide(..., trace=)``)."""
    request = check_request(request, require_digest=False)
    ref = parse_reference(request.image_name)
    name, namespace = ref.name, request.namespace
    digest = request.descriptor.digest or ref.digest or ""
    if judgement.code == DIGEST_MISMATCH:
        note = f"the reference names digest {ref.digest} but {digest} was resolved"
        return Explanation(judgement.code, str(ref), digest, (), (), (note,))
    unknown_applies = options.unknown_namespace == "apply"
    selected = policies.select(
        name, namespace=namespace, digest=digest, unknown_applies=unknown_applies
    )
    engine = policies.engine
    context = base_context(ref, request, trace.now, engine)
    results = {p.name: p for p in judgement.policies}
    explained = []
    for p in selected:
        why = _selected_by(p, name, namespace, digest)
        when = None
        if p.when is not None:
            activation = when_context(context, p.value, engine)
            when = explain_expression(p.when.text, when_names(), engine, activation)
        if when is not None and when.value == "false":  # an error applies the policy
            explained.append(PolicyExplanation(p.name, p.policy.mode, why, when, False, None))
        else:
            explained.append(_policy(p, why, when, context, trace, results.get(p.name), engine))
    near = [
        (p.name, _not_selected(p, name, namespace, digest))
        for p in policies.policies
        if p not in selected and any(g.match(name) for g in p.policy.images)
    ]
    notes = []
    if not selected:
        notes.append(f"no policy selects {name}; the default action is {options.default_action}")
    if len(near) > MAX_NEAR_MISSES:
        notes.append(f"{len(near) - MAX_NEAR_MISSES} more policies match the image but not it")
    return Explanation(
        judgement.code,
        str(ref),
        digest,
        tuple(explained),
        tuple(near[:MAX_NEAR_MISSES]),
        tuple(notes),
    )


def _policy(
    p: CompiledPolicy,
    selected_by: tuple[str, ...],
    when: Node | None,
    context: dict[str, Any],
    trace: Trace,
    result: PolicyResult | None,
    engine: Engine,
) -> PolicyExplanation:
    found = [
        (a, trace.evidence.get(a.fingerprint) or Evidence.unverified(NOT_NEEDED))
        for a in p.policy.authorities
    ]
    authorities = tuple(
        AuthorityExplanation(a.name, a.kind, e.verified, e.error, e.cached, e.signatures)
        for a, e in found
    )
    rules = []
    if p.rules:
        evidence = [(a.name, e) for a, e in found]
        activation = policy_context(context, p.value, evidence, engine)
        names = rule_names(a.name for a in p.policy.authorities)
        for compiled in p.rules:
            known = _rule_value(result, compiled.name)
            if known is None:
                try:
                    value = "true" if compiled.program.evaluate(activation) else "false"
                except EvalError as exc:
                    value = f"error: {exc}"
                known = value, compiled.rule.message
            value, message = known
            tree = None
            if value != "true":
                tree = explain_expression(compiled.rule.expr.text, names, engine, activation)
            rules.append(RuleExplanation(compiled.name, value, message, tree))
    passed = result.passed if result is not None else None
    return PolicyExplanation(
        p.name, p.policy.mode, selected_by, when, True, passed, authorities, tuple(rules)
    )
