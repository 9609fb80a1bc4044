# ruff: noqa: E402  (the path fix below must run before the package imports)
"""Audit benchmark: durable append throughput (SQLite, PostgreSQL), verification of 1,000,000
events, inclusion/consistency proofs at 1,000,000 events, and a witness cosignature round.

Run: ``.venv/bin/python bench/audit.py [--events 1000000] [--rounds 50]``. Targets (issue):
>= 10,000 durable events/s with atomic appends on SQLite and PostgreSQL; full verification of
1,000,000 events < 10 s (against a trusted key, the last checkpoint covering every entry); an
inclusion proof at 1,000,000 events < 5 ms; a witness cosignature round over the three demo
nodes on loopback < 100 ms (printed against the same run's bare HTTP round trip to both peers).
Each figure is printed with its target.

Every append takes the log's lock in its transaction and chains after the stored tail (so
processes and replicas can share the log). Each append figure is printed against the same work
without the lock and the tail read (encode, number from a counter in memory, hash, insert in the
same transactions), measured in the same run on the same database: ratio = atomic / unlocked.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this script is named audit.py: keep its folder off the path so "audit" is the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import io
import multiprocessing as mp
import statistics
import tempfile
import threading
import time
import uuid

import sqlalchemy as sa

from audit.bundle import read_bundle, write_bundle
from audit.entries import GENESIS, encode_entry
from audit.events import DecisionMade
from audit.keys import Signer
from audit.log import AuditLog, _insert_entries
from audit.merkle import MerkleTree, leaf_hash
from audit.store import create_tables, entries
from audit.verify import Trust, verify

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def event(i: int) -> DecisionMade:
    """A realistic decision event."""
    return DecisionMade(
        request_id=f"req-{i}",
        principal=f"user{i % 50}@uni-a",
        institution="uni-a",
        dataset="inst-a/alloys",
        action="read",
        purpose="ml-training",
        decision="allow",
        policy_version=7,
        reasons=("steward policy p-12 allows ml-training",),
        columns=("composition", "processing_temp", "hardness"),
        withheld=("operator",),
    )


def _empty(engine: sa.Engine, side: sa.Table) -> None:
    """Start the log afresh (the guard refuses DELETE of entries, so the table is recreated)."""
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE audit_entries"))
        conn.execute(side.delete())
    entries.create(engine)


def _unlocked(engine: sa.Engine, events: list[DecisionMade], batch: int, side: bool) -> float:
    """Events/s of the same work without the log's lock and tail read: encode, number from a
    counter in memory, hash, insert in transactions of ``batch`` (with a side row each, when
    ``side``) -- what an append cost when one process owned the log."""
    log = AuditLog(engine, Signer.generate("bench"), node="bench")
    seq, prev = 0, GENESIS
    start = time.perf_counter()
    for at in range(0, len(events), batch):
        rows = []
        for row in log._rows(events[at : at + batch]):
            body = encode_entry(row.pop("event_json"), seq, prev)
            digest = leaf_hash(body)
            rows.append({**row, "idx": seq, "body": body, "leaf_hash": digest})
            prev, seq = digest.hex(), seq + 1
        with engine.begin() as conn:
            _insert_entries(conn, rows)
            if side:
                conn.execute(SIDE.insert().values(id=seq, idx=seq - 1))
    return len(events) / (time.perf_counter() - start)


def _locked(engine: sa.Engine, events: list[DecisionMade], batch: int, side: bool) -> float:
    """Events/s through the log: ``append_many`` in batches, or one state change (a side row)
    and its entry per transaction with ``append_in``."""
    log = AuditLog(engine, Signer.generate("bench"), node="bench")
    start = time.perf_counter()
    if not side:
        for at in range(0, len(events), batch):
            log.append_many(events[at : at + batch])
    else:
        for i, one in enumerate(events):
            with engine.begin() as conn:
                (index,) = log.append_in(conn, [one])
                conn.execute(SIDE.insert().values(id=i, idx=index))
    return len(events) / (time.perf_counter() - start)


SIDE = sa.Table(
    "bench_changes",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("idx", sa.BigInteger),
)


def bench_append(
    engine: sa.Engine, label: str, total: int = 10_000, rounds: int = 3
) -> dict[str, float]:
    """Durable atomic appends (batched; one state change per transaction; 8 threads sharing
    commits), each against the same work without the lock: interleaved rounds, medians."""
    events = [event(i) for i in range(total)]
    SIDE.create(engine)
    changes = 500 if label == "SQLite" else 300
    got: dict[str, list[float]] = {"ceiling": [], "batched": [], "one": [], "atomic": []}
    for _ in range(rounds):
        for key, fn, evs, batch, side in (
            ("ceiling", _unlocked, events, 500, False),
            ("batched", _locked, events, 500, False),
            ("one", _unlocked, events[:changes], 1, True),
            ("atomic", _locked, events[:changes], 1, True),
        ):
            got[key].append(fn(engine, evs, batch, side))
            _empty(engine, SIDE)
    med = {k: statistics.median(v) for k, v in got.items()}

    log = AuditLog(engine, Signer.generate("bench"), node="bench")
    per_thread = 1_000 if label == "SQLite" else 500
    threads = 8

    def work() -> None:
        for i in range(per_thread):
            log.append(events[i])

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    grouped = threads * per_thread / (time.perf_counter() - start)
    print(
        f"{label:10} append_many(500)          {med['batched']:10,.0f} events/s  "
        f"(target >= 10,000); unlocked {med['ceiling']:,.0f}/s, "
        f"ratio {med['batched'] / med['ceiling']:.2f}"
    )
    print(
        f"{label:10} state change + entry      {med['atomic']:10,.0f} changes/s (a commit each);"
        f" unlocked {med['one']:,.0f}/s, ratio {med['atomic'] / med['one']:.2f}"
    )
    print(f"{label:10} append, 8 threads         {grouped:10,.0f} events/s  (group commit)")
    return {**med, "grouped": grouped}


def _process_appender(url: str, schema: str, count: int, start: object, out: object) -> None:
    """One writer process: ``count`` events in batches of 500."""
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    log = AuditLog(engine, Signer.generate("bench"), node="bench")
    events = [event(i) for i in range(count)]
    start.wait()  # type: ignore[attr-defined]
    for at in range(0, count, 500):
        log.append_many(events[at : at + 500])
    out.put(log.refresh())  # type: ignore[attr-defined]
    engine.dispose()


def bench_processes(url: str, schema: str, processes: int = 4, per: int = 10_000) -> None:
    """``processes`` OS processes appending to one PostgreSQL log at once: the aggregate rate."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_process_appender, args=(url, schema, per, start, out))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    time.sleep(2)  # let them import and connect
    began = time.perf_counter()
    start.set()
    [out.get(timeout=600) for _ in procs]
    took = time.perf_counter() - began
    for p in procs:
        p.join()
    rate = processes * per / took
    print(f"PostgreSQL {processes} processes x append_many(500) {rate:8,.0f} events/s  (one log)")


def synthetic_log(n: int) -> tuple[list[bytes], MerkleTree]:
    """``n`` chained entries as the log stores them (built directly: appending 1M through a
    database is what the append figures above measure)."""
    base = [event(i).canonical() for i in range(1000)]
    bodies: list[bytes] = []
    prev = GENESIS
    for i in range(n):
        body = encode_entry(base[i % 1000], i, prev)
        bodies.append(body)
        prev = leaf_hash(body).hex()
    return bodies, MerkleTree(leaf_hash(b) for b in bodies)


def bench_verify_and_proofs(n: int) -> None:
    """Full verification of ``n`` entries (in memory and from an exported copy) and proofs."""
    from audit.checkpoints import sign_checkpoint

    t0 = time.perf_counter()
    bodies, tree = synthetic_log(n)
    print(f"built {n:,} chained entries in {time.perf_counter() - t0:.1f} s (setup)")
    signer = Signer.generate("bench")
    cps = [
        sign_checkpoint(signer, size=s, root=tree.root(s), time="t", node="bench")
        for s in range(n // 10, n + 1, n // 10)
    ]
    start = time.perf_counter()
    for body in bodies:  # the floor: hashing every entry once, nothing else
        leaf_hash(body)
    floor = time.perf_counter() - start
    start = time.perf_counter()
    report = verify(bodies, cps, Trust.of(jwks=signer.jwks()))
    took = time.perf_counter() - start
    assert report.ok and report.verified_size == n, report.problems[:3]
    print(
        f"verify {n:,} entries, {len(cps)} checkpoints   {took:8.2f} s  (target < 10 s); "
        f"hashing the entries alone {floor:.2f} s ({took / floor:.1f}x)"
    )

    class _Log:  # just enough of AuditLog for write_bundle
        node = "bench"

        def checkpoint(self):  # type: ignore[no-untyped-def]
            return cps[-1]

        def checkpoints(self) -> list:
            return cps

        def size(self) -> int:
            return n

        def jwks(self) -> dict:
            return signer.jwks()

        def bodies(self) -> list[bytes]:
            return bodies

    buf = io.BytesIO()
    write_bundle(_Log(), buf)  # type: ignore[arg-type]
    start = time.perf_counter()
    bundle = read_bundle(io.BytesIO(buf.getvalue()))
    report = verify(bundle.entries, bundle.checkpoints, Trust.of(jwks=signer.jwks()))
    took = time.perf_counter() - start
    assert report.ok
    print(f"verify exported copy ({len(buf.getvalue()) / 1e6:.0f} MB) incl. reading {took:8.2f} s")

    start = time.perf_counter()
    rebuilt = MerkleTree(leaf_hash(b) for b in bodies)
    print(f"tree rebuild from {n:,} leaves                {time.perf_counter() - start:8.2f} s")
    del rebuilt
    timings = []
    for index in range(0, n, n // 1000):
        t = time.perf_counter()
        tree.inclusion_proof(index, n)
        timings.append(time.perf_counter() - t)
    p99 = statistics.quantiles(timings, n=100)[98] * 1e3
    print(
        f"inclusion proof at {n:,}: median {statistics.median(timings) * 1e3:.3f} ms, "
        f"p99 {p99:.3f} ms, max {max(timings) * 1e3:.3f} ms  (target < 5 ms)"
    )
    timings = []
    for first in range(1, n, n // 1000):
        t = time.perf_counter()
        tree.consistency_proof(first, n)
        timings.append(time.perf_counter() - t)
    print(
        f"consistency proof at {n:,}: median {statistics.median(timings) * 1e3:.3f} ms, "
        f"max {max(timings) * 1e3:.3f} ms"
    )


def bench_witness_round(rounds: int) -> None:
    """A cosignature round: aurora signs a checkpoint, borealis and cygnus check its consistency
    proof and cosign, aurora checks and stores both cosignatures (three nodes, one process)."""
    import asyncio
    import statistics as stats

    import httpx
    import uvicorn

    from audit.events import DatasetRegistered
    from gateway.app import create_app
    from gateway.demo import _settings, prepare_federation

    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port_block()
        plans = prepare_federation(Path(tmp), port)
        apps = [
            create_app(_settings(p).model_copy(update={"audit_checkpoint_seconds": 3600}))
            for p in plans
        ]
        servers = [
            uvicorn.Server(uvicorn.Config(a, host="127.0.0.1", port=p["port"], log_level="error"))
            for a, p in zip(apps, plans, strict=True)
        ]
        threads = [threading.Thread(target=s.run, daemon=True) for s in servers]
        for t in threads:
            t.start()
        while not all(s.started for s in servers):
            time.sleep(0.05)
        node = apps[0].state.node
        peers = [p["url"] for p in plans[1:]]

        async def rounds_and_floor() -> tuple[list[float], list[float]]:
            took, floor = [], []
            async with httpx.AsyncClient() as http:
                for i in range(rounds + 3):
                    node.audit.append(DatasetRegistered(dataset=f"aurora/bench-{i}"))
                    t = time.perf_counter()
                    outcome = await node.cosigners.round(deadline=5.0)
                    elapsed = time.perf_counter() - t
                    assert set(outcome.values()) == {"cosigned"}, outcome
                    t = time.perf_counter()
                    await asyncio.gather(*(http.get(f"{u}/healthz") for u in peers))
                    bare = time.perf_counter() - t
                    if i >= 3:  # the first rounds fetch keys and warm connections up
                        took.append(elapsed)
                        floor.append(bare)
            return took, floor

        took, floor = asyncio.run(rounds_and_floor())
        for s in servers:
            s.should_exit = True
        for t in threads:
            t.join(timeout=10)
        for app in apps:
            app.state.node.close()
    median, p95 = stats.median(took) * 1e3, stats.quantiles(took, n=20)[18] * 1e3
    base = stats.median(floor) * 1e3
    print(
        f"witness round, 3 nodes, {rounds} rounds: median {median:.1f} ms, p95 {p95:.1f} ms "
        f"(target < 100 ms); bare HTTP to both peers {base:.1f} ms ({median / base:.1f}x)"
    )


def _free_port_block() -> int:
    """A port P with P, P+1 and P+2 free on loopback."""
    import socket

    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 2 < 65536:
            try:
                for k in (1, 2):
                    with socket.socket() as s:
                        s.bind(("127.0.0.1", port + k))
                return port
            except OSError:
                continue
    raise RuntimeError("no three free ports in a row")


def main() -> None:
    """Run every part and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--rounds", type=int, default=50, help="witness cosignature rounds")
    parser.add_argument("--only", choices=("append", "verify", "witness"), default=None)
    args = parser.parse_args()
    if args.only == "witness":
        bench_witness_round(args.rounds)
        return
    if args.only == "verify":
        bench_verify_and_proofs(args.events)
        return

    with tempfile.TemporaryDirectory() as tmp:
        # synchronous=FULL: every commit is fsynced, i.e. durable when append returns
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'audit.db'}")
        sa.event.listen(
            engine,
            "connect",
            lambda c, _: (
                c.execute("PRAGMA journal_mode=WAL"),
                c.execute("PRAGMA synchronous=FULL"),
            ),
        )
        create_tables(engine)
        bench_append(engine, "SQLite")
        engine.dispose()

    if not args.skip_postgres:
        schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_URL)
        try:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
            engine = sa.create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
            create_tables(engine)
            bench_append(engine, "PostgreSQL")
            engine.dispose()
            bench_processes(PG_URL, schema)
        except sa.exc.OperationalError as exc:
            print(f"PostgreSQL    skipped: {exc.__class__.__name__}")
        finally:
            try:
                with admin.begin() as conn:
                    conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            except sa.exc.OperationalError:
                pass
            admin.dispose()

    if args.only == "append":
        return
    bench_verify_and_proofs(args.events)
    bench_witness_round(args.rounds)


if __name__ == "__main__":
    main()
