"""Composition descriptors as scikit-learn transformers: element fractions and Magpie statistics.

For each row the composition becomes atomic fractions ``x_i``; every elemental property ``p`` of
the Magpie table then gives fraction-weighted statistics over the elements present (Ward et al.,
npj Comput. Mater. 2, 16028 (2016)): ``mean = sum x_i p_i``, ``std`` (weighted standard
deviation), ``avg_dev`` (weighted mean absolute deviation), ``min``, ``max``, ``range`` and
``mode`` (the property of the most abundant element). Stoichiometry norms (``||x||_p``) and the
element count are optional. A row holding an element without tabulated properties gets NaN
statistics (a pipeline's imputer deals with them) rather than silently wrong numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from training.elements import ELEMENTS, element_table
from training.errors import FormulaError, TrainingSetError
from training.formula import fractions as formula_fractions

__all__ = [
    "STATS",
    "CompositionFeaturizer",
    "WeightPercentFeaturizer",
    "magpie_features",
    "weight_percent_element",
]

STATS = ("mean", "std", "avg_dev", "min", "max", "range", "mode")
_NORMS = (2, 3, 5, 7, 10)
_WT_PCT = re.compile(r"^([A-Za-z]{1,2})_?(?:wt_?pct|wt|wtpct|weight_?pct|mass_?pct)$")
_CHUNK = 2048  # rows per block, to bound the (rows x elements x properties) temporary


def weight_percent_element(column: str) -> str | None:
    """The element a weight-percent column such as ``ni_wt_pct`` stands for, or None."""
    match = _WT_PCT.match(column)
    if match is None:
        return None
    symbol = match.group(1).capitalize()
    return symbol if symbol in ELEMENTS else None


def _check_stats(stats: Sequence[str]) -> tuple[str, ...]:
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise TrainingSetError(f"unknown statistics {unknown}; choose from {list(STATS)}")
    return tuple(stats)


def magpie_features(
    fractions: np.ndarray,
    symbols: Sequence[str],
    stats: Sequence[str] = ("mean", "std", "min", "max", "range"),
) -> tuple[np.ndarray, list[str]]:
    """Magpie statistics of rows of atomic ``fractions`` over ``symbols`` -> (matrix, names)."""
    table = element_table()
    stats = _check_stats(stats)
    n_props = len(table.properties)
    props = np.full((len(symbols), n_props), np.nan)
    for j, symbol in enumerate(symbols):
        if symbol in table.index:
            props[j] = table.values[table.index[symbol]]
    out = np.empty((fractions.shape[0], len(stats) * n_props))
    for start in range(0, fractions.shape[0], _CHUNK):
        block = fractions[start : start + _CHUNK]
        out[start : start + _CHUNK] = _block_stats(block, props, stats)
    names = [f"{stat}_{prop}" for stat in stats for prop in table.properties]
    return out, names


def _block_stats(x: np.ndarray, props: np.ndarray, stats: tuple[str, ...]) -> np.ndarray:
    present = x > 0.0
    # An element without properties poisons only the rows that contain it.
    unknown = present & np.isnan(props).any(axis=1)[None, :]
    bad_rows = unknown.any(axis=1)
    p = np.nan_to_num(props)
    mean = x @ p
    columns: list[np.ndarray] = []
    for stat in stats:
        if stat == "mean":
            columns.append(mean)
        elif stat in ("std", "avg_dev"):
            dev = p[None, :, :] - mean[:, None, :]
            dev = dev**2 if stat == "std" else np.abs(dev)
            value = np.einsum("re,rep->rp", x, dev)
            columns.append(np.sqrt(value) if stat == "std" else value)
        elif stat in ("min", "max", "range"):
            lo = np.where(present[:, :, None], p[None, :, :], np.inf).min(axis=1)
            hi = np.where(present[:, :, None], p[None, :, :], -np.inf).max(axis=1)
            columns.append({"min": lo, "max": hi, "range": hi - lo}[stat])
        else:  # mode: the most abundant element's property
            columns.append(p[np.argmax(x, axis=1)])
    result = np.hstack(columns)
    result[bad_rows] = np.nan
    return result


def _stoichiometry(x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    count = (x > 0).sum(axis=1, keepdims=True).astype(float)
    norms = [np.power((x**p).sum(axis=1, keepdims=True), 1.0 / p) for p in _NORMS]
    return np.hstack([count, *norms]), ["n_elements", *[f"norm_{p}" for p in _NORMS]]


def _values(X: Any, column: str) -> list[Any]:
    if isinstance(X, pd.DataFrame):
        if column in X.columns:
            return X[column].tolist()
        if X.shape[1] == 1:
            return X.iloc[:, 0].tolist()
        raise TrainingSetError(f"no column {column!r} among {list(X.columns)}")
    array = np.asarray(X, dtype=object)
    return array.reshape(-1).tolist() if array.ndim <= 1 or array.shape[1] == 1 else []


class _MagpieBase(TransformerMixin, BaseEstimator):
    """Shared tail: fractions of the elements seen in ``fit``, statistics, stoichiometry."""

    stats: Sequence[str]
    fractions: bool
    stoichiometry: bool

    def _features(self, x: np.ndarray, symbols: Sequence[str]) -> np.ndarray:
        parts: list[np.ndarray] = []
        if self.fractions:
            keep = [symbols.index(s) for s in self.elements_ if s in symbols]
            block = np.zeros((x.shape[0], len(self.elements_)))
            block[:, [self.elements_.index(symbols[k]) for k in keep]] = x[:, keep]
            parts.append(block)
        if self.stoichiometry:
            parts.append(_stoichiometry(x)[0])
        parts.append(magpie_features(x, symbols, self.stats)[0])
        return np.hstack(parts)

    def _names(self) -> list[str]:
        names = [f"x_{s}" for s in self.elements_] if self.fractions else []
        if self.stoichiometry:
            names += _stoichiometry(np.zeros((0, 1)))[1]
        return names + magpie_features(np.zeros((0, 1)), ["H"], self.stats)[1]

    def get_feature_names_out(self, input_features: Iterable[str] | None = None) -> np.ndarray:
        """Names of the output features."""
        return np.asarray(self._names(), dtype=object)


class CompositionFeaturizer(_MagpieBase):
    """Formula strings -> element fractions, stoichiometry norms and Magpie statistics."""

    def __init__(
        self,
        column: str = "formula",
        stats: Sequence[str] = ("mean", "std", "min", "max", "range"),
        fractions: bool = True,
        stoichiometry: bool = True,
    ) -> None:
        self.column = column
        self.stats = stats
        self.fractions = fractions
        self.stoichiometry = stoichiometry

    def _compositions(self, X: Any) -> tuple[np.ndarray, list[str]]:
        values = _values(X, self.column)
        parsed: list[dict[str, float]] = []
        for row, value in enumerate(values):
            try:
                parsed.append(formula_fractions(value))
            except FormulaError as exc:
                raise FormulaError(exc.formula, exc.position, f"row {row}: {exc.reason}") from None
        symbols = sorted({s for comp in parsed for s in comp}, key=ELEMENTS.index)
        where = {s: j for j, s in enumerate(symbols)}
        x = np.zeros((len(parsed), len(symbols)))
        for i, comp in enumerate(parsed):
            for s, f in comp.items():
                x[i, where[s]] = f
        return x, symbols

    def fit(self, X: Any, y: Any = None) -> CompositionFeaturizer:
        """Learn which elements occur (one fraction column each)."""
        _check_stats(self.stats)
        _, symbols = self._compositions(X)
        self.elements_ = list(symbols)
        self.n_features_in_ = 1
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Featurise the formulas of ``X``."""
        x, symbols = self._compositions(X)
        return self._features(x, symbols)


class WeightPercentFeaturizer(_MagpieBase):
    """Weight-percent columns (``ni_wt_pct``, ...) -> atomic fractions and Magpie statistics.

    Empty cells and non-numeric entries count as 0 wt %, as in the published alloy tables where
    a blank means the element was not added.
    """

    def __init__(
        self,
        columns: Sequence[str] = (),
        stats: Sequence[str] = ("mean", "std", "min", "max", "range"),
        fractions: bool = True,
        stoichiometry: bool = False,
    ) -> None:
        self.columns = columns
        self.stats = stats
        self.fractions = fractions
        self.stoichiometry = stoichiometry

    def _symbols(self, X: Any) -> tuple[list[str], list[str]]:
        columns = list(self.columns) or (list(X.columns) if isinstance(X, pd.DataFrame) else [])
        symbols = [weight_percent_element(c) for c in columns]
        bad = [c for c, s in zip(columns, symbols, strict=True) if s is None]
        if bad or not columns:
            raise TrainingSetError(f"not weight-percent element columns: {bad or 'none given'}")
        return columns, [s for s in symbols if s is not None]

    def _atomic(self, X: Any) -> tuple[np.ndarray, list[str]]:
        columns, symbols = self._symbols(X)
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X), columns=columns)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise TrainingSetError(f"weight-percent columns missing from the data: {missing}")
        wt = np.column_stack([pd.to_numeric(frame[c], errors="coerce") for c in columns])
        wt = np.clip(np.nan_to_num(wt.astype(float)), 0.0, None)
        table = element_table()
        weights = np.array([table.atomic_weight(s) for s in symbols])
        moles = wt / weights
        total = moles.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            x = np.where(total > 0, moles / np.where(total > 0, total, 1.0), np.nan)
        return x, symbols

    def fit(self, X: Any, y: Any = None) -> WeightPercentFeaturizer:
        """Check the columns name elements; every element gets a fraction column."""
        _check_stats(self.stats)
        _, symbols = self._symbols(X)
        self.elements_ = list(symbols)
        self.n_features_in_ = len(symbols)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Featurise the weight-percent columns of ``X``."""
        x, symbols = self._atomic(X)
        empty = np.isnan(x).any(axis=1)
        features = self._features(np.nan_to_num(x), symbols)
        features[empty] = np.nan  # a row with no composition at all is unknown, not pure nothing
        return features
