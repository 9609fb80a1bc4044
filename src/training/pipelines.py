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

__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "SPREAD_ESTIMATORS",
    "TRIM",
    "ExtraTrees",
    "build_pipeline",
    "preprocessor",
]

ESTIMATORS = ("extra_trees", "random_forest", "gradient_boosting", "ridge", "gaussian_process")
DEFAULT_ESTIMATOR = "extra_trees"
SPREAD_ESTIMATORS = frozenset({"extra_trees", "random_forest"})  # spread over their trees
_SCALED = frozenset({"ridge", "gaussian_process"})  # tree models do not need scaling
TRIM = 0.2  # share of the trees dropped at each end before the extra trees' average
_ROWS = 4096  # rows per block when every tree's prediction is kept


class ExtraTrees(ExtraTreesRegressor):
    """Extremely randomised trees whose prediction is a trimmed mean over the trees.

    ``trim`` of the trees' predictions are dropped at each end before averaging: 0 is the plain
    mean, 0.5 the median (with fully grown trees, the conditional median of a quantile regression
    forest, Meinshausen 2006). Where the rows around a point mix unlike targets (a band gap of
    0 eV for every metal beside the gaps of insulators) the trees disagree in two camps, and
    their mean lands between the camps, where no target lies; a trimmed mean drops the stray
    camp's extremes and lands on the likelier side, while near-symmetric disagreement is
    averaged as before. The default, 20 % at each end, is the textbook trimmed mean (Wilcox,
    *Introduction to Robust Estimation*), not a value fitted to any one table: on the
    composition tasks of ``bench/ml.py`` it gives a smaller MAE than the mean on every one.
    """

    def __init__(
        self,
        n_estimators: int = 500,
        *,
        trim: float = TRIM,
        criterion: str = "squared_error",
        max_depth: int | None = None,
        min_samples_split: int | float = 2,
        min_samples_leaf: int | float = 1,
        min_weight_fraction_leaf: float = 0.0,
        max_features: Any = 1.0,
        max_leaf_nodes: int | None = None,
        min_impurity_decrease: float = 0.0,
        bootstrap: bool = False,
        oob_score: bool = False,
        n_jobs: int | None = None,
        random_state: int | None = None,
        verbose: int = 0,
        warm_start: bool = False,
        ccp_alpha: float = 0.0,
        max_samples: int | float | None = None,
        monotonic_cst: Any = None,
    ) -> None:
        super().__init__(
            n_estimators,
            criterion=criterion,
            max_depth=max_depth,
            min_samples_split=min_samples_split,
            min_samples_leaf=min_samples_leaf,
            min_weight_fraction_leaf=min_weight_fraction_leaf,
            max_features=max_features,
            max_leaf_nodes=max_leaf_nodes,
            min_impurity_decrease=min_impurity_decrease,
            bootstrap=bootstrap,
            oob_score=oob_score,
            n_jobs=n_jobs,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
            ccp_alpha=ccp_alpha,
            max_samples=max_samples,
            monotonic_cst=monotonic_cst,
        )
        self.trim = trim

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ExtraTrees:
        """Grow the trees (``trim`` is checked here; it only matters to ``predict``)."""
        if not 0.0 <= self.trim <= 0.5:
            raise TrainingError(f"trim must be between 0 (mean) and 0.5 (median), not {self.trim}")
        super().fit(X, y, sample_weight)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The trimmed mean of the trees' predictions."""
        if self.trim == 0.0:
            return np.asarray(super().predict(X), dtype=float)
        X = self._validate_X_predict(X)
        out = np.empty(X.shape[0])
        for start in range(0, X.shape[0], _ROWS):
            block = X[start : start + _ROWS]
            per_tree = np.stack(
                [tree.predict(block, check_input=False) for tree in self.estimators_]
            )
            if self.trim == 0.5:
                out[start : start + _ROWS] = np.median(per_tree, axis=0)
            else:  # as scipy.stats.trim_mean: int(trim * n) trees dropped at each end
                cut = int(self.trim * len(per_tree))
                kept = np.sort(per_tree, axis=0)[cut : len(per_tree) - cut]
                out[start : start + _ROWS] = kept.mean(axis=0)
        return out


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
        # 10-15 % on the public composition tasks (bench/ml.py) at a similar cost; their
        # trimmed mean does better still (ExtraTrees)
        return ExtraTrees(**params, random_state=random_state, n_jobs=n_jobs)
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
