"""Compute-to-data: train a forward model on the permitted slice, on site. The rows stay, and
so does the model: its user gets the card and the node's governed prediction and screening
(``gateway.serving``); the model file leaves only where policy grants ``export-model``.

The ``train`` action is decided and recorded like a read (columns, masks and row rules apply
exactly as to reading); the rows are read on the node into a bounded job that runs off the event
loop. Where the user may not read what the model learns from (``train`` allowed, ``read`` not, or
narrower), estimators that memorise rows are refused and tree ensembles regularised
(``training.privacy``). The node keeps the model in its exportable form (no targets, moved
thresholds, blanked counts; it predicts with that very file) beside a guard of the training
inputs that never leaves. The training input gets a manifest like any slice (marked
``released: false``), signed and recorded, and the run is registered in the lineage against it,
so the graph shows dataset -> slice -> principal -> run -> model for on-site training too.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from fastapi import Response

from connectors.errors import ConnectorError
from gateway import remote_jobs
from gateway.access import dataset_for, ensure
from gateway.errors import Conflict, ServiceUnavailable, TooLarge, Unprocessable
from gateway.federation import is_remote
from gateway.formats import Format
from gateway.jobs import Job, Progress, model_response
from gateway.schemas import TrainBody
from gateway.slices import Permitted, SliceRequest, keep, manifest_for, permitted
from policies.decisions import Action, Decision
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = ["artifact", "finished", "job", "jobs_of", "start_training"]


def start_training(
    node: Node, principal: Principal, dataset_id: str, body: TrainBody
) -> dict[str, Any]:
    """Decide (``train``), then queue the job that reads the rows and trains on them (or, for a
    peer's dataset, ask the peer to)."""
    if is_remote(node, dataset_id):
        return remote_jobs.start(node, principal, dataset_id, body)
    return _start_local(node, principal, dataset_id, body).to_dict()


def job(node: Node, principal: Principal, job_id: str) -> dict[str, Any]:
    """A job's status and result, here or on the peer that runs it."""
    if remote_jobs.is_remote_job(job_id):
        return remote_jobs.job(node, principal, job_id)
    return node.jobs.get(job_id, principal.id).to_dict()


def jobs_of(node: Node, principal: Principal, limit: int = 100) -> list[dict[str, Any]]:
    """The jobs the principal started on this node, newest first (jobs relayed to a peer are
    followed on the peer, by id)."""
    return [j.to_dict() for j in node.jobs.of(principal.id, limit)]


def _start_local(node: Node, principal: Principal, dataset_id: str, body: TrainBody) -> Job:
    limits = node.config.limits
    req = SliceRequest(
        purpose=body.purpose,
        columns=tuple(body.columns) if body.columns is not None else None,
        filter=body.filter,
        limit=limits.train_max_rows + 1,  # one more than allowed tells us the slice is too big
        format=Format.ARROW,
    )
    grant = permitted(node, principal, dataset_id, req, action=Action.TRAIN)
    params = _params(node, principal, grant, req, body)
    return node.jobs.submit(
        principal.id,
        "train",
        lambda progress: _train(node, principal, grant, req, body, params, progress),
    )


def _params(
    node: Node, principal: Principal, grant: Permitted, req: SliceRequest, body: TrainBody
) -> dict[str, Any] | None:
    """Estimator parameters: none of the user's, but the privacy floors where the user may not
    read what the model learns from (refusing estimators that memorise rows)."""
    from training.errors import TrainingError
    from training.privacy import restricted_params

    read = node.governance.decide(principal, grant.dataset, Action.READ, req.purpose, req.columns)
    if _covers(read, grant.decision):
        return None
    try:
        return restricted_params(body.estimator)
    except TrainingError as exc:
        raise Unprocessable(str(exc)) from exc


def _covers(read: Decision, train: Decision) -> bool:
    """Whether ``read`` gives the same rows and columns, unmasked alike, as ``train``: only then
    is nothing in the model that its user could not read anyway."""
    if not read.allowed or not set(train.columns) <= set(read.columns):
        return False
    if any(read.masks.get(c) != train.masks.get(c) for c in train.columns):
        return False
    return read.summary()["row_filter"] == train.summary()["row_filter"]


def _train(
    node: Node,
    principal: Principal,
    grant: Permitted,
    req: SliceRequest,
    body: TrainBody,
    params: dict[str, Any] | None,
    progress: Progress,
) -> tuple[dict[str, Any], bytes]:
    from training.privacy import Guard, exportable
    from training.runs import run_training
    from training.store import dumps_kept, dumps_model

    limits = node.config.limits
    progress("reading", 0.0)
    table = _read(node, grant)
    if table.num_rows > limits.train_max_rows:
        raise TooLarge(
            f"the permitted slice has more than {limits.train_max_rows} rows, this node's "
            "training limit; narrow it with a filter"
        )
    manifest, token = _record_input(node, principal, grant, req, table)
    columns = [c for c in grant.dataset.columns if c.name in grant.decision.columns]
    progress("training", 0.05)
    frame = table.to_pandas()
    run = run_training(
        frame,
        columns,
        body.target,
        purpose=body.purpose,
        inputs=body.inputs,
        roles=body.roles,
        estimator=body.estimator,
        cv=body.cv,
        random_state=body.random_state,
        params=params,
        manifests=[manifest],
        max_rows=limits.train_max_rows,
        max_seconds=limits.train_max_seconds,
        progress=lambda stage, f: progress(stage, 0.05 + 0.9 * f),
        name=body.model_name,
    )
    progress("sanitising", 0.95)
    guard = Guard.of(run.model, frame)
    model = exportable(run.model, guard, seed=int(run.run_id[:8], 16))
    artifact, card = dumps_model(model, run.card)
    model_hash = hashlib.sha256(artifact).hexdigest()
    progress("registering", 0.97)
    registered = node.lineage.register_run(
        principal=principal.id,
        model_name=card.name,
        model_version=body.model_version,
        manifests=[token],
        model_hash=model_hash,
        metrics={k: v for k, v in run.model.metrics.items() if isinstance(v, int | float)},
        # (non-finite metrics are dropped by the lineage store: strict JSON has no NaN)
        purpose=body.purpose,
        run_id=run.run_id,
    )
    result = {
        "dataset": grant.dataset.id,
        "purpose": body.purpose,
        "run": registered.to_dict(),
        "model": model.summary(),
        "card": card.to_dict(),
        "manifest": manifest,
        "model_sha256": model_hash,
        "kept": {
            "where": node.institution,
            "regularised": params or {},
            "use": ["predict", "screen"],
            "export": "only where policy grants export-model",
        },
    }
    return result, dumps_kept(artifact, guard)


def _read(node: Node, grant: Permitted) -> pa.Table:
    connector = node.stores.get(grant.dataset.location.store)
    try:
        schema = connector.schema(grant.query)
        return pa.Table.from_batches(list(connector.batches(grant.query)), schema=schema)
    except ConnectorError as exc:
        raise ServiceUnavailable(f"store {grant.dataset.location.store!r} failed: {exc}") from exc


def _record_input(
    node: Node, principal: Principal, grant: Permitted, req: SliceRequest, table: pa.Table
) -> tuple[dict[str, Any], str]:
    """The training input's manifest: what was used, hashed as Arrow IPC, never released."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    body = sink.getvalue()
    manifest = manifest_for(node, principal, grant.dataset, req, grant.decision, grant.request_id)
    manifest.update(
        format="compute-to-data",
        released=False,
        rows=table.num_rows,
        bytes=body.size,
        sha256=hashlib.sha256(body).hexdigest(),
        complete=True,
    )
    manifest["query"]["limit"] = None
    return manifest, keep(node, principal, manifest, action=Action.TRAIN)


def artifact(node: Node, principal: Principal, job_id: str) -> Response:
    """The model file of a finished job, with its hash in a header, where policy grants
    ``export-model`` on the dataset it learned from (decided and recorded; 403 with reasons)."""
    from training.store import loads_kept

    if remote_jobs.is_remote_job(job_id):
        return remote_jobs.model(node, principal, job_id)
    job = finished(node, principal, job_id)
    result = job.result or {}
    dataset = dataset_for(node, principal, str(result.get("dataset", "")))
    ensure(node, principal, dataset, Action.EXPORT_MODEL, str(result.get("purpose", "")))
    job = node.jobs.get(job_id, principal.id, artifact=True)
    assert job.artifact is not None  # finished() checked it
    model_file, _ = loads_kept(job.artifact)
    return model_response(model_file, str(result.get("model_sha256", "")))


def finished(node: Node, principal: Principal, job_id: str) -> Job:
    """The caller's finished training job that keeps a model (409 while it is not there)."""
    job = node.jobs.get(job_id, principal.id)
    if job.status != "done" or not job.has_artifact:
        raise Conflict(f"job {job_id} is {job.status}; the model is there when it is done")
    if "dataset" not in (job.result or {}):
        raise Conflict(f"job {job_id} was trained before models were kept on the node; train again")
    return job
