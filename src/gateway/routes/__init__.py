"""The HTTP routes, one module per resource; each route parses, calls one service, returns."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.console import router as console_router
from gateway.routes import (
    audit,
    catalog,
    federation,
    health,
    policies,
    provenance,
    slices,
    training,
)

__all__ = ["routers"]

routers: tuple[APIRouter, ...] = (
    health.router,
    catalog.router,
    slices.router,
    provenance.router,
    policies.router,
    audit.router,
    training.router,
    federation.router,
    console_router,
)
