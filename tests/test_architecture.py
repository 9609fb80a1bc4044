"""The rooms import one way (DESIGN.md): gateway -> policies, connectors, audit, training;
policies -> connectors; the client SDK pulls in nothing of the server; Casbin lives in one
module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ALLOWED = {
    "connectors": set(),
    "policies": {"connectors"},
    "audit": set(),
    "training": {"connectors"},
}
ROOMS = {"connectors", "policies", "audit", "training", "gateway"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_rooms_import_one_way(room):
    for path in (SRC / room).rglob("*.py"):
        wrong = (_imports(path) & ROOMS) - {room} - ALLOWED[room]
        assert not wrong, f"{path.relative_to(SRC)} imports {sorted(wrong)}"


def test_casbin_lives_in_one_module():
    users = [p for p in SRC.rglob("*.py") if "casbin" in _imports(p)]
    assert [p.relative_to(SRC).as_posix() for p in users] == ["policies/enforcer.py"]


def test_the_client_is_light():
    code = (
        "import sys, gateway.client; "
        "heavy = {'fastapi', 'starlette', 'sqlalchemy', 'casbin', 'sklearn', 'uvicorn', "
        "'policies', 'audit', 'connectors'} & {m.split('.')[0] for m in sys.modules}; "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
