"""Background jobs of a node (compute-to-data training): bounded, off the event loop, observable."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import NotFound, ServiceUnavailable

__all__ = ["Job", "Jobs"]

Progress = Callable[[str, float], None]
Work = Callable[[Progress], tuple[dict[str, Any], bytes | None]]


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
            "artifact": self.artifact is not None,
        }


class Jobs:
    """A small pool of workers and the jobs they ran (kept in memory, newest ``keep`` of them)."""

    def __init__(self, workers: int = 1, keep: int = 100) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="matgate-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._keep = keep
        self._pending = 0
        self._limit = workers * 4

    def submit(self, owner: str, kind: str, work: Work) -> Job:
        """Queue ``work``; it reports progress and returns (result, artifact bytes)."""
        with self._lock:
            if self._pending >= self._limit:
                raise ServiceUnavailable("the node's job queue is full; try again later")
            job = Job(uuid.uuid4().hex, owner, kind, dt.datetime.now(dt.UTC).isoformat())
            self._jobs[job.id] = job
            self._pending += 1
            for old in list(self._jobs)[: max(0, len(self._jobs) - self._keep)]:
                if self._jobs[old].status in ("done", "failed"):
                    del self._jobs[old]
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str, owner: str) -> Job:
        """The job, if ``owner`` started it (anyone else gets the same 404 as for no job)."""
        job = self._jobs.get(job_id)
        if job is None or job.owner != owner:
            raise NotFound(f"no job {job_id!r}")
        return job

    def close(self) -> None:
        """Stop taking jobs; running ones finish."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: Job, work: Work) -> None:
        def progress(stage: str, fraction: float) -> None:
            job.stage, job.progress = stage, max(job.progress, min(1.0, fraction))

        job.status = "running"
        try:
            job.result, job.artifact = work(progress)
            job.status, job.progress = "done", 1.0
        except Exception as exc:  # the job's failure is its result; the worker lives on
            status = getattr(exc, "status", 500)
            job.error = {"status": status, "title": type(exc).__name__, "detail": str(exc)}
            job.status = "failed"
        finally:
            with self._lock:
                self._pending -= 1
