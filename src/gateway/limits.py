"""Request bodies bounded before anything reads them: an ASGI middleware with a limit per route.

Runs outside authentication and body parsing, so a request without a token cannot make the node
buffer a body larger than its route allows. A declared ``Content-Length`` above the limit is
answered at once, without calling the app; a body without one (chunked) or with one that lies
is counted as it streams in, and the read that crosses the limit fails with 413. The answer is
a problem document either way.

FastAPI's own ``max_body_size`` is not used: it answers in plain text on some paths, and its
per-route limits are fixed when the routers are imported, whereas a node's limits come from its
settings (``MATGATE_MAX_BODY_BYTES``, ``MATGATE_BODY_LIMITS``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import BadRequest, TooLarge
from gateway.problems import problem_response

__all__ = ["ROUTE_LIMITS", "BodyLimitMiddleware", "BodyTooLarge"]

KIB = 1024
# Code defaults per route template; the settings' ``body_limits`` override them, and paths that
# match no template get the settings' ``max_body_bytes``. Methods that carry no body get none.
# Templates are matched here, on the raw path, so that the limit holds before any routing.
ROUTE_LIMITS: Mapping[str, int] = {
    "/datasets/{institution}/{name}/slice": 64 * KIB,
    "/datasets/{institution}/{name}/train": 64 * KIB,
    "/explain": 64 * KIB,
    "/federation/query": 64 * KIB,
    "/catalog": 1024 * KIB,
    "/policies/{domain}": 1024 * KIB,
    "/policies/{domain}/dry-run": 1024 * KIB,
    "/lineage/runs": 4096 * KIB,
}
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class BodyTooLarge(HTTPException):
    """The body crossed its route's limit (an HTTPException, so FastAPI's body reader re-raises
    it unchanged instead of calling it a parse error)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds this route's limit of {limit} bytes")
        self.limit = limit


class BodyLimitMiddleware:
    """Refuses bodies larger than their route's limit, while they stream in."""

    def __init__(
        self, app: ASGIApp, *, default: int, limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.default = default
        merged = {**ROUTE_LIMITS, **(limits or {})}
        self.limits: list[tuple[re.Pattern[str], int]] = [
            (compile_path(template)[0], limit) for template, limit in merged.items()
        ]

    def limit_for(self, scope: Scope) -> int:
        """The body limit of the route ``scope`` addresses (0 for methods without a body)."""
        if scope["method"] in _BODILESS:
            return 0
        path = scope["path"]
        for pattern, limit in self.limits:
            if pattern.match(path):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        lengths = [v for k, v in scope["headers"] if k == b"content-length"]
        if lengths:
            text = lengths[0].decode("latin-1").strip()
            if len(lengths) > 1 or not text.isdigit() or len(text) > 19:
                await _answer(scope, send, BadRequest("a bad Content-Length header"))
                return
            if int(text) > limit:
                await _answer(scope, send, TooLarge(BodyTooLarge(limit).detail, limit=limit))
                return
        received = 0
        started = False

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded, watched)
        except BodyTooLarge as exc:
            if started:
                raise
            await _answer(scope, send, TooLarge(exc.detail, limit=limit))


async def _answer(scope: Scope, send: Send, error: BadRequest | TooLarge) -> None:
    response = problem_response(error, scope["path"], headers={"Connection": "close"})

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, nothing, send)
