"""Manifests of the slices this node released, signed when complete, served at /provenance.

They are kept by the audit room's lineage store (which later links them to training runs); this
module signs them with the node's key and hands them to whoever may read them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from audit.lineage import Lineage
from gateway.errors import NotFound

__all__ = ["ProvenanceStore"]

Signer = Callable[[dict[str, Any]], str]


class ProvenanceStore:
    """Signed manifests by id."""

    def __init__(self, lineage: Lineage, sign: Signer) -> None:
        self._lineage = lineage
        self._sign = sign

    def complete(self, manifest: dict[str, Any]) -> str:
        """Sign the final manifest of a slice and keep it; return the signature (compact JWS)."""
        token = self._sign(manifest)
        self._lineage.record_slice(token)
        return token

    def get(self, manifest_id: str) -> dict[str, Any]:
        """``{"manifest": ..., "signature": ...}``; NotFound if this node released no such slice."""
        found = self._lineage.slice(manifest_id)
        if found is None:
            raise NotFound(f"no manifest {manifest_id!r}")
        manifest, token = found
        return {"manifest": manifest, "signature": token}
