"""``matgate serve --workers 2`` on PostgreSQL: one consistent audit log, one policy version."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gateway_support import free_port, persona_tokens

from gateway.demo import prepare
from gateway.identity import TokenIssuer
from gateway.keys import NodeKey

NI = "aurora/ni-superalloys"
LINE = {
    "role": "partner",
    "domain": "aurora",
    "dataset": "ni-superalloys",
    "action": "read",
    "purpose": "education",
    "withhold": ["sensitivity:personal", "sensitivity:confidential"],
}
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _workers(parent: int) -> list[int]:
    """The worker processes uvicorn spawned (not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ours = int(stat[stat.rindex(")") + 2 :].split()[1]) == parent
            if ours and b"resource_tracker" not in cmdline:
                found.append(int(entry.name))
    return found


@pytest.fixture
def served(tmp_path, pg_url):
    """Aurora's demo node as ``matgate serve --workers 2`` on a schema of its own."""
    import sqlalchemy as sa

    schema = f"workers_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    database_url = f"{pg_url}?options=-csearch_path%3D{schema}"
    plan = prepare(tmp_path, free_port())
    data_dir = plan["home"] / "node"
    matgate = Path(sys.executable).with_name("matgate")
    cmd = [str(matgate), "serve", "--config", str(plan["home"] / "node.toml")]
    cmd += ["--port", str(plan["port"]), "--data-dir", str(data_dir)]
    cmd += ["--database-url", database_url, "--workers", "2"]
    env = {**os.environ, "MATGATE_LOG_LEVEL": "WARNING", "MATGATE_LOG_JSON": "false"}
    env["MATGATE_PUBLIC_URL"] = plan["url"]
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while len(_workers(proc.pid)) < 2 or not _up(plan["url"]):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.3)
        key = NodeKey.load_or_create(data_dir / "node_key.pem")
        issuer = TokenIssuer(key, plan["url"], plan["url"], "aurora")
        yield plan["url"], persona_tokens(issuer), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _pulls(url: str, token: str, n: int, purpose: str = "research") -> list[httpx.Response]:
    """``n`` slices at once, each on a connection of its own (the workers share the port)."""
    body = {"purpose": purpose, "columns": ["alloy"], "limit": 3}
    headers = {"Authorization": f"Bearer {token}"}

    def one(_: int) -> httpx.Response:
        return httpx.post(f"{url}/datasets/{NI}/slice", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.postgres
def test_workers_share_one_audit_log_and_one_policy(served):
    url, tokens, parent = served
    workers = _workers(parent)
    before = {pid: _cpu(pid) for pid in workers}
    answers = _pulls(url, tokens["ml-user"], 48)
    assert [r.status_code for r in answers] == [200] * 48
    assert all(_cpu(pid) > before[pid] for pid in workers), "both workers served"

    auditor = {"Authorization": f"Bearer {tokens['auditor']}"}
    report = httpx.get(f"{url}/audit/verify", headers=auditor, timeout=60).json()
    assert report["ok"] is True, report
    entries = httpx.get(
        f"{url}/audit/events", params={"limit": 10_000}, headers=auditor, timeout=60
    ).json()["events"]
    assert [e["index"] for e in entries] == list(range(len(entries)))  # no gap, no fork
    for r in answers:  # every slice has its decision, then its completion
        rid = r.headers["matgate-request-id"]
        mine = [e for e in entries if e["request_id"] == rid]
        assert [e["name"] for e in mine] == ["decision", "slice"], mine
        assert mine[1]["rows"] == 3 and mine[1]["complete"] is True

    # A policy change through one request: the next decision of every worker follows it.
    partner = tokens["partner"]
    assert {r.status_code for r in _pulls(url, partner, 16, "education")} == {403}
    steward = {"Authorization": f"Bearer {tokens['steward']}"}
    r = httpx.post(f"{url}/policies/aurora", json={"add": [LINE]}, headers=steward, timeout=60)
    assert r.status_code == 200, r.text
    before = {pid: _cpu(pid) for pid in workers}
    after = _pulls(url, partner, 32, "education")
    assert {r.status_code for r in after} == {200}
    assert all(_cpu(pid) > before[pid] for pid in workers), "both workers decided"
    report = httpx.get(f"{url}/audit/verify", headers=auditor, timeout=60).json()
    assert report["ok"] is True, report


def test_workers_refuse_what_one_process_holds_alone(tmp_path, monkeypatch):
    """A node with peers needs a shared replay cache, and a metrics listener takes one port."""
    from gateway.app import prepare_workers
    from gateway.config import ConfigError
    from gateway.settings import Settings

    plan = prepare(tmp_path, free_port())
    settings = Settings(config=plan["home"] / "node.toml", data_dir=tmp_path / "node")
    with pytest.raises(ConfigError, match="METRICS_PORT"):
        prepare_workers(settings.model_copy(update={"metrics_port": free_port()}), 2)
    env = prepare_workers(settings, 2)
    assert env["MATGATE_CONFIG"] == str((plan["home"] / "node.toml").resolve())
    assert (tmp_path / "node" / "node_key.pem").exists()  # made once, before any worker
