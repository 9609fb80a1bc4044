"""Figures for models and screens: a parity plot of cross-validated predictions, a screen's ranking.

matplotlib is an optional extra: it is imported here only when a plot is drawn, and figures are
drawn on an Agg canvas of their own, so that no global backend is switched in the caller's process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.errors import TrainingError
from training.models import ForwardModel
from training.screening import DOMAIN, EI, HIGH, IN_DOMAIN, LOW, MEAN, STD

__all__ = ["parity_plot", "screening_plot"]


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise TrainingError("plots need matplotlib: pip install 'matgate[plots]'") from exc
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _label(name: str, unit: str | None) -> str:
    return f"{name} [{unit}]" if unit else name


def parity_plot(model: ForwardModel, path: str | Path) -> Path:
    """Save a PNG of out-of-fold predictions against measured values, with the CV metrics."""
    keep = np.isfinite(model.oof_predictions)
    if not keep.any():
        raise TrainingError("the model has no cross-validated predictions (trained with cv=None)")
    y, p = model.y_true[keep], model.oof_predictions[keep]
    figure = _figure(5.0, 5.0)
    ax = figure.add_subplot()
    ax.scatter(y, p, s=12, alpha=0.6, edgecolors="none")
    low, high = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1)
    label = _label(model.target.name, model.target.unit)
    ax.set_xlabel(f"measured {label}")
    ax.set_ylabel(f"predicted {label} ({model.cv}-fold CV)")
    m = model.metrics
    ax.set_title(
        f"{model.estimator}: MAE {m['mae']:.3g}, RMSE {m['rmse']:.3g}, R² {m['r2']:.3f}",
        fontsize=10,
    )
    ax.set_aspect("equal")
    out = Path(path)
    figure.savefig(out, format="png")
    return out


def screening_plot(result: pd.DataFrame, path: str | Path, top: int = 20) -> Path:
    """Save a PNG of the best-ranked candidates' predicted target with their uncertainty."""
    if result.empty or MEAN not in result.columns:
        raise TrainingError("not a screening result (no rows or no pred_mean column)")
    shown = result.head(top).iloc[::-1]
    figure = _figure(9.0, max(2.5, 0.3 * len(shown) + 1.2))
    ax = figure.add_subplot()
    if LOW in shown and HIGH in shown:
        mean = shown[MEAN].to_numpy(float)
        err: Any = np.vstack(
            [mean - shown[LOW].to_numpy(float), shown[HIGH].to_numpy(float) - mean]
        )
        band = "95 % conformal interval"
    else:
        std = shown[STD].to_numpy(float) if STD in shown else None
        err = None if std is None or np.isnan(std).all() else np.nan_to_num(std)
        band = "± 1 std"
    # points, not bars: the candidates differ by a little near a large value, bars from 0 hide it
    ax.errorbar(shown[MEAN], np.arange(len(shown)), xerr=err, fmt="o", capsize=3)
    if IN_DOMAIN in shown and not shown[IN_DOMAIN].all():
        out = ~shown[IN_DOMAIN].to_numpy(bool)
        ax.plot(
            shown[MEAN][out],
            np.arange(len(shown))[out],
            "x",
            color="red",
            markersize=9,
            label="outside the model's domain",
        )
        ax.legend(loc="lower right", fontsize=7)
    # label each bar with what differs between the shown candidates, not the shared settings
    scored = (MEAN, STD, EI, "rank", LOW, HIGH, DOMAIN, IN_DOMAIN)
    varied = [c for c in shown.columns if c not in scored and shown[c].nunique(dropna=False) > 1]
    labels = [_candidate_label(row, varied) for _, row in shown.iterrows()]
    ax.set_yticks(np.arange(len(shown)), labels)
    ax.tick_params(axis="y", labelsize=7)
    target = result.attrs.get("target", "target")
    ax.set_xlabel(f"predicted {_label(target, result.attrs.get('unit'))} ({band})")
    by = "expected improvement" if EI in result.columns else "predicted mean"
    title = f"Top {len(shown)} candidates, ranked by {by}"
    ties = int(result.attrs.get("indistinguishable_from_first", 0))
    if ties:
        title += f"\n{ties} of the others cannot be told apart from #1 (68 % intervals overlap)"
    ax.set_title(title, fontsize=10, loc="left")
    out = Path(path)
    figure.savefig(out, format="png", bbox_inches="tight")
    return out


def _candidate_label(row: pd.Series, varied: list[str]) -> str:
    parts = ", ".join(f"{k}={_short(row[k])}" for k in varied[:3])
    return f"#{int(row['rank'])} {parts}" if "rank" in row else parts


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)[:16]
