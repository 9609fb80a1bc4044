"""Forward models: a PSPP training set -> a fitted pipeline with K-fold cross-validation metrics.

``train_forward`` runs the folds one after another so that a time bound can be checked between
them, keeps the out-of-fold predictions for parity plots and for calibrating prediction intervals
(cross-conformal, ``training.conformal``), then fits the final pipeline on all rows and records
its applicability domain (``training.domain``). Convergence warnings of the estimators are
recorded on the model instead of being raised: a gateway job must finish with a report, not die
on a warning filter.

Rows with identical inputs (one composition measured twice, polymorphs of one formula) are
handled on purpose (``duplicates``): by default they are merged into one row whose target is the
mean of theirs, so that a test fold never holds a twin of a training row and a fully grown tree
cannot copy one twin's value for the other; ``"group"`` keeps every row but keeps twins in one
fold (GroupKFold), ``"keep"`` is plain shuffled KFold (the Matbench protocol).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from training.conformal import Conformal, calibrate
from training.datasets import InputSpec, TrainingSet, coerce_inputs
from training.domain import Domain, fit_domain
from training.errors import TrainingError, TrainingLimitError
from training.pipelines import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    SPREAD_ESTIMATORS,
    build_pipeline,
)

__all__ = [
    "DEFAULT_ESTIMATOR",
    "DUPLICATES",
    "ForwardModel",
    "Progress",
    "regression_metrics",
    "train_forward",
]

DUPLICATES = {
    "aggregate": "rows with identical inputs merged (mean target), then shuffled KFold",
    "group": "shuffled GroupKFold: rows with identical inputs kept in one fold",
    "keep": "shuffled KFold over all rows (twins may fall in train and test folds)",
}

Progress = Callable[[str, float], None]
"""Called with a stage name and the fraction done (0..1) as training advances."""

GP_MAX_ROWS = 2000  # the Gaussian process is cubic in rows; beyond this it is a stuck job


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R2 of predictions."""
    err = np.asarray(y_pred, float) - np.asarray(y_true, float)
    ss_tot = float(((y_true - np.mean(y_true)) ** 2).sum())
    r2 = 1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "r2": r2,
    }


@dataclass
class ForwardModel:
    """A fitted forward model with its inputs (roles, units), target and cross-validation."""

    pipeline: Pipeline
    estimator: str
    inputs: tuple[InputSpec, ...]
    target: InputSpec
    metrics: dict[str, float]
    fold_metrics: list[dict[str, float]]
    oof_predictions: np.ndarray
    y_true: np.ndarray
    cv: int | None
    random_state: int | None
    params: dict[str, Any] = field(default_factory=dict)
    n_rows: int = 0
    fit_seconds: float = 0.0
    manifests: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    excluded: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, Any] = field(default_factory=dict)
    conformal: Conformal | None = None
    domain: Domain | None = None

    @property
    def input_names(self) -> list[str]:
        """Raw input columns a frame must have for ``predict``."""
        return [s.name for s in self.inputs]

    @property
    def feature_names(self) -> list[str]:
        """Names of the features the estimator sees."""
        return [str(n) for n in self.pipeline.named_steps["features"].get_feature_names_out()]

    @property
    def has_uncertainty(self) -> bool:
        """Whether the model gives an uncertainty: calibrated intervals or its own spread."""
        return self.conformal is not None or self.estimator in SPREAD_ESTIMATORS

    def predict_interval(
        self, df: pd.DataFrame, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and the lower and upper bounds of the calibrated interval at ``level``."""
        if self.conformal is None:
            raise TrainingError("the model has no calibrated intervals (trained with cv=None)")
        mean, std = self.predict(df, return_std=True)
        spread = std if self.estimator in SPREAD_ESTIMATORS else None
        half = self.conformal.half_width(spread, level)
        return mean, mean - half, mean + half

    def calibrated_std(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mean and a calibrated standard uncertainty (the 68 % interval's half-width)."""
        if self.conformal is None:
            mean, std = self.predict(df, return_std=True)
            return mean, std
        mean, low, high = self.predict_interval(df, 0.68)
        return mean, (high - low) / 2.0

    def domain_score(self, df: pd.DataFrame) -> np.ndarray:
        """Distance of each row to the training data (<= 1: inside the applicability domain)."""
        if self.domain is None:
            return np.zeros(len(df))
        features = self.pipeline[:-1].transform(coerce_inputs(df, self.inputs))
        return self.domain.score(np.asarray(features, float))

    def predict(
        self, df: pd.DataFrame, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted target for the rows of ``df``; with ``return_std`` also its spread.

        The spread is the standard deviation over the forest's trees or the Gaussian process's
        posterior standard deviation; other estimators give NaN (no uncertainty).
        """
        X = coerce_inputs(df, self.inputs)
        if not return_std:
            return np.asarray(self.pipeline.predict(X), dtype=float)
        model = self.pipeline.named_steps["model"]
        if self.estimator == "gaussian_process":
            Xt = self.pipeline[:-1].transform(X)
            mean, std = model.predict(Xt, return_std=True)
            return np.asarray(mean, float), np.asarray(std, float)
        mean = np.asarray(self.pipeline.predict(X), dtype=float)
        if self.estimator in SPREAD_ESTIMATORS:
            return mean, _tree_spread(self.pipeline, X)
        return mean, np.full(len(mean), np.nan)

    @property
    def prediction(self) -> str:
        """How a tree ensemble turns its trees into one prediction ("" for other estimators)."""
        model = self.pipeline.named_steps["model"]
        trees = len(getattr(model, "estimators_", ()))
        trim = float(getattr(model, "trim", 0.0))
        if not trees or isinstance(model, HistGradientBoostingRegressor):
            return ""
        if trim == 0.0:
            return f"mean of {trees} trees"
        if trim == 0.5:
            return f"median of {trees} trees"
        return f"mean of {trees} trees, {trim:.0%} of their predictions trimmed at each end"

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: estimator, inputs, target, metrics, rows."""
        return {
            "estimator": self.estimator,
            "prediction": self.prediction,
            "params": _jsonable(self.params),
            "inputs": [s.to_dict() for s in self.inputs],
            "target": self.target.to_dict(),
            "metrics": dict(self.metrics),
            "fold_metrics": [dict(m) for m in self.fold_metrics],
            "cv": {
                "folds": self.cv,
                "shuffle": True,
                "random_state": self.random_state,
                "protocol": DUPLICATES.get(str(self.duplicates.get("policy")), "KFold"),
            },
            "duplicates": dict(self.duplicates),
            "intervals": self.conformal.to_dict() if self.conformal else None,
            "domain": self.domain.to_dict() if self.domain else None,
            "rows": self.n_rows,
            "features": len(self.feature_names),
            "fit_seconds": round(self.fit_seconds, 3),
            "warnings": list(self.warnings),
            "excluded": dict(self.excluded),
        }


def _tree_spread(pipeline: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """Standard deviation of the ensemble's trees' predictions (the forest's own spread)."""
    Xt = pipeline[:-1].transform(X)
    per_tree = np.stack([tree.predict(Xt) for tree in pipeline.named_steps["model"].estimators_])
    return np.asarray(per_tree.std(axis=0), float)


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    simple = (str, int, float, bool, type(None))
    return {k: v if isinstance(v, simple) else repr(v) for k, v in params.items()}


class _Clock:
    """Elapsed time against an optional budget, checked between the units of work."""

    def __init__(self, max_seconds: float | None) -> None:
        self.start = time.perf_counter()
        self.max_seconds = max_seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def check(self, stage: str) -> None:
        if self.max_seconds is not None and self.elapsed() > self.max_seconds:
            raise TrainingLimitError(
                f"training stopped after {stage}: {self.elapsed():.1f} s exceeds the limit of "
                f"{self.max_seconds:g} s",
                status=408,
            )


def _fit(
    pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray, caught: list[str], n_jobs: int
) -> Pipeline:
    # OpenMP and BLAS pools default to every core; on a shared node that oversubscription is
    # several times slower than the job's own share, so the pools get the job's n_jobs.
    with threadpool_limits(limits=max(1, n_jobs)), warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always", ConvergenceWarning)
        pipeline.fit(X, y)
    for record in records:
        if issubclass(record.category, ConvergenceWarning):
            caught.append(str(record.message).splitlines()[0])
        else:  # not ours to swallow
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
    return pipeline


def _splitter(cv: int, duplicates: str, random_state: int | None) -> KFold | GroupKFold:
    if duplicates == "group":
        return GroupKFold(n_splits=cv, shuffle=True, random_state=random_state)
    return KFold(n_splits=cv, shuffle=True, random_state=random_state)


def _cpus(n_jobs: int) -> int:
    """``n_jobs`` as a count of cores (-1: every core)."""
    return max(1, os.cpu_count() or 1) if n_jobs < 1 else n_jobs


def train_forward(
    ts: TrainingSet,
    estimator: str = DEFAULT_ESTIMATOR,
    cv: int | None = 5,
    random_state: int | None = 0,
    max_seconds: float | None = None,
    *,
    max_rows: int | None = None,
    params: Mapping[str, Any] | None = None,
    n_jobs: int = -1,
    progress: Progress | None = None,
    duplicates: str = "aggregate",
) -> ForwardModel:
    """Cross-validate (``cv`` shuffled folds, None to skip) and fit a forward model on ``ts``."""
    if estimator not in ESTIMATORS:
        raise TrainingError(f"unknown estimator {estimator!r}; choose from {list(ESTIMATORS)}")
    if duplicates not in DUPLICATES:
        raise TrainingError(f"duplicates must be one of {list(DUPLICATES)}, not {duplicates!r}")
    n_jobs = _cpus(n_jobs)
    twins = {"policy": duplicates, **ts.duplicates()}
    data = ts.aggregated() if duplicates == "aggregate" else ts
    n = len(data.y)
    if max_rows is not None and len(ts.y) > max_rows:
        raise TrainingLimitError(f"{len(ts.y)} rows exceed the training limit of {max_rows} rows")
    if estimator == "gaussian_process" and n > GP_MAX_ROWS:
        raise TrainingLimitError(
            f"a Gaussian process on {n} rows is too slow; at most {GP_MAX_ROWS} rows"
        )
    if cv is not None and (cv < 2 or n < 2 * cv):
        raise TrainingError(f"{cv}-fold cross-validation needs cv >= 2 and >= {2 * cv} rows")
    clock = _Clock(max_seconds)
    caught: list[str] = []
    report = progress or (lambda stage, done: None)
    template = build_pipeline(data.inputs, estimator, params, random_state, n_jobs)
    y = data.y.to_numpy(dtype=float)
    oof = np.full(n, np.nan)
    spread = np.full(n, np.nan) if estimator in SPREAD_ESTIMATORS else None
    fold_of = np.full(n, -1)
    baseline = np.full(n, np.nan)
    folds: list[dict[str, float]] = []
    steps = (cv or 0) + 1
    if cv is not None:
        splitter = _splitter(cv, duplicates, random_state)
        groups = data.duplicate_groups() if duplicates == "group" else None
        splits = splitter.split(data.X, y, groups)
        for i, (train, test) in enumerate(splits):
            report(f"fold {i + 1}/{cv}", i / steps)
            fitted = _fit(clone(template), data.X.iloc[train], y[train], caught, n_jobs)
            oof[test] = fitted.predict(data.X.iloc[test])
            if spread is not None:
                spread[test] = _tree_spread(fitted, data.X.iloc[test])
            fold_of[test] = i
            baseline[test] = y[train].mean()
            folds.append(regression_metrics(y[test], oof[test]))
            clock.check(f"fold {i + 1}/{cv}")
    report("final fit", (steps - 1) / steps)
    pipeline = _fit(clone(template), data.X, y, caught, n_jobs)
    clock.check("the final fit")
    domain = fit_domain(np.asarray(pipeline[:-1].transform(data.X), float))
    report("done", 1.0)
    metrics: dict[str, float] = regression_metrics(y, oof) if cv is not None else {}
    conformal = None
    if folds:
        for key in ("mae", "rmse", "r2"):
            values = [f[key] for f in folds]
            metrics[f"{key}_fold_mean"] = float(np.mean(values))
            metrics[f"{key}_fold_std"] = float(np.std(values))
        metrics["mae_mean_predictor"] = float(np.abs(y - baseline).mean())
        metrics["skill"] = 1.0 - metrics["mae"] / metrics["mae_mean_predictor"]
        if metrics["skill"] < 0:
            caught.append("cross-validated MAE is worse than predicting the training mean")
        conformal = calibrate(y, oof, spread, fold_of)
    return ForwardModel(
        pipeline=pipeline,
        estimator=estimator,
        inputs=data.inputs,
        target=data.target,
        metrics=metrics,
        fold_metrics=folds,
        oof_predictions=oof,
        y_true=y,
        cv=cv,
        random_state=random_state,
        params=dict(params or {}),
        n_rows=len(ts.y),
        fit_seconds=clock.elapsed(),
        manifests=data.manifests,
        warnings=tuple(dict.fromkeys(caught)),
        excluded=dict(data.dropped),
        duplicates=twins,
        conformal=conformal,
        domain=domain,
    )
