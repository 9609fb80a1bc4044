# ruff: noqa: E402  (the path fix below must run before the package imports)
"""Catalog benchmark: a node configured with 100,000 datasets, its start-up, search and listing.

Synthetic datasets (words drawn from a Zipf-distributed vocabulary of 5,000 made-up words, units,
PSPP roles and licences at random) on a SQLite store. For each node database (SQLite, PostgreSQL)
the script measures, against a baseline taken in the same run on the same database:

- **cold start**: ``Node(settings, config)`` on an empty node database, every dataset checked
  against its store, registered and audited; baseline: one ``executemany`` INSERT of the same
  documents into a bare table;
- **warm start**: the same node started again on its database; baseline: a plain
  ``SELECT id, document`` of every catalog row;
- **search**: ``GET /catalog`` (first page of 100, a member's token, in process) over a set of
  searches (common, middling and rare words, two words, unit, licence, PSPP role and their
  combinations); baseline: the reference scan in Python over the datasets in memory
  (``catalog_search.search``, what the catalog did before it had an index);
- **listing**: every page of ``GET /catalog?limit=1000`` by cursor; baseline: a plain
  ``SELECT document ... ORDER BY id`` of every row.

Validating the config (``NodeConfig``, which validates each dataset) is timed on its own.
Targets: start-up in seconds, search median < 50 ms at 100,000 datasets.

Run: ``.venv/bin/python bench/catalog.py [--datasets 100000] [--db sqlite,postgresql]
[--show-slow N]`` (``--show-slow``: the N slowest searches, by their query parameters).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a script named audit.py: keep the folder off the path so "audit" is the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import itertools
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from connectors.datasets import PSPPRole
from gateway.app import create_app
from gateway.catalog_search import Criteria, search
from gateway.config import NodeConfig
from gateway.memory import bulk, settle
from gateway.settings import Settings

INSTITUTION = "bench"
TABLES = 8
COLUMNS = [f"c{i}" for i in range(10)]
UNITS = ["MPa", "GPa", "eV", "K", "degC", "g/cm^3", "W/(m K)", "wt%", "at%", "nm", "s", "J/mol"]
LICENCES = ["CC-BY-4.0", "CC0-1.0", "MIT", "Apache-2.0"]
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _vocabulary(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 10))))
    return sorted(words)


class Words:
    """Words drawn with Zipf-like frequencies: a few everywhere, most rare."""

    def __init__(self, rng: random.Random, n: int = 5_000) -> None:
        self.rng = rng
        self.words = _vocabulary(rng, n)
        self.cumulative = list(itertools.accumulate(1 / (i + 1) for i in range(n)))

    def pick(self, k: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cumulative, k=k)


def dataset_docs(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """``n`` config entries of datasets on the ``lab`` store."""
    rng = random.Random(seed)
    words = Words(rng)
    out = []
    for i in range(n):
        names = rng.sample(COLUMNS, rng.randint(3, 8))
        columns = [{"name": "formula", "type": "string", "pspp": "structure"}]
        columns += [
            {
                "name": name,
                "type": "float",
                "unit": rng.choice(UNITS),
                "pspp": rng.choice(list(PSPPRole)).value,
                "description": " ".join(words.pick(3)),
            }
            for name in names
        ]
        out.append(
            {
                "name": f"ds-{i:06d}",
                "title": " ".join(words.pick(5)).capitalize(),
                "description": " ".join(words.pick(25)),
                "keywords": words.pick(3),
                "license": rng.choice(LICENCES),
                "location": {"store": "lab", "table": f"t{i % TABLES}"},
                "columns": columns,
            }
        )
    return out


def searches(seed: int = 2) -> list[Criteria]:
    """Searches across the spectrum: common to rare words, filters, combinations."""
    rng = random.Random(seed)
    words = Words(random.Random(1)).words  # the same vocabulary as the datasets
    found: list[Criteria] = []
    for rank in (0, 1, 2, 5, 10, 30, 100, 300, 1000, 3000, 4900):
        found.append(Criteria(q=words[rank]))
        found.append(Criteria(q=words[rank][:3]))  # a prefix
    for _ in range(15):
        found.append(Criteria(q=f"{words[rng.randrange(50)]} {words[rng.randrange(2000)]}"))
    for unit in UNITS[:6]:
        found.append(Criteria(unit=unit))
    for lic in LICENCES:
        found.append(Criteria(license=lic.lower()))
    for role in PSPPRole:
        found.append(Criteria(pspp=(role,)))
    for _ in range(15):
        found.append(
            Criteria(
                q=words[rng.randrange(500)],
                unit=rng.choice(UNITS),
                license=rng.choice(LICENCES),
                pspp=(rng.choice(list(PSPPRole)),),
            )
        )
    found.append(Criteria(q="nosuchwordanywhere"))
    return found


def make_store(folder: Path) -> str:
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
    return url


def raw_config(store_url: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "node": {"institution": INSTITUTION},
        "stores": {"lab": {"kind": "sql", "url": store_url}},
        "datasets": docs,
        "policy": {
            "lines": [{"role": "member", "domain": INSTITUTION, "action": "discover"}],
        },
    }


def node_url(kind: str, folder: Path, pg: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'node.db'}"
    schema = f"bench_catalog_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    admin.dispose()
    return f"{pg}?options=-csearch_path%3D{schema}"


def drop_schema(url: str, pg: str) -> None:
    if "search_path" not in url:
        return
    schema = url.rsplit("%3D", 1)[1]
    admin = sa.create_engine(pg)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def baseline_insert(url: str, docs: list[dict[str, Any]]) -> float:
    """One executemany INSERT of the documents into a bare table of the same database."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    table = sa.Table(
        "bench_plain_catalog",
        md,
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
    )
    md.create_all(engine)
    rows = [{"id": f"{INSTITUTION}/{d['name']}", "document": json.dumps(d)} for d in docs]
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    took = time.perf_counter() - t0
    md.drop_all(engine)
    engine.dispose()
    return took


def timed_select(url: str, sql: str) -> float:
    engine = sa.create_engine(url)
    t0 = time.perf_counter()
    with engine.connect() as conn:
        conn.exec_driver_sql(sql).fetchall()
    took = time.perf_counter() - t0
    engine.dispose()
    return took


def _name(criteria: Criteria) -> str:
    """A search, as its query parameters."""
    return " ".join(f"{k}={v}" for k, v in sorted(criteria.params().items()))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def run(
    kind: str, args: argparse.Namespace, docs: list[dict[str, Any]], config: NodeConfig
) -> None:
    print(f"\n== node database: {kind} ({len(docs):,} datasets)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = node_url(kind, folder, args.pg_url)
        try:
            _run(args, docs, config, folder, url)
        finally:
            drop_schema(url, args.pg_url)


def _run(
    args: argparse.Namespace,
    docs: list[dict[str, Any]],
    config: NodeConfig,
    folder: Path,
    url: str,
) -> None:
    settings = Settings(
        data_dir=folder / "node",
        database_url=url,
        public_url="http://127.0.0.1:8999",
        log_json=False,
        log_level="WARNING",
        audit_checkpoint_seconds=3600,
    )
    base_insert = baseline_insert(url, docs)
    t0, c0 = time.perf_counter(), time.process_time()
    app = create_app(settings, config)
    cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
    app.state.node.close()
    t0, c0 = time.perf_counter(), time.process_time()
    app = create_app(settings, config)
    warm, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
    settle()  # as `matgate serve` does once its node is up
    base_select = timed_select(url, "SELECT id, document FROM catalog_datasets")
    print(f"{'start-up':<12}{'node s':>10}{'cpu s':>8}{'baseline s':>12}{'x':>8}   baseline")
    print(
        f"{'cold':<12}{cold:10.2f}{cold_cpu:8.2f}{base_insert:12.2f}"
        f"{cold / base_insert:8.1f}   bulk INSERT"
    )
    print(
        f"{'warm':<12}{warm:10.2f}{warm_cpu:8.2f}{base_select:12.2f}"
        f"{warm / base_select:8.1f}   SELECT all"
    )

    node = app.state.node
    token = node.issuer.mint("mia", roles=("member",), institution=INSTITUTION)
    headers = {"Authorization": f"Bearer {token}"}
    entries = [d for d in (node.catalog.get(f"{INSTITUTION}/{x['name']}") for x in docs)]
    with TestClient(app) as api:
        ours: list[float] = []
        scans: list[float] = []
        slowest: dict[str, float] = {}
        cpu = 0.0  # the node's CPU (and the in-process client's) over the searches
        for _ in range(args.repeat):
            for c in searches():
                params = {**c.params(), "limit": 100}
                t0, c0 = time.perf_counter(), time.process_time()
                r = api.get("/catalog", params=params, headers=headers)
                ours.append(time.perf_counter() - t0)
                cpu += time.process_time() - c0
                name = _name(c)
                slowest[name] = max(slowest.get(name, 0.0), ours[-1])
                assert r.status_code == 200, r.text
                t0 = time.perf_counter()
                expected = search(entries, c)[:100]
                scans.append(time.perf_counter() - t0)
                got = [f"{d['institution']}/{d['name']}" for d in r.json()["datasets"]]
                assert got == sorted(d.id for d in expected)[: len(got)], c
        print(f"{'search':<12}{'median ms':>10}{'p99 ms':>10}   ({len(ours)} searches)")
        p99 = statistics.quantiles(ours, n=100)[98]
        s99 = statistics.quantiles(scans, n=100)[98]
        print(f"{'/catalog':<12}{_ms(statistics.median(ours)):>10}{_ms(p99):>10}")
        print(f"{'scan':<12}{_ms(statistics.median(scans)):>10}{_ms(s99):>10}   reference scan")
        print(f"ratio (median): {statistics.median(ours) / statistics.median(scans):.3f}")
        print(f"searches: {sum(ours):.2f} s wall, {cpu:.2f} s cpu (node and client process)")
        if args.show_slow:
            print("slowest searches (ms):")
            for name, took in sorted(slowest.items(), key=lambda kv: -kv[1])[: args.show_slow]:
                print(f"  {_ms(took)}  {name}")

        pages: list[float] = []
        cursor: str | None = None
        seen = 0
        t_all = time.perf_counter()
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            t0 = time.perf_counter()
            body = api.get("/catalog", params=params, headers=headers).json()
            pages.append(time.perf_counter() - t0)
            seen += body["count"]
            cursor = body["next"]
            if cursor is None:
                break
        walk = time.perf_counter() - t_all
        assert seen == len(docs), seen
        plain = timed_select(url, "SELECT document FROM catalog_datasets ORDER BY id")
        print(
            f"listing: {len(pages)} pages of 1000 by cursor in {walk:.2f} s "
            f"(page median {_ms(statistics.median(pages)).strip()} ms, first "
            f"{_ms(pages[0]).strip()} ms, last {_ms(pages[-1]).strip()} ms); "
            f"plain SELECT of every row {plain:.2f} s; ratio {walk / plain:.1f}"
        )
        print(f"(load average while measuring: {os.getloadavg()[0]:.1f})")
    node.close()


def main() -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the search set")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument(
        "--show-slow", type=int, default=0, metavar="N", help="print the N slowest searches"
    )
    args = parser.parse_args()
    t0 = time.perf_counter()
    docs = dataset_docs(args.datasets)
    print(f"generated {len(docs):,} dataset entries in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        store_url = make_store(Path(tmp))
        t0, c0 = time.perf_counter(), time.process_time()
        raw = raw_config(store_url, docs)
        with bulk():  # as load_config validates it
            config = NodeConfig.model_validate(raw)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"config validation (NodeConfig): {took:.2f} s ({cpu:.2f} s cpu)")
        for kind in args.db.split(","):
            run(kind.strip(), args, docs, config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
