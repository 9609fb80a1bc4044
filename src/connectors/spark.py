"""Apache Spark through Spark Connect: lakehouse tables read where they lie, as Arrow batches.

A table name is a Spark catalog table, ``table`` (in ``default``) or ``database.table``: a
Parquet (or Delta, Iceberg, ...) table the operator registered in the Spark server's catalog,
e.g. ``CREATE TABLE lake.alloys USING parquet LOCATION '/data/alloys'``. The query is compiled
to Spark SQL by ``connectors.sparkcompile`` (projection, masks, filter with the policy's row
rule, order, paging) and runs in Spark; its values travel as named parameters, never in the
text. The result streams back as the Arrow batches Spark Connect sends, one at a time: nothing
is collected whole, and a stream given up early interrupts its operation on the server.

Spark types map to the canonical Arrow types: integral types to int64, floating and decimal to
float64, string/char/varchar to string, boolean, TIMESTAMP to timestamp[us, UTC],
TIMESTAMP_NTZ to timestamp[us], DATE to date32; other types (binary, arrays, maps, structs) are
not served.

Scope: only databases named in the store's config (default: ``default``) and, if listed, only
those tables; views are refused (a view may read any table of the catalog), and so are
temporary and global temporary views.
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa

from connectors.base import ARROW_TYPES, Connector
from connectors.datasets import ColumnType
from connectors.errors import StoreError, TableError
from connectors.query import Query
from connectors.sparkcompile import compile_spark, compile_spark_count, spark_table

if TYPE_CHECKING:
    from pyspark.sql.connect.session import SparkSession

__all__ = ["SparkConnector", "missing_spark"]

_GRPC_DETAILS = re.compile(r'details = "([^"\n]*)')
_NAME = re.compile(r"^(?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_]*)$")
_SPARK_TYPES = {
    "byte": ColumnType.INTEGER,
    "short": ColumnType.INTEGER,
    "integer": ColumnType.INTEGER,
    "long": ColumnType.INTEGER,
    "float": ColumnType.FLOAT,
    "double": ColumnType.FLOAT,
    "decimal": ColumnType.FLOAT,
    "string": ColumnType.STRING,
    "char": ColumnType.STRING,
    "varchar": ColumnType.STRING,
    "boolean": ColumnType.BOOLEAN,
    "timestamp": ColumnType.TIMESTAMP,
    "timestamp_ntz": ColumnType.TIMESTAMP,
    "date": ColumnType.DATE,
}


def missing_spark() -> str | None:
    """Why a Spark store cannot be opened here (the client is not installed), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # pandas 3, which it reads without
            import pyspark.sql.connect.session  # noqa: F401
    except ImportError as exc:
        return f"the Spark Connect client is not installed ({exc}); add it with: " + (
            "pip install 'matgate[spark]'"
        )
    return None


def _arrow_type(type_name: str) -> pa.DataType | None:
    """The canonical Arrow type of a Spark type's ``typeName()``, or None if not served."""
    logical = _SPARK_TYPES.get(type_name)
    if logical is None:
        return None
    if type_name == "timestamp":
        return pa.timestamp("us", tz="UTC")
    return ARROW_TYPES[logical]


class SparkConnector(Connector):
    """Tables of a Spark catalog, reached through a Spark Connect server (``sc://host:port``)."""

    kind = "spark"

    def __init__(
        self,
        url: str,
        schemas: tuple[str, ...] | None = None,
        tables: tuple[str, ...] | None = None,
    ) -> None:
        problem = missing_spark()
        if problem is not None:
            raise StoreError(problem)
        if not url.startswith("sc://"):
            raise StoreError(f"a Spark store's url is a Spark Connect URL (sc://...), got {url!r}")
        self.url = url
        self.schemas = tuple(s.lower() for s in (schemas or ("default",)))
        self.tables = None if tables is None else {_qualified(t) for t in tables}
        self._session: SparkSession | None = None
        self._schemas: dict[str, pa.Schema] = {}
        self._lock = threading.Lock()

    def session(self) -> SparkSession:
        """The Spark Connect session of this store, opened on first use."""
        with self._lock:
            if self._session is None:
                from pyspark.sql.connect.session import SparkSession

                try:
                    session = SparkSession.builder.remote(self.url).create()
                    # A few quick retries (about 7 s), not the client's ten minutes: a request
                    # must fail with a clear error while the server is down, not hang.
                    session.client.set_retry_policies([_quick_retries()])
                    # Parquet's dictionary filter tells -0.0 from 0.0 and drops row groups that
                    # SQL equality keeps (f = 0 finds -0.0); statistics still prune row groups.
                    session.conf.set("parquet.filter.dictionary.enabled", "false")
                    self._session = session
                except Exception as exc:  # the client raises many kinds; all mean "unreachable"
                    raise StoreError(f"cannot reach Spark at {self.url}: {_brief(exc)}") from exc
            return self._session

    def close(self) -> None:
        """End the Spark Connect session (the server drops its state)."""
        with self._lock:
            if self._session is not None:
                try:
                    self._session.stop()
                finally:
                    self._session = None

    def _failed(self, exc: BaseException) -> None:
        """Forget the session after a failure that was not the query's own fault.

        A server restarted, a session expired or a connection lost leaves the client's session
        unusable; the next request opens a new one (the old one ends on the server by itself).
        """
        from pyspark.errors import AnalysisException

        if not isinstance(exc, AnalysisException):
            with self._lock:
                self._session = None

    def _check(self, name: str) -> str:
        """``name`` qualified with its database, once it is known to be a served table."""
        qualified = _qualified(name)
        database = qualified.split(".")[0]
        if database not in self.schemas:
            raise TableError(f"{name!r} is outside the databases this store exposes")
        if self.tables is not None and qualified not in self.tables:
            raise TableError(f"{name!r} is not among the tables this store exposes")
        try:
            found = self.session().catalog.getTable(qualified)
        except StoreError:
            raise
        except Exception as exc:
            if _not_found(exc):
                raise TableError(f"table {name!r} does not exist in the store") from None
            self._failed(exc)
            raise StoreError(f"cannot read the schema of {name!r}: {_brief(exc)}") from exc
        if found.isTemporary or (found.tableType or "").upper() == "VIEW":
            raise TableError(f"{name!r} is a view; a Spark store serves tables only")
        return qualified

    def _arrow_schema(self, table: str) -> pa.Schema:
        with self._lock:
            found = self._schemas.get(table)
        if found is not None:
            return found
        qualified = self._check(table)
        try:
            struct = self.session().table(qualified).schema
        except Exception as exc:
            self._failed(exc)
            raise StoreError(f"cannot read the schema of {table!r}: {_brief(exc)}") from exc
        fields = []
        for field in struct.fields:
            kind = _arrow_type(field.dataType.typeName())
            if kind is not None:
                fields.append(pa.field(field.name, kind))
        found = pa.schema(fields)
        with self._lock:
            self._schemas[table] = found
        return found

    def _sa_table(self, table: str) -> sa.Table:
        return spark_table(_qualified(table), self.arrow_schema(table))

    def _count(self, query: Query) -> int:
        sql, args = compile_spark_count(query, self._sa_table(query.table))
        try:
            return int(self.session().sql(sql, args=args).collect()[0][0])
        except StoreError:
            raise
        except Exception as exc:
            self._failed(exc)
            raise StoreError(f"Spark failed the count: {_brief(exc)}") from exc

    def _batches(
        self, query: Query, schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        sql, args = compile_spark(query, self._sa_table(query.table))
        return _stream(self.session(), sql, args, self._failed)


def _quick_retries() -> Any:
    from pyspark.sql.connect.client.retries import DefaultPolicy

    return DefaultPolicy(
        max_retries=4, initial_backoff=100, max_backoff=5000, max_server_retry_delay=5000
    )


def _qualified(name: str) -> str:
    match = _NAME.match(name)
    if match is None:
        raise TableError(f"{name!r} is not a table name (table or database.table)")
    database, table = match.groups()
    return f"{(database or 'default').lower()}.{table.lower()}"


def _brief(exc: Exception) -> str:
    """The first line of a Spark error (its JVM stack trace stays in the server's log)."""
    text = str(exc).strip()
    details = _GRPC_DETAILS.search(text)  # a gRPC error's own words, not its wrapper's
    if details:
        return details.group(1)
    return text.splitlines()[0] if text else type(exc).__name__


def _not_found(exc: Exception) -> bool:
    text = str(exc)
    return "TABLE_OR_VIEW_NOT_FOUND" in text or "SCHEMA_NOT_FOUND" in text or "not found" in text


def _stream(
    session: SparkSession,
    sql: str,
    args: dict[str, Any],
    failed: Callable[[BaseException], None],
) -> Iterator[pa.RecordBatch]:
    """The statement's result, batch by batch as the server sends it.

    The operation carries a tag of its own, so that a stream given up early (a client gone)
    interrupts the work on the server instead of leaving it to run and buffer.
    """
    client = session.client
    tag = f"matgate-{uuid.uuid4().hex}"
    finished = False
    try:
        frame = session.sql(sql, args=args)
        plan: Any = frame._plan  # the client's own streaming path: batches as they arrive
        client.add_tag(tag)
        try:
            results = client.to_table_as_iterator(plan.to_proto(client), plan.observations)
            first = next(results, None)  # sends the request, with the tag
        finally:
            client.remove_tag(tag)
        items = results if first is None else _chain(first, results)
        for item in items:
            if isinstance(item, pa.Table):
                yield from item.to_batches()
        finished = True
    except StoreError:
        raise
    except Exception as exc:
        failed(exc)
        raise StoreError(f"Spark failed the query: {_brief(exc)}") from exc
    finally:
        if not finished:
            _interrupt(client, tag)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _interrupt(client: Any, tag: str) -> None:
    # Best effort: the server also ends operations whose client went away, after a while.
    with contextlib.suppress(Exception):
        client.interrupt_tag(tag)
