"""The app factory: ``create_app(settings)`` builds a node and the FastAPI app that serves it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import openapi
from gateway.config import ConfigError, NodeConfig, load_config
from gateway.errors import BadRequest, MatgateError, ServiceUnavailable, Unprocessable, for_status
from gateway.limits import BodyLimitMiddleware
from gateway.memory import settle
from gateway.node import Node
from gateway.observability import (
    Metrics,
    ObservabilityMiddleware,
    configure_logging,
)
from gateway.problems import from_foreign, problem_response, speaks_for_a_driver
from gateway.routes import routers
from gateway.settings import Settings

__all__ = ["create_app", "create_served_app", "prepare_workers"]

log = logging.getLogger("matgate.app")
DESCRIPTION = """Governed access to materials research data.

Every error answer is an RFC 9457 problem document (`application/problem+json`, the `Problem`
schema) carrying the request's id. Each operation lists the errors it can answer; on every path,
a request whose `Content-Length` is malformed (400) or that carries a body where none is read,
or a larger one than the route allows (413), is refused before it reaches the operation.
"""


def create_app(
    settings: Settings | None = None,
    config: NodeConfig | None = None,
    *,
    clock: Callable[[], dt.datetime] | None = None,
) -> FastAPI:
    """A node for ``settings`` (its config from ``config`` or the file ``settings.config``)."""
    settings = settings or Settings()
    if config is None:
        if settings.config is None:
            raise ValueError("a node needs a config: pass one or set MATGATE_CONFIG")
        config = load_config(settings.config)
    configure_logging(settings.log_level, settings.log_json)
    node = Node(settings, config, clock=clock)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.metrics_port is not None:
            metrics.start_listener(settings.metrics_host, settings.metrics_port)
        task = asyncio.create_task(_checkpoints(node))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            metrics.stop_listener()
            _flush_denials(node, everything=True)
            await node.peers.aclose()  # the kept-alive connections belong to this event loop
            node.close()

    app = FastAPI(
        title=f"matgate node: {node.title}",
        version=version("matgate"),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by gateway.routes.docs, from the node's own assets
        redoc_url=None,
    )
    app.state.node = node
    app.state.metrics = metrics
    refusals = metrics.witness_refusals
    node.witness.on_alarm = lambda origin, reason: refusals.labels(origin, reason).inc()
    # Outermost first: ids and logs, then body limits, all before authentication and parsing.
    app.add_middleware(
        BodyLimitMiddleware,
        default=settings.max_body_bytes,
        limits=settings.body_limits,
    )
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    for router in routers:
        app.include_router(router)
    openapi.install(app)
    _handlers(app)
    return app


def create_served_app() -> FastAPI:
    """``create_app`` for a process that serves until it exits (``matgate serve`` and each of
    its workers): its start-up state is then kept out of garbage collections (``settle``)."""
    app = create_app()
    settle()
    return app


def prepare_workers(settings: Settings, workers: int) -> dict[str, str]:
    """Check that a node can run as ``workers`` processes, start it once (migrations, keys,
    catalog and policy seeds, so that the workers find everything made), and return the
    environment that gives each worker the same settings.

    Workers are replicas of the node on one machine: they append to one audit log and read one
    policy version (``Governance.sync``), through the node database. What a process holds in
    memory alone is refused rather than silently split: peers' assertions need the replay cache
    shared through Redis (``policy_sync_url``), and the metrics listener takes one port."""
    if settings.config is None:
        raise ValueError("a node needs a config: pass one or set MATGATE_CONFIG")
    config = load_config(settings.config)
    if config.peers and not settings.policy_sync_url:
        raise ConfigError(
            f"--workers {workers}: this node has peers, whose assertions are good for one use "
            "only; the workers must share what they have seen: set MATGATE_POLICY_SYNC_URL "
            "(Redis)"
        )
    if settings.metrics_port is not None:
        raise ConfigError(
            f"--workers {workers}: MATGATE_METRICS_PORT is one listener of one process; "
            "scrape each worker's /metrics with the metrics token instead"
        )
    Node(settings, config).close()
    env = {"MATGATE_CONFIG": str(settings.config.resolve())}
    env["MATGATE_DATA_DIR"] = str(settings.data_dir.resolve())
    env["MATGATE_HOST"] = settings.host
    env["MATGATE_PORT"] = str(settings.port)
    if settings.database_url:
        env["MATGATE_DATABASE_URL"] = settings.database_url
    return env


async def _checkpoints(node: Node) -> None:
    """Sign the audit log's tree head at the configured interval, and have the peers witness
    it (each round bounded by the interval, at most 5 s); record suppressed-denial summaries."""
    every = node.settings.audit_checkpoint_seconds
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(_flush_denials, node)  # denial windows that closed meanwhile
        try:
            cp = await asyncio.to_thread(node.audit.checkpoint_if_due, every)
            if len(node.peers) == 0:
                continue
            cp = cp or await asyncio.to_thread(node.audit.latest_checkpoint)
            if cp is None:
                continue
            have = await asyncio.to_thread(node.notary.cosignatures, cp)
            if len(have) < len(node.peers):
                await node.cosigners.round(cp, deadline=min(every, 5.0))
        except Exception:
            log.exception("audit checkpoint or witnessing failed")


def _flush_denials(node: Node, *, everything: bool = False) -> None:
    """Record the summaries of suppressed denials; a failure is logged (their counts are lost)."""
    from gateway.access import flush_denials

    try:
        flush_denials(node, everything=everything)
    except Exception:
        log.exception("recording suppressed denials failed; their counts are lost")


def _problem(request: Request, error: MatgateError) -> JSONResponse:
    headers = None
    if error.status == 429 and "retry_after" in error.extra:
        headers = {"Retry-After": str(int(error.extra["retry_after"]))}
    return problem_response(error, request.url.path, headers)


def _from_room(exc: Exception) -> MatgateError:
    """Errors of the other rooms carry a status and a detail: translate them here, once."""
    return from_foreign(exc, getattr(exc, "status", 500))


def _handlers(app: FastAPI) -> None:
    from audit.errors import AuditError
    from connectors.errors import (
        ConnectorError,
        FilterError,
        QueryError,
        SchemaMismatchError,
        TableError,
    )
    from policies.errors import PolicyError

    @app.exception_handler(MatgateError)
    async def _matgate(request: Request, exc: MatgateError) -> JSONResponse:
        if speaks_for_a_driver(exc):
            return _problem(request, from_foreign(exc, exc.status))
        return _problem(request, exc)

    @app.exception_handler(PolicyError)
    @app.exception_handler(AuditError)
    async def _room(request: Request, exc: Exception) -> JSONResponse:
        return _problem(request, _from_room(exc))

    @app.exception_handler(ConnectorError)
    async def _connector(request: Request, exc: ConnectorError) -> JSONResponse:
        if isinstance(exc, FilterError):
            return _problem(request, BadRequest(str(exc), position=exc.position))
        if isinstance(exc, QueryError):
            return _problem(request, BadRequest(str(exc)))
        if isinstance(exc, TableError | SchemaMismatchError):
            return _problem(request, from_foreign(exc, Unprocessable.status))
        # A store's failure mostly speaks the driver's language (SQL, schema, server): kept
        # in the log under the request id, unless all of it is matgate's own words.
        return _problem(request, from_foreign(exc, ServiceUnavailable.status))

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(ValidationError)
    async def _invalid(request: Request, exc: Any) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        return _problem(request, Unprocessable(summary or "invalid request", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _problem(request, for_status(exc.status_code, str(exc.detail)))
