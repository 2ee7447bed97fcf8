"""What the static check knows about the context: the shape of each name's value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Field", "ListOf", "MapOf", "Record", "Shape"]


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
