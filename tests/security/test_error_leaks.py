"""API8 (security misconfiguration): no driver or database text in an answer, a request id instead.

Each store is broken under a registered dataset the way an attacker (or bad luck) could make it
fail: a column dropped, the table dropped, the file replaced. The member's request gets a 503
problem that carries the request id and says nothing of SQL, tables, drivers or servers; the
node's log holds the full story under that id.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from security_lab import bearer, lab_app, lab_config, load_samples

# What a driver's message would carry; none of it may reach a client.
LEAKS = (
    "SELECT",
    "select ",
    "FROM",
    "sqlite",
    "psycopg",
    "pymysql",
    "mysql",
    "postgres",
    "MariaDB",
    "adbc",
    "OperationalError",
    "ProgrammingError",
    "DatabaseError",
    "Traceback",
    "does not exist",
    "no such",
    "Unknown column",
    "leak_",
)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of each kind the node may front."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(
        request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
    )


@pytest.fixture
def broken(store_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    """A node serving a fresh table of the store, its member's headers, and the table."""
    table = f"leak_{uuid.uuid4().hex[:8]}"
    load_samples(store_url, table)
    app = lab_app(tmp_path / "node", lab_config(store_url, {"samples": table}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, bearer(app), table
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def _break(url: str, table: str, how: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if how == "drop-column":
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN band_gap_ev"))
        else:
            conn.execute(sa.text(f"DROP TABLE {table}"))
    engine.dispose()


@contextlib.contextmanager
def _log() -> Iterator[list[str]]:
    """The messages the node logs meanwhile (with their exception text)."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            records.append(text)

    logger = logging.getLogger("matgate")
    handler = Keep()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _assert_generic(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["request_id"] == r.headers["x-request-id"]
    assert body["request_id"] in body["detail"] or "request id" in body["detail"]
    text = r.text.replace(body["request_id"], "")  # a random hex id may spell "adbc"
    for leak in LEAKS:
        assert leak not in text, (leak, r.text)
    return str(body["request_id"])


PULLS: list[tuple[str, dict[str, Any]]] = [
    ("POST", {"json": {"purpose": "research", "columns": ["sample_id", "band_gap_ev"]}}),
    ("POST", {"json": {"purpose": "research", "filter": "band_gap_ev > 1", "format": "json"}}),
    ("POST", {"json": {"purpose": "research", "order_by": ["-band_gap_ev"], "format": "csv"}}),
    ("GET", {"params": {"purpose": "research", "columns": "sample_id,band_gap_ev"}}),
]


@pytest.mark.parametrize("how", ["drop-column", "drop-table"])
@pytest.mark.parametrize(("method", "kwargs"), PULLS, ids=["arrow", "json", "csv", "get"])
def test_a_failing_store_answers_a_generic_503_with_the_request_id(
    broken: tuple[TestClient, dict[str, str], str],
    store_url: str,
    how: str,
    method: str,
    kwargs: dict[str, Any],
) -> None:
    """The driver's error stays in the node's log, found there by the request id."""
    client, headers, table = broken
    _break(store_url, table, how)
    with _log() as records:
        r = client.request(method, "/datasets/lab/samples/slice", headers=headers, **kwargs)
    rid = _assert_generic(r, 503)
    logged = [m for m in records if rid in m]
    assert logged, "the operator finds the failure by its request id"
    assert any(table in m for m in logged), "with the driver's own words"
    # the decision was made before the store failed: it is in the log, and nothing else is
    node = client.app.state.node
    mine = [e.event for e in node.audit.iter_events() if e.event["request_id"] == rid]
    assert [(e["name"], e["decision"]) for e in mine] == [("decision", "allow")]


def test_a_corrupt_sqlite_file_answers_a_generic_503(tmp_path: Path) -> None:
    """A store file replaced by garbage: the driver's complaint is not forwarded."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    load_samples(url, "samples")
    app = lab_app(tmp_path / "node", lab_config(url, {"samples": "samples"}))
    (tmp_path / "store.db").write_bytes(b"this is not a database" * 100)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post(
            "/datasets/lab/samples/slice", json={"purpose": "research"}, headers=bearer(app)
        )
    _assert_generic(r, 503)


def test_order_by_5000_terms_is_refused_before_any_sql(
    broken: tuple[TestClient, dict[str, str], str],
) -> None:
    """The request that once produced a 503 carrying the generated SQL: now a plain 422."""
    client, headers, _ = broken
    body = {"purpose": "research", "order_by": ["sample_id"] * 5000}
    r = client.post("/datasets/lab/samples/slice", json=body, headers=headers)
    assert r.status_code == 422
    for leak in LEAKS:
        assert leak not in r.text


def test_our_own_messages_still_help(broken: tuple[TestClient, dict[str, str], str]) -> None:
    """A filter's syntax error and an unknown column keep their useful, safe detail."""
    client, headers, _ = broken
    r = client.post(
        "/datasets/lab/samples/slice",
        json={"purpose": "research", "filter": "band_gap_ev >> 1"},
        headers=headers,
    )
    assert r.status_code == 400 and "position" in r.json()
    r = client.post(
        "/datasets/lab/samples/slice",
        json={"purpose": "research", "columns": ["band_gap"]},
        headers=headers,
    )
    assert r.status_code == 400 and "band_gap" in r.json()["detail"]


def test_an_unexpected_error_is_a_generic_500_with_the_request_id(tmp_path: Path) -> None:
    """A bug (here: the node database gone under a running node) is logged, not shown."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    load_samples(url, "samples")
    app = lab_app(tmp_path / "node", lab_config(url, {"samples": "samples"}))
    node = app.state.node
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = bearer(app)

        def explode(*_: Any, **__: Any) -> Any:
            raise RuntimeError("SELECT secret FROM internals -- at /srv/matgate/node.db")

        original = node.catalog.page
        node.catalog.page = explode
        try:
            r = client.get("/catalog", headers=headers)
        finally:
            node.catalog.page = original
    assert r.status_code == 500
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert "SELECT" not in r.text and "/srv" not in r.text
