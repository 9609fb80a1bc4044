"""compile_sql and compile_count, inspected as SQL text and parameters without a store."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from connectors.filterparser import parse
from connectors.query import Mask, MaskKind, Query
from connectors.sqlcompile import compile_count, compile_sql
from connectors.sqlreaders import render_mysql

TABLE = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("i", sa.Integer),
    sa.Column("f", sa.Float),
    sa.Column("s", sa.String(50)),
    sa.Column("d", sa.DateTime),
)
PG = postgresql.dialect(paramstyle="numeric_dollar")
SQLITE = sqlite.dialect(paramstyle="qmark")


def compiled(query: Query, dialect: sa.Dialect) -> tuple[str, list[object]]:
    """SQL text and positional parameters."""
    done = compile_sql(query, TABLE).compile(dialect=dialect)
    return str(done), [done.params[k] for k in done.positiontup or []]


def test_projection_order_and_masks() -> None:
    """Columns come in query order; NULL is typed, REDACT a constant, HASH reads the value."""
    query = Query(
        "t",
        ("s", "i", "f", "d"),
        masks={"i": Mask(MaskKind.NULL), "f": Mask(MaskKind.REDACT), "d": Mask(MaskKind.HASH)},
    )
    sql, params = compiled(query, PG)
    assert sql.startswith(
        "SELECT t.s AS s, CAST(NULL AS INTEGER) AS i, '[redacted]' AS f, t.d AS d"
    )
    assert params == []


def test_values_are_bound_never_inlined() -> None:
    """Filter values travel as parameters ($n on PostgreSQL, ? on SQLite)."""
    query = Query("t", ("i",), parse('s = "x\'; DROP TABLE t; --" AND i > 2.5'))
    sql, params = compiled(query, PG)
    assert "DROP" not in sql and "$1" in sql and "$2" in sql
    assert params == ["x'; DROP TABLE t; --", 2.5]
    sql, params = compiled(query, SQLITE)
    assert "DROP" not in sql and sql.count("?") == 2


def test_float_against_integer_column_is_not_truncated() -> None:
    """i > 2.5 keeps 2.5 (the bound type follows the value, not the column)."""
    query = Query("t", ("i",), parse("i > 2.5"))
    assert "t.i > 2.5" in render_mysql(compile_sql(query, TABLE))


def test_string_matches_escape_wildcards() -> None:
    """% and _ in CONTAINS/STARTS/ENDS are escaped for LIKE."""
    query = Query("t", ("s",), parse('s CONTAINS "5%_x"'))
    sql, params = compiled(query, PG)
    assert "LIKE '%' || $1::VARCHAR || '%' ESCAPE '/'" in sql
    assert params == ["5/%/_x"]


def test_case_sensitive_text_per_dialect() -> None:
    """PostgreSQL uses COLLATE "C", MariaDB a NO PAD binary collation, SQLite instr/substr."""
    query = Query("t", ("s",), parse('s = "A" OR s CONTAINS "b"'))
    pg, _ = compiled(query, PG)
    assert '(t.s COLLATE "C") = $1' in pg
    maria = render_mysql(compile_sql(query, TABLE), mariadb=True)
    assert "CONVERT(t.s USING utf8mb4) COLLATE utf8mb4_nopad_bin) = 'A'" in maria
    lite, _ = compiled(query, SQLITE)
    assert "instr(t.s, ?)" in lite and "LIKE" not in lite


def test_not_keeps_null_unknown() -> None:
    """NOT (i > 5) compiles to a comparison that is NULL, not true, when i is NULL."""
    sql, _ = compiled(Query("t", ("i",), parse("NOT i > 5")), PG)
    assert "WHERE t.i <= $1" in sql or "WHERE NOT (t.i > $1)" in sql
    assert "IS NULL" not in sql


def test_order_limit_offset_and_nulls_last() -> None:
    """Order keys put NULLs last, emulated on MySQL; limit and offset are applied."""
    query = Query("t", ("i",), order_by=(("s", True), ("i", False)), limit=10, offset=5)
    pg, params = compiled(query, PG)
    assert 'ORDER BY (t.s COLLATE "C") DESC NULLS LAST, t.i ASC NULLS LAST' in pg
    assert params == [10, 5]
    maria = render_mysql(compile_sql(query, TABLE))
    assert "t.i IS NULL, t.i ASC" in maria and "LIMIT 5, 10" in maria


def test_mysql_literals_escape_quotes_and_backslashes() -> None:
    """The MySQL rendering escapes ' and \\ and keeps % single."""
    query = Query("t", ("i",), parse('s = "a\'b\\\\c%"'))
    assert "'a''b\\\\c%'" in render_mysql(compile_sql(query, TABLE))
    assert "'a''b\\c%'" in render_mysql(compile_sql(query, TABLE), backslash_escapes=False)


def test_timestamps_compare_as_timestamps() -> None:
    """ISO text against a DATETIME column is bound as a datetime."""
    _, params = compiled(Query("t", ("i",), parse('d >= "2024-05-01T12:00:00"')), PG)
    assert str(params[0]) == "2024-05-01 12:00:00"


def test_count_respects_paging() -> None:
    """compile_count counts the filtered rows, paged through a subquery when paged."""
    plain = str(compile_count(Query("t", ("i",), parse("i > 1")), TABLE).compile(dialect=PG))
    assert plain.startswith("SELECT count(*)") and "LIMIT" not in plain
    paged = compile_count(Query("t", ("i",), limit=3, offset=1), TABLE).compile(dialect=PG)
    assert "LIMIT" in str(paged) and "AS paged" in str(paged)
