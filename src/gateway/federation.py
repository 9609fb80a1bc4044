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

from audit.events import AgreementForwarded
from connectors.datasets import Dataset
from gateway.access import discoverable_page, record
from gateway.catalog_search import (
    Criteria,
    decode_cursor,
    encode_cursor,
)
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
from policies.config import AgreementSpec
from policies.principals import Principal

__all__ = [
    "bridge",
    "fan_out",
    "federated_catalog",
    "fetch_dataset",
    "forward_acceptance",
    "is_remote",
    "peer_agreements",
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
    node: Node, principal: Principal, criteria: Criteria, asked: dict[str, tuple[str | None, int]]
) -> dict[str, tuple[list[Dataset], str | None] | BaseException]:
    params = criteria.params()
    peers = [p for p in node.peers if p.institution in asked]
    jobs: dict[str, Callable[[], Awaitable[tuple[list[Dataset], str | None]]]] = {}
    for p in peers:
        cursor, share = asked[p.institution]
        query = {**params, "limit": share, **({"cursor": cursor} if cursor else {})}
        jobs[p.institution] = partial(_peer_catalog, p, principal, query)
    deadline = max((p.config.deadline for p in peers), default=1.0)
    return await fan_out(jobs, deadline)


def _positions(
    node: Node, principal: Principal, criteria: Criteria, cursor: str | None
) -> tuple[dict[str, str | None], int]:
    """Each unfinished site's own cursor (None: from its start), and the page's turn."""
    speaks = principal.actor is None and principal.institution == node.institution
    sites = [node.institution] + [p.institution for p in node.peers] * speaks
    if cursor is None:
        wanted = criteria.institution
        return {s: None for s in sites if wanted in (None, s)}, 0
    body = decode_cursor(cursor, criteria, kind="federated")
    positions, turn = body.get("p"), body.get("r", 0)
    if (
        not isinstance(positions, dict)
        or not isinstance(turn, int)
        or not all(s in sites and (c is None or isinstance(c, str)) for s, c in positions.items())
    ):
        raise BadRequest("cursor: not a cursor of this search (start again without one)")
    return positions, turn


def _shares(sites: list[str], limit: int, turn: int) -> dict[str, int]:
    """How many datasets each site gives to a page of ``limit``: evenly, the remainder (and,
    when there are more sites than places, the places) going round from page to page."""
    if not sites:
        return {}
    turn %= len(sites)
    order = sites[turn:] + sites[:turn]
    base, extra = divmod(limit, len(order))
    return {site: base + (i < extra) for i, site in enumerate(order)}


def federated_catalog(
    node: Node, principal: Principal, criteria: Criteria, *, cursor: str | None, limit: int
) -> CatalogPage:
    """A page of the datasets every site lets ``principal`` discover, with each site's status:
    the page is shared among the sites not yet finished, each giving its next datasets, and
    its cursor carries every site's own cursor. A site that fails is reported and left out of
    the pages that follow (they say they are incomplete)."""
    positions, turn = _positions(node, principal, criteria, cursor)
    sites_left = sorted(positions)
    shares = {s: n for s, n in _shares(sites_left, limit, turn).items() if n > 0}
    answers: dict[str, tuple[list[Dataset], str | None] | BaseException] = {}
    if shares.get(node.institution):
        answers[node.institution] = discoverable_page(
            node,
            principal,
            criteria,
            cursor=positions[node.institution] or None,
            limit=shares[node.institution],
        )
    asked = {s: (positions[s], n) for s, n in shares.items() if s != node.institution}
    if asked:
        answers.update(bridge(_catalog_of_peers, node, principal, criteria, asked))
    sites: dict[str, dict[str, Any]] = {}
    datasets: list[Dataset] = []
    following = dict(positions)
    for site in sorted(answers):
        result = answers[site]
        sites[site] = site_report(result)
        if isinstance(result, BaseException):
            following.pop(site)  # reported, and not asked again
            continue
        found, after = result
        sites[site]["count"] = len(found)
        datasets += found[: shares[site]]
        if after is None:
            following.pop(site)
        else:
            following[site] = after
    complete = all(s["status"] == "ok" for s in sites.values())
    meta = {"federated": True, "complete": complete, "sites": sites}
    body = {"k": "federated", "s": criteria.key(), "p": following, "r": turn + limit}
    nxt = encode_cursor(body) if following else None
    return CatalogPage(count=len(datasets), datasets=datasets, next=nxt, meta=meta)


# -- agreements of a peer's dataset ----------------------------------------------------------


async def _peer_agreements(node: Node, principal: Principal, dataset_id: str) -> list[Any]:
    peer = peer_for(node, principal, dataset_id)
    found = await peer.get_json(f"/datasets/{dataset_id}/agreements", principal)
    try:
        specs = [AgreementSpec.model_validate(a) for a in found]
    except (TypeError, ValidationError) as exc:
        raise BadGateway(f"peer {peer.institution!r} returned invalid agreements") from exc
    strangers = [
        s.id for s in specs if s.dataset != dataset_id and s.institution != peer.institution
    ]
    if strangers:
        raise BadGateway(
            f"peer {peer.institution!r} listed agreements that do not cover {dataset_id!r}: "
            + ", ".join(strangers)
        )
    return [s.model_dump(mode="json") for s in specs]


def peer_agreements(node: Node, principal: Principal, dataset_id: str) -> list[Any]:
    """The agreements covering a peer's dataset, as the owner lists them to ``principal``."""
    return bridge(_peer_agreements, node, principal, dataset_id)


def forward_acceptance(
    node: Node,
    principal: Principal,
    dataset_id: str,
    agreement_id: str,
    *,
    for_institution: bool,
) -> dict[str, Any]:
    """Accept a peer's agreement for ``principal`` (or their institution) at the owner, which
    decides and records it; recorded here before it is forwarded (503, nothing sent, if not)."""
    peer = peer_for(node, principal, dataset_id)
    record(
        node,
        AgreementForwarded(
            node=node.institution,
            principal=principal.id,
            institution=principal.institution,
            dataset=dataset_id,
            agreement_id=agreement_id,
            peer=peer.institution,
            party="institution" if for_institution else "user",
        ),
    )
    path = f"/datasets/{dataset_id}/agreements/{agreement_id}/accept"
    params = {"whole_institution": "true"} if for_institution else None
    answer = bridge(partial(peer.post_json, path, principal, params=params))
    if not isinstance(answer, dict) or answer.get("agreement") != agreement_id:
        raise BadGateway(f"peer {peer.institution!r} answered for another agreement")
    return answer


# -- relayed slices ---------------------------------------------------------------------------
