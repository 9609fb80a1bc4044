"""The compiled query for Spark and for Trino, read back as each engine's SQL without a server.

Spark: the text compile_spark sends, with its named parameters. Trino: the same Select that
``compile_sql`` builds, rendered by the ``trino`` SQLAlchemy dialect, and the parameters as the
trino DBAPI binds them (``EXECUTE IMMEDIATE '...' USING ...``); both parsed back with sqlglot's
dialect of the engine, and their structure checked: projection and masks, the user's filter and
the policy's row rule, order with NULLs last, paging.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
import sqlglot
import sqlglot.expressions as exp
from trino.dbapi import Cursor
from trino.sqlalchemy.dialect import TrinoDialect

from connectors.filterparser import parse
from connectors.filters import And, Compare, CompareOp
from connectors.query import Mask, MaskKind, Query
from connectors.sparkcompile import compile_spark, compile_spark_count, spark_table
from connectors.sqlcompile import compile_count, compile_sql

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("alloy", pa.string()),
        ("strength", pa.float64()),
        ("operator", pa.string()),
        ("year", pa.int64()),
        ("tested", pa.timestamp("us", tz="UTC")),
        ("made", pa.timestamp("us")),
        ("ok", pa.bool_()),
    ]
)
TABLE = spark_table("lake.alloys", SCHEMA)
TRINO = TrinoDialect(paramstyle="qmark")  # the trino DBAPI's own paramstyle
ROW_RULE = parse("year >= 2020")  # a policy's row rule, ANDed with the user's filter


def governed(user_filter: str | None, **kw: Any) -> Query:
    """A query as the gateway builds it: the user's filter AND the row rule."""
    node = ROW_RULE if user_filter is None else And((parse(user_filter), ROW_RULE))
    return Query("lake.alloys", kw.pop("columns", ("id", "alloy", "strength")), node, **kw)


QUERIES = {
    "columns and row rule": governed(None, columns=("alloy", "year")),
    "masks": governed(
        "strength > 100",
        columns=("id", "operator", "strength", "made", "ok"),
        masks={
            "operator": Mask(MaskKind.NULL),
            "strength": Mask(MaskKind.REDACT),
            "made": Mask(MaskKind.NULL),
            "ok": Mask(MaskKind.HASH, b"k" * 16),
        },
    ),
    "string matches": governed(
        'alloy STARTS "Ni_" OR (alloy CONTAINS "50%" AND NOT alloy ENDS "\'x")'
    ),
    "null tests and times": governed(
        'operator IS UNKNOWN OR tested > "2024-01-02T03:04:05+00:00"', columns=("id",)
    ),
    "order and paging": governed(
        "strength <= 2.5", order_by=(("alloy", True), ("id", False)), limit=10, offset=20
    ),
    "offset only": governed(None, columns=("id",), offset=5),
}


def trino_sql(query: Query, count: bool = False) -> tuple[str, list[Any]]:
    """Trino SQL text with ``?`` markers, and the parameters in order."""
    stmt = (compile_count if count else compile_sql)(query, TABLE)
    done = stmt.compile(dialect=TRINO)
    return str(done), [done.params[k] for k in done.positiontup or []]


def trino_literal(value: Any) -> str:
    """A parameter as the trino DBAPI writes it into ``EXECUTE ... USING``."""
    return str(Cursor._format_prepared_param(None, value))  # type: ignore[arg-type]


def bound(sql: str, params: list[Any]) -> str:
    """``sql`` with each ``?`` replaced by its parameter, as Trino binds it."""
    parts = sql.split("?")
    assert len(parts) == len(params) + 1, "a ? outside a parameter position"
    out = parts[0]
    for value, rest in zip(params, parts[1:], strict=True):
        out += trino_literal(value) + rest
    return out


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_trino_parses_the_compiled_query(name: str) -> None:
    """The statement and the bound statement are valid Trino SQL, and so is the count."""
    sql, params = trino_sql(QUERIES[name])
    for text in (sql, bound(sql, params)):
        sqlglot.parse_one(text, read="trino", error_level=sqlglot.ErrorLevel.RAISE)
    count, count_params = trino_sql(QUERIES[name], count=True)
    tree = sqlglot.parse_one(bound(count, count_params), read="trino")
    assert isinstance(tree.selects[0].this, exp.Count)


def test_trino_projection_and_masks() -> None:
    """Columns in query order; NULL masks typed in Trino's names; REDACT a constant."""
    sql, params = trino_sql(QUERIES["masks"])
    tree = sqlglot.parse_one(bound(sql, params), read="trino")
    assert [s.alias_or_name for s in tree.selects] == ["id", "operator", "strength", "made", "ok"]
    nulls = {s.alias: s.this for s in tree.selects if isinstance(s.this, exp.Cast)}
    assert {k: v.to.sql(dialect="trino") for k, v in nulls.items()} == {
        "operator": "VARCHAR",
        "made": "TIMESTAMP",
    }
    assert all(isinstance(v.this, exp.Null) for v in nulls.values())
    redacted = tree.selects[2].this
    assert isinstance(redacted, exp.Literal) and redacted.this == "[redacted]"
    assert isinstance(tree.selects[4].this, exp.Column)  # HASH reads the value; Python hashes


def test_trino_where_holds_the_filter_and_the_row_rule() -> None:
    """The row rule and the user's filter are ANDed in the store's WHERE; values are bound."""
    sql, params = trino_sql(QUERIES["masks"])
    assert params == [100, 2020]
    assert "100" not in sql and "2020" not in sql
    where = sqlglot.parse_one(bound(sql, params), read="trino").args["where"].this
    assert isinstance(where, exp.And)
    compared = {(type(c).__name__, c.this.name, c.expression.sql()) for c in where.flatten()}
    assert compared == {("GT", "strength", "100"), ("GTE", "year", "2020")}


def test_trino_string_matches_escape_wildcards() -> None:
    """CONTAINS/STARTS/ENDS are LIKE with '/' escaping % and _; quotes stay in the value."""
    sql, params = trino_sql(QUERIES["string matches"])
    assert params == ["Ni/_", "50/%", "'x", 2020]
    tree = sqlglot.parse_one(bound(sql, params), read="trino")
    escapes = list(tree.find_all(exp.Escape))
    assert len(escapes) == 3 and {e.expression.this for e in escapes} == {"/"}
    assert "'''x'" in bound(sql, params)  # a quote inside a value is doubled by the binding


def test_trino_times_bind_as_timestamps() -> None:
    """A time value binds as a TIMESTAMP literal, not a string compared with a timestamp."""
    sql, params = trino_sql(QUERIES["null tests and times"])
    assert isinstance(params[0], dt.datetime)
    tree = sqlglot.parse_one(bound(sql, params), read="trino")
    assert tree.find(exp.Is) is not None  # IS NULL
    stamps = [c for c in tree.find_all(exp.Cast) if c.to.is_type("timestamp", "timestamptz")]
    assert stamps, bound(sql, params)


def test_trino_order_and_paging() -> None:
    """ORDER BY ... NULLS LAST in both directions, OFFSET before LIMIT as Trino wants it."""
    sql, params = trino_sql(QUERIES["order and paging"])
    assert sql.index("OFFSET") < sql.index("LIMIT")
    tree = sqlglot.parse_one(bound(sql, params), read="trino")
    keys = [
        (o.this.name, bool(o.args.get("desc")), o.args.get("nulls_first"))
        for o in tree.args["order"].expressions
    ]
    assert keys == [("alloy", True, False), ("id", False, False)]
    assert tree.args["limit"].expression.sql() == "10"
    assert tree.args["offset"].expression.sql() == "20"


def spark_tree(query: Query, count: bool = False) -> tuple[exp.Expression, str, dict[str, Any]]:
    """The Spark SQL text, parsed, with its parameters."""
    sql, args = (compile_spark_count if count else compile_spark)(query, TABLE)
    return sqlglot.parse_one(sql, read="spark", error_level=sqlglot.ErrorLevel.RAISE), sql, args


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_spark_sql_parses_and_binds_every_value(name: str) -> None:
    """Spark SQL with backticked names and named markers; every marker has its value."""
    for count in (False, True):
        tree, sql, args = spark_tree(QUERIES[name], count)
        markers = {p.name for p in tree.find_all(exp.Placeholder)}
        assert markers == set(args)
        assert "`lake`.`alloys`" in sql


def test_spark_types_and_paging() -> None:
    """Casts use Spark's type names; OFFSET stands alone (no LIMIT -1)."""
    _, sql, _ = spark_tree(QUERIES["masks"])
    assert "CAST(NULL AS STRING) AS `operator`" in sql
    assert "CAST(NULL AS TIMESTAMP_NTZ) AS `made`" in sql
    _, sql, args = spark_tree(QUERIES["offset only"])
    assert "LIMIT" not in sql and "OFFSET :" in sql and 5 in args.values()


def test_spark_quotes_hostile_names() -> None:
    """A column name with a backtick and spaces is one quoted identifier."""
    table = spark_table("t", pa.schema([("we`ird name", pa.int64())]))
    query = Query("t", ("we`ird name",), Compare("we`ird name", CompareOp.GT, 1))
    sql, _ = compile_spark(query, table)
    assert "`we``ird name`" in sql
    tree = sqlglot.parse_one(sql, read="spark")
    assert {c.name for c in tree.find_all(exp.Column)} == {"we`ird name"}
