"""The neutral filter tree every connector compiles to its own language.

A filter is an immutable tree of these nodes::

    Filter = Compare | Known | Match | And | Or | Not

Values are Python scalars (int, float, str, bool). ``parse`` (in ``connectors.filterparser``)
turns OPTIMADE filter text into a tree; ``check`` validates it against a column schema; each
connector has a pure ``compile_*`` function from a tree to its own query language.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "And",
    "Compare",
    "CompareOp",
    "Filter",
    "Known",
    "Match",
    "MatchOp",
    "Not",
    "Or",
    "Value",
    "all_of",
    "fields",
]

Value = int | float | str | bool


class CompareOp(StrEnum):
    """Comparison operators of the filter language."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


class MatchOp(StrEnum):
    """String match operators of the filter language."""

    CONTAINS = "CONTAINS"
    STARTS = "STARTS"
    ENDS = "ENDS"


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``; ``value op field`` is normalised to this form when parsed."""

    field: str
    op: CompareOp
    value: Value


@dataclass(frozen=True, slots=True)
class Known:
    """``field IS KNOWN`` (``known=True``) or ``field IS UNKNOWN`` (``known=False``)."""

    field: str
    known: bool = True


@dataclass(frozen=True, slots=True)
class Match:
    """``field CONTAINS|STARTS|ENDS "text"``, case-sensitive."""

    field: str
    op: MatchOp
    value: str


@dataclass(frozen=True, slots=True)
class And:
    """All of ``items`` hold."""

    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any of ``items`` holds."""

    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``item`` does not hold."""

    item: Filter


Filter = Compare | Known | Match | And | Or | Not


def all_of(*filters: Filter | None) -> Filter | None:
    """AND together the filters that are not None (None when none are left)."""
    kept = tuple(f for f in filters if f is not None)
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    return And(kept)


def fields(node: Filter) -> Iterator[str]:
    """Every field name the filter refers to."""
    if isinstance(node, And | Or):
        for item in node.items:
            yield from fields(item)
    elif isinstance(node, Not):
        yield from fields(node.item)
    else:
        yield node.field
