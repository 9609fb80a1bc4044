"""PROV and OpenLineage as their own libraries and validators see them: the PROV document loads
in ``prov`` and round-trips PROV-JSON, PROV-XML and PROV-O; OpenLineage events pass the official
JSON schema and reach an OpenLineage endpoint (a receiver on loopback) with retries, off the
caller's thread."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import prov
import pytest
import sqlalchemy as sa
from audit_samples import delivered
from jsonschema import Draft202012Validator
from openlineage.client.event_v2 import RunState
from prov.model import PROV, ProvDocument, QualifiedName
from rdflib import Graph, URIRef
from rdflib.namespace import RDF

from audit.lineage import Lineage
from audit.log import AuditLog
from audit.manifests import sign_manifest
from audit.provenance import (
    GOVERNANCE_FACET,
    LineageEmitter,
    prov_document,
    run_events,
    serialize_prov,
    slice_event,
    to_openlineage,
    to_prov_json,
)

SCHEMA = Path(__file__).resolve().parent.parent / "standards" / "openlineage" / "OpenLineage.json"
MATGATE = "https://matgate.org/ns/prov#"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def manifest(mid: str, principal: str = "ana@uni-a", **extra: Any) -> dict[str, Any]:
    return {
        "id": mid,
        "node": "node-a",
        "dataset": "inst-a/alloys",
        "dataset_version": "3",
        "principal": principal,
        "purpose": "ml-training",
        "decision": {"withheld": ["operator"], "masked": {}, "reasons": ["line 4"]},
        "policy_version": 7,
        "rows": 120,
        "bytes": 4096,
        "sha256": "ab" * 32,
        "licence": "CC-BY-4.0",
        "time": "2025-03-01T09:00:00+00:00",
        **extra,
    }


@pytest.fixture
def story(log: AuditLog, engine: sa.Engine) -> Lineage:
    lineage = Lineage(engine, log)
    tokens = []
    for i, mid in enumerate(("m-1", "m-2", "m-3")):
        log.append(delivered(i + 1, mid, principal="ana@uni-a"))
        token = sign_manifest(manifest(mid), log.signer.key, log.signer.kid)
        lineage.record_slice(token)
        tokens.append(token)
    lineage.register_run(
        principal="ana@uni-a",
        model_name="hardness-rf",
        model_version="1",
        manifests=tokens[:2],
        metrics={"mae": 3.5, "r2": 0.91},
        run_id="run-ana",
    )
    return lineage


def _values(doc: ProvDocument) -> Iterator[tuple[Any, Any]]:
    for record in doc.get_records():
        yield from record.attributes


def test_prov_types_are_qualified_names_and_values_are_flat(story: Lineage) -> None:
    doc = prov_document(story.graph(dataset="inst-a/alloys"))
    types = [v for k, v in _values(doc) if k == PROV["type"]]
    assert types and all(isinstance(t, QualifiedName) for t in types)
    assert {t.uri for t in types} >= {MATGATE + "Dataset", MATGATE + "Slice", MATGATE + "Model"}
    assert not [v for _, v in _values(doc) if isinstance(v, dict | list | tuple)]
    run = doc.get_record(f"matgate:run:{'run-ana'}")[0]
    metrics = {str(k): v for k, v in run.attributes if "metric_" in str(k)}
    assert metrics == {"matgate:metric_mae": 3.5, "matgate:metric_r2": 0.91}


@pytest.mark.parametrize("fmt", ["json", "xml", "rdf"])
def test_prov_round_trips(story: Lineage, fmt: str) -> None:
    doc = prov_document(story.graph(model="hardness-rf"))
    text = serialize_prov(doc, fmt)  # type: ignore[arg-type]
    kwargs = {"rdf_format": "turtle"} if fmt == "rdf" else {}
    back = ProvDocument.deserialize(content=text, format=fmt, **kwargs)
    assert back == doc
    # PROV-N (which prov writes but does not read) says the same of the copy, record by record.
    assert _provn(back) == _provn(doc)
    assert "wasGeneratedBy(matgate:model\\:hardness-rf@1, matgate:run\\:run-ana" in (
        serialize_prov(back, "provn")
    )


def _provn(doc: ProvDocument) -> list[str]:
    """PROV-N records in order, each one's attributes in order (formats keep neither; an RDF
    parser adds its own prefixes)."""
    lines = []
    for line in serialize_prov(doc, "provn").splitlines():
        if line.strip().startswith("prefix "):
            continue
        head, bracket, rest = line.partition(", [")
        if bracket:
            items = re.split(r", (?=[a-z]+:[A-Za-z0-9_]+=)", rest.removesuffix("])"))
            line = f"{head}, [{', '.join(sorted(items))}])"
        lines.append(line)
    return sorted(lines)


def test_prov_json_export_loads_in_prov(story: Lineage) -> None:
    exported = to_prov_json(story.graph(principal="ana@uni-a"))
    loaded = prov.read(_text(json.dumps(exported)), format="json")
    assert loaded == prov_document(story.graph(principal="ana@uni-a"))
    assert len(list(loaded.get_records())) > 5


def _text(content: str) -> Any:
    import io

    return io.StringIO(content)


def test_prov_o_types_are_classes_not_literals(story: Lineage) -> None:
    g = Graph().parse(data=serialize_prov(prov_document(story.graph(model="hardness-rf")), "rdf"))
    kinds = set(g.objects(None, RDF.type))
    assert kinds and all(isinstance(k, URIRef) for k in kinds)
    assert URIRef(MATGATE + "TrainingRun") in kinds and URIRef(MATGATE + "Model") in kinds


def test_openlineage_events_pass_the_official_schema(
    story: Lineage, validator: Draft202012Validator
) -> None:
    events = to_openlineage(story.graph(dataset="inst-a/alloys"))
    m = manifest("m-9", completed="2025-03-01T09:00:02+00:00")
    events += [
        _dict(slice_event(m, RunState.START)),
        _dict(slice_event(m, RunState.COMPLETE)),
        _dict(slice_event({**m, "rows": None}, RunState.FAIL, error="client went away")),
        *[_dict(e) for e in run_events("node-a", story.run("run-ana").to_dict(), [m])],  # type: ignore[union-attr]
    ]
    for event in events:
        errors = sorted(validator.iter_errors(event), key=str)
        assert not errors, (event, [e.message for e in errors])
    kinds = [e["eventType"] for e in events[-5:]]
    assert kinds == ["START", "COMPLETE", "FAIL", "START", "COMPLETE"]
    complete = events[-4]
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 120
    assert events[-3]["run"]["facets"]["errorMessage"]["message"] == "client went away"
    facet = events[-1]["run"]["facets"][GOVERNANCE_FACET]
    assert facet["decisions"][0]["decision"] == "allow" and facet["policy_versions"] == [7]
    assert len({e["run"]["runId"] for e in events[-5:-2]}) == 1  # one release, one run id


def test_the_governance_facet_follows_its_own_schema(story: Lineage) -> None:
    from importlib.resources import files

    from referencing import Registry, Resource

    core = json.loads(SCHEMA.read_text(encoding="utf-8"))
    ours = json.loads(files("audit").joinpath("schemas/GovernanceRunFacet.json").read_text())
    registry = Registry().with_resources(
        [
            ("https://openlineage.io/spec/2-0-2/OpenLineage.json", Resource.from_contents(core)),
            (ours["$id"], Resource.from_contents(ours)),
        ]
    )
    validator = Draft202012Validator(ours, registry=registry)
    for event in to_openlineage(story.graph(dataset="inst-a/alloys")):
        facets = event["run"]["facets"]
        assert facets[GOVERNANCE_FACET]["_schemaURL"].startswith(ours["$id"])
        assert not list(validator.iter_errors(facets))
    assert list(validator.iter_errors({GOVERNANCE_FACET: {"purposes": "research"}}))


def test_the_schema_bites(validator: Draft202012Validator) -> None:
    event = _dict(slice_event(manifest("m-1"), RunState.START))
    del event["run"]["runId"]
    assert list(validator.iter_errors(event))
    event = _dict(slice_event(manifest("m-1"), RunState.START))
    event["eventTime"] = 12
    assert list(validator.iter_errors(event))


def _dict(event: Any) -> dict[str, Any]:
    from openlineage.client.serde import Serde

    return dict(Serde.to_dict(event))


class Receiver:
    """An OpenLineage endpoint on loopback: answers 503 to the first ``fail`` posts, then 201;
    holds every answer while ``gate`` is closed."""

    def __init__(self, fail: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.auth: list[str | None] = []
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.gate.wait(30)
                receiver.paths.append(self.path)
                receiver.auth.append(self.headers.get("Authorization"))
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(503)
                else:
                    receiver.events.append(json.loads(body))
                    self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def test_events_reach_an_endpoint_with_retries(validator: Draft202012Validator) -> None:
    m = manifest(uuid.uuid4().hex)
    with Receiver(fail=2) as receiver:
        emitter = LineageEmitter(receiver.url, api_key="s3cret", backoff=0.01, timeout=5)
        try:
            assert emitter.emit(slice_event(m, RunState.START))
            assert emitter.emit(slice_event(m, RunState.COMPLETE))
            assert emitter.flush(30)
        finally:
            emitter.close(5)
    assert [e["eventType"] for e in receiver.events] == ["START", "COMPLETE"]
    assert receiver.paths[0] == "/api/v1/lineage" and len(receiver.paths) == 4  # two 503s retried
    assert set(receiver.auth) == {"Bearer s3cret"}
    for event in receiver.events:
        assert not list(validator.iter_errors(event))
    assert emitter.stats()["success"] == 2


def test_emitting_does_not_wait_for_the_endpoint() -> None:
    with Receiver() as receiver:
        receiver.gate.clear()  # the endpoint answers nothing until the gate opens
        emitter = LineageEmitter(receiver.url, timeout=30)
        try:
            for i in range(5):
                assert emitter.emit(slice_event(manifest(f"m-{i}"), RunState.START))
            assert receiver.events == []  # all five queued while the endpoint hangs
            receiver.gate.set()
            assert emitter.flush(30)
        finally:
            emitter.close(5)
    assert len(receiver.events) == 5


def test_a_full_queue_drops_instead_of_blocking() -> None:
    with Receiver() as receiver:
        receiver.gate.clear()
        emitter = LineageEmitter(receiver.url, timeout=30, queue_size=1)
        try:
            starts = [slice_event(manifest(f"m-{i}"), RunState.START) for i in range(50)]
            sent = [emitter.emit(event) for event in starts]
            assert not all(sent) and emitter.stats()["dropped"] == sent.count(False)
            receiver.gate.set()
            emitter.flush(30)
        finally:
            emitter.close(5)
