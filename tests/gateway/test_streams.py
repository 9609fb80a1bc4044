"""What a broken stream leaves behind, failed logins in the log, and issuers trusted by URL."""

from __future__ import annotations

import time

import httpx
import pytest
from gateway_support import LiveServer, free_port, node_settings, persona_tokens

from gateway.app import create_app
from gateway.config import IssuerConfig
from gateway.demo import prepare
from gateway.identity import Authenticator

NI = "aurora/ni-superalloys"


@pytest.fixture(scope="module")
def small_batches(tmp_path_factory):
    """A node on loopback that streams 50 rows per batch, so a slice has many chunks, and
    streams every slice (none is small enough to be sent whole)."""
    plan = prepare(tmp_path_factory.mktemp("stream"), free_port())
    app = create_app(node_settings(plan, batch_rows=50, whole_slice_bytes=0))
    server = LiveServer(app, plan["port"]).start()
    yield server.url, persona_tokens(app.state.node.issuer)
    server.stop()


def _events(url, token, **params):
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{url}/audit/events", params=params, headers=headers).json()["events"]


def test_a_broken_stream_records_what_was_sent(small_batches):
    url, tokens = small_batches
    headers = {"Authorization": f"Bearer {tokens['ml-user']}"}
    with (
        httpx.Client(base_url=url, headers=headers) as http,
        http.stream(
            "POST", f"/datasets/{NI}/slice", json={"purpose": "research", "format": "csv"}
        ) as response,
    ):
        rid = response.headers["matgate-request-id"]
        assert next(response.iter_raw(1024))
    # The client went away after the first chunk; the node notices and records the truth.
    deadline = time.monotonic() + 15
    while True:
        found = [
            e
            for e in _events(url, tokens["auditor"], name="slice", limit=1000)
            if e["request_id"] == rid
        ]
        if found:
            break
        assert time.monotonic() < deadline, "no completion event for the broken stream"
        time.sleep(0.1)
    event = found[0]
    assert event["complete"] is False and event["error"]
    assert 0 < event["rows"] < 2800


def test_failed_logins_are_recorded_once_per_burst(small_batches):
    url, tokens = small_batches
    with httpx.Client(base_url=url) as http:
        for _ in range(15):
            r = http.get("/catalog", headers={"Authorization": "Bearer forged.token.here"})
            assert r.status_code == 401
    failures = _events(url, tokens["auditor"], name="auth-failure", limit=1000)
    assert failures and all(e["reason"] and e["source"] == "127.0.0.1" for e in failures)
    assert len(failures) == 10  # a burst of ten is logged one by one, the rest are counted


def test_an_issuer_trusted_by_jwks_url(small_batches):
    url, tokens = small_batches
    config = IssuerConfig(
        issuer=url,
        institution="aurora",
        audience=url,
        jwks_url=f"{url}/.well-known/jwks.json",
        algorithms=("Ed25519",),
    )
    auth = Authenticator([config], default_audience=url)
    try:
        principal = auth.authenticate(tokens["ml-user"])
        assert principal.id == f"{url}#mia"  # no namespace configured: qualified by its URL
    finally:
        auth.close()
