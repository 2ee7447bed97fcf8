"""Parse and check: the engine-independent half of compiling a CEL expression.

cel-python's grammar (lark, LALR) parses every expression whatever engine runs it, so both
engines accept the same language and report the same errors. The walk over the parse tree
checks what an engine without a type checker would only find at evaluation: every top-level
name, field of a known structure, function and method must be known, literal arguments of
``timestamp``/``duration``/``matches``/``glob`` must be valid, and reserved words are refused.
What the walk cannot see (types of computed values) the caller catches by probe-evaluating
on sample contexts (``rules.py``).
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import celpy
import lark
import lark.exceptions
from celpy.celparser import CELParser
from celpy.evaluation import celstr

from . import functions
from .errors import CelIssue, CompileError
from .shapes import Field, ListOf, MapOf, Record, Shape

__all__ = ["MAX_EXPRESSION_CHARS", "Checked", "check_expression"]

MAX_EXPRESSION_CHARS = 8192

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
# Global functions (``f(x)``) and methods (``x.f()``) a policy may call, on every engine.
FUNCTIONS = frozenset({"size", "glob", "has", "matches", "contains"} | TYPE_NAMES - {"dyn"})
METHODS = frozenset(
    {"size", "contains", "startsWith", "endsWith", "matches", "glob"}
    | {"getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth"}
    | {"getHours", "getMilliseconds", "getMinutes", "getSeconds"}
)
_NO_STRINGS_EXT = "pullgate's CEL has no string extensions (lowerAscii, upperAscii, split, ...)"
_MISSING_HINTS = {
    "lowerAscii": _NO_STRINGS_EXT,
    "upperAscii": _NO_STRINGS_EXT,
    "split": _NO_STRINGS_EXT,
    "join": _NO_STRINGS_EXT,
    "replace": _NO_STRINGS_EXT,
    "trim": _NO_STRINGS_EXT,
    "bind": "pullgate's CEL has no cel.bind",
    "optMap": "pullgate's CEL has no optional values",
}

Tree = lark.Tree[Any]


def _parser() -> lark.Lark:
    """cel-python's grammar and options, without ``propagate_positions``: parsing takes half
    the time. Nothing reads node positions (the check reads token positions, which every
    token keeps). Installed as cel-python's own parser, so there is only one."""
    if CELParser.CEL_PARSER is None:
        CELParser.CEL_PARSER = lark.Lark(
            (Path(celpy.__file__).parent / "cel.lark").read_text(),
            parser="lalr",
            start="expr",
            g_regex_flags=re.M,
            lexer_callbacks={"IDENT": CELParser.ambiguous_literals},
            propagate_positions=False,
            maybe_placeholders=False,
            priority="invert",
        )
    return CELParser.CEL_PARSER


PARSER = _parser()
_PARSE_LOCK = threading.Lock()  # the parser is one shared instance


@dataclass(frozen=True, slots=True)
class Checked:
    """An expression that parsed and passed the check, ready for an engine to build."""

    text: str
    tree: Tree  # the parse tree; engines may keep or reshape it, nobody else reads it after
    names: frozenset[str]  # the top-level context names it reads


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
    def __init__(
        self,
        names: Mapping[str, Shape],
        hint: Callable[[str], str],
        literal: Callable[[str, str], str],
    ) -> None:
        self.names = names
        self.hint = hint
        self.literal = literal
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

    def _list_lit(self, tree: Tree, scope: Mapping[str, Shape | None]) -> Shape | None:
        # A list, whatever its items (not its lone item's shape: `[m].exists(x, ...)` ranges
        # over the list, not over the keys of the map `m`). Items stay unknown, as before.
        for item in self._args(tree.children[0] if tree.children else None):
            self.visit(item, scope)
        return ListOf("a list", None)

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
                problem = self.literal(name, text)
                if problem:
                    self.fail(args[0], f"invalid {name} literal {text!r}: {problem}")
        if name in ("matches", "glob") and len(operands) == 2:
            text = _string_literal(operands[1])
            if text is not None:
                try:
                    (functions.matches if name == "matches" else functions.glob)("", text)
                except ValueError as exc:
                    self.fail(operands[1], str(exc))


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


def check_expression(
    text: str,
    names: Mapping[str, Shape],
    *,
    hint: Callable[[str], str] = lambda name: "",
    literal: Callable[[str, str], str] = lambda function, text: "",
) -> Checked:
    """Parse ``text`` and check it against the known ``names``. Raises CompileError.

    ``literal(function, text)`` says what is wrong with a constant ``timestamp``/``duration``
    argument for the engine that will run it ("" when nothing is).
    """
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CompileError(
            [CelIssue(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")]
        )
    if not text.strip():
        raise CompileError([CelIssue("expression is empty")])
    try:
        with _PARSE_LOCK:
            tree = PARSER.parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        issue = CelIssue(_syntax_message(exc), exc.line or 1, exc.column or 1)
        raise CompileError([issue]) from None
    except RecursionError:
        raise CompileError([CelIssue("expression is nested too deeply")]) from None
    checker = _Checker(names, hint, literal)
    try:
        _fill_positions(tree, text)
        checker.visit(tree, {})
    except RecursionError:
        raise CompileError([CelIssue("expression is nested too deeply")]) from None
    if checker.issues:
        raise CompileError(checker.issues)
    used = frozenset(
        str(t.children[0]) for t in tree.iter_subtrees() if t.data in ("ident", "dot_ident")
    ) & frozenset(names)
    return Checked(text=text, tree=tree, names=used)
