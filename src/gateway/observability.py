"""Request ids, structured logs and Prometheus metrics, as one small ASGI middleware."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "Metrics",
    "ObservabilityMiddleware",
    "claim_request_id",
    "configure_logging",
    "request_id_var",
]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# The request's id until the first manifest of the request takes it (a list: shared with the
# worker threads of the request, whose contexts are copies); later manifests get ids of their own.
_unclaimed: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "unclaimed_request_id", default=None
)
_supplied: contextvars.ContextVar[bool] = contextvars.ContextVar("id_supplied", default=False)
WELL_FORMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def claim_request_id(taken: Callable[[str], bool] | None = None) -> str:
    """The id for a manifest made while serving this request: the request's own id the first
    time, a fresh one after that (or outside a request). A client-supplied id that ``taken``
    says is already used raises Conflict: one id must name one manifest."""
    pending = _unclaimed.get()
    try:
        rid = pending.pop() if pending else None
    except IndexError:  # another thread of the request took it first
        rid = None
    if rid is None:
        return uuid.uuid4().hex
    if _supplied.get() and taken is not None and taken(rid):
        from gateway.errors import Conflict

        raise Conflict(f"X-Request-Id {rid!r} already names a slice; send a new one, or none")
    return rid


log = logging.getLogger("matgate.http")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str, as_json: bool) -> None:
    """Log to stderr, as JSON lines if ``as_json``."""
    handler = logging.StreamHandler()
    if as_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("matgate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class Metrics:
    """The node's Prometheus metrics, on a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "matgate_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "matgate_http_request_seconds",
            "Time to the response's first byte",
            ["method", "route"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "matgate_decisions", "Access decisions", ["action", "result"], registry=self.registry
        )
        self.rows = Counter(
            "matgate_slice_rows", "Rows delivered in slices", registry=self.registry
        )
        self.witness_refusals = Counter(
            "matgate_witness_refusals",
            "Peer checkpoints refused as inconsistent (fork, rollback, bad proof): an alarm",
            ["origin", "reason"],
            registry=self.registry,
        )


class ObservabilityMiddleware:
    """Gives each request one id, logs it and counts it.

    The id is the caller's ``X-Request-Id`` when it is well formed (letters, digits, ``.``,
    ``_``, ``-``; at most 64), else a new one; it is sent back as both ``X-Request-Id`` and
    ``Matgate-Request-Id``, is the ``request_id`` of the request's log lines and audit entries,
    and the id of the first manifest the request makes.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        supplied = WELL_FORMED.match(incoming) is not None
        rid = incoming if supplied else uuid.uuid4().hex
        token = request_id_var.set(rid)
        tokens = (_unclaimed.set([rid]), _supplied.set(supplied))
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                ours = [(b"x-request-id", rid.encode())]
                if not any(k.lower() == b"matgate-request-id" for k, _ in message["headers"]):
                    ours.append((b"matgate-request-id", rid.encode()))
                message["headers"] = [*message["headers"], *ours]
                route = _route(scope)
                self.metrics.latency.labels(scope["method"], route).observe(
                    time.perf_counter() - start
                )
                self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "fields": {
                        "status": status,
                        "ms": round((time.perf_counter() - start) * 1000, 2),
                    }
                },
            )
            request_id_var.reset(token)
            _unclaimed.reset(tokens[0])
            _supplied.reset(tokens[1])


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", "unmatched")
