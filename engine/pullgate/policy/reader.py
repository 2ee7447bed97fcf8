"""Typed accessors over located YAML nodes that record issues instead of raising.

Shared by policy documents and the daemon config, so both report errors the same way.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable

import re2

from ..globs import Glob, GlobError, compile_glob
from .errors import Issue, Mark
from .model import Expr
from .source import Node

__all__ = ["DNS_LABEL", "FileReader", "Reader", "suggest"]

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False

# Reads a file a policy names: (its bytes, its absolute path), or None after reporting why not.
FileReader = Callable[[str, Mark], tuple[bytes, str] | None]


def _no_files(name: str, mark: Mark) -> tuple[bytes, str] | None:
    raise ValueError("this document cannot refer to files")


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Reader:
    """Typed accessors over nodes that record an issue instead of raising."""

    def __init__(self, read_file: FileReader = _no_files) -> None:
        self.issues: list[Issue] = []
        self.read_file = read_file

    def fail(self, mark: Mark, message: str) -> None:
        self.issues.append(Issue(mark, message))

    def mapping(
        self,
        node: Node,
        what: str,
        *,
        allowed: Iterable[str],
        required: Iterable[str] = (),
    ) -> dict[str, Node] | None:
        if node.invalid:
            return None
        if not isinstance(node.value, dict):
            self.fail(node.mark, f"{what} must be a mapping, got {node.type_name}")
            return None
        allowed = tuple(allowed)
        for key in node.value:
            if key not in allowed:
                hint = suggest(key, allowed) or f"; allowed keys: {', '.join(allowed)}"
                self.fail(node.key_marks[key], f"unknown key {key!r} in {what}{hint}")
        for key in required:
            if key not in node.value:
                self.fail(node.mark, f"{what} is missing the required key {key!r}")
        return {k: v for k, v in node.value.items() if k in allowed}

    def string(self, node: Node, what: str, *, allow_empty: bool = False) -> str | None:
        if node.invalid:
            return None
        if not isinstance(node.value, str):
            quote = " (quote it)" if isinstance(node.value, bool | int | float) else ""
            self.fail(node.mark, f"{what} must be a string, got {node.type_name}{quote}")
            return None
        if not allow_empty and not node.value.strip():
            self.fail(node.mark, f"{what} must not be empty")
            return None
        return node.value

    def choice(self, node: Node, what: str, choices: Iterable[str]) -> str | None:
        choices = tuple(choices)
        if isinstance(node.value, bool | int | float):
            self.fail(
                node.mark,
                f"{what} must be one of {', '.join(choices)}, got {node.type_name} "
                "(YAML reads unquoted yes/no/on/off and numbers that way; quote the value)",
            )
            return None
        value = self.string(node, what)
        if value is not None and value not in choices:
            self.fail(
                node.mark,
                f"{what} must be one of {', '.join(choices)}, "
                f"got {value!r}{suggest(value, choices)}",
            )
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        if node.invalid:
            return None
        if not isinstance(node.value, bool):
            self.fail(node.mark, f"{what} must be true or false, got {node.type_name}")
            return None
        return node.value

    def integer(self, node: Node, what: str) -> int | None:
        if node.invalid:
            return None
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            self.fail(node.mark, f"{what} must be an integer, got {node.type_name}")
            return None
        return node.value

    def items(self, node: Node, what: str, *, non_empty: bool = False) -> list[Node]:
        if node.invalid:
            return []
        if not isinstance(node.value, list):
            self.fail(node.mark, f"{what} must be a list, got {node.type_name}")
            return []
        if non_empty and not node.value:
            self.fail(node.mark, f"{what} must list at least one entry")
        return node.value

    def strings(self, node: Node, what: str, *, non_empty: bool = False) -> list[tuple[str, Node]]:
        out = []
        for i, item in enumerate(self.items(node, what, non_empty=non_empty)):
            value = self.string(item, f"{what}[{i}]")
            if value is not None:
                out.append((value, item))
        return out

    def string_map(self, node: Node, what: str) -> dict[str, str]:
        if node.invalid:
            return {}
        if not isinstance(node.value, dict):
            self.fail(node.mark, f"{what} must be a mapping of strings, got {node.type_name}")
            return {}
        out = {}
        for key, value in node.value.items():
            text = self.string(value, f"{what}.{key}", allow_empty=True)
            if text is not None:
                out[key] = text
        return out

    def name(self, node: Node, what: str) -> str | None:
        value = self.string(node, what)
        if value is not None and not DNS_LABEL.fullmatch(value):
            self.fail(
                node.mark,
                f"{what} {value!r} must be a DNS-1123 label: lower-case letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters",
            )
            return None
        return value

    def expr(self, node: Node, what: str) -> Expr | None:
        text = self.string(node, what)
        if text is None:
            return None
        return Expr(text=text, mark=node.mark, source=node.source)

    def globs(
        self, node: Node, what: str, kind: str, *, non_empty: bool = False
    ) -> tuple[Glob, ...]:
        out = []
        for pattern, item in self.strings(node, what, non_empty=non_empty):
            try:
                out.append(compile_glob(pattern, kind=kind))
            except GlobError as exc:
                self.fail(item.mark, str(exc))
        return tuple(out)

    def regexp(self, node: Node, what: str) -> str | None:
        pattern = self.string(node, what)
        if pattern is None:
            return None
        try:
            re2.compile(pattern, _RE2_OPTIONS)
        except re2.error as exc:
            detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
            self.fail(node.mark, f"{what} is not a valid RE2 regular expression: {detail}")
            return None
        return pattern

    def pem(
        self, fields: dict[str, Node], owner: Node, what: str, inline_key: str
    ) -> tuple[bytes, Node] | None:
        """An inline PEM under ``inline_key`` or a file under ``path``: exactly one of them."""
        inline, path = fields.get(inline_key), fields.get("path")
        if (inline is None) == (path is None):
            self.fail(
                owner.mark, f"{what} needs exactly one of {inline_key!r} (inline PEM) or 'path'"
            )
            return None
        if inline is not None:
            text = self.string(inline, f"{what}.{inline_key}")
            return (text.encode(), inline) if text is not None else None
        assert path is not None
        file_name = self.string(path, f"{what}.path")
        if file_name is None:
            return None
        found = self.read_file(file_name, path.mark)
        return (found[0], path) if found is not None else None
