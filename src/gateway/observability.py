"""Request ids, structured logs and Prometheus metrics, as one small ASGI middleware.

The middleware is also the last line for errors nobody handled: it logs them with the request
id and answers a generic problem carrying that id, so no traceback or driver text reaches a
client. ``/metrics`` is for the node's auditors and operators, a scraper holding the configured
token, or a separate listener (``start_listener``), never for anyone who asks.
"""

from __future__ import annotations

import contextvars
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = [
    "Metrics",
    "ObservabilityMiddleware",
    "claim_request_id",
    "configure_logging",
    "exposition",
    "request_id_var",
    "scraper_token_matches",
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
        self._listener: Any = None

    def start_listener(self, host: str, port: int) -> int:
        """Serve the metrics on a listener of their own (a daemon thread); returns its port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._listener = server
        return int(server.server_address[1])

    def stop_listener(self) -> None:
        """Stop the separate listener, if one runs."""
        server, self._listener = self._listener, None
        if server is not None:
            server.shutdown()
            server.server_close()


def scraper_token_matches(presented: str, configured: str | None) -> bool:
    """Whether a bearer token is the configured scraper token (compared in constant time)."""
    if not configured:
        return False
    return hmac.compare_digest(presented.encode(), configured.encode())


def exposition(node: Node, metrics: Metrics, token: str | None, *, source: str) -> bytes:
    """The metrics in Prometheus text, for a scraper token, an auditor or an operator only."""
    from prometheus_client import generate_latest

    from gateway.errors import Forbidden, NotFound, Unauthorized
    from gateway.security import authenticate
    from policies.decisions import Action

    settings = node.settings
    if settings.metrics_port is not None:
        raise NotFound("metrics are served on the node's separate metrics listener")
    if not token:
        raise Unauthorized("a bearer token is required for /metrics")
    configured = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if not scraper_token_matches(token, configured):
        principal = authenticate(node, token, source=source)
        home = principal.institution == node.institution and principal.actor is None
        auditor = node.governance.check_domain(principal, node.institution, Action.AUDIT)
        if not (auditor.allowed or (home and "operator" in principal.roles)):
            raise Forbidden(f"metrics are for auditors and operators of {node.institution}")
    return generate_latest(metrics.registry)


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
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
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
        except Exception:
            # Nothing handled it: log it here, where the request id is still known, and answer
            # a problem without the error's text. After the first byte there is no answer left.
            log.exception(
                "request %s: unhandled error in %s %s", rid, scope["method"], scope["path"]
            )
            if started:
                raise
            await _internal_error(scope, send_with_id)
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


async def _internal_error(scope: Scope, send: Send) -> None:
    from gateway.errors import MatgateError
    from gateway.problems import generic, problem_response

    response = problem_response(MatgateError(generic(500)), scope["path"])

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, nothing, send)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", "unmatched")
