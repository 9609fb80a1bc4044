"""A demo node with its faces configured for tests: OPTIMADE mappings and Delta Sharing shares."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from fastapi import FastAPI
from gateway_support import free_port, node_settings

from gateway.app import create_app
from gateway.demo import prepare

__all__ = ["faces_node"]


def faces_node(root: Path, **faces: Any) -> tuple[FastAPI, dict[str, Any]]:
    """Aurora's demo node with ``faces`` (``optimade=...``, ``shares=...``) in its config."""
    plan = prepare(root, free_port())
    path: Path = plan["home"] / "node.toml"
    config = tomllib.loads(path.read_text())
    config.update(faces)
    path.write_text(tomli_w.dumps(config))
    return create_app(node_settings(plan)), plan
