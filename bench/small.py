"""Small-request benchmark: governed 10-row slices against a trivial FastAPI app, same server.

A node (``matgate serve``) and a trivial FastAPI app run side by side, each in its own process
on loopback, under the same uvicorn settings (what ``matgate serve`` uses: uvloop, httptools,
access log on, ``--workers`` processes). The same load generator drives both with the same
number of keep-alive connections (``--connections``, 8 by default) for ``--seconds`` per round,
alternating round by round so that drift hits both alike, and the median rate of the rounds is
reported with its latencies.

- ``trivial``: ``POST /slice`` with the same JSON body and ``Authorization`` header, answered by
  an ``async def`` route with a constant 10-row JSON document (nothing checked, nothing stored);
- ``matgate``: ``POST /datasets/bench/small/slice`` for 10 rows of a 12-column SQLite table:
  token check, decision, the decision appended to the audit log and committed before the first
  byte, the query, the Arrow stream with its signed seal, the completion appended to the log
  and the signed manifest kept.

Every response must be a 200 (the run stops otherwise), and the audit log must hold a decision
and a completion for every slice served (counted at the end of each round).

The load generator is ``wrk`` (Debian package ``wrk``) when it is installed, else an httpx
client with one asyncio task per connection (slower: it then measures the client as much as
the servers). ``--workers 1,2`` repeats everything with each worker count (both servers), on
a node database of its own: SQLite in the node's folder, or with ``--pg URL`` a new database on
that PostgreSQL server (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``),
dropped at the end.

Run: ``.venv/bin/python bench/small.py [--seconds 5] [--rounds 3] [--connections 8]
[--format arrow] [--workers 1,2] [--pg URL]``. Target: the node at >= 40 % of the
trivial app's rate, p99 < 25 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

INSTITUTION = "bench"
TARGET_RATIO, TARGET_P99_MS = 0.40, 25.0
COLUMNS = ["id", "formula", *(f"c{i}" for i in range(1, 11))]

TRIVIAL_APP = """
from fastapi import FastAPI

ROWS = [{"id": i, "formula": "Fe2O3", **{f"c{j}": i * 0.5 + j for j in range(1, 11)}}
        for i in range(10)]
app = FastAPI()


@app.post("/slice")
async def post_slice() -> list[dict]:
    return ROWS
"""

TRIVIAL_SERVE = """
import sys
import uvicorn

if __name__ == "__main__":  # workers are spawned: they import this file
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    # the same calls as matgate serve: uvicorn's defaults otherwise
    if workers > 1:
        uvicorn.run("trivial:app", host="127.0.0.1", port=port, log_level="info", workers=workers)
    else:
        from trivial import app
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="info")
"""


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_store(path: Path) -> None:
    """A SQLite table of 10 rows and 12 columns."""
    with sqlite3.connect(path) as conn:
        floats = ", ".join(f"c{i} REAL NOT NULL" for i in range(1, 11))
        conn.execute(f"CREATE TABLE small (id INTEGER NOT NULL, formula TEXT NOT NULL, {floats})")
        rows = [(i, "Fe2O3", *(i * 0.5 + j for j in range(1, 11))) for i in range(10)]
        conn.executemany(f"INSERT INTO small VALUES ({', '.join('?' * 12)})", rows)


def node_config(url: str, store: Path) -> dict[str, Any]:
    """A node with one 10-row dataset that members may read."""
    cols: list[dict[str, Any]] = [
        {"name": "id", "type": "integer", "pspp": "identifier", "nullable": False},
        {"name": "formula", "type": "string", "pspp": "structure", "nullable": False},
    ]
    cols += [
        {"name": f"c{i}", "type": "float", "pspp": "property", "unit": "eV", "nullable": False}
        for i in range(1, 11)
    ]
    return {
        "node": {"institution": INSTITUTION, "public_url": url},
        "stores": {"lite": {"kind": "sql", "url": f"sqlite:///{store}"}},
        "datasets": [
            {
                "name": "small",
                "title": "ten rows",
                "license": "CC-BY-4.0",
                "location": {"store": "lite", "table": "small"},
                "columns": cols,
            }
        ],
        "policy": {
            "roles": ["member"],
            "lines": [
                {"role": "member", "domain": INSTITUTION, "action": "discover"},
                {"role": "member", "domain": INSTITUTION, "action": "read"},
            ],
        },
    }


class Server:
    """A server process on a free loopback port; ``ready`` waits for ``probe`` to answer."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str], cwd: Path | None = None):
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT
        )

    def ready(self, url: str, timeout: float = 120) -> None:
        """Wait until ``url`` answers (any status)."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args[0]} exited with {self.proc.returncode}")
            try:
                httpx.post(url, timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop the process (and its workers) and wait for it."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def start_node(home: Path, workers: int, database_url: str | None) -> tuple[Server, str, str]:
    """``matgate serve`` on a fresh folder; returns the server, its slice URL and a token."""
    from gateway.identity import TokenIssuer
    from gateway.keys import NodeKey

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    make_store(home / "store.db")
    (home / "node.toml").write_text(tomli_w.dumps(node_config(url, home / "store.db")))
    data_dir = home / "node"
    key = NodeKey.load_or_create(data_dir / "node_key.pem")
    token = TokenIssuer(key, url, url, INSTITUTION).mint(
        "bench", roles=["member"], ttl_seconds=7200
    )
    matgate = Path(sys.executable).with_name("matgate")
    cmd = [str(matgate), "serve", "--config", str(home / "node.toml"), "--port", str(port)]
    cmd += ["--data-dir", str(data_dir)]
    if workers != 1:
        cmd += ["--workers", str(workers)]
    if database_url:
        cmd += ["--database-url", database_url]
    env = {**os.environ, "MATGATE_LOG_LEVEL": "WARNING", "MATGATE_LOG_JSON": "false"}
    server = Server(cmd, home / "node.log", env)
    slice_url = f"{url}/datasets/{INSTITUTION}/small/slice"
    server.ready(f"{url}/healthz")
    return server, slice_url, token


def start_trivial(home: Path, workers: int) -> tuple[Server, str]:
    """The trivial app under uvicorn, as ``matgate serve`` runs it."""
    (home / "trivial.py").write_text(TRIVIAL_APP)
    (home / "serve_trivial.py").write_text(TRIVIAL_SERVE)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(home)}
    cmd = [sys.executable, str(home / "serve_trivial.py"), str(port), str(workers)]
    server = Server(cmd, home / "trivial.log", env, cwd=home)
    url = f"http://127.0.0.1:{port}/slice"
    server.ready(url)
    return server, url


# -- load ----------------------------------------------------------------------------------


@dataclass
class Load:
    """One round's result: requests per second, latency percentiles in ms, and the server's
    CPU time per request in ms (its processes' user + system time over the round)."""

    rate: float
    p50: float
    p99: float
    requests: int
    cpu: float = 0.0


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every process under it (its workers)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        child = int(entry.name)
        children.setdefault(int(fields[1]), []).append(child)
        times[child] = (int(fields[11]) + int(fields[12])) / _TICK
    total, todo = 0.0, [pid]
    while todo:
        at = todo.pop()
        total += times.get(at, 0.0)
        todo.extend(children.get(at, []))
    return total


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(url: str, token: str, body: str, connections: int, seconds: float, home: Path) -> Load:
    """``wrk`` with one thread and ``connections`` connections; refuses non-2xx answers."""
    script = home / "post.lua"
    script.write_text(_WRK_SCRIPT.format(body=json.dumps(body), token=token))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "30s"]
    cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Load(rate, p50, p99, total)


def httpx_load(url: str, token: str, body: str, connections: int, seconds: float) -> Load:
    """The same load from httpx: one asyncio task per connection, each request after the last."""
    import httpx

    async def run() -> Load:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        latencies: list[float] = []
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            stop = time.perf_counter() + seconds

            async def worker() -> None:
                while time.perf_counter() < stop:
                    start = time.perf_counter()
                    r = await client.post(url, content=body, headers=headers)
                    if r.status_code != 200:
                        raise RuntimeError(f"{url} answered {r.status_code}: {r.text[:300]}")
                    latencies.append(time.perf_counter() - start)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            elapsed = time.perf_counter() - began
        q = statistics.quantiles(latencies, n=100)
        return Load(len(latencies) / elapsed, q[49] * 1e3, q[98] * 1e3, len(latencies))

    return asyncio.run(run())


def audit_counts(database_url: str) -> tuple[int, int]:
    """Decisions to read, and slice completions, in the node's audit log."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT name, count(*) FROM audit_entries WHERE action = 'read' GROUP BY name"
                )
            ).all()
    finally:
        engine.dispose()
    counts = dict(rows)
    return int(counts.get("decision", 0)), int(counts.get("slice", 0))


@contextlib.contextmanager
def scratch_database(server_url: str | None) -> Iterator[str | None]:
    """A new, empty PostgreSQL database on ``server_url``'s server, dropped afterwards (None:
    the node's default SQLite)."""
    if server_url is None:
        yield None
        return
    import uuid

    import sqlalchemy as sa

    name = f"matgate_small_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def run_pair(args: argparse.Namespace, workers: int) -> dict[str, Load]:
    """Node and trivial app with ``workers`` workers each, alternating rounds; medians."""
    with scratch_database(args.pg) as database_url:
        return _run_pair(args, workers, database_url)


def _run_pair(args: argparse.Namespace, workers: int, database_url: str | None) -> dict[str, Load]:
    home = Path(tempfile.mkdtemp(prefix="matgate-small-"))
    node = trivial = None
    body = json.dumps({"purpose": "research", "format": args.format})
    try:
        node, slice_url, token = start_node(home, workers, database_url)
        trivial, trivial_url = start_trivial(home, workers)
        database_url = database_url or f"sqlite:///{home / 'node' / 'node.db'}"
        before = audit_counts(database_url)
        drive = (
            (lambda u: wrk(u, token, body, args.connections, args.seconds, home))
            if shutil.which("wrk") and not args.httpx
            else (lambda u: httpx_load(u, token, body, args.connections, args.seconds))
        )
        drive(slice_url), drive(trivial_url)  # warm-up

        def measured(server: Server, url: str) -> Load:
            before = cpu_seconds(server.proc.pid)
            got = drive(url)
            if not got.requests:
                raise RuntimeError(f"no request to {url} was answered within the round")
            got.cpu = (cpu_seconds(server.proc.pid) - before) / got.requests * 1e3
            return got

        rounds: dict[str, list[Load]] = {"trivial": [], "matgate": []}
        served = 0
        for _ in range(args.rounds):
            rounds["trivial"].append(measured(trivial, trivial_url))
            got = measured(node, slice_url)
            rounds["matgate"].append(got)
            served += got.requests
        after = audit_counts(database_url)
        decided, delivered = after[0] - before[0], after[1] - before[1]
        # wrk stops mid-request at the end of a round: those requests may still complete
        if decided < served or delivered < served:
            raise RuntimeError(
                f"{served} slices served but {decided} decisions and {delivered} completions logged"
            )
        return {
            name: Load(
                statistics.median(r.rate for r in loads),
                statistics.median(r.p50 for r in loads),
                statistics.median(r.p99 for r in loads),
                sum(r.requests for r in loads),
                statistics.median(r.cpu for r in loads),
            )
            for name, loads in rounds.items()
        }
    finally:
        for server in (node, trivial):
            if server is not None:
                server.stop()
        if args.keep:
            print(f"  (kept {home})")
        else:
            shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--format", default="arrow", choices=["arrow", "json", "csv", "parquet"])
    ap.add_argument("--workers", default="1", help="comma-separated worker counts, e.g. 1,2")
    ap.add_argument(
        "--pg",
        default=None,
        help="a PostgreSQL server (SQLAlchemy URL of any database on it) on which each node "
        "gets a new database of its own (default: SQLite in the node's folder)",
    )
    ap.add_argument("--httpx", action="store_true", help="drive with httpx even if wrk exists")
    ap.add_argument("--keep", action="store_true", help="keep the node's folder")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    tool = "wrk" if shutil.which("wrk") and not args.httpx else "httpx"
    print(
        f"{args.connections} connections, {args.rounds} rounds of {args.seconds:g} s, "
        f"{args.format} slices of 10 rows x 12 columns, load from {tool}, "
        f"node database {'PostgreSQL' if args.pg else 'SQLite'}"
    )
    rates: dict[int, dict[str, Load]] = {}
    for workers in counts:
        result = run_pair(args, workers)
        rates[workers] = result
        ours, base = result["matgate"], result["trivial"]
        ratio = ours.rate / base.rate
        print(f"\nworkers {workers}:")
        for name, load in result.items():
            print(
                f"  {name:<8} {load.rate:8.0f} req/s  p50 {load.p50:6.2f} ms  "
                f"p99 {load.p99:6.2f} ms  CPU {load.cpu:5.2f} ms/request  "
                f"({load.requests} requests)"
            )
        verdict = "met" if ratio >= TARGET_RATIO and ours.p99 < TARGET_P99_MS else "MISSED"
        print(
            f"  matgate / trivial: {ratio:.0%} (target >= {TARGET_RATIO:.0%}, "
            f"p99 < {TARGET_P99_MS:g} ms): {verdict}; CPU per request "
            f"{ours.cpu / base.cpu:.1f}x the trivial app's"
        )
    if len(counts) > 1:
        first = counts[0]
        for workers in counts[1:]:
            for name in ("matgate", "trivial"):
                gain = rates[workers][name].rate / rates[first][name].rate
                print(f"{name}: {workers} workers / {first}: {gain:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
