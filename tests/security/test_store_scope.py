"""API1/API5 (2023), a steward reaching past the store: system tables, other schemas, views.

A store's config names what it exposes (default: the connection's default schema). Every row is
a dataset registration through the API by Aurora's steward; an attack must be answered 422 with
its reason, whatever the spelling, and the tables the store does expose must still register. The
connector refuses the same names at query time (``test_query_time_refusal``), so a catalog entry
written some other way cannot reach them either.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from store_world import column_entry, entry, node_with

from connectors.errors import TableError
from connectors.files import FilesConnector
from connectors.query import Query
from connectors.sql import SQLConnector
from connectors.sqlscope import Scope
from gateway.errors import Unprocessable

SCOPE = "outside the store's scope"
MISSING = "does not exist"
MALFORMED = "is not a table name"
ID = [column_entry("id")]

# ---- the stores -------------------------------------------------------------------------

SQLITE_SETUP = """
CREATE TABLE alloys (id INTEGER PRIMARY KEY AUTOINCREMENT, x REAL);
INSERT INTO alloys (x) VALUES (1.5), (2.5);
CREATE VIEW v_ok AS SELECT id, x FROM alloys;
CREATE VIEW v_master AS SELECT rootpage AS id FROM sqlite_master;
CREATE VIEW v_schema AS SELECT rootpage AS id FROM sqlite_schema;
CREATE VIEW v_pragma AS SELECT seq AS id FROM pragma_database_list;
CREATE VIEW v_nested AS SELECT id FROM v_master;
CREATE VIEW v_cte AS WITH c AS (SELECT rootpage AS id FROM sqlite_master) SELECT id FROM c;
CREATE VIEW v_sub AS SELECT id FROM alloys WHERE id IN (SELECT rootpage FROM sqlite_master);
"""

PG_SETUP = """
CREATE SCHEMA scope_lab;
CREATE SCHEMA scope_secret;
CREATE TABLE public.scope_alloys (id bigint, x double precision);
CREATE TABLE scope_lab.samples (id bigint);
CREATE TABLE scope_secret.payroll (id bigint);
CREATE VIEW public.scope_v_ok AS SELECT id, x FROM public.scope_alloys;
CREATE VIEW public.scope_v_authid AS SELECT oid::bigint AS id FROM pg_authid;
CREATE VIEW public.scope_v_roles AS SELECT oid::bigint AS id FROM pg_roles;
CREATE VIEW public.scope_v_secret AS SELECT id FROM scope_secret.payroll;
CREATE VIEW public.scope_v_nested AS SELECT id FROM public.scope_v_secret;
CREATE VIEW public.scope_v_info AS
  SELECT ordinal_position::bigint AS id FROM information_schema.columns;
CREATE VIEW public.scope_v_sub AS
  SELECT id FROM public.scope_alloys WHERE id IN (SELECT oid::bigint FROM pg_authid);
CREATE MATERIALIZED VIEW public.scope_m_authid AS SELECT oid::bigint AS id FROM pg_authid;
"""

MARIADB_SETUP = """
CREATE TABLE scope_alloys (id BIGINT, x DOUBLE);
CREATE TABLE {other}.payroll (id BIGINT);
CREATE VIEW scope_v_ok AS SELECT id, x FROM scope_alloys;
CREATE VIEW scope_v_user AS SELECT 1 AS id, User FROM mysql.user;
CREATE VIEW scope_v_info AS SELECT ORDINAL_POSITION AS id FROM information_schema.COLUMNS;
CREATE VIEW scope_v_other AS SELECT id FROM {other}.payroll;
CREATE VIEW scope_v_nested AS SELECT id FROM scope_v_other;
CREATE VIEW scope_v_cte AS WITH c AS (SELECT 1 AS id FROM mysql.user) SELECT id FROM c;
CREATE VIEW scope_v_sub AS SELECT id FROM scope_alloys WHERE id IN (SELECT 1 FROM mysql.user);
CREATE VIEW scope_v_join AS
  SELECT a.id FROM scope_alloys a JOIN information_schema.TABLES t ON t.TABLE_ROWS = a.id;
"""


def _run(url: str, script: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in script.split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    engine.dispose()


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store with tables, harmless views and views over SQLite's own tables."""
    path = tmp_path_factory.mktemp("scope-sqlite") / "lab.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SQLITE_SETUP)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def postgres_url(pg_url: str) -> str:
    """The session's PostgreSQL database with other schemas and views over pg_catalog."""
    _run(pg_url, PG_SETUP)
    return pg_url


@pytest.fixture(scope="module")
def mariadb_scope_url(mariadb_url: str) -> Iterator[str]:
    """The session's MariaDB database, a second database, and views over mysql and I_S."""
    other = mariadb_url.rsplit("/", 1)[1] + "_other"
    admin = sa.create_engine(mariadb_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{other}`")
    _run(mariadb_url, MARIADB_SETUP.format(other=other))
    yield mariadb_url
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{other}`")
    admin.dispose()


@pytest.fixture(scope="module")
def files_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A files store, next to a folder of secrets its symlinks point into."""
    base = tmp_path_factory.mktemp("scope-files")
    secrets = base / "secrets"
    secrets.mkdir()
    (secrets / "keys.csv").write_text("id,key\n1,hunter2\n")
    root = base / "store"
    (root / "sub").mkdir(parents=True)
    (root / "ok.csv").write_text("id\n1\n2\n")
    (root / "link.csv").symlink_to(secrets / "keys.csv")
    (root / "linkdir").symlink_to(secrets, target_is_directory=True)
    mixed = root / "mixed"
    mixed.mkdir()
    (mixed / "a.csv").write_text("id\n3\n")
    (mixed / "b.csv").symlink_to(secrets / "keys.csv")
    return root


@pytest.fixture(scope="module")
def sqlite_node(tmp_path_factory, sqlite_url, files_root) -> Iterator[Any]:
    stores = {
        "lite": {"kind": "sql", "url": sqlite_url},
        "folder": {"kind": "files", "path": str(files_root)},
    }
    with node_with(tmp_path_factory.mktemp("scope-node-sqlite"), stores) as node:
        yield node


@pytest.fixture(scope="module")
def postgres_node(tmp_path_factory, postgres_url) -> Iterator[Any]:
    stores = {
        "pg": {"kind": "sql", "url": postgres_url},
        "pg_wide": {"kind": "sql", "url": postgres_url, "schemas": ["public", "scope_lab"]},
        "pg_listed": {"kind": "sql", "url": postgres_url, "tables": ["scope_alloys"]},
    }
    with node_with(tmp_path_factory.mktemp("scope-node-pg"), stores) as node:
        yield node


@pytest.fixture(scope="module")
def mariadb_node(tmp_path_factory, mariadb_scope_url) -> Iterator[Any]:
    stores = {"maria": {"kind": "sql", "url": mariadb_scope_url}}
    with node_with(tmp_path_factory.mktemp("scope-node-maria"), stores) as node:
        yield node


def _other(request: pytest.FixtureRequest, table: str) -> str:
    if "{other}" not in table:
        return table
    url = request.getfixturevalue("mariadb_scope_url")
    return table.format(other=url.rsplit("/", 1)[1] + "_other")


def _register(request, engine: str, store: str, table: str, columns=ID) -> Any:
    client, headers = request.getfixturevalue(f"{engine}_node")
    name = f"t{abs(hash((store, table))) % 10**8}"
    body = entry(name, store, _other(request, table), columns)
    return client.post("/catalog", json=body, headers=headers["steward"])


# ---- the attacks ------------------------------------------------------------------------

SQLITE_ATTACKS = [
    ("sqlite_master", SCOPE),
    ("SQLITE_MASTER", SCOPE),
    ("Sqlite_Master", SCOPE),
    ("main.sqlite_master", SCOPE),
    ("MAIN.SQLITE_MASTER", SCOPE),
    ("sqlite_schema", SCOPE),
    ("sqlite_temp_master", SCOPE),
    ("temp.sqlite_master", SCOPE),
    ("sqlite_sequence", SCOPE),
    ("sqlite_stat1", SCOPE),
    ("temp.alloys", MISSING),
    ("other.alloys", MISSING),
    ("v_master", SCOPE),
    ("v_schema", SCOPE),
    ("v_pragma", SCOPE),
    ("v_nested", SCOPE),
    ("v_cte", SCOPE),
    ("v_sub", SCOPE),
    ('"sqlite_master"', MALFORMED),
    ('main."alloys"', MALFORMED),
    ("alloys; DROP TABLE alloys", MALFORMED),
    ("pragma_database_list", MISSING),
]

PG_ATTACKS = [
    ("pg", "pg_authid", SCOPE),
    ("pg", "pg_catalog.pg_authid", SCOPE),
    ("pg", "pg_shadow", SCOPE),
    ("pg", "pg_user", SCOPE),
    ("pg", "pg_roles", SCOPE),
    ("pg", "pg_stat_activity", SCOPE),
    ("pg", "pg_settings", SCOPE),
    ("pg", "information_schema.tables", SCOPE),
    ("pg", "information_schema.columns", SCOPE),
    ("pg", "INFORMATION_SCHEMA.TABLES", MISSING),
    ("pg", "PG_CATALOG.PG_AUTHID", MISSING),
    ("pg", "scope_secret.payroll", SCOPE),
    ("pg", "scope_lab.samples", SCOPE),
    ("pg", "pg_temp.scope_alloys", MISSING),
    ("pg", "pg_toast.pg_toast_1260", SCOPE),
    ("pg", "scope_v_authid", SCOPE),
    ("pg", "scope_v_roles", SCOPE),
    ("pg", "scope_v_secret", SCOPE),
    ("pg", "scope_v_nested", SCOPE),
    ("pg", "scope_v_info", SCOPE),
    ("pg", "scope_v_sub", SCOPE),
    ("pg", "scope_m_authid", SCOPE),
    ("pg", '"pg_catalog"."pg_authid"', MALFORMED),
    ("pg", "pg_catalog . pg_authid", MALFORMED),
    ("pg_wide", "scope_secret.payroll", SCOPE),
    ("pg_wide", "pg_catalog.pg_authid", SCOPE),
    ("pg_listed", "scope_v_ok", SCOPE),
    ("pg_listed", "scope_lab.samples", SCOPE),
]

MARIADB_ATTACKS = [
    ("mysql.user", SCOPE),
    ("mysql.global_priv", SCOPE),
    ("MYSQL.USER", (SCOPE, MISSING)),
    ("information_schema.tables", SCOPE),
    ("INFORMATION_SCHEMA.TABLES", SCOPE),
    ("information_schema.USER_PRIVILEGES", SCOPE),
    ("performance_schema.threads", SCOPE),
    ("{other}.payroll", SCOPE),
    ("scope_v_user", SCOPE),
    ("scope_v_info", SCOPE),
    ("scope_v_other", SCOPE),
    ("scope_v_nested", SCOPE),
    ("scope_v_cte", SCOPE),
    ("scope_v_sub", SCOPE),
    ("scope_v_join", SCOPE),
    ("user", MISSING),
    ("`mysql`.`user`", MALFORMED),
]

FILE_ATTACKS = [
    ("../secrets/keys.csv", "outside the store"),
    ("sub/../../secrets/keys.csv", "outside the store"),
    ("link.csv", "outside the store"),
    ("linkdir", "outside the store"),
    ("linkdir/keys.csv", "outside the store"),
    ("mixed", "a link outside the store"),
    ("/etc/passwd", "not a path relative to the store"),
    ("ok.csv\x00.parquet", "not a path relative to the store"),
]


def _refused(response: Any, fragments: str | tuple[str, ...]) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    wanted = (fragments,) if isinstance(fragments, str) else fragments
    assert any(f in response.json()["detail"] for f in wanted), response.json()["detail"]


@pytest.mark.parametrize(("table", "reason"), SQLITE_ATTACKS)
def test_sqlite_registration_stays_in_scope(request, table, reason):
    _refused(_register(request, "sqlite", "lite", table), reason)


@pytest.mark.postgres
@pytest.mark.parametrize(("store", "table", "reason"), PG_ATTACKS)
def test_postgres_registration_stays_in_scope(request, store, table, reason):
    _refused(_register(request, "postgres", store, table), reason)


@pytest.mark.mariadb
@pytest.mark.parametrize(("table", "reason"), MARIADB_ATTACKS)
def test_mariadb_registration_stays_in_scope(request, table, reason):
    _refused(_register(request, "mariadb", "maria", table), reason)


@pytest.mark.parametrize(("table", "reason"), FILE_ATTACKS)
def test_files_registration_stays_in_folder(request, table, reason):
    _refused(_register(request, "sqlite", "folder", table), reason)


ALLOWED = [
    ("sqlite", "lite", "alloys"),
    ("sqlite", "lite", "main.alloys"),
    ("sqlite", "lite", "MAIN.alloys"),
    ("sqlite", "lite", "v_ok"),
    ("sqlite", "folder", "ok.csv"),
    ("sqlite", "folder", "sub/../ok.csv"),
    pytest.param("postgres", "pg", "scope_alloys", marks=pytest.mark.postgres),
    pytest.param("postgres", "pg", "public.scope_alloys", marks=pytest.mark.postgres),
    pytest.param("postgres", "pg", "scope_v_ok", marks=pytest.mark.postgres),
    pytest.param("postgres", "pg_wide", "scope_lab.samples", marks=pytest.mark.postgres),
    pytest.param("postgres", "pg_listed", "scope_alloys", marks=pytest.mark.postgres),
    pytest.param("postgres", "pg_listed", "public.scope_alloys", marks=pytest.mark.postgres),
    pytest.param("mariadb", "maria", "scope_alloys", marks=pytest.mark.mariadb),
    pytest.param("mariadb", "maria", "scope_v_ok", marks=pytest.mark.mariadb),
]


@pytest.mark.parametrize(("engine", "store", "table"), ALLOWED)
def test_what_the_store_exposes_registers(request, engine, store, table):
    r = _register(request, engine, store, table)
    assert r.status_code == 201, r.text


# ---- query time -------------------------------------------------------------------------

QUERY_TIME = [
    ("sqlite", "sqlite_master", "rootpage"),
    ("sqlite", "v_master", "id"),
    pytest.param("postgres", "pg_catalog.pg_authid", "rolname", marks=pytest.mark.postgres),
    pytest.param("postgres", "scope_v_authid", "id", marks=pytest.mark.postgres),
    pytest.param("mariadb", "mysql.user", "User", marks=pytest.mark.mariadb),
    pytest.param("mariadb", "scope_v_user", "User", marks=pytest.mark.mariadb),
]


@pytest.mark.parametrize(("engine", "table", "column"), QUERY_TIME)
def test_query_time_refusal(request, engine, table, column):
    """The connector itself refuses, for counts and reads, without any catalog in front."""
    fixture = {"sqlite": "sqlite_url", "postgres": "postgres_url", "mariadb": "mariadb_scope_url"}
    with SQLConnector(request.getfixturevalue(fixture[engine])) as connector:
        query = Query(table, (column,))
        with pytest.raises(TableError, match=SCOPE):
            connector.count(query)
        with pytest.raises(TableError, match=SCOPE):
            next(iter(connector.batches(query)))


def test_attached_and_temp_databases_are_outside_main(tmp_path: Path) -> None:
    """An attached database and temp objects are refused unless the scope names them."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE payroll (id INTEGER)")
    main = tmp_path / "main.db"
    with sqlite3.connect(main) as conn:
        conn.execute("CREATE TABLE alloys (id INTEGER)")
    connector = SQLConnector(f"sqlite:///{main}")

    @sa.event.listens_for(connector.engine, "connect")
    def _attach(dbapi: Any, _record: Any) -> None:
        dbapi.execute(f"ATTACH DATABASE '{other}' AS other")
        dbapi.execute("CREATE TEMP VIEW tv AS SELECT id FROM other.payroll")
        dbapi.execute("CREATE TEMP TABLE alloys_tmp (id INTEGER)")

    connector.engine.dispose()
    for table in ("other.payroll", "OTHER.payroll", "tv", "temp.tv", "alloys_tmp"):
        with pytest.raises(TableError, match=SCOPE):
            connector.columns(table)
    assert connector.columns("alloys") == {"id": connector.columns("alloys")["id"]}
    connector.close()
    wide = SQLConnector(f"sqlite:///{main}", scope=Scope(schemas=("main", "other")))
    sa.event.listen(wide.engine, "connect", _attach)
    assert "id" in wide.columns("other.payroll")
    with pytest.raises(TableError, match=SCOPE):
        wide.columns("tv")  # temp is still outside
    wide.close()


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_files_connector_refuses_links_at_query_time(files_root: Path) -> None:
    """The files connector refuses paths out of its folder for reads, not only registration."""
    connector = FilesConnector(files_root)
    for table in ("link.csv", "linkdir", "mixed", "../secrets/keys.csv"):
        with pytest.raises(TableError, match="outside the store"):
            next(iter(connector.batches(Query(table, ("id",)))))
    assert connector.count(Query("ok.csv", ("id",))) == 2


def test_a_config_dataset_outside_the_scope_stops_the_node(tmp_path, sqlite_url) -> None:
    """Registration from the config at start-up is held to the same scope."""
    stores = {"lite": {"kind": "sql", "url": sqlite_url}}
    dataset = entry("master", "lite", "sqlite_master", [column_entry("rootpage")])
    del dataset["institution"]
    # The demo's faces name its datasets, which this config replaces: serve no faces.
    extra = {"datasets": [dataset], "optimade": {}, "shares": []}
    with pytest.raises(Unprocessable, match=SCOPE), node_with(tmp_path, stores, **extra):
        pass


@pytest.mark.mariadb
def test_a_system_default_schema_is_never_an_implicit_scope(mariadb_url) -> None:
    """A URL whose database is a system one exposes nothing until the config names schemas."""
    url = mariadb_url.rsplit("/", 1)[0] + "/mysql"
    with SQLConnector(url) as connector, pytest.raises(TableError, match="system schema"):
        connector.columns("user")
