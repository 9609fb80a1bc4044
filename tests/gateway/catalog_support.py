"""Synthetic catalogs for the catalog tests: a SQLite store, datasets on it, search criteria.

Everything is drawn from a seeded generator, so a failing case names its seed and repeats.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.datasets import Dataset, PSPPRole
from gateway.catalog import Catalog
from gateway.catalog_search import Criteria
from gateway.config import StoreConfig
from gateway.db import create_engine
from gateway.migrations import migrate
from gateway.stores import Stores

__all__ = ["LICENCES", "OPEN", "catalog_on", "criteria", "datasets", "node_database", "store"]

TABLES = 4
COLUMNS = [f"c{i}" for i in range(8)]
WORDS = [
    "alloy", "alloys", "band", "gap", "gaps", "yield", "strength", "steel", "nickel", "oxide",
    "perovskite", "thermal", "conductivity", "creep", "fatigue", "hardness", "grain", "phase",
    "density", "x-ray", "dft", "élan", "μm", "superalloy", "yield_point", "2.5",
]  # fmt: skip
UNITS = ["MPa", "eV", "K", "degC", "g/cm^3", "W/(m K)", "wt%", "μm", None]
OPEN: list[sa.Engine] = []  # engines of the catalogs made, disposed after each test
LICENCES = ["CC-BY-4.0", "CC0-1.0", "MIT", "Apache-2.0"]


def store(folder: Path) -> Stores:
    """A SQLite store ``lab`` with the tables the synthetic datasets name."""
    url = f"sqlite:///{folder / 'lab.db'}"
    engine = sa.create_engine(url)
    md = sa.MetaData()
    for i in range(TABLES):
        sa.Table(
            f"t{i}",
            md,
            sa.Column("formula", sa.Text()),
            *(sa.Column(c, sa.Float()) for c in COLUMNS),
        )
    md.create_all(engine)
    engine.dispose()
    return Stores({"lab": StoreConfig(kind="sql", url=url)})


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def datasets(seed: int, n: int, *, institution: str = "alpha", prefix: str = "ds") -> list[Dataset]:
    """``n`` datasets of ``institution`` with words, units, roles and licences drawn at random."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        names = rng.sample(COLUMNS, rng.randint(1, 4))
        columns = [{"name": "formula", "type": "string", "pspp": "structure"}]
        columns += [
            {
                "name": name,
                "type": "float",
                "unit": rng.choice(UNITS),
                "pspp": rng.choice(list(PSPPRole)).value,
                "description": _words(rng, rng.randint(0, 3)),
            }
            for name in names
        ]
        out.append(
            Dataset.model_validate(
                {
                    "institution": institution,
                    "name": f"{prefix}-{rng.randrange(10**6):06d}-{i}",
                    "title": _words(rng, 3).capitalize(),
                    "description": _words(rng, rng.randint(0, 8)),
                    "keywords": [rng.choice(WORDS) for _ in range(rng.randint(0, 3))],
                    "license": rng.choice(LICENCES),
                    "location": {"store": "lab", "table": f"t{rng.randrange(TABLES)}"},
                    "columns": columns,
                }
            )
        )
    return out


def criteria(seed: int, n: int) -> list[Criteria]:
    """``n`` searches mixing every criterion the catalog has."""
    rng = random.Random(seed)
    out = [Criteria()]
    for _ in range(n):
        out.append(
            Criteria(
                q=_words(rng, rng.randint(1, 2))[: rng.choice([2, 3, 40])]
                if rng.random() < 0.7
                else None,
                pspp=tuple(rng.sample(list(PSPPRole), rng.randint(1, 2)))
                if rng.random() < 0.3
                else (),
                column=rng.choice(["c1", "C2", "c", "formula", "1"])
                if rng.random() < 0.2
                else None,
                unit=rng.choice([u or "none" for u in UNITS]) if rng.random() < 0.3 else None,
                license=rng.choice(LICENCES).lower() if rng.random() < 0.3 else None,
                institution=rng.choice(["alpha", "beta"]) if rng.random() < 0.2 else None,
            )
        )
    return out


def node_database(kind: str, request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    """A node database URL: SQLite in ``folder``, or a fresh schema of the PostgreSQL server."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'node.db'}"
        return
    base = str(request.getfixturevalue("pg_url"))
    schema = f"catalog_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def catalog_on(url: str, stores: Stores) -> tuple[Catalog, sa.Engine]:
    """A catalog on a migrated node database."""
    engine = create_engine(url)
    OPEN.append(engine)
    migrate(engine)
    return Catalog(engine, stores), engine


def rows(engine: sa.Engine) -> list[dict[str, Any]]:
    """Every catalog row, its registration time and author left out."""
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT * FROM catalog_datasets ORDER BY id")).mappings()
        return [
            {k: v for k, v in r.items() if k not in ("registered_at", "registered_by")}
            for r in found
        ]
