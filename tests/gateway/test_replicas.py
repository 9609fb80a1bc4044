"""Two replicas of one node on one PostgreSQL database see each other's policy changes."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from gateway_support import free_port, node_settings, persona_tokens

from gateway.app import create_app
from gateway.demo import prepare

NI = "aurora/ni-superalloys"
LINE = {
    "role": "partner",
    "domain": "aurora",
    "dataset": "ni-superalloys",
    "action": "read",
    "purpose": "education",
    "withhold": ["sensitivity:personal", "sensitivity:confidential"],
}


def _headers(app, name):
    return {"Authorization": f"Bearer {persona_tokens(app.state.node.issuer)[name]}"}


def _pull(client, headers):
    body = {"purpose": "education", "columns": ["alloy"], "limit": 1}
    return client.post(f"/datasets/{NI}/slice", json=body, headers=headers).status_code


@pytest.mark.postgres
@pytest.mark.parametrize("sync", ["version-check", "redis"])
def test_policy_change_reaches_the_other_replica(tmp_path, pg_url, redis_url, sync):
    import sqlalchemy as sa

    schema = f"replicas_{sync.replace('-', '_')}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    admin.dispose()
    url = (
        pg_url.replace("postgresql+psycopg://", "postgresql+psycopg://")
        + f"?options=-csearch_path%3D{schema}"
    )
    plan = prepare(tmp_path, free_port())
    extra = {"policy_sync_url": redis_url} if sync == "redis" else {}
    apps = [
        create_app(node_settings(plan, data_dir=plan["home"] / "node", database_url=url, **extra))
        for _ in range(2)
    ]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        partner = _headers(apps[0], "partner")
        assert _pull(one, partner) == 403 and _pull(two, partner) == 403
        r = one.post("/policies/aurora", json={"add": [LINE]}, headers=_headers(apps[0], "steward"))
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 5  # pub/sub delivery is asynchronous; bounded wait
        while _pull(two, partner) != 200:
            assert time.monotonic() < deadline, "the other replica never saw the change"
            time.sleep(0.05)
        # The slice's signed manifest is kept in the shared database: either replica serves it.
        body = {"purpose": "education", "columns": ["alloy"], "limit": 3}
        r = two.post(f"/datasets/{NI}/slice", json=body, headers=partner)
        rid = r.headers["matgate-request-id"]
        kept = one.get(f"/provenance/{rid}", headers=partner)
        assert kept.status_code == 200, kept.text
        assert kept.json()["manifest"]["rows"] == 3


@pytest.mark.postgres
def test_a_job_started_on_one_replica_is_seen_on_the_other(tmp_path, pg_url):
    import sqlalchemy as sa

    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS replicas_jobs"))
    admin.dispose()
    url = f"{pg_url}?options=-csearch_path%3Dreplicas_jobs"
    plan = prepare(tmp_path, free_port())
    apps = [
        create_app(node_settings(plan, data_dir=plan["home"] / "node", database_url=url))
        for _ in range(2)
    ]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        mia = _headers(apps[0], "ml-user")
        body = {"target": "target", "estimator": "ridge", "cv": 3}
        job = one.post("/datasets/aurora/steels-yield/train", json=body, headers=mia).json()
        deadline = time.monotonic() + 60
        while job["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
            job = two.get(f"/jobs/{job['id']}", headers=mia).json()
        assert job["status"] == "done", job["error"]
        model = two.get(f"/jobs/{job['id']}/model", headers=mia)
        assert model.status_code == 200 and model.content
