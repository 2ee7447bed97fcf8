"""The cel-python engine (the default): an interpreter over the lark parse tree.

Programs are interpreted (``InterpretedRunner``): cel-python's ``CompiledRunner`` passes the
activation through module globals and gives wrong answers under threads.

Three adjustments to cel-python (pinned <0.6), each applied once at import and tested:

- ``error || error`` keeps an original error instead of a generic "no such overload", so the
  load-time probe can tell errors that depend on the data from type errors;
- the typing generics its evaluator builds only to pass to ``cast()`` are erased;
- evaluated trees skip the grammar levels that only pass a lone child's value up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import celpy
import celpy.evaluation
import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError, CELUnsupportedError, base_functions

from . import functions
from .check import Checked, Tree
from .errors import EvalError, NotABool

__all__ = ["CelPython", "from_cel", "to_cel"]

_DATA_ERRORS = (KeyError, IndexError, ValueError, ArithmeticError)


# -- functions -------------------------------------------------------------------------------


def _matches(text: Any, pattern: Any) -> celtypes.BoolType:
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise TypeError(
            f"matches(string, string), got {type(text).__name__}, {type(pattern).__name__}"
        )
    return celtypes.BoolType(functions.matches(str(text), str(pattern)))


def _glob(text: Any, pattern: Any) -> celtypes.BoolType:
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise TypeError(
            f"glob(string, string), got {type(text).__name__}, {type(pattern).__name__}"
        )
    return celtypes.BoolType(functions.glob(str(text), str(pattern)))


FUNCTION_TABLE: dict[str, Any] = {"matches": _matches, "glob": _glob}


# -- adjustments to cel-python ---------------------------------------------------------------


def _worse(x: CELEvalError, y: CELEvalError) -> CELEvalError:
    """``error || error`` is an error: keep one of the originals (cel-python would replace both
    with a generic "no such overload" and lose whether the failure depends on the data)."""
    for e in (x, y):
        cause = e.args[1] if len(e.args) > 1 else None
        if not (isinstance(cause, type) and issubclass(cause, _DATA_ERRORS)):
            return e
    return x


def _no_overload(x: Any, operator: str, y: Any) -> TypeError:
    """cel-python's own message for a non-bool operand embeds ``repr`` of an error operand,
    which dumps its parse tree, and that fails on the slimmed trees (found by fuzzing:
    ``error && 1``). This says the same without the repr."""

    def kind(v: Any) -> str:
        return "error" if isinstance(v, CELEvalError) else type(v).__name__

    return TypeError(f"no such overload: {kind(x)} {operator} {kind(y)}")


def _or(x: Any, y: Any) -> Any:
    if isinstance(x, CELEvalError) and isinstance(y, CELEvalError):
        return _worse(x, y)
    if not isinstance(x, celtypes.BoolType) and not isinstance(y, celtypes.BoolType):
        raise _no_overload(x, "||", y)
    return _LOGICAL_OR(x, y)


def _and(x: Any, y: Any) -> Any:
    if isinstance(x, CELEvalError) and isinstance(y, CELEvalError):
        return _worse(x, y)
    if not isinstance(x, celtypes.BoolType) and not isinstance(y, celtypes.BoolType):
        raise _no_overload(x, "&&", y)
    return _LOGICAL_AND(x, y)


def _keep_error_causes() -> None:
    """Make ``||``, ``&&``, ``exists`` and ``all`` keep the cause of an error.

    cel-python turns ``error || error`` into a generic "no such overload" type error, which
    would make a rule like ``a["x"] == 1 || a["y"] == 2`` look ill-typed at load (the probe
    rejects type errors) when it only depends on the data. The operators are looked up in
    ``base_functions`` and the macros call ``celtypes.logical_or/and`` directly, so both are
    replaced with versions that differ only in that case.
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
    ignores them; subscripting ``Union`` aliases hashes them through typing's cache, a quarter
    of the time of an evaluation. These names are only subscripted in ``cast`` calls at run
    time (``Sequence`` and ``Mapping``, used with ``isinstance``, are left alone).
    """
    for name in ("Tuple", "List", "Dict", "Union", "Iterable"):
        setattr(celpy.evaluation, name, _Erased())


_erase_runtime_casts()

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
    """Convert plain Python data to cel-python values."""
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


def from_cel(value: Any) -> Any:
    """cel-python values as plain Python: the inverse of :func:`to_cel` (for display)."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.BytesType):
        return bytes(value)
    if isinstance(value, celtypes.TimestampType):
        return datetime.fromtimestamp(value.timestamp(), UTC)
    if isinstance(value, celtypes.DurationType):
        return timedelta(seconds=value.total_seconds())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {from_cel(k): from_cel(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [from_cel(v) for v in value]
    return value


# -- programs --------------------------------------------------------------------------------

_ENV = celpy.Environment()
# Environment() folds in the google.protobuf wrapper types, and every evaluation re-processes
# them into a fresh activation (~80 µs). Policies never name protobuf types: drop them.
_ENV.annotations.clear()
_WS = re.compile(r"\s+")
_MISNAMED = "return error for overflow"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__.replace("Type", "").lower()


@dataclass(frozen=True, slots=True)
class CelPythonProgram:
    text: str
    names: frozenset[str]
    _runner: celpy.Runner

    def evaluate(self, activation: Any) -> bool:
        try:
            value = self._runner.evaluate(dict(activation))
        except CELEvalError as exc:
            cause = exc.args[1] if len(exc.args) > 1 else None
            data = isinstance(cause, type) and issubclass(cause, _DATA_ERRORS)
            raise EvalError(_eval_message(exc), data_dependent=data) from None
        except (CELUnsupportedError, RecursionError, ArithmeticError, ValueError, TypeError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            raise EvalError(message, data_dependent=isinstance(exc, _DATA_ERRORS)) from None
        if isinstance(value, celtypes.BoolType):
            return bool(value)
        raise NotABool(_type_name(value))

    def evaluate_value(self, activation: Any) -> Any:
        """The value of the expression, whatever its type, as plain Python (``explain.py``)."""
        try:
            value = self._runner.evaluate(dict(activation))
        except CELEvalError as exc:
            raise EvalError(_eval_message(exc), data_dependent=True) from None
        except (CELUnsupportedError, RecursionError, ArithmeticError, ValueError, TypeError) as exc:
            raise EvalError(f"{type(exc).__name__}: {exc}", data_dependent=True) from None
        if isinstance(value, CELEvalError):
            raise EvalError(_eval_message(value), data_dependent=True)
        return from_cel(value)


def _eval_message(exc: CELEvalError) -> str:
    args = exc.args
    message = str(args[0]) if args else "evaluation error"
    detail = args[2] if len(args) > 2 else None
    message = re.sub(r" \(in activation .*", "", message, flags=re.S)
    if message.startswith(_MISNAMED) and detail:
        # cel-python wraps every ValueError of a function in this misleading message.
        message, detail = str(detail[0]) if isinstance(detail, tuple) else str(detail), None
    if message in ("no such key", "no such member in mapping") and detail:
        message = f"{message}: {', '.join(repr(str(d)) for d in detail)}"
    elif message.startswith("found no matching overload") or message == "no such overload":
        types = re.findall(r"celtypes\.(\w+)Type", message)
        message = "no such overload" + (
            f" for ({', '.join(t.lower() for t in types)})" if types else ""
        )
    elif detail and isinstance(detail, tuple) and detail:
        message = f"{message}: {detail[0]}"
    return _WS.sub(" ", message)


class CelPython:
    """cel-python 0.5: pure Python, no type checker (the static check and the probe stand in)."""

    name = "cel-python"

    def check_literal(self, function: str, text: str) -> str:
        try:
            (celtypes.TimestampType if function == "timestamp" else celtypes.DurationType)(text)
        except Exception as exc:  # pendulum raises assorted parser errors
            return str(exc) or type(exc).__name__
        return ""

    def program(self, checked: Checked) -> CelPythonProgram:
        runner = _ENV.program(_slim(checked.tree), functions=FUNCTION_TABLE)
        return CelPythonProgram(text=checked.text, names=checked.names, _runner=runner)

    def convert(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {name: to_cel(value) for name, value in values.items()}

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return dict(values)
