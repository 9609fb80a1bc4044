"""The service functions routes call: one per use case, no HTTP in them."""

from __future__ import annotations

import contextlib
import itertools
from functools import partial
from importlib.metadata import version
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi.responses import Response, StreamingResponse

from connectors.datasets import Dataset
from gateway import dcat, federation, relay
from gateway.access import dataset_for, discoverable_page, recorder
from gateway.catalog_search import Criteria
from gateway.errors import Forbidden, NotFound, ServiceUnavailable, Unauthorized
from gateway.node import Node
from gateway.records import registration_event
from gateway.schemas import CatalogPage, NodeInfo, Provenance, SliceBody
from gateway.slices import Slice, SliceRequest, open_slice
from policies.decisions import Action
from policies.principals import Principal

__all__ = [
    "DCAT_PAGE",
    "catalog_dcat",
    "catalog_page",
    "dataset_dcat",
    "get_dataset",
    "node_info",
    "provenance",
    "readiness",
    "register_dataset",
    "releases",
    "stream_slice",
    "table_columns",
]

DCAT_PAGE = 100  # datasets per page of the DCAT catalog, unless the request asks for another


def readiness(node: Node) -> dict[str, Any]:
    """Ready when the node database answers and the audit log can be read."""
    try:
        with node.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        size = node.audit.size()
    except Exception as exc:
        raise ServiceUnavailable(f"not ready: {type(exc).__name__}") from exc
    return {"status": "ready", "audit_size": size, "datasets": node.catalog.count()}


def node_info(node: Node) -> NodeInfo:
    """Who this node is."""
    return NodeInfo(
        institution=node.institution,
        title=node.title,
        url=node.public_url,
        issuer=node.issuer.issuer,
        jwks_uri=f"{node.public_url}/.well-known/jwks.json",
        version=version("matgate"),
    )


def catalog_page(
    node: Node,
    principal: Principal,
    criteria: Criteria,
    *,
    federated: bool = False,
    cursor: str | None = None,
    limit: int = 100,
) -> CatalogPage:
    """A page of a catalog search, on this node only or across its peers (each site's status
    in meta); ``cursor`` is the ``next`` of the page before."""
    if federated and principal.anonymous:
        raise Unauthorized("searching the federation needs a token: peers answer only users")
    if federated:
        return federation.federated_catalog(node, principal, criteria, cursor=cursor, limit=limit)
    found, following = discoverable_page(node, principal, criteria, cursor=cursor, limit=limit)
    return CatalogPage(count=len(found), datasets=found, next=following)


def get_dataset(node: Node, principal: Principal, dataset_id: str) -> Dataset:
    """One dataset's metadata (404 if absent or not discoverable), a peer's through the peer."""
    if federation.is_remote(node, dataset_id):
        if principal.anonymous:
            raise Unauthorized("a peer's dataset needs a token: peers answer only users")
        return federation.remote_dataset(node, principal, dataset_id)
    return dataset_for(node, principal, dataset_id)


def catalog_dcat(
    node: Node,
    principal: Principal,
    criteria: Criteria,
    fmt: dcat.RdfFormat,
    *,
    page_url: str,
    cursor: str | None = None,
    limit: int = DCAT_PAGE,
) -> tuple[bytes, str | None]:
    """A page of the datasets the principal may discover that match ``criteria``, as a DCAT-AP
    catalog whose ``hydra:view`` links the next page (``dcat``), and that page's URL (None on
    the last page). ``page_url`` is the listing's URL without a cursor; ``cursor`` is as for
    ``catalog_page`` (400 for one of another search)."""
    found, after = discoverable_page(node, principal, criteria, cursor=cursor, limit=limit)
    glue = "&" if "?" in page_url else "?"
    following = None if after is None else f"{page_url}{glue}cursor={after}"
    # the page's own URL is the one asked for (its cursor checked above), every other parameter
    # as the request spelled it
    this = page_url if cursor is None else f"{page_url}{glue}{urlencode({'cursor': cursor})}"
    view = dcat.PageView(this=this, first=page_url, next=following)
    return dcat.render(dcat.catalog_graph(found, _catalog_info(node), view), fmt), following


def dataset_dcat(node: Node, principal: Principal, dataset_id: str, fmt: dcat.RdfFormat) -> bytes:
    """One dataset as a DCAT-AP ``dcat:Dataset`` (404 if absent or not discoverable)."""
    found = dataset_for(node, principal, dataset_id)
    return dcat.render(dcat.dataset_graph(found, _catalog_info(node)), fmt)


def _catalog_info(node: Node) -> dcat.CatalogInfo:
    about = node.config.node
    return dcat.CatalogInfo(
        url=node.public_url,
        institution=node.institution,
        title=node.title,
        description=about.description,
        contact=about.contact,
    )


def register_dataset(node: Node, principal: Principal, dataset: Dataset) -> Dataset:
    """Register a dataset in this node's domain (stewards: the ``manage`` action)."""
    if dataset.institution != node.institution:
        raise Forbidden(f"this node registers datasets of {node.institution!r} only")
    decision = node.governance.check_domain(principal, node.institution, Action.MANAGE)
    if not decision.allowed:
        reasons = [*decision.reasons, *principal.notes]
        raise Forbidden("; ".join(reasons) or "not a steward of this domain")
    node.governance.admit(dataset)  # refuses an unknown licence before anything is written
    hook = recorder(node, partial(registration_event, node.institution, principal))
    registered = node.catalog.register(dataset, by=principal.id, record=hook)
    node.governance.register(registered)  # committed with its entry: now governed and served
    return registered


def stream_slice(node: Node, principal: Principal, dataset_id: str, body: SliceBody) -> Response:
    """Open a slice (decided and recorded) and stream it; a peer's dataset through the relay."""
    req = SliceRequest(
        purpose=body.purpose,
        columns=tuple(body.columns) if body.columns is not None else None,
        filter=body.filter,
        order_by=tuple(body.order_by),
        limit=body.limit,
        offset=body.offset,
        format=body.format,
    )
    if federation.is_remote(node, dataset_id):
        if principal.anonymous:
            raise Unauthorized("a peer's dataset needs a token: peers answer only users")
        return relay.relay_slice(node, principal, dataset_id, req)
    opened = open_slice(node, principal, dataset_id, req, hold=True)
    name = dataset_id.replace("/", "_") + opened.format.suffix
    headers = {**opened.headers, "Content-Disposition": f'attachment; filename="{name}"'}
    return respond(opened, headers, node.settings.whole_slice_bytes)


def respond(opened: Slice, headers: dict[str, str], whole: int) -> Response:
    """A slice opened with ``hold=True`` as one response if it ends within ``whole`` bytes,
    else streamed from what was read so far.

    Called where blocking is allowed (a route's thread). A small slice is encoded, sealed and
    recorded in one go: its decision and its completion in one commit of the audit log, both
    durable before its first byte leaves, and no thread hop of the server's per chunk; a store
    that fails before the end is answered with a problem, not a cut-off 200. A larger one has
    its decision appended before its first byte leaves, and streams."""
    head: list[bytes] = []
    size = 0
    media_type = opened.format.media_type
    for chunk in opened.chunks:
        head.append(chunk)
        size += len(chunk)
        if size > whole:
            try:
                opened.release()
            except BaseException:
                close = getattr(opened.chunks, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()  # its completion is attempted, and fails the same way
                raise
            rest = itertools.chain(head, opened.chunks)
            return StreamingResponse(rest, media_type=media_type, headers=headers)
    return Response(b"".join(head), media_type=media_type, headers=headers)


def provenance(node: Node, principal: Principal, request_id: str) -> Provenance:
    """A manifest, to the principal who received the slice or an auditor of the domain."""
    found = node.provenance.get(request_id)
    if found["manifest"]["principal"] != principal.id:
        decision = node.governance.check_domain(principal, node.institution, Action.AUDIT)
        if not decision.allowed:
            raise NotFound(f"no manifest {request_id!r}")
    return Provenance(**found)


def releases(node: Node, principal: Principal, limit: int = 100) -> list[dict[str, Any]]:
    """The slices this node released to the principal, newest first, with each manifest's
    signature checked against the node's keys (a tampered one is listed, marked invalid)."""
    found = node.provenance.released_to(principal.id, limit)
    keep = ("manifest_id", "dataset", "dataset_version", "purpose", "policy_version", "rows",
            "sha256", "licence", "time", "signature_ok", "problem", "manifest")  # fmt: skip
    return [{k: row[k] for k in keep} | {"signature": row["token"]} for row in found]


def table_columns(node: Node, principal: Principal, store: str, table: str) -> dict[str, Any]:
    """The columns a configured store's table actually has, and their logical types, for a
    steward about to register it (the ``manage`` action of this node's domain)."""
    decision = node.governance.check_domain(principal, node.institution, Action.MANAGE)
    if not decision.allowed:
        raise Forbidden("; ".join(decision.reasons) or "not a steward of this domain")
    found = node.stores.get(store).columns(table)  # TableError (422) if it is not there
    columns = [{"name": name, "type": kind.value} for name, kind in found.items()]
    return {"store": store, "table": table, "columns": columns}
