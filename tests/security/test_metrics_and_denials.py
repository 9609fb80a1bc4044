"""API2/API4: /metrics only for those entitled to it; a flood of denials cannot flood the log.

Metrics reveal routes, traffic and decisions: auditors and operators of the node, or a scraper
holding the configured token, may read them, or they live on a separate listener. Denied
requests are recorded per principal up to a burst, then counted, and the count is recorded as
one ``denials-suppressed`` summary: the log stays readable and nothing goes unaccounted.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from gateway_support import free_port
from security_lab import bearer, lab_app, lab_config, load_samples

from audit.search import EventFilter

SCRAPER = "scraper-token-0123456789abcdef0123456789"


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A SQLite store with the sample table."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    load_samples(url, "samples")
    return url


def _headers(app: Any, who: str) -> dict[str, str]:
    node = app.state.node
    if who == "nobody":
        return {}
    if who == "scraper":
        return {"Authorization": f"Bearer {SCRAPER}"}
    if who == "wrong-scraper":
        return {"Authorization": "Bearer scraper-token-but-not-the-right-one"}
    if who == "guest-operator":
        token = node.issuer.mint("eve", roles=["operator"], institution="rival")
        return {"Authorization": f"Bearer {token}"}
    return bearer(app, roles=(who,))


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("nobody", 401),
        ("wrong-scraper", 401),
        ("member", 403),
        ("steward", 403),
        ("guest-operator", 403),
        ("auditor", 200),
        ("operator", 200),
        ("scraper", 200),
    ],
)
def test_metrics_are_for_auditors_operators_and_the_scraper(
    store: str, tmp_path: Path, who: str, status: int
) -> None:
    """Everyone else gets a problem, not the node's traffic."""
    app = lab_app(
        tmp_path / "node", lab_config(store, {"samples": "samples"}), metrics_token=SCRAPER
    )
    with TestClient(app) as client:
        r = client.get("/metrics", headers=_headers(app, who))
    assert r.status_code == status, r.text
    assert ("matgate_http_requests" in r.text) is (status == 200)


def test_metrics_can_live_on_a_separate_listener(store: str, tmp_path: Path) -> None:
    """With ``metrics_port`` the public port has no /metrics; the private listener has them."""
    port = free_port()
    app = lab_app(tmp_path / "node", lab_config(store, {"samples": "samples"}), metrics_port=port)
    with TestClient(app) as client:
        client.get("/healthz")
        r = client.get("/metrics", headers=_headers(app, "auditor"))
        assert r.status_code == 404
        private = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert private.status_code == 200 and "matgate_http_requests" in private.text
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def _deny(client: TestClient, headers: dict[str, str], n: int) -> None:
    for _ in range(n):
        r = client.post(
            "/datasets/lab/samples/slice", json={"purpose": "not-a-purpose"}, headers=headers
        )
        assert r.status_code == 403


def _events(app: Any, name: str, principal: str) -> list[dict[str, Any]]:
    found = app.state.node.audit.iter_events(EventFilter(name=name, principal=principal))
    return [e.to_dict() for e in found]


def test_a_flood_of_denials_is_recorded_as_a_burst_and_a_count(store: str, tmp_path: Path) -> None:
    """50 denials: 3 logged one by one, 47 counted in one summary when the window closes; an
    allow is never suppressed; another principal has a window of its own."""
    clock = Clock()
    app = lab_app(
        tmp_path / "node",
        lab_config(store, {"samples": "samples"}),
        denial_burst=3,
        denial_window_seconds=60,
    )
    # The node's clock decides windows; rebuild the limiter on the test's clock.
    from audit.ratelimit import DenialLimiter

    app.state.node.denials = DenialLimiter(burst=3, window_seconds=60, clock=clock)
    mallory = bearer(app, user="mallory")
    alice = bearer(app, user="alice")
    with TestClient(app) as client:
        _deny(client, mallory, 50)
        ok = client.post(
            "/datasets/lab/samples/slice", json={"purpose": "research"}, headers=mallory
        )
        assert ok.status_code == 200
        _deny(client, alice, 2)
        denied = [e for e in _events(app, "decision", "lab:mallory") if e["decision"] == "deny"]
        assert len(denied) == 3
        assert [e["decision"] for e in _events(app, "decision", "lab:mallory")].count("allow") == 1
        assert len(_events(app, "decision", "lab:alice")) == 2
        assert _events(app, "denials-suppressed", "lab:mallory") == []
        clock.now += dt.timedelta(seconds=61)
        _deny(client, mallory, 1)
        summary = _events(app, "denials-suppressed", "lab:mallory")
        assert len(summary) == 1 and summary[0]["suppressed"] == 47
        assert summary[0]["since"] < summary[0]["until"]
        denied = [e for e in _events(app, "decision", "lab:mallory") if e["decision"] == "deny"]
        assert len(denied) == 4  # 3 + 47 + 1 = 51 denials, every one accounted for


def test_counted_denials_are_recorded_when_the_node_stops(store: str, tmp_path: Path) -> None:
    """A window still open at shutdown is summarised, not forgotten."""
    app = lab_app(
        tmp_path / "node",
        lab_config(store, {"samples": "samples"}),
        denial_burst=2,
        denial_window_seconds=3600,
    )
    with TestClient(app) as client:
        _deny(client, bearer(app, user="mallory"), 10)
    summary = _events(app, "denials-suppressed", "lab:mallory")
    assert [s["suppressed"] for s in summary] == [8]
