"""Fixtures for governance tests: a hand-moved clock, the test config, a seeded Governance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from policy_world import CONFIG, DATASETS, MASK_KEY, Clock

from policies import Governance, PolicyConfig


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock at T0."""
    return Clock()


@pytest.fixture
def config() -> PolicyConfig:
    """The test node's policy config."""
    return PolicyConfig.model_validate(CONFIG)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh SQLite node database."""
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'node.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def gov(engine: sa.Engine, config: PolicyConfig, clock: Clock) -> Governance:
    """Governance seeded with the test config and datasets."""
    g = Governance(engine, config, clock=clock, mask_key=MASK_KEY, mask_key_id="node:test")
    g.seed(DATASETS.values())
    return g
