"""A training run in one call: slice + schema -> training set -> forward model -> model card.

This is what a node's compute-to-data job and the client's ``train_forward`` call: it applies the
job's bounds (rows, seconds), reports progress, and returns everything the lineage graph needs
(run id, model id, datasets and slice manifests) next to the model and its card.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from connectors.datasets import Column, PSPPRole
from training.cards import ModelCard
from training.datasets import DEFAULT_ROLES, TrainingSet
from training.models import ForwardModel, Progress, train_forward

__all__ = ["TrainingRun", "run_training"]


@dataclass(frozen=True)
class TrainingRun:
    """The outcome of one run: the model, its card, and what the training set was made of."""

    run_id: str
    model: ForwardModel
    card: ModelCard
    training_set: dict[str, Any]
    signatures: tuple[str, ...] = ()

    def lineage(self) -> dict[str, Any]:
        """The run's node in the lineage graph: slices (manifests) -> run -> model."""
        return {
            "run_id": self.run_id,
            "model_id": self.card.model_id,
            "model_name": self.card.name,
            "purpose": self.card.purpose,
            "estimator": self.card.estimator,
            "target": self.card.target["name"],
            "datasets": list(self.card.datasets),
            "slices": [m.get("request_id") or m.get("id") for m in self.card.manifests],
            "card_hash": self.card.content_hash,
        }

    def run_body(self, model_hash: str | None = None, version: str = "1") -> dict[str, Any]:
        """The body for the node's ``POST /lineage/runs``: signed manifests, model, metrics."""
        metrics = {
            k: float(v)
            for k, v in self.card.metrics.items()
            if k in ("mae", "rmse", "r2") and isinstance(v, int | float) and math.isfinite(v)
        }
        return {
            "manifests": list(self.signatures),
            "model_name": self.card.name,
            "model_version": version,
            "model_hash": model_hash or self.card.artifact_sha256 or self.card.content_hash,
            "metrics": metrics,
            "purpose": self.card.purpose,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON form: run id, card, training-set summary and the model's summary."""
        return {
            "run_id": self.run_id,
            "card": self.card.to_dict(),
            "training_set": self.training_set,
            "model": self.model.summary(),
        }


def run_training(
    df: pd.DataFrame,
    columns: Sequence[Column],
    target: str,
    *,
    purpose: str,
    inputs: Sequence[str] | None = None,
    roles: Iterable[PSPPRole | str] = DEFAULT_ROLES,
    estimator: str = "extra_trees",
    cv: int | None = 5,
    random_state: int | None = 0,
    params: Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
    manifests: Sequence[Mapping[str, Any]] | None = None,
    max_rows: int | None = None,
    max_seconds: float | None = None,
    n_jobs: int = 1,
    progress: Progress | None = None,
    name: str | None = None,
    description: str = "",
) -> TrainingRun:
    """Build the training set from a permitted slice, train and cross-validate, write the card."""
    ts = TrainingSet.from_frame(
        df, columns, target, inputs, roles, exclude=exclude, manifests=manifests
    )
    model = train_forward(
        ts,
        estimator,
        cv,
        random_state,
        max_seconds,
        max_rows=max_rows,
        params=params,
        n_jobs=n_jobs,
        progress=progress,
    )
    card = ModelCard.from_model(model, purpose=purpose, name=name, description=description)
    return TrainingRun(uuid.uuid4().hex, model, card, ts.summary(), ts.signatures)
