"""Shares, schemas and tables as a recipient sees them.

A share is offered to named users or institutions; anyone else gets the same 404 as for a share
that does not exist. Its one schema is the node's institution; its tables are the share's
datasets that the recipient may discover (what they may read is decided per query, like a slice).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from connectors.datasets import Dataset
from gateway.access import visible_datasets
from gateway.config import ShareConfig
from gateway.errors import BadRequest, NotFound, Unauthorized
from gateway.faces.delta_sharing import admin
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = [
    "all_tables",
    "get_share",
    "list_schemas",
    "list_shares",
    "list_tables",
    "page",
    "share_for",
    "table_for",
]

MAX_RESULTS = 500


def _is_recipient(share: ShareConfig, principal: Principal) -> bool:
    if principal.anonymous:
        return False
    return principal.id in share.users or principal.institution in share.institutions


def _id(node: Node, *parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join((node.public_url, *parts))))


def share_for(node: Node, principal: Principal, name: str) -> ShareConfig:
    """The share named ``name`` (case-insensitive), if offered to ``principal``; else 404."""
    if principal.anonymous:
        raise Unauthorized("Delta Sharing needs a bearer token")
    for share in admin.all_shares(node):
        if share.name == name.lower() and _is_recipient(share, principal):
            return share
    raise NotFound(f"no share {name!r}")


def _tables(node: Node, principal: Principal, share: ShareConfig) -> list[Dataset]:
    visible = {d.name: d for d in visible_datasets(node, principal)}
    return [visible[n] for n in share.datasets if n in visible]


def table_for(
    node: Node, principal: Principal, share_name: str, schema: str, table: str
) -> tuple[ShareConfig, Dataset]:
    """The share and dataset behind ``share.schema.table``; one and the same 404 otherwise."""
    share = share_for(node, principal, share_name)
    if schema.lower() == node.institution:
        for dataset in _tables(node, principal, share):
            if dataset.name == table.lower():
                return share, dataset
    raise NotFound(f"no table {share_name}.{schema}.{table}")


def page(items: list[dict[str, Any]], max_results: int | None, token: str | None) -> dict[str, Any]:
    """One page of ``items``: ``nextPageToken`` is the offset of the next one."""
    try:
        start = int(token) if token else 0
    except ValueError:
        raise BadRequest(f"invalid pageToken {token!r}") from None
    size = MAX_RESULTS if max_results is None else max_results
    if start < 0 or size < 0:
        raise BadRequest("maxResults and pageToken must be non-negative")
    size = min(size, MAX_RESULTS)
    chunk = items[start : start + size]
    body: dict[str, Any] = {"items": chunk}
    if start + len(chunk) < len(items):
        body["nextPageToken"] = str(start + len(chunk))
    return body


def list_shares(node: Node, principal: Principal) -> list[dict[str, Any]]:
    """The shares offered to ``principal``."""
    if principal.anonymous:
        raise Unauthorized("Delta Sharing needs a bearer token")
    return [
        {"name": s.name, "id": _id(node, s.name)}
        for s in admin.all_shares(node)
        if _is_recipient(s, principal)
    ]


def get_share(node: Node, principal: Principal, name: str) -> dict[str, Any]:
    """One share's name and id."""
    share = share_for(node, principal, name)
    return {"share": {"name": share.name, "id": _id(node, share.name)}}


def list_schemas(node: Node, principal: Principal, name: str) -> list[dict[str, Any]]:
    """A share's one schema: this node's institution."""
    share = share_for(node, principal, name)
    return [{"name": node.institution, "share": share.name}]


def list_tables(node: Node, principal: Principal, name: str, schema: str) -> list[dict[str, Any]]:
    """The tables of a share's schema that ``principal`` may discover."""
    share = share_for(node, principal, name)
    if schema.lower() != node.institution:
        raise NotFound(f"no schema {name}.{schema}")
    return all_tables(node, principal, share.name)


def all_tables(node: Node, principal: Principal, name: str) -> list[dict[str, Any]]:
    """Every table of a share that ``principal`` may discover."""
    share = share_for(node, principal, name)
    return [
        {
            "name": d.name,
            "schema": node.institution,
            "share": share.name,
            "shareId": _id(node, share.name),
            "id": _id(node, share.name, d.name),
        }
        for d in _tables(node, principal, share)
    ]
