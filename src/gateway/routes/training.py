"""Compute-to-data: train on a dataset where it lives; the model leaves, the rows do not."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from gateway import compute
from gateway.deps import CurrentPrincipal, NodeDep, PathId, PathSlug
from gateway.schemas import TrainBody

router = APIRouter(tags=["training"])


@router.post(
    "/datasets/{institution}/{name}/train",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Train a model on site (compute-to-data)",
)
def train(
    institution: PathSlug,
    name: PathSlug,
    body: TrainBody,
    node: NodeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """Queue a training job on the permitted slice; follow it at ``/jobs/{id}``."""
    return compute.start_training(node, principal, f"{institution}/{name}", body)


@router.get("/jobs/{job_id}", summary="A job's progress and result")
def job(job_id: PathId, node: NodeDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Status, stage, progress; the run, metrics and model card when done."""
    return compute.job(node, principal, job_id)


@router.get(
    "/jobs/{job_id}/model",
    summary="The trained model (skops)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def model(job_id: PathId, node: NodeDep, principal: CurrentPrincipal) -> Response:
    """The model file of a finished job, in skops format (load with ``training.loads_model``)."""
    return compute.artifact(node, principal, job_id)
