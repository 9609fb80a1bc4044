"""API8 (2023), misconfiguration: a store whose driver is not installed.

The node must refuse to start with one line naming the store and the extra to install, rather
than start and answer 500 when the store is first used; and a store that loses its driver while
the node runs is a 503 problem with the same line, never a 500. A missing driver is simulated the
way Python sees one: an import hook that makes the module unfindable.
"""

from __future__ import annotations

import importlib.abc
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from store_world import column_entry, entry, node_with

from gateway.config import StoreConfig
from gateway.demo import prepare
from gateway.stores import Stores

ROOT = Path(__file__).resolve().parents[2]

# Run ``matgate serve`` with some modules made unimportable, as on a host without the extra.
LAUNCH = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = set(sys.argv[1].split(","))

    class Missing(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    for loaded in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
        del sys.modules[loaded]
    sys.meta_path.insert(0, Missing())
    from gateway.cli import main
    sys.exit(main(["serve", "--config", sys.argv[2], "--port", sys.argv[3]]))
    """
)


def _config(root: Path, stores: dict[str, Any]) -> Path:
    plan = prepare(root, 1)
    path: Path = plan["home"] / "node.toml"
    written = tomllib.loads(path.read_text())
    written["stores"] = {**written["stores"], **stores}
    path.write_text(tomli_w.dumps(written))
    return path


def _start(config: Path, blocked: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HOME": str(config.parent)}
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, blocked, str(config), "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=config.parent,
        check=False,
    )


STARTS = [
    # (store URL, modules missing, extra named)
    ("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", "adbc_driver_postgresql", "postgres"),
    ("mysql+pymysql://root@127.0.0.1:3306/test", "pymysql", "mysql"),
    ("mariadb+pymysql://root@127.0.0.1:3306/test", "sqlglot", "mysql"),
]


@pytest.mark.parametrize(("url", "blocked", "extra"), STARTS)
def test_start_refuses_a_store_without_its_driver(tmp_path, url, blocked, extra) -> None:
    config = _config(tmp_path, {"warehouse": {"kind": "sql", "url": url}})
    done = _start(config, blocked)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "store 'warehouse'" in lines[0]
    assert f"pip install 'matgate[{extra}]'" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("url", "blocked", "extra"), STARTS)
def test_the_check_passes_with_the_drivers_installed(url, blocked, extra) -> None:
    """The control: with nothing blocked, the same stores pass the start-up check."""
    Stores({"warehouse": StoreConfig(kind="sql", url=url)}).check_drivers()


class _Missing(importlib.abc.MetaPathFinder):
    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Make modules unimportable for the rest of the test."""
    finder = _Missing(set())

    def block(*names: str) -> None:
        finder.blocked.update(names)
        for loaded in [m for m in sys.modules if m.split(".")[0] in names]:
            monkeypatch.delitem(sys.modules, loaded)

    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    yield block


@pytest.mark.postgres
def test_registration_on_a_store_that_lost_its_driver_is_503(tmp_path, pg_url, without) -> None:
    stores = {"warehouse": {"kind": "sql", "url": pg_url}}
    with node_with(tmp_path, stores) as (client, headers):
        without("adbc_driver_postgresql")
        body = entry("warehouse-rows", "warehouse", "rows", [column_entry("id")])
        r = client.post("/catalog", json=body, headers=headers["steward"])
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    detail = r.json()["detail"]
    assert "store 'warehouse'" in detail
    assert "pip install 'matgate[postgres]'" in detail
