"""Putting the demo's rows into stores: SQLite, PostgreSQL, MariaDB, or a folder of files.

``TABLES`` maps each demo dataset id to the function that builds its rows, so the same data can
be loaded into the embedded stores of ``matgate demo`` and into the real services of
``compose.yaml`` (see ``gateway.demo.seed``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gateway.demo import borealis, cygnus
from gateway.demo.datasets import DATA, read_ni_superalloys

__all__ = ["TABLES", "load_sql", "load_sqlite", "write_files"]

Reader = Callable[[dt.datetime], pa.Table]

TABLES: dict[str, Reader] = {
    "aurora/ni-superalloys": lambda now: read_ni_superalloys(DATA / "ni_superalloys.csv", now),
    "aurora/steels-yield": lambda _now: pacsv.read_csv(DATA / "steels_yield.csv"),
    "aurora/expt-gap": lambda _now: pacsv.read_csv(DATA / "expt_gap.csv"),
    "aurora/magpie-elements": lambda _now: pacsv.read_csv(DATA / "magpie_elements.csv"),
    "borealis/oxide-gaps": lambda _now: borealis.read_oxide_gaps(),
    "borealis/superalloy-creep": borealis.read_superalloy_creep,
    "cygnus/halide-gaps": lambda _now: cygnus.read_halide_gaps(),
    "cygnus/cobalt-steels": lambda _now: cygnus.read_cobalt_steels(),
}


def write_files(folder: Path, tables: Mapping[str, pa.Table]) -> None:
    """Write each table as ``folder/<name>``, Parquet or CSV by the name's suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        path = folder / name
        tmp = path.with_name(path.name + ".tmp")
        if path.suffix == ".parquet":
            pq.write_table(table, tmp)
        else:
            # Floats keep a decimal point, so that a reader infers float for 1.0 and not int.
            pacsv.write_csv(_floats_as_text(table), tmp)
        tmp.rename(path)


def _floats_as_text(table: pa.Table) -> pa.Table:
    for i, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            text = [None if v is None else repr(float(v)) for v in table[i].to_pylist()]
            table = table.set_column(i, field.name, pa.array(text, pa.string()))
    return table


def _sql_type(t: pa.DataType) -> Any:
    import sqlalchemy as sa

    if pa.types.is_floating(t):
        return sa.Float()
    if pa.types.is_integer(t):
        return sa.BigInteger()
    if pa.types.is_boolean(t):
        return sa.Boolean()
    if pa.types.is_timestamp(t):
        return sa.DateTime(timezone=True)
    return sa.Text()


def load_sqlite(path: Path, tables: Mapping[str, pa.Table]) -> None:
    """Create typed tables with SQLAlchemy, then bulk-load the rows through ADBC."""
    import adbc_driver_sqlite.dbapi as sqlite
    import sqlalchemy as sa

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{tmp}")
    md = sa.MetaData()
    for name, table in tables.items():
        sa.Table(name, md, *(sa.Column(f.name, _sql_type(f.type)) for f in table.schema))
    md.create_all(engine)
    engine.dispose()
    with sqlite.connect(str(tmp)) as conn, conn.cursor() as cur:
        for name, table in tables.items():
            cur.adbc_ingest(name, table, mode="append")
        conn.commit()
    tmp.rename(path)


def load_sql(url: str, tables: Mapping[str, pa.Table]) -> None:
    """(Re)create each table in the database at ``url`` and insert its rows, in one transaction."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        md = sa.MetaData()
        made = {
            name: sa.Table(name, md, *(sa.Column(f.name, _sql_type(f.type)) for f in t.schema))
            for name, t in tables.items()
        }
        # MariaDB's DATETIME has no zone: store UTC wall time there.
        naive = engine.dialect.name != "postgresql"
        with engine.begin() as conn:
            md.drop_all(conn)
            md.create_all(conn)
            for name, table in tables.items():
                rows = table.to_pylist()
                if naive:
                    rows = [{k: _naive(v) for k, v in row.items()} for row in rows]
                if rows:
                    conn.execute(made[name].insert(), rows)
    finally:
        engine.dispose()


def _naive(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value
