"""Duplicate inputs, calibrated intervals and the applicability domain, on real and known data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from training_samples import formula_columns

from connectors.datasets import Column, ColumnType, PSPPRole
from training.conformal import calibrate
from training.datasets import TrainingSet
from training.domain import fit_domain
from training.errors import TrainingError
from training.models import train_forward
from training.screening import DOMAIN, IN_DOMAIN, screen

FAST = {"n_estimators": 60}


def _noisy(rows: int, seed: int) -> tuple[pd.DataFrame, tuple[Column, ...]]:
    """y = a smooth function of two inputs plus heteroscedastic noise of known size."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(0, 10, rows), rng.uniform(0, 10, rows)
    noise = rng.normal(0, 0.2 + 0.1 * x1, rows)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "y": np.sin(x1) * 3 + x2 + noise})
    columns = (
        Column(name="x1", type=ColumnType.FLOAT, pspp=PSPPRole.PROCESSING),
        Column(name="x2", type=ColumnType.FLOAT, pspp=PSPPRole.CONDITION),
        Column(name="y", type=ColumnType.FLOAT, pspp=PSPPRole.PROPERTY),
    )
    return frame, columns


@pytest.mark.parametrize("estimator", ["extra_trees", "gradient_boosting", "ridge"])
def test_intervals_cover_their_level_on_fresh_data(estimator: str) -> None:
    """Intervals calibrated on out-of-fold residuals cover about their level on unseen rows."""
    frame, columns = _noisy(1200, seed=1)
    fresh, _ = _noisy(3000, seed=2)
    ts = TrainingSet.from_frame(frame, columns, "y")
    params = {"extra_trees": FAST, "gradient_boosting": {"max_iter": 60}}.get(estimator)
    model = train_forward(ts, estimator, cv=5, params=params, n_jobs=2)
    assert model.conformal is not None
    for level in (0.68, 0.95):
        _, low, high = model.predict_interval(fresh[["x1", "x2"]], level)
        inside = float(((fresh["y"] >= low) & (fresh["y"] <= high)).mean())
        assert abs(inside - level) <= 0.04, (estimator, level, inside)
        reported = model.conformal.coverage[f"{level:.2f}"]
        assert abs(reported - level) <= 0.03, (estimator, level, reported)


def test_steel_intervals_reported_within_three_points(steels_frame: pd.DataFrame) -> None:
    """On the steels the card's out-of-fold coverage is within 3 points of 68 % and 95 %."""
    ts = TrainingSet.from_frame(steels_frame, formula_columns(), "target")
    model = train_forward(ts, cv=5, params=FAST, n_jobs=2)
    card = model.summary()["intervals"]
    for level in ("0.68", "0.95"):
        assert abs(card["coverage"][level] - float(level)) <= 0.03
    wide = model.predict_interval(ts.X.head(5), 0.95)
    narrow = model.predict_interval(ts.X.head(5), 0.68)
    assert ((wide[2] - wide[1]) > (narrow[2] - narrow[1])).all()


def test_calibration_refuses_unknown_level() -> None:
    """Asking for an interval at a level that was not calibrated is an error, not a guess."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    cal = calibrate(y, y + rng.normal(size=200), None, np.arange(200) % 5)
    with pytest.raises(ValueError, match=r"no calibration at level 0\.5"):
        cal.half_width(None, 0.5)


def test_twins_are_merged_by_default_and_reported() -> None:
    """Rows with one composition are merged (mean target); the protocol is on the model."""
    frame = pd.DataFrame(
        {
            "formula": ["Fe2O3", "Fe2 O3", "NiO", "CuO", "ZnO", "MgO"] * 4,
            "target": np.arange(24, dtype=float),
        }
    )
    ts = TrainingSet.from_frame(frame, formula_columns(), "target")
    twins = ts.duplicates()
    assert twins == {
        "rows": 24,
        "distinct_inputs": 5,
        "rows_with_twins": 24,
        "groups_with_twins": 5,
    }
    merged = ts.aggregated()
    assert len(merged.y) == 5
    fe = frame[frame["formula"].str.replace(" ", "") == "Fe2O3"]["target"].mean()
    assert merged.y.iloc[0] == pytest.approx(fe)
    model = train_forward(ts, cv=None, params=FAST)
    assert model.duplicates["policy"] == "aggregate" and model.n_rows == 24
    with pytest.raises(TrainingError, match="duplicates must be one of"):
        train_forward(ts, duplicates="drop")


def test_grouped_folds_keep_twins_together(steels_frame: pd.DataFrame) -> None:
    """With duplicates="group" no composition is in a training and a test fold at once."""
    twice = pd.concat([steels_frame, steels_frame], ignore_index=True)
    ts = TrainingSet.from_frame(twice, formula_columns(), "target")
    grouped = train_forward(ts, "ridge", cv=5, duplicates="group")
    leaky = train_forward(ts, "extra_trees", cv=5, duplicates="keep", params=FAST)
    honest = train_forward(ts, "extra_trees", cv=5, duplicates="group", params=FAST)
    assert grouped.summary()["cv"]["protocol"].startswith("shuffled GroupKFold")
    # a twin in the training fold lets the trees copy the answer: a far too rosy score
    assert leaky.metrics["mae"] < 0.5 * honest.metrics["mae"]


def test_default_is_never_worse_than_the_mean(steels_frame: pd.DataFrame) -> None:
    """The model records its skill against the mean predictor on the same folds."""
    ts = TrainingSet.from_frame(steels_frame, formula_columns(), "target")
    model = train_forward(ts, cv=5, params=FAST, n_jobs=2)
    assert model.metrics["mae"] < model.metrics["mae_mean_predictor"]
    assert 0 < model.metrics["skill"] < 1


def test_domain_flags_extrapolation() -> None:
    """Training rows lie inside the domain; points far outside every input range do not."""
    frame, columns = _noisy(400, seed=3)
    ts = TrainingSet.from_frame(frame, columns, "y")
    model = train_forward(ts, cv=3, params=FAST, n_jobs=2)
    inside = model.domain_score(frame[["x1", "x2"]])
    assert (inside <= 1.0).mean() >= 0.97
    far = pd.DataFrame({"x1": [50.0, -40.0, 5.0], "x2": [5.0, 5.0, 90.0]})
    assert (model.domain_score(far) > 1.0).all()
    result = screen(model, grid={"x1": [1.0, 5.0, 60.0]}, fixed={"x2": 5.0}, domain="flag")
    assert result.attrs["outside_domain"] == 1
    assert not result.set_index("x1").loc[60.0, IN_DOMAIN]
    kept = screen(model, grid={"x1": [1.0, 5.0, 60.0]}, fixed={"x2": 5.0}, domain="exclude")
    assert 60.0 not in set(kept["x1"]) and (kept[DOMAIN] <= 1).all()


def test_domain_keeps_no_rows() -> None:
    """The domain holds summaries only: no training row is among its arrays."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 6))
    domain = fit_domain(X)
    assert domain is not None
    stored = np.concatenate(
        [domain.mean, domain.scale, domain.components.ravel(), domain.variances]
    )
    assert not np.isin(np.round(X, 6), np.round(stored, 6)).any()


def test_incumbent_is_taken_at_the_fixed_conditions() -> None:
    """Expected improvement measures against the best row measured at the screen's conditions."""
    frame, columns = _noisy(600, seed=4)
    frame["x2"] = np.round(frame["x2"])
    ts = TrainingSet.from_frame(frame, columns, "y")
    model = train_forward(ts, cv=3, params=FAST, n_jobs=2)
    result = screen(
        model, grid={"x1": [1.0, 2.0, 3.0]}, fixed={"x2": 2.0}, acquisition="ei", reference=frame
    )
    expected = frame.loc[frame["x2"] == 2.0, "y"].max()
    assert result.attrs["best_so_far"] == pytest.approx(expected)
    assert expected < frame["y"].max()  # the overall best would have been the wrong yardstick
    assert "reference rows at x2=2.0" in result.attrs["incumbent"]
