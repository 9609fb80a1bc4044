"""A real node on the demo's data: in-process for API tests, on loopback for the client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.demo import PERSONAS, prepare
from gateway.settings import Settings


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_settings(plan: dict[str, Any], **overrides: Any) -> Settings:
    """Settings for a demo node plan, quiet and local."""
    home: Path = plan["home"]
    values: dict[str, Any] = {
        "config": home / "node.toml",
        "data_dir": home / "node",
        "port": plan["port"],
        "public_url": plan["url"],
        "log_json": False,
        "log_level": "WARNING",
        "audit_checkpoint_seconds": 3600,
    }
    values.update(overrides)
    return Settings(**values)


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a thread, stopped by ``stop``."""

    def __init__(self, app: FastAPI, port: int) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="session")
def demo_plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo's stores and config for one node, written once per session."""
    return prepare(tmp_path_factory.mktemp("demo"), free_port())


@pytest.fixture(scope="session")
def app(demo_plan: dict[str, Any]) -> FastAPI:
    """The node's app (no server)."""
    return create_app(node_settings(demo_plan))


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
    issuer = app.state.node.issuer
    return {
        p.name: issuer.mint(p.subject, roles=p.roles, institution=p.institution) for p in PERSONAS
    }


@pytest.fixture(scope="session")
def auth(tokens: dict[str, str]) -> dict[str, dict[str, str]]:
    """Authorization headers per persona."""
    return {name: {"Authorization": f"Bearer {tok}"} for name, tok in tokens.items()}


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """A node of its own (for tests that change its state) and its personas' headers."""
    app = create_app(node_settings(prepare(tmp_path, free_port())))
    issuer = app.state.node.issuer
    headers = {
        p.name: {
            "Authorization": f"Bearer {issuer.mint(p.subject, roles=p.roles, institution=p.institution)}"
        }
        for p in PERSONAS
    }
    with TestClient(app) as client:
        yield client, headers
