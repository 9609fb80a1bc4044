"""Problem documents for clients, and the rule that keeps driver and database text out of them.

Every error answer is an RFC 9457 problem carrying the request's id, so an operator can find
the full story in the node's log. Messages written by matgate (a filter's syntax error, an
unknown column) are useful and safe and reach the client as they are; text that came from a
database driver, Arrow or the operating system (SQL, table and file names, server versions,
connection strings) is logged with the request id and replaced by a generic detail.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from starlette.responses import JSONResponse

from connectors.errors import StoreError
from gateway.errors import MatgateError, for_status
from gateway.observability import request_id_var

__all__ = [
    "PROBLEM",
    "from_foreign",
    "generic",
    "problem_response",
    "public_detail",
    "speaks_for_a_driver",
]

PROBLEM = "application/problem+json"
log = logging.getLogger("matgate.errors")

# Packages whose exception text may carry SQL, schema, paths or server internals.
_DRIVERS = frozenset(
    {
        "adbc_driver_manager",
        "adbc_driver_postgresql",
        "adbc_driver_sqlite",
        "asyncpg",
        "duckdb",
        "mariadb",
        "MySQLdb",
        "psycopg",
        "psycopg2",
        "pyarrow",
        "pymysql",
        "redis",
        "sqlalchemy",
        "sqlite3",
        "_sqlite3",
    }
)
_OURS = frozenset({"audit", "connectors", "gateway", "policies", "training"})
_GENERIC = {
    500: "the node failed to answer this request; the operator can find it by its request id",
    503: "a store or the audit log failed; nothing was released. The operator can find the "
    "cause in the node's log by the request id",
}


def _chain(exc: BaseException, *, unsuppressed: bool = False) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (cycles cut); with
    ``unsuppressed``, also those hidden by ``raise ... from None``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        hidden = current.__suppress_context__ and not unsuppressed
        current = current.__cause__ or (None if hidden else current.__context__)


def _root(exc: BaseException) -> str:
    return type(exc).__module__.split(".", 1)[0]


def speaks_for_a_driver(exc: BaseException) -> bool:
    """True if ``exc`` may carry a driver's, Arrow's or the operating system's words.

    A store's failure is trusted only when everything it came from is matgate's own (a refused
    destination, say), even what ``from None`` hid: drivers raise anything, builtins included.
    Any other error is suspect when its chain holds a driver, Arrow or operating-system error.
    """
    if any(isinstance(e, StoreError) for e in _chain(exc)):
        return any(_root(e) not in _OURS for e in _chain(exc, unsuppressed=True))
    return any(_root(e) in _DRIVERS or isinstance(e, OSError) for e in _chain(exc))


def generic(status: int) -> str:
    """The detail a client gets instead of text that could leak internals."""
    if status in _GENERIC:
        return _GENERIC[status]
    if status >= 500:
        return _GENERIC[503]
    return "a store refused this request; the operator can find why by its request id"


def public_detail(exc: BaseException, status: int) -> str:
    """The detail a client may see for ``exc``; driver text is logged and replaced."""
    text = getattr(exc, "detail", None) or str(exc)
    if not speaks_for_a_driver(exc):
        return str(text)
    log.error(
        "request %s: %s answered as a generic %s: %s",
        request_id_var.get(),
        type(exc).__name__,
        status,
        text,
        exc_info=exc,
    )
    return generic(status)


def from_foreign(exc: BaseException, status: int) -> MatgateError:
    """The MatgateError a client gets for ``exc``, with driver text kept out."""
    extra = getattr(exc, "extra", {}) if isinstance(exc, MatgateError) else {}
    detail = public_detail(exc, status)
    if detail == generic(status):
        extra = {}
    return for_status(status, detail, **extra)


def problem_response(
    error: MatgateError, instance: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """``error`` as a problem+json response carrying the request id."""
    body = error.to_problem(instance=instance)
    body["request_id"] = request_id_var.get()
    if error.status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM, headers=headers)
