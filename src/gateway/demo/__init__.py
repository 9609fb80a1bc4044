"""``matgate demo``: a federation of three institutions on embedded stores, with real data.

Everything lives under one folder (``--data-dir``): each institution gets a folder with its
node config (``node.toml``, a real config you can read and edit), its stores, its node database
and its signing key. Aurora keeps a SQLite database and a folder of Parquet/CSV files, Borealis a
folder of CSV files, Cygnus a SQLite database of its own; their nodes listen on PORT, PORT+1 and
PORT+2 and name each other as peers. ``demo.json`` lists the nodes and ready-made personas with
their tokens, for scripts and notebooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from gateway.demo import borealis, cygnus
from gateway.demo.aurora import AURORA, BOREALIS, aurora_policy
from gateway.demo.aurora import datasets as aurora_datasets
from gateway.demo.aurora import stores as aurora_stores
from gateway.demo.cygnus import CYGNUS
from gateway.demo.stores import TABLES, load_sqlite, write_files
from gateway.demo.tour import guide

__all__ = [
    "PERSONAS",
    "Persona",
    "aurora_policy",
    "guide",
    "main",
    "personas",
    "prepare",
    "prepare_federation",
]

DAY = 86400


@dataclass(frozen=True)
class Persona:
    """A demo user: who, of which institution, with which roles at home."""

    name: str
    subject: str
    institution: str
    roles: tuple[str, ...]
    about: str


PERSONAS = (
    Persona(
        "ml-user", "mia", AURORA, ("member",), "ML user at Aurora: pulls slices, trains models"
    ),
    Persona("partner", "pablo", BOREALIS, ("member",), "Researcher of the partner Borealis"),
    Persona("steward", "sana", AURORA, ("member", "steward"), "Aurora's data steward"),
    Persona("auditor", "ari", AURORA, ("auditor",), "Aurora's auditor"),
)

INSTITUTIONS = (AURORA, BOREALIS, CYGNUS)
TITLES = {
    AURORA: "Aurora Institute for Materials",
    BOREALIS: "Borealis Materials Laboratory",
    CYGNUS: "Cygnus Centre for Alloys and Compounds",
}


def _site(
    institution: str, now: dt.datetime
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Stores, catalog entries and policy of one institution."""
    if institution == AURORA:
        return aurora_stores(), aurora_datasets(), aurora_policy()
    if institution == BOREALIS:
        stores = {"csv": {"kind": "files", "path": "stores/csv"}}
        entries = [borealis.oxide_gaps("csv"), borealis.superalloy_creep("csv")]
        return stores, entries, borealis.policy()
    stores = {"registry": {"kind": "sql", "url": "sqlite:///stores/registry.db"}}
    entries = [cygnus.halide_gaps("registry", now), cygnus.cobalt_steels("registry")]
    return stores, entries, cygnus.policy()


# Each node serves one formula dataset at /optimade and offers one share over Delta Sharing.
FACES: dict[str, dict[str, Any]] = {
    AURORA: {
        "optimade": {"structures": [{"dataset": "expt-gap", "formula": "formula"}]},
        "shares": [
            {"name": "superalloys", "datasets": ["ni-superalloys"], "institutions": [BOREALIS]}
        ],
    },
    BOREALIS: {
        "optimade": {"structures": [{"dataset": "oxide-gaps", "formula": "formula"}]},
        "shares": [{"name": "oxides", "datasets": ["oxide-gaps"], "institutions": [AURORA]}],
    },
    CYGNUS: {
        "optimade": {"structures": [{"dataset": "halide-gaps", "formula": "formula"}]},
        "shares": [
            {"name": "cobalt", "datasets": ["cobalt-steels"], "institutions": [AURORA, BOREALIS]}
        ],
    },
}


def _fill_stores(
    home: Path, stores: dict[str, Any], entries: list[dict[str, Any]], now: dt.datetime
) -> None:
    """Load each dataset's rows into its store, unless a previous run already did."""
    for name, store in stores.items():
        mine = [e for e in entries if e["location"]["store"] == name]
        if store["kind"] == "files":
            folder = home / store["path"]
            missing = [e for e in mine if not (folder / e["location"]["table"]).exists()]
            write_files(folder, {e["location"]["table"]: _rows(home, e, now) for e in missing})
        else:
            path = home / store["url"].removeprefix("sqlite:///")
            if not path.exists():
                load_sqlite(path, {e["location"]["table"]: _rows(home, e, now) for e in mine})


def _rows(home: Path, entry: dict[str, Any], now: dt.datetime) -> Any:
    return TABLES[f"{home.name}/{entry['name']}"](now)


def _peers(institution: str, urls: dict[str, str]) -> list[dict[str, Any]]:
    """Every other node of the federation, trusted by its JWKS, on loopback."""
    return [
        {
            "institution": other,
            "url": url,
            "jwks_url": f"{url}/.well-known/jwks.json",
            "allow_private_network": True,
        }
        for other, url in urls.items()
        if other != institution
    ]


def _prepare_site(
    root: Path, institution: str, port: int, urls: dict[str, str], now: dt.datetime
) -> dict[str, Any]:
    home = root / institution
    stores, entries, policy = _site(institution, now)
    _fill_stores(home, stores, entries, now)
    url = f"http://127.0.0.1:{port}"
    config: dict[str, Any] = {
        "node": {
            "institution": institution,
            "title": TITLES[institution],
            "public_url": url,
            # A fictional institution: its data desk is an address of the reserved .example domain.
            "contact": f"data-desk@{institution}.example",
        },
        "stores": stores,
        "datasets": entries,
        "policy": policy,
        **FACES[institution],
    }
    peers = _peers(institution, urls)
    if peers:
        config["peers"] = peers
    (home / "node.toml").write_text(tomli_w.dumps(config))
    return {"institution": institution, "url": url, "home": home, "port": port}


def prepare(root: Path, port: int, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Write Aurora's stores and node config (no peers) under ``root``; return its plan."""
    now = now or dt.datetime.now(dt.UTC)
    return _prepare_site(root, AURORA, port, {}, now)


def prepare_federation(
    root: Path, port: int, *, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Write the three nodes' stores and configs (ports PORT..PORT+2); return their plans."""
    now = now or dt.datetime.now(dt.UTC)
    urls = {inst: f"http://127.0.0.1:{port + i}" for i, inst in enumerate(INSTITUTIONS)}
    return [_prepare_site(root, inst, port + i, urls, now) for i, inst in enumerate(INSTITUTIONS)]


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
        audit_checkpoint_seconds=10.0,  # the three nodes witness each other every 10 s
    )


def personas(nodes: dict[str, Any]) -> list[dict[str, Any]]:
    """Each persona with a token from their home node, and guest tokens from the other nodes."""
    out = []
    for p in PERSONAS:
        home = nodes.get(p.institution) or next(iter(nodes.values()))

        def mint(node: Any, p: Persona = p) -> str:
            return str(
                node.issuer.mint(
                    p.subject, roles=p.roles, institution=p.institution, ttl_seconds=2 * DAY
                )
            )

        out.append(
            {
                "name": p.name,
                "subject": p.subject,
                # What policy lines name them by (their tokens are the operator's word, so
                # their namespace is their institution; see gateway.identity).
                "principal": f"{p.institution}:{p.subject}",
                "institution": p.institution,
                "roles": list(p.roles),
                "about": p.about,
                "token": mint(home),
                # Issued by another node's operator to a guest: roles count only at home.
                "guest_tokens": {
                    inst: mint(node) for inst, node in nodes.items() if node is not home
                },
            }
        )
    return out


def main(data_dir: Path, port: int) -> int:
    """Run the demo federation until interrupted."""
    import uvicorn

    from gateway.app import create_app

    root = data_dir.resolve()
    free_ports([port + i for i in range(len(INSTITUTIONS))])
    now = dt.datetime.now(dt.UTC)
    plans = prepare_federation(root, port, now=now)
    apps = {p["institution"]: create_app(_settings(p)) for p in plans}
    nodes = {name: app.state.node for name, app in apps.items()}
    demo = {
        "nodes": [
            {
                "institution": p["institution"],
                "url": p["url"],
                # what an auditor pins: the log key's fingerprint and the witness key
                "log_key": nodes[p["institution"]].notary.key.vkey(),
                "fingerprint": nodes[p["institution"]].key.kid,
                "witness": nodes[p["institution"]].witness.key.vkey(),
            }
            for p in plans
        ],
        "personas": personas(nodes),
        "embargo_until": cygnus.embargo_until(now).date().isoformat(),
    }
    path = root / "demo.json"
    servers = [
        _Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=p["port"], log_level="warning", lifespan="on"
            )
        )
        for p, app in zip(plans, apps.values(), strict=True)
    ]

    def ready() -> None:
        # Only now, with every node answering, is the demo "running": write its file, say so.
        path.write_text(json.dumps(demo, indent=2))
        print(guide(demo, path), flush=True)

    asyncio.run(_serve(servers, [p["url"] for p in plans], ready))
    print("matgate demo stopped.", file=sys.stderr)
    return 0


def free_ports(ports: list[int]) -> None:
    """Raise OSError naming the first of ``ports`` on 127.0.0.1 that another process holds."""
    import errno
    import socket

    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise OSError(
                    errno.EADDRINUSE,
                    f"port {port} on 127.0.0.1 is in use (is a demo already running? "
                    f"give --port; the demo needs {ports[0]}-{ports[-1]})",
                ) from exc


async def _answering(urls: list[str], seconds: float = 120.0) -> None:
    """Wait until every node answers its /healthz; TimeoutError names one that does not."""
    import httpx

    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with httpx.AsyncClient(timeout=2.0) as http:
        for url in urls:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                if loop.time() > deadline:
                    raise TimeoutError(f"the node at {url} did not answer /healthz in {seconds} s")
                await asyncio.sleep(0.1)


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


async def _serve(servers: list[_Server], urls: list[str], ready: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()

    def stop_all() -> None:
        for server in servers:
            server.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_all)
    running = [asyncio.ensure_future(s.serve()) for s in servers]
    answering = asyncio.ensure_future(_answering(urls))
    await asyncio.wait([answering, *running], return_when=asyncio.FIRST_COMPLETED)
    if not answering.done() or answering.exception() is not None:
        # a node stopped (or never answered) before all were up: stop the others, say which
        stop_all()
        answering.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        failed = answering.exception() if answering.done() and not answering.cancelled() else None
        raise failed or OSError("a demo node stopped while starting (see the lines above)")
    ready()
    await asyncio.gather(*running)
