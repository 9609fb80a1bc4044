"""What the ``matgate`` client commands show people: Rich tables, times, progress bars.

Tables go to stdout (plain text when it is not a terminal); ``--json`` output bypasses all of
this, for scripts. Progress bars go to stderr and show only on a terminal, unless ``--no-progress``.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["newest_events", "parse_time", "print_table", "progress", "wait_for_job"]

_RELATIVE = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now: dt.datetime | None = None) -> str:
    """``1h``, ``7d``, ``30m`` (ago), ``2026-12-01`` (midnight UTC) or ISO 8601 -> UTC ISO text.

    A time without a zone is read as UTC. Raises ValueError with the accepted forms.
    """
    now = now or dt.datetime.now(dt.UTC)
    found = _RELATIVE.match(text)
    if found:
        moment = now - dt.timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2).lower()])
    else:
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
                moment = dt.datetime.combine(dt.date.fromisoformat(text.strip()), dt.time())
            else:
                moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{text!r} is not a time: give an age (30m, 1h, 7d, 2w), a date (2026-12-01) "
                "or an ISO 8601 time (2026-12-01T09:30:00Z)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def print_table(
    rows: Iterable[Sequence[Any]],
    headers: Sequence[str],
    *,
    title: str | None = None,
    empty: str = "nothing found",
) -> int:
    """Print ``rows`` as a table under ``headers``; ``empty`` (to stderr) when there are none."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, header_style="bold", show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    count = 0
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
        count += 1
    if count == 0:
        print(empty, file=sys.stderr)
        return 0
    # Piped output keeps one row per line, for grep and friends; a terminal folds long cells.
    Console(soft_wrap=False, width=None if sys.stdout.isatty() else 10_000).print(table)
    return 0


def _enabled(wanted: bool) -> bool:
    return wanted and sys.stderr.isatty()


@contextmanager
def progress(
    description: str, total: float | None, *, enabled: bool, unit: str = "bytes"
) -> Iterator[Callable[[float], None]]:
    """A progress bar with ETA on stderr; yields ``advance(amount)``. Silent when disabled."""
    if not _enabled(enabled):
        yield lambda amount: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda amount: bar.advance(task, amount)


def wait_for_job(
    fetch: Callable[[], dict[str, Any]],
    job: dict[str, Any],
    *,
    timeout: float,
    enabled: bool,
    poll: float = 0.5,
    expected: float | None = None,
) -> dict[str, Any]:
    """Poll a remote job until it is neither queued nor running, with a bar against ``expected``
    seconds (the ETA is the time left of that estimate). Raises TimeoutError after ``timeout``."""
    start = time.monotonic()
    total = expected or timeout
    with progress(f"job {job['id'][:12]}", total, enabled=enabled, unit="seconds") as advance:
        last = start
        while job["status"] in ("queued", "running"):
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"job {job['id']} still {job['status']} after {timeout} s")
            time.sleep(poll)
            job = fetch()
            now = time.monotonic()
            advance(now - last)
            last = now
    return job


def newest_events(
    fetch: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` events matching ``params``, newest first (one page from the node)."""
    page = fetch({**params, "limit": max(1, min(limit, 10_000)), "newest_first": "true"})
    return list(page["events"])
