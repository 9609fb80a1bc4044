"""The node's append-only, verifiable event log: one ``append`` for every event.

One log, many writers: every append takes the log's lock inside its database transaction
(``audit.store.lock_log``), reads the last entry, and numbers and chains its entries after it, so
threads, worker processes and replicas sharing the database append without gaps, duplicates or
forks. ``append_in`` appends inside a caller's transaction, so a state change and its entry commit
together or not at all; ``append`` commits at once (group commit: threads appending at the same
time share one transaction, which is what makes durable appends fast).

The Merkle tree of all entries is kept in memory and only ever holds committed entries: it grows
after this process's commits and catches up from the database (``refresh``) before a tree head
or a proof is given, so every replica serves the same heads and proofs. Any failure to write
raises ``AuditUnavailable``: the caller must fail closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from audit.canonical import encode_plain
from audit.checkpoints import Checkpoint, sign_checkpoint
from audit.entries import GENESIS, AuditEntry, encode_entry
from audit.errors import AuditUnavailable, ProofError
from audit.events import Event
from audit.keys import Signer
from audit.merkle import MerkleTree, leaf_hash
from audit.search import EventFilter, EventPage, format_time, page_query, write_export
from audit.store import checkpoints, entries, lock_log

__all__ = ["Also", "AuditLog", "ConsistencyProof", "InclusionProof"]

log = logging.getLogger(__name__)
_MAX_INDEX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Leaf ``index`` is in the tree of ``size`` leaves with ``root`` (all hashes hex)."""

    index: int
    size: int
    leaf_hash: str
    root: str
    path: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``GET /audit/proof/inclusion``."""
        return {
            "index": self.index,
            "size": self.size,
            "leaf_hash": self.leaf_hash,
            "root": self.root,
            "path": self.path,
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The tree of ``first`` leaves is a prefix of the tree of ``second`` leaves."""

    first: int
    second: int
    first_root: str
    second_root: str
    path: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``GET /audit/proof/consistency``."""
        return {
            "from": self.first,
            "to": self.second,
            "from_root": self.first_root,
            "to_root": self.second_root,
            "path": self.path,
        }


Also = Callable[[sa.Connection], None]
"""Writes that commit with an append's entries, in their transaction, after them."""


@dataclass
class _Pending:
    """Events waiting for a commit, what else commits with them, and what became of them."""

    rows: list[dict[str, Any]]
    also: Also | None = None
    first: int = -1
    error: BaseException | None = None
    done: bool = False


def _utcnow() -> datetime:
    return datetime.now(UTC)


_COLUMNS = tuple(c.name for c in entries.columns)
# built from the table definition only, never from input
_SQLITE_INSERT = (
    f"INSERT INTO {entries.name} ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


# built once: every append asks for the last entry
_LAST = sa.select(entries.c.idx, entries.c.leaf_hash).order_by(entries.c.idx.desc()).limit(1)


def _cursor(cursor: str | None) -> int:
    """The index a page cursor stands for (-1: from the start); ValueError if it is not one."""
    if not cursor:
        return -1
    # ASCII digits only (int() would take "٣", " 3" and "3_0"), and within a BIGINT
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19 or int(cursor) > _MAX_INDEX:
        raise ValueError(f"bad cursor {cursor[:40]!r}: an entry index from next_cursor")
    return int(cursor)


def _all(conn: sa.Connection, query: sa.Select[Any]) -> list[Any]:
    return list(conn.execute(query).all())


def _insert_entries(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert entry rows; on PostgreSQL with psycopg through COPY, many times faster than
    row-by-row inserts, in the same transaction."""
    raw = conn.connection.driver_connection
    if (
        conn.dialect.name == "postgresql"
        and hasattr(raw, "cursor")
        and conn.dialect.driver == "psycopg"
    ):
        statement = f"COPY {entries.name} ({', '.join(_COLUMNS)}) FROM STDIN"
        try:
            assert raw is not None
            with raw.cursor() as cur, cur.copy(statement) as copy:
                for row in rows:
                    copy.write_row(tuple(row[c] for c in _COLUMNS))
        except Exception as exc:  # the driver's own errors: give them SQLAlchemy's shape
            if getattr(exc, "sqlstate", None) == "23505":  # a unique index refused a row
                raise IntegrityError(statement, None, exc) from exc
            raise OperationalError(statement, None, exc) from exc
        return
    if conn.dialect.name == "sqlite":
        # straight to the driver's executemany: the generic path's per-row processing costs
        # more than the insert itself
        conn.exec_driver_sql(_SQLITE_INSERT, [tuple(row[c] for c in _COLUMNS) for row in rows])
        return
    conn.execute(entries.insert(), rows)


def _append_rows(conn: sa.Connection, rows: list[dict[str, Any]]) -> tuple[int, list[bytes]]:
    """Under the log's lock, number and chain ``rows`` after the last entry and insert them;
    returns the first index and the leaf hashes."""
    lock_log(conn)
    last = conn.execute(_LAST).first()
    seq = 0 if last is None else int(last[0]) + 1
    prev = GENESIS if last is None else bytes(last[1]).hex()
    first = seq
    stored: list[dict[str, Any]] = []
    hashes: list[bytes] = []
    for row in rows:
        body = encode_entry(row["event_json"], seq, prev)
        digest = leaf_hash(body)
        out = {k: v for k, v in row.items() if k != "event_json"}
        out.update(idx=seq, body=body, leaf_hash=digest)
        stored.append(out)
        hashes.append(digest)
        prev = digest.hex()
        seq += 1
    _insert_entries(conn, stored)
    return first, hashes


class AuditLog:
    """The event log of one node on SQLite or PostgreSQL tables from ``audit.store``."""

    def __init__(
        self,
        engine: sa.Engine,
        signer: Signer,
        *,
        node: str,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._engine = engine
        self._signer = signer
        self.node = node
        self._clock = clock or _utcnow
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._tree_lock = threading.Lock()
        self._tree = MerkleTree()
        self.refresh()

    @property
    def signer(self) -> Signer:
        """The node key that signs checkpoints."""
        return self._signer

    def jwks(self) -> dict[str, Any]:
        """The JWK Set that verifies this log's checkpoints."""
        return self._signer.jwks()

    # -- the in-memory tree -----------------------------------------------------------------

    def refresh(self) -> int:
        """Catch the in-memory tree up with entries committed by anyone; returns the size."""
        with self._tree_lock:
            self._catch_up()
            return self._tree.size

    def _catch_up(self) -> None:
        # holds _tree_lock; only a contiguous run from the tree's size is taken, so the tree can
        # never skip an entry, whatever the isolation level showed
        size = self._tree.size
        c = entries.c
        query = sa.select(c.idx, c.leaf_hash).where(c.idx >= size).order_by(c.idx)
        try:
            with self._engine.connect() as conn:
                found: list[bytes] = []
                rows: Iterable[Any] = conn.execute(query)
                for idx, digest in rows:
                    if idx != size + len(found):
                        break
                    found.append(bytes(digest))
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"audit store unreadable: {exc.__class__.__name__}") from exc
        self._tree.extend(found)

    def _catch_up_to(self, size: int | None) -> None:
        # entries never change: a tree that already holds ``size`` leaves needs no query
        if size is None or size > self._tree.size:
            self._catch_up()

    def _grow(self, first: int, hashes: list[bytes]) -> None:
        """Add this process's newly committed entries ``first``.. to the tree."""
        with self._tree_lock:
            size = self._tree.size
            if size == first:
                self._tree.extend(hashes)
            elif size < first + len(hashes):  # others committed before us: read theirs and ours
                try:
                    self._catch_up()
                except AuditUnavailable:  # ours are durable; the next refresh catches up
                    log.warning("audit tree behind the store after a commit", exc_info=True)

    # -- appending -------------------------------------------------------------------------

    def now(self) -> str:
        """The log's clock, as entry times are written."""
        return format_time(self._clock())

    def _row(self, event: Event, now: str) -> dict[str, Any]:
        data = event.to_dict()
        # stamp the dict rather than dataclasses.replace the event: this is the hot path
        data["time"] = data["time"] or now
        data["node"] = data["node"] or self.node
        return {
            "time": data["time"],
            "name": event.name,
            "request_id": event.request_id,
            "principal": event.principal,
            "institution": event.institution,
            "dataset": event.dataset,
            "action": event.action,
            "purpose": event.purpose,
            "decision": event.decision,
            "manifest_id": getattr(event, "manifest_id", None) or None,
            "event_json": encode_plain(data),
        }

    def _rows(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        now = self.now()
        try:
            return [self._row(e, now) for e in events]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"event is not canonical-JSON serialisable: {exc}") from exc

    def append(self, event: Event, *, also: Also | None = None) -> int:
        """Record one event; returns its index once it is committed (with ``also``'s writes)."""
        return self.append_many([event], also=also)[0]

    def append_many(self, events: Sequence[Event], *, also: Also | None = None) -> list[int]:
        """Record events in order in one transaction; returns their indexes once committed.

        ``also`` writes rows that belong with the entries (the lineage of a delivered slice) in
        the same transaction, after them: both commit or neither does."""
        if not events:
            return []
        item = _Pending(self._rows(events), also)
        with self._queue_lock:
            self._queue.append(item)
        with self._write_lock:
            # whoever holds the lock commits everything queued so far: followers find their
            # events already done, so concurrent appenders share one commit
            if not item.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        if item.error is not None:
            raise AuditUnavailable(
                f"audit log could not be written: {item.error.__class__.__name__}"
            ) from item.error
        return list(range(item.first, item.first + len(item.rows)))

    def append_in(self, conn: sa.Connection, events: Sequence[Event]) -> list[int]:
        """Record events inside the caller's open transaction on ``conn``: they commit with the
        caller's changes or not at all. The log's lock is held until that transaction ends; the
        tree takes the entries once they are committed (``refresh``)."""
        if not events:
            return []
        rows = self._rows(events)
        try:
            first, _ = _append_rows(conn, rows)
        except SQLAlchemyError as exc:
            raise AuditUnavailable(
                f"audit log could not be written: {exc.__class__.__name__}"
            ) from exc
        return list(range(first, first + len(rows)))

    def _commit(self, batch: list[_Pending]) -> None:
        rows = [row for item in batch for row in item.rows]
        companion = False
        try:
            with self._engine.begin() as conn:
                first, hashes = _append_rows(conn, rows)
                companion = True
                for item in batch:
                    if item.also is not None:
                        item.also(conn)
                companion = False
        except Exception as exc:  # whatever failed, nothing of the batch committed
            if companion and len(batch) > 1:
                # one append's own writes failed (and rolled everything back): the others
                # must not fail with it, so each is committed again on its own
                for item in batch:
                    self._commit([item])
                return
            for item in batch:
                item.error = exc
                item.done = True
            return
        at = first
        for item in batch:
            item.first = at
            at += len(item.rows)
            item.done = True
        self._grow(first, hashes)

    # -- tree heads and proofs -----------------------------------------------------------

    def size(self) -> int:
        """Number of durable entries (caught up with every writer of the log)."""
        return self.refresh()

    def root(self, size: int | None = None) -> bytes:
        """The tree head at ``size`` (default: now)."""
        with self._tree_lock:
            self._catch_up_to(size)
            return self._tree.root(size)

    def checkpoint(self) -> Checkpoint:
        """Sign and store the current tree head (the latest one if nothing was added since)."""
        with self._write_lock:
            size = self.refresh()
            latest = self.latest_checkpoint()
            if latest is not None and latest.size == size:
                return latest
            cp = sign_checkpoint(
                self._signer,
                size=size,
                root=self.root(size),
                time=format_time(self._clock()),
                node=self.node,
            )
            try:
                with self._engine.begin() as conn:
                    conn.execute(checkpoints.insert(), [cp.to_dict()])
            except SQLAlchemyError as exc:
                raise AuditUnavailable(f"checkpoint not stored: {exc.__class__.__name__}") from exc
            return cp

    def checkpoint_if_due(self, every_seconds: float) -> Checkpoint | None:
        """A new checkpoint if entries were added and the last one is older than the interval."""
        latest = self.latest_checkpoint()
        if self.refresh() == (latest.size if latest else 0):
            return None
        if latest is not None:
            then = datetime.strptime(latest.time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            if (self._clock() - then).total_seconds() < every_seconds:
                return None
        return self.checkpoint()

    def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint of the largest size, if any."""
        c = checkpoints.c
        query = sa.select(checkpoints).order_by(c.size.desc(), c.id.desc()).limit(1)
        found = self._read(lambda conn: conn.execute(query).mappings().first())
        return Checkpoint.from_dict(found) if found else None

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, oldest first."""
        query = sa.select(checkpoints).order_by(checkpoints.c.id)
        rows = self._read(lambda conn: conn.execute(query).mappings().all())
        return [Checkpoint.from_dict(r) for r in rows]

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """Proof that entry ``index`` is in the tree of ``size`` entries (default: now)."""
        with self._tree_lock:
            self._catch_up_to(size)
            tree = self._tree
            size = tree.size if size is None else size
            if not 0 <= index < size:
                raise ProofError(f"leaf {index} is not in a tree of size {size}")
            path = tree.inclusion_proof(index, size)
            return InclusionProof(
                index, size, tree.leaf(index).hex(), tree.root(size).hex(), [p.hex() for p in path]
            )

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        """Proof that the log at ``first`` entries is a prefix of the log at ``second``."""
        with self._tree_lock:
            self._catch_up_to(second)
            tree = self._tree
            second = tree.size if second is None else second
            if not 0 <= first <= second:
                raise ProofError(f"no consistency proof from size {first} to size {second}")
            path = tree.consistency_proof(first, second)
            return ConsistencyProof(
                first,
                second,
                tree.root(first).hex(),
                tree.root(second).hex(),
                [p.hex() for p in path],
            )

    # -- reading -------------------------------------------------------------------------

    def _read(self, fn: Callable[[sa.Connection], Any]) -> Any:
        try:
            with self._engine.connect() as conn:
                return fn(conn)
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"audit store unreadable: {exc.__class__.__name__}") from exc

    def entry(self, index: int) -> AuditEntry:
        """The entry at ``index``."""
        c = entries.c
        query = sa.select(c.idx, c.body, c.leaf_hash).where(c.idx == index)
        row = self._read(lambda conn: conn.execute(query).first())
        if row is None:
            raise ProofError(f"no entry {index}")
        return AuditEntry.from_body(row[0], bytes(row[1]), bytes(row[2]))

    def has_manifest(self, manifest_id: str) -> bool:
        """Whether a delivered slice with this manifest id is in the log."""
        c = entries.c
        query = sa.select(c.idx).where(c.manifest_id == manifest_id, c.name == "slice").limit(1)
        return self._read(lambda conn: conn.execute(query).first()) is not None

    def events(
        self,
        filters: EventFilter | None = None,
        *,
        cursor: str | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> EventPage:
        """One page of entries matching ``filters`` from ``cursor`` on (keyset pagination),
        oldest first or newest first."""
        if not 1 <= limit <= 10_000:
            raise ValueError("limit must be between 1 and 10000")
        at = _cursor(cursor)
        query = page_query(filters or EventFilter(), at, limit, newest_first=newest_first)
        rows = self._read(lambda conn: conn.execute(query).all())
        found = [AuditEntry.from_body(i, bytes(b), bytes(h)) for i, b, h in rows[:limit]]
        more = len(rows) > limit
        return EventPage(found, str(found[-1].index) if more and found else None)

    def iter_events(self, filters: EventFilter | None = None) -> Iterator[AuditEntry]:
        """Every matching entry, page by page."""
        cursor: str | None = None
        while True:
            page = self.events(filters, cursor=cursor, limit=1000)
            yield from page.entries
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def export(self, fp: IO[str], fmt: str = "jsonl", filters: EventFilter | None = None) -> int:
        """Write the matching entries to ``fp`` as ``jsonl`` or ``csv``; returns the count."""
        return write_export(fp, self.iter_events(filters), fmt)

    def bodies(self, batch: int = 10_000) -> Iterable[bytes]:
        """Every stored entry's exact bytes in index order (for verification and bundles)."""
        c = entries.c
        after = -1
        while True:
            query = sa.select(c.idx, c.body).where(c.idx > after).order_by(c.idx).limit(batch)
            rows: list[Any] = self._read(partial(_all, query=query))
            for _, body in rows:
                yield bytes(body)
            if len(rows) < batch:
                return
            after = rows[-1][0]
