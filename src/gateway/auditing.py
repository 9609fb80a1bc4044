"""Auditors' use cases: the log's tree heads and proofs, its events, exports, and lineage."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from typing import Any

from audit.bundle import verify_log, write_bundle
from audit.provenance import ProvFormat, prov_document, serialize_prov, to_openlineage, to_prov_json
from audit.search import EventFilter
from gateway import witnessing
from gateway.errors import BadRequest, Forbidden
from gateway.node import Node
from gateway.reports import dataset_report, witnessed_checkpoint
from gateway.schemas import RunBody
from gateway.witness import Answer
from policies.decisions import Action
from policies.principals import Principal

__all__ = [
    "add_checkpoint",
    "checkpoint",
    "consistency",
    "events",
    "export",
    "inclusion",
    "lineage",
    "lineage_prov",
    "register_run",
    "report",
    "verify",
    "witness_info",
]


def _ensure_auditor(node: Node, principal: Principal) -> None:
    decision = node.governance.check_domain(principal, node.institution, Action.AUDIT)
    if not decision.allowed:
        reasons = [*decision.reasons, *principal.notes]
        raise Forbidden("; ".join(reasons) or f"not an auditor of {node.institution}")


def checkpoint(node: Node) -> dict[str, Any]:
    """The signed tree head of the log now (signed on demand if the log grew), with its note."""
    return witnessing.checkpoint_view(node.audit, node.notary)


def witness_info(node: Node) -> dict[str, Any]:
    """This node's witness identity and what it last cosigned for each peer."""
    return witnessing.witness_info(node.witness, node.peers)


async def add_checkpoint(node: Node, body: bytes) -> Answer:
    """A peer log asks this node to witness its checkpoint."""
    return await witnessing.add_checkpoint(node.witness, node.peers, node.service, body)


def inclusion(node: Node, index: int, size: int | None) -> dict[str, Any]:
    """Proof that entry ``index`` is in the tree of ``size`` entries."""
    return node.audit.inclusion_proof(index, size).to_dict()


def consistency(node: Node, first: int, second: int | None) -> dict[str, Any]:
    """Proof that the log of ``first`` entries is a prefix of the log of ``second``."""
    return node.audit.consistency_proof(first, second).to_dict()


def events(
    node: Node,
    principal: Principal,
    filters: EventFilter,
    cursor: str | None,
    limit: int,
    *,
    newest_first: bool = False,
) -> dict[str, Any]:
    """A page of this domain's events (auditors), oldest or newest first."""
    _ensure_auditor(node, principal)
    try:
        page = node.audit.events(filters, cursor=cursor, limit=limit, newest_first=newest_first)
        return page.to_dict()
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def export(node: Node, principal: Principal, filters: EventFilter, fmt: str) -> Iterator[bytes]:
    """The matching events as JSON lines or CSV, spooled to disk so memory stays flat."""
    _ensure_auditor(node, principal)
    # newline="": CSV cells keep their carriage returns, the writer's line ends stay as written
    spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
        max_size=8 << 20, mode="w+t", encoding="utf-8", newline=""
    )
    node.audit.export(spool, fmt, filters)
    spool.seek(0)
    return _chunks(spool)


def bundle(node: Node, principal: Principal) -> Iterator[bytes]:
    """The whole log with its checkpoints and keys, for offline verification."""
    _ensure_auditor(node, principal)
    head = witnessed_checkpoint(node)  # the copy's last checkpoint, cosigned if peers answer
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+b")  # noqa: SIM115
    write_bundle(node.audit, spool, node.notary, head)
    spool.seek(0)
    return _chunks(spool)


def _chunks(spool: Any) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(1 << 20):
            yield chunk.encode() if isinstance(chunk, str) else chunk


def verify(node: Node, principal: Principal) -> dict[str, Any]:
    """Verify the live log against its checkpoints (auditors)."""
    _ensure_auditor(node, principal)
    return verify_log(node.audit, notary=node.notary).to_dict()


def report(
    node: Node,
    principal: Principal,
    dataset: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> dict[str, Any]:
    """Where did ``dataset`` go: its entries and models with proofs (auditors)."""
    _ensure_auditor(node, principal)
    try:  # the same bounds as the event queries: times no entry can have are refused
        EventFilter(since=since, until=until)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    since, until = _aware(since), _aware(until)
    if since is not None and until is not None and since >= until:
        raise BadRequest("since must be before until")
    return dataset_report(node, dataset, since, until)


def _aware(when: dt.datetime | None) -> dt.datetime | None:
    """A time without a zone is taken as UTC (so times compare)."""
    return when.replace(tzinfo=dt.UTC) if when is not None and when.tzinfo is None else when


def register_run(node: Node, principal: Principal, body: RunBody) -> dict[str, Any]:
    """Record a training run over slices the caller received, and the model it produced."""
    used = []
    for token in body.manifests:
        manifest = node.lineage.verified(token)
        if manifest.get("principal") != principal.id:
            raise Forbidden(f"manifest {manifest.get('id')} was released to someone else")
        used.append(manifest)
    run = node.lineage.register_run(
        principal=principal.id,
        model_name=body.model_name,
        model_version=body.model_version,
        manifests=body.manifests,
        model_hash=body.model_hash,
        metrics=body.metrics,
        purpose=body.purpose,
    )
    node.provenance.trained(run.to_dict(), used)
    return run.to_dict()


def lineage(
    node: Node,
    principal: Principal,
    *,
    dataset: str | None,
    principal_id: str | None,
    model: str | None,
    fmt: str,
) -> Any:
    """The lineage graph around one anchor, as nodes/edges, PROV-JSON or OpenLineage events."""
    if sum(x is not None for x in (dataset, principal_id, model)) != 1:
        raise BadRequest("give exactly one of dataset, principal or model")
    if principal_id != principal.id:
        _ensure_auditor(node, principal)  # one's own lineage is one's own; the rest is audit
    graph = node.lineage.graph(dataset=dataset, principal=principal_id, model=model)
    if fmt == "prov":
        return to_prov_json(graph)
    if fmt == "openlineage":
        return to_openlineage(graph)
    return graph


# The PROV serialisations served as text, by ``format`` name: (prov's name, media type).
PROV_TEXT: dict[str, tuple[ProvFormat, str]] = {
    "prov-n": ("provn", "text/provenance-notation; charset=utf-8"),
    "prov-xml": ("xml", "application/provenance+xml"),
    "prov-o": ("rdf", "text/turtle; charset=utf-8"),
}


def lineage_prov(
    node: Node,
    principal: Principal,
    *,
    dataset: str | None,
    principal_id: str | None,
    model: str | None,
    fmt: str,
) -> tuple[str, str]:
    """The lineage graph as PROV-N, PROV-XML or PROV-O (Turtle): the text and its media type."""
    graph = lineage(
        node, principal, dataset=dataset, principal_id=principal_id, model=model, fmt="graph"
    )
    name, media = PROV_TEXT[fmt]
    return serialize_prov(prov_document(graph), name), media
