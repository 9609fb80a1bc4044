"""The log on real SQLite: appends, durability, proofs, checkpoints, queries, fail-closed."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from audit_samples import SteppingClock, decision, refuse_audit_writes

from audit.bundle import verify_log
from audit.entries import split_entry
from audit.errors import AuditUnavailable, ProofError
from audit.events import RunRegistered
from audit.keys import public_keys
from audit.log import AuditLog
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.search import EventFilter
from audit.store import create_tables


def test_append_returns_consecutive_indexes_and_stamps_time_and_node(log: AuditLog) -> None:
    assert log.append(decision(0)) == 0
    assert log.append_many([decision(1), decision(2)]) == [1, 2]
    entry = log.entry(1)
    assert entry.event["node"] == "node-a"
    assert entry.event["time"] == "2025-03-01T09:00:02.000000Z"
    assert entry.event["name"] == "decision" and entry.event["reasons"] == ["rule 1"]
    assert log.size() == 3


def test_appended_entries_survive_a_restart(log: AuditLog, engine: sa.Engine) -> None:
    log.append_many([decision(i) for i in range(5)])
    root = log.root()
    again = AuditLog(engine, log.signer, node="node-a")
    assert again.size() == 5 and again.root() == root
    assert again.append(decision(5)) == 5


def test_entries_chain_to_their_predecessor(log: AuditLog) -> None:
    log.append_many([decision(i) for i in range(3)])
    bodies = list(log.bodies())
    seq, prev, _ = split_entry(bodies[2])
    assert seq == 2 and prev == leaf_hash(bodies[1]).hex()


def test_concurrent_appenders_share_commits_and_lose_nothing(log: AuditLog) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(25):
            index = log.append(decision(t * 100 + i))
            with lock:
                got.append(index)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(200))
    log.checkpoint()
    assert verify_log(log).ok


def test_proofs_verify_against_a_signed_checkpoint(
    filled: Callable[[int], AuditLog], signer: object
) -> None:
    log = filled(37)
    early = log.checkpoint()
    log.append_many([decision(i) for i in range(37, 50)])
    late = log.checkpoint()
    key = public_keys(log.jwks())[late.kid]
    assert early.verify(key) and late.verify(key)
    proof = log.inclusion_proof(20, late.size)
    assert proof.root == late.root
    path = [bytes.fromhex(p) for p in proof.path]
    assert verify_inclusion(bytes.fromhex(proof.leaf_hash), 20, 50, path, bytes.fromhex(late.root))
    assert leaf_hash(list(log.bodies())[20]).hex() == proof.leaf_hash
    cons = log.consistency_proof(early.size, late.size)
    assert verify_consistency(
        37,
        50,
        bytes.fromhex(early.root),
        bytes.fromhex(late.root),
        [bytes.fromhex(p) for p in cons.path],
    )
    with pytest.raises(ProofError):
        log.inclusion_proof(50, 50)
    with pytest.raises(ProofError):
        log.consistency_proof(10, 51)


def test_checkpoint_is_reused_until_the_log_grows(log: AuditLog) -> None:
    log.append(decision(0))
    first = log.checkpoint()
    assert log.checkpoint() == first
    log.append(decision(1))
    assert log.checkpoint().size == 2
    assert [c.size for c in log.checkpoints()] == [1, 2]
    assert log.latest_checkpoint() is not None and log.latest_checkpoint().size == 2


def test_checkpoint_if_due_waits_for_interval_and_new_entries(
    log: AuditLog, clock: SteppingClock
) -> None:
    assert log.checkpoint_if_due(60) is None  # empty log
    log.append(decision(0))
    assert log.checkpoint_if_due(60) is not None  # first one is due at once
    log.append(decision(1))
    assert log.checkpoint_if_due(60) is None  # only seconds later
    clock.now = clock.now.replace(hour=10)
    cp = log.checkpoint_if_due(60)
    assert cp is not None and cp.size == 2
    assert log.checkpoint_if_due(0) is None  # nothing new since


FILTERS = [
    (EventFilter(), 40),
    (EventFilter(decision="deny"), 10),
    (EventFilter(dataset="inst-a/alloys"), 20),
    (EventFilter(domain="inst-a"), 20),
    (EventFilter(purpose="ml-training"), 14),
    (EventFilter(principal="ana@uni-a", decision="allow"), 30),
    (EventFilter(institution="uni-b"), 0),
    (EventFilter(action="read", name="decision"), 40),
    (EventFilter(name="slice"), 0),
]


@pytest.mark.parametrize(("filters", "expected"), FILTERS)
def test_event_filters(
    filled: Callable[[int], AuditLog], filters: EventFilter, expected: int
) -> None:
    log = filled(40)
    assert sum(1 for _ in log.iter_events(filters)) == expected


def test_time_range_filter(filled: Callable[[int], AuditLog], clock: SteppingClock) -> None:
    log = filled(3)
    since = clock()  # after the first batch's time, before the second's
    log.append_many([decision(i) for i in range(3, 8)])
    page = log.events(EventFilter(since=since), limit=100)
    assert [e.index for e in page.entries] == [3, 4, 5, 6, 7]
    assert log.events(EventFilter(until=since)).entries[-1].index == 2


def test_keyset_pagination_walks_every_entry_once(filled: Callable[[int], AuditLog]) -> None:
    log = filled(25)
    seen, cursor, pages = [], None, 0
    while True:
        page = log.events(EventFilter(decision="allow"), cursor=cursor, limit=7)
        seen += [e.index for e in page.entries]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [i for i in range(25) if i % 4 != 0] and pages == 3
    with pytest.raises(ValueError):
        log.events(cursor="x")


def test_exports_as_json_lines_and_csv(filled: Callable[[int], AuditLog]) -> None:
    log = filled(6)
    out = io.StringIO()
    assert log.export(out, "jsonl", EventFilter(decision="deny")) == 2
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["index"] for r in rows] == [0, 4] and rows[0]["reasons"] == ["rule 0"]
    out = io.StringIO()
    assert log.export(out, "csv") == 6
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("index,time,name,request_id")
    assert lines[1].startswith("0,2025-03-01T09:00:01.000000Z,decision,req-0,node-a,ana@uni-a")
    with pytest.raises(ValueError):
        log.export(io.StringIO(), "xml")


def test_unserialisable_event_is_refused_before_writing(log: AuditLog) -> None:
    with pytest.raises(ValueError):
        log.append(RunRegistered(metrics={"r2": float("nan")}))
    assert log.size() == 0


def test_unwritable_store_raises_audit_unavailable_and_releases_nothing(
    log: AuditLog, engine: sa.Engine, tmp_path: Path
) -> None:
    log.append(decision(0))
    root = log.root()
    with engine.begin() as conn:
        refuse_audit_writes(conn)
    with pytest.raises(AuditUnavailable):
        log.append(decision(1))
    with pytest.raises(AuditUnavailable), engine.begin() as conn:
        log.append_in(conn, [decision(2)])
    assert log.size() == 1 and log.root() == root  # the tree did not grow
    with engine.begin() as conn:
        refuse_audit_writes(conn, refuse=False)
    assert log.append(decision(3)) == 1


def test_read_only_database_fails_closed(tmp_path: Path, signer: object) -> None:
    path = tmp_path / "ro.db"
    eng = sa.create_engine(f"sqlite:///{path}")
    create_tables(eng)
    eng.dispose()
    os.chmod(path, 0o444)
    ro = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        log = AuditLog(ro, signer, node="node-a")  # type: ignore[arg-type]
        with pytest.raises(AuditUnavailable):
            log.append(decision(0))
        with pytest.raises(AuditUnavailable):
            log.checkpoint()
        assert log.size() == 0
    finally:
        ro.dispose()


def test_unreachable_database_fails_closed(signer: object) -> None:
    dead = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(AuditUnavailable):
        AuditLog(dead, signer, node="node-a")  # type: ignore[arg-type]


@pytest.mark.parametrize("table", ["audit_entries", "audit_checkpoints"])
@pytest.mark.parametrize("statement", ["UPDATE {t} SET time = 'x'", "DELETE FROM {t}"])
def test_sqlite_guard_refuses_rewrites(
    log: AuditLog, engine: sa.Engine, table: str, statement: str
) -> None:
    log.append(decision(0))
    log.checkpoint()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql(statement.format(t=table))
