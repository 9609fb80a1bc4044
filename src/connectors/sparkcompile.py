"""The neutral Query as Spark SQL: the SQL connector's compiler, rendered for Spark.

``compile_sql``/``compile_count`` (``connectors.sqlcompile``) build the statement; this module
only gives SQLAlchemy a Spark SQL dialect to render it with, so Spark runs exactly the
semantics every other store runs (Kleene logic, code-point string order, literal wildcards,
NULLs last, masks in the projection). What the dialect changes:

- identifiers are always quoted, with backticks (a doubled backtick inside a name);
- values stay out of the text: they are Spark's named parameter markers (``:param_1``), sent
  beside the statement, so no value is ever parsed as SQL;
- types in casts use Spark's names (``STRING``, ``DOUBLE``, ``TIMESTAMP_NTZ``).

Spark's default collation (``UTF8_BINARY``) compares strings by their UTF-8 bytes, which is
code-point order, and ``LIKE ... ESCAPE '/'`` takes the escape given, so the default renderings
of the shared constructs hold as they are.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import default
from sqlalchemy.sql import compiler

from connectors.query import Query
from connectors.sqlcompile import compile_count, compile_sql

__all__ = ["SparkDialect", "compile_spark", "compile_spark_count", "spark_table"]


class _SparkIdentifiers(compiler.IdentifierPreparer):
    def __init__(
        self,
        dialect: sa.Dialect,
        initial_quote: str = "`",
        final_quote: str | None = None,
        escape_quote: str = "`",
        quote_case_sensitive_collations: bool = True,
        omit_schema: bool = False,
    ) -> None:
        super().__init__(
            dialect,
            initial_quote,
            final_quote,
            escape_quote,
            quote_case_sensitive_collations,
            omit_schema,
        )

    def _requires_quotes(self, value: str) -> bool:
        return True  # Spark's reserved words vary with its ANSI settings: quote every name


class _SparkTypes(compiler.GenericTypeCompiler):
    def visit_string(self, type_: sa.String, **kw: Any) -> str:
        return "STRING"

    def visit_VARCHAR(self, type_: sa.String, **kw: Any) -> str:
        return "STRING"

    def visit_unicode(self, type_: sa.Unicode, **kw: Any) -> str:
        return "STRING"

    def visit_text(self, type_: sa.Text, **kw: Any) -> str:
        return "STRING"

    def visit_double(self, type_: sa.Double[Any], **kw: Any) -> str:
        return "DOUBLE"

    def visit_float(self, type_: sa.Float[Any], **kw: Any) -> str:
        return "DOUBLE"

    def visit_datetime(self, type_: sa.DateTime, **kw: Any) -> str:
        return "TIMESTAMP" if type_.timezone else "TIMESTAMP_NTZ"


class _SparkCompiler(compiler.SQLCompiler):
    def limit_clause(self, select: sa.Select[Any], **kw: Any) -> str:
        # Spark takes OFFSET without LIMIT (the default renders SQLite's "LIMIT -1").
        text = ""
        if select._limit_clause is not None:
            text += "\n LIMIT " + self.process(select._limit_clause, **kw)
        if select._offset_clause is not None:
            text += "\n OFFSET " + self.process(select._offset_clause, **kw)
        return text


class SparkDialect(default.DefaultDialect):
    """Spark SQL, for rendering statements only (a session runs them, not a DBAPI)."""

    name = "spark"
    paramstyle = "named"
    preparer = _SparkIdentifiers
    statement_compiler = _SparkCompiler
    type_compiler_cls = _SparkTypes
    supports_native_boolean = True
    supports_simple_order_by_label = True


_DIALECT = SparkDialect()


def spark_table(name: str, schema: pa.Schema) -> sa.Table:
    """A SQLAlchemy table named ``name`` (``db.table`` or ``table``) with ``schema``'s columns."""
    kinds: dict[pa.DataType, sa.types.TypeEngine[Any]] = {
        pa.int64(): sa.BigInteger(),
        pa.float64(): sa.Double(),
        pa.string(): sa.String(),
        pa.bool_(): sa.Boolean(),
        pa.date32(): sa.Date(),
    }
    columns = []
    for field in schema:
        if pa.types.is_timestamp(field.type):
            kind: sa.types.TypeEngine[Any] = sa.DateTime(timezone=field.type.tz is not None)
        else:
            kind = kinds[field.type]
        columns.append(sa.Column(field.name, kind))
    db, _, table = name.rpartition(".")
    return sa.Table(table, sa.MetaData(), *columns, schema=db or None)


def _render(stmt: sa.Select[Any]) -> tuple[str, dict[str, Any]]:
    compiled = stmt.compile(dialect=_DIALECT)
    return str(compiled), dict(compiled.params)


def compile_spark(query: Query, table: sa.Table) -> tuple[str, dict[str, Any]]:
    """Spark SQL text and named parameters that run ``query`` on ``table``."""
    return _render(compile_sql(query, table))


def compile_spark_count(query: Query, table: sa.Table) -> tuple[str, dict[str, Any]]:
    """Spark SQL text and named parameters counting what ``compile_spark`` returns."""
    return _render(compile_count(query, table))
