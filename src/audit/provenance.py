"""Lineage in the standard exchange forms, built with the standards' own libraries.

W3C PROV (``prov``): datasets, slices and models are entities, principals agents, training runs
activities; ``prov:type`` values are qualified names and every attribute a plain value (a run's
metrics are flattened to ``matgate:metric_<name>``), so the document serialises to, and loads
back from, PROV-JSON, PROV-XML and PROV-O (RDF), and prints as PROV-N.

OpenLineage (``openlineage-python``): a slice release is a run of the job ``release/<dataset>``
(START when it opens, COMPLETE or FAIL when the stream ends) and a training run one of
``train/<model>``; each carries a governance run facet (purpose, decision, policy version,
licence) whose JSON schema ships beside this module (``schemas/GovernanceRunFacet.json``).
``LineageEmitter`` pushes them to any OpenLineage HTTP endpoint (Marquez's
``/api/v1/lineage``) through the library's asynchronous transport: a worker thread with its
own queue and retries, so emitting never waits on the network.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    error_message_run,
    output_statistics_output_dataset,
)
from openlineage.client.serde import Serde
from openlineage.client.transport.async_http import AsyncHttpConfig, AsyncHttpTransport
from openlineage.client.transport.http import ApiKeyTokenProvider, TokenProvider
from prov.model import PROV, ProvDocument, QualifiedName

__all__ = [
    "GOVERNANCE_FACET",
    "PRODUCER",
    "GovernanceRunFacet",
    "LineageEmitter",
    "ProvFormat",
    "prov_document",
    "run_events",
    "serialize_prov",
    "slice_event",
    "to_openlineage",
    "to_prov_json",
]

PRODUCER = "https://github.com/matgate/matgate"
GOVERNANCE_FACET = "matgate_governance"
_FACET_SCHEMA = (
    "https://matgate.org/spec/facets/1-0-0/GovernanceRunFacet.json#/$defs/GovernanceRunFacet"
)
_NS = "https://matgate.org/ns/prov#"
log = logging.getLogger("matgate.lineage")

ProvFormat = Literal["json", "xml", "rdf", "provn"]


# -- PROV ----------------------------------------------------------------------------------


def _by_type(graph: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return [n for n in graph["nodes"] if n["type"] == kind]


def _edges(graph: Mapping[str, Any], kind: str) -> list[tuple[str, str]]:
    return [(e["source"], e["target"]) for e in graph["edges"] if e["type"] == kind]


def _plain(value: Any) -> Any:
    """A PROV attribute value: a string, number or boolean, never a nested structure."""
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _attrs(node: Mapping[str, Any], prov_type: QualifiedName) -> dict[Any, Any]:
    out: dict[Any, Any] = {PROV["type"]: prov_type, PROV["label"]: node["id"]}
    for key, value in node.items():
        if key in ("id", "type", "time") or value in (None, ""):
            continue
        if isinstance(value, Mapping):
            # Nested objects (a run's metrics) are flattened: one attribute per entry.
            stem = "metric" if key == "metrics" else key
            for sub, item in sorted(value.items()):
                out[f"matgate:{stem}_{sub}"] = _plain(item)
        else:
            out[f"matgate:{key}"] = _plain(value)
    if node.get("time"):
        out["matgate:time"] = str(node["time"])
    return out


def prov_document(graph: Mapping[str, Any]) -> ProvDocument:
    """The lineage graph as a ``prov`` document."""
    doc = ProvDocument()
    ns = doc.add_namespace("matgate", _NS)

    def q(node_id: str) -> QualifiedName:
        return ns[node_id]

    types = {"dataset": ns["Dataset"], "slice": ns["Slice"], "model": ns["Model"]}
    for kind, prov_type in types.items():
        for n in _by_type(graph, kind):
            doc.entity(q(n["id"]), _attrs(n, prov_type))
    for n in _by_type(graph, "principal"):
        doc.agent(q(n["id"]), _attrs(n, PROV["Person"]))
    for n in _by_type(graph, "run"):
        ended = _time(n.get("time"))
        doc.activity(q(n["id"]), None, ended, _attrs(n, ns["TrainingRun"]))
    for dataset, slice_ in _edges(graph, "released_as"):
        doc.wasDerivedFrom(q(slice_), q(dataset))
    for slice_, principal in _edges(graph, "delivered_to"):
        doc.wasAttributedTo(q(slice_), q(principal))
    for principal, run in _edges(graph, "ran"):
        doc.wasAssociatedWith(q(run), q(principal))
    produced = dict(_edges(graph, "produced"))
    for slice_, run in _edges(graph, "consumed_by"):
        doc.used(q(run), q(slice_))
        if run in produced:
            doc.wasDerivedFrom(q(produced[run]), q(slice_))
    for run, model in produced.items():
        doc.wasGeneratedBy(q(model), q(run))
    return doc


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def serialize_prov(doc: ProvDocument, fmt: ProvFormat = "json") -> str:
    """The document as PROV-JSON, PROV-XML, PROV-O (Turtle) or PROV-N."""
    if fmt == "rdf":
        return str(doc.serialize(format="rdf", rdf_format="turtle"))
    return str(doc.serialize(format=fmt))


def to_prov_json(graph: Mapping[str, Any]) -> dict[str, Any]:
    """The graph as a W3C PROV-JSON document (loads with ``prov.read(..., format="json")``)."""
    return dict(json.loads(serialize_prov(prov_document(graph), "json")))


# -- OpenLineage ---------------------------------------------------------------------------


@attr.define
class GovernanceRunFacet(RunFacet):
    """Why a run was allowed: purposes, each slice's decision and policy version, licences."""

    purposes: list[str] = attr.field(factory=list)
    decisions: list[dict[str, Any]] = attr.field(factory=list)
    policy_versions: list[int] = attr.field(factory=list)

    _additional_skip_redact: ClassVar[list[str]] = ["purposes", "decisions", "policy_versions"]

    @staticmethod
    def _get_schema() -> str:
        return _FACET_SCHEMA


def _facet(slices: Iterable[Mapping[str, Any]]) -> GovernanceRunFacet:
    found = list(slices)
    return GovernanceRunFacet(
        purposes=sorted({str(s.get("purpose") or "") for s in found}),
        decisions=[
            {
                "manifest_id": s.get("manifest_id") or s.get("id"),
                "decision": _decision(s.get("decision")),
                "purpose": s.get("purpose"),
                "policy_version": s.get("policy_version"),
                "licence": s.get("licence"),
            }
            for s in found
        ],
        policy_versions=sorted({int(s.get("policy_version") or 0) for s in found}),
        producer=PRODUCER,
    )


def _decision(value: Any) -> str:
    # A manifest names a released slice (an allow), whatever detail its decision carries.
    return value if isinstance(value, str) else "allow"


def _run_id(key: str) -> str:
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"matgate:{key}"))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _event(
    state: RunState,
    *,
    key: str,
    time: str,
    namespace: str,
    job: str,
    inputs: Iterable[str],
    outputs: Iterable[OutputDataset],
    facets: dict[str, RunFacet],
) -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime=time or _now(),
        run=Run(runId=_run_id(key), facets=facets),
        job=Job(namespace=namespace, name=job),
        inputs=[InputDataset(namespace=namespace, name=i) for i in inputs],
        outputs=list(outputs),
        producer=PRODUCER,
    )


def slice_event(
    manifest: Mapping[str, Any], state: RunState, *, error: str = "", time: str | None = None
) -> RunEvent:
    """The run event of a slice release: START when it opens, COMPLETE or FAIL at its end."""
    namespace = f"matgate://{manifest.get('node', '')}"
    facets: dict[str, RunFacet] = {GOVERNANCE_FACET: _facet([manifest])}
    if error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="python", producer=PRODUCER
        )
    output = OutputDataset(namespace=namespace, name=f"slice:{manifest['id']}")
    if state == RunState.COMPLETE and manifest.get("rows") is not None:
        stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=int(manifest.get("rows") or 0),
            size=int(manifest.get("bytes") or 0),
            producer=PRODUCER,
        )
        output = OutputDataset(
            namespace=namespace, name=output.name, outputFacets={"outputStatistics": stats}
        )
    return _event(
        state,
        key=str(manifest["id"]),
        time=time or str(manifest.get("completed") or manifest.get("time") or ""),
        namespace=namespace,
        job=f"release/{manifest.get('dataset', '')}",
        inputs=[str(manifest.get("dataset", ""))],
        outputs=[output],
        facets=facets,
    )


def run_events(
    node: str, run: Mapping[str, Any], slices: Iterable[Mapping[str, Any]]
) -> list[RunEvent]:
    """START and COMPLETE of a registered training run over its slices."""
    used = list(slices)
    namespace = f"matgate://{node}"
    model = f"model:{run['model_name']}@{run.get('model_version', '')}"
    common: dict[str, Any] = {
        "key": str(run["run_id"]),
        "time": str(run.get("time") or ""),
        "namespace": namespace,
        "job": f"train/{run['model_name']}",
        "inputs": [f"slice:{s.get('manifest_id') or s.get('id')}" for s in used],
        "facets": {GOVERNANCE_FACET: _facet(used)},
    }
    return [
        _event(RunState.START, outputs=[], **common),
        _event(
            RunState.COMPLETE, outputs=[OutputDataset(namespace=namespace, name=model)], **common
        ),
    ]


def to_openlineage(graph: Mapping[str, Any]) -> list[dict[str, Any]]:
    """OpenLineage COMPLETE run events of the graph, as JSON: one per slice release
    (dataset -> slice) and one per training run (slices -> model)."""
    namespace = f"matgate://{graph.get('node', '')}"
    nodes = {n["id"]: n for n in graph["nodes"]}
    datasets_of = {s: d for d, s in _edges(graph, "released_as")}
    events: list[RunEvent] = []
    for s in _by_type(graph, "slice"):
        dataset = nodes.get(datasets_of.get(s["id"], ""), {}).get("name", "")
        events.append(
            _event(
                RunState.COMPLETE,
                key=s["id"],
                time=str(s.get("time") or ""),
                namespace=namespace,
                job=f"release/{dataset}",
                inputs=[dataset],
                outputs=[OutputDataset(namespace=namespace, name=s["id"])],
                facets={GOVERNANCE_FACET: _facet([s])},
            )
        )
    produced = dict(_edges(graph, "produced"))
    for r in _by_type(graph, "run"):
        consumed = _edges(graph, "consumed_by")
        used = [nodes[s] for s, run in consumed if run == r["id"] and s in nodes]
        model = nodes.get(produced.get(r["id"], ""), {})
        events.append(
            _event(
                RunState.COMPLETE,
                key=r["run_id"],
                time=str(r.get("time") or ""),
                namespace=namespace,
                job=f"train/{model.get('name', '')}",
                inputs=[u["id"] for u in used],
                outputs=[OutputDataset(namespace=namespace, name=model.get("id", ""))],
                facets={GOVERNANCE_FACET: _facet(used)},
            )
        )
    return [Serde.to_dict(e) for e in events]


class LineageEmitter:
    """Pushes OpenLineage run events to an HTTP endpoint (Marquez-compatible), off the caller.

    ``emit`` only serialises and queues: a worker thread of the library's asynchronous
    transport sends, retrying 5xx answers and network errors with exponential backoff, and
    holds a run's COMPLETE until its START went through. When the queue is full the event is
    dropped and logged rather than making a request wait.
    """

    def __init__(
        self,
        url: str,
        *,
        endpoint: str = "api/v1/lineage",
        api_key: str | None = None,
        timeout: float = 5.0,
        retries: int = 5,
        backoff: float = 0.3,
        queue_size: int = 10_000,
    ) -> None:
        auth = ApiKeyTokenProvider({"apiKey": api_key}) if api_key else TokenProvider({})
        retry = {
            "total": retries,
            "read": retries,
            "connect": retries,
            "backoff_factor": backoff,
            "status_forcelist": [429, 500, 502, 503, 504],
            "allowed_methods": ["HEAD", "POST"],
        }
        config = AsyncHttpConfig(
            url=url,
            endpoint=endpoint,
            timeout=timeout,
            auth=auth,
            max_queue_size=queue_size,
            max_concurrent_requests=4,
            retry=retry,
        )
        self._transport = AsyncHttpTransport(config)
        self._client = OpenLineageClient(transport=self._transport)
        self._queue_size = queue_size
        self.dropped = 0

    def emit(self, event: RunEvent) -> bool:
        """Queue ``event`` for sending; False (and a log line) if it had to be dropped."""
        if self._transport.event_queue.qsize() >= self._queue_size:
            self.dropped += 1
            log.warning("OpenLineage queue full: event of run %s dropped", event.run.runId)
            return False
        try:
            self._client.emit(event)
        except Exception:
            self.dropped += 1
            log.exception("OpenLineage event of run %s not queued", event.run.runId)
            return False
        return True

    def stats(self) -> dict[str, int]:
        """Events pending, sent and failed so far, and dropped here."""
        return {**self._transport.get_stats(), "dropped": self.dropped}

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait up to ``timeout`` seconds for every queued event to be sent (or to fail)."""
        return bool(self._transport.wait_for_completion(timeout))

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout`` seconds), then stop the worker."""
        self._transport.close(timeout)
