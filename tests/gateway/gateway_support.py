"""Helpers for tests that run real nodes: free ports, settings, uvicorn on loopback."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from gateway.settings import Settings

__all__ = ["LiveServer", "free_port", "node_settings", "persona_tokens"]


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


def persona_tokens(issuer: Any) -> dict[str, str]:
    """A token for each demo persona, minted by ``issuer`` (a node's ``TokenIssuer``)."""
    from gateway.demo import PERSONAS

    return {
        p.name: issuer.mint(p.subject, roles=p.roles, institution=p.institution) for p in PERSONAS
    }
