"""Start-up and config failures say one thing: one line naming the file, line and key (or the
port, or the setting), exit status 2, and a traceback only with --debug."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.config import ConfigError

DEMO = [sys.executable, "-m", "gateway.cli", "demo"]
GOOD = """
[node]
institution = "lab"

[stores.main]
kind = "files"
path = "."
"""


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace('kind = "files"', 'kind = "ftp"'), ":6: stores.main.kind: "),
        (GOOD.replace('path = "."', ""), ": stores.main: "),
        (GOOD + "\n[node\n", ": not valid TOML: "),
        (GOOD.replace('institution = "lab"', 'institution = "lab"\ncolour = "red"'), "colour"),
    ],
)
def test_a_config_error_is_one_line_and_exit_2(tmp_path, capsys, text, expected):
    path = _config(tmp_path, text)
    assert main(["serve", "--config", str(path), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"matgate: {path}")
    assert expected in err and "Traceback" not in err


def test_a_missing_config_file_names_it(tmp_path, capsys):
    missing = tmp_path / "nowhere.toml"
    assert main(["token", "ana", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"matgate: {missing}: cannot read") and err.count("\n") == 1


def test_debug_shows_the_traceback(tmp_path):
    path = _config(tmp_path, GOOD.replace('kind = "files"', 'kind = "ftp"'))
    with pytest.raises(ConfigError):
        main(["--debug", "serve", "--config", str(path), "--data-dir", str(tmp_path)])
    with pytest.raises(ConfigError):
        main(["serve", "--config", str(path), "--data-dir", str(tmp_path), "--debug"])


def test_a_bad_setting_names_its_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MATGATE_BATCH_ROWS", "many")
    path = _config(tmp_path, GOOD)
    assert main(["serve", "--config", str(path), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("matgate: setting MATGATE_BATCH_ROWS: ") and err.count("\n") == 1


def test_a_busy_port_is_one_line(tmp_path, capsys, busy_port):
    path = _config(tmp_path, GOOD)
    args = ["--config", str(path), "--data-dir", str(tmp_path), "--port", str(busy_port)]
    assert main(["serve", *args]) == 2
    assert (
        capsys.readouterr().err
        == f"matgate: port {busy_port} on 127.0.0.1 is in use (give --port)\n"
    )


def test_the_demo_on_a_busy_port_is_one_line_not_a_wall_of_tracebacks(tmp_path, busy_port):
    run = subprocess.run(
        [*DEMO, "--data-dir", str(tmp_path / "d"), "--port", str(busy_port)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and f"port {busy_port} on 127.0.0.1 is in use" in run.stderr
    assert "running" not in run.stdout


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_demo_says_running_only_when_every_node_answers(tmp_path):
    port = _free()
    err = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [*DEMO, "--data-dir", str(tmp_path / "demo"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "is running" in line:
                break
        else:
            pytest.fail(
                f"the demo never said it was running: {(tmp_path / 'stderr.txt').read_text()}"
            )
        # no retry: at the moment it says so, every node answers
        for i in range(3):
            assert httpx.get(f"http://127.0.0.1:{port + i}/healthz", timeout=5).status_code == 200
        assert (tmp_path / "demo" / "demo.json").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        err.close()
