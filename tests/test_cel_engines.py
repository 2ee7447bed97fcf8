"""One conformance table for both CEL engines (``cel.engine``: cel-python and cel-expr).

Every row is an expression, the context it runs on and what it must give: a bool, an
evaluation error (with its message on each engine and whether it depends on the data), or a
rejection at compile time. Where the engines are known to differ, the row says what cel-expr
gives instead and why; those rows are the list in docs/policies.md. A difference must never
turn a deny into an allow: the test at the bottom checks that no cel-expr override is an allow
where cel-python denies or fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from celcases import D1, NOW, RULE_NAMES, SIGNED, make_context
from pullgate.cel import CompileError, Engine, EvalError, NotABool, compile_expression
from pullgate.rules import engine_named


@dataclass(frozen=True)
class Fails:
    """An evaluation error: a fragment of its message on each engine."""

    python: str
    expr: str
    data_dependent: bool


@dataclass(frozen=True)
class Rejected:
    """A compile error with this fragment in its message."""

    fragment: str


Outcome = bool | Fails | Rejected


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    want: Outcome
    ctx: dict[str, Any] = field(default_factory=dict)  # make_context keyword arguments
    cel_expr: Outcome | None = None  # what cel-expr gives where it differs...
    why: str = ""  # ...and why

    def expected(self, engine: str) -> Outcome:
        return self.cel_expr if engine == "cel-expr" and self.cel_expr is not None else self.want


LATER = {"now": NOW + timedelta(days=100)}
PATTERN = {"annotations": {"pattern": "v1("}}
TYPE_CHECKED = (
    "cel-cpp's type checker rejects at compile what cel-python's load-time probe rejects "
    "(a type error on any input): both refuse the policy at load"
)

CASES = [
    # -- values --------------------------------------------------------------------------------
    Case("registry", 'image.registry == "ghcr.io"', True),
    Case(
        "docker-hub-normalised", 'image.name == "docker.io/library/nginx"', True, {"image": "nginx"}
    ),
    Case("default-tag", 'image.tag == "latest"', True, {"image": "nginx"}),
    Case("k-of-n-none", "authorities.filter(k, authorities[k].verified).size() >= 2", False),
    Case(
        "k-of-n-two",
        "authorities.filter(k, authorities[k].verified).size() >= 2",
        True,
        {"evidence": SIGNED},
    ),
    Case(
        "fresh",
        'signatures.exists(s, now - s.signedAt < duration("2160h"))',
        True,
        {"evidence": SIGNED},
    ),
    Case(
        "stale",
        'signatures.exists(s, now - s.signedAt < duration("2160h"))',
        False,
        {"evidence": SIGNED, **LATER},
    ),
    Case(
        "workflow-repository",
        'signatures.exists(s, s.extensions.githubWorkflowRepository == "acme/api")',
        True,
        {"evidence": SIGNED},
    ),
    Case("has-label", "has(request.pod.labels.team)", True, {"labels": {"team": "a"}}),
    Case("has-no-label", "has(request.pod.labels.team)", False),
    Case("label-in-list", 'request.pod.labels.team in ["a", "b"]', True, {"labels": {"team": "a"}}),
    Case(
        "subject-regex",
        'signatures.exists(s, s.subject.matches("^https://github\\\\.com/acme/"))',
        True,
        {"evidence": SIGNED},
    ),
    Case("has-signed-at", "has(signatures[0].signedAt)", True, {"evidence": SIGNED}),
    Case("in-map-keys", '"team" in request.pod.labels', False),
    Case(
        "exemption-before-end",
        f'image.digest in ["{D1}"] && now < timestamp("2027-01-31T00:00:00Z")',
        True,
    ),
    Case(
        "exemption-after-end",
        f'image.digest in ["{D1}"] && now < timestamp("2027-01-31T00:00:00Z")',
        False,
        {"now": NOW + timedelta(days=70)},
    ),
    Case("timestamp-with-offset", 'timestamp("2026-01-01T00:00:00+02:00") < now', True),
    Case("timestamp-arithmetic", 'now - duration("1h") < now', True),
    Case("timestamp-parts", "now.getFullYear() == 2026 && now.getDayOfWeek() == 5", True),
    Case("timestamp-parts-in-zone", 'now.getHours("Europe/Paris") == 13', True),
    Case("duration-units", 'duration("1h30m") == duration("90m")', True),
    Case("negative-duration", 'duration("-1s") < duration("0s")', True),
    Case("glob-function", 'glob(image.name, "ghcr.io/acme/*")', True),
    Case("glob-anchored", 'glob(image.name, "ghcr.io/acm*")', False),
    Case("glob-method", 'image.tag.glob("v?")', True),
    Case("matches-unanchored", 'image.name.matches("acme")', True),
    Case("matches-anchored", 'image.name.matches("^acme")', False),
    Case("matches-classes", 'image.tag.matches("^v\\\\d+$") && "x".matches("\\\\p{L}")', True),
    Case("matches-posix-class", 'image.name.matches("[[:alpha:]]+")', True),
    Case("matches-no-case-folding-of-sharp-s", '"ß".matches("(?i)SS")', False),
    Case(
        "string-methods",
        '"abc".contains("b") && "abc".startsWith("a") && "abc".endsWith("c")',
        True,
    ),
    Case("size-counts-code-points", 'size("héllo") == 5', True),
    Case("conversions", 'double("1.5") == 1.5 && string(1) == "1"', True),
    Case("type-of-string", "type(image.tag) == string", True),
    Case("list-concatenation", "[1] + [2] == [1, 2]", True),
    Case("uint", "1u + 1u == 2u", True),
    Case("bytes", 'b"a" + b"b" == b"ab"', True),
    Case("empty-literals", "[] == [] && {} == {} && null == null", True),
    Case("not-null", "image.tag != null", True),
    Case("double-division-by-zero", "1.0 / 0.0 > 0.0", True),
    Case("exists-one", "[1, 2, 3].exists_one(x, x > 2)", True),
    Case("map-macro", "signatures.map(s, s.subject).size() == 1", False),
    Case("filter-macro", "signatures.filter(s, s.tlog).size() == 2", True, {"evidence": SIGNED}),
    Case("ternary", "image.size > 1000 ? true : false", True),
    Case("policy", 'policy.name == "prod" && policy.revision == "rev-1"', True),
    Case("request", 'request.operation == "run" && request.namespace == "prod-eu"', True),
    Case(
        "heterogeneous-not-equal",
        'signatures.map(s, s.tlog)[0] != "true"',
        True,
        {"evidence": SIGNED},
    ),
    Case("nested-parentheses", "(" * 20 + "true" + ")" * 20, True),
    # -- errors are absorbed where CEL says so ---------------------------------------------------
    Case("error-or-true", 'image.annotations["x"] == "y" || true', True),
    Case("error-and-false", 'image.annotations["x"] == "y" && false', False),
    Case("false-and-error", 'false && image.annotations.x == "y"', False),
    Case("untaken-branch", 'false ? image.annotations.x == "y" : true', True),
    Case(
        "exists-absorbs-an-error",
        'signatures.exists(s, s.extensions.nope == "x" || s.tlog)',
        True,
        {"evidence": SIGNED},
    ),
    # -- evaluation errors ---------------------------------------------------------------------
    Case(
        "missing-key",
        'image.annotations["source"] == "x"',
        Fails("no such key: 'source'", 'Key not found in map : "source"', True),
    ),
    Case(
        "missing-member",
        "image.annotations.source == 'x'",
        Fails("no such member in mapping", 'Key not found in map : "source"', True),
    ),
    Case(
        "missing-member-compared-with-null",
        "image.annotations.x == null",
        Fails("no such member in mapping: 'x'", 'Key not found in map : "x"', True),
    ),
    Case(
        "taken-branch",
        'true ? image.annotations.x == "y" : true',
        Fails("no such member in mapping: 'x'", 'Key not found in map : "x"', True),
    ),
    Case(
        "all-with-an-error",
        'signatures.all(s, s.extensions.nope == "x")',
        Fails("no such member in mapping: 'nope'", 'Key not found in map : "nope"', True),
        {"evidence": SIGNED},
    ),
    Case(
        "empty-list-index",
        'signatures[0].subject == "x"',
        Fails("list index out of range", "Index error: index=0 size=0", True),
    ),
    Case(
        "int-of-text",
        'int("x") == 1',
        Fails("invalid literal for int()", "cannot convert string to int", True),
    ),
    Case(
        "int-of-tag",
        "int(image.tag) == 1",
        Fails("invalid literal for int()", "cannot convert string to int", True),
    ),
    Case("divide-by-zero", "image.size / 0 == 1", Fails("divide by zero", "divide by zero", True)),
    Case("modulo-by-zero", "image.size % 0 == 1", Fails("modulo by zero", "modulus by zero", True)),
    Case(
        "int-overflow", "9223372036854775807 + 1 > 0", Fails("overflow", "integer overflow", True)
    ),
    Case(
        "int-underflow", "-9223372036854775808 - 1 < 0", Fails("overflow", "integer overflow", True)
    ),
    Case("double-to-int-range", "int(1e100) > 0", Fails("overflow", "out of int64 range", True)),
    Case("negative-to-uint", "uint(-1) > 0u", Fails("overflow", "out of uint64 range", True)),
    Case(
        "method-on-int",
        'image.size.startsWith("1")',
        Fails("no such overload", "No matching overloads found", False),
    ),
    Case(
        "glob-of-int",
        'glob(image.size, "x")',
        Fails("no such overload", "No matching overloads found", False),
    ),
    Case(
        "regex-from-data",
        "image.name.matches(image.annotations.pattern)",
        Fails("invalid RE2", "invalid regular expression", True),
        PATTERN,
    ),
    Case(
        "glob-from-data",
        "glob(image.name, image.annotations.pattern)",
        Fails("glob pattern is longer than", "glob pattern is longer than", True),
        {"annotations": {"pattern": "?" * 100_000}},
    ),
    # -- where the engines differ ----------------------------------------------------------------
    Case(
        "add-string-int",
        'image.tag + 1 == "x"',
        Fails("no such overload for (string, int)", "", False),
        cel_expr=Rejected("found no matching overload"),
        why=TYPE_CHECKED,
    ),
    Case(
        "wrong-argument-type",
        "image.tag.startsWith(1)",
        Fails("no such overload", "", False),
        cel_expr=Rejected("found no matching overload for 'startsWith'"),
        why=TYPE_CHECKED,
    ),
    Case(
        "int-equals-double",
        "[1][0] == 1.0",
        Fails("no such overload for (int, double)", "", False),
        cel_expr=Rejected("found no matching overload for '_==_' applied to '(int, double)'"),
        why=TYPE_CHECKED,
    ),
    Case(
        "map-literal-field-type",
        '{"a": 1}.a == "x"',
        Fails("no such overload for (int, string)", "", False),
        cel_expr=Rejected("found no matching overload"),
        why=TYPE_CHECKED,
    ),
    Case(
        "duration-in-days",
        'duration("1d") > duration("1h")',
        True,
        cel_expr=Rejected("invalid duration literal '1d'"),
        why="cel-python accepts a 'd' unit; the CEL spec (and cel-cpp) has h, m, s, ms, us, ns",
    ),
    Case(
        "timestamp-without-zone",
        'now > timestamp("2026-01-01T00:00:00")',
        True,
        cel_expr=Rejected("invalid timestamp literal"),
        why="cel-python reads a timestamp without an offset as UTC; cel-cpp requires RFC 3339",
    ),
    Case(
        "timestamp-type-name",
        "type(now) == timestamp",
        True,
        cel_expr=Rejected("undeclared reference to 'timestamp'"),
        why="cel-cpp names the type google.protobuf.Timestamp; timestamp is only a function",
    ),
    Case(
        "hexadecimal-int-of-string",
        'int("0x10") == 16',
        True,
        cel_expr=Fails("", "cannot convert string to int", True),
        why="cel-python's int() reads 0x prefixes; cel-cpp reads decimal only",
    ),
    Case(
        "deep-parentheses",
        "(" * 40 + "true" + ")" * 40,
        True,
        cel_expr=Rejected("recursion limit exceeded"),
        why="cel-cpp's parser allows 32 levels of nesting",
    ),
]


ENGINE_NAMES = ("cel-python", "cel-expr")


@pytest.fixture(params=ENGINE_NAMES)
def engine(request: pytest.FixtureRequest) -> Engine:
    return engine_named(request.param)


def _fragment(want: Fails, engine: str) -> str:
    return want.python if engine == "cel-python" else want.expr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance(case: Case, engine: Engine) -> None:
    want = case.expected(engine.name)
    if isinstance(want, Rejected):
        with pytest.raises(CompileError) as rejected:
            compile_expression(case.text, RULE_NAMES, engine=engine)
        assert want.fragment in str(rejected.value)
        return
    program = compile_expression(case.text, RULE_NAMES, engine=engine)
    activation = make_context(engine, **case.ctx)
    if isinstance(want, Fails):
        with pytest.raises(EvalError) as failed:
            program.evaluate(activation)
        assert _fragment(want, engine.name) in str(failed.value)
        assert failed.value.data_dependent is want.data_dependent
        return
    assert program.evaluate(activation) is want


def test_the_table_covers_both_outcomes_and_every_difference_says_why() -> None:
    assert len(CASES) >= 80
    assert {type(c.want) for c in CASES} == {bool, Fails}
    for case in CASES:
        assert bool(case.why) == (case.cel_expr is not None), case.id
        if isinstance(case.want, Fails) and case.cel_expr is None:
            assert case.want.python and case.want.expr, case.id


def test_no_difference_turns_a_deny_into_an_allow() -> None:
    """cel-expr may refuse more at load, or fail where cel-python answers; never allow more."""
    for case in CASES:
        if case.cel_expr is True:
            assert case.want is True, case.id


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("image.size", "an int"),
        ("image.tag", "a string"),
        ("signatures", "a list"),
        ("null", "a null"),
    ],
)
def test_a_value_that_is_not_a_bool_is_refused(engine: Engine, text: str, got: str) -> None:
    program = compile_expression(text, RULE_NAMES, engine=engine)
    with pytest.raises(NotABool, match=f"yields {got}, but must yield true or false"):
        program.evaluate(make_context(engine))


BIG = {
    "labels": {f"label-{i}": "v" * 200 for i in range(300)},
    "annotations": {f"note-{i}": "w" * 500 for i in range(100)},
}


@pytest.mark.parametrize(
    "text",
    [
        'request.pod.labels["missing"] == "x"',
        'request.pod.labels.missing == "x"',
        "request.pod.labels.size() + image.tag == 1",
        'image.annotations["note-1"] + 1 == 2',
        'int(request.pod.labels["label-1"]) == 1',
        'image.name.matches(image.annotations["note-2"] + "(")',
        'request.pod.labels.x == "y" || image.tag + 1 == 2',
    ],
)
def test_error_messages_are_short_and_never_show_the_activation(engine: Engine, text: str) -> None:
    try:
        program = compile_expression(text, RULE_NAMES, engine=engine)
    except CompileError:
        assert engine.name == "cel-expr"  # its type checker refuses some of these at load
        return
    with pytest.raises(EvalError) as info:
        program.evaluate(make_context(engine, **BIG))
    message = str(info.value)
    assert 0 < len(message) <= 300
    assert "activation" not in message.lower()
    assert "label-299" not in message and "note-99" not in message  # no other context values


def test_one_program_evaluates_correctly_from_many_threads(engine: Engine) -> None:
    import threading

    program = compile_expression(
        'image.registry == "ghcr.io" && signatures.all(s, s.tlog)', RULE_NAMES, engine=engine
    )
    contexts = [
        (make_context(engine, "ghcr.io/acme/app:v1", evidence=SIGNED), True),
        (make_context(engine, "quay.io/acme/app:v1", evidence=SIGNED), False),
        (make_context(engine, "docker.io/library/nginx"), False),
    ]
    threads, rounds = 8, 500
    barrier = threading.Barrier(threads)
    wrong: list[tuple[int, int]] = []
    done: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        barrier.wait()
        count = 0
        for i in range(rounds):
            ctx, expected = contexts[(i + t) % len(contexts)]
            if program.evaluate(ctx) is not expected:
                with lock:
                    wrong.append((t, i))
            count += 1
        with lock:
            done.append(count)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert done == [rounds] * threads
    assert wrong == []


def test_both_engines_convert_the_same_plain_values(engine: Engine) -> None:
    from datetime import UTC, datetime
    from types import MappingProxyType

    values = engine.convert(
        {
            "image": MappingProxyType({"tag": "v1", "size": 3, "annotations": {}}),
            "signatures": [{"signedAt": datetime(2026, 1, 1, tzinfo=UTC), "tlog": True}],
            "now": datetime(2026, 6, 1, tzinfo=UTC),
            "policy": {"name": "p", "revision": "r"},
        }
    )
    program = compile_expression(
        'image.tag == "v1" && image.size == 3 && signatures[0].tlog'
        ' && now - signatures[0].signedAt > duration("3600h")'
        " && signatures[0].signedAt.getFullYear() == 2026",
        RULE_NAMES,
        engine=engine,
    )
    assert program.evaluate(engine.bind(values)) is True


@pytest.mark.parametrize("value", [{1, 2}, object(), 1j], ids=["set", "object", "complex"])
def test_both_engines_refuse_values_they_cannot_carry(engine: Engine, value: Any) -> None:
    with pytest.raises(TypeError, match="cannot convert"):
        engine.convert({"image": {"annotations": {"x": [value]}}})
