"""ML users' pages: start a compute-to-data training job on a dataset, and follow it to its
model card. The job is decided (``train``) and run by ``gateway.compute``, as on the API."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response

from gateway import compute
from gateway.console.web import Context, context, error_page, redirect, render
from gateway.schemas import TrainBody

router = APIRouter(prefix="/console", include_in_schema=False)
Ctx = Annotated[Context, Depends(context)]
Estimator = Literal["random_forest", "gradient_boosting", "ridge", "gaussian_process"]


@router.post("/datasets/{institution}/{name}/train")
def train(
    ctx: Ctx,
    institution: str,
    name: str,
    target: Annotated[str, Form(max_length=128)],
    purpose: Annotated[str, Form(max_length=64)] = "ml-training",
    estimator: Annotated[Estimator, Form()] = "random_forest",
    csrf: Annotated[str | None, Form(max_length=128)] = None,
) -> Response:
    """Queue a training job on the permitted slice (the rows stay here)."""
    try:
        ctx.check_csrf(csrf)
        principal = ctx.require()
        body = TrainBody(target=target, purpose=purpose, estimator=estimator)
        job = compute.start_training(ctx.node, principal, f"{institution}/{name}", body)
    except Exception as exc:
        return error_page(ctx, exc)
    return redirect(ctx, f"/console/jobs/{job['id']}")


@router.get("/jobs/{job_id}")
def job(ctx: Ctx, job_id: str) -> Response:
    """A job's progress (the page refreshes itself until it ends) and, when done, its card."""
    try:
        found = compute.job(ctx.node, ctx.require(), job_id)
    except Exception as exc:
        return error_page(ctx, exc)
    running = found["status"] in ("queued", "running")
    return render(ctx, "job.html", job=found, running=running)
