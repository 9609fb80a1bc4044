"""What a model trained on rows its user may not read may hold: floors, refusals, the exported
copy and the probe guard, on the superalloy table."""

from __future__ import annotations

import numpy as np
import pytest
from training_samples import ni_superalloy_columns

from training.errors import TrainingError
from training.privacy import LEAF_FLOOR, Guard, exportable, restricted_params
from training.runs import run_training


@pytest.mark.parametrize(
    ("estimator", "given", "expected"),
    [
        ("random_forest", None, {"min_samples_leaf": LEAF_FLOOR}),
        ("extra_trees", {"min_samples_leaf": 2}, {"min_samples_leaf": LEAF_FLOOR}),
        ("random_forest", {"min_samples_leaf": 9}, {"min_samples_leaf": 9}),
        ("gradient_boosting", None, {"min_samples_leaf": 20}),
        ("gradient_boosting", {"min_samples_leaf": 1}, {"min_samples_leaf": LEAF_FLOOR}),
        ("ridge", None, {}),
    ],
)
def test_floors(estimator, given, expected):
    assert restricted_params(estimator, given) == expected


def test_gaussian_process_is_refused():
    with pytest.raises(TrainingError, match="training row"):
        restricted_params("gaussian_process")


@pytest.fixture(scope="module")
def frame(ni_frame):
    return ni_frame[ni_frame["yield_strength_mpa"].notna()].head(300).reset_index(drop=True)


@pytest.mark.parametrize("estimator", ["extra_trees", "random_forest", "gradient_boosting"])
def test_exported_trees_split_the_training_rows_as_before(frame, estimator):
    run = run_training(
        frame,
        ni_superalloy_columns(),
        "yield_strength_mpa",
        purpose="ml-training",
        estimator=estimator,
        cv=None,
        params={
            **restricted_params(estimator),
            "n_estimators" if estimator != "gradient_boosting" else "max_iter": 20,
        },
    )
    guard = Guard.of(run.model, frame)
    out = exportable(run.model, guard, seed=1)
    assert out.y_true.size == 0 and out.oof_predictions.size == 0
    assert run.model.y_true.size > 0  # the original is left alone
    before, after = run.model.predict(frame), out.predict(frame)
    noise = 0.05 * float(np.std(run.model.y_true))  # leaf noise of 1 % of the spread, 20 trees
    assert np.abs(before - after).max() <= noise
    estimator_ = out.pipeline.named_steps["model"]
    if estimator == "gradient_boosting":
        nodes = estimator_._predictors[0][0].nodes
        assert (nodes["count"] == 0).all()
    else:
        state = estimator_.estimators_[0].tree_.__getstate__()
        assert (state["nodes"]["n_node_samples"] == 0).all()
        assert (state["nodes"]["impurity"] == 0).all()


def test_guard_refuses_training_rows_and_their_near_copies(frame):
    run = run_training(
        frame,
        ni_superalloy_columns(),
        "yield_strength_mpa",
        purpose="x",
        estimator="ridge",
        cv=None,
    )
    guard = Guard.of(run.model, frame)
    rows = frame[run.model.input_names].head(3).copy()
    assert guard.near(run.model, rows, 0.05).all()
    nudged = rows.copy()
    nudged["test_temperature_c"] = nudged["test_temperature_c"] + 1e-3
    assert guard.near(run.model, nudged, 0.05).all()
    far = rows.copy()
    numeric = far.select_dtypes("number").columns
    far[numeric] = far[numeric] * 1.5 + 3.0
    assert not guard.near(run.model, far, 0.05).any()
    # round trip through the bytes the node keeps
    again = Guard.from_bytes(guard.to_bytes())
    assert (again.near(run.model, rows, 0.05) == guard.near(run.model, rows, 0.05)).all()
