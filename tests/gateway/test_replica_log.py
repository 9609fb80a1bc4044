"""Two replicas of one node on one PostgreSQL database write one audit log under mixed load
(slices and policy edits from both at once), and serve the same tree heads and proofs."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from gateway_support import LiveServer, free_port, node_settings, persona_tokens

from audit.bundle import verify_log
from gateway.app import create_app
from gateway.demo import prepare

pytestmark = [
    pytest.mark.postgres,
    # FastAPI silences this pydantic warning with warnings.catch_warnings(), which is not
    # thread-safe: under concurrent requests in one process the "error" filter can leak through
    pytest.mark.filterwarnings("ignore::pydantic.warnings.UnsupportedFieldAttributeWarning"),
]
NI = "aurora/ni-superalloys"
PULLS = 12
EDITS = 4


def _line(purpose: str) -> dict[str, Any]:
    return {
        "role": "partner",
        "domain": "aurora",
        "dataset": "ni-superalloys",
        "action": "read",
        "purpose": purpose,
        "withhold": ["sensitivity:personal", "sensitivity:confidential"],
    }


def _pulls(url: str, token: str, errors: list[str]) -> None:
    body = {"purpose": "research", "columns": ["alloy"], "limit": 2}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(PULLS):
            r = client.post(f"/datasets/{NI}/slice", json=body, timeout=60)
            if r.status_code != 200:
                errors.append(f"slice {r.status_code} {r.text[:200]}")


def _edits(url: str, token: str, purpose: str, errors: list[str]) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(EDITS):
            for change in ({"add": [_line(purpose)]}, {"remove": [_line(purpose)]}):
                r = client.post("/policies/aurora", json=change, timeout=60)
                if r.status_code != 200:
                    errors.append(f"policy {r.status_code} {r.text[:1000]}")


def test_two_replicas_append_to_one_log_and_agree_on_heads_and_proofs(tmp_path, pg_url):
    schema = f"replica_log_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    admin.dispose()
    plan = prepare(tmp_path, free_port())
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    apps = [create_app(node_settings(plan, database_url=url)) for _ in range(2)]
    servers = [LiveServer(app, free_port()).start() for app in apps]
    try:
        tokens = persona_tokens(apps[0].state.node.issuer)
        errors: list[str] = []
        work = [
            threading.Thread(target=_pulls, args=(s.url, tokens["ml-user"], errors))
            for s in servers
            for _ in range(2)
        ]
        work += [
            threading.Thread(target=_edits, args=(s.url, tokens["steward"], purpose, errors))
            for s, purpose in zip(servers, ("education", "commercial"), strict=True)
        ]
        for t in work:
            t.start()
        for t in work:
            t.join(timeout=300)
        assert not errors, errors[:5]

        logs = [app.state.node.audit for app in apps]
        report = verify_log(logs[0]).to_dict()
        assert report["ok"], report
        size = logs[0].size()
        assert logs[1].size() == size
        # decisions and slice completions of 4 x PULLS pulls, 2 x 2 x EDITS policy versions
        assert size >= 4 * PULLS * 2 + 4 * EDITS
        heads = []
        for s in servers:
            with httpx.Client(
                base_url=s.url, headers={"Authorization": f"Bearer {tokens['auditor']}"}
            ) as client:
                cp = client.get("/audit/checkpoint").json()
                inclusion = client.get(
                    "/audit/proof/inclusion", params={"index": size // 2, "size": size}
                ).json()
                consistency = client.get(
                    "/audit/proof/consistency", params={"from": size // 3, "to": size}
                ).json()
                heads.append((cp["size"], cp["root"], inclusion, consistency))
        assert heads[0] == heads[1]
        assert heads[0][0] == size and heads[0][2]["root"] == heads[0][1]
        versions = {app.state.node.governance.sync() for app in apps}
        assert versions == {1 + 4 * EDITS}  # the seed, then every edit of both replicas
    finally:
        for s in servers:
            s.stop()
