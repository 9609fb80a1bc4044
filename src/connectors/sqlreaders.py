"""Arrow-native readers of a compiled Select, one per driver.

- PostgreSQL through ADBC, which streams a query through ``COPY ... TO STDOUT (FORMAT binary)``
  only when it has no bound parameters (with parameters it holds the whole result in memory
  first): each value is therefore rendered as a typed literal quoted by psycopg's own
  ``sql.Literal`` (``CAST(0.5 AS DOUBLE PRECISION)``, ``CAST('it''s' AS TEXT)``), typed as the
  driver would have bound it; a value that has no literal form (a string with a NUL character)
  falls back to bound parameters;
- SQLite through ADBC: parameters bound by the driver (``?``); both ADBC readers decode rows
  straight into Arrow record batches in the driver, connections pooled;
- MySQL/MariaDB through connectorx, which takes no parameters: the statement is rendered by
  SQLAlchemy's MySQL dialect with ``literal_binds`` (the dialect's own typed literals);
- anything else SQLAlchemy can reach: a server-side cursor whose ``fetchmany`` partitions are
  turned into batches (the only reader that touches rows in Python).
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from connectors.errors import StoreError

__all__ = [
    "AdbcPool",
    "Compiled",
    "StatementCache",
    "compile_postgres",
    "compile_sqlite",
    "read_adbc_postgres",
    "read_adbc_sqlite",
    "read_connectorx",
    "read_sqlalchemy",
    "render_mysql",
    "render_postgres",
]

_PG = postgresql.dialect(paramstyle="numeric_dollar")
_SQLITE = sqlite.dialect(paramstyle="qmark")
_NULL_SUFFIX = "__isnull"
# Big enough to amortise per-batch work, small enough that the first bytes leave early.
_PG_BATCH_BYTES = 4 << 20


class _NoLiteral(Exception):
    """A value without a safe literal form: the statement is sent with bound parameters."""


def _pg_literal(value: object) -> str:
    """``value`` as a PostgreSQL constant of the type ADBC would bind it with.

    Quoting and escaping are psycopg's own (``psycopg.sql.Literal``, what psycopg sends for
    client-side binding), never string formatting here; the cast keeps the type the driver would
    have bound.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    kind = _PG_TYPES.get(type(value))
    if isinstance(value, dt.datetime):
        kind = "TIMESTAMP WITH TIME ZONE" if value.tzinfo else "TIMESTAMP WITHOUT TIME ZONE"
    if kind is None or (isinstance(value, str) and "\x00" in value):
        raise _NoLiteral(type(value).__name__)
    from psycopg import sql

    return f"CAST({sql.Literal(value).as_string(None)} AS {kind})"


_PG_TYPES: dict[type, str] = {
    int: "BIGINT",
    float: "DOUBLE PRECISION",
    str: "TEXT",
    dt.date: "DATE",
    dt.datetime: "TIMESTAMP",
}


class _PGLiteralCompiler(type(_PG).statement_compiler):  # type: ignore[misc]
    """The PostgreSQL compiler, rendering bound values with ``_pg_literal`` (and their casts)."""

    def render_literal_bindparam(
        self, bindparam: sa.BindParameter[Any], render_literal_value: Any = None, **kw: Any
    ) -> str:
        """A bound value as a typed literal, cast as the dialect casts its parameters."""
        if bindparam.expanding or render_literal_value is not None:
            raise _NoLiteral("expanding parameter")
        if bindparam.value is None and bindparam.callable is None:
            return "NULL"
        text = _pg_literal(bindparam.effective_value)
        impl = bindparam.type._unwrapped_dialect_impl(self.dialect)
        if impl.render_bind_cast:
            text = self.render_bind_cast(bindparam.type, impl, text)
        return text


class _PGLiteralDialect(type(_PG)):  # type: ignore[misc]
    statement_compiler = _PGLiteralCompiler


_PG_LITERAL = _PGLiteralDialect(paramstyle="numeric_dollar")


def render_postgres(stmt: sa.Select[Any]) -> str | None:
    """The statement with every value inlined as a typed literal, or None if one cannot be."""
    try:
        return str(stmt.compile(dialect=_PG_LITERAL, compile_kwargs={"literal_binds": True}))
    except _NoLiteral:
        return None


class AdbcPool:
    """A small pool of idle ADBC connections (a DBAPI connection serves one stream at a time)."""

    def __init__(self, connect: Callable[[], Any], max_idle: int = 4) -> None:
        self._connect = connect
        self._idle: queue.Queue[Any] = queue.Queue(maxsize=max_idle)

    def acquire(self) -> Any:
        """An idle connection, or a new one."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            try:
                return self._connect()
            except Exception as exc:
                raise StoreError(f"cannot connect to the store: {exc}") from exc

    def release(self, conn: Any, healthy: bool) -> None:
        """Give a connection back; an unhealthy one (or one too many) is closed."""
        if healthy:
            try:
                self._idle.put_nowait(conn)
                return
            except queue.Full:
                pass
        conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _positional(stmt: sa.Select[Any], dialect: sa.Dialect) -> tuple[str, tuple[Any, ...] | None]:
    compiled = stmt.compile(dialect=dialect)
    names = compiled.positiontup or []
    return str(compiled), tuple(compiled.params[name] for name in names) or None


Compiled = tuple[str, tuple[Any, ...] | None]
"""A statement's text for the driver and its positional parameters (None: none)."""


class StatementCache:
    """Statements compiled for the drivers, by a key that determines them, least recently used
    dropped first: compiling a Select costs more than running a small query on it."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._found: OrderedDict[str, Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, compile: Callable[[], Compiled]) -> Compiled:
        """The statement compiled for ``key``, compiled by ``compile`` the first time."""
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
                return found
        made = compile()
        with self._lock:
            self._found[key] = made
            if len(self._found) > self._size:
                self._found.popitem(last=False)
        return made


def compile_postgres(stmt: sa.Select[Any]) -> Compiled:
    """``stmt`` for ADBC's PostgreSQL driver: values inlined when they can be (see above)."""
    inlined = render_postgres(stmt)
    return (inlined, None) if inlined is not None else _positional(stmt, _PG)


def compile_sqlite(stmt: sa.Select[Any], schema: pa.Schema) -> Compiled:
    """``stmt`` for ADBC's SQLite driver, every column cast to its storage class."""
    return _positional(_sqlite_select(stmt, schema, set()), _SQLITE)


def read_adbc_postgres(pool: AdbcPool, compiled: Compiled) -> Iterator[pa.RecordBatch]:
    """Batches of a statement (``compile_postgres``) from PostgreSQL through ADBC, streamed."""
    sql, params = compiled
    conn = pool.acquire()
    finished = False
    try:
        with conn.cursor() as cur:
            cur.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(_PG_BATCH_BYTES)}
            )
            cur.execute(sql, params)
            yield from cur.fetch_record_batch()
        finished = True
    except Exception as exc:
        raise StoreError(f"the store failed the query: {exc}") from exc
    finally:
        # A stream abandoned half-way may leave the connection mid-result: do not reuse it.
        pool.release(conn, healthy=finished)


def _sqlite_select(stmt: sa.Select[Any], schema: pa.Schema, flagged: set[str]) -> sa.Select[Any]:
    # ADBC's SQLite driver types each column from the first batch and refuses later values of
    # another type, so every column is CAST to its declared storage class; a column that is all
    # NULL in the first batch (typed int64 there) is read as COALESCE + an IS NULL flag instead.
    columns: list[sa.ColumnElement[Any]] = []
    for label, field in zip(stmt.selected_columns, schema, strict=True):
        inner = label.element if isinstance(label, sa.Label) else label
        value: sa.ColumnElement[Any]
        if pa.types.is_integer(field.type) or pa.types.is_boolean(field.type):
            value = sa.cast(inner, sa.Integer())
        elif pa.types.is_floating(field.type):
            value = sa.cast(inner, sa.REAL())
        else:
            value = sa.cast(inner, sa.Text())
        if field.name in flagged:
            neutral = 0.0 if pa.types.is_floating(field.type) else ""
            columns.append(sa.func.coalesce(value, neutral).label(field.name))
            columns.append(inner.is_(None).label(field.name + _NULL_SUFFIX))
        else:
            columns.append(value.label(field.name))
    return stmt.with_only_columns(*columns, maintain_column_froms=True)


def _restore_nulls(batch: pa.RecordBatch, flagged: set[str]) -> pa.RecordBatch:
    arrays, names = [], []
    for name in batch.schema.names:
        if name.endswith(_NULL_SUFFIX):
            continue
        column = batch.column(name)
        if name in flagged:
            isnull = pc.cast(batch.column(name + _NULL_SUFFIX), pa.bool_())
            column = pc.if_else(isnull, pa.scalar(None, column.type), column)
        arrays.append(column)
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def read_adbc_sqlite(
    pool: AdbcPool,
    compiled: Compiled,
    stmt: Callable[[], sa.Select[Any]],
    schema: pa.Schema,
    batch_rows: int,
    constant: set[str],
) -> Iterator[pa.RecordBatch]:
    """Batches of a statement (``compile_sqlite`` of ``stmt()``) from SQLite through ADBC;
    ``constant`` columns are masks, not data."""
    options = {"adbc.sqlite.query.batch_rows": str(batch_rows)}
    conn = pool.acquire()
    finished = False
    try:
        with conn.cursor() as cur:
            cur.adbc_statement.set_options(**options)
            cur.execute(*compiled)
            reader = cur.fetch_record_batch()
            # The driver infers types on the first batch, before anything is read: look now.
            flagged = {
                f.name
                for f, got in zip(schema, reader.schema, strict=True)
                if f.name not in constant
                and got.type == pa.int64()
                and not (pa.types.is_integer(f.type) or pa.types.is_boolean(f.type))
            }
            if not flagged:
                yield from reader
            else:
                reader.close()
                cur.execute(*_positional(_sqlite_select(stmt(), schema, flagged), _SQLITE))
                for batch in cur.fetch_record_batch():
                    yield _restore_nulls(batch, flagged)
        finished = True
    except Exception as exc:
        raise StoreError(f"the store failed the query: {exc}") from exc
    finally:
        pool.release(conn, healthy=finished)


def render_mysql(stmt: sa.Select[Any], backslash_escapes: bool = True, mariadb: bool = True) -> str:
    """The statement as MySQL text with every value rendered by the dialect's literal rules."""
    # qmark: with the driver's "format" style the compiler would double every '%' in literals.
    dialect = mysql.dialect(paramstyle="qmark")
    dialect._backslash_escapes = backslash_escapes
    dialect.is_mariadb = mariadb
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def read_connectorx(
    uri: str, stmt: sa.Select[Any], batch_rows: int, backslash_escapes: bool, mariadb: bool
) -> Iterator[pa.RecordBatch]:
    """Batches of ``stmt`` from MySQL/MariaDB through connectorx's Arrow stream."""
    import connectorx as cx

    sql = render_mysql(stmt, backslash_escapes, mariadb)
    try:
        reader = cx.read_sql(uri, sql, return_type="arrow_stream", batch_size=batch_rows)
        yield from reader
    except Exception as exc:
        raise StoreError(f"the store failed the query: {exc}") from exc


def read_sqlalchemy(
    engine: sa.Engine, stmt: sa.Select[Any], schema: pa.Schema, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Batches of ``stmt`` through a SQLAlchemy server-side cursor (any other backend)."""
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, max_row_buffer=batch_rows).execute(
                stmt
            )
            for rows in result.partitions(batch_rows):
                columns = list(zip(*rows, strict=True))
                arrays = [
                    pa.array(values, from_pandas=True).cast(field.type)
                    for values, field in zip(columns, schema, strict=True)
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"the store failed the query: {exc}") from exc
