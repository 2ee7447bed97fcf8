"""CEL for policies: Env → Compile (parse + check) → Program → Eval, over two engines.

``cel-python`` (the default) is pure Python; ``cel-expr`` (Google's cel-cpp, the optional
``pullgate[cel-expr]`` extra) is about fifty times faster per rule. Both see the same
language: ``check.py`` parses and checks every expression the same way first, and one
conformance table (``tests/test_cel_engines.py``) runs on both, including the cases where they
are known to differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .cache import ProgramCache
from .celexpr import CelExpr, EngineUnavailable
from .celpython import CelPython, to_cel
from .check import MAX_EXPRESSION_CHARS, Checked, check_expression
from .engine import Engine, Program
from .errors import MAX_ERROR_CHARS, CelIssue, CompileError, EvalError, NotABool
from .shapes import Field, ListOf, MapOf, Record, Shape

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "MAX_ERROR_CHARS",
    "MAX_EXPRESSION_CHARS",
    "CelIssue",
    "Checked",
    "CompileError",
    "Engine",
    "EngineUnavailable",
    "EvalError",
    "Field",
    "ListOf",
    "MapOf",
    "NotABool",
    "Program",
    "ProgramCache",
    "Record",
    "Shape",
    "compile_expression",
    "engine",
    "to_cel",
]

ENGINES = ("cel-python", "cel-expr")
DEFAULT_ENGINE = "cel-python"
_CEL_PYTHON = CelPython()


def engine(name: str, declarations: Mapping[str, Shape]) -> Engine:
    """A new engine called ``name`` for expressions over ``declarations`` (every name any
    expression may read). ValueError for an unknown name; EngineUnavailable when the engine's
    package is not installed. Engines are meant to be built once and shared."""
    if name == "cel-python":
        return _CEL_PYTHON
    if name == "cel-expr":
        return CelExpr(declarations)
    raise ValueError(f"unknown cel engine {name!r}; expected one of: {', '.join(ENGINES)}")


def compile_expression(
    text: str,
    names: Mapping[str, Shape],
    *,
    hint: Callable[[str], str] = lambda name: "",
    engine: Engine = _CEL_PYTHON,
) -> Program:
    """Parse, check against the known ``names`` and build a program. Raises CompileError."""
    checked = check_expression(text, names, hint=hint, literal=engine.check_literal)
    return engine.program(checked)
