"""The ``matgate`` command against a node on loopback."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from gateway.cli import main

NI = "aurora/ni-superalloys"


@pytest.fixture
def as_user(monkeypatch, live, tokens):
    def use(persona: str) -> None:
        monkeypatch.setenv("MATGATE_URL", live)
        monkeypatch.setenv("MATGATE_TOKEN", tokens[persona])

    return use


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["demo"],
        ["token"],
        ["catalog"],
        ["pull"],
        ["policy", "list"],
        ["policy", "add"],
        ["policy", "explain"],
        ["audit", "events"],
        ["audit", "export"],
        ["audit", "verify"],
    ],
)
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    assert len(capsys.readouterr().out) > 100


def test_catalog_and_pull(as_user, tmp_path, capsys):
    as_user("ml-user")
    assert main(["catalog", "yield strength", "--pspp", "property"]) == 0
    assert NI in capsys.readouterr().out
    out = tmp_path / "slice.parquet"
    code = main(
        [
            "pull",
            NI,
            "-o",
            str(out),
            "--purpose",
            "research",
            "--columns",
            "alloy,yield_strength_mpa",
            "--filter",
            "yield_strength_mpa > 1000",
            "--no-progress",
        ]
    )
    assert code == 0
    table = pq.read_table(out)
    assert table.num_rows > 0 and min(table.column("yield_strength_mpa").to_pylist()) > 1000
    assert "attribute" in capsys.readouterr().out  # the licence's obligation is shown


def test_pull_refused_is_a_clear_message(as_user, tmp_path, capsys):
    as_user("partner")
    code = main(["pull", NI, "-o", str(tmp_path / "x.csv"), "--purpose", "commercial"])
    assert code == 1
    assert "Forbidden" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_token_minted_by_the_node_key(app, demo_plan, capsys, live):
    settings = app.state.node.settings
    code = main(
        [
            "token",
            "zoe",
            "--config",
            str(settings.config),
            "--data-dir",
            str(settings.data_dir),
            "--roles",
            "member",
        ]
    )
    assert code == 0
    token = capsys.readouterr().out.strip()
    principal = app.state.node.auth.authenticate(token)
    assert principal.id == "aurora:zoe" and principal.roles == {"member"}


def test_policy_list_and_explain(as_user, capsys):
    as_user("steward")
    assert main(["policy", "list", "aurora", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["domain"] == "aurora" and listing["lines"]
    explain = ["policy", "explain", NI, "--purpose", "commercial", "--as", "borealis:pablo"]
    assert main([*explain, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["allowed"] is False


def test_audit_verify_online_and_from_an_export(as_user, tmp_path, capsys, api, auth):
    as_user("auditor")
    state = ["--state", str(tmp_path / "state.json")]
    assert main(["audit", "verify", *state]) == 1  # no trust root named: not authenticated
    assert json.loads(capsys.readouterr().out)["status"] == "unauthenticated"
    fingerprint = api.get("/audit/checkpoint", headers=auth["auditor"]).json()["fingerprint"]
    pin = [f"--trust-key={fingerprint}"]  # "=": a fingerprint may start with "-"
    assert main(["audit", "verify", *pin, *state]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    bundle = tmp_path / "log.jsonl"
    assert main(["audit", "export", "-o", str(bundle)]) == 0
    assert main(["audit", "verify", str(bundle), *pin]) == 0
    capsys.readouterr()
    lines = bundle.read_text().splitlines()
    entry = next(i for i, line in enumerate(lines) if '"decision"' in line and '"allow"' in line)
    lines[entry] = lines[entry].replace('"allow"', '"deny"', 1)
    bundle.write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", str(bundle), *pin]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_audit_events_for_auditors_only(as_user, capsys):
    as_user("auditor")
    assert main(["audit", "events", "--name", "decision", "--limit", "5", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows and all(r["name"] == "decision" for r in rows)
    as_user("ml-user")
    assert main(["audit", "events"]) == 1
