"""Authentication on a node: validate, and record failures without flooding the log."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from audit.errors import AuditUnavailable
from audit.events import AuthenticationFailed
from gateway.errors import ServiceUnavailable, Unauthorized
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = ["authenticate"]

WINDOW_SECONDS = 60.0
_lock = threading.Lock()
_recent: dict[tuple[str, str], tuple[float, int]] = {}


def authenticate(node: Node, token: str, *, source: str) -> Principal:
    """The principal of ``token``; a failure is recorded once per source and minute."""
    try:
        return node.auth.authenticate(token)
    except Unauthorized as exc:
        _record_failure(node, source, exc.detail)
        raise


def _record_failure(node: Node, source: str, reason: str) -> None:
    now = time.monotonic()
    key = (node.institution, source)
    with _lock:
        last, suppressed = _recent.get(key, (0.0, 0))
        if now - last < WINDOW_SECONDS:
            _recent[key] = (last, suppressed + 1)
            return
        _recent[key] = (now, 0)
        if len(_recent) > 10_000:  # bounded memory under a spray of sources
            _recent.clear()
    try:
        node.audit.append(
            AuthenticationFailed(
                node=node.institution, source=source, reason=reason, suppressed=suppressed
            )
        )
    except AuditUnavailable as exc:
        raise ServiceUnavailable("the audit log cannot be written") from exc
