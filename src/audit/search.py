"""Auditors' queries over the log: filters, keyset pagination and CSV / JSON Lines exports."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import sqlalchemy as sa

from audit.entries import AuditEntry
from audit.spreadsheet import neutralise_row
from audit.store import entries

__all__ = ["CSV_COLUMNS", "EventFilter", "EventPage", "format_time", "write_export"]

CSV_COLUMNS = (
    "index",
    "time",
    "name",
    "request_id",
    "node",
    "principal",
    "institution",
    "dataset",
    "action",
    "purpose",
    "decision",
    "leaf_hash",
    "details",
)


def format_time(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds and ``Z``: fixed width, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _instant(moment: datetime | None, name: str) -> datetime | None:
    """``moment`` as an aware instant (no zone: UTC); ValueError outside the years 1-9999 UTC."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    try:
        aware.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name} is outside the years 1 to 9999 in UTC") from None
    return aware


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to list; every given field must match. ``domain`` keeps the events of one
    institution's datasets (``dataset`` equal to it or starting with ``domain/``). Times without
    a zone are UTC; a range that ends before it starts, or times no entry can have, are refused
    (ValueError)."""

    since: datetime | None = None
    until: datetime | None = None
    principal: str | None = None
    institution: str | None = None
    dataset: str | None = None
    action: str | None = None
    decision: str | None = None
    purpose: str | None = None
    name: str | None = None
    domain: str | None = None
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # bounded here, once, so no query can fail on a time it cannot write (ValueError)
        since, until = _instant(self.since, "since"), _instant(self.until, "until")
        if since is not None and until is not None and until < since:
            raise ValueError("until is before since")
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "until", until)

    def where(self) -> list[sa.ColumnElement[bool]]:
        """SQL conditions on the entries table."""
        c = entries.c
        out: list[sa.ColumnElement[bool]] = []
        if self.since is not None:
            out.append(c.time >= format_time(self.since))
        if self.until is not None:
            out.append(c.time < format_time(self.until))
        for column, value in (
            (c.principal, self.principal),
            (c.institution, self.institution),
            (c.dataset, self.dataset),
            (c.action, self.action),
            (c.decision, self.decision),
            (c.purpose, self.purpose),
            (c.name, self.name),
        ):
            if value is not None:
                out.append(column == value)
        if self.names:
            out.append(c.name.in_(self.names))
        if self.domain is not None:
            escaped = self.domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            out.append(
                sa.or_(c.dataset == self.domain, c.dataset.like(f"{escaped}/%", escape="\\"))
            )
        return out


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of entries and the cursor of the next page (``None`` at the end)."""

    entries: list[AuditEntry]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``GET /audit/events``."""
        return {"events": [e.to_dict() for e in self.entries], "next_cursor": self.next_cursor}


def page_query(
    filters: EventFilter, cursor: int, limit: int, *, newest_first: bool = False
) -> sa.Select[Any]:
    """Entries matching ``filters`` after index ``cursor`` (newest first: before it, -1 for the
    newest), at most ``limit`` (+1 to see whether there are more)."""
    c = entries.c
    query = sa.select(c.idx, c.body, c.leaf_hash).where(*filters.where()).limit(limit + 1)
    if not newest_first:
        return query.where(c.idx > cursor).order_by(c.idx)
    if cursor >= 0:
        query = query.where(c.idx < cursor)
    return query.order_by(c.idx.desc())


def write_export(fp: IO[str], rows: Iterator[AuditEntry], fmt: str) -> int:
    """Write entries as ``jsonl`` or ``csv`` text to ``fp``; returns how many were written."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r} (jsonl or csv)")
    count = 0
    writer = csv.writer(fp) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    for entry in rows:
        record = entry.to_dict()
        if writer is None:
            fp.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        else:
            fixed = [record.pop(k, "") for k in CSV_COLUMNS[:-1]]
            rest = json.dumps(record, ensure_ascii=False, sort_keys=True)
            writer.writerow(neutralise_row([*fixed, rest]))  # for spreadsheets: no formulas
        count += 1
    return count
