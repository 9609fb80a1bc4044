"""Nothing changes unaudited: every state change commits with its audit entry, or not at all.

The audit table is made to refuse inserts (a trigger raising) on SQLite and on PostgreSQL
(``MATGATE_TEST_NODE_DB``, when set to a PostgreSQL URL, is the server used); each change is then
attempted, must answer 503 problem+json, and must have left everything as it was: the policy
version and lines, the catalog, the agreement's effect, the jobs and the lineage runs. With the
trigger gone, the same requests succeed and each leaves exactly one entry.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from gateway_support import free_port, node_settings, persona_tokens

from gateway.app import create_app
from gateway.demo import prepare

NI = "aurora/ni-superalloys"
STEELS = "aurora/steels-yield"
LINE = {
    "role": "partner",
    "domain": "aurora",
    "dataset": "ni-superalloys",
    "action": "read",
    "purpose": "education",
    "withhold": ["sensitivity:personal", "sensitivity:confidential"],
}
TRAIN = {
    "role": "member",
    "domain": "aurora",
    "dataset": "ni-superalloys",
    "action": "train",
    "purpose": "ml-training",
}
DATASET = {
    "institution": "aurora",
    "name": "steels-copy",
    "title": "Steels again",
    "license": "MIT",
    "location": {"store": "lab", "table": "steels_yield"},
    "columns": [
        {"name": "formula", "type": "string", "pspp": "structure"},
        {"name": "target", "type": "float", "pspp": "property", "unit": "MPa"},
    ],
}
PG_REFUSE = (
    "CREATE OR REPLACE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit store refuses writes'; END $$",
    "CREATE TRIGGER audit_refuse BEFORE INSERT ON audit_entries FOR EACH ROW {when} "
    "EXECUTE FUNCTION audit_refuse()",
)
SQLITE_REFUSE = (
    "CREATE TRIGGER audit_refuse BEFORE INSERT ON audit_entries {when} "
    "BEGIN SELECT RAISE(ABORT, 'audit store refuses writes'); END"
)


def refuse(engine: sa.Engine, *, only: str | None = None) -> None:
    """Make the audit table refuse inserts (of events named ``only``, or all)."""
    when = f"WHEN (NEW.name = '{only}')" if only else ""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for statement in PG_REFUSE:
                conn.exec_driver_sql(statement.format(when=when))
        else:
            conn.exec_driver_sql(SQLITE_REFUSE.format(when=when))


def accept(engine: sa.Engine) -> None:
    """Take the refusing trigger away."""
    with engine.begin() as conn:
        pg = conn.dialect.name == "postgresql"
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_refuse" + (" ON audit_entries" * pg))


def _pg_base(request: pytest.FixtureRequest) -> str:
    configured = os.environ.get("MATGATE_TEST_NODE_DB", "")
    if configured.startswith("postgresql"):
        return configured
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def node(
    request: pytest.FixtureRequest, tmp_path: Any
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """A demo node of its own on SQLite or in a fresh PostgreSQL schema."""
    overrides: dict[str, Any] = {}
    if request.param == "postgresql":
        base = _pg_base(request)
        schema = f"atomic_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(base)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        admin.dispose()
        joiner = "&" if "?" in base else "?"
        overrides["database_url"] = f"{base}{joiner}options=-csearch_path%3D{schema}"
    app = create_app(node_settings(prepare(tmp_path, free_port()), **overrides))
    headers = {
        name: {"Authorization": f"Bearer {token}"}
        for name, token in persona_tokens(app.state.node.issuer).items()
    }
    with TestClient(app) as client:
        yield client, headers


def state(api: TestClient, auth: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Everything a refused change must leave as it was, read from the database and the node."""
    node = api.app.state.node  # type: ignore[attr-defined]
    with node.engine.connect() as conn:
        counts = {
            table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
            for table in (
                "policy_changes",
                "casbin_rule",
                "catalog_datasets",
                "policy_acceptances",
                "jobs",
                "lineage_runs",
                "audit_entries",
            )
        }
    lines = api.get("/policies/aurora", headers=auth["steward"]).json()
    return {
        **counts,
        "version": node.governance.version,
        "lines": lines,
        "catalog": sorted(d.id for d in node.catalog.all()),
        "audit_size": node.audit.size(),
    }


def _token(api: TestClient, auth: dict[str, dict[str, str]]) -> str:
    body = {"purpose": "research", "columns": ["alloy"], "limit": 2}
    r = api.post(f"/datasets/{NI}/slice", json=body, headers=auth["ml-user"])
    assert r.status_code == 200, r.text
    kept = api.get(f"/provenance/{r.headers['matgate-request-id']}", headers=auth["ml-user"])
    return str(kept.json()["signature"])


def _changes(token: str) -> list[tuple[str, str, str, dict[str, Any] | None, str]]:
    """(who, method path, event name, body, what it changes) of each state change."""
    run = {"manifests": [token], "model_name": "m", "model_version": "1"}
    return [
        ("steward", "/policies/aurora", "policy", {"add": [LINE]}, "policy"),
        ("steward", "/policies/aurora", "policy", {"remove": [LINE]}, "policy"),
        ("steward", "/catalog", "dataset", DATASET, "catalog"),
        ("partner", "/agreements/aurora-steels-terms/accept", "agreement", None, "agreement"),
        ("ml-user", "/lineage/runs", "run", run, "run"),
    ]


def test_every_change_commits_with_its_entry_or_not_at_all(node):
    api, auth = node
    engine = api.app.state.node.engine
    token = _token(api, auth)
    partner = {"purpose": "research", "limit": 1}
    for who, path, name, body, what in _changes(token):
        if what == "policy" and "remove" in (body or {}):
            continue  # removal is tried once the line exists (below)
        before = state(api, auth)
        refuse(engine)
        try:
            r = api.post(path, json=body, headers=auth[who])
        finally:
            accept(engine)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert state(api, auth) == before, f"{path} changed something unaudited"
        # the same change, with the log writable: done, and recorded exactly once
        r = api.post(path, json=body, headers=auth[who])
        assert r.status_code in (200, 201), (path, r.text)
        after = state(api, auth)
        assert after["audit_size"] == before["audit_size"] + 1, path
        entry = api.app.state.node.audit.entry(after["audit_size"] - 1)  # type: ignore[attr-defined]
        assert entry.event["name"] == name
    # the acceptance did not take effect while refused, and does now
    assert api.post(f"/datasets/{STEELS}/slice", json=partner, headers=auth["partner"]).is_success


def test_a_refused_policy_removal_keeps_the_line(node):
    api, auth = node
    engine = api.app.state.node.engine
    assert api.post("/policies/aurora", json={"add": [LINE]}, headers=auth["steward"]).is_success
    before = state(api, auth)
    refuse(engine)
    try:
        r = api.post("/policies/aurora", json={"remove": [LINE]}, headers=auth["steward"])
    finally:
        accept(engine)
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert state(api, auth) == before
    pull = {"purpose": "education", "columns": ["alloy"], "limit": 1}
    assert api.post(f"/datasets/{NI}/slice", json=pull, headers=auth["partner"]).is_success


def test_a_refused_acceptance_does_not_take_effect(node):
    api, auth = node
    engine = api.app.state.node.engine
    pull = {"purpose": "research", "limit": 1}
    refuse(engine, only="agreement")
    try:
        r = api.post("/agreements/aurora-steels-terms/accept", headers=auth["partner"])
        assert r.status_code == 503
        # decisions are still recorded (only agreement entries are refused): still denied
        refused = api.post(f"/datasets/{STEELS}/slice", json=pull, headers=auth["partner"])
        assert refused.status_code == 403, refused.text
    finally:
        accept(engine)


def test_a_job_is_not_queued_without_its_entry(node):
    api, auth = node
    engine = api.app.state.node.engine
    steward = auth["steward"]
    assert api.post("/policies/aurora", json={"add": [TRAIN]}, headers=steward).is_success
    body = {"target": "yield_strength_mpa", "cv": 2, "purpose": "ml-training"}
    before = state(api, auth)
    refuse(engine, only="job")  # the train decision is recorded; the job's own entry is refused
    try:
        r = api.post(f"/datasets/{NI}/train", json=body, headers=auth["ml-user"])
    finally:
        accept(engine)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    after = state(api, auth)
    assert after["jobs"] == before["jobs"]
    assert after["audit_size"] == before["audit_size"] + 1  # the decision alone
    r = api.post(f"/datasets/{NI}/train", json=body, headers=auth["ml-user"])
    assert r.status_code == 202, r.text
    job = r.json()
    deadline = time.monotonic() + 120
    while job["status"] in ("queued", "running"):  # let it finish before the node closes
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = api.get(f"/jobs/{job['id']}", headers=auth["ml-user"]).json()
    assert job["status"] == "done", job
    log = api.app.state.node.audit  # type: ignore[attr-defined]
    statuses = [e.event["status"] for e in log.iter_events() if e.event["name"] == "job"]
    assert statuses == ["queued", "running", "done"]


def test_start_up_registrations_and_seed_policy_are_recorded(node):
    api, _auth = node
    log = api.app.state.node.audit  # type: ignore[attr-defined]
    names = [e.event["name"] for e in log.events(None, limit=10_000).entries]
    catalog = api.app.state.node.catalog.all()  # type: ignore[attr-defined]
    assert names.count("dataset") == len(catalog)
    assert names.count("policy") == 1  # the seed policy, version 1


def test_a_combined_edit_is_one_version_or_nothing(node):
    api, auth = node
    steward = auth["steward"]
    assert api.post("/policies/aurora", json={"add": [LINE]}, headers=steward).is_success
    version = api.app.state.node.governance.version  # type: ignore[attr-defined]
    other = {**LINE, "purpose": "research"}
    duplicate = {"remove": [LINE], "add": [other, other]}  # the add is invalid: nothing happens
    assert api.post("/policies/aurora", json=duplicate, headers=steward).status_code == 422
    assert api.app.state.node.governance.version == version  # type: ignore[attr-defined]
    swap = api.post("/policies/aurora", json={"remove": [LINE], "add": [other]}, headers=steward)
    assert swap.status_code == 200, swap.text
    assert swap.json()["version"] == version + 1
    (change,) = swap.json()["changes"]
    assert len(change["added"]) == len(change["removed"]) == 1


def test_a_share_is_offered_and_withdrawn_only_with_its_entry(node):
    """A Delta Sharing share change commits with its ``share`` entry, or not at all."""
    api, auth = node
    engine = api.app.state.node.engine  # type: ignore[attr-defined]
    offer = {"datasets": ["expt-gap"], "users": ["cygnus:sam"]}
    url = "/delta-sharing/admin/shares/gaps"

    def stored() -> int:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM delta_shares").scalar() or 0)

    before, size = stored(), api.app.state.node.audit.size()  # type: ignore[attr-defined]
    refuse(engine, only="share")
    r = api.put(url, json=offer, headers=auth["steward"])
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert stored() == before
    accept(engine)
    assert api.put(url, json=offer, headers=auth["steward"]).status_code == 200
    assert stored() == before + 1
    refuse(engine, only="share")
    assert api.delete(url, headers=auth["steward"]).status_code == 503
    assert stored() == before + 1  # still offered: the withdrawal was not recorded
    accept(engine)
    assert api.delete(url, headers=auth["steward"]).status_code == 204
    assert stored() == before
    events = api.get("/audit/events?name=share", headers=auth["auditor"]).json()["events"]
    assert [(e["share"], e["change"]) for e in events] == [
        ("gaps", "offered"),
        ("gaps", "withdrawn"),
    ]
    assert api.app.state.node.audit.size() >= size + 2  # type: ignore[attr-defined]
