"""Training-test data: the shipped steels and nickel-superalloy tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def ni_frame(data_dir: Path) -> pd.DataFrame:
    """The nickel-superalloy table as a slice would deliver it."""
    return pd.read_csv(data_dir / "ni_superalloys.csv")


@pytest.fixture(scope="session")
def steels_frame(data_dir: Path) -> pd.DataFrame:
    """The steels yield-strength table (formula, target in MPa)."""
    return pd.read_csv(data_dir / "steels_yield.csv")
