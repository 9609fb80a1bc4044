"""A federation of three real nodes on loopback (alpha, beta, gamma), for the federation tests.

Each node has a SQLite store of its own with the same ``gaps`` table shape (so the datasets can be
unioned), its own key, and a config that names the two others as peers (beta's keys inline,
the others' by JWKS URL). The owners' policies: a partner may read ``gaps`` for research only;
beta withholds the personal ``operator`` column and keeps rows below 500 °C; gamma masks the
confidential ``cost`` column; beta's ``gaps-sa`` is share-alike, gamma's ``gaps-nc``
non-commercial (they cannot be combined), gamma's ``gaps-kelvin`` measures in K.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from gateway_support import LiveServer, free_port

from gateway.app import create_app
from gateway.config import NodeConfig
from gateway.keys import NodeKey
from gateway.settings import Settings

__all__ = ["INSTITUTIONS", "World", "build_world", "rows_of"]

INSTITUTIONS = ("alpha", "beta", "gamma")
USERS = {"alpha": "ana", "beta": "ben", "gamma": "gil"}
ROWS = 40
COLUMNS = ["sample_id", "formula", "temperature_c", "band_gap_ev", "operator", "cost"]
FORMULAS = ["GaN", "ZnO", "Si", "GaAs", "TiO2", "CdTe", "InP", "SiC"]


def rows_of(institution: str) -> list[dict[str, Any]]:
    """The ``gaps`` rows of ``institution`` (what its store holds)."""
    salt = INSTITUTIONS.index(institution)
    return [
        {
            "sample_id": f"{institution}-{i}",
            "formula": FORMULAS[(i + salt) % len(FORMULAS)],
            "temperature_c": float(i * 25),
            "band_gap_ev": round(0.5 + ((i * 7 + salt) % 30) / 10, 2),
            "operator": f"op{i % 3}@{institution}",
            "cost": float(100 + i),
        }
        for i in range(ROWS)
    ]


def _columns(temperature_unit: str = "degC") -> list[dict[str, Any]]:
    return [
        {"name": "sample_id", "type": "string", "pspp": "identifier"},
        {"name": "formula", "type": "string", "pspp": "structure"},
        {
            "name": "temperature_c",
            "type": "float",
            "unit": temperature_unit,
            "pspp": "processing",
        },
        {"name": "band_gap_ev", "type": "float", "unit": "eV", "pspp": "property"},
        {"name": "operator", "type": "string", "pspp": "identifier", "sensitivity": "personal"},
        {
            "name": "cost",
            "type": "float",
            "unit": "EUR",
            "pspp": "performance",
            "sensitivity": "confidential",
        },
    ]


def dataset_doc(name: str, licence: str, unit: str = "degC") -> dict[str, Any]:
    """A dataset entry of a node config (no institution: the node fills it in)."""
    return {
        "name": name,
        "title": f"Band gaps ({name})",
        "description": "Measured optical band gaps of semiconductor samples.",
        "keywords": ["band gap", "semiconductor"],
        "license": licence,
        "citation": f"The {name} team, 2026.",
        "location": {"store": "lab", "table": name.replace("-", "_")},
        "columns": _columns(unit),
    }


def _datasets(institution: str) -> list[dict[str, Any]]:
    out = [dataset_doc("gaps", "CC-BY-4.0" if institution != "gamma" else "CC0-1.0")]
    if institution == "alpha":
        out.append(dataset_doc("private-notes", "CC-BY-4.0"))
    if institution == "beta":
        out.append(dataset_doc("gaps-sa", "CC-BY-SA-4.0"))
    if institution == "gamma":
        out += [dataset_doc("gaps-nc", "CC-BY-NC-4.0"), dataset_doc("gaps-kelvin", "CC0-1.0", "K")]
    return out


def _policy(institution: str) -> dict[str, Any]:
    others = [i for i in INSTITUTIONS if i != institution]
    limits: dict[str, Any] = {}
    if institution == "beta":
        limits = {"withhold": ["sensitivity:personal"], "rows": "temperature_c < 500"}
    if institution == "gamma":
        limits = {"withhold": ["sensitivity:confidential"], "mask": "hash"}
    lines: list[dict[str, Any]] = [
        {"role": "member", "domain": institution, "action": "discover"},
        {"role": "member", "domain": institution, "action": "read"},
        {"role": "auditor", "domain": institution, "action": "audit"},
    ]
    for pattern in ("gaps", "gaps-*"):
        lines.append(
            {"role": "partner", "domain": institution, "dataset": pattern, "action": "discover"}
        )
        lines.append(
            {
                "role": "partner",
                "domain": institution,
                "dataset": pattern,
                "action": "read",
                "purpose": "research",
                **limits,
            }
        )
    return {
        "assignments": [
            {"institution": o, "role": "partner", "domain": institution} for o in others
        ],
        "lines": lines,
    }


def _store(path: Path, institution: str) -> None:
    engine = sa.create_engine(f"sqlite:///{path}")
    md = sa.MetaData()
    names = [d["location"]["table"] for d in _datasets(institution)]
    tables = [
        sa.Table(
            n,
            md,
            sa.Column("sample_id", sa.Text()),
            sa.Column("formula", sa.Text()),
            sa.Column("temperature_c", sa.Float()),
            sa.Column("band_gap_ev", sa.Float()),
            sa.Column("operator", sa.Text()),
            sa.Column("cost", sa.Float()),
        )
        for n in names
    ]
    md.create_all(engine)
    with engine.begin() as conn:
        for t in tables:
            conn.execute(t.insert(), rows_of(institution))
    engine.dispose()


@dataclass
class World:
    """Running nodes by institution, their URLs, apps and a user token per institution."""

    root: Path
    ports: dict[str, int]
    keys: dict[str, NodeKey]
    apps: dict[str, FastAPI] = field(default_factory=dict)
    servers: dict[str, LiveServer] = field(default_factory=dict)

    def url(self, institution: str) -> str:
        """The node's base URL."""
        return f"http://127.0.0.1:{self.ports[institution]}"

    def token(
        self,
        institution: str,
        *,
        user: str | None = None,
        roles: tuple[str, ...] = ("member",),
        of: str | None = None,
    ) -> str:
        """A token from ``institution``'s node for its user (or a guest of ``of``)."""
        issuer = self.apps[institution].state.node.issuer
        return issuer.mint(
            user or USERS[of or institution], roles=roles, institution=of or institution
        )

    def headers(self, institution: str, **kwargs: Any) -> dict[str, str]:
        """Authorization headers for ``token``."""
        return {"Authorization": f"Bearer {self.token(institution, **kwargs)}"}

    def node(self, institution: str) -> Any:
        """The running node's services."""
        return self.apps[institution].state.node

    def stop(self) -> None:
        """Stop every server."""
        for server in self.servers.values():
            server.stop()


def peer_entry(
    world: World, institution: str, *, inline: bool = False, **overrides: Any
) -> dict[str, Any]:
    """The ``[[peers]]`` entry naming ``institution``: beta's keys inline, others' by URL."""
    entry: dict[str, Any] = {
        "institution": institution,
        "url": world.url(institution),
        "allow_private_network": True,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "deadline": 10.0,
        "slice_deadline": 20.0,
        "retries": 1,
    }
    if inline or institution == "beta":
        entry["jwks"] = world.keys[institution].jwks()
    else:
        entry["jwks_url"] = world.url(institution) + "/.well-known/jwks.json"
    entry.update(overrides)
    return entry


def node_config(world: World, institution: str, peers: list[dict[str, Any]]) -> NodeConfig:
    """The config of ``institution``'s node with the given peer entries."""
    home = world.root / institution
    return NodeConfig.model_validate(
        {
            "node": {
                "institution": institution,
                "title": institution.title(),
                "public_url": world.url(institution),
            },
            "stores": {"lab": {"kind": "sql", "url": f"sqlite:///{home / 'lab.db'}"}},
            "datasets": _datasets(institution),
            "peers": peers,
            "policy": _policy(institution),
        }
    )


def settings_for(world: World, institution: str) -> Settings:
    """Quiet local settings of ``institution``'s node."""
    home = world.root / institution
    return Settings(
        data_dir=home / "node",
        port=world.ports[institution],
        public_url=world.url(institution),
        log_json=False,
        log_level="ERROR",
        audit_checkpoint_seconds=3600,
    )


def build_world(
    root: Path,
    peers_of: dict[str, list[dict[str, Any]]] | None = None,
    *,
    inline: bool = False,
) -> World:
    """Stores, keys and configs of the three nodes; the apps are made but not served."""
    ports = {i: free_port() for i in INSTITUTIONS}
    keys = {}
    for inst in INSTITUTIONS:
        home = root / inst
        (home / "node").mkdir(parents=True)
        _store(home / "lab.db", inst)
        keys[inst] = NodeKey.load_or_create(home / "node" / "node_key.pem")
    world = World(root, ports, keys)
    for inst in INSTITUTIONS:
        peers = (peers_of or {}).get(inst)
        if peers is None:
            peers = [peer_entry(world, o, inline=inline) for o in INSTITUTIONS if o != inst]
        world.apps[inst] = create_app(settings_for(world, inst), node_config(world, inst, peers))
    return world


def serve(world: World, *institutions: str) -> Iterator[World]:
    """Serve the given nodes (all by default) until the generator is closed."""
    for inst in institutions or INSTITUTIONS:
        world.servers[inst] = LiveServer(world.apps[inst], world.ports[inst]).start()
    try:
        yield world
    finally:
        world.stop()


def now() -> dt.datetime:
    """The current time, in UTC."""
    return dt.datetime.now(dt.UTC)
