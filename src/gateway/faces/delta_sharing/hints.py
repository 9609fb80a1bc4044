"""Delta Sharing's predicate hints as matgate filters, pushed into the slice's store query.

Hints are best effort by the protocol: a SQL hint (``predicateHints``) that does not parse, or
names a column the dataset lacks, is skipped on its own; a ``jsonPredicateHints`` tree with any
such fault is skipped whole. What is kept is exact, so the file holds the rows that match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.datasets import ColumnType
from connectors.errors import FilterError
from connectors.filterparser import check
from connectors.filters import And, Compare, CompareOp, Filter, Known, Not, Or, Value, all_of

__all__ = ["from_json", "from_sql", "hints_filter"]

_SQL_OPS = {
    "=": CompareOp.EQ,
    "<>": CompareOp.NE,
    "!=": CompareOp.NE,
    "<": CompareOp.LT,
    "<=": CompareOp.LE,
    ">": CompareOp.GT,
    ">=": CompareOp.GE,
}
_FLIP = {
    CompareOp.EQ: CompareOp.EQ,
    CompareOp.NE: CompareOp.NE,
    CompareOp.LT: CompareOp.GT,
    CompareOp.LE: CompareOp.GE,
    CompareOp.GT: CompareOp.LT,
    CompareOp.GE: CompareOp.LE,
}
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_LITERAL = r"'(?:[^']|'')*'|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false"
_OP = r"<>|!=|<=|>=|=|<|>"
_COL_OP_LIT = re.compile(rf"^\s*`?({_IDENT})`?\s*({_OP})\s*({_LITERAL})\s*$", re.IGNORECASE)
_LIT_OP_COL = re.compile(rf"^\s*({_LITERAL})\s*({_OP})\s*`?({_IDENT})`?\s*$", re.IGNORECASE)
_NULL = re.compile(rf"^\s*`?({_IDENT})`?\s+IS\s+(NOT\s+)?NULL\s*$", re.IGNORECASE)
_JSON_OPS = {
    "equal": CompareOp.EQ,
    "lessThan": CompareOp.LT,
    "lessThanOrEqual": CompareOp.LE,
    "greaterThan": CompareOp.GT,
    "greaterThanOrEqual": CompareOp.GE,
}
_MAX_JSON_DEPTH = 32


class _Skip(ValueError):
    """A hint that cannot be honoured exactly; the protocol lets the server skip it."""


def _literal(text: str) -> Value:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return float(text) if any(c in text for c in ".eE") else int(text)


def from_sql(hint: str) -> Filter:
    """One SQL hint (``col op literal``, ``literal op col``, ``col IS [NOT] NULL``)."""
    if m := _COL_OP_LIT.match(hint):
        return Compare(m.group(1), _SQL_OPS[m.group(2)], _literal(m.group(3)))
    if m := _LIT_OP_COL.match(hint):
        return Compare(m.group(3), _FLIP[_SQL_OPS[m.group(2)]], _literal(m.group(1)))
    if m := _NULL.match(hint):
        return Known(m.group(1), known=m.group(2) is not None)
    raise _Skip(f"unsupported SQL hint {hint!r}")


def from_json(text: str) -> Filter:
    """A ``jsonPredicateHints`` tree."""
    try:
        tree = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise _Skip("jsonPredicateHints is not JSON") from None
    return _node(tree, 0)


def _node(node: Any, depth: int) -> Filter:
    if depth > _MAX_JSON_DEPTH or not isinstance(node, dict):
        raise _Skip("malformed predicate")
    op = node.get("op")
    children = node.get("children") or []
    if not isinstance(children, list):
        raise _Skip("malformed children")
    if op in ("and", "or"):
        if len(children) < 2:
            raise _Skip(f"{op} needs two children or more")
        items = tuple(_node(c, depth + 1) for c in children)
        return And(items) if op == "and" else Or(items)
    if op == "not" and len(children) == 1:
        return Not(_node(children[0], depth + 1))
    if op == "isNull" and len(children) == 1:
        return Known(_column(children[0]), known=False)
    if op in _JSON_OPS and len(children) == 2:
        left, right = children
        if _is(left, "column") and _is(right, "literal"):
            return Compare(_column(left), _JSON_OPS[op], _value(right))
        if _is(left, "literal") and _is(right, "column"):
            return Compare(_column(right), _FLIP[_JSON_OPS[op]], _value(left))
    raise _Skip(f"unsupported predicate op {op!r}")


def _is(node: Any, op: str) -> bool:
    return isinstance(node, dict) and node.get("op") == op


def _column(node: Any) -> str:
    name = node.get("name") if _is(node, "column") else None
    if not isinstance(name, str) or not re.fullmatch(_IDENT, name):
        raise _Skip("a column op needs a column name")
    return name


def _value(node: dict[str, Any]) -> Value:
    raw, kind = node.get("value"), node.get("valueType")
    if not isinstance(raw, str | int | float | bool):
        raise _Skip("a literal needs a value")
    try:
        if kind in ("int", "long"):
            return int(raw)
        if kind in ("float", "double"):
            return float(raw)
        if kind == "bool":
            return raw if isinstance(raw, bool) else str(raw).lower() == "true"
    except ValueError:
        raise _Skip(f"{raw!r} is not a {kind}") from None
    if kind in ("string", "date", "timestamp"):
        return str(raw)
    raise _Skip(f"unsupported valueType {kind!r}")


def hints_filter(
    sql: Sequence[str] | None,
    json_hints: str | None,
    columns: Mapping[str, ColumnType],
) -> tuple[Filter | None, list[str]]:
    """The hints that fit the dataset, as one filter, and the reasons for those skipped."""
    kept: list[Filter] = []
    skipped: list[str] = []
    candidates: list[tuple[str, Any]] = [("predicateHints", h) for h in sql or ()]
    if json_hints:
        candidates.append(("jsonPredicateHints", json_hints))
    for kind, hint in candidates:
        try:
            if not isinstance(hint, str):
                raise _Skip(f"{kind} entries must be strings")
            tree = from_sql(hint) if kind == "predicateHints" else from_json(hint)
            check(tree, columns)
        except (_Skip, FilterError, ValueError) as exc:
            skipped.append(f"{kind}: {exc}")
            continue
        kept.append(tree)
    return all_of(*kept), skipped
