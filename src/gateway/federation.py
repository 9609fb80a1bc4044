"""Federation: datasets of other institutions, reached through their own nodes.

A user asks their home node for ``other-inst/name``: metadata comes from the owning node, asked
with an on-behalf-of assertion (``gateway.assertions``); slices are relayed (``gateway.relay``).

The catalog search and the federated query (``gateway.federated_query``) fan out to the peers
concurrently through the same calls; each peer's answer is validated before it is believed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from pydantic import ValidationError

from connectors.datasets import Dataset
from gateway.access import discoverer
from gateway.catalog_search import Criteria, decode_cursor, encode_cursor, local_after, local_cursor
from gateway.errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    GatewayTimeout,
    MatgateError,
    NotFound,
)
from gateway.node import Node
from gateway.peers import Peer, site_status
from gateway.problems import public_detail
from gateway.schemas import CatalogPage
from policies.principals import Principal

__all__ = [
    "bridge",
    "fan_out",
    "federated_catalog",
    "fetch_dataset",
    "is_remote",
    "peer_for",
    "peer_of",
    "remote_dataset",
    "site_report",
]

T = TypeVar("T")
log = logging.getLogger("matgate.federation")
_MAX_SCHEMA_BYTES = 16 * 2**20


def is_remote(node: Node, dataset_id: str) -> bool:
    """Whether ``dataset_id`` belongs to a peer's institution rather than to this node."""
    institution = dataset_id.split("/", 1)[0]
    return institution != node.institution and institution in node.peers


def peer_for(node: Node, principal: Principal, dataset_id: str) -> Peer:
    """The peer that owns ``dataset_id``, if this node may speak to it for ``principal``."""
    missing = NotFound(f"no dataset {dataset_id!r}")
    return peer_of(node, principal, dataset_id.split("/", 1)[0], missing)


def peer_of(node: Node, principal: Principal, institution: str, missing: MatgateError) -> Peer:
    """The peer of ``institution``, if this node may speak to it for ``principal``; else
    ``missing``."""
    peer = node.peers.get(institution)
    if peer is None:
        raise missing
    if principal.actor is not None:
        raise missing  # a request relayed to us is never relayed on
    if principal.institution != node.institution:
        raise Forbidden(
            f"this node speaks to its peers for {node.institution!r} users only; "
            f"ask your own institution's node ({principal.institution!r})"
        )
    return peer


def bridge(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run a coroutine of the server's event loop from a route's worker thread."""
    return anyio.from_thread.run(func, *args)  # type: ignore[arg-type]


# -- metadata and catalog ---------------------------------------------------------------------


async def fetch_dataset(node: Node, principal: Principal, dataset_id: str) -> Dataset:
    """A peer's dataset metadata, validated (it must be that peer's own dataset)."""
    peer = peer_for(node, principal, dataset_id)
    found = await peer.get_json(f"/catalog/{dataset_id}", principal)
    try:
        dataset = Dataset.model_validate(found)
    except ValidationError as exc:
        raise BadGateway(f"peer {peer.institution!r} returned invalid metadata") from exc
    if dataset.id != dataset_id:
        raise BadGateway(
            f"peer {peer.institution!r} answered for {dataset.id!r}, not {dataset_id!r}"
        )
    return dataset


def remote_dataset(node: Node, principal: Principal, dataset_id: str) -> Dataset:
    """A peer's dataset metadata (from a route's worker thread)."""
    return bridge(fetch_dataset, node, principal, dataset_id)


async def _peer_catalog(
    peer: Peer, principal: Principal, params: dict[str, Any]
) -> tuple[list[Dataset], str | None]:
    found = await peer.get_json("/catalog", principal, params=params)
    try:
        page = CatalogPage.model_validate(found)
    except ValidationError as exc:
        raise BadGateway(f"peer {peer.institution!r} returned an invalid catalog") from exc
    strangers = sorted({d.institution for d in page.datasets} - {peer.institution})
    if strangers:
        raise BadGateway(
            f"peer {peer.institution!r} listed datasets of other institutions: "
            + ", ".join(strangers)
        )
    return page.datasets, page.next


async def fan_out(
    jobs: dict[str, Callable[[], Awaitable[T]]], deadline: float
) -> dict[str, T | BaseException]:
    """Run every job concurrently, each within ``deadline``; a failure is kept, not raised."""
    results: dict[str, T | BaseException] = {}

    async def run(key: str, job: Callable[[], Awaitable[T]]) -> None:
        try:
            with anyio.fail_after(deadline):
                results[key] = await job()
        except TimeoutError:
            results[key] = GatewayTimeout(f"{key}: no answer within {deadline:g} s")
        except Exception as exc:
            results[key] = exc

    async with anyio.create_task_group() as group:
        for key, job in jobs.items():
            group.start_soon(run, key, job)
    return results


def site_report(result: object) -> dict[str, Any]:
    """``{"status": ..., "detail": ...}`` of one site's outcome."""
    if isinstance(result, BaseException):
        if isinstance(result, MatgateError):
            detail = public_detail(result, result.status)  # no driver text in a site's report
        else:
            detail = type(result).__name__
        return {"status": site_status(result), "detail": detail}
    return {"status": "ok"}


async def _catalog_of_peers(
    node: Node,
    principal: Principal,
    criteria: Criteria,
    positions: dict[str, str | None],
    limit: int,
) -> dict[str, tuple[list[Dataset], str | None] | BaseException]:
    params = {**criteria.params(), "limit": limit}
    peers = [p for p in node.peers if p.institution in positions]
    jobs: dict[str, Callable[[], Awaitable[tuple[list[Dataset], str | None]]]] = {}
    for p in peers:
        after = positions[p.institution]
        asked = {**params, "cursor": local_cursor(criteria, after)} if after else params
        jobs[p.institution] = partial(_peer_catalog, p, principal, asked)
    deadline = max((p.config.deadline for p in peers), default=1.0)
    return await fan_out(jobs, deadline)


def _positions(
    node: Node, principal: Principal, criteria: Criteria, cursor: str | None
) -> dict[str, str | None]:
    """Where each site's next page starts (None: at its beginning); only sites not finished."""
    speaks = principal.actor is None and principal.institution == node.institution
    sites = [node.institution] + [p.institution for p in node.peers] * speaks
    if cursor is None:
        wanted = criteria.institution
        return {s: None for s in sites if wanted in (None, s)}
    body = decode_cursor(cursor, criteria, kind="federated").get("p")
    if not isinstance(body, dict) or not all(
        s in sites and (a is None or isinstance(a, str)) for s, a in body.items()
    ):
        raise BadRequest("cursor: not a cursor of this search (start again without one)")
    return body


def federated_catalog(
    node: Node, principal: Principal, criteria: Criteria, *, cursor: str | None, limit: int
) -> CatalogPage:
    """A page of the datasets every site lets ``principal`` discover, by id, with each site's
    status; its cursor carries each site's own position, and a site that fails is reported
    and left out of the pages that follow (the result says it is incomplete)."""
    positions = _positions(node, principal, criteria, cursor)
    answers: dict[str, tuple[list[Dataset], str | None] | BaseException] = {}
    if node.institution in positions:
        local, last = node.catalog.page(
            criteria,
            after=positions[node.institution],
            limit=limit,
            keep=discoverer(node, principal),
        )
        answers[node.institution] = (local, last)
    if set(positions) - {node.institution}:
        answers.update(bridge(_catalog_of_peers, node, principal, criteria, positions, limit))
    sites: dict[str, dict[str, Any]] = {}
    offered: list[tuple[str, Dataset]] = []
    for site, result in answers.items():
        sites[site] = site_report(result)
        if not isinstance(result, BaseException):
            offered += [(site, ds) for ds in result[0]]
    offered.sort(key=lambda pair: pair[1].id)
    taken = offered[:limit]
    following: dict[str, str | None] = {}
    for site, result in answers.items():
        if isinstance(result, BaseException):
            continue  # reported, and not asked again
        mine = [ds for s, ds in taken if s == site]
        sites[site]["count"] = len(mine)
        if len(mine) < len(result[0]):  # some left for the next page
            following[site] = mine[-1].id if mine else positions[site]
        elif result[1] is not None:
            following[site] = _after(site, result[1], criteria, mine)
    complete = all(s["status"] == "ok" for s in sites.values())
    meta = {"federated": True, "complete": complete, "sites": sites}
    datasets = [ds for _site, ds in taken]
    nxt = (
        encode_cursor({"k": "federated", "s": criteria.key(), "p": following})
        if following
        else None
    )
    return CatalogPage(count=len(datasets), datasets=datasets, next=nxt, meta=meta)


def _after(site: str, cursor: str, criteria: Criteria, taken: list[Dataset]) -> str:
    """The id a site's own ``next`` cursor continues after (the sites share the format)."""
    try:
        return local_after(cursor, criteria)
    except BadRequest:
        if taken:
            return taken[-1].id
        raise BadGateway(f"peer {site!r} returned a cursor of another kind") from None


# -- relayed slices ---------------------------------------------------------------------------
