"""What a SQL store may reach: the schemas (and tables) its config exposes, and nothing else.

A table name is resolved by the database itself, as a query would resolve it, and every
relation it reads is checked against the store's ``Scope``; a view counts as the relations it
reads, recursively:

- PostgreSQL: ``EXPLAIN (VERBOSE, FORMAT JSON) SELECT * FROM <name>`` names the schema of every
  relation the plan scans, whatever ``search_path`` and quoting made of the name; a materialised
  view is followed into its definition; a foreign table is refused (it reads another server).
- MariaDB/MySQL: ``information_schema.TABLES`` gives the canonical database of the name; a view's
  definition (``information_schema.VIEWS``, always written with qualified names) is parsed with
  sqlglot and each table it names is checked the same way.
- SQLite: ``EXPLAIN SELECT * FROM <name>`` lists the b-trees the statement opens, by database
  and root page; a root page is mapped back to its table in that database's schema. SQLite's own
  tables (``sqlite_master``, ``sqlite_sequence``, ...), virtual tables (``pragma_*``) and
  databases other than the allowed ones (``temp``, attached) are refused.

Out of scope: functions a view calls (a PL/pgSQL function can read anything its owner can); the
store's database account should hold SELECT on the exposed schemas only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from connectors.errors import StoreError, TableError

__all__ = ["Scope", "check_table"]

_MAX_DEPTH = 16
# Never a store's implicit scope: a connection whose default is one of these must name its schemas.
_SYSTEM = frozenset(
    {"pg_catalog", "information_schema", "mysql", "performance_schema", "sys", "pg_toast"}
)
_SQLITE_READS = frozenset({"OpenRead", "OpenWrite", "ReopenIdx"})


@dataclass(frozen=True)
class Scope:
    """The schemas (None: the connection's default schema) and tables a store exposes."""

    schemas: tuple[str, ...] | None = None
    tables: tuple[str, ...] | None = None

    def describe(self, schemas: tuple[str, ...]) -> str:
        """The scope in words, for refusals."""
        text = f"schemas {', '.join(schemas)}"
        return text + (f"; tables {', '.join(self.tables)}" if self.tables else "")


@dataclass(frozen=True)
class _Checker:
    """One check of one name: the scope, the default schema and how names compare."""

    scope: Scope
    default: str
    fold: bool  # schema names compare case-insensitively (SQLite)
    name: str

    @property
    def schemas(self) -> tuple[str, ...]:
        if self.scope.schemas:
            return self.scope.schemas
        if self.default.lower() in _SYSTEM or self.default.lower().startswith("pg_temp"):
            raise TableError(
                f"{self.name!r}: the connection's default schema is {self.default!r}, a system "
                "schema; name the schemas the store exposes in its config"
            )
        return (self.default,)

    def _key(self, text: str) -> str:
        return text.lower() if self.fold else text

    def schema_ok(self, schema: str) -> bool:
        return self._key(schema) in {self._key(s) for s in self.schemas}

    def refuse(self, why: str) -> TableError:
        return TableError(
            f"{self.name!r} is outside the store's scope ({self.scope.describe(self.schemas)}): "
            f"{why}"
        )

    def source(self, schema: str, table: str) -> None:
        """Refuse a relation read by the name (the name itself or what its views read)."""
        if not self.schema_ok(schema):
            raise self.refuse(f"it reads {schema}.{table}")

    def target(self, schema: str, table: str) -> None:
        """Refuse the relation the name itself stands for."""
        self.source(schema, table)
        listed = self.scope.tables
        if listed is not None:
            names = {self._key(t) for t in listed}
            bare = self._key(table)
            qualified = self._key(f"{schema}.{table}")
            in_default = self._key(schema) == self._key(self.schemas[0])
            if qualified not in names and not (in_default and bare in names):
                raise self.refuse(f"{schema}.{table} is not one of the store's tables")


def check_table(engine: sa.Engine, scope: Scope, schema: str | None, table: str) -> None:
    """Refuse (TableError) a table the store's scope does not expose, or that reads outside it."""
    name = f"{schema}.{table}" if schema else table
    backend = engine.url.get_backend_name()
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                _postgres(conn, scope, schema, table, name)
            elif backend in ("mysql", "mariadb"):
                _mysql(conn, scope, schema, table, name)
            elif backend == "sqlite":
                _sqlite(conn, scope, schema, table, name)
            else:
                raise TableError(f"{name!r}: stores of kind {backend!r} cannot be scoped")
    except sa.exc.ProgrammingError as exc:
        # The database could not resolve the name (no such relation, no privilege).
        raise TableError(f"table {name!r} does not exist in the store") from exc
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot resolve {name!r} in the store") from exc


# ---- PostgreSQL ---------------------------------------------------------------------------


def _postgres(conn: sa.Connection, scope: Scope, schema: str | None, table: str, name: str) -> None:
    default = str(conn.exec_driver_sql("SELECT current_schema()").scalar())
    check = _Checker(scope, default, fold=False, name=name)
    quoted = conn.dialect.identifier_preparer.format_table(sa.table(table, schema=schema))
    oid = conn.execute(sa.text("SELECT to_regclass(:n)::oid"), {"n": quoted}).scalar()
    if oid is None:
        raise TableError(f"table {name!r} does not exist in the store")
    row = conn.execute(
        sa.text(
            "SELECT n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = :oid"
        ),
        {"oid": oid},
    ).one()
    check.target(row[0], row[1])
    _pg_sources(conn, check, f"SELECT * FROM {quoted}", 0)  # noqa: S608 - quoted by the dialect


def _pg_sources(conn: sa.Connection, check: _Checker, select: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise check.refuse("its views nest too deeply")
    plan = conn.exec_driver_sql(f"EXPLAIN (VERBOSE, FORMAT JSON) {select}").scalar()
    doc: Any = json.loads(plan) if isinstance(plan, str) else plan
    for node in _pg_nodes(doc[0]["Plan"]):
        if node.get("Node Type") == "Foreign Scan":
            raise check.refuse("it reads a foreign table")
        relation, schema = node.get("Relation Name"), node.get("Schema")
        if relation is None:
            continue
        check.source(str(schema), str(relation))
        quoted = conn.dialect.identifier_preparer.format_table(
            sa.table(str(relation), schema=str(schema))
        )
        kind = conn.execute(
            sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:n)"), {"n": quoted}
        ).scalar()
        if kind == "m":  # a materialised view holds what its definition read
            definition = conn.execute(
                sa.text("SELECT pg_get_viewdef(to_regclass(:n))"), {"n": quoted}
            ).scalar()
            _pg_sources(conn, check, str(definition).strip().rstrip(";"), depth + 1)


def _pg_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _pg_nodes(child)


# ---- MariaDB / MySQL ----------------------------------------------------------------------


def _mysql(conn: sa.Connection, scope: Scope, schema: str | None, table: str, name: str) -> None:
    default = conn.engine.url.database or conn.exec_driver_sql("SELECT DATABASE()").scalar()
    if not default:
        raise TableError(f"{name!r}: the store's URL names no database")
    check = _Checker(scope, str(default), fold=False, name=name)
    found = _mysql_resolve(conn, schema or str(default), table, name)
    check.target(found[0], found[1])
    _mysql_sources(conn, check, found, 0)


def _mysql_resolve(conn: sa.Connection, schema: str, table: str, name: str) -> tuple[str, str, str]:
    """The canonical (database, table, type) the server reads for ``schema.table``."""
    rows = conn.execute(
        sa.text(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = :s AND TABLE_NAME = :t"
        ),
        {"s": schema, "t": table},
    ).all()
    exact = [r for r in rows if r[0] == schema and r[1] == table]
    picked = exact or rows
    if len(picked) != 1:
        raise TableError(f"table {name!r} does not exist in the store")
    row = picked[0]
    return str(row[0]), str(row[1]), str(row[2])


def _mysql_sources(
    conn: sa.Connection, check: _Checker, found: tuple[str, str, str], depth: int
) -> None:
    schema, table, kind = found
    if kind != "VIEW":
        return
    if depth > _MAX_DEPTH:
        raise check.refuse("its views nest too deeply")
    definition = conn.execute(
        sa.text(
            "SELECT VIEW_DEFINITION FROM information_schema.VIEWS "
            "WHERE TABLE_SCHEMA = :s AND TABLE_NAME = :t"
        ),
        {"s": schema, "t": table},
    ).scalar()
    if not definition:
        raise check.refuse(f"the definition of view {schema}.{table} cannot be read")
    for source_schema, source in _view_tables(str(definition), schema, check):
        check.source(source_schema, source)
        _mysql_sources(
            conn, check, _mysql_resolve(conn, source_schema, source, check.name), depth + 1
        )


def _view_tables(definition: str, schema: str, check: _Checker) -> set[tuple[str, str]]:
    """The (database, table) pairs a MariaDB view definition reads (CTE names aside)."""
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError as exc:  # pragma: no cover - part of the mysql extra
        hint = "pip install 'matgate[mysql]'"
        raise StoreError(f"checking MariaDB views needs sqlglot: {hint}") from exc
    try:
        tree = sqlglot.parse_one(definition, read="mysql")
    except sqlglot.errors.ParseError:
        raise check.refuse(f"the definition of a view in {schema} cannot be parsed") from None
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    found: set[tuple[str, str]] = set()
    for node in tree.find_all(exp.Table):
        if not node.name:
            raise check.refuse(f"a view in {schema} reads from a table function")
        if not node.db and node.name.lower() in ctes:
            continue
        found.add((node.db or schema, node.name))
    return found


# ---- SQLite -------------------------------------------------------------------------------


def _sqlite(conn: sa.Connection, scope: Scope, schema: str | None, table: str, name: str) -> None:
    check = _Checker(scope, "main", fold=True, name=name)
    if table.lower().startswith("sqlite_"):
        raise check.refuse("SQLite's own tables are never served")
    databases = {int(r[0]): str(r[1]) for r in conn.exec_driver_sql("PRAGMA database_list")}
    owner = _sqlite_owner(conn, schema, table, databases)
    if owner is None:
        raise TableError(f"table {name!r} does not exist in the store")
    check.target(owner, table)
    quoted = conn.dialect.identifier_preparer.format_table(sa.table(table, schema=schema))
    opened = False
    for row in conn.exec_driver_sql(f"EXPLAIN SELECT * FROM {quoted}"):  # noqa: S608
        opcode = str(row[1])
        if opcode == "VOpen":
            raise check.refuse("it reads a virtual table")
        if opcode not in _SQLITE_READS:
            continue
        database = databases.get(int(row[4]), f"#{row[4]}")
        if not check.schema_ok(database):
            raise check.refuse(f"it reads database {database!r}")
        source = _sqlite_table(conn, database, int(row[3]))
        if source is None or source.lower().startswith("sqlite_"):
            raise check.refuse("it reads SQLite's own tables")
        opened = True
    if not opened:
        raise check.refuse("it reads no table of the store")


def _sqlite_table(conn: sa.Connection, database: str, root: int) -> str | None:
    if root == 1:
        return "sqlite_schema"
    quoted = conn.dialect.identifier_preparer.quote(database)
    return conn.execute(
        sa.text(f"SELECT tbl_name FROM {quoted}.sqlite_master WHERE rootpage = :r"),  # noqa: S608
        {"r": root},
    ).scalar()


def _sqlite_owner(
    conn: sa.Connection, schema: str | None, table: str, databases: dict[int, str]
) -> str | None:
    """The database whose table or view ``schema.table`` names, in SQLite's search order."""
    order = [schema] if schema else ["temp", *(d for _, d in sorted(databases.items()))]
    for database in order:
        if database.lower() not in {d.lower() for d in databases.values()}:
            continue
        quoted = conn.dialect.identifier_preparer.quote(database)
        hit = conn.execute(
            sa.text(
                f"SELECT 1 FROM {quoted}.sqlite_master "  # noqa: S608
                "WHERE type IN ('table', 'view') AND lower(name) = lower(:t)"
            ),
            {"t": table},
        ).first()
        if hit is not None:
            return database
    return None
