"""What a node holds for serving the models it keeps: per-principal budgets and loaded models.

Both live in this process (a replica counts its own calls; the budget a principal has across
replicas is their number times the configured one).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.errors import MatgateError, TooManyRequests

if TYPE_CHECKING:
    from gateway.jobs import Job, Jobs
    from training.models import ForwardModel
    from training.privacy import Guard

__all__ = ["Budgets", "KeptModels"]


class Budgets:
    """Per principal: calls and rows in a fixed window; over either, 429 until the window ends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_principals: int = 100_000):
        self._clock = clock
        self._max = max_principals
        self._used: dict[str, tuple[float, int, int]] = {}
        self._lock = threading.Lock()

    def charge(
        self, principal: str, rows: int, *, calls: int, limit: int, window: float
    ) -> dict[str, Any]:
        """Count one call of ``rows`` rows, or raise ``TooManyRequests`` (nothing is counted)."""
        now = self._clock()
        with self._lock:
            start, used_calls, used_rows = self._used.get(principal, (now, 0, 0))
            if now - start >= window:
                start, used_calls, used_rows = now, 0, 0
            if used_calls + 1 > calls or used_rows + rows > limit:
                wait = max(1, math.ceil(start + window - now))
                spent = "calls" if used_calls + 1 > calls else "rows"
                raise TooManyRequests(
                    f"your budget of {calls} calls and {limit} rows per {window:g} s for models "
                    f"kept on this node is spent ({spent}); try again in {wait} s",
                    retry_after=wait,
                )
            if principal not in self._used and len(self._used) >= self._max:
                self._used.pop(next(iter(self._used)))
            self._used[principal] = (start, used_calls + 1, used_rows + rows)
            return {
                "calls_left": calls - used_calls - 1,
                "rows_left": limit - used_rows - rows,
                "window_seconds": window,
                "resets_in": max(0, math.ceil(start + window - now)),
            }


class KeptModels:
    """A few models loaded from the node database, most recently used first."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._loaded: OrderedDict[str, tuple[ForwardModel, Guard]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, jobs: Jobs, owner: str, job: Job) -> tuple[ForwardModel, Guard]:
        """The job's model and guard (its file checked against the hash the job recorded)."""
        from training.store import loads_kept, loads_model

        with self._lock:
            if job.id in self._loaded:
                self._loaded.move_to_end(job.id)
                return self._loaded[job.id]
        stored = jobs.get(job.id, owner, artifact=True).artifact
        assert stored is not None  # finished() checked it
        model_file, guard = loads_kept(stored)
        if hashlib.sha256(model_file).hexdigest() != (job.result or {}).get("model_sha256"):
            raise MatgateError(f"the model of job {job.id} does not match its recorded hash")
        found = (loads_model(model_file), guard)
        with self._lock:
            self._loaded[job.id] = found
            while len(self._loaded) > self._size:
                self._loaded.popitem(last=False)
        return found
