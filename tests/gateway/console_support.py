"""Helpers for console tests: a node with demo sign-in, signing in, reading CSRF tokens."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.console.web import ConsoleSettings

__all__ = ["csrf_of", "enable_demo_signin", "sign_in"]

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
