"""The Spark store on a real Spark Connect server: scope, streaming, early close, failures.

(Rows, masks, order and paging are in test_stores.py and test_properties.py with every store.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from connectors.errors import StoreError, TableError
from connectors.filterparser import parse
from connectors.query import Query
from connectors.spark import SparkConnector

# The first test to ask for Spark starts the server: a cold JVM on a busy machine is slow.
pytestmark = [pytest.mark.spark, pytest.mark.timeout(900)]

BIG = 1_000_000


@pytest.fixture(scope="module")
def lake(spark_url: str) -> Iterator[SparkConnector]:
    """Tables in two databases, a view over one of them, and a big table to stream."""
    setup = SparkConnector(spark_url)
    session = setup.session()
    for statement in [
        "CREATE DATABASE IF NOT EXISTS lake",
        "CREATE DATABASE IF NOT EXISTS private",
        "DROP VIEW IF EXISTS lake.peek",
        "DROP TABLE IF EXISTS lake.big",
        "DROP TABLE IF EXISTS lake.small",
        "DROP TABLE IF EXISTS private.secrets",
        "CREATE TABLE lake.big USING parquet AS SELECT id, id * 0.5 AS x FROM range(1000000)",
        "CREATE TABLE lake.small USING parquet AS SELECT id FROM range(10)",
        "CREATE TABLE private.secrets USING parquet AS SELECT id FROM range(3)",
        "CREATE VIEW lake.peek AS SELECT id FROM private.secrets",
    ]:
        session.sql(statement)
    setup.close()
    connector = SparkConnector(spark_url, schemas=("lake",))
    yield connector
    connector.close()


def test_only_configured_databases_tables_and_no_views(lake: SparkConnector, spark_url: str):
    """Other databases, unlisted tables and views are refused before any row is read."""
    assert lake.columns("lake.small") == lake.columns("LAKE.Small")
    with pytest.raises(TableError, match="outside"):
        lake.columns("private.secrets")
    with pytest.raises(TableError, match="outside"):
        lake.columns("small")  # unqualified is the default database, not exposed here
    with pytest.raises(TableError, match="view"):
        lake.columns("lake.peek")
    with pytest.raises(TableError, match="does not exist"):
        lake.columns("lake.nothing")
    with pytest.raises(TableError):
        lake.columns("lake.small; DROP TABLE lake.small")
    listed = SparkConnector(spark_url, schemas=("lake",), tables=("lake.small",))
    try:
        assert "id" in listed.columns("lake.small")
        with pytest.raises(TableError, match="not among"):
            listed.columns("lake.big")
    finally:
        listed.close()


def test_big_results_stream_in_batches(lake: SparkConnector):
    """1,000,000 rows arrive as many bounded batches, never as one collected table."""
    query = Query("lake.big", ("id", "x"), filter=parse("id >= 0"))
    sizes = [b.num_rows for b in lake.batches(query, batch_rows=65536)]
    assert sum(sizes) == BIG and len(sizes) > 1 and max(sizes) <= 65536
    assert lake.count(query) == BIG


def test_a_stream_given_up_early_leaves_the_session_usable(lake: SparkConnector):
    """Closing the stream after one batch interrupts the operation; the next query runs."""
    stream = lake.batches(Query("lake.big", ("id", "x")), batch_rows=1000)
    first = next(stream)
    assert first.num_rows == 1000 and first.schema.field("x").type == pa.float64()
    stream.close()  # type: ignore[attr-defined]
    again = lake.batches(Query("lake.small", ("id",), order_by=(("id", True),), limit=3))
    assert [v for b in again for v in b.column(0).to_pylist()] == [9, 8, 7]


def test_spark_errors_are_store_errors(lake: SparkConnector, spark_url: str):
    """A failure inside Spark (the table dropped under a known schema) is a one-line
    StoreError."""
    lake.session().sql("CREATE TABLE lake.gone USING parquet AS SELECT id FROM range(3)")
    assert "id" in lake.columns("lake.gone")
    lake.session().sql("DROP TABLE lake.gone")
    with pytest.raises(StoreError) as caught:
        list(lake.batches(Query("lake.gone", ("id",))))
    assert "\n" not in str(caught.value) and "gone" in str(caught.value)


def test_a_lost_session_is_replaced(lake: SparkConnector):
    """After the server forgets the session (expiry, restart), one request fails and the
    next one runs on a new session."""
    lost = lake.session()
    lost.client.release_session()  # what the server does to an expired session
    query = Query("lake.small", ("id",))
    with pytest.raises(StoreError):
        list(lake.batches(query))
    assert lake.session() is not lost
    assert sum(b.num_rows for b in lake.batches(query)) == 10


@pytest.mark.slow
def test_an_unreachable_server_fails_within_seconds():
    """No server: a StoreError after a few quick retries, not the client's ten minutes."""
    connector = SparkConnector("sc://127.0.0.1:9")
    with pytest.raises(StoreError, match=r"cannot .*(connect|reach)"):
        connector.columns("x")
