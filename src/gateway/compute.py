"""Compute-to-data: train a forward model on the permitted slice, on site; the model leaves,
the rows do not.

The ``train`` action is decided and recorded like a read (columns, masks and row rules apply
exactly as to reading); the rows are read on the node into a bounded job that runs off the event
loop. The training input gets a manifest like any slice (marked ``released: false``), signed and
recorded, and the run is registered in the lineage against it, so the graph shows dataset ->
slice -> principal -> run -> model for on-site training too.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from fastapi import Response

from connectors.errors import ConnectorError
from gateway import remote_jobs
from gateway.errors import Conflict, ServiceUnavailable, TooLarge
from gateway.federation import is_remote
from gateway.formats import Format
from gateway.jobs import Job, Progress, model_response
from gateway.schemas import TrainBody
from gateway.slices import Permitted, SliceRequest, keep, manifest_for, permitted
from policies.decisions import Action
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = ["artifact", "job", "start_training"]


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
    return node.jobs.submit(
        principal.id, "train", lambda progress: _train(node, principal, grant, req, body, progress)
    )


def _train(
    node: Node,
    principal: Principal,
    grant: Permitted,
    req: SliceRequest,
    body: TrainBody,
    progress: Progress,
) -> tuple[dict[str, Any], bytes]:
    from training.runs import run_training
    from training.store import dumps_model

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
    run = run_training(
        table.to_pandas(),
        columns,
        body.target,
        purpose=body.purpose,
        inputs=body.inputs,
        roles=body.roles,
        estimator=body.estimator,
        cv=body.cv,
        random_state=body.random_state,
        manifests=[manifest],
        max_rows=limits.train_max_rows,
        max_seconds=limits.train_max_seconds,
        progress=lambda stage, f: progress(stage, 0.05 + 0.9 * f),
        name=body.model_name,
    )
    artifact, card = dumps_model(run.model, run.card)
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
        "run": registered.to_dict(),
        "model": run.model.summary(),
        "card": card.to_dict(),
        "manifest": manifest,
        "model_sha256": model_hash,
    }
    return result, artifact


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
    """The saved model of a finished job, with its hash in a header."""
    if remote_jobs.is_remote_job(job_id):
        return remote_jobs.model(node, principal, job_id)
    job = node.jobs.get(job_id, principal.id)
    if job.status != "done" or job.artifact is None:
        raise Conflict(f"job {job_id} is {job.status}; the model is there when it is done")
    return model_response(job.artifact, (job.result or {}).get("model_sha256", ""))
