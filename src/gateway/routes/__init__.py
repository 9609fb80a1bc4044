"""The HTTP routes, one module per resource (and one package per face); each route parses, calls
one service, returns."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.console import router as console_router
from gateway.faces import delta_sharing, optimade
from gateway.routes import (
    audit,
    catalog,
    docs,
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
    optimade.router,
    delta_sharing.router,
    delta_sharing.admin_router,
    console_router,
    docs.router,
)
