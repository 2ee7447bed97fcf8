"""The cel-expr engine (optional): Google's cel-cpp through cel-expr-python.

About fifty times faster per rule than cel-python and a tenth of the memory per program.
Expressions are parsed and checked by ``check.py`` first, exactly as for cel-python, so both
engines accept the same language with the same messages; cel-cpp then compiles them again
with its own parser and type checker against the declared names.

Values keep map semantics on both engines (a missing key is an error, never a default), so
the context is passed as maps; timestamps inside maps travel as protobuf ``Timestamp``
messages, the form cel-expr-python accepts there. Evaluation errors come back as values of
type ERROR, never as exceptions: a result counts only when its type is BOOL.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import functions
from .check import Checked
from .errors import CelIssue, CompileError, EvalError, NotABool
from .shapes import Field, ListOf, MapOf, Record, Shape

__all__ = ["CelExpr", "EngineUnavailable"]

INSTALL_HINT = "install it with: pip install 'pullgate[cel-expr]'"


class EngineUnavailable(RuntimeError):
    """The engine's package is not installed."""


def _module() -> Any:
    try:
        from cel_expr_python import cel
    except ImportError as exc:
        raise EngineUnavailable(
            f"cel engine 'cel-expr' needs the cel-expr-python package ({exc}); {INSTALL_HINT}"
        ) from None
    return cel


# "ERROR: <input>:1:16: found no matching overload ..." (one per issue, with a caret line)
_ISSUE = re.compile(r"ERROR: <input>:(-?\d+):(-?\d+): (.*)")
_STATUS = re.compile(r"^[A-Z_]+: ")
_CODE_SUFFIX = re.compile(r" ?\[[A-Z_]+\]$")
# Errors that a value of another type causes; every other error depends on the values.
_TYPE_ERRORS = ("No matching overloads", "no matching overload", "Applying SELECT to non-message")


def _timestamp(value: datetime) -> Any:
    from google.protobuf import timestamp_pb2

    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def _duration(value: timedelta) -> Any:
    from google.protobuf import duration_pb2

    out = duration_pb2.Duration()
    out.FromTimedelta(value)
    return out


_AS_IS = frozenset({str, int, bool, float, bytes, type(None)})


def _plain(value: Any) -> Any:
    """``value`` as cel-expr-python takes it: timestamps and durations as protobuf messages."""
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bytes):  # subclasses, e.g. an IntEnum
        return value
    raise TypeError(f"cannot convert {kind.__name__} to CEL")


def _from_cel(value: Any) -> Any:
    """cel-expr-python's plain values as the same Python types cel-python's give."""
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, dict):
        return {_from_cel(k): _from_cel(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_from_cel(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class CelExprProgram:
    text: str
    names: frozenset[str]
    _expression: Any
    _types: Any  # cel.Type, for the result check

    def evaluate(self, activation: Any) -> bool:
        try:
            result = self._expression.eval(activation)
            kind = result.type()
        except Exception as exc:  # a value the binding cannot carry: never an allow
            raise EvalError(f"cel-expr: {exc}", data_dependent=False) from None
        if kind == self._types.BOOL:
            return bool(result.value())
        if kind == self._types.ERROR:
            message = _STATUS.sub("", str(result.value()))
            typed = any(t in message for t in _TYPE_ERRORS)
            raise EvalError(message, data_dependent=not typed)
        raise NotABool(kind.name().split("<")[0].lower())

    def evaluate_value(self, activation: Any) -> Any:
        """The value of the expression, whatever its type, as plain Python (``explain.py``)."""
        try:
            result = self._expression.eval(activation)
            kind = result.type()
            if kind != self._types.ERROR:
                return _from_cel(result.plain_value())
        except Exception as exc:  # a value the binding cannot carry
            raise EvalError(f"cel-expr: {exc}", data_dependent=True) from None
        raise EvalError(_STATUS.sub("", str(result.value())), data_dependent=True)


class CelExpr:
    """cel-cpp: compiled with a type checker, evaluated in C++."""

    name = "cel-expr"

    def __init__(self, declarations: Mapping[str, Shape]) -> None:
        cel = self._cel = _module()
        t = cel.Type
        glob = cel.FunctionDecl(
            "glob",
            [
                cel.Overload(
                    "glob_string_string", return_type=t.BOOL, parameters=[t.STRING, t.STRING]
                ),
                cel.Overload(
                    "string_glob_string",
                    return_type=t.BOOL,
                    parameters=[t.STRING, t.STRING],
                    is_member=True,
                ),
            ],
        )
        self._env = cel.NewEnv(
            variables={name: self._type(shape) for name, shape in declarations.items()},
            functions=[glob],
            function_impls={
                "glob_string_string": functions.glob,
                "string_glob_string": functions.glob,
            },
        )
        literal_env = cel.NewEnv(variables={"text": t.STRING})
        self._literals = {
            "timestamp": literal_env.compile("timestamp(text)"),
            "duration": literal_env.compile("duration(text)"),
        }
        self._lock = threading.Lock()  # compile happens at load; one at a time

    def _type(self, shape: Shape | None) -> Any:
        t = self._cel.Type
        if isinstance(shape, Field):
            return getattr(t, shape.type.upper())
        if isinstance(shape, ListOf):
            return t.List(self._type(shape.item))
        if isinstance(shape, MapOf):
            return t.Map(t.STRING, self._type(shape.value))
        if isinstance(shape, Record):
            return t.Map(t.STRING, t.DYN)  # fields of mixed types
        return t.DYN

    def check_literal(self, function: str, text: str) -> str:
        result = self._literals[function].eval(data={"text": text})
        if result.type() == self._cel.Type.ERROR:
            return _STATUS.sub("", str(result.value()))
        return ""

    def program(self, checked: Checked) -> CelExprProgram:
        try:
            with self._lock:
                expression = self._env.compile(checked.text)
        except RuntimeError as exc:
            raise CompileError(_issues(str(exc))) from None
        return CelExprProgram(
            text=checked.text, names=checked.names, _expression=expression, _types=self._cel.Type
        )

    def convert(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {name: _plain(value) for name, value in values.items()}

    def bind(self, values: Mapping[str, Any]) -> Any:
        return self._env.Activation(dict(values))


def _issues(text: str) -> list[CelIssue]:
    found = []
    for m in _ISSUE.finditer(text):
        line, column, message = int(m.group(1)), int(m.group(2)), m.group(3).strip()
        message = f"cel-expr: {_CODE_SUFFIX.sub('', message)}"
        if line < 1 or column < 1:  # "<input>:-1:-1": about the whole expression
            found.append(CelIssue(message, positioned=False))
        else:
            found.append(CelIssue(message, line, column))
    if found:
        return found
    first = text.strip().splitlines()[0] if text.strip() else "compile failed"
    message = _CODE_SUFFIX.sub("", _STATUS.sub("", first))
    return [CelIssue(f"cel-expr: {message}", positioned=False)]
