"""The neutral Query to a SQLAlchemy Select: pure, testable without a store.

Semantics shared with ``arrowcompile`` and every store:

- three-valued (Kleene) logic, as SQL has it: a comparison or match on NULL is unknown, ``NOT``
  of unknown is unknown, and a row is returned only when the whole filter is true;
- strings compare and sort by code point, case-sensitively, on every backend
  (``COLLATE "C"`` on PostgreSQL, a binary utf8mb4 collation on MySQL/MariaDB, SQLite's default);
- CONTAINS/STARTS/ENDS treat ``%`` and ``_`` as ordinary characters;
- ``order_by`` puts NULLs last in both directions.

Masks in the projection: ``NULL`` becomes a NULL of the column's type, ``REDACT`` the string
constant ``"[redacted]"`` (so the output column is a string whatever the stored type),
``HASH`` reads the stored value unchanged; the connector base hashes it on the Arrow batches.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from connectors.filters import And, CompareOp, Filter, Known, Match, MatchOp, Not, Or
from connectors.query import MaskKind, Query

__all__ = ["REDACTED", "compile_count", "compile_filter", "compile_sql"]

REDACTED = "[redacted]"
_MYSQL = ("mysql", "mariadb")


class _CodepointText(ColumnElement[Any]):
    """A string expression that compares and sorts by code point, case-sensitively."""

    inherit_cache = True
    _traverse_internals = [("element", InternalTraversal.dp_clauseelement)]

    def __init__(self, element: ColumnElement[Any]) -> None:
        self.element = element
        self.type = element.type


@compiles(_CodepointText)
def _codepoint_default(node: _CodepointText, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(node.element, **kw)


@compiles(_CodepointText, "postgresql")
def _codepoint_pg(node: _CodepointText, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(node.element, **kw)} COLLATE "C")'


def _codepoint_mysql(node: _CodepointText, compiler: SQLCompiler, **kw: Any) -> str:
    # CONVERT first, so that a latin1 column takes the utf8mb4 collation instead of failing;
    # a NO PAD binary collation, since PAD SPACE ones make 'a' equal 'a '.
    mariadb = getattr(compiler.dialect, "is_mariadb", False)
    nopad = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
    return f"(CONVERT({compiler.process(node.element, **kw)} USING utf8mb4) COLLATE {nopad})"


for _name in _MYSQL:
    compiles(_CodepointText, _name)(_codepoint_mysql)


class _StringMatch(ColumnElement[bool]):
    """``element CONTAINS|STARTS|ENDS value``, case-sensitive, wildcards taken literally."""

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [
        ("element", InternalTraversal.dp_clauseelement),
        ("match_op", InternalTraversal.dp_string),
        ("value", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, element: ColumnElement[Any], op: MatchOp, value: str) -> None:
        self.element = element
        # Not "op": ColumnElement.op() builds custom operators and must stay callable.
        self.match_op = str(op)
        self.value = sa.literal(value, sa.String())


@compiles(_StringMatch)
def _match_like(node: _StringMatch, compiler: SQLCompiler, **kw: Any) -> str:
    text = _CodepointText(node.element)
    value = node.value.value
    if node.match_op == MatchOp.CONTAINS:
        expr = text.contains(value, autoescape=True)
    elif node.match_op == MatchOp.STARTS:
        expr = text.startswith(value, autoescape=True)
    else:
        expr = text.endswith(value, autoescape=True)
    # Parenthesised: dialects without a boolean type append "= 1", and LIKE binds loosely.
    return f"({compiler.process(expr, **kw)})"


@compiles(_StringMatch, "sqlite")
def _match_sqlite(node: _StringMatch, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's LIKE ignores ASCII case; instr/substr compare exactly and propagate NULL.
    col, value = node.element, node.value
    if node.match_op == MatchOp.CONTAINS:
        expr = sa.func.instr(col, value) > 0
    elif node.match_op == MatchOp.STARTS:
        expr = sa.func.substr(col, 1, sa.func.length(value)) == value
    else:
        start = sa.func.length(col) - sa.func.length(value) + 1
        expr = sa.func.substr(col, start) == value
    return f"({compiler.process(expr, **kw)})"


class _NullsLast(ColumnElement[Any]):
    """An ORDER BY key that puts NULLs after every value, ascending or descending."""

    inherit_cache = True
    _traverse_internals = [
        ("element", InternalTraversal.dp_clauseelement),
        ("descending", InternalTraversal.dp_boolean),
    ]

    def __init__(self, element: ColumnElement[Any], descending: bool) -> None:
        self.element = element
        self.descending = descending
        self.type = element.type


@compiles(_NullsLast)
def _nulls_last_default(node: _NullsLast, compiler: SQLCompiler, **kw: Any) -> str:
    key = node.element.desc() if node.descending else node.element.asc()
    return compiler.process(key.nulls_last(), **kw)


def _nulls_last_mysql(node: _NullsLast, compiler: SQLCompiler, **kw: Any) -> str:
    # MySQL has no NULLS LAST; sorting on "IS NULL" first (false < true) does the same.
    key = node.element.desc() if node.descending else node.element.asc()
    return f"{compiler.process(node.element.is_(None), **kw)}, {compiler.process(key, **kw)}"


for _name in _MYSQL:
    compiles(_NullsLast, _name)(_nulls_last_mysql)


class _TypedNull(ColumnElement[Any]):
    """A NULL of a given column type."""

    inherit_cache = True
    _traverse_internals: list[tuple[str, Any]] = []

    def __init__(self, type_: sa.types.TypeEngine[Any]) -> None:
        self.type = type_


@compiles(_TypedNull)
def _typed_null_default(node: _TypedNull, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(sa.cast(sa.null(), node.type), **kw)


def _typed_null_mysql(node: _TypedNull, compiler: SQLCompiler, **kw: Any) -> str:
    # MySQL's CAST takes only a few target types (and a bare NULL has none, which some
    # drivers cannot read); the connector gives the column its exact type in Arrow.
    kind = node.type
    if isinstance(kind, sa.Integer | sa.Boolean):
        target = "SIGNED"
    elif isinstance(kind, sa.Float | sa.Numeric):
        target = "DOUBLE"
    elif isinstance(kind, sa.DateTime):
        target = "DATETIME"
    elif isinstance(kind, sa.Date):
        target = "DATE"
    else:
        target = "CHAR"
    return f"CAST(NULL AS {target})"


for _name in _MYSQL:
    compiles(_TypedNull, _name)(_typed_null_mysql)


def _is_text(column: sa.ColumnElement[Any]) -> bool:
    return isinstance(column.type, sa.String | sa.Enum)


def _bound(column: sa.ColumnElement[Any], value: object) -> sa.BindParameter[Any]:
    # The bound type follows the value, not the column: an INTEGER column compared with 2.5
    # must not have 2.5 rendered or sent as 2.
    if isinstance(value, bool):
        return sa.literal(value, sa.Boolean())
    if isinstance(value, int):
        return sa.literal(value, sa.BigInteger())
    if isinstance(value, float):
        return sa.literal(value, sa.Float())
    if isinstance(value, str) and isinstance(column.type, sa.DateTime):
        return sa.literal(dt.datetime.fromisoformat(value), column.type)
    if isinstance(value, str) and isinstance(column.type, sa.Date):
        return sa.literal(dt.date.fromisoformat(value), column.type)
    return sa.literal(value, sa.String())


_COMPARE = {
    CompareOp.EQ: lambda a, b: a == b,
    CompareOp.NE: lambda a, b: a != b,
    CompareOp.LT: lambda a, b: a < b,
    CompareOp.LE: lambda a, b: a <= b,
    CompareOp.GT: lambda a, b: a > b,
    CompareOp.GE: lambda a, b: a >= b,
}


def compile_filter(node: Filter, table: sa.Table) -> sa.ColumnElement[bool]:
    """The SQL boolean expression of a filter tree over ``table``."""
    if isinstance(node, And):
        return sa.and_(*(compile_filter(i, table) for i in node.items)) if node.items else sa.true()
    if isinstance(node, Or):
        return sa.or_(*(compile_filter(i, table) for i in node.items)) if node.items else sa.false()
    if isinstance(node, Not):
        return sa.not_(compile_filter(node.item, table))
    column = table.c[node.field]
    if isinstance(node, Known):
        return column.is_not(None) if node.known else column.is_(None)
    if isinstance(node, Match):
        return _StringMatch(column, node.op, node.value)
    left = _CodepointText(column) if _is_text(column) else column
    return _COMPARE[node.op](left, _bound(column, node.value))


def _projection(query: Query, table: sa.Table) -> list[sa.ColumnElement[Any]]:
    out: list[sa.ColumnElement[Any]] = []
    for name in query.columns:
        column = table.c[name]
        mask = query.masks.get(name)
        if mask is None or mask.kind is MaskKind.HASH:
            out.append(column.label(name))
        elif mask.kind is MaskKind.NULL:
            out.append(_TypedNull(column.type).label(name))
        else:
            out.append(sa.literal_column(f"'{REDACTED}'", sa.String()).label(name))
    return out


def compile_sql(query: Query, table: sa.Table) -> sa.Select[Any]:
    """The Select that runs ``query`` on ``table``, values as bound parameters."""
    stmt = sa.select(*_projection(query, table)).select_from(table)
    if query.filter is not None:
        stmt = stmt.where(compile_filter(query.filter, table))
    for name, descending in query.order_by:
        column = table.c[name]
        key = _CodepointText(column) if _is_text(column) else column
        stmt = stmt.order_by(_NullsLast(key, descending))
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    if query.offset:
        stmt = stmt.offset(query.offset)
    return stmt


def compile_count(query: Query, table: sa.Table) -> sa.Select[Any]:
    """The Select that counts the rows ``compile_sql`` would return (limit and offset included)."""
    where = compile_filter(query.filter, table) if query.filter is not None else sa.true()
    if query.limit is None and not query.offset:
        return sa.select(sa.func.count()).select_from(table).where(where)
    inner: sa.Select[Any] = (
        sa.select(sa.literal_column("1").label("one")).select_from(table).where(where)
    )
    if query.limit is not None:
        inner = inner.limit(query.limit)
    if query.offset:
        inner = inner.offset(query.offset)
    return sa.select(sa.func.count()).select_from(inner.subquery("paged"))
