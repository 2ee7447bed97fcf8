"""The CEL engine seam: Env → Compile (parse + check) → Program → Eval, on cel-python.

cel-python has no type checker, so ``compile`` walks the parse tree itself: every top-level
name, field of a known structure, function and method must be known, literal arguments of
``timestamp``/``duration``/``matches``/``glob`` must be valid, and reserved words are refused.
What the walk cannot see (types of computed values) the caller catches by probe-evaluating
on sample contexts (``rules.py``).

Programs are interpreted (``InterpretedRunner``): cel-python's ``CompiledRunner`` passes the
activation through module globals and gives wrong answers under threads.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar, cast

import celpy
import lark
import lark.exceptions
import re2
from celpy import celtypes
from celpy.celparser import CELParser
from celpy.evaluation import CELEvalError, CELUnsupportedError, base_functions, celstr

from .globs import MAX_PATTERN_CHARS, GlobError, glob_match

__all__ = [
    "MAX_EXPRESSION_CHARS",
    "CelIssue",
    "CompileError",
    "EvalError",
    "Field",
    "ListOf",
    "MapOf",
    "Program",
    "Record",
    "Shape",
    "compile_expression",
    "to_cel",
]

MAX_EXPRESSION_CHARS = 8192
MAX_ERROR_CHARS = 300

RESERVED = frozenset(
    {"as", "break", "const", "continue", "else", "false", "for", "function", "if", "import"}
    | {"in", "let", "loop", "package", "namespace", "null", "return", "true", "var", "void"}
    | {"while"}
)
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
TYPE_NAMES = frozenset(
    {"bool", "bytes", "double", "duration", "int", "list", "map", "null_type", "string"}
    | {"timestamp", "type", "uint", "dyn"}
)
# Global functions (``f(x)``) and methods (``x.f()``) a policy may call.
FUNCTIONS = frozenset({"size", "glob", "has", "matches", "contains"} | TYPE_NAMES - {"dyn"})
METHODS = frozenset(
    {"size", "contains", "startsWith", "endsWith", "matches", "glob"}
    | {"getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth"}
    | {"getHours", "getMilliseconds", "getMinutes", "getSeconds"}
)
_MISSING_HINTS = {
    "lowerAscii": "cel-python has no string extensions (lowerAscii, upperAscii, split, ...)",
    "upperAscii": "cel-python has no string extensions (lowerAscii, upperAscii, split, ...)",
    "split": "cel-python has no string extensions (lowerAscii, upperAscii, split, ...)",
    "join": "cel-python has no string extensions (join, split, replace, ...)",
    "replace": "cel-python has no string extensions (join, split, replace, ...)",
    "trim": "cel-python has no string extensions (trim, split, replace, ...)",
    "bind": "cel-python has no cel.bind",
    "optMap": "cel-python has no optional values",
}

Tree = lark.Tree[Any]
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 8 << 20


# -- shapes: what the static check knows about the context -----------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """A value of a known scalar type, e.g. ``string`` or ``timestamp``."""

    type: str


@dataclass(frozen=True, slots=True)
class Record:
    """A map with a fixed set of fields, like ``image``."""

    what: str
    fields: Mapping[str, Shape]


@dataclass(frozen=True, slots=True)
class MapOf:
    """A map with free keys (``keys`` lists them when they are known, as for ``authorities``)."""

    what: str
    value: Shape | None
    keys: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class ListOf:
    what: str
    item: Shape | None


Shape = Field | Record | MapOf | ListOf


# -- compile errors --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CelIssue:
    message: str
    line: int = 1  # 1-based, inside the expression
    column: int = 1
    positioned: bool = True  # False: about the whole expression (a probe finding)


class CompileError(Exception):
    def __init__(self, issues: list[CelIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(i.message for i in issues))


class EvalError(Exception):
    """An evaluation error, with a short message that never embeds the activation.

    ``data_dependent`` errors come from the values (a missing map key, an empty list, a tag
    that is not a number); the others (no such overload) would fail on any input.
    """

    def __init__(self, message: str, *, data_dependent: bool) -> None:
        super().__init__(message)
        self.data_dependent = data_dependent


_DATA_ERRORS = (KeyError, IndexError, ValueError, ArithmeticError)


# -- functions -------------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _regex(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN_CHARS:  # patterns can come from data (annotations)
        raise re2.error(f"pattern is longer than {MAX_PATTERN_CHARS} characters")
    return re2.compile(pattern, _RE2_OPTIONS)


def _matches(text: Any, pattern: Any) -> celtypes.BoolType:
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise TypeError(
            f"matches(string, string), got {type(text).__name__}, {type(pattern).__name__}"
        )
    try:
        return celtypes.BoolType(_regex(str(pattern)).search(str(text)) is not None)
    except re2.error as exc:
        raise ValueError(
            f"invalid RE2 regular expression {str(pattern)[:80]!r}: {_re2_message(exc)}"
        ) from None


def _glob(text: Any, pattern: Any) -> celtypes.BoolType:
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise TypeError(
            f"glob(string, string), got {type(text).__name__}, {type(pattern).__name__}"
        )
    try:
        return celtypes.BoolType(glob_match(str(text), str(pattern)))
    except GlobError as exc:
        raise ValueError(str(exc)) from None


def _re2_message(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode() if isinstance(arg, bytes) else str(arg)


def _worse(x: CELEvalError, y: CELEvalError) -> CELEvalError:
    """``error || error`` is an error: keep one of the originals (cel-python would replace both
    with a generic "no such overload" and lose whether the failure depends on the data)."""
    for e in (x, y):
        cause = e.args[1] if len(e.args) > 1 else None
        if not (isinstance(cause, type) and issubclass(cause, _DATA_ERRORS)):
            return e
    return x


def _or(x: Any, y: Any) -> Any:
    if isinstance(x, CELEvalError) and isinstance(y, CELEvalError):
        return _worse(x, y)
    return _LOGICAL_OR(x, y)


def _and(x: Any, y: Any) -> Any:
    if isinstance(x, CELEvalError) and isinstance(y, CELEvalError):
        return _worse(x, y)
    return _LOGICAL_AND(x, y)


def _keep_error_causes() -> None:
    """Make ``||``, ``&&``, ``exists`` and ``all`` keep the cause of an error.

    cel-python turns ``error || error`` into a generic "no such overload" type error, which
    would make a rule like ``a["x"] == 1 || a["y"] == 2`` look ill-typed at load (the probe
    rejects type errors) when it only depends on the data. The operators are looked up in
    ``base_functions`` and the macros call ``celtypes.logical_or/and`` directly, so both are
    replaced, once, with versions that differ only in that case. cel-python is pinned <0.6.
    """
    celtypes.logical_or = _or
    celtypes.logical_and = _and
    base_functions["_||_"] = _or
    base_functions["_&&_"] = _and


_LOGICAL_OR, _LOGICAL_AND = celtypes.logical_or, celtypes.logical_and
_keep_error_causes()


class _Erased:
    """Stands in for a typing generic: ``_Erased()[anything]`` is itself, and free."""

    def __getitem__(self, item: object) -> _Erased:
        return self


def _erase_runtime_casts() -> None:
    """Make cel-python's ``cast(Tuple[Result, Result], x)`` calls cheap.

    Its evaluator builds typing generics on every visit just to pass them to ``cast``, which
    ignores them; subscripting ``Union`` aliases hashes them through typing's cache, a third of
    the time of a simple evaluation (``image.tag != "debug"``: 143 µs → 103 µs here). These
    names are only subscripted in ``cast`` calls at run time (``Sequence`` and ``Mapping``,
    used with ``isinstance``, are left alone). cel-python is pinned <0.6.
    """
    for name in ("Tuple", "List", "Dict", "Union", "Iterable"):
        setattr(celpy.evaluation, name, _Erased())


_erase_runtime_casts()

FUNCTION_TABLE: dict[str, Callable[..., Any]] = {"matches": _matches, "glob": _glob}


# -- conversion ------------------------------------------------------------------------------


_new_str = str.__new__
_TRUE, _FALSE = celtypes.BoolType(True), celtypes.BoolType(False)


def _cel_map(value: Mapping[str, Any]) -> celtypes.MapType:
    out = celtypes.MapType()
    # MapType's constructor checks each key through typing's slow isinstance; these keys are
    # all strings, so the dict is filled directly.
    dict.update(out, {_new_str(celtypes.StringType, str(k)): to_cel(v) for k, v in value.items()})
    return out


def to_cel(value: Any) -> Any:
    """Convert plain Python data to CEL values (once per request, not per rule)."""
    kind = type(value)
    if kind is str:
        return _new_str(celtypes.StringType, value)
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is dict:
        return _cel_map(value)
    if kind is list or kind is tuple:
        return celtypes.ListType([to_cel(v) for v in value])
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, datetime):
        return celtypes.TimestampType(value)
    if isinstance(value, timedelta):
        return celtypes.DurationType(value)
    if isinstance(value, Mapping):
        return _cel_map(value)
    if isinstance(value, list | tuple):
        return celtypes.ListType([to_cel(v) for v in value])
    if value is None:
        return None
    raise TypeError(f"cannot convert {type(value).__name__} to CEL")


# -- the static check ------------------------------------------------------------------------


def _first_token(tree: Tree | lark.Token | None) -> lark.Token | None:
    if tree is None or isinstance(tree, lark.Token):
        return tree
    for child in tree.children:
        tok = _first_token(child)
        if tok is not None:
            return tok
    return None


def _string_literal(tree: Tree | lark.Token) -> str | None:
    """The value of an expression that is nothing but a string literal."""
    while isinstance(tree, lark.Tree) and len(tree.children) == 1:
        if tree.data == "literal":
            tok = tree.children[0]
            if isinstance(tok, lark.Token) and tok.type in ("STRING_LIT", "MLSTRING_LIT"):
                return str(celstr(tok))
            return None
        tree = tree.children[0]
    return None


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _describe(shape: Shape | None) -> str:
    if isinstance(shape, Field):
        return _a(shape.type)
    if isinstance(shape, ListOf):
        return "a list"
    return "a map"


class _Checker:
    def __init__(self, names: Mapping[str, Shape], hint: Callable[[str], str]) -> None:
        self.names = names
        self.hint = hint
        self.issues: list[CelIssue] = []

    def fail(self, at: Tree | lark.Token | None, message: str) -> None:
        tok = _first_token(at) if at is not None else None
        line = tok.line if tok is not None and tok.line else 1
        column = tok.column if tok is not None and tok.column else 1
        self.issues.append(CelIssue(message, line, column))

    def visit(
        self, tree: Tree | lark.Token | None, scope: Mapping[str, Shape | None]
    ) -> Shape | None:
        """Check ``tree``; return the shape of its value when it is known."""
        if tree is None or isinstance(tree, lark.Token):
            return None
        handler = getattr(self, f"_{tree.data}", None)
        if handler is not None:
            return cast(Shape | None, handler(tree, scope))
        shape = None
        for child in tree.children:
            shape = self.visit(child, scope)
        # A pass-through node (one child) keeps its child's shape; anything else is computed.
        return shape if len(tree.children) == 1 else None

    _LITERAL_TYPES: ClassVar[dict[str, str]] = {
        "STRING_LIT": "string",
        "MLSTRING_LIT": "string",
        "INT_LIT": "int",
        "UINT_LIT": "uint",
        "FLOAT_LIT": "double",
        "BOOL_LIT": "bool",
        "BYTES_LIT": "bytes",
    }

    def _literal(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        tok = tree.children[0]
        kind = self._LITERAL_TYPES.get(tok.type) if isinstance(tok, lark.Token) else None
        return Field(kind) if kind else None

    def _relation(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        if len(tree.children) == 1:
            return self.visit(tree.children[0], scope)
        op, right_tree = tree.children
        left = self.visit(op.children[0], scope) if isinstance(op, lark.Tree) else None
        right = self.visit(right_tree, scope)
        if (
            isinstance(op, lark.Tree)
            and op.data != "relation_in"
            and isinstance(left, Field)
            and isinstance(right, Field)
            and left.type != right.type
        ):
            self.fail(
                right_tree,
                f"compares {_a(left.type)} with {_a(right.type)}; CEL has no implicit conversions "
                f"(write both sides as {left.type}s)",
            )
        return Field("bool")

    def _ident(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        tok = tree.children[0]
        name = str(tok)
        if name in scope:
            return scope[name]
        if name in self.names:
            return self.names[name]
        if name in TYPE_NAMES:
            return None
        if name in RESERVED:
            instead = "; use request.namespace" if name == "namespace" else ""
            self.fail(tok, f"{name!r} is a reserved word in CEL{instead}")
            return None
        self.fail(tok, f"unknown name {name!r}{_suggest(name, self.names)}{self.hint(name)}")
        return None

    def _dot_ident(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        return self._ident(tree, {})

    def _member_object(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        self.fail(tree, "message construction (Type{field: ...}) is not supported in policies")
        return None

    def _member_dot(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        target, field = tree.children
        shape = self.visit(target, scope)
        return self._select(shape, str(field), field)

    def _member_index(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        target, index = tree.children
        shape = self.visit(target, scope)
        self.visit(index, scope)
        if isinstance(shape, ListOf):
            return shape.item
        key = _string_literal(index)
        if key is None:
            return shape.value if isinstance(shape, MapOf) else None
        return self._select(shape, key, index)

    def _select(self, shape: Shape | None, key: str, at: Tree | lark.Token) -> Shape | None:
        if isinstance(shape, Record):
            if key not in shape.fields:
                self.fail(
                    at,
                    f"{shape.what} has no field {key!r}{_suggest(key, shape.fields)} "
                    f"(fields: {', '.join(sorted(shape.fields))})",
                )
                return None
            return shape.fields[key]
        if isinstance(shape, MapOf):
            if shape.keys is not None and key not in shape.keys:
                known = ", ".join(sorted(shape.keys)) or "none"
                hint = _suggest(key, shape.keys)
                self.fail(at, f"{shape.what} has no entry {key!r}{hint} (declared: {known})")
                return None
            return shape.value
        if isinstance(shape, Field | ListOf):
            self.fail(at, f"cannot select {key!r}: the value is {_describe(shape)}, not a map")
        return None

    def _ident_arg(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        name_tok = tree.children[0]
        name = str(name_tok)
        args = self._args(tree.children[1] if len(tree.children) > 1 else None)
        if name not in FUNCTIONS:
            self._unknown_function(name_tok, name)
        elif name == "has":
            self._has(name_tok, args, scope)
            return Field("bool")
        self._literal_args(name, args, args)
        for arg in args:
            self.visit(arg, scope)
        return None

    def _dot_ident_arg(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        return self._ident_arg(tree, scope)

    def _member_dot_arg(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        target, method_tok = tree.children[0], tree.children[1]
        method = str(method_tok)
        args = self._args(tree.children[2] if len(tree.children) > 2 else None)
        shape = self.visit(target, scope)
        if method in MACROS:
            return self._macro(tree, method, shape, args, scope)
        if method not in METHODS:
            self._unknown_function(method_tok, method)
        self._literal_args(method, args, [target, *args])
        for arg in args:
            self.visit(arg, scope)
        return Field("bool") if method in ("matches", "glob", "startsWith", "endsWith") else None

    def _macro(
        self,
        tree: Tree,
        name: str,
        shape: Shape | None,
        args: list[Tree],
        scope: Mapping[str, Shape | None],
    ) -> Shape | None:
        if len(args) not in ((2, 3) if name == "map" else (2,)):
            self.fail(tree.children[1], f"{name}() takes a variable and an expression")
            return None
        var_tree = args[0]
        var = _first_token(var_tree)
        if var is None or var.type != "IDENT" or self._depth_to_ident(var_tree) is None:
            self.fail(var_tree, f"the first argument of {name}() must be a variable name")
            return None
        if str(var) in RESERVED:
            self.fail(var, f"{str(var)!r} is a reserved word in CEL; pick another variable name")
        if isinstance(shape, ListOf):
            element: Shape | None = shape.item
        elif isinstance(shape, Record | MapOf):
            element = Field("string")  # macros over a map iterate its keys
        else:
            element = None
        inner = {**scope, str(var): element}
        for arg in args[1:]:
            self.visit(arg, inner)
        if name == "filter":
            return shape if isinstance(shape, ListOf) else None
        return Field("bool") if name != "map" else None

    @staticmethod
    def _depth_to_ident(tree: Tree) -> Tree | None:
        while isinstance(tree, lark.Tree) and len(tree.children) == 1:
            if tree.data == "ident":
                return tree
            child = tree.children[0]
            if not isinstance(child, lark.Tree):
                return None
            tree = child
        return None

    def _has(
        self, at: Tree | lark.Token, args: list[Tree], scope: Mapping[str, Shape | None]
    ) -> None:
        if len(args) != 1:
            self.fail(at, "has() takes one field selection, e.g. has(image.annotations.x)")
            return
        node = args[0]
        while isinstance(node, lark.Tree) and node.data != "member_dot" and len(node.children) == 1:
            node = node.children[0]
        if not isinstance(node, lark.Tree) or node.data != "member_dot":
            self.fail(at, "has() needs a field selection such as has(request.pod.labels.team)")
            return
        self.visit(node, scope)

    @staticmethod
    def _args(exprlist: Tree | lark.Token | None) -> list[Tree]:
        if exprlist is None or isinstance(exprlist, lark.Token):
            return []
        return [c for c in exprlist.children if isinstance(c, lark.Tree)]

    def _unknown_function(self, at: Tree | lark.Token, name: str) -> None:
        known = FUNCTIONS | METHODS | MACROS
        why = _MISSING_HINTS.get(name, "")
        self.fail(
            at, f"unknown function {name!r}{_suggest(name, known)}{'; ' + why if why else ''}"
        )

    def _literal_args(self, name: str, args: list[Tree], operands: list[Tree]) -> None:
        """Check constant arguments now, so they do not fail every evaluation later."""
        if name in ("timestamp", "duration") and len(args) == 1:
            text = _string_literal(args[0])
            if text is not None:
                try:
                    (celtypes.TimestampType if name == "timestamp" else celtypes.DurationType)(text)
                except Exception as exc:  # pendulum raises assorted parser errors
                    self.fail(args[0], f"invalid {name} literal {text!r}: {exc}")
        if name in ("matches", "glob") and len(operands) == 2:
            text = _string_literal(operands[1])
            if text is not None:
                try:
                    (_matches if name == "matches" else _glob)(
                        celtypes.StringType(""), celtypes.StringType(text)
                    )
                except ValueError as exc:
                    self.fail(operands[1], str(exc))


# -- programs --------------------------------------------------------------------------------

_ENV = celpy.Environment()  # one parser; parsing happens only at load, from one thread
# Environment() folds in the google.protobuf wrapper types, and every evaluation re-processes
# them into a fresh activation (~80 µs). Policies never name protobuf types: drop them.
_ENV.annotations.clear()
_PARSE_LOCK = threading.Lock()
assert CELParser.CEL_PARSER is not None  # built by Environment() above
_PARSER: lark.Lark = CELParser.CEL_PARSER
_WS = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Program:
    """A checked, ready-to-run expression. Immutable and safe to share between threads."""

    text: str
    names: frozenset[str]  # the top-level names it reads
    _runner: celpy.Runner

    def evaluate(self, activation: Mapping[str, Any]) -> Any:
        """Evaluate; raises :class:`EvalError` with a short, safe message."""
        try:
            return self._runner.evaluate(dict(activation))
        except CELEvalError as exc:
            cause = exc.args[1] if len(exc.args) > 1 else None
            data = isinstance(cause, type) and issubclass(cause, _DATA_ERRORS)
            raise EvalError(_eval_message(exc), data_dependent=data) from None
        except (CELUnsupportedError, RecursionError, ArithmeticError, ValueError, TypeError) as exc:
            message = f"{type(exc).__name__}: {str(exc)[:MAX_ERROR_CHARS]}"
            raise EvalError(message, data_dependent=isinstance(exc, _DATA_ERRORS)) from None


def _eval_message(exc: CELEvalError) -> str:
    args = exc.args
    message = str(args[0]) if args else "evaluation error"
    message = re.sub(r" \(in activation .*", "", message, flags=re.S)
    detail = args[2] if len(args) > 2 else None
    if message in ("no such key", "no such member in mapping") and detail:
        message = f"{message}: {', '.join(repr(str(d)) for d in detail)}"
    elif message.startswith("found no matching overload") or message == "no such overload":
        types = re.findall(r"celtypes\.(\w+)Type", message)
        message = "no such overload" + (
            f" for ({', '.join(t.lower() for t in types)})" if types else ""
        )
    elif detail and isinstance(detail, tuple) and detail:
        message = f"{message}: {detail[0]}"
    return _WS.sub(" ", message)[:MAX_ERROR_CHARS]


def _fill_positions(ast: Tree, text: str) -> None:
    """Give tokens that cel-python's lexer leaves without a position (``true``, ``false``,
    ``null``) the position of their text, so errors can point at them."""
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    cursor = 0
    for tok in ast.scan_values(lambda v: isinstance(v, lark.Token)):
        if tok.line and tok.column:
            cursor = starts[tok.line - 1] + tok.column - 1 + len(tok)
            continue
        at = text.find(str(tok), cursor)
        if at < 0:
            continue
        row = max(i for i, start in enumerate(starts) if start <= at)
        tok.line, tok.column = row + 1, at - starts[row] + 1
        cursor = at + len(tok)


_TERMINALS = {"RPAR": "')'", "RSQB": "']'", "RBRACE": "'}'", "COLON": "':'", "COMMA": "','"}
_CHAR_HINTS = {
    "=": " (compare with ==)",
    "&": " (write && for and)",
    "|": " (write || for or)",
    '"': " (a string that is not closed?)",
    "'": " (a string that is not closed?)",
}


def _syntax_message(exc: lark.exceptions.UnexpectedInput) -> str:
    expected = set(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    wants = sorted(_TERMINALS[t] for t in expected if t in _TERMINALS)
    if "IDENT" in expected or "INT_LIT" in expected:
        wants.insert(0, "a value")
    want = f"; expected {' or '.join(wants)}" if wants else ""
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        return f"CEL syntax error: unexpected character {exc.char!r}{_CHAR_HINTS.get(exc.char, '')}"
    token = getattr(exc, "token", None)
    if token is None or token.type == "$END":
        return f"CEL syntax error: the expression ends too early{want}"
    return f"CEL syntax error: unexpected {str(token)!r}{want}"


_NO_POSITION = lark.tree.Meta()  # type: ignore[no-untyped-call]
_NO_POSITION.line = _NO_POSITION.column = 0


# Grammar levels whose evaluator returns the value of a lone child unchanged.
_PASS_THROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication"}
    | {"unary", "member"}
)


def _skip_levels(node: Tree) -> Tree:
    while node.data in _PASS_THROUGH and len(node.children) == 1:
        child = node.children[0]
        if not isinstance(child, lark.Tree):
            break
        node = child
    return node


def _slim(ast: Tree) -> Tree:
    """The tree cel-python will evaluate: same values, a third of the nodes and memory.

    A literal sits under eight grammar levels (``expr`` … ``member``) that each hand their
    only child's value up; they are skipped, which also skips their visits at evaluation.
    Every node then shares one position record instead of its own ``Meta`` (~400 bytes):
    after the check, positions are read only by cel-python's own error objects, whose line
    and column pullgate never shows.
    """
    root = _skip_levels(ast)
    for tree in root.iter_subtrees():
        tree._meta = _NO_POSITION
        tree.children = [_skip_levels(c) if isinstance(c, lark.Tree) else c for c in tree.children]
    return root


def compile_expression(
    text: str,
    names: Mapping[str, Shape],
    *,
    hint: Callable[[str], str] = lambda name: "",
) -> Program:
    """Parse, check against the known ``names`` and build a program. Raises CompileError."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CompileError(
            [CelIssue(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")]
        )
    if not text.strip():
        raise CompileError([CelIssue("expression is empty")])
    try:
        with _PARSE_LOCK:  # cel-python's parser is one shared instance
            ast = _PARSER.parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        issue = CelIssue(_syntax_message(exc), exc.line or 1, exc.column or 1)
        raise CompileError([issue]) from None
    except RecursionError:
        raise CompileError([CelIssue("expression is nested too deeply")]) from None
    checker = _Checker(names, hint)
    try:
        _fill_positions(ast, text)
        checker.visit(ast, {})
    except RecursionError:
        raise CompileError([CelIssue("expression is nested too deeply")]) from None
    if checker.issues:
        raise CompileError(checker.issues)
    used = frozenset(
        str(t.children[0]) for t in ast.iter_subtrees() if t.data in ("ident", "dot_ident")
    ) & frozenset(names)
    runner = _ENV.program(_slim(ast), functions=FUNCTION_TABLE)
    return Program(text=text, names=used, _runner=runner)


class ProgramCache:
    """Shares one program per distinct (expression, context) across policies and revisions."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._entries: OrderedDict[tuple[str, Any], Program | CompileError] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: tuple[str, Any], build: Callable[[], Program]) -> Program:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
        if hit is None:
            try:
                hit = build()
            except CompileError as exc:
                hit = exc
            with self._lock:
                self._entries[key] = hit
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        if isinstance(hit, CompileError):
            raise hit
        return hit
