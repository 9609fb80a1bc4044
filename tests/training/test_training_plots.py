"""Plots: a parity plot of cross-validated predictions and a screening plot, written as PNG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from training_samples import formula_columns

from training.datasets import TrainingSet
from training.errors import TrainingError
from training.models import ForwardModel, train_forward
from training.plots import parity_plot, screening_plot
from training.screening import screen

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model(steels_frame: pd.DataFrame) -> ForwardModel:
    """A small forest on the steels."""
    ts = TrainingSet.from_frame(steels_frame, formula_columns(), "target")
    return train_forward(ts, cv=3, params={"n_estimators": 10})


def test_parity_plot(tmp_path: Path, model: ForwardModel) -> None:
    """A real PNG is written where asked."""
    out = parity_plot(model, tmp_path / "parity.png")
    assert out == tmp_path / "parity.png"
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000


def test_parity_plot_needs_cross_validation(tmp_path: Path, steels_frame: pd.DataFrame) -> None:
    """Without out-of-fold predictions there is nothing honest to plot."""
    ts = TrainingSet.from_frame(steels_frame, formula_columns(), "target")
    with pytest.raises(TrainingError, match="cv=None"):
        parity_plot(train_forward(ts, "ridge", cv=None), tmp_path / "p.png")


def test_screening_plot(tmp_path: Path, model: ForwardModel) -> None:
    """The ranked candidates become a PNG; a non-result is refused."""
    table = pd.DataFrame({"formula": [f"Fe{1 - x:.2f}Ni{x:.2f}" for x in (0.05, 0.1, 0.2, 0.3)]})
    result = screen(model, table, acquisition="ei")
    data = screening_plot(result, tmp_path / "screen.png").read_bytes()
    assert data.startswith(PNG)
    with pytest.raises(TrainingError, match="not a screening result"):
        screening_plot(pd.DataFrame({"a": [1]}), tmp_path / "x.png")


def test_imports_stay_light(tmp_path: Path) -> None:
    """``import training`` loads no scikit-learn, pandas or matplotlib; plots never use pyplot."""
    script = f"""
import sys
import training
heavy = [m for m in ("sklearn", "pandas", "matplotlib", "skops") if m in sys.modules]
assert not heavy, heavy
import pandas as pd
model = training.train_forward(
    training.TrainingSet.from_frame(
        pd.DataFrame({{"formula": ["Fe", "Ni", "FeNi", "Fe3Ni", "FeNi3", "Co"] * 2,
                      "target": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] * 2}}),
        __import__("training_samples").formula_columns(), "target"),
    "ridge", cv=2)
training.parity_plot(model, {str(tmp_path / "p.png")!r})
assert "matplotlib.pyplot" not in sys.modules
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
