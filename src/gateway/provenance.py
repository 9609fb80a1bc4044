"""Manifests of the slices this node released, signed when complete, served at /provenance.

They are kept by the audit room's lineage store (which later links them to training runs); this
module signs them with the node's key and hands them to whoever may read them. When the node
pushes OpenLineage events, each release is a run: START when the slice opens, COMPLETE or FAIL
when its manifest is completed; a registered training run is a run of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from openlineage.client.event_v2 import RunState

from audit.lineage import Lineage
from audit.log import Also
from audit.provenance import LineageEmitter, run_events, slice_event
from gateway.errors import NotFound

__all__ = ["ProvenanceStore"]

Signer = Callable[[dict[str, Any]], str]


class ProvenanceStore:
    """Signed manifests by id, and their run events for an OpenLineage endpoint."""

    def __init__(
        self, lineage: Lineage, sign: Signer, emitter: LineageEmitter | None = None
    ) -> None:
        self._lineage = lineage
        self._sign = sign
        self._emitter = emitter

    def sign(self, manifest: dict[str, Any]) -> str:
        """The node's signature (compact JWS) over ``manifest``, without keeping it."""
        return self._sign(manifest)

    def started(self, manifest: Mapping[str, Any]) -> None:
        """A slice opened: its START event (when events are pushed)."""
        if self._emitter is not None:
            self._emitter.emit(slice_event(manifest, RunState.START, time=manifest.get("time")))

    def keeper(self, manifest: Mapping[str, Any], token: str) -> Also:
        """The write that keeps a final manifest and its signature (``token``), for the
        transaction of the audit entry that records the slice's delivery."""
        return self._lineage.slice_writer(manifest, token)

    def completed(self, manifest: Mapping[str, Any], *, error: str = "") -> None:
        """A slice's final manifest is kept: its COMPLETE or FAIL event (when events are pushed)."""
        if self._emitter is not None:
            state = RunState.FAIL if error else RunState.COMPLETE
            self._emitter.emit(slice_event(manifest, state, error=error))

    def trained(self, run: Mapping[str, Any], manifests: Iterable[Mapping[str, Any]]) -> None:
        """A training run was registered over ``manifests``: its START and COMPLETE events."""
        if self._emitter is not None:
            for event in run_events(self._lineage.node, run, manifests):
                self._emitter.emit(event)

    def released_to(self, principal_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The manifests of the slices released to a principal, newest first, each with its
        signature checked (``signature_ok``, ``problem``)."""
        return self._lineage.released_to(principal_id, limit)

    def get(self, manifest_id: str) -> dict[str, Any]:
        """``{"manifest": ..., "signature": ...}``; NotFound if this node released no such slice."""
        found = self._lineage.slice(manifest_id)
        if found is None:
            raise NotFound(f"no manifest {manifest_id!r}")
        manifest, token = found
        return {"manifest": manifest, "signature": token}
