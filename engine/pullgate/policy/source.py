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
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_NULL, _TIMESTAMP = "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp"
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
    source: str = ""  # scalars: their text as written in the file, quotes and all
    key_marks: dict[str, Mark] = field(default_factory=dict)
    invalid: bool = False  # already reported: later checks stay quiet about it

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
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            expected = _MAP if isinstance(node, yaml.MappingNode) else _SEQ
            if node.tag != expected:
                return self._refuse(node)
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node)
            return Node([self.convert(item) for item in node.value], self.mark(node))
        return self._scalar(node)

    def _refuse(self, node: yaml.Node) -> Node:
        mark = self.mark(node)
        if node.tag == _TIMESTAMP:
            message = f"YAML reads {node.value!r} as a date, not a string (quote it)"
        else:
            message = f"YAML tag {node.tag!r} is not allowed; policies hold plain data only"
        self.issues.append(Issue(mark, message))
        return Node(None, mark, invalid=True)

    def _text(self, node: yaml.Node) -> str:
        """The node's text as written (lines are those of the file)."""
        start, end = node.start_mark, node.end_mark
        if start.line == end.line:
            return self.lines[start.line][start.column : end.column]
        parts = [self.lines[start.line][start.column :]]
        parts.extend(self.lines[start.line + 1 : end.line])
        if end.line < len(self.lines):
            parts.append(self.lines[end.line][: end.column])
        return "\n".join(parts)

    def _scalar(self, node: yaml.Node) -> Node:
        mark = self.mark(node)
        if node.tag not in _SCALAR_TAGS:
            return self._refuse(node)
        try:
            value = self.constructor.construct_object(node)
        except ConstructorError as exc:
            self.issues.append(Issue(mark, f"bad YAML value: {exc.problem}"))
            return Node(None, mark, invalid=True)
        except ValueError:  # Python reads no integer of more than 4300 digits
            self.issues.append(Issue(mark, "bad YAML value: a number too long to read; quote it"))
            return Node(None, mark, invalid=True)
        return Node(value, mark, source=self._text(node) if isinstance(value, str) else "")

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
            if doc is None or (isinstance(doc, yaml.ScalarNode) and doc.tag == _NULL):
                continue  # an empty document: a trailing "---", or only comments
            docs.append(converter.convert(doc))
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark
        where = Mark(display, m.line + 1, m.column + 1) if m else Mark(display, 1, 1)
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{problem} ({exc.context})"
        if m and _char_at(text, m.line, m.column) == "\t":
            problem += "; YAML does not allow tabs for indentation: use spaces"
        elif "expected key" in problem or "mapping values are not allowed" in problem:
            problem += "; check the indentation"
        return [], [Issue(where, f"YAML syntax error: {problem}")]
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, e.g. a NUL
        return [], [_reader_issue(exc, text, display)]
    except yaml.YAMLError as exc:
        return [], [Issue(Mark(display, 1, 1), f"YAML error: {exc}")]
    except _TooLarge:
        return [], [
            Issue(
                Mark(display, 1, 1),
                f"more than {MAX_NODES_PER_FILE} YAML nodes (aliases included); split the file",
            )
        ]
    except RecursionError:
        return [], [
            Issue(
                Mark(display, 1, 1),
                "YAML nested too deeply, or an alias used inside its own anchor; flatten it",
            )
        ]
    return docs, converter.issues


def _reader_issue(exc: yaml.reader.ReaderError, text: str, display: str) -> Issue:
    # libyaml counts UTF-8 bytes; the pure-Python reader counts characters.
    if _Loader is yaml.SafeLoader:
        before = text[: exc.position]
    else:
        before = text.encode("utf-8", "surrogatepass")[: exc.position].decode("utf-8", "replace")
    column = len(before) - before.rfind("\n")
    char = exc.character if isinstance(exc.character, int) else ord(exc.character)
    message = f"YAML error: character U+{char:04X} is not allowed ({exc.reason}); remove it"
    return Issue(Mark(display, before.count("\n") + 1, column), message)


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    return lines[line][column : column + 1] if line < len(lines) else ""


def _compose_all(text: str) -> Iterator[yaml.Node | None]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            yield loader.get_node()
    finally:
        loader.dispose()
