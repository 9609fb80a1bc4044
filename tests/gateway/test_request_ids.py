"""One request id everywhere: both response headers, the log line, the audit entries and the
manifest of a slice carry the same id, the caller's well-formed X-Request-Id or a new one."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pyarrow as pa
import pytest

from gateway.observability import _JsonFormatter
from gateway.slices import MANIFEST_KEY

NI = "aurora/ni-superalloys"
SLICE = f"/datasets/{NI}/slice"
BODY = {"purpose": "research", "columns": ["alloy"], "limit": 3}


@pytest.fixture
def http_log() -> Iterator[io.StringIO]:
    """The JSON lines the node logs for requests, as they are written."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(_JsonFormatter())
    logger = logging.getLogger("matgate.http")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _events_of(api, auth, request_id: str) -> list[dict]:
    page = api.get(
        "/audit/events", params={"dataset": NI, "limit": 10_000}, headers=auth["auditor"]
    )
    assert page.status_code == 200, page.text
    return [e for e in page.json()["events"] if e["request_id"] == request_id]


@pytest.mark.parametrize(
    "incoming", [None, "client-7f3a.batch_2", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"]
)
def test_one_id_joins_headers_log_audit_and_manifest(api, auth, http_log, incoming):
    headers = dict(auth["ml-user"])
    if incoming:
        headers["X-Request-Id"] = incoming
    r = api.post(SLICE, json=BODY, headers=headers)
    assert r.status_code == 200, r.text
    rid = r.headers["x-request-id"]
    assert r.headers["matgate-request-id"] == rid
    if incoming:
        assert rid == incoming
    manifest = json.loads(pa.ipc.open_stream(r.content).read_all().schema.metadata[MANIFEST_KEY])
    assert manifest["id"] == rid
    signed = api.get(f"/provenance/{rid}", headers=auth["ml-user"])
    assert signed.status_code == 200 and signed.json()["manifest"]["id"] == rid
    names = {e["name"] for e in _events_of(api, auth, rid)}
    assert {"decision", "slice"} <= {n.split(".")[0] for n in names}, names
    lines = [json.loads(x) for x in http_log.getvalue().splitlines()]
    mine = [x for x in lines if x["message"].startswith(f"POST {SLICE}")]
    assert mine and mine[-1]["request_id"] == rid


@pytest.mark.parametrize(
    "incoming", ["has space", "a" * 65, "<script>", "-leading-dash", b"caf\xc3\xa9", "x;y"]
)
def test_a_malformed_incoming_id_is_replaced(api, auth, incoming):
    r = api.get("/healthz", headers={"X-Request-Id": incoming})
    rid = r.headers["x-request-id"]
    assert (
        rid not in (incoming, b"caf\xc3\xa9".decode("latin-1"))
        and len(rid) == 32
        and int(rid, 16) >= 0
    )
    assert r.headers["matgate-request-id"] == rid


def test_every_response_carries_the_same_id_twice(api, auth):
    for path in ("/healthz", "/catalog", "/datasets/aurora/nope/slice"):
        r = api.get(path, headers=auth["ml-user"])
        assert r.headers["x-request-id"] == r.headers["matgate-request-id"], path


def test_a_refusal_is_audited_under_the_request_id(api, auth):
    r = api.post(SLICE, json={**BODY, "purpose": "commercial"}, headers=auth["partner"])
    assert r.status_code == 403
    rid = r.headers["x-request-id"]
    events = _events_of(api, auth, rid)
    assert [e["decision"] for e in events if e["name"] == "decision"] == ["deny"]


def test_a_reused_client_id_is_refused_not_a_second_manifest(api, auth):
    headers = {**auth["ml-user"], "X-Request-Id": "reused-id-0001"}
    assert api.post(SLICE, json=BODY, headers=headers).status_code == 200
    again = api.post(SLICE, json=BODY, headers=headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert "already names a slice" in again.json()["detail"]


def test_a_policy_change_is_audited_under_the_request_id(fresh):
    api, auth = fresh
    line = {"role": "member", "domain": "aurora", "dataset": "expt-gap", "action": "train"}
    r = api.post("/policies/aurora", json={"add": [line]}, headers=auth["steward"])
    assert r.status_code == 200, r.text
    rid = r.headers["x-request-id"]
    page = api.get("/audit/events", params={"limit": 10_000}, headers=auth["auditor"]).json()
    mine = [e for e in page["events"] if e["request_id"] == rid]
    assert [e["name"] for e in mine] and all(e["name"].startswith("policy") for e in mine), mine
