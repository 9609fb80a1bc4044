"""One log, many writers: OS processes appending to one database leave one log, without gaps,
duplicates or forks, and every writer's tree head agrees with the stored entries.

Each process mixes the three ways of appending: ``append`` (group commit), ``append_many`` and
``append_in`` (an entry written in the transaction of a state change of its own).
"""

from __future__ import annotations

import multiprocessing as mp
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from audit_samples import decision

from audit.entries import GENESIS, split_entry
from audit.keys import Signer
from audit.log import AuditLog
from audit.merkle import MerkleTree, leaf_hash
from audit.store import create_tables

PROCESSES = 4
ROUNDS = 40
changes = sa.Table(
    "writer_changes",
    sa.MetaData(),
    sa.Column("worker", sa.Integer, primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True),
    sa.Column("idx", sa.BigInteger, nullable=False),
)


def _engine(url: str, schema: str | None) -> sa.Engine:
    if schema is None:
        return sa.create_engine(url, connect_args={"timeout": 60})
    return sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})


def _writer(url: str, schema: str | None, worker: int, start: Any, out: Any) -> None:
    """One process: ROUNDS rounds of mixed appends, then its view of the tree head."""
    engine = _engine(url, schema)
    log = AuditLog(engine, Signer.generate(f"writer-{worker}"), node="node-a")
    mine: list[int] = []
    start.wait()
    for r in range(ROUNDS):
        n = worker * 1000 + r
        if r % 3 == 0:
            mine.append(log.append(decision(n)))
        elif r % 3 == 1:
            mine += log.append_many([decision(n), decision(n, allow=False)])
        else:
            with engine.begin() as conn:  # a state change and its entry, one transaction
                conn.execute(sa.insert(changes), [{"worker": worker, "round": r, "idx": -1}])
                (index,) = log.append_in(conn, [decision(n, principal="steward@uni-a")])
                conn.execute(
                    sa.update(changes)
                    .where(changes.c.worker == worker, changes.c.round == r)
                    .values(idx=index)
                )
                mine.append(index)
    size = log.refresh()
    checkpoint = log.checkpoint()
    out.put((worker, mine, size, log.root(size).hex(), checkpoint.size, checkpoint.root))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """A database URL (and PostgreSQL schema) with the audit tables."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'shared.db'}", None
        engine = _engine(url, schema)
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    else:
        url, schema = str(request.getfixturevalue("pg_url")), f"writers_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        admin.dispose()
        engine = _engine(url, schema)
    create_tables(engine)
    changes.create(engine)
    engine.dispose()
    yield url, schema


def test_processes_append_to_one_log_without_gaps_duplicates_or_forks(database):
    url, schema = database
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(url, schema, w, start, out)) for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    start.set()
    reports = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    engine = _engine(url, schema)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT idx, body, leaf_hash FROM audit_entries ORDER BY idx"))
        stored = [(int(i), bytes(b), bytes(h)) for i, b, h in rows]
        paired = {
            int(i): int(w) for i, w in conn.execute(sa.select(changes.c.idx, changes.c.worker))
        }
    total = PROCESSES * (ROUNDS + ROUNDS // 3 + (1 if ROUNDS % 3 > 1 else 0))
    assert [i for i, _, _ in stored] == list(range(total))  # contiguous, no duplicates
    prev = GENESIS
    for index, body, digest in stored:  # one chain: no fork anywhere
        seq, link, _ = split_entry(body)
        assert (seq, link) == (index, prev)
        assert leaf_hash(body) == digest
        prev = digest.hex()
    claimed = sorted(i for _, mine, *_ in reports for i in mine)
    assert claimed == list(range(total))  # every appender got its own indexes
    assert all(i >= 0 for i in paired) and len(paired) == PROCESSES * (ROUNDS // 3)
    tree = MerkleTree(digest for _, _, digest in stored)
    for _worker, _mine, size, root, cp_size, cp_root in reports:
        assert tree.root(size).hex() == root  # each writer's head is a head of the one log
        assert tree.root(cp_size).hex() == cp_root
    fresh = AuditLog(engine, Signer.generate("reader"), node="node-a")
    assert fresh.size() == total and fresh.root() == tree.root()
    engine.dispose()
