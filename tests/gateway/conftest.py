"""A real node on the demo's data: in-process for API tests, on loopback for the client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from gateway_support import LiveServer, free_port, node_settings, persona_tokens

from gateway.app import create_app
from gateway.demo import prepare


@pytest.fixture(scope="session")
def demo_plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo's stores and config for one node, written once per session."""
    return prepare(tmp_path_factory.mktemp("demo"), free_port())


@pytest.fixture(scope="session")
def app(demo_plan: dict[str, Any]) -> FastAPI:
    """The node's app (no server); ``MATGATE_TEST_NODE_DB`` puts its database elsewhere."""
    database = os.environ.get("MATGATE_TEST_NODE_DB")
    return create_app(node_settings(demo_plan, database_url=database))


@pytest.fixture(scope="session")
def api(app: FastAPI) -> Iterator[TestClient]:
    """An in-process HTTP client of the node."""
    with TestClient(app, raise_server_exceptions=True) as client:
        yield client


@pytest.fixture(scope="session")
def live(demo_plan: dict[str, Any], api: TestClient, app: FastAPI) -> Iterator[str]:
    """The same node served on loopback; yields its URL."""
    server = LiveServer(app, demo_plan["port"]).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def tokens(app: FastAPI) -> dict[str, str]:
    """A token for each demo persona, minted by the node's own issuer."""
    return persona_tokens(app.state.node.issuer)


@pytest.fixture(scope="session")
def auth(tokens: dict[str, str]) -> dict[str, dict[str, str]]:
    """Authorization headers per persona."""
    return {name: {"Authorization": f"Bearer {tok}"} for name, tok in tokens.items()}


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """A node of its own (for tests that change its state) and its personas' headers."""
    app = create_app(node_settings(prepare(tmp_path, free_port())))
    headers = {
        name: {"Authorization": f"Bearer {token}"}
        for name, token in persona_tokens(app.state.node.issuer).items()
    }
    with TestClient(app) as client:
        yield client, headers
