"""The Delta Sharing face (placeholder until its router lands)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

__all__ = ["router"]
