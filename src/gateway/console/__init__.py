"""The web console at ``/console``: server-rendered pages over the node's service functions.

Pages decide nothing: every answer comes from the same service functions as the API. Templates
auto-escape, every asset is served by the node, and each page carries a strict CSP.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.console import auditor, auth, ml, pages, register, steward

__all__ = ["router"]

router = APIRouter()
for _part in (
    pages.router,
    auth.router,
    steward.router,
    register.router,
    auditor.router,
    ml.router,
):
    router.include_router(_part)
