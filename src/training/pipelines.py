"""The scikit-learn pipelines of the forward models: featurise, impute, scale, estimate.

One place builds them, so that every model is made of the same few, allow-listed types (which is
what lets ``store.load_model`` refuse anything else).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from training.datasets import InputKind, InputSpec
from training.errors import TrainingError
from training.featurizers import CompositionFeaturizer, WeightPercentFeaturizer

__all__ = ["DEFAULT_ESTIMATOR", "ESTIMATORS", "SPREAD_ESTIMATORS", "build_pipeline", "preprocessor"]

ESTIMATORS = ("extra_trees", "random_forest", "gradient_boosting", "ridge", "gaussian_process")
DEFAULT_ESTIMATOR = "extra_trees"
SPREAD_ESTIMATORS = frozenset({"extra_trees", "random_forest"})  # spread over their trees
_SCALED = frozenset({"ridge", "gaussian_process"})  # tree models do not need scaling


def preprocessor(inputs: Sequence[InputSpec]) -> ColumnTransformer:
    """Featurise formula and weight-percent inputs, one-hot encode strings, pass numbers."""
    parts: list[tuple[str, Any, list[str]]] = []
    for spec in inputs:
        if spec.kind == InputKind.FORMULA:
            featurizer = CompositionFeaturizer(column=spec.name)
            parts.append((f"composition_{spec.name}", featurizer, [spec.name]))
    wt = [s.name for s in inputs if s.kind == InputKind.WEIGHT_PERCENT]
    if wt:
        parts.append(("composition_wt", WeightPercentFeaturizer(columns=wt), wt))
    categorical = [s.name for s in inputs if s.kind == InputKind.CATEGORICAL]
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        parts.append(("categorical", encoder, categorical))
    numeric = [s.name for s in inputs if s.kind == InputKind.NUMERIC]
    if numeric:
        parts.append(("numeric", "passthrough", numeric))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def _estimator(name: str, params: Mapping[str, Any], random_state: int | None, n_jobs: int) -> Any:
    if name == "extra_trees":
        # extremely randomised trees on every feature: 500 of them beat the random forest by
        # 10-15 % on the public composition tasks (bench/ml.py) at a similar cost
        defaults_et: dict[str, Any] = {"n_estimators": 500, "max_features": 1.0}
        return ExtraTreesRegressor(
            **{**defaults_et, **params}, random_state=random_state, n_jobs=n_jobs
        )
    if name == "random_forest":
        # a third of the features per split: as accurate as all of them here, three times faster
        defaults: dict[str, Any] = {"n_estimators": 200, "max_features": 1 / 3}
        return RandomForestRegressor(
            **{**defaults, **params}, random_state=random_state, n_jobs=n_jobs
        )
    if name == "gradient_boosting":
        defaults = {"max_iter": 200, "learning_rate": 0.1}
        return HistGradientBoostingRegressor(**{**defaults, **params}, random_state=random_state)
    if name == "ridge":
        # the penalty chosen by efficient leave-one-out: with ~200 Magpie features and a few
        # hundred rows a fixed alpha either overfits or underfits
        return RidgeCV(**{"alphas": tuple(np.logspace(-3, 4, 15)), **params})
    if name == "gaussian_process":
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(1.0, (1e-2, 1e3)) + WhiteKernel(
            0.1, (1e-6, 1e1)
        )
        defaults = {"kernel": kernel, "normalize_y": True, "n_restarts_optimizer": 0}
        return GaussianProcessRegressor(**{**defaults, **params}, random_state=random_state)
    raise TrainingError(f"unknown estimator {name!r}; choose from {list(ESTIMATORS)}")


def build_pipeline(
    inputs: Sequence[InputSpec],
    estimator: str = "random_forest",
    params: Mapping[str, Any] | None = None,
    random_state: int | None = 0,
    n_jobs: int = 1,
) -> Pipeline:
    """An unfitted pipeline: features -> median imputation -> [scaling] -> estimator."""
    steps: list[tuple[str, Any]] = [
        ("features", preprocessor(inputs)),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
    ]
    if estimator in _SCALED:
        steps.append(("scale", StandardScaler()))
    steps.append(("model", _estimator(estimator, params or {}, random_state, n_jobs)))
    return Pipeline(steps)
