"""The ML half of the client: training sets from permitted slices, forward models, screening,
on-site training (the model stays on the node: ``RemoteModel`` predicts and screens through it),
and registering runs in the node's lineage.

Mixed into ``gateway.client.Client``; scikit-learn and the featurisers load only when used.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from gateway.client import RemoteDataset
    from training.datasets import TrainingSet
    from training.models import ForwardModel
    from training.runs import TrainingRun

__all__ = ["Learning", "RemoteModel"]

DEFAULT_ROLES = ("processing", "structure", "condition")


class _Client(Protocol):
    """What these methods use of ``Client``."""

    def dataset(self, dataset_id: str) -> RemoteDataset: ...
    def get(self, path: str, **kwargs: Any) -> Any: ...
    def post(self, path: str, json_body: Any = None, **kwargs: Any) -> Any: ...
    def _download(self, path: str) -> bytes: ...


class RemoteModel:
    """A model kept on the node that trained it: its card and metrics here, its predictions
    asked of the node (decided, budgeted and audited there), its file only where policy grants
    ``export-model``."""

    def __init__(self, client: _Client, job: Mapping[str, Any]) -> None:
        self._client = client
        self.job_id: str = str(job["id"])
        self.result: Mapping[str, Any] = job["result"]
        self.card: Mapping[str, Any] = self.result["card"]
        self.metrics: Mapping[str, Any] = self.result["model"]["metrics"]
        self.inputs: list[str] = [i["name"] for i in self.result["model"]["inputs"]]
        self.target: str = str(self.result["model"]["target"]["name"])

    def __repr__(self) -> str:
        return f"RemoteModel({self.job_id!r}, target={self.target!r})"

    def predict(
        self, rows: pd.DataFrame | Sequence[Mapping[str, Any]], *, return_std: bool = True
    ) -> pd.DataFrame:
        """Rounded predictions for ``rows`` (``pred_mean``, ``pred_std``), one call to the node."""
        import pandas as pd

        records = rows.to_dict(orient="records") if isinstance(rows, pd.DataFrame) else list(rows)
        body = {"rows": [_jsonable(r) for r in records], "return_std": return_std}
        answer = self._client.post(f"/jobs/{self.job_id}/predict", body)
        frame = pd.DataFrame(
            {
                "pred_mean": [p["mean"] for p in answer["predictions"]],
                "pred_std": [p.get("std") for p in answer["predictions"]],
            }
        )
        frame.attrs["matgate"] = {k: v for k, v in answer.items() if k != "predictions"}
        return frame

    def screen(self, **kwargs: Any) -> pd.DataFrame:
        """Candidates ranked on the node (``grid``, ``ranges``, ``samples``, ``fixed``,
        ``candidates``, ``constraints``, ``top``, ...): inputs, ``pred_mean``, ``pred_std``."""
        import pandas as pd

        if isinstance(kwargs.get("candidates"), pd.DataFrame):
            kwargs["candidates"] = kwargs["candidates"].to_dict(orient="records")
        if kwargs.get("candidates") is not None:
            kwargs["candidates"] = [_jsonable(r) for r in kwargs["candidates"]]
        answer = self._client.post(f"/jobs/{self.job_id}/screen", kwargs)
        frame = pd.DataFrame(
            [
                {**r["inputs"], **{k: v for k, v in r.items() if k != "inputs"}}
                for r in answer["ranked"]
            ]
        )
        frame.attrs["matgate"] = {k: v for k, v in answer.items() if k != "ranked"}
        return frame

    def download(self) -> ForwardModel:
        """The model file, where policy grants ``export-model`` (``Forbidden`` otherwise)."""
        from training.store import loads_model

        return loads_model(self._client._download(f"/jobs/{self.job_id}/model"))


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row for JSON: numpy scalars as Python values, NaN as null."""
    import math

    out: dict[str, Any] = {}
    for key, value in row.items():
        value = value.item() if hasattr(value, "item") else value
        out[str(key)] = None if isinstance(value, float) and math.isnan(value) else value
    return out


class Learning:
    """Methods of ``Client`` for the "use" end of the platform."""

    def training_set(
        self: _Client,
        dataset: str,
        target: str,
        *,
        purpose: str = "ml-training",
        inputs: Sequence[str] | None = None,
        roles: Iterable[str] = DEFAULT_ROLES,
        filter: str | None = None,
        limit: int | None = None,
    ) -> TrainingSet:
        """Pull the permitted slice for ``purpose``; choose inputs by PSPP role for ``target``."""
        from connectors.datasets import Column
        from training.datasets import TrainingSet

        remote = self.dataset(dataset)
        columns = [Column.model_validate(c) for c in remote.metadata()["columns"]]
        df = remote.pull(filter=filter, purpose=purpose, limit=limit)
        present = [c for c in columns if c.name in df.columns]
        return TrainingSet.from_frame(df, present, target, inputs, tuple(roles))

    def train_forward(
        self: _Client,
        training_set: TrainingSet,
        *,
        estimator: str = "extra_trees",
        cv: int | None = 5,
        random_state: int | None = 0,
        purpose: str = "ml-training",
        name: str | None = None,
        **params: Any,
    ) -> TrainingRun:
        """Train and cross-validate a forward model here; its card carries the slices' terms."""
        from training.cards import ModelCard
        from training.models import train_forward
        from training.runs import TrainingRun

        model = train_forward(training_set, estimator, cv, random_state, params=params or None)
        card = ModelCard.from_model(model, purpose=purpose, name=name)
        return TrainingRun(
            uuid.uuid4().hex, model, card, training_set.summary(), training_set.signatures
        )

    def screen(self: _Client, model: ForwardModel | TrainingRun, **kwargs: Any) -> pd.DataFrame:
        """Rank candidates by predicted target (see ``training.screening.screen``)."""
        from training.runs import TrainingRun
        from training.screening import screen

        return screen(model.model if isinstance(model, TrainingRun) else model, **kwargs)

    def register_run(
        self: _Client, run: TrainingRun, *, model_hash: str | None = None, version: str = "1"
    ) -> dict[str, Any]:
        """Record the run in the node's lineage: slices -> you -> run -> model."""
        return dict(self.post("/lineage/runs", run.run_body(model_hash, version)))

    def train_remote(
        self: _Client,
        dataset: str,
        target: str,
        *,
        purpose: str = "ml-training",
        estimator: str = "extra_trees",
        cv: int = 5,
        inputs: Sequence[str] | None = None,
        filter: str | None = None,
        model_name: str | None = None,
        timeout: float = 600.0,
        poll: float = 0.5,
    ) -> tuple[RemoteModel, Mapping[str, Any]]:
        """Compute-to-data: train on the node and wait; the model stays there. Returns its handle
        (predict and screen through the node; ``download()`` where ``export-model`` is granted)
        and the job's result (run, card, metrics, the training input's manifest)."""
        body: dict[str, Any] = {
            "target": target,
            "purpose": purpose,
            "estimator": estimator,
            "cv": cv,
        }
        for key, value in (("inputs", inputs), ("filter", filter), ("model_name", model_name)):
            if value is not None:
                body[key] = list(value) if key == "inputs" else value
        job = self.post(f"/datasets/{dataset}/train", body)
        deadline = time.monotonic() + timeout
        while job["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"training job {job['id']} still {job['status']} after {timeout} s"
                )
            time.sleep(poll)
            job = self.get(f"/jobs/{job['id']}")
        if job["status"] != "done":
            from gateway.errors import for_status

            error = job.get("error") or {}
            raise for_status(int(error.get("status", 500)), str(error.get("detail", "job failed")))
        return RemoteModel(self, job), job["result"]
