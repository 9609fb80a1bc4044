"""The auditor's "where did this dataset go?": every entry about a dataset, with proofs.

Decisions, releases and relays name the dataset in the log (federated requests decided here, and
relays of other nodes' datasets through this one, included); models come from the lineage
(runs that consumed its slices). Every entry gets an inclusion proof against one checkpoint,
witnessed by the peers when they answer in time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
from typing import Any

import anyio.from_thread
import sqlalchemy as sa

from audit.entries import split_entry
from audit.report import build_report
from audit.search import EventFilter, format_time, page_query
from audit.store import entries
from gateway.node import Node

__all__ = ["MAX_ENTRIES", "dataset_report", "witnessed_checkpoint"]

MAX_ENTRIES = 10_000


def _bodies(node: Node, query: sa.Select[Any]) -> list[tuple[int, bytes]]:
    with node.engine.connect() as conn:
        rows: list[Any] = list(conn.execute(query))
        return [(int(row[0]), bytes(row[1])) for row in rows]


def witnessed_checkpoint(node: Node) -> Any:
    """A checkpoint signed now, with the peers asked to cosign it if they have not (bounded)."""
    cp = node.audit.checkpoint()
    if len(node.peers) and len(node.notary.cosignatures(cp)) < len(node.peers):
        # from a worker thread of the event loop: ask the peers there, bounded; outside one
        # (scripts, some tests) serve what is stored
        with contextlib.suppress(RuntimeError):
            anyio.from_thread.run(functools.partial(node.cosigners.round, cp, deadline=3.0))
    return node.notary.attach(cp)


def dataset_report(
    node: Node, dataset: str, since: dt.datetime | None, until: dt.datetime | None
) -> dict[str, Any]:
    """The report of ``dataset`` in this node's log between ``since`` and ``until``."""
    cp = witnessed_checkpoint(node)
    found = _bodies(
        node,
        page_query(EventFilter(dataset=dataset, since=since, until=until), -1, MAX_ENTRIES).where(
            entries.c.idx < cp.size
        ),
    )
    truncated = len(found) > MAX_ENTRIES
    found = found[:MAX_ENTRIES]
    graph = node.lineage.graph(dataset=dataset)
    shown = {f"slice:{m}" for m in map(_manifest_of, (body for _, body in found)) if m}
    consumers = {
        e["target"] for e in graph["edges"] if e["type"] == "consumed_by" and e["source"] in shown
    }
    runs = [n for n in graph["nodes"] if n["type"] == "run" and n["id"] in consumers]
    models = _models(graph, runs, cp.size)
    run_rows = _bodies(
        node,
        sa.select(entries.c.idx, entries.c.body, entries.c.leaf_hash).where(
            entries.c.idx.in_([m["audit_index"] for m in models])
        ),
    )
    proven = sorted({*found, *run_rows})
    return build_report(
        dataset=dataset,
        node=node.institution,
        origin=node.notary.origin,
        checkpoint=cp,
        entries=[(i, body, node.audit.inclusion_proof(i, cp.size).path) for i, body in proven],
        models=models,
        since=format_time(since) if since else None,
        until=format_time(until) if until else None,
        truncated=truncated,
        jwks=node.audit.jwks(),
    )


def _manifest_of(body: bytes) -> str:
    event = json.loads(split_entry(body)[2])
    return str(event.get("manifest_id") or "") if event.get("name") == "slice" else ""


def _models(graph: dict[str, Any], runs: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    produced = {e["source"]: e["target"] for e in graph["edges"] if e["type"] == "produced"}
    consumed: dict[str, list[str]] = {}
    for e in graph["edges"]:
        if e["type"] == "consumed_by":
            consumed.setdefault(e["target"], []).append(e["source"].removeprefix("slice:"))
    nodes = {n["id"]: n for n in graph["nodes"]}
    out = []
    for run in runs:
        if int(run.get("audit_index", size)) >= size:
            continue  # registered after the checkpoint: in the next report
        model = nodes.get(produced.get(run["id"], ""), {})
        out.append(
            {
                "run_id": run.get("run_id"),
                "model_name": model.get("name"),
                "model_version": model.get("version"),
                "model_hash": model.get("hash"),
                "audit_index": run.get("audit_index"),
                "manifests": sorted(consumed.get(run["id"], [])),
            }
        )
    return out
