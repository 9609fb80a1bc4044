"""The audit log through the API: decisions recorded before release, proofs, auditors only,
fail-closed, and lineage from a dataset to the models trained on it."""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa

from audit.checkpoints import Checkpoint
from audit.keys import public_keys
from audit.merkle import verify_consistency, verify_inclusion
from gateway.client import Client

NI = "aurora/ni-superalloys"


def pull(api, auth, who, **body):
    body.setdefault("purpose", "research")
    return api.post(f"/datasets/{NI}/slice", json=body, headers=auth[who])


def events(api, auth, **params):
    r = api.get("/audit/events", params=params, headers=auth["auditor"])
    assert r.status_code == 200, r.text
    return r.json()["events"]


def test_allow_and_deny_are_recorded_with_reasons(api, auth):
    ok = pull(api, auth, "partner", limit=2)
    rid = ok.headers["matgate-request-id"]
    denied = pull(api, auth, "partner", purpose="commercial")
    assert denied.status_code == 403
    by_request = events(api, auth, principal="borealis:pablo", limit=1000)
    mine = [e for e in by_request if e["request_id"] == rid]
    names = [e["name"] for e in mine]
    assert names == ["decision", "slice"]  # the decision strictly before the completion
    decision, completion = mine
    assert decision["decision"] == "allow" and decision["policy_version"] >= 1
    assert completion["rows"] == 2 and completion["complete"] is True
    deny = events(api, auth, principal="borealis:pablo", decision="deny", purpose="commercial")
    assert deny and deny[-1]["reasons"]


def test_a_small_slice_is_recorded_in_one_commit_before_it_is_sent(api, auth):
    """Decision and completion are adjacent entries (one transaction), and both are in the log
    when the response arrives."""
    node = api.app.state.node
    before = node.audit.size()
    r = pull(api, auth, "ml-user", limit=3)
    assert r.status_code == 200 and "content-length" in r.headers  # sent whole
    rid = r.headers["matgate-request-id"]
    mine = [e for e in node.audit.iter_events() if e.event["request_id"] == rid]
    assert [e.event["name"] for e in mine] == ["decision", "slice"]
    assert mine[1].index == mine[0].index + 1 and mine[0].index >= before
    assert mine[1].event["rows"] == 3 and mine[1].event["complete"] is True


def test_only_auditors_read_the_log(api, auth):
    for who in ("ml-user", "partner", "steward"):
        assert api.get("/audit/events", headers=auth[who]).status_code == 403


def test_checkpoint_and_proofs_verify_offline(api, auth):
    pull(api, auth, "ml-user", limit=1)
    cp = Checkpoint.from_dict(api.get("/audit/checkpoint", headers=auth["ml-user"]).json())
    keys = public_keys(api.get("/.well-known/jwks.json").json())
    assert cp.verify(keys[cp.kid])
    proof = api.get(
        "/audit/proof/inclusion", params={"index": 0, "size": cp.size}, headers=auth["ml-user"]
    ).json()
    assert verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        0,
        cp.size,
        [bytes.fromhex(p) for p in proof["path"]],
        bytes.fromhex(cp.root),
    )
    pull(api, auth, "ml-user", limit=1)
    later = Checkpoint.from_dict(api.get("/audit/checkpoint", headers=auth["ml-user"]).json())
    assert later.size > cp.size
    cons = api.get(
        "/audit/proof/consistency",
        params={"from": cp.size, "to": later.size},
        headers=auth["ml-user"],
    ).json()
    assert verify_consistency(
        cp.size,
        later.size,
        bytes.fromhex(cp.root),
        bytes.fromhex(later.root),
        [bytes.fromhex(p) for p in cons["path"]],
    )


@pytest.mark.parametrize("params", [{"index": 10**9}, {"index": 0, "size": 10**9}])
def test_bad_proof_requests_are_400(api, auth, params):
    assert (
        api.get("/audit/proof/inclusion", params=params, headers=auth["auditor"]).status_code == 400
    )


def test_export_and_verify(api, auth):
    r = api.get(
        "/audit/export", params={"format": "jsonl", "name": "decision"}, headers=auth["auditor"]
    )
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert lines and all(x["name"] == "decision" for x in lines)
    csv = api.get("/audit/export", params={"format": "csv"}, headers=auth["auditor"])
    assert csv.text.splitlines()[0].startswith("index") or "," in csv.text.splitlines()[0]
    report = api.get("/audit/verify", headers=auth["auditor"]).json()
    assert report["ok"] is True


def test_nothing_leaves_when_the_log_cannot_be_written(fresh):
    api, auth = fresh
    node = api.app.state.node
    assert pull(api, auth, "ml-user", limit=1).status_code == 200
    with node.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_entries RENAME TO audit_entries_away"))
    try:
        r = pull(api, auth, "ml-user", limit=1)
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert b"ARROW" not in r.content
    finally:
        with node.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE audit_entries_away RENAME TO audit_entries"))


def test_lineage_from_dataset_to_model(live, tokens, api, auth):
    with Client(live, token=tokens["ml-user"], progress=False) as client:
        df = client.dataset(NI).pull(
            columns=["alloy", "yield_strength_mpa"], purpose="ml-training", limit=50
        )
        run = client.post(
            "/lineage/runs",
            {
                "manifests": [df.attrs["matgate_signature"]],
                "model_name": "ys-forest",
                "model_version": "7",
                "metrics": {"mae": 80.0},
                "purpose": "ml-training",
            },
        )
        graph = client.get("/lineage", params={"principal": "aurora:mia"})
    kinds = {n["type"] for n in graph["nodes"]}
    assert {"dataset", "slice", "principal", "run", "model"} <= kinds
    assert run["manifests"] == [df.attrs["matgate"]["id"]]
    prov = api.get(
        "/lineage", params={"model": "ys-forest", "format": "prov"}, headers=auth["auditor"]
    ).json()
    assert prov["entity"] and prov["activity"] and prov["agent"]
    ol = api.get(
        "/lineage", params={"dataset": NI, "format": "openlineage"}, headers=auth["auditor"]
    ).json()
    assert ol and ol[0]["eventType"]


def test_runs_over_others_or_forged_manifests_are_refused(live, tokens, api, auth):
    with Client(live, token=tokens["ml-user"], progress=False) as client:
        df = client.dataset(NI).pull(columns=["alloy"], purpose="research", limit=1)
    token = df.attrs["matgate_signature"]
    body = {"manifests": [token], "model_name": "m"}
    assert api.post("/lineage/runs", json=body, headers=auth["partner"]).status_code == 403
    head, payload, sig = token.split(".")
    forged = {**body, "manifests": [f"{head}.{payload}.{sig[:-4]}AAAA"]}
    assert api.post("/lineage/runs", json=forged, headers=auth["ml-user"]).status_code == 422


def test_decision_is_durable_before_the_first_byte(live, tokens, api, auth):
    headers = {"Authorization": f"Bearer {tokens['ml-user']}"}
    with (
        httpx.Client(base_url=live, headers=headers) as http,
        http.stream("POST", f"/datasets/{NI}/slice", json={"purpose": "research"}) as response,
    ):
        rid = response.headers["matgate-request-id"]
        chunks = response.iter_raw(64)
        assert next(chunks)
        recorded = [
            e["name"]
            for e in events(api, auth, principal="aurora:mia", limit=10_000)
            if e["request_id"] == rid
        ]
        assert "decision" in recorded
        assert sum(len(c) for c in chunks) > 0


def test_events_page_newest_first(api, auth):
    """Newest-first pages, followed by their cursors, are the oldest-first log reversed."""
    oldest = api.get("/audit/events?limit=10000", headers=auth["auditor"]).json()["events"]
    assert len(oldest) >= 3
    seen, cursor = [], None
    for _ in range(len(oldest)):
        params = {"limit": 2, "newest_first": "true", **({"cursor": cursor} if cursor else {})}
        page = api.get("/audit/events", params=params, headers=auth["auditor"]).json()
        seen += [e["index"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    newest = seen[: len(oldest)]
    assert newest == sorted(newest, reverse=True)
    assert set(newest) >= {e["index"] for e in oldest}
