"""Federation benchmark: a 3-site federated query, and a cross-site pull against a direct one.

Three nodes (alpha, beta, gamma) run as separate ``matgate serve`` processes on loopback, each
with a SQLite store and the two others as peers (keys inline). ana of alpha is the user.

- Federated query: ``POST /federation/query`` at alpha over ``alpha/q``, ``beta/q`` and
  ``gamma/q`` (``--query-rows`` rows each, 10 numeric columns, the same filter keeping 5 %),
  against the same query over each dataset alone. Target: the 3-site query takes at most 1.2x
  the slowest single site (the sites are asked concurrently, not one after the other).
- Cross-site pull: ``--pull-rows`` rows of ``beta/big`` pulled with the client through alpha
  (relayed), against the same slice pulled from beta directly (the same principal, alpha:ana,
  under the same policy). Target: the relay within 1.3x of the direct pull.

Rounds are interleaved so that drift hits every contender alike; medians are printed.
All sites share this machine's cores, so CPU-bound owners compete as remote sites would not.
Run: ``.venv/bin/python bench/federation.py [--query-rows 100000] [--pull-rows 1000000]
[--repeat 5]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import tomli_w

SITES = ("alpha", "beta", "gamma")
COLUMNS = ["id", *(f"c{i}" for i in range(1, 10))]
FILTER = "c1 < 0.5"
QUERY_FILTER = "c1 < 0.05"
TARGET_QUERY, TARGET_PULL = 1.2, 1.3


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_table(rows: int, seed: int) -> pa.Table:
    """``rows`` rows: an int64 id and nine uniform float64 columns."""
    rng = np.random.default_rng(seed)
    arrays = [pa.array(np.arange(rows, dtype=np.int64))]
    arrays += [pa.array(rng.random(rows)) for _ in range(9)]
    return pa.Table.from_arrays(arrays, names=COLUMNS)


def load_sqlite(path: Path, tables: dict[str, pa.Table]) -> None:
    """Typed tables through SQLAlchemy, rows bulk-loaded through ADBC."""
    import adbc_driver_sqlite.dbapi as sqlite
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{path}")
    md = sa.MetaData()
    for name in tables:
        sa.Table(
            name,
            md,
            sa.Column("id", sa.BigInteger()),
            *(sa.Column(c, sa.Float()) for c in COLUMNS[1:]),
        )
    md.create_all(engine)
    engine.dispose()
    with sqlite.connect(str(path)) as conn, conn.cursor() as cur:
        for name, table in tables.items():
            cur.adbc_ingest(name, table, mode="append")
        conn.commit()


def dataset(name: str) -> dict[str, Any]:
    """A dataset entry of the node config over table ``name``."""
    cols = [{"name": "id", "type": "integer", "pspp": "identifier"}]
    cols += [{"name": c, "type": "float", "unit": "eV", "pspp": "property"} for c in COLUMNS[1:]]
    return {
        "name": name,
        "title": f"Benchmark {name}",
        "license": "CC-BY-4.0",
        "location": {"store": "lab", "table": name},
        "columns": cols,
    }


class Federation:
    """Three node processes, each naming the two others as peers."""

    def __init__(self, root: Path, query_rows: int, pull_rows: int) -> None:
        from gateway.keys import NodeKey

        self.root = root
        self.ports = {s: free_port() for s in SITES}
        self.keys = {}
        for i, site in enumerate(SITES):
            home = root / site
            (home / "node").mkdir(parents=True)
            self.keys[site] = NodeKey.load_or_create(home / "node" / "node_key.pem")
            tables = {"q": make_table(query_rows, seed=i)}
            if site == "beta":
                tables["big"] = make_table(pull_rows, seed=99)
            load_sqlite(home / "lab.db", tables)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for site in SITES:
            self._start(site)
        for site in SITES:
            self._wait(site)

    def url(self, site: str) -> str:
        """The node's URL."""
        return f"http://127.0.0.1:{self.ports[site]}"

    def token(self, site: str) -> str:
        """A token of ``site``'s node for ana of alpha (a guest there unless site is alpha)."""
        from gateway.identity import TokenIssuer

        issuer = TokenIssuer(self.keys[site], self.url(site), self.url(site), site)
        return issuer.mint("ana", roles=["member"], institution="alpha", ttl_seconds=7200)

    def _config(self, site: str) -> dict[str, Any]:
        others = [s for s in SITES if s != site]
        datasets = [dataset("q")] + ([dataset("big")] if site == "beta" else [])
        return {
            "node": {"institution": site, "public_url": self.url(site)},
            "stores": {"lab": {"kind": "sql", "url": f"sqlite:///{self.root / site / 'lab.db'}"}},
            "datasets": datasets,
            "peers": [
                {
                    "institution": o,
                    "url": self.url(o),
                    "jwks": self.keys[o].jwks(),
                    "allow_private_network": True,
                    "deadline": 120.0,
                    "read_timeout": 60.0,
                }
                for o in others
            ],
            "policy": {
                "assignments": [
                    {"institution": o, "role": "partner", "domain": site} for o in others
                ],
                "lines": [
                    {"role": "member", "domain": site, "action": "discover"},
                    {"role": "member", "domain": site, "action": "read"},
                    {"role": "partner", "domain": site, "action": "discover"},
                    {"role": "partner", "domain": site, "action": "read", "purpose": "research"},
                ],
            },
        }

    def _start(self, site: str) -> None:
        home = self.root / site
        (home / "node.toml").write_text(tomli_w.dumps(self._config(site)))
        matgate = Path(sys.executable).with_name("matgate")
        cmd = [str(matgate), "serve", "--config", str(home / "node.toml")]
        cmd += ["--port", str(self.ports[site]), "--data-dir", str(home / "node")]
        env = {**os.environ, "MATGATE_LOG_LEVEL": "WARNING", "MATGATE_LOG_JSON": "false"}
        log = (home / "node.log").open("wb")
        self.procs[site] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def _wait(self, site: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.procs[site].poll() is not None:
                raise RuntimeError(f"{site} exited; see {self.root / site / 'node.log'}")
            try:
                if httpx.get(self.url(site) + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{site} did not start within 60 s")

    def stop(self) -> None:
        """Stop every node."""
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def timed(contenders: dict[str, Callable[[], int]], repeat: int) -> dict[str, float]:
    """Median seconds of each contender over ``repeat`` interleaved rounds (after a warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for run in contenders.values():
        run()
    for _ in range(repeat):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def query_contenders(fed: Federation) -> dict[str, Callable[[], int]]:
    """The federated query over each site alone and over the three."""
    http = httpx.Client(timeout=300, headers={"Authorization": f"Bearer {fed.token('alpha')}"})

    def run(ids: list[str]) -> Callable[[], int]:
        def go() -> int:
            body = {"datasets": ids, "filter": QUERY_FILTER, "purpose": "research"}
            r = http.post(fed.url("alpha") + "/federation/query", json=body)
            r.raise_for_status()
            if r.headers["matgate-complete"] != "true":
                raise RuntimeError(f"partial result: {r.headers}")
            return pa.ipc.open_stream(r.content).read_all().num_rows

        return go

    out = {f"{s} alone": run([f"{s}/q"]) for s in SITES}
    out["3 sites"] = run([f"{s}/q" for s in SITES])
    return out


def pull_contenders(fed: Federation) -> dict[str, Callable[[], int]]:
    """The same slice of beta/big from beta directly and through alpha."""
    from gateway.client import Client

    direct = Client(fed.url("beta"), token=fed.token("beta"), progress=False, timeout=600)
    relayed = Client(fed.url("alpha"), token=fed.token("alpha"), progress=False, timeout=600)

    def pull(client: Client) -> Callable[[], int]:
        return lambda: len(client.dataset("beta/big").pull(purpose="research"))

    return {"direct from beta": pull(direct), "relayed by alpha": pull(relayed)}


def main() -> int:
    """Run both figures and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query-rows", type=int, default=100_000)
    parser.add_argument("--pull-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="matgate-bench-federation-"))
    fed = Federation(root, args.query_rows, args.pull_rows)
    try:
        print(f"federated query: {args.query_rows:,} rows per site, filter {QUERY_FILTER!r}")
        q = timed(query_contenders(fed), args.repeat)
        for name, seconds in q.items():
            print(f"  {name:<18} {seconds * 1000:9.1f} ms")
        slowest = max(v for k, v in q.items() if k.endswith("alone"))
        ratio_q = q["3 sites"] / slowest
        verdict = "ok" if ratio_q <= TARGET_QUERY else "MISSED"
        print(f"  3 sites / slowest site = {ratio_q:.2f}x (target <= {TARGET_QUERY}x) {verdict}")
        print(f"cross-site pull: {args.pull_rows:,} rows of beta/big")
        p = timed(pull_contenders(fed), args.repeat)
        for name, seconds in p.items():
            print(f"  {name:<18} {seconds * 1000:9.1f} ms")
        ratio_p = p["relayed by alpha"] / p["direct from beta"]
        verdict = "ok" if ratio_p <= TARGET_PULL else "MISSED"
        print(f"  relayed / direct = {ratio_p:.2f}x (target <= {TARGET_PULL}x) {verdict}")
    finally:
        fed.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
