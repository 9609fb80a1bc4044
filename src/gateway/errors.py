"""The errors matgate raises, on the node and in the client alike.

Free of framework imports, so the client SDK raises the same classes that the node's handlers
render as RFC 9457 problem documents (``application/problem+json``)::

    MatgateError                  500 (base)
    ├── BadRequest                400  bad filter, bad parameter
    ├── Unauthorized              401  missing, invalid or expired token
    ├── Forbidden                 403  the policy says no (with reasons)
    ├── NotFound                  404  no such thing, or one you may not discover
    ├── MethodNotAllowed          405
    ├── NotAcceptable             406  no representation in the media types asked for
    ├── Conflict                  409
    ├── Unprocessable             422  a well-formed request that cannot be applied
    ├── TooLarge                  413
    ├── TooManyRequests           429  a budget is spent (``retry_after`` seconds)
    ├── BadGateway                502  a peer answered wrongly
    ├── ServiceUnavailable        503  a store or the audit log cannot be reached
    └── GatewayTimeout            504  a peer did not answer in time
    IntegrityError                     client side: delivered content does not match its manifest
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadGateway",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "GatewayTimeout",
    "IntegrityError",
    "MatgateError",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "ServiceUnavailable",
    "TooLarge",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "for_status",
    "from_problem",
]

PROBLEM_BASE = "https://matgate.dev/problems/"


class MatgateError(Exception):
    """Base of every matgate error: an HTTP status, a short title and a detail."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def type(self) -> str:
        """The problem type URI."""
        return PROBLEM_BASE + type(self).__name__.lower()

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document."""
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(MatgateError):
    """The request is malformed: a bad filter, an unknown column, a bad parameter."""

    status = 400
    title = "Bad request"


class Unauthorized(MatgateError):
    """No valid credentials."""

    status = 401
    title = "Unauthorized"


class Forbidden(MatgateError):
    """Authenticated, but the policy does not allow it."""

    status = 403
    title = "Forbidden"


class NotFound(MatgateError):
    """No such resource, or one the principal may not discover."""

    status = 404
    title = "Not found"


class MethodNotAllowed(MatgateError):
    """The resource does not answer this method."""

    status = 405
    title = "Method not allowed"


class NotAcceptable(MatgateError):
    """None of the media types the request accepts can be served."""

    status = 406
    title = "Not acceptable"


class Conflict(MatgateError):
    """The resource exists already or changed meanwhile."""

    status = 409
    title = "Conflict"


class TooLarge(MatgateError):
    """The request or the answer exceeds a configured limit."""

    status = 413
    title = "Too large"


class Unprocessable(MatgateError):
    """Well-formed, but it cannot be applied (invalid policy, schema mismatch)."""

    status = 422
    title = "Unprocessable"


class TooManyRequests(MatgateError):
    """A budget is spent; ``retry_after`` (seconds) says when the next call is admitted."""

    status = 429
    title = "Too many requests"


class BadGateway(MatgateError):
    """A peer node answered with something invalid."""

    status = 502
    title = "Bad gateway"


class ServiceUnavailable(MatgateError):
    """A store or the audit log cannot be reached; nothing was released."""

    status = 503
    title = "Service unavailable"


class GatewayTimeout(MatgateError):
    """A peer node did not answer in time."""

    status = 504
    title = "Gateway timeout"


class IntegrityError(MatgateError):
    """Delivered content does not match its manifest (raised by the client)."""

    status = 502
    title = "Integrity check failed"


_BY_STATUS: dict[int, type[MatgateError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        Conflict,
        TooLarge,
        Unprocessable,
        TooManyRequests,
        BadGateway,
        ServiceUnavailable,
        GatewayTimeout,
    )
}


def for_status(status: int, detail: str, **extra: Any) -> MatgateError:
    """The error class of ``status`` (the base class for statuses without one)."""
    return _BY_STATUS.get(status, MatgateError)(detail, **extra)


def from_problem(status: int, body: dict[str, Any] | None) -> MatgateError:
    """Rebuild the error a node reported from its status and problem document."""
    body = body or {}
    extra = {k: v for k, v in body.items() if k not in ("type", "title", "status", "detail")}
    return for_status(status, str(body.get("detail") or f"HTTP {status}"), **extra)
