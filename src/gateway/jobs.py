"""Background jobs of a node (compute-to-data training): bounded, off the event loop, observable.

A job's state lives in the node database, so any replica of the node answers ``/jobs/{id}``
whichever one runs it; the work itself runs on this replica's small pool of threads. A job's
creation and each change of its status commit with their audit entry (``record``), or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from gateway.db import jobs_table
from gateway.errors import NotFound, ServiceUnavailable
from gateway.problems import public_detail

__all__ = ["Job", "Jobs", "model_response"]

Progress = Callable[[str, float], None]
Work = Callable[[Progress], tuple[dict[str, Any], bytes | None]]
Record = Callable[[sa.Connection, "Job"], None]
_STEP = 0.02  # progress is written when it moved by this much, or the stage changed


@dataclass
class Job:
    """One job: who started it, how far it is, and its result or error."""

    id: str
    owner: str
    kind: str
    created: str
    status: str = "queued"  # queued, running, done, failed
    stage: str = ""
    progress: float = 0.0
    result: dict[str, Any] | None = None
    artifact: bytes | None = field(default=None, repr=False)
    error: dict[str, Any] | None = None
    has_artifact: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the artifact bytes)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "owner": self.owner,
            "created": self.created,
            "status": self.status,
            "stage": self.stage,
            "progress": round(self.progress, 3),
            "result": self.result,
            "error": self.error,
            "artifact": self.has_artifact or self.artifact is not None,
        }


class Jobs:
    """Jobs recorded in the node database and run by a small pool of worker threads."""

    def __init__(self, engine: sa.Engine, workers: int = 1, record: Record | None = None) -> None:
        self._engine = engine
        self._record = record
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="matgate-job")
        self._lock = threading.Lock()
        self._pending = 0
        self._limit = workers * 4

    def submit(self, owner: str, kind: str, work: Work) -> Job:
        """Queue ``work``; it reports progress and returns (result, artifact bytes)."""
        with self._lock:
            if self._pending >= self._limit:
                raise ServiceUnavailable("the node's job queue is full; try again later")
            self._pending += 1
        job = Job(uuid.uuid4().hex, owner, kind, dt.datetime.now(dt.UTC).isoformat())
        try:
            with self._engine.begin() as conn:
                conn.execute(jobs_table.insert().values(**_row(job)))
                if self._record is not None:
                    self._record(conn, job)
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str, owner: str, *, artifact: bool = False) -> Job:
        """The job, if ``owner`` started it (anyone else gets the same 404 as for no job); its
        artifact bytes are read only when asked for."""
        columns = [c for c in jobs_table.c if artifact or c.name != "artifact"]
        has = jobs_table.c.artifact.is_not(None).label("has_artifact")
        with self._engine.connect() as conn:
            row = (
                conn.execute(sa.select(*columns, has).where(jobs_table.c.id == job_id))
                .mappings()
                .first()
            )
        if row is None or row["owner"] != owner:
            raise NotFound(f"no job {job_id!r}")
        return Job(**{**dict(row), "has_artifact": bool(row["has_artifact"])})

    def of(self, owner: str, limit: int) -> list[Job]:
        """The jobs ``owner`` started, newest first (without their artifacts)."""
        columns = [c for c in jobs_table.c if c.name != "artifact"]
        has = jobs_table.c.artifact.is_not(None).label("has_artifact")
        query = (
            sa.select(*columns, has)
            .where(jobs_table.c.owner == owner)
            .order_by(jobs_table.c.created.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [Job(**{**dict(r), "has_artifact": bool(r["has_artifact"])}) for r in rows]

    def close(self) -> None:
        """Stop taking jobs; running ones finish."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _save(self, job: Job, **changes: Any) -> None:
        with self._engine.begin() as conn:
            conn.execute(jobs_table.update().where(jobs_table.c.id == job.id).values(**changes))
            if "status" in changes and self._record is not None:
                self._record(conn, replace(job, **changes))
        for key, value in changes.items():  # committed
            setattr(job, key, value)

    def _run(self, job: Job, work: Work) -> None:
        def progress(stage: str, fraction: float) -> None:
            fraction = max(job.progress, min(1.0, fraction))
            if stage != job.stage or fraction - job.progress >= _STEP:
                self._save(job, stage=stage, progress=fraction)

        try:
            self._save(job, status="running")
            result, artifact = work(progress)
            self._save(job, status="done", progress=1.0, result=_json(result), artifact=artifact)
        except Exception as exc:  # the job's failure is its result; the worker lives on
            status = getattr(exc, "status", 500)
            detail = public_detail(exc, status)  # the job's owner never sees driver text
            error = {"status": status, "title": type(exc).__name__, "detail": detail}
            self._save(job, status="failed", error=error)
        finally:
            with self._lock:
                self._pending -= 1


def _json(value: dict[str, Any]) -> dict[str, Any]:
    """Strict JSON (NaN and infinities become null), as PostgreSQL's JSON type requires."""
    text = json.dumps(value, default=str)
    return dict(json.loads(text, parse_constant=lambda _constant: None))


def _row(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "owner": job.owner,
        "kind": job.kind,
        "created": job.created,
        "status": job.status,
        "stage": job.stage,
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
        "artifact": job.artifact,
    }


def model_response(artifact: bytes, sha256: str) -> Any:
    """The HTTP answer carrying a job's model file (skops), its hash in a header."""
    from fastapi import Response

    return Response(
        artifact,
        media_type="application/octet-stream",
        headers={
            "Matgate-Model-Sha256": sha256,
            "Content-Disposition": 'attachment; filename="model.skops"',
        },
    )
