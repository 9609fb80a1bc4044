"""Saving and loading forward models safely: skops files (never raw pickle) beside their cards.

``save_model`` writes ``<name>.skops`` and ``<name>.card.json`` (the card carries the SHA-256 of
the model file). ``load_model`` lists the types the file would instantiate beyond those skops
trusts by default and refuses the file unless every one is on ``ALLOWED_TYPES``: the few types
that this package's own pipelines are made of. A model file altered after saving no longer
matches its card and is refused too.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from training.cards import ModelCard
from training.conformal import Conformal
from training.datasets import InputSpec
from training.domain import Domain
from training.errors import TrainingError, UntrustedModelError
from training.models import ForwardModel
from training.privacy import Guard

__all__ = [
    "ALLOWED_TYPES",
    "card_path",
    "dumps_kept",
    "dumps_model",
    "load_card",
    "load_model",
    "loads_kept",
    "loads_model",
    "save_model",
]

FORMAT = "matgate-forward-model/1"

# Beyond skops' defaults (builtins, numpy arrays, scikit-learn estimators), exactly what
# pipelines.build_pipeline produces: tree internals, kernels, our featurisers, numpy dtypes.
ALLOWED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.gaussian_process.kernels.ConstantKernel",
        "sklearn.gaussian_process.kernels.Product",
        "sklearn.gaussian_process.kernels.RBF",
        "sklearn.gaussian_process.kernels.Sum",
        "sklearn.gaussian_process.kernels.WhiteKernel",
        "training.featurizers.CompositionFeaturizer",
        "training.featurizers.WeightPercentFeaturizer",
        "training.pipelines.ExtraTrees",
    }
)


def _model_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".skops" else path.with_name(path.name + ".skops")


def card_path(path: str | Path) -> Path:
    """Where the card of the model saved at ``path`` lives."""
    return _model_path(path).with_suffix(".card.json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _payload(model: ForwardModel) -> dict[str, Any]:
    meta = {
        "format": FORMAT,
        "estimator": model.estimator,
        "inputs": [s.to_dict() for s in model.inputs],
        "target": model.target.to_dict(),
        "metrics": model.metrics,
        "fold_metrics": model.fold_metrics,
        "cv": model.cv,
        "random_state": model.random_state,
        "params": model.summary()["params"],
        "n_rows": model.n_rows,
        "fit_seconds": model.fit_seconds,
        "manifests": list(model.manifests),
        "warnings": list(model.warnings),
        "excluded": model.excluded,
        "duplicates": model.duplicates,
        "conformal": model.conformal.to_dict() if model.conformal else None,
    }
    domain = model.domain
    return {
        "domain": None
        if domain is None
        else {
            "mean": domain.mean,
            "scale": domain.scale,
            "components": domain.components,
            "variances": domain.variances,
            "threshold": float(domain.threshold),
        },
        "meta": json.dumps(meta, default=str),  # one string: no types to trust for metadata
        "pipeline": model.pipeline,
        "oof_predictions": np.asarray(model.oof_predictions, dtype=float),
        "y_true": np.asarray(model.y_true, dtype=float),
    }


def _model(payload: dict[str, Any], source: str) -> ForwardModel:
    meta = json.loads(payload["meta"])
    if meta.get("format") != FORMAT:
        raise TrainingError(f"{source} is not a forward model ({meta.get('format')!r})")
    return ForwardModel(
        pipeline=payload["pipeline"],
        estimator=meta["estimator"],
        inputs=tuple(InputSpec.from_dict(s) for s in meta["inputs"]),
        target=InputSpec.from_dict(meta["target"]),
        metrics=meta["metrics"],
        fold_metrics=meta["fold_metrics"],
        oof_predictions=np.asarray(payload["oof_predictions"], dtype=float),
        y_true=np.asarray(payload["y_true"], dtype=float),
        cv=meta["cv"],
        random_state=meta["random_state"],
        params=meta["params"],
        n_rows=meta["n_rows"],
        fit_seconds=meta["fit_seconds"],
        manifests=tuple(meta["manifests"]),
        warnings=tuple(meta["warnings"]),
        excluded=meta["excluded"],
        duplicates=meta.get("duplicates", {}),
        conformal=Conformal.from_dict(meta["conformal"]) if meta.get("conformal") else None,
        domain=_domain(payload.get("domain")),
    )


def _domain(data: dict[str, Any] | None) -> Domain | None:
    if not data:
        return None
    arrays = {k: np.asarray(data[k], dtype=float) for k in ("mean", "scale", "components")}
    variances = np.asarray(data["variances"], dtype=float)
    return Domain(**arrays, variances=variances, threshold=float(data["threshold"]))


def dumps_model(model: ForwardModel, card: ModelCard | None = None) -> tuple[bytes, ModelCard]:
    """The model as skops bytes and its card tied to them (for sending a model over HTTP)."""
    import skops.io as sio

    data = sio.dumps(_payload(model))
    card = card or ModelCard.from_model(model, purpose="unspecified")
    return data, card.with_artifact(hashlib.sha256(data).hexdigest())


def loads_model(data: bytes, card: ModelCard | None = None) -> ForwardModel:
    """Inverse of ``dumps_model``, with the same allow-list and (given a card) hash check."""
    import skops.io as sio

    if card is not None and card.artifact_sha256 != hashlib.sha256(data).hexdigest():
        raise TrainingError(f"model bytes do not match the SHA-256 on card {card.model_id}")
    untrusted = sio.get_untrusted_types(data=data)
    outside = sorted(t for t in untrusted if t not in ALLOWED_TYPES)
    if outside:
        raise UntrustedModelError("model bytes", outside)
    return _model(sio.loads(data, trusted=untrusted), "model bytes")


def dumps_kept(model_file: bytes, guard: Guard) -> bytes:
    """What a node keeps of a model trained on site: the model file (the one that may leave)
    and the guard that never does, as one ``.npz`` of plain arrays."""
    sink = io.BytesIO()
    np.savez(
        sink,
        model=np.frombuffer(model_file, dtype=np.uint8),
        guard=np.frombuffer(guard.to_bytes(), dtype=np.uint8),
    )
    return sink.getvalue()


def loads_kept(data: bytes) -> tuple[bytes, Guard]:
    """Inverse of ``dumps_kept``: (model file, guard); ``TrainingError`` for anything else."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            model_file = arrays["model"].tobytes()
            guard = Guard.from_bytes(arrays["guard"].tobytes())
    except (ValueError, KeyError, OSError) as exc:
        raise TrainingError("not a model kept by compute-to-data") from exc
    return model_file, guard


def save_model(model: ForwardModel, path: str | Path, card: ModelCard | None = None) -> ModelCard:
    """Write the model (skops) and its card beside it; return the card tied to the file."""
    target = _model_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data, card = dumps_model(model, card)
    target.write_bytes(data)
    card_path(target).write_text(json.dumps(card.to_dict(), indent=2, default=str) + "\n")
    return card


def load_card(path: str | Path) -> ModelCard:
    """The card saved beside the model at ``path`` (its content hash checked)."""
    return ModelCard.from_dict(json.loads(card_path(path).read_text()))


def load_model(path: str | Path, *, require_card: bool = True) -> ForwardModel:
    """Load a model saved by ``save_model``, trusting only ``ALLOWED_TYPES``.

    Raises ``UntrustedModelError`` when the file holds any other type, and ``TrainingError`` when
    it does not match the SHA-256 on its card (or, with ``require_card``, has no card).
    """
    import skops.io as sio

    source = _model_path(path)
    if require_card or card_path(source).exists():
        if not card_path(source).exists():
            raise TrainingError(f"{source} has no model card beside it")
        card = load_card(source)
        if card.artifact_sha256 != _sha256(source):
            raise TrainingError(f"{source} does not match the SHA-256 on its model card")
    untrusted = sio.get_untrusted_types(file=source)
    outside = sorted(t for t in untrusted if t not in ALLOWED_TYPES)
    if outside:
        raise UntrustedModelError(str(source), outside)
    return _model(sio.load(source, trusted=untrusted), str(source))
