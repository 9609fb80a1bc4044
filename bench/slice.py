"""Slice benchmark: a full matgate pull against what users do today and the fastest direct read.

For each store (SQLite, PostgreSQL, a Parquet file) holding ``--rows`` rows of 10 numeric
columns, one run times, interleaved round by round so that drift hits every contender alike:

- ``read_sql``: ``pandas.read_sql`` through a SQLAlchemy engine (what users do today; for Parquet,
  ``pandas.read_parquet``);
- ``direct``: the fastest Arrow-native read on this machine (ADBC and connectorx are both timed,
  the faster one is the baseline; pyarrow for Parquet);
- ``matgate``: a full pull from a node running as a separate server process on loopback: HTTP,
  token check, decision, audit, query, manifest, Arrow IPC, SHA-256, client to pandas.

Fairness: every contender applies the same filter (``c1 < 0.5``, half the rows) in the store's own
query and ends with a pandas DataFrame of the same shape. Then (unless ``--skip-memory``) the node
serves ``--memory-rows`` rows from PostgreSQL while its resident memory is sampled.

File stores (``parquet``, ``csv``) also time ``connector``: the node's files connector in this
process, without HTTP, audit, encoding or hashing, so that the store read and the path around it
can be told apart; for CSV, ``read_sql`` is ``pandas.read_csv`` and ``pyarrow`` is
``pyarrow.csv.read_csv``, each filtered afterwards (neither reader pushes a filter down).

Run: ``.venv/bin/python bench/slice.py [--rows 1000000] [--repeat 5] [--stores sqlite,postgres,
parquet,csv] [--skip-memory]``. Targets: matgate within 1.15x of the direct read (PostgreSQL,
SQLite) and 1.3x (Parquet, CSV), at least 5x faster than read_sql, node RSS growth <= 300 MB while
pulling 5,000,000 rows.
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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa
import tomli_w

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
INSTITUTION = "bench"
FILTER = "c1 < 0.5"
COLUMNS = ["id", *(f"c{i}" for i in range(1, 10))]
TABLE = "matgate_bench_slice"
MEMORY_TABLE = "matgate_bench_slice_mem"
TARGET_DIRECT, TARGET_READ_SQL, TARGET_MB, TARGET_FILES = 1.15, 5.0, 300.0, 1.3
FILE_STORES = ("parquet", "csv")
OPEN: list[Any] = []  # connections of the contenders, closed before the tables are dropped


def make_table(rows: int, seed: int = 7) -> pa.Table:
    """``rows`` rows: an int64 id and nine uniform float64 columns."""
    rng = np.random.default_rng(seed)
    arrays = [pa.array(np.arange(rows, dtype=np.int64))]
    arrays += [pa.array(rng.random(rows)) for _ in range(9)]
    return pa.Table.from_arrays(arrays, names=COLUMNS)


def load_sql(url: str, name: str, table: pa.Table) -> None:
    """Create ``name`` with typed columns through SQLAlchemy, then bulk-load it through ADBC."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    cols: list[sa.Column[Any]] = [sa.Column("id", sa.BigInteger())]
    cols += [sa.Column(c, sa.Float()) for c in COLUMNS[1:]]
    t = sa.Table(name, md, *cols)
    md.drop_all(engine, tables=[t])
    md.create_all(engine)
    engine.dispose()
    with adbc_connect(url) as conn, conn.cursor() as cur:
        cur.adbc_ingest(name, table, mode="append")
    if url.startswith("postgresql"):
        with sa.create_engine(url).connect() as c:
            c.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text(f"ANALYZE {name}"))


def drop_sql(url: str, name: str) -> None:
    """Drop the benchmark's table."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    engine.dispose()


def adbc_connect(url: str) -> Any:
    """An ADBC connection to a SQLAlchemy URL's database."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi as lite

        return lite.connect(str(parsed.database), autocommit=True)
    import adbc_driver_postgresql.dbapi as pg

    # autocommit: a read must not leave a transaction open that would block the final DROP.
    uri = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return pg.connect(uri, autocommit=True)


def cx_uri(url: str) -> str:
    """The connectorx form of a SQLAlchemy URL."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite://{parsed.database}"
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


# -- contenders: each returns a DataFrame --------------------------------------------------------


def sql_text(name: str) -> str:
    """The filtered query every SQL contender runs."""
    return f"SELECT {', '.join(COLUMNS)} FROM {name} WHERE {FILTER}"


def read_sql_contender(url: str, name: str) -> Callable[[], pd.DataFrame]:
    """``pandas.read_sql`` through a SQLAlchemy engine (psycopg or sqlite3)."""
    engine = sa.create_engine(url)
    return lambda: pd.read_sql(sa.text(sql_text(name)), engine)


def adbc_contender(url: str, name: str) -> Callable[[], pd.DataFrame]:
    """ADBC, one pooled connection, Arrow table to pandas."""
    conn = adbc_connect(url)
    OPEN.append(conn)

    def run() -> pd.DataFrame:
        with conn.cursor() as cur:
            cur.execute(sql_text(name))
            return cur.fetch_arrow_table().to_pandas()

    return run


def connectorx_contender(url: str, name: str) -> Callable[[], pd.DataFrame]:
    """connectorx to Arrow, then pandas."""
    import connectorx as cx

    uri = cx_uri(url)
    return lambda: cx.read_sql(uri, sql_text(name), return_type="arrow").to_pandas()


def parquet_contenders(path: Path) -> dict[str, Callable[[], pd.DataFrame]]:
    """``pandas.read_parquet`` and pyarrow's reader, both with the filter pushed down."""
    filters = [("c1", "<", 0.5)]
    return {
        "read_sql": lambda: pd.read_parquet(path, filters=filters),
        "pyarrow": lambda: pq.read_table(path, filters=filters).to_pandas(),
    }


def csv_contenders(path: Path) -> dict[str, Callable[[], pd.DataFrame]]:
    """``pandas.read_csv`` and pyarrow's CSV reader, each filtered as its library does it."""

    def pandas_read() -> pd.DataFrame:
        frame = pd.read_csv(path)
        return frame[frame["c1"] < 0.5].reset_index(drop=True)

    def pyarrow_read() -> pd.DataFrame:
        table = pacsv.read_csv(path)
        return table.filter(pc.field("c1") < 0.5).to_pandas()

    return {"read_sql": pandas_read, "pyarrow": pyarrow_read}


def connector_contender(root: Path, table: str) -> Callable[[], pd.DataFrame]:
    """The node's own files connector in this process: the store read without HTTP, audit,
    encoding or hashing (what the node adds to pyarrow's read before the first byte leaves)."""
    from connectors.files import FilesConnector
    from connectors.filterparser import parse
    from connectors.query import Query

    connector = FilesConnector(root)
    query = Query(table, tuple(COLUMNS), filter=parse(FILTER))

    def run() -> pd.DataFrame:
        batches = list(connector.batches(query))
        return pa.Table.from_batches(batches, schema=connector.schema(query)).to_pandas()

    return run


def matgate_contender(url: str, token: str, dataset: str) -> Callable[[], pd.DataFrame]:
    """A full pull through the client SDK; the manifest is checked by the client."""
    from gateway.client import Client

    client = Client(url, token=token, progress=False, timeout=600)
    handle = client.dataset(dataset)
    return lambda: handle.pull(filter=FILTER, purpose="research")


# -- the node --------------------------------------------------------------------------------


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dataset_entry(name: str, store: str, table: str) -> dict[str, Any]:
    """A dataset of the node's config over one benchmark table."""
    cols = [{"name": "id", "type": "integer", "pspp": "identifier"}]
    cols += [{"name": c, "type": "float", "pspp": "property"} for c in COLUMNS[1:]]
    return {
        "name": name,
        "title": f"benchmark {name}",
        "license": "CC-BY-4.0",
        "location": {"store": store, "table": table},
        "columns": cols,
    }


class NodeProcess:
    """``matgate serve`` in a subprocess on a free loopback port, with a token for reading."""

    def __init__(self, home: Path, stores: dict[str, Any], datasets: list[dict[str, Any]]):
        from gateway.identity import TokenIssuer
        from gateway.keys import NodeKey

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "node": {"institution": INSTITUTION, "public_url": self.url},
            "stores": stores,
            "datasets": datasets,
            "policy": {
                "roles": ["member"],
                "lines": [
                    {"role": "member", "domain": INSTITUTION, "action": "discover"},
                    {"role": "member", "domain": INSTITUTION, "action": "read"},
                ],
            },
        }
        (home / "node.toml").write_text(tomli_w.dumps(config))
        data_dir = home / "node"
        # The key is made here so that this process can mint the token the node will accept.
        key = NodeKey.load_or_create(data_dir / "node_key.pem")
        issuer = TokenIssuer(key, self.url, self.url, INSTITUTION)
        self.token = issuer.mint("bench-user", roles=["member"], ttl_seconds=7200)
        matgate = Path(sys.executable).with_name("matgate")
        cmd = [str(matgate), "serve", "--config", str(home / "node.toml"), "--port", str(self.port)]
        cmd += ["--data-dir", str(data_dir)]
        env = {**os.environ, "MATGATE_LOG_LEVEL": "WARNING", "MATGATE_LOG_JSON": "false"}
        self.log = (home / "node.log").open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()
        self.started_rss = self.rss_mb()

    def _wait(self) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the node exited with {self.proc.returncode}; see node.log")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the node did not start within 60 s")

    def rss_mb(self) -> float:
        """The node's resident memory (VmRSS), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        """Stop the node and wait for it."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# -- measuring -------------------------------------------------------------------------------


def timed(contenders: dict[str, Callable[[], pd.DataFrame]], repeat: int) -> dict[str, float]:
    """Median seconds of each contender over ``repeat`` interleaved rounds (after a warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    shapes = {name: run().shape for name, run in contenders.items()}  # warm-up, and a check
    if len(set(shapes.values())) != 1:
        raise RuntimeError(f"contenders disagree on the result's shape: {shapes}")
    for _ in range(repeat):
        for name, run in contenders.items():
            start = time.perf_counter()
            df = run()
            times[name].append(time.perf_counter() - start)
            del df
    return {name: statistics.median(t) for name, t in times.items()}


def report(store: str, medians: dict[str, float], direct_names: list[str]) -> dict[str, float]:
    """Print a store's medians and ratios; return the ratios."""
    direct = min(direct_names, key=lambda n: medians[n])
    ours = medians["matgate"]
    print(f"\n{store}:")
    for name, seconds in sorted(medians.items(), key=lambda kv: kv[1]):
        mark = "  <- direct baseline" if name == direct else ""
        print(f"  {name:<12} {seconds * 1000:9.1f} ms{mark}")
    vs_direct, speedup = ours / medians[direct], medians["read_sql"] / ours
    target = TARGET_FILES if store in FILE_STORES else TARGET_DIRECT
    print(f"  matgate / {direct}: {vs_direct:.2f}x (target <= {target}x)")
    if "connector" in medians:
        inner = medians["connector"] / medians[direct]
        print(f"  connector (in process, no HTTP) / {direct}: {inner:.2f}x")
    print(f"  read_sql / matgate: {speedup:.1f}x faster (target >= {TARGET_READ_SQL}x)")
    return {"vs_direct": vs_direct, "speedup": speedup}


def memory(node: NodeProcess, dataset: str, rows: int) -> None:
    """Pull ``rows`` rows while sampling the node's RSS every 10 ms; print the growth."""
    before = node.rss_mb()
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, node.rss_mb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    from gateway.client import Client

    start = time.perf_counter()
    with Client(node.url, token=node.token, progress=False, timeout=600) as client:
        table = client.dataset(dataset).to_arrow(purpose="research")
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    got = table.num_rows
    del table
    growth = peak - before
    verdict = "met" if growth <= TARGET_MB else "MISSED"
    print(f"\nmemory: pulled {got:,} rows ({got * 80 / 1e6:.0f} MB of values) in {seconds:.1f} s")
    print(
        f"  node RSS at start {node.started_rss:.0f} MB, before this pull {before:.0f} MB, "
        f"peak {peak:.0f} MB: growth {growth:.0f} MB"
    )
    print(f"  target: growth <= {TARGET_MB:.0f} MB: {verdict}")


def main() -> int:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--stores", default="sqlite,postgres,parquet,csv")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-rows", type=int, default=5_000_000)
    ap.add_argument("--pg-url", default=PG_URL)
    args = ap.parse_args()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(stores) - {"sqlite", "postgres", *FILE_STORES}
    if unknown:
        ap.error(f"unknown store(s): {', '.join(sorted(unknown))}")
    home = Path(tempfile.mkdtemp(prefix="matgate-bench-"))
    sqlite_url = f"sqlite:///{home / 'bench.db'}"
    node: NodeProcess | None = None
    pg_tables: list[str] = []
    try:
        print(f"{args.rows:,} rows x 10 numeric columns, filter {FILTER!r}, {args.repeat} rounds")
        data = make_table(args.rows)
        cfg_stores: dict[str, Any] = {}
        datasets: list[dict[str, Any]] = []
        if "sqlite" in stores:
            load_sql(sqlite_url, TABLE, data)
            cfg_stores["lite"] = {"kind": "sql", "url": sqlite_url}
            datasets.append(dataset_entry("slice-sqlite", "lite", TABLE))
        if "postgres" in stores or not args.skip_memory:
            cfg_stores["pg"] = {"kind": "sql", "url": args.pg_url}
        if "postgres" in stores:
            pg_tables.append(TABLE)
            load_sql(args.pg_url, TABLE, data)
            datasets.append(dataset_entry("slice-postgres", "pg", TABLE))
        if set(stores) & set(FILE_STORES):
            (home / "files").mkdir()
            cfg_stores["files"] = {"kind": "files", "path": str(home / "files")}
        if "parquet" in stores:
            pq.write_table(data, home / "files" / "bench.parquet")
            datasets.append(dataset_entry("slice-parquet", "files", "bench.parquet"))
        if "csv" in stores:
            pacsv.write_csv(data, home / "files" / "bench.csv")
            datasets.append(dataset_entry("slice-csv", "files", "bench.csv"))
        if not args.skip_memory:
            pg_tables.append(MEMORY_TABLE)
            load_sql(args.pg_url, MEMORY_TABLE, make_table(args.memory_rows, seed=11))
            datasets.append(dataset_entry("slice-memory", "pg", MEMORY_TABLE))
        del data
        node = NodeProcess(home, cfg_stores, datasets)
        print(f"node: pid {node.proc.pid} at {node.url}, RSS {node.started_rss:.0f} MB")
        for store in stores:
            url = sqlite_url if store == "sqlite" else args.pg_url
            ours = matgate_contender(node.url, node.token, f"{INSTITUTION}/slice-{store}")
            if store in FILE_STORES:
                read = parquet_contenders if store == "parquet" else csv_contenders
                contenders = read(home / "files" / f"bench.{store}")
                contenders["connector"] = connector_contender(home / "files", f"bench.{store}")
                direct = ["pyarrow"]
            else:
                contenders = {
                    "read_sql": read_sql_contender(url, TABLE),
                    "adbc": adbc_contender(url, TABLE),
                    "connectorx": connectorx_contender(url, TABLE),
                }
                direct = ["adbc", "connectorx"]
            contenders["matgate"] = ours
            report(store, timed(contenders, args.repeat), direct)
        if not args.skip_memory:
            memory(node, f"{INSTITUTION}/slice-memory", args.memory_rows)
    finally:
        if node is not None:
            node.stop()
        for conn in OPEN:
            conn.close()
        for name in pg_tables:
            drop_sql(args.pg_url, name)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
