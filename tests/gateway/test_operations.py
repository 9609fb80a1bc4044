"""Operational basics: health, readiness, metrics, request ids, logs, docs."""

from __future__ import annotations

import json


def test_health_and_readiness(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["status"] == "ready" and ready["datasets"] >= 4


def test_metrics_count_requests_and_decisions(api, auth):
    api.get("/catalog", headers=auth["ml-user"])
    text = api.get("/metrics", headers=auth["auditor"]).text
    assert 'matgate_http_requests_total{method="GET",route="/catalog",status="200"}' in text
    assert "matgate_http_request_seconds_bucket" in text


def test_request_id_is_echoed_or_made(api):
    given = api.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = api.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32


def test_structured_log_carries_the_request_id(api, capfd):
    from gateway.observability import configure_logging

    configure_logging("INFO", as_json=True)
    try:
        api.get("/healthz", headers={"X-Request-Id": "trace-me"})
    finally:
        configure_logging("WARNING", as_json=False)
    lines = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{")]
    entry = next(x for x in lines if x["request_id"] == "trace-me")
    assert entry["status"] == 200 and entry["logger"] == "matgate.http"


def test_openapi_docs_and_info(api):
    assert api.get("/docs").status_code == 200
    info = api.get("/info").json()
    assert info["institution"] == "aurora" and info["jwks_uri"].endswith("/.well-known/jwks.json")
