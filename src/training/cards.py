"""Model cards: what a model learned from, under which terms, how well, and for what purpose.

A card names the inputs with their PSPP roles and units, the target, the estimator and its
cross-validated metrics, the manifests of the slices it was trained on, and the licences and
obligations inherited from them (including those of federated upstream slices). Its
``content_hash`` covers everything else on the card, so a card cannot be edited unnoticed;
``artifact_sha256`` ties it to the saved model file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from training.models import ForwardModel

__all__ = ["ModelCard", "canonical_json"]


def canonical_json(value: Any) -> str:
    """Sorted, compact JSON (the form that is hashed)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _finite(value: Any) -> Any:
    """NaN and infinities become None: they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _walk(manifests: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Each manifest and, depth first, the upstream manifests of federated slices."""
    for manifest in manifests:
        yield manifest
        upstream = manifest.get("upstream") or manifest.get("upstream_manifests") or []
        yield from _walk([m for m in upstream if isinstance(m, Mapping)])


def _obligation(item: Any) -> dict[str, str]:
    if isinstance(item, Mapping):
        return {"kind": str(item.get("kind", "")), "detail": str(item.get("detail", ""))}
    return {"kind": str(item), "detail": ""}


@dataclass(frozen=True)
class ModelCard:
    """The card of one trained model; build it with ``ModelCard.from_model``."""

    model_id: str
    name: str
    purpose: str
    estimator: str
    target: dict[str, Any]
    inputs: list[dict[str, Any]]
    metrics: dict[str, Any]
    cv: dict[str, Any]
    rows: int
    manifests: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    obligations: list[dict[str, str]] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    created: str = ""
    artifact_sha256: str | None = None
    warnings: list[str] = field(default_factory=list)
    prediction: str = ""

    @classmethod
    def from_model(
        cls,
        model: ForwardModel,
        *,
        purpose: str,
        manifests: Sequence[Mapping[str, Any]] | None = None,
        name: str | None = None,
        description: str = "",
        model_id: str | None = None,
    ) -> ModelCard:
        """The card of ``model``; manifests default to those the training set carried."""
        found = [dict(m) for m in (manifests if manifests is not None else model.manifests)]
        datasets: list[str] = []
        licenses: list[str] = []
        obligations: list[dict[str, str]] = []
        for manifest in _walk(found):
            dataset = manifest.get("dataset") or manifest.get("dataset_id")
            if dataset and str(dataset) not in datasets:
                datasets.append(str(dataset))
            licence = manifest.get("license") or manifest.get("licence")
            if licence and str(licence) not in licenses:
                licenses.append(str(licence))
            for item in manifest.get("obligations") or []:
                if _obligation(item) not in obligations:
                    obligations.append(_obligation(item))
        summary = model.summary()
        return cls(
            model_id=model_id or uuid.uuid4().hex,
            name=name or f"{model.target.name}-{model.estimator}",
            purpose=purpose,
            estimator=model.estimator,
            target=summary["target"],
            inputs=summary["inputs"],
            metrics=_finite(summary["metrics"]),
            cv=summary["cv"],
            rows=model.n_rows,
            manifests=_finite(found),
            datasets=datasets,
            licenses=licenses,
            obligations=obligations,
            excluded=dict(model.excluded),
            params=summary["params"],
            description=description,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            warnings=list(model.warnings),
            prediction=summary["prediction"],
        )

    def with_artifact(self, sha256: str) -> ModelCard:
        """This card tied to a saved model file by its SHA-256."""
        return replace(self, artifact_sha256=sha256)

    @property
    def content_hash(self) -> str:
        """SHA-256 of the card's canonical JSON (every field but this hash).

        An empty ``prediction`` is left out, so that cards written before the field existed
        keep their hash.
        """
        fields = asdict(self)
        if not fields["prediction"]:
            del fields["prediction"]
        return hashlib.sha256(canonical_json(fields).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with ``content_hash``."""
        return {**asdict(self), "content_hash": self.content_hash}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Inverse of ``to_dict``; ``ValueError`` when the content hash does not match."""
        fields = {k: v for k, v in data.items() if k != "content_hash"}
        card = cls(**fields)
        claimed = data.get("content_hash")
        if claimed is not None and claimed != card.content_hash:
            raise ValueError(f"model card {card.model_id} was altered: content hash mismatch")
        return card

    def to_markdown(self) -> str:
        """A human-readable card."""
        unit = f" [{self.target.get('unit')}]" if self.target.get("unit") else ""
        lines = [
            f"# Model card: {self.name}",
            "",
            f"- model id: `{self.model_id}`",
            f"- purpose: {self.purpose}",
            f"- target: `{self.target['name']}`{unit} ({self.target['role']})",
            f"- estimator: {self.estimator}, trained on {self.rows} rows",
            *([f"- prediction: {self.prediction}"] if self.prediction else []),
            f"- created: {self.created}",
            f"- content hash: `{self.content_hash}`",
        ]
        if self.artifact_sha256:
            lines.append(f"- model file SHA-256: `{self.artifact_sha256}`")
        if self.description:
            lines += ["", self.description]
        lines += ["", "## Inputs", "", "| input | PSPP role | unit | kind |", "|---|---|---|---|"]
        lines += [
            f"| `{i['name']}` | {i['role']} | {i.get('unit') or ''} | {i['kind']} |"
            for i in self.inputs
        ]
        folds = self.cv.get("folds")
        lines += ["", f"## Metrics ({folds}-fold cross-validation)" if folds else "## Metrics", ""]
        for key in ("mae", "rmse", "r2"):
            if self.metrics.get(key) is not None:
                spread = self.metrics.get(f"{key}_fold_std")
                extra = f" (fold std {spread:.4g})" if spread is not None else ""
                lines.append(f"- {key.upper()}: {self.metrics[key]:.4g}{extra}")
        lines += ["", "## Data and terms", ""]
        lines.append(f"- datasets: {', '.join(self.datasets) or 'none recorded'}")
        lines.append(f"- licences: {', '.join(self.licenses) or 'none recorded'}")
        for ob in self.obligations:
            detail = f": {ob['detail']}" if ob["detail"] else ""
            lines.append(f"- obligation: {ob['kind']}{detail}")
        for manifest in self.manifests:
            ident = manifest.get("request_id") or manifest.get("id") or "?"
            lines.append(f"- slice `{ident}` of {manifest.get('dataset', '?')}")
        if self.excluded:
            lines += ["", "## Columns not used", ""]
            lines += [f"- `{name}`: {why}" for name, why in self.excluded.items()]
        return "\n".join(lines) + "\n"
