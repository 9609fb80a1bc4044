"""One sample table, loaded once per session into SQLite, PostgreSQL, MariaDB, files and Spark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from connector_samples import sample_arrow

from connectors.base import Connector
from connectors.files import FilesConnector
from connectors.spark import SparkConnector
from connectors.sql import SQLConnector


def _sql_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "samples",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("i", sa.BigInteger),
        sa.Column("f", sa.Double),
        sa.Column("s", sa.String(200)),
        mysql_charset="utf8mb4",
        mariadb_charset="utf8mb4",
    )


def load_sql(url: str) -> None:
    """Create and fill the samples table in a SQL store."""
    engine = sa.create_engine(url)
    table = _sql_table(sa.MetaData())
    records = sample_arrow().to_pylist()
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
        conn.execute(table.insert(), records)
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file holding the samples table."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'samples.db'}"
    load_sql(url)
    return url


@pytest.fixture(scope="session")
def files_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with samples.parquet, samples.csv and a partitioned folder of Parquet files."""
    root = tmp_path_factory.mktemp("files")
    table = sample_arrow()
    pq.write_table(table, root / "samples.parquet")
    # CSV cannot tell an empty string from a missing value: the CSV copy drops the s column.
    pacsv.write_csv(table.drop_columns(["s"]), root / "samples.csv")
    (root / "parts").mkdir()
    pq.write_table(table.slice(0, 60), root / "parts" / "a.parquet")
    pq.write_table(table.slice(60), root / "parts" / "b.parquet")
    return root


@pytest.fixture(scope="session")
def pg_store(pg_url: str) -> Iterator[SQLConnector]:
    """The samples table in PostgreSQL."""
    load_sql(pg_url)
    connector = SQLConnector(pg_url)
    yield connector
    connector.close()


@pytest.fixture(scope="session")
def mariadb_store(mariadb_url: str) -> Iterator[SQLConnector]:
    """The samples table in MariaDB."""
    load_sql(mariadb_url)
    connector = SQLConnector(mariadb_url)
    yield connector
    connector.close()


@pytest.fixture(scope="session")
def sqlite_store(sqlite_url: str) -> Iterator[SQLConnector]:
    """The samples table in SQLite, read through ADBC."""
    connector = SQLConnector(sqlite_url)
    yield connector
    connector.close()


@pytest.fixture(scope="session")
def files_store(files_root: Path) -> FilesConnector:
    """The samples as Parquet and CSV files."""
    return FilesConnector(files_root)


@pytest.fixture(scope="session")
def spark_store(spark_url: str, files_root: Path) -> Iterator[SparkConnector]:
    """The samples as a Parquet table in the Spark server's catalog (``samples``)."""
    connector = SparkConnector(spark_url)
    location = str(files_root / "samples.parquet").replace("'", "")
    session = connector.session()
    session.sql("DROP TABLE IF EXISTS default.samples")
    session.sql(f"CREATE TABLE default.samples USING parquet LOCATION '{location}'")
    yield connector
    connector.close()


# Whichever Spark test comes first starts the server: a cold JVM on a busy machine is slow.
SPARK = pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.timeout(900)])
STORES = ["sqlite", "postgresql", "mariadb", "parquet", SPARK]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> tuple[Connector, str]:
    """Each store holding the samples, with the table name to ask for."""
    if request.param == "parquet":
        return request.getfixturevalue("files_store"), "samples.parquet"
    fixture = {
        "sqlite": "sqlite_store",
        "postgresql": "pg_store",
        "mariadb": "mariadb_store",
        "spark": "spark_store",
    }
    return request.getfixturevalue(fixture[request.param]), "samples"
