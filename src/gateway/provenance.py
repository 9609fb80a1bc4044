"""Manifests of the slices this node released, signed when complete, served at /provenance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from gateway.db import provenance_table
from gateway.errors import NotFound

__all__ = ["ProvenanceStore"]

Signer = Callable[[dict[str, Any]], str]


class ProvenanceStore:
    """Manifests by request id: recorded when a slice opens, completed and signed when it ends."""

    def __init__(self, engine: sa.Engine, sign: Signer) -> None:
        self._engine = engine
        self._sign = sign

    def begin(self, manifest: dict[str, Any]) -> None:
        """Record the manifest of a slice that is about to stream."""
        with self._engine.begin() as conn:
            conn.execute(
                provenance_table.insert().values(
                    request_id=manifest["id"],
                    dataset_id=manifest["dataset"]["id"],
                    principal=manifest["principal"]["id"],
                    created_at=dt.datetime.now(dt.UTC),
                    complete=False,
                    manifest=manifest,
                    signature=None,
                )
            )

    def complete(self, manifest: dict[str, Any]) -> str:
        """Store the final manifest with its signature (a compact JWS); return the signature."""
        signature = self._sign(manifest)
        with self._engine.begin() as conn:
            conn.execute(
                provenance_table.update()
                .where(provenance_table.c.request_id == manifest["id"])
                .values(
                    complete=bool(manifest.get("complete")), manifest=manifest, signature=signature
                )
            )
        return signature

    def get(self, request_id: str) -> dict[str, Any]:
        """``{"manifest": ..., "signature": ...}`` for ``request_id``; NotFound if unknown."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(provenance_table.c.manifest, provenance_table.c.signature).where(
                    provenance_table.c.request_id == request_id
                )
            ).first()
        if row is None:
            raise NotFound(f"no manifest {request_id!r}")
        return {"manifest": row.manifest, "signature": row.signature}
