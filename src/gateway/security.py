"""Authentication on a node: validate, and record failures without flooding the log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.events import AuthenticationFailed
from gateway.access import record
from gateway.errors import Unauthorized
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = ["authenticate"]


def authenticate(node: Node, token: str, *, source: str) -> Principal:
    """The principal of ``token``; failures are recorded, rate-limited per source."""
    try:
        return node.auth.authenticate(token)
    except Unauthorized as exc:
        suppressed = node.auth_failures.admit(source)
        if suppressed is not None:
            record(
                node,
                AuthenticationFailed(
                    node=node.institution, source=source, reason=exc.detail, suppressed=suppressed
                ),
            )
        raise
