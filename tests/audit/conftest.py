"""Audit fixtures: a node key, a stepping clock and a log on a real SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from audit_samples import SteppingClock, decision

from audit.keys import Signer
from audit.log import AuditLog
from audit.store import create_tables


@pytest.fixture
def signer() -> Signer:
    return Signer.generate("node-a-key-1")


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    # a file, not :memory:, so every thread's connection sees the same database
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    create_tables(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def log(engine: sa.Engine, signer: Signer, clock: SteppingClock) -> AuditLog:
    return AuditLog(engine, signer, node="node-a", clock=clock)


@pytest.fixture
def filled(log: AuditLog) -> Callable[[int], AuditLog]:
    def fill(count: int) -> AuditLog:
        log.append_many([decision(i, allow=i % 4 != 0) for i in range(count)])
        return log

    return fill
