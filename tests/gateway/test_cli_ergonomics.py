"""The CLI for people: tables by default, --json for scripts, times as people write them, newest
first, help on every option, and the federated catalog from the command line and the client."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_federation_world import World, build_world, serve

from gateway.cli import _parser, main
from gateway.cli_output import parse_time
from gateway.client import Client

NI = "aurora/ni-superalloys"
NOW = dt.datetime(2026, 12, 2, 10, 30, tzinfo=dt.UTC)


@pytest.fixture
def as_user(monkeypatch, live, tokens):
    def use(persona: str) -> None:
        monkeypatch.setenv("MATGATE_URL", live)
        monkeypatch.setenv("MATGATE_TOKEN", tokens[persona])

    return use


def _options(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_has_help():
    found = list(_options(_parser(), "matgate"))
    assert len(found) > 60
    missing = [f"{path} {a.option_strings or a.dest}" for path, a in found if not a.help]
    assert missing == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", "2026-12-02T09:30:00.000000Z"),
        ("30m", "2026-12-02T10:00:00.000000Z"),
        ("7d", "2026-11-25T10:30:00.000000Z"),
        ("2w", "2026-11-18T10:30:00.000000Z"),
        ("2026-12-01", "2026-12-01T00:00:00.000000Z"),
        ("2026-12-01T09:30:00Z", "2026-12-01T09:30:00.000000Z"),
        ("2026-12-01T18:30:00+09:00", "2026-12-01T09:30:00.000000Z"),
        ("2026-12-01T09:30", "2026-12-01T09:30:00.000000Z"),  # no zone: UTC
    ],
)
def test_times_as_people_write_them(text, expected):
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "1y", "", "12/01/2026", "-1h"])
def test_a_time_that_is_not_one_says_what_is(text):
    with pytest.raises(ValueError, match="30m, 1h, 7d"):
        parse_time(text, NOW)


def test_a_bad_since_is_a_usage_error(as_user, capsys):
    as_user("auditor")
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "events", "--since", "yesterday"])
    assert exit_.value.code == 2
    assert "give an age" in capsys.readouterr().err


def test_catalog_is_a_table_and_json_for_scripts(as_user, capsys):
    as_user("ml-user")
    assert main(["catalog", "yield strength"]) == 0
    out = capsys.readouterr().out
    assert "id" in out.splitlines()[0] and "licence" in out.splitlines()[0]
    assert NI in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    assert main(["catalog", "yield strength", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert NI in {d["id"] for d in entries}
    assert all(d["id"] == f"{d['institution']}/{d['name']}" for d in entries)


def test_audit_events_newest_first(as_user, capsys, tmp_path):
    as_user("ml-user")
    for n in range(2):  # something recent in the log
        out = str(tmp_path / f"{n}.csv")
        assert main(["pull", NI, "--purpose", "research", "--limit", "2", "-o", out]) == 0
    capsys.readouterr()
    as_user("auditor")
    assert main(["audit", "events", "--since", "1h", "--limit", "20", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    times = [r["time"] for r in rows]
    assert len(rows) > 1 and times == sorted(times, reverse=True)
    assert main(["audit", "events", "--limit", "20", "--oldest-first", "--json"]) == 0
    oldest = [json.loads(x)["time"] for x in capsys.readouterr().out.splitlines()]
    assert oldest == sorted(oldest) and oldest[0] <= times[-1]
    assert main(["audit", "events", "--since", "2999-01-01", "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["audit", "events", "--since", "1h", "--limit", "3"]) == 0
    table = capsys.readouterr().out
    assert "request id" in table and "time" in table.splitlines()[0]


def test_policy_list_is_a_table(as_user, capsys):
    as_user("steward")
    assert main(["policy", "list", "aurora"]) == 0
    out = capsys.readouterr().out
    assert "policy version" in out and "effect" in out and "read" in out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """alpha, beta and gamma, each naming the two others as peers."""
    yield from serve(build_world(tmp_path_factory.mktemp("cli-federation")))


def test_client_catalog_federated(world):
    with Client(world.url("alpha"), token=world.token("alpha"), progress=False) as ana:
        local = ana.catalog()
        everywhere = ana.catalog(federated=True)
    assert {d["institution"] for d in local} == {"alpha"}
    assert {d["institution"] for d in everywhere} == {"alpha", "beta", "gamma"}
    assert everywhere.complete is True
    assert {d["id"] for d in everywhere} >= {"alpha/gaps", "beta/gaps", "gamma/gaps"}
    assert set(everywhere.sites) == {"alpha", "beta", "gamma"}


def test_cli_catalog_federated(world, monkeypatch, capsys):
    monkeypatch.setenv("MATGATE_URL", world.url("alpha"))
    monkeypatch.setenv("MATGATE_TOKEN", world.token("alpha"))
    assert main(["catalog", "--federated", "--json"]) == 0
    ids = {d["id"] for d in json.loads(capsys.readouterr().out)}
    assert {"alpha/gaps", "beta/gaps", "gamma/gaps"} <= ids
    assert main(["catalog"]) == 0
    assert "beta/gaps" not in capsys.readouterr().out


def test_train_waits_for_the_remote_job_and_writes_the_model(as_user, tmp_path, capsys):
    from training.store import loads_model

    as_user("ml-user")
    out = tmp_path / "model.skops"
    args = ["train", "aurora/steels-yield", "--target", "target", "--estimator", "ridge"]
    assert main([*args, "--cv", "3", "-o", str(out), "--json"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["status"] == "done"
    model = loads_model(out.read_bytes())
    assert model.metrics["mae"] == pytest.approx(job["result"]["model"]["metrics"]["mae"])


def test_policy_dry_run_is_a_table_of_what_would_change(as_user, tmp_path, capsys):
    as_user("steward")
    change = tmp_path / "deny.json"
    change.write_text(
        json.dumps([{"effect": "deny", "role": "partner", "domain": "aurora", "action": "read"}])
    )
    assert main(["policy", "dry-run", "aurora", str(change), "--json"]) == 0
    impacts = json.loads(capsys.readouterr().out)["impacts"]
    lost = {(i["principal"], i["dataset"]) for i in impacts if i.get("access") == "lost"}
    assert lost and all(dataset.startswith("aurora/") for _, dataset in lost)
    assert main(["policy", "dry-run", "aurora", str(change)]) == 0
    table = capsys.readouterr().out
    assert "what the change would do" in table
    for principal, dataset in lost:
        assert any(
            principal in row and dataset in row and "lost" in row for row in table.splitlines()
        )
    assert main(["policy", "list", "aurora", "--json"]) == 0  # nothing was changed
    lines = json.loads(capsys.readouterr().out)["lines"]
    assert not any(
        line.get("effect") == "deny" and line.get("role") == "partner" and "withhold" not in line
        for line in lines
    )


def _complete(script: Path, *words: str) -> list[str]:
    """What bash completes for the last of ``words`` (a real bash running the script)."""
    line = " ".join(("matgate", *words))
    array = " ".join(shlex.quote(w) for w in ("matgate", *words))
    program = (
        f"source {shlex.quote(str(script))}; COMP_WORDS=({array}); COMP_CWORD={len(words)}; "
        f"COMP_LINE={shlex.quote(line)}; COMP_POINT={len(line)}; _shtab_matgate; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_commands_and_options(capsys, tmp_path):
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "matgate.bash"
    script.write_text(capsys.readouterr().out)
    assert _complete(script, "cat") == ["catalog"]
    assert _complete(script, "audit", "ev") == ["events"]
    assert "--federated" in _complete(script, "catalog", "--fed")
    assert set(_complete(script, "")) >= {"catalog", "pull", "train", "audit", "completion"}


def test_zsh_completion_names_the_commands(capsys):
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef matgate")
    for command in ("catalog", "pull", "train", "policy", "audit", "verify"):
        assert command in script
    with pytest.raises(SystemExit) as exit_:
        main(["completion", "fish"])
    assert exit_.value.code == 2
