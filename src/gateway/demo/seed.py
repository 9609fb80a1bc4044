"""Load the demo's rows into the stores that node configs name (``compose.yaml``'s seed job).

``python -m gateway.demo.seed --config aurora.toml --config cygnus.toml`` reads each config,
and for every dataset of the demo it holds, (re)writes its table in the store the config names:
PostgreSQL, MariaDB or SQLite through SQLAlchemy, or a file in a folder store. Running it again
replaces the tables, so the job can be repeated safely before the nodes start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from gateway.config import NodeConfig, load_config
from gateway.demo.stores import TABLES, load_sql, write_files

__all__ = ["main", "parser", "seed"]


def seed(config: NodeConfig, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Write every demo dataset of ``config`` into its store; return rows per dataset id."""
    now = now or dt.datetime.now(dt.UTC)
    by_store: dict[str, dict[str, pa.Table]] = {}
    written: dict[str, int] = {}
    for dataset in config.datasets:
        reader = TABLES.get(dataset.id)
        if reader is None:
            continue
        table = reader(now)
        by_store.setdefault(dataset.location.store, {})[dataset.location.table] = table
        written[dataset.id] = table.num_rows
    for name, tables in by_store.items():
        store = config.stores[name]
        if store.kind == "files":
            write_files(Path(store.target), tables)
        elif store.kind == "sql":
            load_sql(store.target, tables)
    return written


def parser() -> argparse.ArgumentParser:
    """The command line of the seed job."""
    p = argparse.ArgumentParser(
        prog="python -m gateway.demo.seed",
        description="Load the demo datasets into the stores named by node configs.",
    )
    p.add_argument(
        "--config", type=Path, action="append", required=True, help="a node's TOML config"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Seed the stores of every given config."""
    args = parser().parse_args(argv)
    for path in args.config:
        config = load_config(path)
        for dataset_id, rows in seed(config).items():
            print(f"{dataset_id}: {rows} rows", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
