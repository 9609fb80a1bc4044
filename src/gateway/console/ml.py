"""ML users' pages: their pulls with each manifest's signature checked, their compute-to-data
jobs followed live to a model card. Jobs are decided (``train``) and run by ``gateway.compute``
and manifests checked by ``service.releases``, as on the API."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form
from fastapi.responses import JSONResponse, Response

from gateway import compute, service
from gateway.console.web import Context, context, error_page, headers, redirect, render
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


@router.get("/jobs/{job_id}/progress")
def progress(ctx: Ctx, job_id: str) -> Response:
    """A job's status, stage and progress as JSON, polled by the job page's script."""
    try:
        found = compute.job(ctx.node, ctx.require(), job_id)
    except Exception as exc:
        status = getattr(exc, "status", None)
        if not isinstance(status, int):
            raise
        return headers(JSONResponse({"detail": str(getattr(exc, "detail", exc))}, status))
    keep = {k: found[k] for k in ("status", "stage", "progress")}
    return headers(JSONResponse(keep | {"running": found["status"] in ("queued", "running")}))


@router.get("/jobs")
def jobs(ctx: Ctx) -> Response:
    """The jobs you started on this node, newest first."""
    try:
        found = compute.jobs_of(ctx.node, ctx.require())
    except Exception as exc:
        return error_page(ctx, exc)
    return render(ctx, "jobs.html", jobs=found)


@router.get("/pulls")
def pulls(ctx: Ctx) -> Response:
    """The slices you pulled, newest first, each manifest's signature checked by the node."""
    try:
        found = service.releases(ctx.node, ctx.require())
    except Exception as exc:
        return error_page(ctx, exc)
    return render(ctx, "pulls.html", pulls=found)


@router.get("/pulls/{manifest_id}")
def manifest(ctx: Ctx, manifest_id: str) -> Response:
    """A pull's manifest and signature as JSON (to keep beside the data for ``matgate verify``)."""
    try:
        found = service.provenance(ctx.node, ctx.require(), manifest_id)
    except Exception as exc:
        return error_page(ctx, exc)
    response = JSONResponse(found.model_dump())
    response.headers["Content-Disposition"] = (
        f'attachment; filename="manifest-{found.manifest["id"]}.json"'
    )
    return headers(response)
