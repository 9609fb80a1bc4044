"""Stewards offer and withdraw shares through the API (beside the ones in the node's config).

Offering a share names recipients and datasets; it grants nothing by itself: what a recipient
gets of a table is still what the policy lets them read, decided per query. Each change is
recorded in the audit log before it is stored, so no share exists that the log does not show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from audit.events import ShareChanged
from gateway.access import recorder
from gateway.config import ShareConfig
from gateway.db import shares_table
from gateway.errors import BadRequest, Conflict, Forbidden, NotFound
from policies.decisions import Action
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = ["all_shares", "list_for_steward", "offer", "withdraw"]


def all_shares(node: Node) -> list[ShareConfig]:
    """The config's shares, then those stewards offered through the API."""
    with node.engine.connect() as conn:
        rows = conn.execute(sa.select(shares_table.c.document).order_by(shares_table.c.name))
        offered = [ShareConfig.model_validate(r.document) for r in rows]
    return [*node.config.shares, *offered]


def _steward(node: Node, principal: Principal) -> None:
    decision = node.governance.check_domain(principal, node.institution, Action.MANAGE)
    if not decision.allowed:
        raise Forbidden("; ".join(decision.reasons) or "only stewards of this node manage shares")


def list_for_steward(node: Node, principal: Principal) -> list[dict[str, Any]]:
    """Every share of the node, with its recipients and where it is defined."""
    _steward(node, principal)
    configured = {s.name for s in node.config.shares}
    return [
        {**s.model_dump(mode="json"), "source": "config" if s.name in configured else "api"}
        for s in all_shares(node)
    ]


def offer(node: Node, principal: Principal, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Offer (or change) share ``name``: recorded, then stored."""
    _steward(node, principal)
    if any(s.name == name for s in node.config.shares):
        raise Conflict(f"share {name!r} is defined in the node's config file; change it there")
    share = ShareConfig.model_validate({**body, "name": name})
    known = node.catalog.present([f"{node.institution}/{d}" for d in share.datasets])
    missing = [d for d in share.datasets if f"{node.institution}/{d}" not in known]
    if missing:
        raise BadRequest(f"no dataset(s) {', '.join(map(repr, missing))} on this node")
    row = {
        "name": share.name,
        "document": share.model_dump(mode="json"),
        "changed_by": principal.id,
        "changed_at": dt.datetime.now(dt.UTC),
    }
    # the change and its audit entry commit together, or neither does
    with node.engine.begin() as conn:
        conn.execute(shares_table.delete().where(shares_table.c.name == share.name))
        conn.execute(shares_table.insert().values(**row))
        _record(node, principal, share, "offered")(conn, share)
    return share.model_dump(mode="json")


def withdraw(node: Node, principal: Principal, name: str) -> None:
    """Withdraw share ``name`` (one offered through the API): recorded, then removed."""
    _steward(node, principal)
    found = [s for s in all_shares(node) if s.name == name]
    if not found:
        raise NotFound(f"no share {name!r}")
    if any(s.name == name for s in node.config.shares):
        raise Conflict(f"share {name!r} is defined in the node's config file; change it there")
    with node.engine.begin() as conn:
        conn.execute(shares_table.delete().where(shares_table.c.name == name))
        _record(node, principal, found[0], "withdrawn")(conn, found[0])


def _record(
    node: Node, principal: Principal, share: ShareConfig, change: str
) -> Callable[[sa.Connection, ShareConfig], None]:
    """The audit hook for one share change, run on the change's own connection."""
    return recorder(
        node,
        lambda _: ShareChanged(
            node=node.institution,
            principal=principal.id,
            institution=principal.institution,
            action=Action.MANAGE.value,
            decision="allow",
            share=share.name,
            change=change,
            datasets=share.datasets,
            recipients=(*share.users, *(f"institution:{i}" for i in share.institutions)),
        ),
    )
