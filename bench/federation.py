"""Federation benchmark: a 3-site federated query, and a cross-site pull against a direct one.

Three nodes (alpha, beta, gamma) run as separate ``matgate serve`` processes, each with a SQLite
store and the two others as peers (keys inline). ana of alpha is the user. Each figure is taken
on up to three network paths (``--paths``):

- ``loopback``: every node on 127.0.0.1 (peers allowed with ``allow_private_network``);
- ``netns``: every node in a network namespace of its own, linked through a hub namespace
  (``bench/netpath.py``), peers allowed by ``[network] allow`` naming the namespaces' network;
- ``delay``: the same with ``--delay-ms`` (20) added to each way of every crossing of the hub
  (client to site and site to site), so a round trip between two sites takes 2x that longer.

- Federated query: ``POST /federation/query`` at alpha over ``alpha/q``, ``beta/q`` and
  ``gamma/q`` (``--query-rows`` rows each, 10 numeric columns, the same filter keeping 5 %),
  against the same query over each dataset alone (asked at alpha), and over each dataset at its
  own node. Target: the 3-site query takes at most 1.2x the slowest single site plus one round
  trip between sites (the sites are asked concurrently, not one after the other).
- Cross-site pull: ``--pull-rows`` rows of ``beta/big`` pulled with the client through alpha
  (relayed), against the same slice pulled from beta directly (the same principal, alpha:ana,
  under the same policy). Target: the relay within 1.3x of the direct pull.

Rounds are interleaved so that drift hits every contender alike; medians are printed.
All sites share this machine's cores, so CPU-bound owners compete as remote sites would not.
The namespaces need root and ``ip``; they are made and removed by the run.
Run: ``.venv/bin/python bench/federation.py [--query-rows 100000] [--pull-rows 1000000]
[--repeat 5] [--paths loopback,netns,delay] [--delay-ms 20]``.
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
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import tomli_w
from netpath import NetPath, unavailable  # bench/ is the script's own directory

SITES = ("alpha", "beta", "gamma")
COLUMNS = ["id", *(f"c{i}" for i in range(1, 10))]
FILTER = "c1 < 0.5"
QUERY_FILTER = "c1 < 0.05"
TARGET_QUERY, TARGET_PULL = 1.2, 1.3
PATHS = ("loopback", "netns", "delay")
NETNS_PORT = 8000
STARTUP = 180.0
# Idle connections dropped well before uvicorn's 5 s keep-alive timeout: on a loaded machine a
# request sent at 5 s can meet the server closing the connection.
KEEP_ALIVE = httpx.Limits(keepalive_expiry=2.0)


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

    def __init__(
        self, root: Path, query_rows: int, pull_rows: int, net: NetPath | None = None
    ) -> None:
        from gateway.keys import NodeKey

        self.root = root
        self.net = net
        self.ports = {s: NETNS_PORT if net else free_port() for s in SITES}
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
        try:
            for site in SITES:
                self._start(site)
            for site in SITES:
                self._wait(site)
        except BaseException:
            self.stop()
            raise

    def host(self, site: str) -> str:
        """The address the node listens on."""
        return self.net.address(site) if self.net else "127.0.0.1"

    def url(self, site: str) -> str:
        """The node's URL."""
        return f"http://{self.host(site)}:{self.ports[site]}"

    def token(self, site: str) -> str:
        """A token of ``site``'s node for ana of alpha (a guest there unless site is alpha)."""
        from gateway.identity import TokenIssuer

        issuer = TokenIssuer(self.keys[site], self.url(site), self.url(site), site)
        return issuer.mint("ana", roles=["member"], institution="alpha", ttl_seconds=7200)

    def _config(self, site: str) -> dict[str, Any]:
        others = [s for s in SITES if s != site]
        datasets = [dataset("q")] + ([dataset("big")] if site == "beta" else [])
        config: dict[str, Any] = {
            "node": {"institution": site, "public_url": self.url(site)},
            "stores": {"lab": {"kind": "sql", "url": f"sqlite:///{self.root / site / 'lab.db'}"}},
            "datasets": datasets,
            "peers": [
                {
                    "institution": o,
                    "url": self.url(o),
                    "jwks": self.keys[o].jwks(),
                    "allow_private_network": self.net is None,
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
        if self.net is not None:  # the namespaces' addresses are private: allowed by name
            config["network"] = {"allow": [str(self.net.network)]}
        return config

    def _start(self, site: str) -> None:
        home = self.root / site
        (home / "node.toml").write_text(tomli_w.dumps(self._config(site)))
        matgate = Path(sys.executable).with_name("matgate")
        cmd = [str(matgate), "serve", "--config", str(home / "node.toml")]
        cmd += ["--host", self.host(site), "--port", str(self.ports[site])]
        cmd += ["--data-dir", str(home / "node")]
        if self.net is not None:
            cmd = self.net.wrap(site, cmd)
        env = {"MATGATE_LOG_LEVEL": "WARNING", **os.environ, "MATGATE_LOG_JSON": "false"}
        with (home / "node.log").open("wb") as log:  # the child keeps its own descriptor
            self.procs[site] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def _wait(self, site: str) -> None:
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            if self.procs[site].poll() is not None:
                raise RuntimeError(f"{site} exited; see {self.root / site / 'node.log'}")
            try:
                if httpx.get(self.url(site) + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{site} did not start within {STARTUP:g} s")

    def stop(self) -> None:
        """Stop every node."""
        for proc in self.procs.values():
            if proc.poll() is None:
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
    http = {
        s: httpx.Client(
            timeout=300,
            headers={"Authorization": f"Bearer {fed.token(s)}"},
            limits=KEEP_ALIVE,
        )
        for s in SITES
    }

    def run(ids: list[str], at: str = "alpha") -> Callable[[], int]:
        def go() -> int:
            body = {"datasets": ids, "filter": QUERY_FILTER, "purpose": "research"}
            r = http[at].post(fed.url(at) + "/federation/query", json=body)
            r.raise_for_status()
            if r.headers["matgate-complete"] != "true":
                raise RuntimeError(f"partial result: {r.headers}")
            return pa.ipc.open_stream(r.content).read_all().num_rows

        return go

    out = {f"{s} alone": run([f"{s}/q"]) for s in SITES}
    out |= {f"{s} at {s}": run([f"{s}/q"], at=s) for s in SITES}
    out["3 sites"] = run([f"{s}/q" for s in SITES])
    return out


def pull_contenders(fed: Federation) -> dict[str, Callable[[], int]]:
    """The same slice of beta/big from beta directly and through alpha."""
    from gateway.client import Client

    def client(site: str) -> Client:
        transport = httpx.HTTPTransport(limits=KEEP_ALIVE)
        return Client(
            fed.url(site), token=fed.token(site), progress=False, timeout=600, transport=transport
        )

    direct, relayed = client("beta"), client("alpha")

    def pull(client: Client) -> Callable[[], int]:
        return lambda: len(client.dataset("beta/big").pull(purpose="research"))

    return {"direct from beta": pull(direct), "relayed by alpha": pull(relayed)}


def round_trip(fed: Federation) -> float:
    """Median seconds of a TCP handshake from alpha's network to beta's node (one round trip)."""
    probe = (
        "import socket, statistics, time\n"
        "ts = []\n"
        "for _ in range(9):\n"
        "    t = time.perf_counter()\n"
        f"    socket.create_connection(({fed.host('beta')!r}, {fed.ports['beta']})).close()\n"
        "    ts.append(time.perf_counter() - t)\n"
        "print(statistics.median(ts))\n"
    )
    cmd = [sys.executable, "-c", probe]
    if fed.net is not None:
        cmd = fed.net.wrap("alpha", cmd)
    return float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def measure(fed: Federation, args: argparse.Namespace) -> None:
    """Both figures on one path: medians and ratios."""
    rtt = round_trip(fed)
    print(f"  round trip between sites: {rtt * 1000:.2f} ms")
    print(f"  federated query: {args.query_rows:,} rows per site, filter {QUERY_FILTER!r}")
    q = timed(query_contenders(fed), args.repeat)
    for name, seconds in q.items():
        print(f"    {name:<18} {seconds * 1000:9.1f} ms")
    slowest = max(v for k, v in q.items() if k.endswith("alone"))
    ratio_q = q["3 sites"] / slowest
    budget = TARGET_QUERY * slowest + rtt
    verdict = "ok" if q["3 sites"] <= budget else "MISSED"
    print(f"    3 sites / slowest site alone = {ratio_q:.2f}x")
    print(
        f"    3 sites / (slowest site + 1 round trip) = {q['3 sites'] / (slowest + rtt):.2f}x; "
        f"budget {TARGET_QUERY}x slowest + round trip = {budget * 1000:.0f} ms {verdict}"
    )
    own = max(v for k, v in q.items() if " at " in k)
    print(f"    3 sites / slowest site at its own node = {q['3 sites'] / own:.2f}x")
    print(f"  cross-site pull: {args.pull_rows:,} rows of beta/big")
    p = timed(pull_contenders(fed), args.repeat)
    for name, seconds in p.items():
        print(f"    {name:<18} {seconds * 1000:9.1f} ms")
    ratio_p = p["relayed by alpha"] / p["direct from beta"]
    verdict = "ok" if ratio_p <= TARGET_PULL else "MISSED"
    print(f"    relayed / direct = {ratio_p:.2f}x (target <= {TARGET_PULL}x) {verdict}")


def main() -> int:
    """Run both figures on every path asked for and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query-rows", type=int, default=100_000)
    parser.add_argument("--pull-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--paths", default=",".join(PATHS), help="loopback, netns, delay")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="added to each way")
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if unknown := sorted(set(paths) - set(PATHS)):
        parser.error(f"unknown paths: {', '.join(unknown)}")
    for path in paths:
        why = unavailable() if path != "loopback" else None
        if why:
            print(f"{path}: skipped ({why})")
            continue
        root = Path(tempfile.mkdtemp(prefix="matgate-bench-federation-"))
        try:
            with ExitStack() as stack:
                net = None
                if path != "loopback":
                    delay = args.delay_ms if path == "delay" else 0.0
                    net = stack.enter_context(NetPath(SITES, delay_ms=delay))
                label = path
                if net is not None and net.delay_ms:
                    label += f" ({net.method}, {net.delay_ms:g} ms each way)"
                print(f"{label}:")
                fed = Federation(root, args.query_rows, args.pull_rows, net)
                stack.callback(fed.stop)
                measure(fed, args)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
