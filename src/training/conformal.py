"""Calibrated prediction intervals by cross-conformal prediction on out-of-fold residuals.

The nonconformity score of a row is its out-of-fold absolute error divided by the model's own
spread there plus a floor (``|y - mu| / (sigma + beta)``, with ``beta`` the median spread), so
that intervals widen where the ensemble disagrees; estimators without a spread use the plain
absolute error (``sigma = 0, beta = 1``). The quantile of the scores at ``ceil((n + 1) level) / n``
gives the half-width multiplier (Vovk's inductive/cross-conformal construction; Barber et al.
2021 for the CV+ guarantee of at least ``1 - 2 alpha``, in practice close to ``1 - alpha``).

Coverage is checked honestly: for each fold, the multiplier is computed from the other folds'
scores only and applied to that fold; the mean of those coverages is what the model card reports.
Only a few numbers are kept (``beta`` and one multiplier per level): no residual or row leaves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LEVELS", "Conformal", "calibrate"]

LEVELS = (0.68, 0.95)


def _quantile(scores: np.ndarray, level: float) -> float:
    """The conformal quantile: the ceil((n + 1) level)-th smallest score (inf when n is small)."""
    n = len(scores)
    rank = math.ceil((n + 1) * level)
    if n == 0 or rank > n:
        return float("inf")
    return float(np.partition(scores, rank - 1)[rank - 1])


@dataclass(frozen=True)
class Conformal:
    """Multipliers of ``sigma + beta`` that give intervals at each level, and their coverage."""

    method: str
    beta: float
    multipliers: dict[str, float]
    coverage: dict[str, float] = field(default_factory=dict)

    def half_width(self, sigma: np.ndarray | None, level: float) -> np.ndarray | float:
        """Half-width of the interval at ``level`` for rows with spread ``sigma``."""
        key = _key(level)
        if key not in self.multipliers:
            raise ValueError(
                f"no calibration at level {level}; calibrated: {list(self.multipliers)}"
            )
        spread = 0.0 if sigma is None else np.nan_to_num(np.asarray(sigma, float))
        return self.multipliers[key] * (spread + self.beta)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the model card)."""
        return {
            "method": self.method,
            "beta": self.beta,
            "multipliers": dict(self.multipliers),
            "coverage": dict(self.coverage),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conformal:
        """Inverse of ``to_dict``."""
        return cls(
            str(data["method"]),
            float(data["beta"]),
            {str(k): float(v) for k, v in data["multipliers"].items()},
            {str(k): float(v) for k, v in data.get("coverage", {}).items()},
        )


def _key(level: float) -> str:
    return f"{level:.2f}"


def calibrate(
    y_true: np.ndarray,
    oof: np.ndarray,
    sigma: np.ndarray | None,
    folds: np.ndarray,
    levels: Sequence[float] = LEVELS,
) -> Conformal:
    """Calibrate from out-of-fold predictions (``folds`` gives each row's fold number)."""
    y_true, oof, folds = np.asarray(y_true, float), np.asarray(oof, float), np.asarray(folds)
    keep = np.isfinite(oof) & np.isfinite(y_true)
    if sigma is not None:
        sigma = np.nan_to_num(np.asarray(sigma, float))[keep]
        positive = sigma[sigma > 0]
        beta = float(np.median(positive)) if len(positive) else 1.0
        method = "cross-conformal, |residual| / (ensemble spread + median spread)"
    else:
        beta = 1.0
        method = "cross-conformal, |residual|"
    spread = (sigma if sigma is not None else 0.0) + beta
    scores = np.abs(y_true[keep] - oof[keep]) / spread
    fold_of = folds[keep]
    multipliers = {_key(level): _quantile(scores, level) for level in levels}
    coverage: dict[str, float] = {}
    for level in levels:
        hits = 0
        for fold in np.unique(fold_of):
            inside = fold_of == fold
            q = _quantile(scores[~inside], level)
            hits += int((scores[inside] <= q).sum())
        coverage[_key(level)] = hits / len(scores) if len(scores) else float("nan")
    return Conformal(method, beta, multipliers, coverage)
