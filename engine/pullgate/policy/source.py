"""YAML documents as trees of located nodes, so every later error can name FILE:LINE:COL.

Only the YAML core schema is accepted (strings, numbers, booleans, null, sequences, mappings).
Any other tag is refused before a single object is constructed, duplicate keys are errors
instead of silently keeping the last one, and alias expansion is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from .errors import Issue, Mark

__all__ = ["Node", "Scalar", "parse_documents"]

MAX_NODES_PER_FILE = 200_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
    dict: "a mapping",
    list: "a list",
}

Scalar = str | int | float | bool | None


@dataclass(slots=True)
class Node:
    """A YAML node: ``value`` is a scalar, ``list[Node]`` or ``dict[str, Node]``."""

    value: Scalar | list[Node] | dict[str, Node]
    mark: Mark
    style: str = ""  # scalar style: "" plain, '"', "'", "|", ">"
    indent: int = 0  # block scalars: the indentation of their first content line
    key_marks: dict[str, Mark] = field(default_factory=dict)

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(type(self.value), type(self.value).__name__)


class _TooLarge(Exception):
    pass


class _Converter:
    def __init__(self, display: str, lines: list[str]) -> None:
        self.display = display
        self.lines = lines
        self.issues: list[Issue] = []
        self.constructor = SafeConstructor()
        self.count = 0

    def mark(self, node: yaml.Node) -> Mark:
        m = node.start_mark
        return Mark(self.display, m.line + 1, m.column + 1)

    def convert(self, node: yaml.Node) -> Node:
        self.count += 1
        if self.count > MAX_NODES_PER_FILE:
            raise _TooLarge
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node)
        if isinstance(node, yaml.SequenceNode):
            return Node([self.convert(item) for item in node.value], self.mark(node))
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Node:
        mark = self.mark(node)
        if node.tag not in _SCALAR_TAGS:
            self.issues.append(
                Issue(mark, f"YAML tag {node.tag!r} is not allowed; policies hold plain data only")
            )
            return Node(None, mark)
        try:
            value = self.constructor.construct_object(node)
        except ConstructorError as exc:
            self.issues.append(Issue(mark, f"bad YAML value: {exc.problem}"))
            return Node(None, mark)
        style = getattr(node, "style", None) or ""
        indent = 0
        if style in ("|", ">") and node.start_mark.line + 1 < len(self.lines):
            first = self.lines[node.start_mark.line + 1]
            indent = len(first) - len(first.lstrip(" "))
        return Node(value, mark, style=style, indent=indent)

    def _mapping(self, node: yaml.MappingNode) -> Node:
        out: dict[str, Node] = {}
        key_marks: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            key_mark = self.mark(key_node)
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.issues.append(Issue(key_mark, "YAML merge keys ('<<') are not supported"))
                continue
            key = self._scalar(key_node).value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.issues.append(Issue(key_mark, f"mapping keys must be strings, got {key!r}"))
                continue
            if key in out:
                first = key_marks[key]
                self.issues.append(
                    Issue(
                        key_mark, f"duplicate key {key!r} (first at line {first.line}); remove one"
                    )
                )
                continue
            key_marks[key] = key_mark
            out[key] = self.convert(value_node)
        return Node(out, self.mark(node), key_marks=key_marks)


def parse_documents(text: str, display: str) -> tuple[list[Node], list[Issue]]:
    """Parse every YAML document of a file. Empty documents are dropped.

    Returns the documents and the issues found; a file with a syntax error yields no documents.
    """
    converter = _Converter(display, text.splitlines())
    docs: list[Node] = []
    try:
        for doc in _compose_all(text):
            if doc is None:
                continue
            docs.append(converter.convert(doc))
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark
        where = Mark(display, m.line + 1, m.column + 1) if m else Mark(display, 1, 1)
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{problem} ({exc.context})"
        return [], [Issue(where, f"YAML syntax error: {problem}")]
    except yaml.YAMLError as exc:
        return [], [Issue(Mark(display, 1, 1), f"YAML error: {exc}")]
    except _TooLarge:
        return [], [
            Issue(
                Mark(display, 1, 1),
                f"more than {MAX_NODES_PER_FILE} YAML nodes (aliases included); split the file",
            )
        ]
    return docs, converter.issues


def _compose_all(text: str) -> Iterator[yaml.Node | None]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            yield loader.get_node()
    finally:
        loader.dispose()
