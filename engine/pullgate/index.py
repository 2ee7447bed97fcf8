"""Select candidate policies by the literal path prefix of their image globs.

Each glob is filed under its leading literal segments (``ghcr.io/acme/*`` under
``ghcr.io`` → ``acme``). Looking a name up walks its own segments, so the work grows with the
depth of the name and the number of globs that could match it, never with the size of the set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["PrefixIndex"]

T = TypeVar("T")


@dataclass(slots=True)
class _Node(Generic[T]):
    items: list[T] = field(default_factory=list)
    children: dict[str, _Node[T]] = field(default_factory=dict)


class PrefixIndex(Generic[T]):
    """A trie of path segments; built once, then only read (safe to share between threads)."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._size = 0

    def add(self, prefix: Sequence[str], item: T) -> None:
        node = self._root
        for segment in prefix:
            node = node.children.setdefault(segment, _Node())
        node.items.append(item)
        self._size += 1

    def candidates(self, name: str) -> list[T]:
        """Every item filed under a prefix of ``name``'s segments (they still need matching)."""
        node = self._root
        found = list(node.items)
        for segment in name.split("/"):
            child = node.children.get(segment)
            if child is None:
                break
            node = child
            found.extend(node.items)
        return found

    def __len__(self) -> int:
        return self._size
