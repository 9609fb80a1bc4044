"""Compute-to-data: train on a dataset where it lives; rows and model stay, predictions leave."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from gateway import compute, serving
from gateway.deps import CurrentPrincipal, DatasetName, Institution, JobId, NodeDep
from gateway.openapi import errors
from gateway.schemas import PredictBody, ScreenBody, TrainBody

router = APIRouter(tags=["training"])


@router.post(
    "/datasets/{institution}/{name}/train",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Train a model on site (compute-to-data)",
    responses=errors(400, 403, 404, 409, 502, 503, 504),
)
def train(
    institution: Institution,
    name: DatasetName,
    body: TrainBody,
    node: NodeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """Queue a training job on the permitted slice; follow it at ``/jobs/{id}``."""
    return compute.start_training(node, principal, f"{institution}/{name}", body)


@router.get("/jobs", summary="Your jobs on this node", responses=errors(503))
def jobs(
    node: NodeDep,
    principal: CurrentPrincipal,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="At most this many jobs, newest first.")
    ] = 100,
) -> list[dict[str, Any]]:
    """The jobs you started here, newest first, with their status and progress."""
    return compute.jobs_of(node, principal, limit)


@router.get(
    "/jobs/{job_id}",
    summary="A job's progress and result",
    responses=errors(403, 404, 502, 503, 504),
)
def job(job_id: JobId, node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Status, stage, progress; the run, metrics and model card when done."""
    return compute.job(node, principal, job_id)


@router.post(
    "/jobs/{job_id}/predict",
    summary="Predict with a model kept on the node",
    responses=errors(403, 404, 409, 429, 502, 503, 504),
)
def predict(
    job_id: JobId, body: PredictBody, node: NodeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Rounded predictions for your rows; decided, budgeted, audited; probes of training rows
    refused."""
    return serving.predict(node, principal, job_id, body)


@router.post(
    "/jobs/{job_id}/screen",
    summary="Screen candidates with a model kept on the node",
    responses=errors(403, 404, 409, 429, 502, 503, 504),
)
def screen(
    job_id: JobId, body: ScreenBody, node: NodeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The best candidates by predicted target (or expected improvement over your best)."""
    return serving.screen(node, principal, job_id, body)


@router.get(
    "/jobs/{job_id}/model",
    summary="The trained model (skops), where policy grants export-model",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **errors(403, 404, 409, 502, 503, 504),
    },
)
def model(job_id: JobId, node: NodeDep, principal: CurrentPrincipal) -> Response:
    """The sanitised model file of a finished job (skops; load with ``training.loads_model``),
    only where policy grants ``export-model`` on its dataset (403 with the reasons otherwise)."""
    return compute.artifact(node, principal, job_id)
