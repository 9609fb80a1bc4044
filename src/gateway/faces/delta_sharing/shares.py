"""Shares, schemas and tables as a recipient sees them.

A share is offered to named users or institutions; anyone else gets the same 404 as for a share
that does not exist. Its one schema is the node's institution; its tables are the share's
datasets that the recipient may discover (what they may read is decided per query, like a slice).

Listings come a page at a time (``paging``): a page of tables reads the share's datasets by id, a
chunk at a time, and keeps those the recipient may discover; one table is looked up by its id.
Neither reads the rest of the catalog.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from connectors.datasets import Dataset
from gateway.access import discoverable
from gateway.config import ShareConfig
from gateway.errors import NotFound, Unauthorized
from gateway.faces.delta_sharing import admin, paging
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = [
    "all_tables",
    "get_share",
    "list_schemas",
    "list_shares",
    "list_tables",
    "share_for",
    "table_for",
]


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


def _table_names(share: ShareConfig) -> list[str]:
    """The share's table names, each once, in the share's order."""
    return list(dict.fromkeys(share.datasets))


def table_for(
    node: Node, principal: Principal, share_name: str, schema: str, table: str
) -> tuple[ShareConfig, Dataset]:
    """The share and dataset behind ``share.schema.table``; one and the same 404 otherwise."""
    share = share_for(node, principal, share_name)
    name = table.lower()
    if schema.lower() == node.institution and name in share.datasets:
        found = discoverable(node, principal, [f"{node.institution}/{name}"])
        if found:
            return share, found[0]
    raise NotFound(f"no table {share_name}.{schema}.{table}")


def list_shares(
    node: Node, principal: Principal, max_results: int | None, token: str | None
) -> dict[str, Any]:
    """A page of the shares offered to ``principal``."""
    if principal.anonymous:
        raise Unauthorized("Delta Sharing needs a bearer token")
    offered = {s.name: s for s in admin.all_shares(node) if _is_recipient(s, principal)}

    def pick(names: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        return [(n, {"name": n, "id": _id(node, n)}) for n in names]

    return paging.page(node, "shares", list(offered), pick, max_results, token)


def get_share(node: Node, principal: Principal, name: str) -> dict[str, Any]:
    """One share's name and id."""
    share = share_for(node, principal, name)
    return {"share": {"name": share.name, "id": _id(node, share.name)}}


def list_schemas(
    node: Node, principal: Principal, name: str, max_results: int | None, token: str | None
) -> dict[str, Any]:
    """A page of a share's one schema: this node's institution."""
    share = share_for(node, principal, name)

    def pick(names: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        return [(n, {"name": n, "share": share.name}) for n in names]

    listing = f"schemas\n{share.name}"
    return paging.page(node, listing, [node.institution], pick, max_results, token)


def list_tables(
    node: Node,
    principal: Principal,
    name: str,
    schema: str,
    max_results: int | None,
    token: str | None,
) -> dict[str, Any]:
    """A page of the tables of a share's schema that ``principal`` may discover."""
    share = share_for(node, principal, name)
    if schema.lower() != node.institution:
        raise NotFound(f"no schema {name}.{schema}")
    return all_tables(node, principal, share.name, max_results, token)


def all_tables(
    node: Node, principal: Principal, name: str, max_results: int | None, token: str | None
) -> dict[str, Any]:
    """A page of the tables of a share that ``principal`` may discover."""
    share = share_for(node, principal, name)
    share_id = _id(node, share.name)

    def pick(names: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        ids = [f"{node.institution}/{n}" for n in names]
        return [
            (
                d.name,
                {
                    "name": d.name,
                    "schema": node.institution,
                    "share": share.name,
                    "shareId": share_id,
                    "id": _id(node, share.name, d.name),
                },
            )
            for d in discoverable(node, principal, ids)
        ]

    listing = f"tables\n{share.name}"
    return paging.page(node, listing, _table_names(share), pick, max_results, token)
