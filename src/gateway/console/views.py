"""What console pages show, gathered from the node's service functions (nothing decided here).

Every decision shown comes from ``node.governance.decide``/``dry_run`` through the same service
functions the API uses; this module only arranges their answers for templates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audit.keys import public_keys
from audit.merkle import verify_inclusion
from audit.search import EventFilter
from connectors.datasets import Dataset
from gateway import auditing, stewardship
from gateway.access import dataset_for
from gateway.errors import BadRequest, NotFound
from gateway.node import Node
from gateway.schemas import ExplainBody, PolicyEdit
from policies.decisions import Action, Decision
from policies.principals import Principal

__all__ = [
    "access_matrix",
    "dataset_decisions",
    "events_newest_first",
    "lineage_svg",
    "parse_since",
    "proof_check",
]

DATA_ACTIONS = (Action.DISCOVER, Action.READ, Action.TRAIN)
SUGGESTIONS = 1_000  # dataset names a form's datalist offers (any other can still be typed)
_SPAN = re.compile(r"^\s*(\d{1,6})\s*(m|min|h|d|w)\s*$", re.I)
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str | None, now: dt.datetime) -> dt.datetime | None:
    """``"1h"``, ``"7d"``, ``"30m"``, ``"2w"`` ago, a date (UTC midnight) or an ISO time."""
    if text is None or not text.strip():
        return None
    span = _SPAN.match(text)
    if span:
        return now - dt.timedelta(**{_UNITS[span.group(2).lower()]: int(span.group(1))})
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(
            f"time {text!r}: write a span like 1h, 7d, 30m, 2w, or a date like 2026-12-01"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def dataset_decisions(
    node: Node, principal: Principal, dataset: Dataset
) -> list[tuple[str, str, dict[str, Any]]]:
    """The principal's own decision for each action and purpose, with reasons (no data)."""
    out = []
    for action in DATA_ACTIONS:
        purposes = ["*"] if action is Action.DISCOVER else sorted(node.governance.purposes)
        for purpose in purposes:
            body = ExplainBody(dataset=dataset.id, action=action, purpose=purpose)
            out.append((action.value, purpose, stewardship.explain(node, principal, body)))
    return out


@dataclass(frozen=True)
class Subject:
    """A row of the access matrix: a role of the domain, or a partner institution's member."""

    label: str
    principal: Principal


def matrix_subjects(
    node: Node, roles: Iterable[str], statements: Iterable[dict[str, Any]]
) -> list[Subject]:
    """Stand-ins: one member of the domain per role, one member per partner institution (the
    peers, and the institutions the policy names)."""
    out = [
        Subject(f"role {r}", Principal(f"any-{r}", node.institution, frozenset({r})))
        for r in sorted(roles)
    ]
    partners = {p.institution for p in node.config.peers}
    partners |= {str(s["institution"]) for s in statements if s.get("institution")}
    out += [
        Subject(f"{inst} member", Principal("any-member", inst))
        for inst in sorted(partners - {node.institution})
    ]
    return out


def access_matrix(
    node: Node, principal: Principal, dataset_id: str
) -> tuple[Dataset, list[str], list[tuple[str, list[dict[str, Any]]]]]:
    """Subjects x (action, purpose) cells of one dataset, each the decision's summary."""
    policy = stewardship.policy_lines(node, principal, node.institution)  # stewards, auditors
    dataset = dataset_for(node, principal, dataset_id)
    roles = _domain_roles(node)
    columns: list[tuple[Action, str]] = [(Action.DISCOVER, "*")]
    for action in (Action.READ, Action.TRAIN):
        columns += [(action, p) for p in sorted(node.governance.purposes)]
    rows = []
    for subject in matrix_subjects(node, roles, policy["lines"]):
        cells = []
        for action, purpose in columns:
            decision: Decision = node.governance.decide(subject.principal, dataset, action, purpose)
            cells.append(decision.summary())
        rows.append((subject.label, cells))
    heads = [f"{a.value} · {p}" if p != "*" else a.value for a, p in columns]
    return dataset, heads, rows


def _domain_roles(node: Node) -> list[str]:
    roles = node.config.policy.get("roles") or ["member", "steward", "auditor"]
    return [str(r) for r in roles]


def dry_run(node: Node, principal: Principal, domain: str, edit: PolicyEdit) -> dict[str, Any]:
    """The dry run's impacts grouped per dataset, then per principal."""
    result = stewardship.dry_run(node, principal, domain, edit)
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for impact in result["impacts"]:
        who = f"{impact['principal']} ({', '.join(impact['roles']) or 'no role'})"
        grouped.setdefault(impact["dataset"], {}).setdefault(who, []).append(impact)
    return {"version": result["version"], "count": len(result["impacts"]), "datasets": grouped}


def events_newest_first(
    node: Node, principal: Principal, filters: EventFilter, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of this domain's events, newest first; the cursor of the next (older) page."""
    cursor = None if before is None else str(before)
    page = auditing.events(node, principal, filters, cursor, limit, newest_first=True)
    older = page["next_cursor"]
    return page["events"], None if older is None else int(older)


def proof_check(node: Node, principal: Principal, index: int) -> dict[str, Any]:
    """Entry ``index``'s inclusion proof, verified here against the signed checkpoint."""
    page = auditing.events(node, principal, EventFilter(), str(index - 1), 1)["events"]
    if not page or page[0]["index"] != index:
        raise NotFound(f"no entry {index}")
    entry = page[0]
    head = node.notary.attach(node.audit.checkpoint())
    proof = auditing.inclusion(node, index, head.size)
    keys = public_keys(node.audit.signer.jwks())
    key = keys.get(head.kid)
    signed = key is not None and head.verify(key)
    included = verify_inclusion(
        bytes.fromhex(entry["leaf_hash"]),
        index,
        head.size,
        [bytes.fromhex(p) for p in proof["path"]],
        bytes.fromhex(head.root),
    )
    return {
        "entry": entry,
        "checkpoint": head.to_dict(),
        "proof": proof,
        "signature_ok": signed,
        "included": included,
        "ok": signed and included,
    }


KIND_COLUMN = {"dataset": 0, "slice": 1, "principal": 2, "run": 3, "model": 4}
COL_W, ROW_H, BOX_W, BOX_H = 210, 56, 180, 38


def lineage_svg(graph: dict[str, Any]) -> dict[str, Any]:
    """Positions for a layered drawing: one column per kind, links for click-through."""
    columns: dict[int, list[dict[str, Any]]] = {}
    placed: dict[str, dict[str, Any]] = {}
    for item in graph.get("nodes", []):
        col = KIND_COLUMN.get(item.get("type", ""), 5)
        row = len(columns.setdefault(col, []))
        box = {
            "id": item["id"],
            "type": item.get("type", ""),
            "label": _label(item),
            "x": 10 + col * COL_W,
            "y": 30 + row * ROW_H,
            "href": _href(item),
        }
        columns[col].append(box)
        placed[item["id"]] = box
    edges = []
    for edge in graph.get("edges", []):
        a, b = placed.get(edge["source"]), placed.get(edge["target"])
        if a and b:
            edges.append(
                {
                    "x1": a["x"] + BOX_W,
                    "y1": a["y"] + BOX_H // 2,
                    "x2": b["x"],
                    "y2": b["y"] + BOX_H // 2,
                    "type": edge.get("type", ""),
                }
            )
    height = 40 + max((len(v) for v in columns.values()), default=1) * ROW_H
    width = 20 + (max(columns, default=0) + 1) * COL_W
    return {"boxes": list(placed.values()), "edges": edges, "width": width, "height": height,
            "box_w": BOX_W, "box_h": BOX_H}  # fmt: skip


def _label(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind == "slice":
        return f"slice {str(item.get('manifest_id', ''))[:8]} · {item.get('rows', '?')} rows"
    if kind == "run":
        return f"run {str(item.get('run_id', ''))[:8]}"
    text = str(item.get("name") or item["id"].partition(":")[2])
    return text if len(text) <= 26 else text[:25] + "…"


def _href(item: dict[str, Any]) -> str | None:
    from urllib.parse import urlencode

    kind, _, key = item["id"].partition(":")
    if kind == "dataset":
        return "/console/lineage?" + urlencode({"dataset": key})
    if kind == "principal":
        return "/console/lineage?" + urlencode({"principal": key})
    if kind == "model":
        return "/console/lineage?" + urlencode({"model": key})
    if kind == "run" and item.get("audit_index") is not None:
        return f"/console/audit/{item['audit_index']}"
    return None
