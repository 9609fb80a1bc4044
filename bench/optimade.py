"""Benchmark: the OPTIMADE connector against bare paging of the same provider in the same run.

Run ``.venv/bin/python bench/optimade.py``. It starts the
reference server on loopback (all rows of ``expt_gap.csv``), then reads the same slices twice:
the baseline follows ``links.next`` with httpx and decodes the JSON, doing nothing more; the
connector does the same and builds one Arrow batch per page. The ratio is the connector's cost
over the bare transfer (the provider's own time dominates both). A second measure counts the
pages a limited read asks for.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# The reference server's launcher and data loader are the tests' own.
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "connectors")]

from optimade_data.provider import PREFIX, reference_server  # noqa: E402

from connectors.filterparser import parse  # noqa: E402
from connectors.optimade import OptimadeConnector, compile_optimade  # noqa: E402
from connectors.query import Query  # noqa: E402

COLUMNS: tuple[str, ...] = ("id", "chemical_formula_reduced", "elements", "nsites", "last_modified")
COLUMNS += (f"_{PREFIX}_band_gap",)
FILTER = f"NOT _{PREFIX}_band_gap > 1 AND nelements <= 3"
PAGE = 500


def best_of(runs: int, work: Callable[[], int]) -> tuple[float, int]:
    """The fastest of ``runs`` timings of ``work`` and what it returned."""
    best, result = float("inf"), 0
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    """Start the provider, time both readers, print the ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = ROOT / "src" / "gateway" / "demo" / "data" / "expt_gap.csv"
        with reference_server(csv_path, Path(tmp), step=1) as provider:
            text = compile_optimade(parse(FILTER))
            client = httpx.Client(timeout=60)
            connector = OptimadeConnector(provider.url, page_limit=PAGE, timeout=60)
            connector.arrow_schema("structures")  # /info read once, outside the timings

            def bare() -> int:
                params: dict[str, str] | None = {
                    "filter": text,
                    "response_fields": ",".join(COLUMNS),
                    "page_limit": str(PAGE),
                }
                url: str | None = f"{provider.url}/v1/structures"
                rows = 0
                while url:
                    body = client.get(url, params=params).json()
                    rows += len(body["data"])
                    url, params = body["links"].get("next"), None
                return rows

            query = Query("structures", COLUMNS, parse(FILTER))

            def arrow() -> int:
                return sum(b.num_rows for b in connector.batches(query))

            base_time, base_rows = best_of(3, bare)
            conn_time, conn_rows = best_of(3, arrow)
            assert base_rows == conn_rows, (base_rows, conn_rows)
            print(f"rows per read: {conn_rows} in pages of {PAGE}")
            print(f"bare paging (baseline): {base_time * 1000:8.1f} ms")
            print(f"connector to Arrow:     {conn_time * 1000:8.1f} ms")
            print(f"ratio connector/baseline: {conn_time / base_time:.2f}")

            pages: list[httpx.URL] = []
            counting = httpx.Client(
                timeout=60, event_hooks={"request": [lambda r: pages.append(r.url)]}
            )
            limited = OptimadeConnector(provider.url, page_limit=100, client=counting)
            sum(b.num_rows for b in limited.batches(Query("structures", ("id",), limit=250)))
            entries = [u for u in pages if "/info" not in u.path]
            sizes = [u.params.get("page_limit") for u in entries]
            print(f"limit 250, page_limit 100: {len(entries)} page requests, sizes {sizes}")
            counting.close()
            connector.close()
            client.close()


if __name__ == "__main__":
    main()
