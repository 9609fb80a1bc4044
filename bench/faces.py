# ruff: noqa: E402  (the path fix below must run before the package imports)
"""Faces benchmark: Delta Sharing, OPTIMADE and DCAT-AP requests on a node of 100,000 datasets.

The datasets are ``bench/catalog.py``'s synthetic ones on a SQLite store; every third is renamed
``hid-...`` and hidden from members by a deny line. The node offers a share of 10,000 of them
(hidden ones interleaved) and one of 100, and maps one dataset (three rows) to OPTIMADE. Each
request is made in process by a member, ``--repeat`` times; the table gives the median wall time
and the median CPU time of the process, the first (cold: documents not yet validated) apart.

Baseline, measured in the same run: what every Delta Sharing listing or table lookup and every
OPTIMADE request did before, whatever it answered: read the catalog's visible datasets, all of
them (``catalog.iterate`` with the discover filter), cold and then with the documents validated;
and, for the DCAT catalog, the rendering of a graph of 1,000 datasets (the whole visible catalog,
66,667 datasets, was rendered in one graph before; rendering grows linearly with the datasets).

Run: ``.venv/bin/python bench/faces.py [--datasets 100000] [--repeat 20] [--keep DIR]``
(``--keep``: the node and its store stay in DIR, and a second run starts warm on them).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# bench/ holds a script named audit.py: keep the folder off the path so "audit" is the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from gateway import dcat
from gateway.access import discoverer
from gateway.app import create_app
from gateway.catalog_search import CURSOR_KEY, Criteria, local_cursor
from gateway.config import NodeConfig
from gateway.settings import Settings


def _catalog_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_catalog", _HERE / "catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CB = _catalog_bench()
INSTITUTION = CB.INSTITUTION


def config_for(store_url: str, n: int) -> tuple[NodeConfig, list[str]]:
    """The node's config: ``n`` datasets (every third hidden), two shares, one mapping."""
    docs = CB.dataset_docs(n)
    for i, doc in enumerate(docs):
        if i % 3 == 2:
            doc["name"] = f"hid-{i:06d}"
    names = [d["name"] for d in docs]
    raw = CB.raw_config(store_url, docs)
    raw["policy"]["lines"] += [
        {"role": "member", "domain": INSTITUTION, "action": "read"},
        {
            "effect": "deny",
            "role": "member",
            "domain": INSTITUTION,
            "dataset": "hid-*",
            "action": "discover",
        },
    ]
    raw["shares"] = [
        {"name": "big", "datasets": names[: min(n, 10_000)], "institutions": [INSTITUTION]},
        {"name": "small", "datasets": names[:100], "institutions": [INSTITUTION]},
    ]
    raw["optimade"] = {"structures": [{"dataset": names[0], "formula": "formula"}]}
    return NodeConfig.model_validate(raw), names


def _rows(store_url: str) -> None:
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        for formula in ("Fe2O3", "NiAl", "TiO2"):
            conn.execute(sa.text("INSERT INTO t0 (formula) VALUES (:f)"), {"f": formula})
    engine.dispose()


def timed(work: Callable[[], Any], repeat: int) -> tuple[float, float, float, float]:
    """First wall and CPU time, then the medians of the next ``repeat`` runs (seconds)."""
    walls, cpus = [], []
    for _ in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        work()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls[0], cpus[0], statistics.median(walls[1:]), statistics.median(cpus[1:])


def main() -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, help="keep the node here, reuse it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        store_url = f"sqlite:///{folder / 'lab.db'}"
        if not (folder / "lab.db").exists():
            CB.make_store(folder)
            _rows(store_url)
        config, names = config_for(store_url, args.datasets)
        settings = Settings(
            data_dir=folder / "node",
            database_url=f"sqlite:///{folder / 'node.db'}",
            public_url="http://127.0.0.1:8999",
            log_json=False,
            log_level="WARNING",
            audit_checkpoint_seconds=3600,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        create_app(settings, config).state.node.close()  # cold: registers everything
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"start-up (cold unless --keep found a node): {took:.1f} s ({cpu:.1f} s cpu)")
        app = create_app(settings, config)  # warm: no document validated yet
        _measure(app, names, args)
    return 0


def _measure(app: Any, names: list[str], args: argparse.Namespace) -> None:
    node = app.state.node
    token = node.issuer.mint("mia", roles=("member",), institution=INSTITUTION)
    member = {"Authorization": f"Bearer {token}"}
    shown = [n for n in names if not n.startswith("hid-")]
    in_big = [n for n in names[:10_000] if not n.startswith("hid-")]
    table = f"/delta-sharing/shares/big/schemas/{INSTITUTION}/tables/{in_big[-1]}"
    middle = local_cursor(Criteria(), len(names) // 2, node.key.derived(CURSOR_KEY))
    load = os.getloadavg()[0]
    rows: list[tuple[str, tuple[float, float, float, float]]] = []
    with TestClient(app) as api:

        def get(path: str, **params: Any) -> Callable[[], Any]:
            def work() -> Any:
                r = api.get(path, params=params, headers=member)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
                return r

            return work

        def walk_share() -> None:
            token_: str | None = None
            seen = 0
            while True:
                params: dict[str, Any] = {"maxResults": 500}
                if token_:
                    params["pageToken"] = token_
                body = get("/delta-sharing/shares/big/all-tables", **params)().json()
                seen += len(body["items"])
                token_ = body.get("nextPageToken")
                if token_ is None:
                    break
            assert seen == len(in_big), seen

        dcat_turtle = get("/catalog", format="turtle")
        small = get("/delta-sharing/shares/small/all-tables")
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("Delta Sharing: all-tables, first page of 100 (share of 10,000)",
             get("/delta-sharing/shares/big/all-tables", maxResults=100)),
            ("Delta Sharing: all-tables, a share of 100", small),
            ("Delta Sharing: every page of the share of 10,000 (500 a page)", walk_share),
            ("Delta Sharing: table version", get(f"{table}/version")),
            ("Delta Sharing: table metadata", get(f"{table}/metadata")),
            ("OPTIMADE: /structures (page of 20)", get("/optimade/structures")),
            ("OPTIMADE: /structures/{id}", get(f"/optimade/structures/{names[0]}:NiAl")),
            ("DCAT-AP: /catalog as Turtle, first page (100)", dcat_turtle),
            ("DCAT-AP: /catalog.jsonld, first page (100)", get("/catalog.jsonld")),
        ]  # fmt: skip
        mid = get("/catalog.jsonld", cursor=middle)
        cases.append(("DCAT-AP: /catalog.jsonld, a page mid-catalog", mid))
        for label, work in cases:
            rows.append((label, timed(work, args.repeat)))
        keep = discoverer(node, node.auth.authenticate(token))
        walk = lambda: list(node.catalog.iterate(Criteria(), keep=keep))  # noqa: E731
        node.catalog._known.clear()  # cold: as the first request after start-up found it
        rows.append(("before: every visible dataset read (each request paid this)", timed(walk, 2)))
        visible = walk()
        info = dcat.CatalogInfo(url="http://127.0.0.1:8999", institution=INSTITUTION, title="b")
        some = visible[:1_000]
        turtle = dcat.RdfFormat.TURTLE
        graph = lambda: dcat.render(dcat.catalog_graph(some, info), turtle)  # noqa: E731
        rows.append(("before: DCAT graph of 1,000 datasets rendered (Turtle)", timed(graph, 1)))
    print(f"\n{len(names):,} datasets ({len(shown):,} visible to the member); load average "
          f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    print(f"{'request':<66}{'first ms':>10}{'cpu':>8}{'median ms':>11}{'cpu':>8}")
    for label, (w0, c0, w, c) in rows:
        print(f"{label:<66}{w0 * 1e3:10.1f}{c0 * 1e3:8.1f}{w * 1e3:11.1f}{c * 1e3:8.1f}")
    node.close()


if __name__ == "__main__":
    raise SystemExit(main())
