"""A small node of our own on a store of our choice, for attacks that need to break or compare.

The node ``lab`` serves tables of band-gap samples whose ``operator`` column is personal: its
members read it hashed (a ``hash`` mask), its auditors audit. Each table is a dataset.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from gateway_support import free_port

from gateway.app import create_app
from gateway.config import NodeConfig
from gateway.settings import Settings

__all__ = ["OPERATORS", "bearer", "lab_app", "lab_config", "load_samples", "sample_rows"]

# The attacker's dictionary: every operator of the lab is in it.
OPERATORS = (
    "Ada Lovelace",
    "Marie Curie",
    "Lise Meitner",
    "Dorothy Hodgkin",
    "Rosalind Franklin",
    "Chien-Shiung Wu",
    "Kathleen Lonsdale",
    "Emmy Noether",
)
COLUMNS = [
    {"name": "sample_id", "type": "string", "pspp": "identifier"},
    {"name": "formula", "type": "string", "pspp": "structure"},
    {"name": "band_gap_ev", "type": "float", "unit": "eV", "pspp": "property"},
    {"name": "operator", "type": "string", "pspp": "identifier", "sensitivity": "personal"},
]


def sample_rows(n: int = 24) -> list[dict[str, Any]]:
    """Rows of the sample table; operators repeat."""
    return [
        {
            "sample_id": f"s{i}",
            "formula": ("GaN", "ZnO", "Si", "CdTe")[i % 4],
            "band_gap_ev": round(0.5 + i / 10, 2),
            "operator": OPERATORS[i % len(OPERATORS)],
        }
        for i in range(n)
    ]


def load_samples(url: str, table: str, rows: list[dict[str, Any]] | None = None) -> None:
    """Create ``table`` in the store at ``url`` and fill it."""
    engine = sa.create_engine(url)
    t = sa.Table(
        table,
        sa.MetaData(),
        sa.Column("sample_id", sa.String(32)),
        sa.Column("formula", sa.String(32)),
        sa.Column("band_gap_ev", sa.Float()),
        sa.Column("operator", sa.String(64)),
    )
    with engine.begin() as conn:
        t.drop(conn, checkfirst=True)
        t.create(conn)
        conn.execute(t.insert(), rows or sample_rows())
    engine.dispose()


def lab_config(
    url: str, tables: dict[str, str], *, institution: str = "lab", **policy: Any
) -> NodeConfig:
    """A node config: one SQL store, a dataset per ``{name: table}``, hashed operators."""
    datasets = [
        {
            "name": name,
            "title": f"Band gaps {name}",
            "license": "CC-BY-4.0",
            "location": {"store": "db", "table": table},
            "columns": COLUMNS,
        }
        for name, table in tables.items()
    ]
    lines = [
        {"role": "member", "domain": institution, "action": "discover"},
        {
            "role": "member",
            "domain": institution,
            "action": "read",
            "withhold": ["sensitivity:personal"],
            "mask": "hash",
        },
        {"role": "auditor", "domain": institution, "action": "audit"},
    ]
    return NodeConfig.model_validate(
        {
            "node": {"institution": institution, "public_url": "http://127.0.0.1:9"},
            "stores": {"db": {"kind": "sql", "url": url}},
            "datasets": datasets,
            "policy": {"lines": lines, **policy},
        }
    )


def lab_app(home: Path, config: NodeConfig, **settings: Any) -> FastAPI:
    """The node's app, its data (keys, node database) under ``home``."""
    port = free_port()
    values: dict[str, Any] = {
        "data_dir": home,
        "port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "log_json": False,
        "log_level": "WARNING",
        "audit_checkpoint_seconds": 3600,
    }
    values.update(settings)
    return create_app(Settings(**values), config)


def bearer(app: FastAPI, *, roles: tuple[str, ...] = ("member",), user: str = "") -> dict[str, str]:
    """Authorization headers of a user of the node's own institution."""
    node = app.state.node
    token = node.issuer.mint(user or f"u{uuid.uuid4().hex[:6]}", roles=list(roles))
    return {"Authorization": f"Bearer {token}"}
