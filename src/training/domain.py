"""The applicability domain of a forward model: how far a candidate lies from its training data.

Tree ensembles cannot extrapolate: outside the region their training rows cover they return the
value of the nearest leaf, so a screen that wanders there ranks candidates by an artefact. The
score here is a Mahalanobis distance in the principal components (95 % of the variance) of the
standardised features, divided by the 99th percentile of the training rows' own distances: a
candidate scoring above 1 lies further out than 99 % of the training data.

Only summary statistics are kept (means, scales, components, one threshold), never a row, so
that a model trained on data that may not be read carries its domain without memorising rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

__all__ = ["Domain", "fit_domain"]

VARIANCE_KEPT = 0.95
PERCENTILE = 99.0


@dataclass(frozen=True)
class Domain:
    """Standardisation, principal axes and the training distance threshold."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    threshold: float

    def score(self, features: np.ndarray) -> np.ndarray:
        """Distance of each row to the training data, in units of the threshold (<= 1: inside)."""
        values = np.array(features, dtype=float)
        values[~np.isfinite(values)] = np.nan
        z = (values - self.mean) / self.scale
        projected = np.nan_to_num(z) @ self.components.T
        distance = np.sqrt((projected**2 / self.variances).sum(axis=1) / len(self.variances))
        return distance / self.threshold

    def to_dict(self) -> dict[str, Any]:
        """A summary for the model card (the axes themselves stay in the model)."""
        return {
            "method": "Mahalanobis distance in principal components of standardised features",
            "components": len(self.variances),
            "variance_kept": VARIANCE_KEPT,
            "threshold_percentile": PERCENTILE,
        }


def fit_domain(features: np.ndarray) -> Domain | None:
    """The domain of a training feature matrix (None when there are too few rows to tell)."""
    X = np.array(features, dtype=float)
    if X.ndim != 2 or X.shape[0] < 5 or X.shape[1] == 0:
        return None
    X[~np.isfinite(X)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no spread to measure
        mean = np.nan_to_num(np.nanmean(X, axis=0))
        scale = np.nan_to_num(np.nanstd(X, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    z = np.nan_to_num((X - mean) / scale)
    try:
        pca = PCA(n_components=VARIANCE_KEPT, svd_solver="full").fit(z)
    except np.linalg.LinAlgError:
        return None
    variances = np.maximum(pca.explained_variance_, 1e-12)
    projected = z @ pca.components_.T
    distance = np.sqrt((projected**2 / variances).sum(axis=1) / len(variances))
    threshold = float(np.percentile(distance, PERCENTILE)) or 1.0
    return Domain(mean, scale, pca.components_, variances, threshold)
