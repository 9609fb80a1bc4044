"""The console's record pages over HTTP: an ML user's pulls with each manifest's signature
checked (a tampered one marked invalid) and their jobs; a steward's policy history, agreements
with their acceptances, and a dataset registered from a store table with its schema checked;
an auditor's exports. Hostile text in tables, columns, filters and rows stays escaped."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from console_support import csrf_of, enable_demo_signin, pulled_manifest, sign_in
from fastapi import FastAPI
from fastapi.testclient import TestClient
from gateway_support import free_port, node_settings, persona_tokens

from audit.manifests import manifest_id
from audit.store import slices
from gateway.app import create_app
from gateway.demo import prepare

NI = "aurora/ni-superalloys"
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
QUOTABLE = "<script>alert(1)</script><img src=x onerror=alert(1)>"  # fits in "..." of a filter
TABLE = "furnace_runs"


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo's files, with a table in the lab store that no dataset uses yet, and one whose
    column name is hostile HTML (SQLite allows any name)."""
    found = prepare(tmp_path_factory.mktemp("records"), free_port())
    with closing(sqlite3.connect(Path(found["home"]) / "stores" / "lab.db")) as db, db:
        db.execute(
            f"CREATE TABLE {TABLE} (run_id TEXT, temperature_k REAL, hold_h REAL, "
            "hardness_hv REAL, operator TEXT)"
        )
        db.executemany(
            f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)",
            [(f"r{i}", 900.0 + i, 1.5 * i, 300.0 + i, "ann") for i in range(20)],
        )
        db.execute('CREATE TABLE evil_columns ("<script>alert(3)</script>" TEXT, ok REAL)')
    return found


@pytest.fixture(scope="module")
def node_app(plan: dict[str, Any]) -> Iterator[FastAPI]:
    """A node of this module's own, with the demo's one-click sign-in."""
    app = create_app(node_settings(plan))
    enable_demo_signin(app)
    with TestClient(app):
        yield app


@pytest.fixture(scope="module")
def headers(node_app: FastAPI) -> dict[str, dict[str, str]]:
    """Bearer headers per persona, for the API calls that set the scene."""
    tokens = persona_tokens(node_app.state.node.issuer)
    return {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}


@pytest.fixture(scope="module")
def api(node_app: FastAPI) -> TestClient:
    """A plain API client of the module's node."""
    return TestClient(node_app)


def _wait_for(client: TestClient, url: str) -> dict[str, Any]:
    """Poll a job until it ends (so no job still reads a store when the node shuts down)."""
    deadline = time.monotonic() + 120
    while True:
        state: dict[str, Any] = client.get(url).json()
        if state["status"] not in ("queued", "running"):
            return state
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.3)


def _wait_for_api(api: TestClient, url: str, bearer: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        state: dict[str, Any] = api.get(url, headers=bearer).json()
        if state["status"] not in ("queued", "running"):
            return state
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.3)


def _manifest_ids(page: str) -> list[str]:
    return re.findall(r'data-manifest="([0-9a-f]+)"', page)


def _signature(page: str, manifest: str) -> str:
    row = re.search(rf'data-manifest="{manifest}".*?data-signature="(\w+)"', page, re.S)
    assert row, f"no row for {manifest}"
    return row.group(1)


def test_an_ml_user_sees_their_pulls_with_signatures_checked(node_app, api, headers):
    member = headers["ml-user"]
    pulled_manifest(api, member, NI)
    evil = api.post(
        f"/datasets/{NI}/slice",
        json={"purpose": "research", "limit": 3, "filter": f'alloy != "{QUOTABLE}"'},
        headers=member,
    )
    assert evil.status_code == 200, evil.text
    evil_id = evil.headers["matgate-request-id"]
    listed = api.get("/provenance", headers=member).json()
    assert {p["manifest_id"] for p in listed} >= {evil_id}
    assert all(p["signature_ok"] and p["problem"] == "" for p in listed)
    page = sign_in(node_app, "ml-user").get("/console/pulls")
    assert page.status_code == 200
    ids = _manifest_ids(page.text)
    assert evil_id in ids and len(ids) == len(listed)
    kept = sign_in(node_app, "ml-user").get(f"/console/pulls/{evil_id}")
    assert kept.status_code == 200 and "attachment" in kept.headers["content-disposition"]
    assert kept.json()["signature"] == next(
        p["signature"] for p in listed if p["manifest_id"] == evil_id
    )
    assert all(_signature(page.text, m) == "valid" for m in ids)
    # the filter's text is in the manifest shown, escaped
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(" in page.text
    # nobody else sees them: the partner has pulled nothing
    assert _manifest_ids(sign_in(node_app, "partner").get("/console/pulls").text) == []


def test_a_tampered_manifest_is_marked_invalid(node_app, api, headers):
    member = headers["ml-user"]
    token = pulled_manifest(api, member, NI)
    head, payload, sig = token.split(".")
    manifest = json.loads(_unb64(payload))
    forged = dict(manifest, rows=manifest["rows"] + 1000)
    tampered = ".".join((head, _b64(json.dumps(forged).encode()), sig))
    with node_app.state.node.engine.begin() as conn:
        ident = manifest_id(manifest)
        changed = conn.execute(
            sa.update(slices).where(slices.c.manifest_id == ident).values(token=tampered)
        ).rowcount
    assert changed == 1
    listed = {p["manifest_id"]: p for p in api.get("/provenance", headers=member).json()}
    assert listed[ident]["signature_ok"] is False
    assert "does not verify" in listed[ident]["problem"]
    page = sign_in(node_app, "ml-user").get("/console/pulls").text
    assert _signature(page, ident) == "invalid"
    # the stored copy no longer verifies: it is not handed out as the node's manifest
    assert sign_in(node_app, "ml-user").get(f"/console/pulls/{ident}").status_code >= 400
    others = [m for m in _manifest_ids(page) if m != ident]
    assert others and all(_signature(page, m) == "valid" for m in others)


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_an_ml_users_jobs_are_listed_and_their_progress_polled(node_app):
    client = sign_in(node_app, "ml-user")
    page = client.get(f"/console/datasets/{NI}").text
    started = client.post(
        f"/console/datasets/{NI}/train",
        data={"target": "yield_strength_mpa", "estimator": "ridge", "csrf": csrf_of(page)},
    )
    assert started.status_code == 303
    job_id = started.headers["location"].rsplit("/", 1)[1]
    progress = client.get(f"/console/jobs/{job_id}/progress")
    assert progress.status_code == 200
    assert progress.headers["content-security-policy"]
    state = progress.json()
    assert state["status"] in ("queued", "running", "done") and 0 <= state["progress"] <= 1
    assert state["running"] == (state["status"] in ("queued", "running"))
    listing = client.get("/console/jobs").text
    assert f"/console/jobs/{job_id}" in listing
    job_page = client.get(f"/console/jobs/{job_id}").text
    if state["running"]:  # polled by the script; without it, a refresh inside <noscript>
        assert 'data-poll="/console/jobs/' in job_page and "<noscript><meta" in job_page
    assert _wait_for(client, f"/console/jobs/{job_id}/progress")["status"] == "done"
    done = client.get(f"/console/jobs/{job_id}").text
    assert "data-poll" not in done and 'id="model-card"' in done
    # someone else's job is nobody's
    other = sign_in(node_app, "partner")
    assert other.get(f"/console/jobs/{job_id}/progress").status_code == 404
    assert f"/console/jobs/{job_id}" not in other.get("/console/jobs").text


def test_a_steward_reads_the_policy_history(node_app, api, headers):
    line = {"role": "partner", "domain": "aurora", "dataset": "ni-superalloys",
            "action": "read", "purpose": "research", "rows": f'alloy != "{QUOTABLE}"'}  # fmt: skip
    applied = api.post("/policies/aurora", json={"add": [line]}, headers=headers["steward"])
    assert applied.status_code == 200, applied.text
    version = applied.json()["version"]
    removed = api.post("/policies/aurora", json={"remove": [line]}, headers=headers["steward"])
    assert removed.status_code == 200, removed.text
    history = api.get("/policies/aurora/history", headers=headers["steward"]).json()
    versions = [c["version"] for c in history["changes"]]
    assert versions[:2] == [version + 1, version] and versions == sorted(versions, reverse=True)
    assert history["changes"][1]["added"][0]["rows"] == line["rows"]
    assert history["changes"][0]["removed"][0]["rows"] == line["rows"]
    assert history["changes"][0]["actor"] == "aurora:sana"
    page = sign_in(node_app, "steward").get("/console/policy/history").text
    added = re.search(rf'id="v{version}".*?</section>', page, re.S)
    dropped = re.search(rf'id="v{version + 1}".*?</section>', page, re.S)
    assert added and dropped
    assert "<ins>" in added.group(0) and "<del>" not in added.group(0)
    assert "<del>" in dropped.group(0) and "aurora:sana" in dropped.group(0)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert api.get("/policies/aurora/history", headers=headers["ml-user"]).status_code == 403


def test_a_steward_sees_agreements_and_who_accepted_them(node_app, api, headers):
    page = sign_in(node_app, "steward").get("/console/agreements").text
    assert "aurora-steels-terms" in page and "No one has accepted it yet." in page
    accepted = api.post("/agreements/aurora-steels-terms/accept", headers=headers["ml-user"])
    assert accepted.status_code == 200, accepted.text
    listed = api.get("/policies/aurora/agreements", headers=headers["steward"]).json()
    terms = next(a for a in listed if a["id"] == "aurora-steels-terms")
    assert [a["accepted_by"] for a in terms["acceptances"]] == ["aurora:mia"]
    page = sign_in(node_app, "steward").get("/console/agreements").text
    section = re.search(r'id="agreement-aurora-steels-terms".*?</section>', page, re.S)
    assert section and "aurora:mia" in section.group(0)
    assert accepted.json()["accepted_at"][:16] in section.group(0).replace(" ", "T")
    assert api.get("/policies/aurora/agreements", headers=headers["partner"]).status_code == 403
    assert sign_in(node_app, "ml-user").get("/console/agreements").status_code == 403


def _register_form(page: str) -> dict[str, str]:
    """The registration form's fields as a browser would send them (checked boxes only)."""
    form = page[page.index('action="/console/register" class="register-form"') :]
    data: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name:
            continue
        if 'type="checkbox"' in tag:
            if "checked" in tag:
                data[name.group(1)] = "on"
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = html.unescape(value.group(1)) if value else ""
    for select in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r"<option[^>]*selected[^>]*>([^<]*)<", select[1])
        data[select[0]] = html.unescape(chosen.group(1)) if chosen else ""
    data["description"] = ""
    return data


def test_a_steward_registers_a_dataset_from_a_store_table(node_app, api, headers):
    client = sign_in(node_app, "steward")
    missing = client.get("/console/register", params={"store": "lab", "table": "no_such"})
    assert missing.status_code == 422 and 'id="err-table"' in missing.text
    outside = client.get("/console/register", params={"store": "lab", "table": "sqlite_master"})
    assert outside.status_code == 422 and "outside the store" in outside.text
    page = client.get("/console/register", params={"store": "lab", "table": TABLE})
    assert page.status_code == 200
    names = re.findall(r'name="c\d+_name" value="([^"]+)"', page.text)
    assert names == ["run_id", "temperature_k", "hold_h", "hardness_hv", "operator"]
    data = _register_form(page.text)
    # leave the roles unchosen and give a unit too long: each error lands on its own field
    data.update({"title": f"Furnace runs {EVIL}", "c2_unit": "h" * 65})
    refused = client.post("/console/register", data=data)
    assert refused.status_code == 422
    assert 'id="err-c0_pspp"' in refused.text and 'id="err-c2_unit"' in refused.text
    assert 'id="c2_unit" value="' + "h" * 65 in refused.text  # what was typed stays
    assert "<script>alert" not in refused.text
    roles = ["identifier", "processing", "processing", "property", "identifier"]
    data.update({f"c{i}_pspp": r for i, r in enumerate(roles)})
    data.update({"c1_unit": "K", "c2_unit": "h", "c3_unit": "HV", "c4_sensitivity": "personal"})
    data.update({"c3_description": f"Vickers {EVIL}", "keywords": "furnace; hardness"})
    del data["c4_include"]  # the operator's name is not registered
    done = client.post("/console/register", data=data)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/console/datasets/aurora/furnace-runs"
    found = api.get("/catalog/aurora/furnace-runs", headers=headers["steward"]).json()
    assert [c["name"] for c in found["columns"]] == names[:4]
    assert found["columns"][1]["unit"] == "K" and found["columns"][3]["pspp"] == "property"
    listed = client.get("/console/catalog", params={"q": "furnace"}).text
    assert "/console/datasets/aurora/furnace-runs" in listed
    assert "<script>alert" not in listed and "<img src=x" not in listed
    again = client.post("/console/register", data=data)
    assert again.status_code == 409 and 'id="err-name"' in again.text
    slice_ = api.post(
        "/datasets/aurora/furnace-runs/slice",
        json={"purpose": "research", "limit": 2},
        headers=headers["steward"],
    )
    assert slice_.status_code in (200, 403)  # registered and governed: the policy decides


def test_hostile_column_names_in_a_store_table_stay_text(node_app):
    client = sign_in(node_app, "steward")
    page = client.get("/console/register", params={"store": "lab", "table": "evil_columns"})
    assert page.status_code == 200
    assert "<script>alert(3)" not in page.text and "&lt;script&gt;alert(3)" in page.text
    data = _register_form(page.text)
    data.update({"title": "Evil", "c0_pspp": "identifier", "c1_pspp": "property"})
    refused = client.post("/console/register", data=data)
    assert refused.status_code == 422 and 'id="err-c0_name"' in refused.text
    assert "<script>alert(3)" not in refused.text


@pytest.mark.parametrize(
    ("persona", "url", "status"),
    [
        ("ml-user", "/console/register", 403),
        ("ml-user", "/console/policy/history", 403),
        ("partner", "/console/agreements", 403),
        ("auditor", "/console/policy/history", 200),
        ("auditor", "/console/agreements", 200),
        ("auditor", "/console/register", 403),
        ("steward", "/console/audit/export", 403),
        ("steward", "/console/audit/bundle", 403),
        ("ml-user", "/console/audit/export", 403),
        ("steward", "/console/register", 200),
        ("ml-user", "/console/pulls", 200),
        ("ml-user", "/console/jobs", 200),
    ],
)
def test_who_may_see_the_record_pages(node_app, persona, url, status):
    answer = sign_in(node_app, persona).get(url)
    assert answer.status_code == status
    assert answer.headers["content-security-policy"]


def test_registration_needs_the_csrf_token(node_app):
    client = sign_in(node_app, "steward")
    page = client.get("/console/register", params={"store": "lab", "table": TABLE}).text
    data = _register_form(page) | {"name": "csrf-less", "title": "x"}
    for token in (None, "", "wrong"):
        body = {k: v for k, v in data.items() if k != "csrf"}
        if token is not None:
            body["csrf"] = token
        assert client.post("/console/register", data=body).status_code == 403
    assert "aurora/csrf-less" not in {d.id for d in node_app.state.node.catalog.all()}


def test_an_auditor_downloads_exports_and_parses_them(node_app, api, headers):
    pulled_manifest(api, headers["ml-user"], NI)
    client = sign_in(node_app, "auditor")
    page = client.get("/console/audit", params={"name": "decision", "since": "1h"}).text
    link = re.search(r'id="export-csv" href="([^"]+)"', page)
    assert link
    answer = client.get(html.unescape(link.group(1)))
    assert answer.status_code == 200
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows and {r["name"] for r in rows} == {"decision"}
    assert [int(r["index"]) for r in rows] == sorted(int(r["index"]) for r in rows)
    lines = client.get("/console/audit/export", params={"format": "jsonl", "decision": "allow"})
    events = [json.loads(x) for x in lines.text.splitlines()]
    assert events and all(e["decision"] == "allow" for e in events)
    every = [json.loads(x) for x in client.get("/console/audit/export").text.splitlines()]
    assert len(every) == node_app.state.node.audit.size()
    bundle = client.get("/console/audit/bundle")
    assert bundle.status_code == 200 and "attachment" in bundle.headers["content-disposition"]
    first = json.loads(bundle.text.splitlines()[0])
    assert "jwks" in first["header"]
    prov = client.get("/console/lineage/export", params={"dataset": NI, "format": "prov"})
    assert prov.status_code == 200 and f"dataset:{NI}" in json.dumps(prov.json()["entity"])
    provn = client.get("/console/lineage/export", params={"dataset": NI, "format": "prov-n"})
    assert provn.text.startswith("document")
    assert "attachment" in provn.headers["content-disposition"]
    bad = client.get("/console/audit/export", params={"since": "yesterday-ish"})
    assert bad.status_code == 400 and "write a span like" in bad.text


def test_the_api_lists_a_tables_columns_and_ones_own_jobs(node_app, api, headers):
    steward, member = headers["steward"], headers["ml-user"]
    found = api.get("/stores/lab/columns", params={"table": TABLE}, headers=steward)
    assert found.status_code == 200
    assert [(c["name"], c["type"]) for c in found.json()["columns"]] == [
        ("run_id", "string"), ("temperature_k", "float"), ("hold_h", "float"),
        ("hardness_hv", "float"), ("operator", "string"),
    ]  # fmt: skip
    assert (
        api.get("/stores/lab/columns", params={"table": TABLE}, headers=member).status_code == 403
    )
    missing = api.get("/stores/lab/columns", params={"table": "nothing"}, headers=steward)
    assert missing.status_code == 422 and "does not exist" in missing.json()["detail"]
    assert (
        api.get("/stores/nowhere/columns", params={"table": TABLE}, headers=steward).status_code
        == 404
    )
    started = api.post(
        f"/datasets/{NI}/train",
        json={"target": "yield_strength_mpa", "estimator": "ridge"},
        headers=member,
    )
    assert started.status_code in (200, 201, 202), started.text
    job_id = started.json()["id"]
    state = _wait_for_api(api, f"/jobs/{job_id}", member)
    assert state["status"] == "done", state
    mine = [j["id"] for j in api.get("/jobs", headers=member).json()]
    assert started.json()["id"] in mine
    assert started.json()["id"] not in [j["id"] for j in api.get("/jobs", headers=steward).json()]
