"""A demo node with extra stores (and network allow entries) written into its config."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomli_w
from fastapi.testclient import TestClient
from gateway_support import free_port, node_settings, persona_tokens

from gateway.app import create_app
from gateway.demo import prepare

__all__ = ["column_entry", "entry", "node_with"]


def entry(name: str, store: str, table: str, columns: list[dict[str, Any]]) -> dict[str, Any]:
    """A dataset registration of Aurora's on ``store``/``table``."""
    return {
        "institution": "aurora",
        "name": name,
        "title": f"attempt {name}",
        "license": "MIT",
        "location": {"store": store, "table": table},
        "columns": columns,
    }


def column_entry(name: str, kind: str = "integer") -> dict[str, Any]:
    """One declared column."""
    return {"name": name, "type": kind, "pspp": "identifier"}


@contextmanager
def node_with(
    root: Path, stores: dict[str, dict[str, Any]], **config: Any
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """Aurora's demo node plus ``stores`` (and top-level ``config`` keys); its personas' headers."""
    plan = prepare(root, free_port())
    path: Path = plan["home"] / "node.toml"
    written = tomllib.loads(path.read_text())
    written["stores"] = {**written["stores"], **stores}
    written.update(config)
    path.write_text(tomli_w.dumps(written))
    app = create_app(node_settings(plan))
    headers = {
        name: {"Authorization": f"Bearer {token}"}
        for name, token in persona_tokens(app.state.node.issuer).items()
    }
    with TestClient(app) as client:
        yield client, headers
