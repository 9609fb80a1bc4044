"""Helpers for console tests: a node with demo sign-in, signing in, reading CSRF tokens."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.console.web import ConsoleSettings

__all__ = ["csrf_of", "enable_demo_signin", "hostile_dataset", "pulled_manifest", "sign_in"]

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def enable_demo_signin(app: FastAPI) -> None:
    """Offer one-click persona sign-in on ``app`` (as ``matgate demo`` does)."""
    app.state.console_settings = ConsoleSettings(demo_signin=True)


def csrf_of(html: str) -> str:
    """The CSRF token of the first form in ``html``."""
    found = _CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(app: FastAPI, persona: str, **kwargs: Any) -> TestClient:
    """A new browser-like client of ``app`` signed in to the console as ``persona``."""
    client = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False, **kwargs)
    page = client.get("/console/signin")
    answer = client.post(
        "/console/signin/demo", data={"persona": persona, "csrf": csrf_of(page.text)}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/catalog"
    return client


def hostile_dataset(api: TestClient, steward: dict[str, str], name: str) -> dict[str, Any]:
    """Register a copy of ni-superalloys whose texts are hostile HTML and JavaScript."""
    base = api.get("/catalog/aurora/ni-superalloys", headers=steward).json()
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    columns = [{**c, "description": f'{evil} "><svg onload=alert(2)>'} for c in base["columns"]]
    body = {
        **base,
        "name": name,
        "title": f"Alloys {evil}",
        "description": f"</textarea>{evil}",
        "keywords": [evil, "alloy"],
        "creators": [f"Eve {evil}"],
        "citation": f"cite {evil}",
        "columns": columns,
        "persistent_id": None,
    }
    answer = api.post("/catalog", json=body, headers=steward)
    assert answer.status_code == 201, answer.text
    return body


def pulled_manifest(api: TestClient, member: dict[str, str], dataset: str) -> str:
    """Pull a small slice as ``member`` and return its signed manifest (JWS)."""
    r = api.post(
        f"/datasets/{dataset}/slice",
        json={"purpose": "ml-training", "limit": 5, "columns": ["alloy"]},
        headers=member,
    )
    assert r.status_code == 200, r.text
    request_id = r.headers["matgate-request-id"]
    signature = api.get(f"/provenance/{request_id}", headers=member).json()["signature"]
    assert isinstance(signature, str)
    return signature
