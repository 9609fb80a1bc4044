"""Two Governance replicas on one real PostgreSQL database see each other's policy changes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from policy_world import BOB, CONFIG, DATASETS, STEVE, Clock

from policies import Action, Governance, PolicyConfig, PolicyLine, RedisWatcher, metadata
from policies.errors import PolicyConflict

pytestmark = pytest.mark.postgres
TENSILE = DATASETS["tensile"]
COMMERCIAL = PolicyLine(
    role="partner", domain="nims", dataset="tensile", action=Action.READ, purpose="commercial"
)


class SignallingWatcher(RedisWatcher):
    """The Redis watcher, also setting an event when a message arrives, so a test can wait."""

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(url, channel)
        self.heard = threading.Event()

    def start(self, callback: Callable[[], None]) -> None:
        """Subscribe; signal after the replica has been marked stale."""

        def heard() -> None:
            callback()
            self.heard.set()

        super().start(heard)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    """The session's PostgreSQL database with this room's tables, emptied for each test."""
    engine = sa.create_engine(pg_url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def _replica(engine: sa.Engine, clock: Clock, watcher: RedisWatcher | None = None) -> Governance:
    gov = Governance(engine, PolicyConfig.model_validate(CONFIG), clock=clock, watcher=watcher)
    gov.seed(DATASETS.values())
    return gov


def test_seeding_twice_writes_one_version(pg_engine: sa.Engine, clock: Clock) -> None:
    a, b = _replica(pg_engine, clock), _replica(pg_engine, clock)
    assert a.version == b.version == 1
    assert len(a.lines(STEVE, "nims")) == len(b.lines(STEVE, "nims"))


@pytest.mark.redis
def test_watcher_carries_changes_to_the_other_replica(
    pg_engine: sa.Engine, redis_url: str, clock: Clock
) -> None:
    channel = f"matgate:policy:test:{uuid.uuid4().hex}"
    wa, wb = SignallingWatcher(redis_url, channel), SignallingWatcher(redis_url, channel)
    a, b = _replica(pg_engine, clock, wa), _replica(pg_engine, clock, wb)
    try:
        assert not b.decide(BOB, TENSILE, "read", "commercial").allowed  # cached in b
        change = a.add_lines(STEVE, "nims", [COMMERCIAL])
        assert wb.heard.wait(10), "replica b never heard of the change"
        decision = b.decide(BOB, TENSILE, "read", "commercial")
        assert decision.allowed and decision.policy_version == change.version == b.version
        assert not wa.heard.is_set(), "a replica does not reload for its own change"

        wb.heard.clear()
        a.remove_lines(STEVE, "nims", [COMMERCIAL])
        assert wb.heard.wait(10)
        assert not b.decide(BOB, TENSILE, "read", "commercial").allowed
        assert b.version == 3
    finally:
        a.close()
        b.close()


def test_sync_is_the_fallback_without_a_watcher(pg_engine: sa.Engine, clock: Clock) -> None:
    a, b = _replica(pg_engine, clock), _replica(pg_engine, clock)
    assert b.sync() == 1
    a.add_lines(STEVE, "nims", [COMMERCIAL])
    assert not b.decide(BOB, TENSILE, "read", "commercial").allowed  # not yet synced
    assert b.sync() == 2
    assert b.decide(BOB, TENSILE, "read", "commercial").allowed
    # acceptances travel the same way
    assert not b.decide(BOB, TENSILE, "read", "benchmarking").allowed
    a.accept(BOB, "tensile-dua")
    b.sync()
    assert b.decide(BOB, TENSILE, "read", "benchmarking").allowed


@pytest.mark.parametrize("first", ["add", "remove"])
def test_an_edit_made_stale_by_the_other_replica_is_refused_and_changes_nothing(
    pg_engine: sa.Engine, clock: Clock, first: str
) -> None:
    a, b = _replica(pg_engine, clock), _replica(pg_engine, clock)
    if first == "remove":
        a.add_lines(STEVE, "nims", [COMMERCIAL])
        b.sync()
        a.remove_lines(STEVE, "nims", [COMMERCIAL])  # b still sees the line
        edit = b.remove_lines
    else:
        a.add_lines(STEVE, "nims", [COMMERCIAL])  # b does not see it yet
        edit = b.add_lines
    version = a.version
    recorded: list[int] = []
    with pytest.raises(PolicyConflict):
        edit(STEVE, "nims", [COMMERCIAL], record=lambda _conn, change: recorded.append(1))
    assert recorded == [] and b.sync() == version  # no version, no record


def test_the_record_hook_runs_in_the_change_transaction(pg_engine: sa.Engine, clock: Clock) -> None:
    a = _replica(pg_engine, clock)
    version = a.version

    def refuse(conn: sa.Connection, change: object) -> None:
        raise RuntimeError("the audit log refuses")

    with pytest.raises(RuntimeError):
        a.add_lines(STEVE, "nims", [COMMERCIAL], record=refuse)
    assert a.version == a.sync() == version
    assert COMMERCIAL not in a.lines(STEVE, "nims")
    change = a.add_lines(STEVE, "nims", [COMMERCIAL], record=lambda conn, ch: None)
    assert change.version == version + 1 and COMMERCIAL in a.lines(STEVE, "nims")
