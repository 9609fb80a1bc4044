"""Lineage graphs in the standard exchange forms: W3C PROV-JSON and OpenLineage run events."""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["GOVERNANCE_FACET", "PRODUCER", "to_openlineage", "to_prov_json"]

PRODUCER = "https://github.com/matgate/matgate"
OPENLINEAGE_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
GOVERNANCE_FACET = "matgate_governance"
_FACET_SCHEMA = "https://matgate.org/spec/facets/1-0-0/GovernanceRunFacet.json"
_NS = "https://matgate.org/ns/prov#"


def _by_type(graph: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [n for n in graph["nodes"] if n["type"] == kind]


def _edges(graph: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    return [(e["source"], e["target"]) for e in graph["edges"] if e["type"] == kind]


def _qname(node_id: str) -> str:
    return "matgate:" + node_id


def _attrs(node: dict[str, Any], prov_type: str) -> dict[str, Any]:
    out: dict[str, Any] = {"prov:type": prov_type, "prov:label": node["id"]}
    for key, value in node.items():
        if key not in ("id", "type") and value not in (None, ""):
            out[f"matgate:{key}"] = value if not isinstance(value, dict) else dict(value)
    return out


def to_prov_json(graph: dict[str, Any]) -> dict[str, Any]:
    """The graph as a W3C PROV-JSON document: datasets, slices and models are entities,
    principals agents, runs activities."""
    doc: dict[str, Any] = {
        "prefix": {"matgate": _NS},
        "entity": {},
        "agent": {},
        "activity": {},
        "used": {},
        "wasGeneratedBy": {},
        "wasAssociatedWith": {},
        "wasDerivedFrom": {},
        "wasAttributedTo": {},
    }
    types = {"dataset": "matgate:Dataset", "slice": "matgate:Slice", "model": "matgate:Model"}
    for kind, prov_type in types.items():
        for n in _by_type(graph, kind):
            doc["entity"][_qname(n["id"])] = _attrs(n, prov_type)
    for n in _by_type(graph, "principal"):
        doc["agent"][_qname(n["id"])] = _attrs(n, "prov:Person")
    for n in _by_type(graph, "run"):
        attrs = _attrs(n, "matgate:TrainingRun")
        if n.get("time"):
            attrs["prov:endTime"] = n["time"]
        doc["activity"][_qname(n["id"])] = attrs

    def add(relation: str, record: dict[str, str]) -> None:
        doc[relation][f"_:{relation}{len(doc[relation]) + 1}"] = record

    for dataset, slice_ in _edges(graph, "released_as"):
        add(
            "wasDerivedFrom",
            {"prov:generatedEntity": _qname(slice_), "prov:usedEntity": _qname(dataset)},
        )
    for slice_, principal in _edges(graph, "delivered_to"):
        add("wasAttributedTo", {"prov:entity": _qname(slice_), "prov:agent": _qname(principal)})
    for principal, run in _edges(graph, "ran"):
        add("wasAssociatedWith", {"prov:activity": _qname(run), "prov:agent": _qname(principal)})
    produced = dict(_edges(graph, "produced"))
    for slice_, run in _edges(graph, "consumed_by"):
        add("used", {"prov:activity": _qname(run), "prov:entity": _qname(slice_)})
        if run in produced:
            add(
                "wasDerivedFrom",
                {"prov:generatedEntity": _qname(produced[run]), "prov:usedEntity": _qname(slice_)},
            )
    for run, model in produced.items():
        add("wasGeneratedBy", {"prov:entity": _qname(model), "prov:activity": _qname(run)})
    return {k: v for k, v in doc.items() if v}


def _run_id(key: str) -> str:
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"matgate:{key}"))


def _facet(slices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "_producer": PRODUCER,
        "_schemaURL": _FACET_SCHEMA,
        "purposes": sorted({s.get("purpose", "") for s in slices}),
        "decisions": [
            {
                "manifest_id": s.get("manifest_id"),
                "decision": s.get("decision"),
                "purpose": s.get("purpose"),
                "policy_version": s.get("policy_version"),
                "licence": s.get("licence"),
            }
            for s in slices
        ],
        "policy_versions": sorted({int(s.get("policy_version") or 0) for s in slices}),
    }


def to_openlineage(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenLineage COMPLETE run events: one per slice release (dataset -> slice) and one per
    training run (slices -> model), each with a facet of purpose, decision and policy version."""
    namespace = f"matgate://{graph.get('node', '')}"
    nodes = {n["id"]: n for n in graph["nodes"]}
    datasets_of = {s: d for d, s in _edges(graph, "released_as")}
    events: list[dict[str, Any]] = []

    def event(
        key: str,
        time: str,
        job: str,
        inputs: list[str],
        outputs: list[str],
        facet_slices: list[dict[str, Any]],
    ) -> dict[str, Any]:
        return {
            "eventType": "COMPLETE",
            "eventTime": time,
            "producer": PRODUCER,
            "schemaURL": OPENLINEAGE_SCHEMA,
            "run": {"runId": _run_id(key), "facets": {GOVERNANCE_FACET: _facet(facet_slices)}},
            "job": {"namespace": namespace, "name": job},
            "inputs": [{"namespace": namespace, "name": i} for i in inputs],
            "outputs": [{"namespace": namespace, "name": o} for o in outputs],
        }

    for s in _by_type(graph, "slice"):
        dataset = nodes.get(datasets_of.get(s["id"], ""), {}).get("name", "")
        events.append(
            event(s["id"], s.get("time", ""), f"release/{dataset}", [dataset], [s["id"]], [s])
        )
    produced = dict(_edges(graph, "produced"))
    for r in _by_type(graph, "run"):
        used = [
            nodes[s] for s, run in _edges(graph, "consumed_by") if run == r["id"] and s in nodes
        ]
        model = nodes.get(produced.get(r["id"], ""), {})
        events.append(
            event(
                r["run_id"],
                r.get("time", ""),
                f"train/{model.get('name', '')}",
                [u["id"] for u in used],
                [model.get("id", "")],
                used,
            )
        )
    return events
