"""Inverse screening: rank candidates by a forward model's prediction, under constraints.

Candidates come from a table, a full grid, a Latin-hypercube sample over ranges, or their product
(for example every alloy of a table crossed with a grid of heat treatments). Inputs not varied
are set from ``fixed`` (the same for all) or ``base`` (a reference row); inputs still missing are
left to the pipeline's median imputation and listed in ``attrs["imputed"]`` so that nobody mistakes
them for chosen values. Expected improvement (``acquisition="ei"``) picks the next experiment by
trading predicted mean against the model's calibrated uncertainty (the half-width of its 68 %
conformal interval, ``training.conformal``), not against a spread assumed to be normal.

Every candidate gets its applicability-domain score (``training.domain``): above 1 it lies further
from the training data than 99 % of the training rows do, where a tree ensemble only repeats its
nearest leaf. ``domain="flag"`` marks such candidates, ``"exclude"`` drops them. The incumbent
best that expected improvement measures against is taken at the screen's fixed conditions from a
``reference`` table (the training slice), not over every row whatever its conditions. ``attrs``
says how many of the top candidates the model cannot tell apart from the first (their 68 %
intervals overlap), so that a ranking inside the error bars is not read as a finding.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from training.datasets import InputKind
from training.errors import ScreeningError
from training.models import ForwardModel

__all__ = [
    "DOMAIN",
    "EI",
    "HIGH",
    "IN_DOMAIN",
    "LOW",
    "MEAN",
    "RANK",
    "STD",
    "Constraint",
    "expected_improvement",
    "screen",
]

MEAN, STD, EI, RANK = "pred_mean", "pred_std", "expected_improvement", "rank"
LOW, HIGH = "pred_low_95", "pred_high_95"
DOMAIN, IN_DOMAIN = "domain_score", "in_domain"
DOMAIN_MODES = ("flag", "exclude", "ignore")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
Constraint = tuple[str, str, Any] | Callable[[pd.DataFrame], Any]
"""``(column, op, value)`` with op one of < <= > >= == !=, or a function frame -> boolean mask."""
Constraints = Mapping[str, tuple[float | None, float | None]] | Sequence[Constraint]


def expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, maximize: bool = True, xi: float = 0.0
) -> np.ndarray:
    """Expected improvement over ``best`` of normal predictions (``std`` 0 gives plain gain)."""
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    gain = (mean - best - xi) if maximize else (best - mean - xi)
    safe = np.where(std > 0, std, 1.0)
    z = gain / safe
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    return np.where(std > 0, gain * ndtr(z) + std * pdf, np.maximum(gain, 0.0))


def _latin_hypercube(
    ranges: Mapping[str, tuple[float, float]], samples: int, rng: np.random.Generator
) -> pd.DataFrame:
    columns: dict[str, np.ndarray] = {}
    for name, (low, high) in ranges.items():
        if not high >= low:
            raise ScreeningError(f"range of {name!r} is empty: ({low}, {high})")
        strata = (rng.permutation(samples) + rng.random(samples)) / samples
        columns[name] = low + strata * (high - low)
    return pd.DataFrame(columns)


def _cross(left: pd.DataFrame | None, right: pd.DataFrame) -> pd.DataFrame:
    if left is None:
        return right
    clash = set(left.columns) & set(right.columns)
    if clash:
        raise ScreeningError(f"columns given twice (candidates and grid/ranges): {sorted(clash)}")
    return left.merge(right, how="cross")


def _candidates(
    model: ForwardModel,
    candidates: pd.DataFrame | None,
    grid: Mapping[str, Sequence[Any]] | None,
    ranges: Mapping[str, tuple[float, float]] | None,
    samples: int,
    random_state: int | None,
    max_candidates: int,
) -> pd.DataFrame:
    varied = [*(grid or {}), *(ranges or {})]
    unknown = [name for name in varied if name not in model.input_names]
    if unknown:
        raise ScreeningError(f"not inputs of the model: {unknown}; inputs: {model.input_names}")
    size = (len(candidates) if candidates is not None else 1) * math.prod(
        len(v) for v in (grid or {}).values()
    )
    size *= samples if ranges else 1
    if size > max_candidates:
        raise ScreeningError(f"{size} candidates exceed the limit of {max_candidates}")
    frame = candidates.reset_index(drop=True) if candidates is not None else None
    if grid:
        product = list(itertools.product(*grid.values()))
        frame = _cross(frame, pd.DataFrame(product, columns=list(grid)))
    if ranges:
        if samples < 1:
            raise ScreeningError("ranges need samples >= 1")
        rng = np.random.default_rng(random_state)
        frame = _cross(frame, _latin_hypercube(ranges, samples, rng))
    if frame is None or frame.empty:
        raise ScreeningError("nothing to screen: give candidates, a grid or ranges with samples")
    return frame


def _feasible(frame: pd.DataFrame, constraints: Constraints | None) -> np.ndarray:
    keep = np.ones(len(frame), dtype=bool)
    if not constraints:
        return keep
    items: list[Constraint] = []
    if isinstance(constraints, Mapping):
        for name, (low, high) in constraints.items():
            if low is not None:
                items.append((name, ">=", low))
            if high is not None:
                items.append((name, "<=", high))
    else:
        items = list(constraints)
    for item in items:
        if callable(item):
            mask = np.asarray(item(frame), dtype=bool)
        else:
            name, op, value = item
            if name not in frame.columns:
                raise ScreeningError(f"constraint on unknown column {name!r}")
            if op not in _OPS:
                raise ScreeningError(f"constraint operator {op!r} is not one of {list(_OPS)}")
            mask = np.asarray(_OPS[op](frame[name], value), dtype=bool)
        keep &= mask
    return keep


def screen(
    model: ForwardModel,
    candidates: pd.DataFrame | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    samples: int = 0,
    *,
    fixed: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | pd.Series | None = None,
    balance: str | None = None,
    derive: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    constraints: Constraints | None = None,
    maximize: bool = True,
    top: int | None = 20,
    acquisition: str = "mean",
    best_so_far: float | None = None,
    reference: pd.DataFrame | None = None,
    domain: str = "flag",
    xi: float = 0.0,
    random_state: int | None = 0,
    max_candidates: int = 200_000,
) -> pd.DataFrame:
    """Candidates ranked by predicted target (``"mean"``) or expected improvement (``"ei"``).

    ``balance`` names a weight-percent input set to 100 minus the other weight percents (the
    base element of an alloy); ``derive`` recomputes inputs that depend on others (a total
    heat-treatment time, say) once candidates are built. Constraints may name inputs or the
    ``pred_mean``/``pred_std`` columns. The result holds the candidate columns, ``pred_mean``,
    ``pred_std`` (calibrated), the 95 % interval, the domain score, for "ei"
    ``expected_improvement``, and ``rank`` (1 is best); ``attrs`` describes the screen.
    ``reference`` (rows with the model's inputs and target, e.g. the training slice) gives the
    incumbent best at the ``fixed`` conditions for "ei" when ``best_so_far`` is not given.
    """
    if acquisition not in ("mean", "ei"):
        raise ScreeningError(f"acquisition must be 'mean' or 'ei', not {acquisition!r}")
    if domain not in DOMAIN_MODES:
        raise ScreeningError(f"domain must be one of {list(DOMAIN_MODES)}, not {domain!r}")
    if acquisition == "ei" and not model.has_uncertainty:
        raise ScreeningError(
            f"expected improvement needs an uncertainty; {model.estimator} gives none "
            "(train with cross-validation to calibrate intervals)"
        )
    frame = _candidates(model, candidates, grid, ranges, samples, random_state, max_candidates)
    for name, value in (fixed or {}).items():
        if name not in model.input_names:
            raise ScreeningError(f"fixed {name!r} is not an input of the model")
        frame[name] = value
    imputed: list[str] = []
    for name in model.input_names:
        if name not in frame.columns:
            if base is not None and name in base:
                frame[name] = base[name]
            else:
                frame[name] = np.nan
                imputed.append(name)
    if balance is not None:
        _balance(model, frame, balance)
    if derive is not None:
        frame = derive(frame)
    mean, std = model.calibrated_std(frame)
    frame[MEAN], frame[STD] = mean, std
    if model.conformal is not None:
        _, frame[LOW], frame[HIGH] = model.predict_interval(frame, 0.95)
    frame[DOMAIN] = model.domain_score(frame)
    frame[IN_DOMAIN] = frame[DOMAIN] <= 1.0
    best, incumbent = best_so_far, "given" if best_so_far is not None else None
    if acquisition == "ei":
        if best is None:
            best, incumbent = _incumbent(model, reference, fixed or {}, maximize)
        frame[EI] = expected_improvement(mean, std, best, maximize, xi)
    n_candidates = len(frame)
    outside = int((~frame[IN_DOMAIN]).sum())
    keep = _feasible(frame, constraints)
    if domain == "exclude":
        keep &= frame[IN_DOMAIN].to_numpy()
    frame = frame[keep]
    key = EI if acquisition == "ei" else MEAN
    ascending = acquisition == "mean" and not maximize
    frame = frame.sort_values(key, ascending=ascending, kind="stable").reset_index(drop=True)
    frame[RANK] = np.arange(1, len(frame) + 1)
    if top is not None:
        frame = frame.head(top)
    frame.attrs.update(
        {
            "target": model.target.name,
            "unit": model.target.unit,
            "estimator": model.estimator,
            "acquisition": acquisition,
            "maximize": maximize,
            "best_so_far": best,
            "incumbent": incumbent,
            "candidates": n_candidates,
            "feasible": int(frame[RANK].max()) if len(frame) else 0,
            "imputed": imputed,
            "outside_domain": outside,
            "domain": domain,
            "indistinguishable_from_first": _ties(frame),
        }
    )
    return frame


def _ties(frame: pd.DataFrame) -> int:
    """How many of the shown candidates after the first have a 68 % interval overlapping it."""
    if len(frame) < 2 or not np.isfinite(frame[STD]).all():
        return 0
    first = frame.iloc[0]
    mean, std = frame[MEAN].to_numpy()[1:], frame[STD].to_numpy()[1:]
    overlap = np.abs(mean - first[MEAN]) <= std + first[STD]
    return int(overlap.sum())


def _incumbent(
    model: ForwardModel,
    reference: pd.DataFrame | None,
    fixed: Mapping[str, Any],
    maximize: bool,
) -> tuple[float, str]:
    """The best measured target at the fixed conditions, and where it was taken from."""
    pick = np.nanmax if maximize else np.nanmin
    target = model.target.name
    if reference is not None:
        if target not in reference.columns:
            raise ScreeningError(f"the reference table has no {target!r} column")
        rows = reference
        for name, value in fixed.items():
            if name in rows.columns:
                column = rows[name]
                if pd.api.types.is_numeric_dtype(column):
                    rows = rows[np.isclose(column.astype(float), float(value))]
                else:
                    rows = rows[column == value]
        values = pd.to_numeric(rows[target], errors="coerce").dropna()
        if len(values):
            where = ", ".join(f"{k}={v}" for k, v in fixed.items()) or "all rows"
            return float(pick(values)), f"best of {len(values)} reference rows at {where}"
        raise ScreeningError(
            f"no reference row at the fixed conditions {dict(fixed)}: give best_so_far"
        )
    if len(model.y_true) == 0:
        raise ScreeningError("the model keeps no targets: give best_so_far or a reference table")
    note = "best over all training rows (no reference: fixed conditions not taken into account)"
    return float(pick(model.y_true)), note


def _balance(model: ForwardModel, frame: pd.DataFrame, balance: str) -> None:
    wt = [s.name for s in model.inputs if s.kind == InputKind.WEIGHT_PERCENT]
    if balance not in wt:
        raise ScreeningError(f"balance {balance!r} is not a weight-percent input of the model")
    others = frame[[c for c in wt if c != balance]].apply(pd.to_numeric, errors="coerce")
    frame[balance] = 100.0 - others.fillna(0.0).sum(axis=1)
    if (frame[balance] < 0).any():
        raise ScreeningError(f"weight percents exceed 100 before adding the balance {balance!r}")
