"""Signed manifests, run registration checks, the lineage graph and its PROV / OpenLineage forms."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from audit_samples import delivered

from audit.errors import AuditUnavailable, LineageError, ManifestError, UnknownKey
from audit.events import RunRegistered
from audit.keys import Signer
from audit.lineage import Lineage
from audit.log import AuditLog
from audit.manifests import sign_manifest, verify_manifest
from audit.provenance import GOVERNANCE_FACET, to_openlineage, to_prov_json
from audit.search import EventFilter


def manifest(
    mid: str, *, dataset: str = "inst-a/alloys", principal: str = "ana@uni-a", node: str = "node-a"
) -> dict[str, Any]:
    return {
        "id": mid,
        "node": node,
        "dataset": dataset,
        "dataset_version": "3",
        "principal": principal,
        "purpose": "ml-training",
        "decision": "allow",
        "policy_version": 7,
        "rows": 120,
        "sha256": "ab" * 32,
        "licence": "CC-BY-4.0",
        "obligations": [{"kind": "attribute", "detail": "Cite Doe 2024"}],
        "time": "2025-03-01T09:00:00.000000Z",
    }


@pytest.fixture
def lineage(log: AuditLog, engine: sa.Engine) -> Lineage:
    return Lineage(engine, log)


def release(log: AuditLog, lineage: Lineage, mid: str, **kw: Any) -> str:
    """What the gateway does for a slice: audit its completion, sign and record its manifest."""
    m = manifest(mid, **kw)
    log.append(delivered(1, mid, principal=m["principal"]))
    token = sign_manifest(m, log.signer.key, log.signer.kid)
    lineage.record_slice(token)
    return token


def test_manifest_signature_round_trip_and_failures(signer: Signer) -> None:
    m = manifest("m-1")
    token = sign_manifest(m, signer.key, signer.kid)
    assert verify_manifest(token, signer.jwks()) == m
    assert verify_manifest(token, signer.jwks()["keys"]) == m
    with pytest.raises(UnknownKey):
        verify_manifest(token, Signer.generate("other-kid").jwks())
    with pytest.raises(ManifestError, match="does not verify"):
        verify_manifest(token, Signer.generate(signer.kid).jwks())
    head, _, sig = token.split(".")
    forged = sign_manifest({**m, "rows": 1_000_000}, signer.key, signer.kid).split(".")[1]
    with pytest.raises(ManifestError):
        verify_manifest(f"{head}.{forged}.{sig}", signer.jwks())
    with pytest.raises(ManifestError):
        verify_manifest("not-a-token", signer.jwks())


def test_manifest_tokens_are_what_joserfc_writes(signer: Signer) -> None:
    from joserfc import jws
    from joserfc.jwk import OKPKey

    from audit.canonical import canonical_json

    header = {"alg": "Ed25519", "kid": signer.kid, "typ": "matgate-manifest+jws"}
    for m in (manifest("m-1"), {**manifest("m-2"), "title": "Légierung \u2014 ü", "n": 1.5}):
        expected = jws.serialize_compact(
            header, canonical_json(m), OKPKey.import_key(signer.key), algorithms=["Ed25519"]
        )
        assert sign_manifest(m, signer.key, signer.kid) == expected


def test_a_delivery_and_its_manifest_commit_together(
    log: AuditLog, lineage: Lineage, engine: sa.Engine
) -> None:
    m = manifest("m-1")
    token = sign_manifest(m, log.signer.key, log.signer.kid)
    index = log.append(delivered(1, "m-1"), also=lineage.slice_writer(m, token))
    assert log.has_manifest("m-1") and lineage.slice("m-1") == (m, token)
    assert log.entry(index).event["manifest_id"] == "m-1"
    log.append(delivered(1, "m-1"), also=lineage.slice_writer(m, token))  # kept once
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lineage_slices")).scalar() == 1

    def broken(conn: sa.Connection) -> None:
        raise sa.exc.OperationalError("INSERT", None, Exception("disk full"))

    size = log.size()
    with pytest.raises(AuditUnavailable):
        log.append(delivered(1, "m-2"), also=broken)
    assert log.size() == size and not log.has_manifest("m-2")  # neither committed
    with pytest.raises(LineageError, match="not this node's"):
        lineage.slice_writer(manifest("m-3", node="node-b"), token)


def test_register_run_links_manifests_and_is_audited(log: AuditLog, lineage: Lineage) -> None:
    t1, t2 = release(log, lineage, "m-1"), release(log, lineage, "m-2", dataset="inst-a/films")
    run = lineage.register_run(
        principal="ana@uni-a",
        model_name="hardness-rf",
        model_version="1.0",
        model_hash="sha256:" + "cd" * 32,
        metrics={"r2": 0.91},
        manifests=[t1, t2],
        purpose="ml-training",
    )
    assert run.manifests == ("m-1", "m-2") and uuid.UUID(run.run_id)
    assert lineage.run(run.run_id) == run
    event = log.entry(run.audit_index).event
    assert event["name"] == RunRegistered.name and event["manifests"] == ["m-1", "m-2"]
    assert event["metrics"] == {"r2": 0.91}
    assert sum(1 for _ in log.iter_events(EventFilter(name="run"))) == 1


def test_register_run_refusals(log: AuditLog, lineage: Lineage, signer: Signer) -> None:
    good = release(log, lineage, "m-1")
    foreign = Signer.generate("peer-key")
    cases = {
        "no manifests": [],
        "unknown key": [sign_manifest(manifest("m-9"), foreign.key, foreign.kid)],
        "other node": [sign_manifest(manifest("m-8", node="node-b"), signer.key, signer.kid)],
        "not in log": [sign_manifest(manifest("m-7"), signer.key, signer.kid)],
        "bad signature": [good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")],
    }
    for why, tokens in cases.items():
        with pytest.raises(LineageError):
            lineage.register_run(
                principal="ana@uni-a", model_name="m", model_version="1", manifests=tokens
            )
        assert log.size() == 1, why  # nothing was appended for a refused run
    lineage.register_run(
        principal="ana@uni-a", model_name="m", model_version="1", manifests=[good], run_id="r-1"
    )
    with pytest.raises(LineageError, match="already"):
        lineage.register_run(
            principal="ana@uni-a", model_name="m", model_version="1", manifests=[good], run_id="r-1"
        )


@pytest.fixture
def story(log: AuditLog, lineage: Lineage) -> Lineage:
    """ana trains a model on two alloys slices; bo trains on a films slice; one slice unused."""
    a1 = release(log, lineage, "m-a1")
    a2 = release(log, lineage, "m-a2")
    b1 = release(log, lineage, "m-b1", dataset="inst-a/films", principal="bo@uni-b")
    release(log, lineage, "m-idle", principal="bo@uni-b")
    lineage.register_run(
        principal="ana@uni-a",
        model_name="hardness-rf",
        model_version="1",
        manifests=[a1, a2],
        metrics={"mae": 3.5},
        run_id="run-ana",
    )
    lineage.register_run(
        principal="bo@uni-b",
        model_name="gap-gbr",
        model_version="2",
        manifests=[b1],
        run_id=str(uuid.UUID(int=7)),
    )
    return lineage


def _ids(graph: dict[str, Any], kind: str) -> set[str]:
    return {n["id"] for n in graph["nodes"] if n["type"] == kind}


def test_graph_by_dataset(story: Lineage) -> None:
    g = story.graph(dataset="inst-a/alloys")
    assert _ids(g, "slice") == {"slice:m-a1", "slice:m-a2", "slice:m-idle"}
    assert _ids(g, "principal") == {"principal:ana@uni-a", "principal:bo@uni-b"}
    assert _ids(g, "model") == {"model:hardness-rf@1"}
    assert {"source": "slice:m-a1", "target": "run:run-ana", "type": "consumed_by"} in g["edges"]
    assert {"source": "run:run-ana", "target": "model:hardness-rf@1", "type": "produced"} in g[
        "edges"
    ]


def test_graph_by_principal_and_by_model(story: Lineage) -> None:
    g = story.graph(principal="bo@uni-b")
    assert _ids(g, "slice") == {"slice:m-b1", "slice:m-idle"}
    assert _ids(g, "model") == {"model:gap-gbr@2"}
    g = story.graph(model="hardness-rf@1")
    assert _ids(g, "dataset") == {"dataset:inst-a/alloys"}
    assert _ids(g, "slice") == {"slice:m-a1", "slice:m-a2"}
    assert story.graph(model="hardness-rf@9")["nodes"] == []
    with pytest.raises(ValueError):
        story.graph()


def test_prov_json_export(story: Lineage) -> None:
    doc = to_prov_json(story.graph(model="hardness-rf"))
    model_type = doc["entity"]["matgate:model:hardness-rf@1"]["prov:type"]
    assert model_type == {"$": "matgate:Model", "type": "xsd:QName"}
    assert "matgate:principal:ana@uni-a" in doc["agent"]
    metric = doc["activity"]["matgate:run:run-ana"]["matgate:metric_mae"]
    assert float(metric["$"]) == 3.5 and metric["type"] == "xsd:double"
    used = {(u["prov:activity"], u["prov:entity"]) for u in doc["used"].values()}
    assert used == {
        ("matgate:run:run-ana", "matgate:slice:m-a1"),
        ("matgate:run:run-ana", "matgate:slice:m-a2"),
    }
    generated = [g["prov:entity"] for g in doc["wasGeneratedBy"].values()]
    assert generated == ["matgate:model:hardness-rf@1"]
    derived = {
        (d["prov:generatedEntity"], d["prov:usedEntity"]) for d in doc["wasDerivedFrom"].values()
    }
    assert ("matgate:slice:m-a1", "matgate:dataset:inst-a/alloys") in derived
    assert ("matgate:model:hardness-rf@1", "matgate:slice:m-a2") in derived
    assoc = list(doc["wasAssociatedWith"].values())
    assert assoc == [
        {"prov:activity": "matgate:run:run-ana", "prov:agent": "matgate:principal:ana@uni-a"}
    ]


def test_openlineage_export(story: Lineage) -> None:
    events = to_openlineage(story.graph(principal="bo@uni-b"))
    train = [e for e in events if e["job"]["name"] == "train/gap-gbr"]
    assert len(train) == 1 and len(events) == 3
    ev = train[0]
    assert ev["eventType"] == "COMPLETE" and ev["run"]["runId"] == str(uuid.UUID(int=7))
    assert ev["job"]["namespace"] == "matgate://node-a"
    assert [i["name"] for i in ev["inputs"]] == ["slice:m-b1"]
    assert [o["name"] for o in ev["outputs"]] == ["model:gap-gbr@2"]
    facet = ev["run"]["facets"][GOVERNANCE_FACET]
    assert facet["purposes"] == ["ml-training"] and facet["policy_versions"] == [7]
    assert facet["decisions"][0]["decision"] == "allow" and "_producer" in facet
    release_ev = next(e for e in events if e["outputs"][0]["name"] == "slice:m-idle")
    assert release_ev["inputs"][0]["name"] == "inst-a/alloys"
    assert all(uuid.UUID(e["run"]["runId"]) for e in events)
