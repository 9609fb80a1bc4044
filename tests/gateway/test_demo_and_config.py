"""The demo as a user runs it, and config files with mistakes in them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from joserfc import jwt

from gateway.config import ConfigError, load_config


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_demo_starts_serves_and_stops_cleanly(tmp_path):
    port = _port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--data-dir",
            str(tmp_path),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        demo_json = tmp_path / "demo.json"
        deadline = time.monotonic() + 60
        while not demo_json.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "demo did not write demo.json"
            time.sleep(0.1)
        demo = json.loads(demo_json.read_text())
        assert {p["name"] for p in demo["personas"]} == {"ml-user", "partner", "steward", "auditor"}
        node = demo["nodes"][0]
        for _ in range(200):
            try:
                if httpx.get(f"{node['url']}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        user = next(p for p in demo["personas"] if p["name"] == "ml-user")
        claims = jwt.decode(user["token"], _jwks(node["url"]), algorithms=["Ed25519"]).claims
        assert claims["exp"] - time.time() > 86400  # valid for at least a day
        r = httpx.get(
            f"{node['url']}/datasets/{node['institution']}/ni-superalloys/slice",
            params={"purpose": "research", "columns": "alloy", "limit": 3},
            headers={"Authorization": f"Bearer {user['token']}"},
        )
        assert r.status_code == 200 and r.text.count("\n") == 4
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert node["url"] in out and "MATGATE_TOKEN" in out  # the printed guide
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{node['url']}/healthz", timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _jwks(url: str):
    from joserfc.jwk import KeySet

    return KeySet.import_key_set(httpx.get(f"{url}/.well-known/jwks.json").json())


GOOD = """
[node]
institution = "lab"

[stores.main]
kind = "files"
path = "."

[[datasets]]
name = "things"
title = "Things"
license = "CC-BY-4.0"
location = { store = "main", table = "things.csv" }

[[datasets.columns]]
name = "x"
type = "float"
pspp = "property"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_good_config_loads_and_resolves_paths(tmp_path):
    config = load_config(_write(tmp_path, GOOD))
    assert config.datasets[0].id == "lab/things"
    assert config.stores["main"].path == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("change", "key", "line"),
    [
        (('pspp = "property"', 'pspp = "propery"'), "datasets[0].columns[0].pspp", 18),
        (('kind = "files"', 'kind = "ftp"'), "stores.main.kind", 6),
        (('name = "things"', 'name = "Things!"'), "datasets[0].name", 10),
        (('store = "main"', 'store = "other"'), "datasets[0].location.store", None),
        (('license = "CC-BY-4.0"', 'licence = "CC-BY-4.0"'), "datasets[0]", 12),
    ],
)
def test_config_errors_name_file_key_and_line(tmp_path, change, key, line):
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    assert key in message
    if line is not None:
        assert f"{path}:{line}:" in message


def test_unreadable_and_broken_toml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[node\ninstitution = 1"))
