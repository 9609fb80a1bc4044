"""Shared fixtures: real servers on loopback, each test session in databases of its own.

Outside CI a test that needs a server that is not reachable is skipped with the reason; with
``CI=true`` it fails instead, so a broken service can never pass for a green build.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "gateway" / "demo" / "data"

PG_ADMIN_URL = os.environ.get(
    "MATGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MARIADB_ADMIN_URL = os.environ.get(
    "MATGATE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test"
)
REDIS_URL = os.environ.get("MATGATE_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Skip (or, in CI, fail) when a server is not listening."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: servers must be up)")
    pytest.skip(message)


def _fresh_database(admin_url: str, quote: str, drop_suffix: str = "") -> Iterator[str]:
    """Create a database of our own on a server, yield its URL, drop it afterwards."""
    import sqlalchemy as sa

    name = f"mg_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {quote}{name}{quote}"))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quote}{name}{quote}{drop_suffix}"))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database, dropped at the end of the session."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    yield from _fresh_database(PG_ADMIN_URL, '"', " WITH (FORCE)")


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """URL of a fresh MariaDB database, dropped at the end of the session."""
    require_server("MariaDB", "127.0.0.1", 3306)
    yield from _fresh_database(MARIADB_ADMIN_URL, "`")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the Redis server (database 15)."""
    require_server("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The project's shipped sample data."""
    return DATA


@pytest.fixture(scope="session")
def spark_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Spark Connect server: started here once per session (or MATGATE_TEST_SPARK)."""
    given = os.environ.get("MATGATE_TEST_SPARK")
    if given:
        yield given
        return
    from spark_server import SparkServer, SparkUnavailable

    try:
        server = SparkServer(tmp_path_factory.mktemp("spark"))
    except SparkUnavailable as exc:
        if IN_CI:
            pytest.fail(f"Spark Connect cannot start: {exc} (CI=true: servers must be up)")
        pytest.skip(f"Spark Connect cannot start: {exc}")
    try:
        yield server.url
    finally:
        server.stop()
