"""Forward models on real data: K-fold metrics, out-of-fold predictions, uncertainty, bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from training_samples import formula_columns, ni_superalloy_columns

from training.datasets import TrainingSet
from training.errors import TrainingError, TrainingLimitError
from training.models import DUPLICATES, ForwardModel, regression_metrics, train_forward

SMALL_FOREST = {"n_estimators": 40}


@pytest.fixture(scope="module")
def steels_set(steels_frame: pd.DataFrame) -> TrainingSet:
    """Steel composition -> yield strength (MPa)."""
    return TrainingSet.from_frame(steels_frame, formula_columns(), "target")


@pytest.fixture(scope="module")
def ni_small(ni_frame: pd.DataFrame) -> TrainingSet:
    """A 240-row labelled sample of the superalloys (fast enough for every estimator)."""
    labelled = ni_frame.dropna(subset=["yield_strength_mpa"]).sample(240, random_state=3)
    return TrainingSet.from_frame(labelled, ni_superalloy_columns(), "yield_strength_mpa")


@pytest.fixture(scope="module")
def steels_forest(steels_set: TrainingSet) -> ForwardModel:
    """A small forest on the steels, 5-fold."""
    return train_forward(steels_set, "random_forest", cv=5, random_state=7, params=SMALL_FOREST)


def test_metrics_match_out_of_fold_predictions(
    steels_forest: ForwardModel, steels_set: TrainingSet
) -> None:
    """Reported MAE/RMSE/R2 are those of the out-of-fold predictions, one per row."""
    oof = steels_forest.oof_predictions
    assert oof.shape == (len(steels_set.y),)
    assert np.isfinite(oof).all()
    again = regression_metrics(steels_set.y.to_numpy(), oof)
    for key in ("mae", "rmse", "r2"):
        assert steels_forest.metrics[key] == pytest.approx(again[key])
    assert len(steels_forest.fold_metrics) == 5
    assert steels_forest.metrics["rmse"] >= steels_forest.metrics["mae"]


def test_forest_learns_steel_yield_strength(
    steels_forest: ForwardModel, steels_set: TrainingSet
) -> None:
    """Sane skill: far better than predicting the mean (MAE ~ 230 MPa), R2 clearly positive."""
    baseline = float(np.abs(steels_set.y - steels_set.y.mean()).mean())
    assert steels_forest.metrics["mae"] < 0.6 * baseline
    assert steels_forest.metrics["mae"] < 140.0
    assert steels_forest.metrics["r2"] > 0.5


def test_cross_validation_is_reproducible(steels_set: TrainingSet) -> None:
    """Same random_state, same folds and metrics; another seed, other folds."""
    first = train_forward(steels_set, "ridge", cv=4, random_state=1)
    second = train_forward(steels_set, "ridge", cv=4, random_state=1)
    third = train_forward(steels_set, "ridge", cv=4, random_state=2)
    assert first.metrics == second.metrics
    assert first.metrics["mae"] != third.metrics["mae"]


@pytest.mark.parametrize(
    ("estimator", "has_std"),
    [
        ("random_forest", True),
        ("gradient_boosting", False),
        ("ridge", False),
        ("gaussian_process", True),
    ],
)
def test_each_estimator_on_superalloys(
    ni_small: TrainingSet, estimator: str, has_std: bool
) -> None:
    """Every estimator trains on mixed inputs (wt %, heat treatment, categories) with skill."""
    params = {"random_forest": SMALL_FOREST, "gradient_boosting": {"max_iter": 60}}.get(estimator)
    model = train_forward(ni_small, estimator, cv=3, random_state=0, params=params)
    # medians: a linear model extrapolates wildly on the few rows with rare treatments
    typical_error = float(np.median(np.abs(model.oof_predictions - model.y_true)))
    assert typical_error < 0.8 * float(np.median(np.abs(ni_small.y - ni_small.y.mean())))
    if estimator != "ridge":
        assert model.metrics["r2"] > 0.3
    mean, std = model.predict(ni_small.X.head(5), return_std=True)
    assert mean.shape == std.shape == (5,)
    assert np.allclose(mean, model.predict(ni_small.X.head(5)))
    assert model.has_uncertainty  # calibrated intervals for every estimator
    if has_std:
        assert (std > 0).all() and np.isfinite(std).all()
    else:
        assert np.isnan(std).all()


def test_forest_std_is_spread_of_trees(
    steels_forest: ForwardModel, steels_set: TrainingSet
) -> None:
    """The forest's uncertainty is the standard deviation over its trees."""
    rows = steels_set.X.head(3)
    _, std = steels_forest.predict(rows, return_std=True)
    pipe = steels_forest.pipeline
    per_tree = np.stack([t.predict(pipe[:-1].transform(rows)) for t in pipe[-1].estimators_])
    assert std == pytest.approx(per_tree.std(axis=0))


def test_predict_needs_the_inputs(steels_forest: ForwardModel) -> None:
    """A frame without the model's inputs is refused by name."""
    with pytest.raises(TrainingError, match="missing input columns: \\['formula'\\]"):
        steels_forest.predict(pd.DataFrame({"composition": ["Fe"]}))


def test_no_cross_validation(steels_set: TrainingSet) -> None:
    """cv=None fits once: no metrics, no out-of-fold predictions."""
    model = train_forward(steels_set, "ridge", cv=None)
    assert model.metrics == {}
    assert np.isnan(model.oof_predictions).all()
    assert np.isfinite(model.predict(steels_set.X.head(2))).all()


def test_progress_reported(steels_set: TrainingSet) -> None:
    """Progress goes from 0 to 1 through every fold and the final fit."""
    seen: list[tuple[str, float]] = []
    train_forward(
        steels_set, "ridge", cv=3, progress=lambda stage, done: seen.append((stage, done))
    )
    assert [s for s, _ in seen] == ["fold 1/3", "fold 2/3", "fold 3/3", "final fit", "done"]
    fractions = [d for _, d in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0


def test_row_limit(steels_set: TrainingSet) -> None:
    """More rows than the job may train on is refused before any work."""
    with pytest.raises(TrainingLimitError, match="exceed the training limit of 100 rows") as info:
        train_forward(steels_set, "ridge", max_rows=100)
    assert info.value.status == 413


def test_time_limit(steels_set: TrainingSet) -> None:
    """A job over its time budget stops after the unit of work in progress."""
    with pytest.raises(TrainingLimitError, match="exceeds the limit") as info:
        train_forward(steels_set, "ridge", cv=3, max_seconds=0.0)
    assert info.value.status == 408


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"estimator": "svm"}, "unknown estimator"),
        ({"cv": 1}, "cv >= 2"),
        ({"cv": 200}, "cv >= 2 and >= 400 rows"),
    ],
)
def test_bad_settings(steels_set: TrainingSet, kwargs: dict[str, object], message: str) -> None:
    """Unknown estimators and impossible folds are refused clearly."""
    with pytest.raises(TrainingError, match=message):
        train_forward(steels_set, **kwargs)  # type: ignore[arg-type]


def test_summary_is_json_ready(steels_forest: ForwardModel) -> None:
    """The summary names inputs with roles and units, target, CV settings."""
    import json

    summary = json.loads(json.dumps(steels_forest.summary()))
    assert summary["inputs"][0] == {
        "name": "formula",
        "role": "structure",
        "kind": "formula",
        "unit": None,
        "description": "",
    }
    assert summary["target"]["unit"] == "MPa"
    assert summary["cv"] == {
        "folds": 5,
        "shuffle": True,
        "random_state": 7,
        "protocol": DUPLICATES["aggregate"],
    }
    assert summary["features"] == len(steels_forest.feature_names) > 100


@pytest.fixture(scope="module")
def gaps_set(data_dir: Path) -> TrainingSet:
    """800 rows of the experimental band gaps: half of them metals with a gap of exactly 0 eV."""
    frame = pd.read_csv(data_dir / "expt_gap.csv").sample(800, random_state=5)
    return TrainingSet.from_frame(frame, formula_columns("eV"), "target")


def test_extra_trees_predict_a_trimmed_mean_of_their_trees(gaps_set: TrainingSet) -> None:
    """By default the 20 % highest and 20 % lowest tree predictions are dropped, then averaged;
    trim=0 is the plain mean and 0.5 the median. The summary says which."""
    model = train_forward(gaps_set, cv=None, params={"n_estimators": 30})
    assert model.summary()["prediction"] == (
        "mean of 30 trees, 20% of their predictions trimmed at each end"
    )
    estimator = model.pipeline.named_steps["model"]
    X = model.pipeline[:-1].transform(gaps_set.X.head(60))
    per_tree = np.sort(np.stack([t.predict(X) for t in estimator.estimators_]), axis=0)
    assert estimator.predict(X) == pytest.approx(per_tree[6:24].mean(axis=0))
    estimator.set_params(trim=0.0)
    assert estimator.predict(X) == pytest.approx(per_tree.mean(axis=0))
    estimator.set_params(trim=0.5)
    assert estimator.predict(X) == pytest.approx(np.median(per_tree, axis=0))
    assert model.prediction == "median of 30 trees"


def test_trimmed_mean_of_trees_has_the_smaller_absolute_error_on_band_gaps(
    gaps_set: TrainingSet,
) -> None:
    """Where half the targets are 0 eV the trees near a metal/insulator boundary disagree in two
    camps; their trimmed mean lands on the likelier side and beats their mean in CV MAE."""
    common = {"cv": 5, "random_state": 1}
    trimmed = train_forward(gaps_set, params={"n_estimators": 40}, **common)
    mean = train_forward(gaps_set, params={"n_estimators": 40, "trim": 0.0}, **common)
    assert trimmed.metrics["mae"] < 0.97 * mean.metrics["mae"]
    assert trimmed.metrics["skill"] > 0.5


@pytest.mark.parametrize("trim", [-0.1, 0.6])
def test_trim_out_of_range_is_refused(steels_set: TrainingSet, trim: float) -> None:
    """A trim outside [0, 0.5] is a clear error, not a silent mean."""
    with pytest.raises(TrainingError, match="trim"):
        train_forward(steels_set, cv=None, params={"n_estimators": 5, "trim": trim})
