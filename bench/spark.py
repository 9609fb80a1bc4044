"""Spark benchmark: a governed pull from a Spark store against Spark Connect's own Arrow read.

A Parquet file of ``--rows`` rows x 10 numeric columns (as in ``bench/slice.py``) is registered as
a table in a local Spark Connect server (started here, small local configuration, unless
``--spark-url`` names one). Interleaved round by round, each contender runs the filter
``c1 < 0.5`` in Spark and ends with a pandas DataFrame of the same shape:

- ``spark``: ``spark.sql(...).toArrow()`` through Spark Connect in this process (the direct read);
- ``connector``: the node's Spark connector in this process (batches streamed, not collected);
- ``matgate``: a full pull from a node (``matgate serve``) whose store is the Spark table.

``pyarrow`` reading the same file locally is shown for scale (no Spark at all).

Run: ``.venv/bin/python bench/spark.py [--rows 1000000] [--repeat 5] [--spark-url sc://...]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from slice import (  # noqa: E402
    COLUMNS,
    FILTER,
    INSTITUTION,
    NodeProcess,
    dataset_entry,
    matgate_contender,
    timed,
)

TABLE = "default.matgate_bench_spark"


def spark_contender(session: object) -> Callable[[], pd.DataFrame]:
    """Spark Connect's own read: the filtered query, collected as Arrow, then pandas."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {FILTER}"
    return lambda: session.sql(sql).toArrow().to_pandas()  # type: ignore[attr-defined]


def connector_contender(url: str) -> Callable[[], pd.DataFrame]:
    """The node's Spark connector in this process (no HTTP, audit or hashing)."""
    from connectors.filterparser import parse
    from connectors.query import Query
    from connectors.spark import SparkConnector

    connector = SparkConnector(url)
    query = Query(TABLE, tuple(COLUMNS), filter=parse(FILTER))

    def run() -> pd.DataFrame:
        batches = list(connector.batches(query))
        return pa.Table.from_batches(batches, schema=connector.schema(query)).to_pandas()

    return run


def main() -> int:
    """Run the benchmark (see the module docstring)."""
    from slice import make_table

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--spark-url", default=None)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="matgate-bench-spark-"))
    server = None
    node = None
    try:
        url = args.spark_url
        if url is None:
            from spark_server import SparkServer

            server = SparkServer(home)
            url = server.url
        path = home / "bench.parquet"
        pq.write_table(make_table(args.rows), path)
        from connectors.spark import SparkConnector

        setup = SparkConnector(url)
        session = setup.session()
        session.sql(f"DROP TABLE IF EXISTS {TABLE}")
        session.sql(f"CREATE TABLE {TABLE} USING parquet LOCATION '{path}'")
        node = NodeProcess(
            home,
            {"lake": {"kind": "spark", "url": url}},
            [dataset_entry("slice-spark", "lake", TABLE)],
        )
        print(f"{args.rows:,} rows x 10 numeric columns, filter {FILTER!r}, {args.repeat} rounds")
        contenders = {
            "pyarrow": lambda: pq.read_table(path, filters=[("c1", "<", 0.5)]).to_pandas(),
            "spark": spark_contender(session),
            "connector": connector_contender(url),
            "matgate": matgate_contender(node.url, node.token, f"{INSTITUTION}/slice-spark"),
        }
        medians = timed(contenders, args.repeat)
        print("\nspark:")
        for name, seconds in sorted(medians.items(), key=lambda kv: kv[1]):
            print(f"  {name:<10} {seconds * 1000:9.1f} ms")
        for name in ("connector", "matgate"):
            print(f"  {name} / spark: {medians[name] / medians['spark']:.2f}x")
        session.sql(f"DROP TABLE IF EXISTS {TABLE}")
        setup.close()
    finally:
        if node is not None:
            node.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
