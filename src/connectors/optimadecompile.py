"""The neutral filter tree compiled to OPTIMADE filter text, a pure function for tests.

OPTIMADE logic is two-valued: a comparison on an unknown (null or missing) value is false, so
``NOT x > 1`` would match rows where ``x`` is unknown. The gateway's logic is Kleene's, as SQL
has it. ``compile_optimade`` pushes every ``NOT`` down to the comparisons and negates them
(``NOT x > 1`` becomes ``x <= 1``, ``NOT x CONTAINS "a"`` becomes
``(x IS KNOWN AND NOT x CONTAINS "a")``), which gives the same rows as SQL on a conforming
provider.
"""

from __future__ import annotations

import datetime as dt
import re

from connectors.errors import FilterError
from connectors.filterparser import unparse_value
from connectors.filters import And, Compare, CompareOp, Filter, Known, Match, Not, Or

__all__ = ["IDENTIFIER", "compile_optimade"]

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_NEGATED = {
    CompareOp.EQ: CompareOp.NE,
    CompareOp.NE: CompareOp.EQ,
    CompareOp.LT: CompareOp.GE,
    CompareOp.LE: CompareOp.GT,
    CompareOp.GT: CompareOp.LE,
    CompareOp.GE: CompareOp.LT,
}


def _rfc3339(field: str, value: str) -> str:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{value!r} for {field!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return moment.strftime(pattern)


def _name(field: str) -> str:
    if not IDENTIFIER.match(field):
        raise FilterError(f"{field!r} cannot be named in an OPTIMADE filter (lower-case only)")
    return field


def _value(node: Compare | Match, timestamps: frozenset[str]) -> str:
    if node.field in timestamps and isinstance(node.value, str):
        return unparse_value(_rfc3339(node.field, node.value))
    return unparse_value(node.value)


def _join(parts: list[tuple[str, bool]], word: str) -> tuple[str, bool]:
    # Each part is (text, atomic); compound parts are parenthesised so grouping survives.
    if len(parts) == 1:
        return parts[0]
    return f" {word} ".join(t if atomic else f"({t})" for t, atomic in parts), False


def _holds(node: Filter, ts: frozenset[str]) -> tuple[str, bool]:
    """Text true exactly where ``node`` is true (not unknown) under Kleene logic."""
    if isinstance(node, And):
        if not node.items:
            return "id IS KNOWN", True  # OPTIMADE has no TRUE literal; every entry has an id
        return _join([_holds(i, ts) for i in node.items], "AND")
    if isinstance(node, Or):
        if not node.items:
            return "id IS UNKNOWN", True
        return _join([_holds(i, ts) for i in node.items], "OR")
    if isinstance(node, Not):
        return _fails(node.item, ts)
    field = _name(node.field)
    if isinstance(node, Known):
        return f"{field} IS {'KNOWN' if node.known else 'UNKNOWN'}", True
    return f"{field} {node.op.value} {_value(node, ts)}", True  # Compare or Match


def _fails(node: Filter, ts: frozenset[str]) -> tuple[str, bool]:
    """Text true exactly where ``node`` is false (not unknown) under Kleene logic."""
    if isinstance(node, And):
        return _holds(Or(tuple(Not(i) for i in node.items)), ts)
    if isinstance(node, Or):
        return _holds(And(tuple(Not(i) for i in node.items)), ts)
    if isinstance(node, Not):
        return _holds(node.item, ts)
    if isinstance(node, Known):
        return _holds(Known(node.field, not node.known), ts)
    if isinstance(node, Compare):
        # On known values the order is total, so the negated operator is the exact complement,
        # and it is false on unknown values just as the Kleene NOT is.
        return _holds(Compare(node.field, _NEGATED[node.op], node.value), ts)
    field = _name(node.field)
    return f"{field} IS KNOWN AND NOT {field} {node.op.value} {_value(node, ts)}", False


def compile_optimade(node: Filter, timestamps: frozenset[str] = frozenset()) -> str:
    """OPTIMADE filter text selecting the rows where ``node`` is true (Kleene, as in SQL)."""
    return _holds(node, frozenset(timestamps))[0]
