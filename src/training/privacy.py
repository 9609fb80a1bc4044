"""What a model trained on rows its user may not read may hold, and what it may be asked.

Three defences, used by compute-to-data on a node (see ``docs/compute-to-data.md``):

- ``restricted_params``: estimators that memorise rows are refused (the Gaussian process keeps
  every training input and target to predict with), tree ensembles are regularised so that a
  leaf averages at least ``LEAF_FLOOR`` rows.
- ``Guard``: the training inputs, as given and as the estimator sees them, kept on the node, so
  that a prediction request for a training row's inputs (or nearly those) can be refused.
- ``exportable``: the copy of a model that may leave (and the one the node predicts with): no
  targets or out-of-fold predictions; tree nodes without sample counts, impurities or the values
  of inner nodes (prediction reads leaves only); each split threshold moved from the midpoint of
  two training values (which gives one away when the other is known) to a random point between
  them, which splits the training rows exactly as before; and a forest's leaf means perturbed by
  ``LEAF_NOISE`` of the target's spread, so that a leaf of a few rows does not state their exact
  mean (nor, with the counts gone, their sum) while 200 trees average the noise away.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.datasets import InputKind, coerce_inputs
from training.errors import TrainingError
from training.models import ForwardModel

__all__ = [
    "LEAF_FLOOR",
    "LEAF_NOISE",
    "MEMORISING",
    "SAME",
    "Guard",
    "exportable",
    "restricted_params",
]

LEAF_FLOOR = 5
LEAF_NOISE = 0.01
SAME = 1e-6  # distances below this are the same point, whatever float rounding says
MEMORISING: Mapping[str, str] = {
    "gaussian_process": "a Gaussian process keeps every training row (inputs and targets) and "
    "predicts by weighing them, so its file and its answers near a training row give rows back",
}
_LEAF_DEFAULTS = {"extra_trees": 1, "random_forest": 1, "gradient_boosting": 20}  # sklearn's
_CHUNK = 4096


def restricted_params(estimator: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters for training on rows the user may not read; refuses memorising estimators."""
    if estimator in MEMORISING:
        raise TrainingError(
            f"{estimator} is not offered on data you may not read: {MEMORISING[estimator]}; "
            "choose ridge, random_forest or gradient_boosting"
        )
    out = dict(params or {})
    if estimator in _LEAF_DEFAULTS:
        given = int(out.get("min_samples_leaf", _LEAF_DEFAULTS[estimator]))
        out["min_samples_leaf"] = max(LEAF_FLOOR, given)
    return out


@dataclass(frozen=True)
class _Space:
    """Distinct points in one space and each coordinate's spread. A missing coordinate (NaN)
    equals a missing one and differs by one spread from any value: what a caller leaves out
    is not thereby said to match."""

    points: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> _Space:
        scale = np.nanstd(values, axis=0) if len(values) else np.ones(values.shape[1])
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        points = np.unique(values, axis=0) if len(values) else values
        return cls(points, scale)

    def nearest(self, values: np.ndarray) -> np.ndarray:
        """Each row's distance to the nearest point: root mean square of the coordinate
        differences in units of each coordinate's spread."""
        nearest = np.full(len(values), np.inf)
        if not len(self.points) or not self.points.shape[1]:
            return nearest
        a, a_known = _split(values / self.scale)
        for start in range(0, len(self.points), _CHUNK):
            b, b_known = _split(self.points[start : start + _CHUNK] / self.scale)
            d2 = (a**2) @ b_known.T + a_known @ (b**2).T - 2.0 * a @ b.T
            d2 += a_known @ (1.0 - b_known).T + (1.0 - a_known) @ b_known.T
            nearest = np.minimum(nearest, d2.min(axis=1))
        return np.asarray(np.sqrt(np.maximum(nearest, 0.0) / self.points.shape[1]), dtype=float)


def _split(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values with NaN as 0, and 1 where a value is known."""
    known = np.isfinite(values)
    return np.where(known, values, 0.0), known.astype(float)


@dataclass(frozen=True)
class Guard:
    """The training inputs as the estimator sees them (``features``, also used to move tree
    thresholds) and as given (the numeric ``inputs``), each deduplicated with its spreads."""

    features: _Space
    inputs: _Space
    target_spread: float = 0.0

    @classmethod
    def of(cls, model: ForwardModel, frame: pd.DataFrame) -> Guard:
        """The guard of ``model`` from the rows it was trained on (or a superset of them)."""
        y = np.asarray(model.y_true, dtype=float)
        spread = float(np.nanstd(y)) if y.size else 0.0
        return cls(
            _Space.of(_estimator_space(model, frame)),
            _Space.of(_numeric_inputs(model, frame)),
            spread if np.isfinite(spread) else 0.0,
        )

    def near(self, model: ForwardModel, frame: pd.DataFrame, radius: float) -> np.ndarray:
        """Which candidates probe a training row: their numeric inputs within ``radius`` of a
        training row's (root mean square of the differences in units of each input's spread;
        missing equals missing only), or their feature vector, as the estimator sees it after
        featurising and imputing, the same as a training row's."""
        given = self.inputs.nearest(_numeric_inputs(model, frame)) <= max(radius, SAME)
        seen = self.features.nearest(_estimator_space(model, frame)) <= SAME
        return np.asarray(given | seen, dtype=bool)

    def to_bytes(self) -> bytes:
        """The guard as an ``.npz`` (plain arrays: no pickle to trust when it is read back)."""
        sink = io.BytesIO()
        arrays = {
            f"{name}_{part}": getattr(getattr(self, name), part)
            for name in ("features", "inputs")
            for part in ("points", "scale")
        }
        np.savez(sink, spread=np.array(self.target_spread), **arrays)
        return sink.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Guard:
        """Inverse of ``to_bytes``."""
        with np.load(io.BytesIO(data), allow_pickle=False) as a:
            spaces = [
                _Space(np.asarray(a[f"{name}_points"]), np.asarray(a[f"{name}_scale"]))
                for name in ("features", "inputs")
            ]
            return cls(spaces[0], spaces[1], float(a["spread"]))


def _numeric_inputs(model: ForwardModel, frame: pd.DataFrame) -> np.ndarray:
    """The numeric and weight-percent inputs of ``frame`` as given (NaN where missing)."""
    X = coerce_inputs(frame, model.inputs)
    names = [
        s.name for s in model.inputs if s.kind in (InputKind.NUMERIC, InputKind.WEIGHT_PERCENT)
    ]
    return np.asarray(X[names].to_numpy(dtype=float), dtype=float).reshape(len(X), len(names))


def _estimator_space(model: ForwardModel, frame: pd.DataFrame) -> np.ndarray:
    """Rows of ``frame`` as the final estimator sees them (featurised, imputed, scaled)."""
    X = coerce_inputs(frame, model.inputs)
    return np.asarray(model.pipeline[:-1].transform(X), dtype=float)


def exportable(model: ForwardModel, guard: Guard, seed: int = 0) -> ForwardModel:
    """A copy of ``model`` that may leave the node (see the module docstring for what changes)."""
    out = copy.deepcopy(model)
    out.y_true = np.zeros(0)
    out.oof_predictions = np.zeros(0)
    estimator = out.pipeline.named_steps["model"]
    rng = np.random.default_rng(seed)
    if hasattr(estimator, "estimators_") and hasattr(estimator.estimators_[0], "tree_"):
        noise = LEAF_NOISE * guard.target_spread
        for tree in estimator.estimators_:
            _retree(tree.tree_, guard.features.points, rng, noise)
    elif hasattr(estimator, "_predictors"):
        for predictors in estimator._predictors:
            for predictor in predictors:
                _repredict(predictor, guard.features.points, rng)
        _unbin(estimator)
    return out


def _between(values: np.ndarray, threshold: float, rng: np.random.Generator) -> float | None:
    """A random point strictly inside the gap of ``values`` that ``threshold`` falls in."""
    left = values[values <= threshold]
    right = values[values > threshold]
    if not left.size or not right.size:
        return None
    low, high = float(left.max()), float(right.min())
    return low + (high - low) * float(rng.uniform(0.1, 0.9))


def _retree(tree: Any, features: np.ndarray, rng: np.random.Generator, noise: float) -> None:
    """Move a scikit-learn tree's thresholds off the midpoints, blank counts, impurities and
    inner values, and perturb the leaf means by ``noise`` (a standard deviation)."""
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    # what the tree compares: inputs cast to float32, then compared in float64
    X = features.astype(np.float32).astype(np.float64)
    stack = [(0, np.arange(len(X)))]
    while stack:
        node, rows = stack.pop()
        left, right = int(nodes["left_child"][node]), int(nodes["right_child"][node])
        if left < 0:
            continue
        values = X[rows, nodes["feature"][node]]
        moved = _between(values, float(nodes["threshold"][node]), rng)
        if moved is not None:
            nodes["threshold"][node] = moved
        goes_left = values <= nodes["threshold"][node]
        stack += [(left, rows[goes_left]), (right, rows[~goes_left])]
    nodes["impurity"] = 0.0
    nodes["n_node_samples"] = 0
    nodes["weighted_n_node_samples"] = 0.0
    values = np.array(state["values"], dtype=float)
    leaf = nodes["left_child"] < 0
    values[~leaf] = 0.0
    if noise > 0:
        values[leaf] += rng.normal(0.0, noise, size=values[leaf].shape)
    tree.__setstate__({**state, "nodes": nodes, "values": values})


def _repredict(predictor: Any, features: np.ndarray, rng: np.random.Generator) -> None:
    """The same for one tree of histogram gradient boosting (numeric splits only)."""
    nodes = predictor.nodes
    stack = [(0, np.arange(len(features)))]
    while stack:
        node, rows = stack.pop()
        if nodes["is_leaf"][node]:
            continue
        values = features[rows, nodes["feature_idx"][node]]
        if not nodes["is_categorical"][node]:
            moved = _between(values, float(nodes["num_threshold"][node]), rng)
            if moved is not None:
                nodes["num_threshold"][node] = moved
        goes_left = values <= nodes["num_threshold"][node]
        stack += [(int(nodes["left"][node]), rows[goes_left])]
        stack += [(int(nodes["right"][node]), rows[~goes_left])]
    nodes["count"] = 0
    nodes["gain"] = 0.0
    nodes["value"][~nodes["is_leaf"].astype(bool)] = 0.0  # inner values: fitting only
    nodes["bin_threshold"] = 0  # bins are used while fitting only


def _unbin(estimator: Any) -> None:
    """Drop the bin edges of numeric features (midpoints of every distinct training value);
    prediction on raw inputs uses the trees' thresholds, not the bins."""
    mapper = estimator._bin_mapper
    categorical = getattr(mapper, "is_categorical_", None)
    mapper.bin_thresholds_ = [
        edges if categorical is not None and categorical[i] else np.zeros(0)
        for i, edges in enumerate(mapper.bin_thresholds_)
    ]
