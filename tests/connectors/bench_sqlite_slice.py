"""SQLConnector.batches against a raw ADBC read of the same half of 1,000,000 SQLite rows.

Run: ``.venv/bin/python tests/connectors/bench_sqlite_slice.py``; prints the
median times and their ratio (both measured in the same run, interleaved).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from connectors.filterparser import parse
from connectors.query import Query
from connectors.sql import SQLConnector

ROWS = 1_000_000
SQL = "SELECT id, x, y, s FROM t WHERE x > ?"


def make_sqlite(path: Path) -> None:
    """A table of ids, two uniform floats and a short text column."""
    rng = np.random.default_rng(0)
    xs, ys = rng.random(ROWS).tolist(), rng.random(ROWS).tolist()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER, x REAL, y REAL, s TEXT)")
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        ((i, xs[i], ys[i], f"name{i % 1000}") for i in range(ROWS)),
    )
    conn.commit()
    conn.close()


def timed(run: Callable[[], int]) -> tuple[float, int]:
    """Seconds and rows of one run."""
    start = time.perf_counter()
    rows = run()
    return time.perf_counter() - start, rows


def main() -> None:
    """Measure and print."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        make_sqlite(path)
        import adbc_driver_sqlite.dbapi as adbc

        raw_conn = adbc.connect(str(path), autocommit=True)

        def raw() -> int:
            with raw_conn.cursor() as cur:
                cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": "65536"})
                cur.execute(SQL, (0.5,))
                return sum(b.num_rows for b in cur.fetch_record_batch())

        connector = SQLConnector(f"sqlite:///{path}")
        query = Query("t", ("id", "x", "y", "s"), filter=parse("x > 0.5"))

        def sliced() -> int:
            return sum(b.num_rows for b in connector.batches(query))

        raw(), sliced()  # warm caches, reflection and the connection pool
        raw_times, slice_times = [], []
        for _ in range(7):
            seconds, raw_rows = timed(raw)
            raw_times.append(seconds)
            seconds, slice_rows = timed(sliced)
            slice_times.append(seconds)
        assert raw_rows == slice_rows
        raw_median, slice_median = statistics.median(raw_times), statistics.median(slice_times)
        print(f"rows={slice_rows} raw_adbc={raw_median:.3f}s connector={slice_median:.3f}s")
        print(f"ratio={slice_median / raw_median:.3f}")
        connector.close()
        raw_conn.close()


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    main()
