"""``matgate demo``: nodes on embedded stores, loaded with real datasets, ready to pull from.

Everything lives under one folder (``--data-dir``): each institution gets a folder with its
node config (``node.toml``, a real config you can read and edit), its stores (a SQLite database
and a folder of Parquet/CSV files), its node database and its signing key. ``demo.json`` lists the
nodes and ready-made personas with their tokens, for scripts and notebooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import tomli_w

from gateway.demo import datasets as catalog
from gateway.demo.datasets import DATA

__all__ = ["Persona", "main", "prepare"]

DAY = 86400


@dataclass(frozen=True)
class Persona:
    """A demo user: who, of which institution, with which roles at home."""

    name: str
    subject: str
    institution: str
    roles: tuple[str, ...]
    about: str


AURORA = "aurora"
BOREALIS = "borealis"
PERSONAS = (
    Persona(
        "ml-user", "mia", AURORA, ("member",), "ML user at Aurora: pulls slices, trains models"
    ),
    Persona("partner", "pablo", BOREALIS, ("member",), "Researcher of the partner Borealis"),
    Persona("steward", "sana", AURORA, ("member", "steward"), "Aurora's data steward"),
    Persona("auditor", "ari", AURORA, ("auditor",), "Aurora's auditor"),
)


def aurora_policy() -> dict[str, Any]:
    """The demo's access policy, as a data steward would write it."""
    inst = AURORA
    return {
        "roles": ["member", "steward", "auditor", "partner"],
        "mask_salt": "demo-salt-not-secret",
        "assignments": [{"institution": BOREALIS, "role": "partner", "domain": inst}],
        "agreements": [
            {
                "id": "aurora-steels-terms",
                "title": "Aurora steel data terms",
                "terms": "Research use only; cite Matbench; do not redistribute the rows.",
                "dataset": f"{inst}/steels-yield",
                "acceptance_days": 365,
            }
        ],
        "lines": [
            {"role": "member", "domain": inst, "action": "discover"},
            {"role": "member", "domain": inst, "action": "read"},
            {"role": "member", "domain": inst, "action": "train"},
            {"role": "steward", "domain": inst, "action": "manage"},
            {"role": "auditor", "domain": inst, "action": "audit"},
            {"role": "auditor", "domain": inst, "action": "discover"},
            {"role": "partner", "domain": inst, "action": "discover"},
            {
                "role": "partner",
                "domain": inst,
                "dataset": "ni-superalloys",
                "action": "read",
                "purpose": "research",
                "withhold": ["sensitivity:personal"],
                "mask": "hash",
            },
            {
                "effect": "deny",
                "role": "partner",
                "domain": inst,
                "dataset": "ni-superalloys",
                "action": "read",
                "withhold": ["sensitivity:confidential"],
            },
            {"role": "partner", "domain": inst, "dataset": "expt-gap", "action": "read"},
            {
                "role": "partner",
                "domain": inst,
                "dataset": "steels-yield",
                "action": "read",
                "agreement": "aurora-steels-terms",
            },
            {"role": "partner", "domain": inst, "dataset": "magpie-elements", "action": "read"},
        ],
    }


def prepare(root: Path, port: int, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Write the demo's stores and node config under ``root``; return the node's plan."""
    now = now or dt.datetime.now(dt.UTC)
    home = root / AURORA
    stores = home / "stores"
    files = stores / "files"
    files.mkdir(parents=True, exist_ok=True)
    lab = stores / "lab.db"
    if not lab.exists():
        _load_sqlite(
            lab,
            {
                "ni_superalloys": catalog.read_ni_superalloys(DATA / "ni_superalloys.csv", now),
                "steels_yield": pacsv.read_csv(DATA / "steels_yield.csv"),
            },
        )
    if not (files / "expt_gap.parquet").exists():
        pq.write_table(pacsv.read_csv(DATA / "expt_gap.csv"), files / "expt_gap.parquet")
    magpie = files / "magpie_elements.csv"
    if not magpie.exists():
        magpie.write_bytes((DATA / "magpie_elements.csv").read_bytes())
    url = f"http://127.0.0.1:{port}"
    config = {
        "node": {
            "institution": AURORA,
            "title": "Aurora Institute for Materials",
            "public_url": url,
        },
        "stores": {
            "lab": {"kind": "sql", "url": "sqlite:///stores/lab.db"},
            "files": {"kind": "files", "path": "stores/files"},
        },
        "datasets": [
            catalog.ni_superalloys("lab"),
            catalog.steels_yield("lab"),
            catalog.expt_gap("files"),
            catalog.magpie_elements("files"),
        ],
        "policy": aurora_policy(),
    }
    (home / "node.toml").write_text(tomli_w.dumps(config))
    return {"institution": AURORA, "url": url, "home": home, "port": port}


def _load_sqlite(path: Path, tables: dict[str, Any]) -> None:
    """Create typed tables with SQLAlchemy, then bulk-load the rows through ADBC."""
    import adbc_driver_sqlite.dbapi as sqlite
    import pyarrow as pa
    import sqlalchemy as sa

    def sql_type(t: pa.DataType) -> Any:
        if pa.types.is_floating(t):
            return sa.Float()
        if pa.types.is_integer(t):
            return sa.BigInteger()
        if pa.types.is_boolean(t):
            return sa.Boolean()
        if pa.types.is_timestamp(t):
            return sa.DateTime(timezone=True)
        return sa.Text()

    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{tmp}")
    md = sa.MetaData()
    for name, table in tables.items():
        sa.Table(name, md, *(sa.Column(f.name, sql_type(f.type)) for f in table.schema))
    md.create_all(engine)
    engine.dispose()
    with sqlite.connect(str(tmp)) as conn, conn.cursor() as cur:
        for name, table in tables.items():
            cur.adbc_ingest(name, table, mode="append")
        conn.commit()
    tmp.rename(path)


def _settings(plan: dict[str, Any]) -> Any:
    from gateway.settings import Settings

    home: Path = plan["home"]
    return Settings(
        config=home / "node.toml",
        data_dir=home / "node",
        host="127.0.0.1",
        port=plan["port"],
        public_url=plan["url"],
        log_json=False,
        log_level="WARNING",
    )


def personas(nodes: dict[str, Any]) -> list[dict[str, Any]]:
    """Each persona with a token from their home node (or the first node, for guests)."""
    out = []
    for p in PERSONAS:
        node = nodes.get(p.institution) or next(iter(nodes.values()))
        token = node.issuer.mint(
            p.subject, roles=p.roles, institution=p.institution, ttl_seconds=2 * DAY
        )
        out.append(
            {
                "name": p.name,
                "subject": p.subject,
                "institution": p.institution,
                "roles": list(p.roles),
                "about": p.about,
                "token": token,
            }
        )
    return out


def guide(demo: dict[str, Any], path: Path) -> str:
    """What to type next."""
    node = demo["nodes"][0]
    user = next(p for p in demo["personas"] if p["name"] == "ml-user")
    ds = f"{node['institution']}/ni-superalloys"
    return f"""
matgate demo is running.
  node      {node["institution"]}  {node["url"]}   (API docs: {node["url"]}/docs)
  demo.json {path}   (nodes and personas with tokens valid for two days)

  export MATGATE_URL={node["url"]}
  export MATGATE_TOKEN={user["token"]}

Python:
  from gateway.client import Client
  c = Client("{node["url"]}", token="$MATGATE_TOKEN")
  c.catalog(q="yield strength", pspp="property")
  df = c.dataset("{ds}").pull(
      columns=["alloy", "test_temperature_c", "yield_strength_mpa"],
      filter="test_temperature_c > 600 AND yield_strength_mpa IS KNOWN", purpose="research")
  df.attrs["matgate"]

curl:
  curl -H "Authorization: Bearer $MATGATE_TOKEN" \\
    "{node["url"]}/datasets/{ds}/slice?purpose=research&columns=alloy,yield_strength_mpa&filter=yield_strength_mpa%20%3E%201200"

CLI:
  matgate catalog "yield strength"
  matgate pull {ds} --purpose research --filter "test_temperature_c > 600" -o slice.parquet

Ctrl-C stops every server.
"""


def main(data_dir: Path, port: int) -> int:
    """Run the demo until interrupted."""
    import uvicorn

    from gateway.app import create_app

    root = data_dir.resolve()
    plans = [prepare(root, port)]
    apps = {p["institution"]: create_app(_settings(p)) for p in plans}
    nodes = {name: app.state.node for name, app in apps.items()}
    demo = {
        "nodes": [{"institution": p["institution"], "url": p["url"]} for p in plans],
        "personas": personas(nodes),
    }
    path = root / "demo.json"
    path.write_text(json.dumps(demo, indent=2))
    servers = [
        _Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=p["port"], log_level="warning", lifespan="on"
            )
        )
        for p, app in zip(plans, apps.values(), strict=True)
    ]
    print(guide(demo, path), flush=True)
    asyncio.run(_serve(servers))
    print("matgate demo stopped.", file=sys.stderr)
    return 0


class _Server:
    """A uvicorn server that leaves signal handling to the demo, which stops them all at once."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.server = Quiet(config)

    async def serve(self) -> None:
        await self.server.serve()

    def stop(self) -> None:
        self.server.should_exit = True


async def _serve(servers: list[_Server]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: [s.stop() for s in servers])
    await asyncio.gather(*(s.serve() for s in servers))
