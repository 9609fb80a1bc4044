"""SQL stores: SQLAlchemy reflects and compiles, Arrow-native drivers read.

PostgreSQL and SQLite are read through ADBC, MySQL/MariaDB through connectorx, other SQLAlchemy
URLs through a server-side cursor (see ``connectors.sqlreaders``). Stored types map to the
logical ``ColumnType`` and its canonical Arrow type: integers to int64, floating and NUMERIC/DECIMAL
to float64, character types to string, booleans to bool, DATETIME/TIMESTAMP to timestamp[us]
(UTC when the column has a time zone), DATE to date32; other types (BLOB, JSON, ...) are not served.

A connector reaches only the tables its ``Scope`` exposes (``connectors.sqlscope``): every table
is checked when it is first reflected, which every registration and every query goes through.
A URL whose drivers are not installed is refused with the extra to install (``missing_driver``).
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from connectors.base import ARROW_TYPES, Connector
from connectors.datasets import ColumnType
from connectors.errors import StoreError, TableError
from connectors.query import MaskKind, Query
from connectors.sqlcompile import compile_count, compile_sql
from connectors.sqlreaders import (
    AdbcPool,
    Compiled,
    StatementCache,
    compile_postgres,
    compile_sqlite,
    read_adbc_postgres,
    read_adbc_sqlite,
    read_connectorx,
    read_sqlalchemy,
)
from connectors.sqlscope import Scope, check_table

__all__ = ["SQLConnector", "logical_type", "missing_driver"]

# Modules each backend's readers need beyond its SQLAlchemy DBAPI, and the extra that brings them.
_DRIVERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "postgresql": ("PostgreSQL", "postgres", ("adbc_driver_postgresql", "psycopg")),
    "mysql": ("MySQL/MariaDB", "mysql", ("connectorx", "sqlglot")),
    "mariadb": ("MySQL/MariaDB", "mysql", ("connectorx", "sqlglot")),
    "sqlite": ("SQLite", "", ("adbc_driver_sqlite",)),
}


def missing_driver(url: str | sa.URL) -> str | None:
    """Why a store at ``url`` cannot be opened here (a driver is not installed), or None."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    label, extra, modules = _DRIVERS.get(backend, (backend, "", ()))
    hint = f"pip install 'matgate[{extra}]'" if extra else "reinstall matgate"
    try:
        parsed.get_dialect().import_dbapi()
        for module in modules:
            importlib.import_module(module)
    except ImportError as exc:
        return f"the {label} driver is not installed ({exc}); add it with: {hint}"
    except sa.exc.NoSuchModuleError:
        return f"no SQLAlchemy dialect for {parsed.drivername!r}"
    return None


_TABLE = re.compile(r"^(?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_$]*)$")


def logical_type(kind: sa.types.TypeEngine[Any]) -> ColumnType | None:
    """The logical type of a reflected SQL type, or None when it is not served."""
    if isinstance(kind, sa.Boolean):
        return ColumnType.BOOLEAN
    if isinstance(kind, sa.Integer):
        return ColumnType.INTEGER
    if isinstance(kind, sa.Float | sa.Numeric):  # separate classes since SQLAlchemy 2.1
        return ColumnType.FLOAT
    if isinstance(kind, sa.String | sa.Enum):
        return ColumnType.STRING
    if isinstance(kind, sa.DateTime):
        return ColumnType.TIMESTAMP
    if isinstance(kind, sa.Date):
        return ColumnType.DATE
    return None


def _arrow_type(kind: sa.types.TypeEngine[Any]) -> pa.DataType | None:
    logical = logical_type(kind)
    if logical is None:
        return None
    if logical is ColumnType.TIMESTAMP and getattr(kind, "timezone", False):
        return pa.timestamp("us", tz="UTC")
    return ARROW_TYPES[logical]


class SQLConnector(Connector):
    """A SQL database reachable by a SQLAlchemy URL."""

    kind = "sql"

    def __init__(self, url: str, base_dir: Path | None = None, scope: Scope | None = None) -> None:
        """Open the store at ``url``; only tables within ``scope`` (default schema) are served."""
        parsed = sa.make_url(url)
        problem = missing_driver(parsed)
        if problem is not None:
            raise StoreError(problem)
        self.scope = scope or Scope()
        self.backend = parsed.get_backend_name()
        if self.backend == "sqlite" and parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            if not path.is_absolute() and base_dir is not None:
                parsed = parsed.set(database=str(base_dir / path))
        self.url = parsed
        self.engine = sa.create_engine(parsed, pool_pre_ping=True)
        self._tables: dict[str, sa.Table] = {}
        self._schemas: dict[str, pa.Schema] = {}  # of the reflected tables, which never change
        self._statements = StatementCache(256)
        self._lock = threading.Lock()
        self._pool: AdbcPool | None = self._adbc_pool()
        self._backslash_escapes: bool | None = None

    def _adbc_pool(self) -> AdbcPool | None:
        if self.backend == "postgresql":
            import adbc_driver_postgresql.dbapi as adbc_pg

            uri = self.url.set(drivername="postgresql").render_as_string(hide_password=False)

            def connect() -> Any:
                conn = adbc_pg.connect(uri, autocommit=True)
                # Inlined string literals (see sqlreaders) are escaped for UTF-8 text.
                with conn.cursor() as cur:
                    cur.execute("SET client_encoding TO 'UTF8'")
                return conn

            return AdbcPool(connect)
        if self.backend == "sqlite" and self.url.database not in (None, "", ":memory:"):
            import adbc_driver_sqlite.dbapi as adbc_sqlite

            path = str(self.url.database)
            return AdbcPool(lambda: adbc_sqlite.connect(path, autocommit=True))
        return None

    def close(self) -> None:
        """Close pooled ADBC connections and the SQLAlchemy engine."""
        if self._pool is not None:
            self._pool.close()
        self.engine.dispose()

    def table(self, name: str) -> sa.Table:
        """The reflected table (``name`` or ``schema.name``), cached; TableError if absent."""
        match = _TABLE.match(name)
        if match is None:
            raise TableError(f"{name!r} is not a table name")
        with self._lock:
            found = self._tables.get(name)
            if found is not None:
                return found
            schema, table = match.groups()
            check_table(self.engine, self.scope, schema, table)
            try:
                found = sa.Table(table, sa.MetaData(), schema=schema, autoload_with=self.engine)
            except sa.exc.NoSuchTableError:
                raise TableError(f"table {name!r} does not exist in the store") from None
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"cannot read the schema of {name!r}: {exc}") from exc
            self._tables[name] = found
            return found

    def _arrow_schema(self, table: str) -> pa.Schema:
        found = self._schemas.get(table)
        if found is None:
            fields = []
            for column in self.table(table).columns:
                kind = _arrow_type(column.type)
                if kind is not None:
                    fields.append(pa.field(column.name, kind))
            found = self._schemas[table] = pa.schema(fields)
        return found

    def _count(self, query: Query) -> int:
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(compile_count(query, self.table(query.table))).scalar_one())
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"the store failed the count: {exc}") from exc

    def _mysql_backslashes(self) -> bool:
        # The literal rendering must follow the server's sql_mode, as the dialect does on connect.
        if self._backslash_escapes is None:
            try:
                with self.engine.connect() as conn:
                    mode = str(conn.execute(sa.text("SELECT @@sql_mode")).scalar_one())
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"cannot reach the store: {exc}") from exc
            self._backslash_escapes = "NO_BACKSLASH_ESCAPES" not in mode.upper()
        return self._backslash_escapes

    def _compiled(self, query: Query, compile: Callable[[], Compiled]) -> Compiled:
        """The driver's statement for ``query``, compiled once per distinct query."""
        try:
            return self._statements.get(_statement_key(query), compile)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"the query cannot be compiled for the store: {exc}") from exc

    def _batches(
        self, query: Query, schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        table = self.table(query.table)
        if self.backend == "postgresql" and self._pool is not None:
            compiled = self._compiled(query, lambda: compile_postgres(compile_sql(query, table)))
            return read_adbc_postgres(self._pool, compiled)
        if self.backend == "sqlite" and self._pool is not None:
            constant = {
                name
                for name, mask in query.masks.items()
                if mask.kind in (MaskKind.NULL, MaskKind.REDACT)
            }
            # ``schema`` follows from the query and the table (reflected once): not in the key
            compiled = self._compiled(
                query, lambda: compile_sqlite(compile_sql(query, table), schema)
            )
            again = partial(compile_sql, query, table)
            return read_adbc_sqlite(self._pool, compiled, again, schema, batch_rows, constant)
        stmt = compile_sql(query, table)
        if self.backend in ("mysql", "mariadb"):
            uri = self.url.set(drivername="mysql").render_as_string(hide_password=False)
            escapes = self._mysql_backslashes()  # connects once, which also sets is_mariadb
            mariadb = bool(getattr(self.engine.dialect, "is_mariadb", False))
            return read_connectorx(uri, stmt, batch_rows, escapes, mariadb)
        return read_sqlalchemy(self.engine, stmt, schema, batch_rows)


def _statement_key(query: Query) -> str:
    """What determines the SQL of ``query``: its repr names every part, values with their types
    (``1``, ``1.0`` and ``True`` differ), masks by kind (a hash mask's key is applied in Arrow)."""
    return repr(query)
