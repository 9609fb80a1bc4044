"""Tampering with the audit trail, as an auditor who trusts nothing but a pinned key sees it.

A real export of the demo node is edited the ways an operator covering tracks would; ``matgate
audit verify`` must fail and name the entry or checkpoint. Online, a rolled-back or forked log
is caught against the checkpoint accepted before; a dataset report's proofs hold offline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from audit.checkpoints import sign_checkpoint
from audit.entries import encode_entry, split_entry
from audit.keys import Signer
from audit.merkle import MerkleTree, leaf_hash
from gateway.cli import main
from gateway.client import Client

NI = "aurora/ni-superalloys"


@pytest.fixture
def auditor(monkeypatch, live, tokens):
    monkeypatch.setenv("MATGATE_URL", live)
    monkeypatch.setenv("MATGATE_TOKEN", tokens["auditor"])


@pytest.fixture
def pin(api, auth) -> list[str]:
    view = api.get("/audit/checkpoint", headers=auth["auditor"]).json()
    return [f"--trust-key={view['fingerprint']}"]  # "=": a fingerprint may start with "-"


@pytest.fixture
def export(auditor, tmp_path, live, tokens) -> Path:
    with Client(live, token=tokens["ml-user"], progress=False) as client:
        for _ in range(3):
            client.dataset(NI).pull(columns=["alloy"], purpose="research", limit=3)
    path = tmp_path / "log.jsonl"
    assert main(["audit", "export", "-o", str(path)]) == 0
    return path


def _split(path: Path) -> tuple[str, list[bytes], list[dict]]:
    lines = path.read_bytes().splitlines()
    entries = [x for x in lines if x.startswith(b'{"event":')]
    cps = [json.loads(x)["checkpoint"] for x in lines if x.startswith(b'{"checkpoint":')]
    return lines[0].decode(), entries, cps


def _join(path: Path, header: str, entries: list[bytes], cps: list[dict]) -> None:
    out = [header.encode(), *entries, *(json.dumps({"checkpoint": c}).encode() for c in cps)]
    path.write_bytes(b"\n".join(out) + b"\n")


def _rechain(entries: list[bytes], start: int) -> list[bytes]:
    prev = split_entry(entries[start])[1]
    out = entries[:start]
    for seq, body in enumerate(entries[start:], start=start):
        out.append(encode_entry(split_entry(body)[2], seq, prev))
        prev = leaf_hash(out[-1]).hex()
    return out


def _flip(h: str, e: list[bytes], c: list[dict]) -> tuple:
    e[2] = e[2].replace(b'"dataset":"', b'"dataset":"x', 1)
    return h, e, c


def _delete(h: str, e: list[bytes], c: list[dict]) -> tuple:
    del e[2]
    return h, e, c


def _reorder(h: str, e: list[bytes], c: list[dict]) -> tuple:
    e[1], e[2] = e[2], e[1]
    return h, e, c


def _insert(h: str, e: list[bytes], c: list[dict]) -> tuple:
    seq, prev, event = split_entry(e[2])
    e.insert(2, encode_entry(event.replace(b'"allow"', b'"deny"'), seq, prev))
    return h, e, c


def _truncate(h: str, e: list[bytes], c: list[dict]) -> tuple:
    return h, e[:-2], c


def _drop_checkpoints(h: str, e: list[bytes], c: list[dict]) -> tuple:
    return h, e, []


def _edit_rechain(h: str, e: list[bytes], c: list[dict]) -> tuple:
    seq, prev, event = split_entry(e[1])
    e[1] = encode_entry(event.replace(b'"time":"', b'"time":"1', 1), seq, prev)
    return h, _rechain(e, 1), c


def _resign(h: str, e: list[bytes], c: list[dict]) -> tuple:
    # delete an entry, re-chain, sign fresh checkpoints with another key, ship its JWKS
    e = _rechain([*e[:1], *e[2:]], 1)
    attacker = Signer.generate(c[-1]["kid"])
    tree = MerkleTree(leaf_hash(b) for b in e)
    forged = sign_checkpoint(attacker, size=len(e), root=tree.root(), time="t", node="aurora")
    header = json.loads(h)
    header["header"]["jwks"] = attacker.jwks()
    return json.dumps(header), e, [forged.to_dict()]


@pytest.mark.parametrize(
    ("tamper", "kind"),
    [
        (_flip, "altered"),
        (_delete, "deleted"),
        (_reorder, "reordered"),
        (_insert, "inserted"),
        (_truncate, "truncated"),
        (_drop_checkpoints, "uncovered"),
        (_edit_rechain, "root-mismatch"),
        (_resign, "unknown-key"),
    ],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_tampered_export_fails_and_names_what(
    export: Path, pin: list[str], capsys, tamper: Callable[..., tuple], kind: str
) -> None:
    assert main(["audit", "verify", str(export), *pin]) == 0
    capsys.readouterr()
    _join(export, *tamper(*_split(export)))
    assert main(["audit", "verify", str(export), *pin]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "failed"
    named = [p for p in out["problems"] if p["kind"] == kind]
    assert any(p["index"] is not None or p["checkpoint"] is not None for p in named)


def test_unpinned_verification_says_authenticity_was_not_checked(export: Path, capsys) -> None:
    assert main(["audit", "verify", str(export)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "unauthenticated" and "NOT checked" in out["summary"]


@pytest.mark.parametrize(
    ("previous", "kind"),
    [
        (lambda size, root: (size + 5, root), "rollback"),
        (lambda size, root: (size, "ab" * 32), "fork"),
    ],
    ids=["rolled back", "forked"],
)
def test_online_verify_holds_the_node_to_the_last_accepted_checkpoint(
    auditor, live, pin: list[str], tmp_path: Path, capsys, previous: Callable, kind: str
) -> None:
    state = tmp_path / "state.json"
    assert main(["audit", "verify", *pin, "--state", str(state)]) == 0
    out = json.loads(capsys.readouterr().out)
    saved = json.loads(state.read_text())
    origin = next(iter(saved))
    assert saved[origin]["size"] == out["verified_size"] and saved[origin]["root"] == out["root"]
    assert main(["audit", "verify", *pin, "--state", str(state)]) == 0  # it still extends it
    capsys.readouterr()
    size, root = previous(saved[origin]["size"], saved[origin]["root"])
    state.write_text(json.dumps({origin: {"size": size, "root": root}}))
    assert main(["audit", "verify", *pin, "--state", str(state)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [p["kind"] for p in out["problems"]] == [kind]
    assert json.loads(state.read_text())[origin]["root"] == root  # nothing new accepted


def test_dataset_report_verifies_offline_and_detects_edits(
    auditor, live, tokens, pin: list[str], tmp_path: Path, capsys
) -> None:
    with Client(live, token=tokens["ml-user"], progress=False) as client:
        df = client.dataset(NI).pull(columns=["alloy"], purpose="ml-training", limit=5)
        client.post(
            "/lineage/runs",
            {"manifests": [df.attrs["matgate_signature"]], "model_name": "report-forest"},
        )
    path = tmp_path / "report.json"
    assert main(["audit", "report", "--dataset", NI, "-o", str(path)]) == 0
    report = json.loads(path.read_text())
    names = {json.loads(split_entry(e["body"].encode())[2])["name"] for e in report["entries"]}
    assert {"decision", "slice", "run"} <= names
    assert any(m["model_name"] == "report-forest" for m in report["models"])
    assert main(["audit", "verify-report", str(path), *pin]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "verified"
    assert main(["audit", "verify-report", str(path)]) == 1  # no trust root: not authenticated
    capsys.readouterr()
    first = report["entries"][0]
    edited = dict(report, entries=[dict(first, body=first["body"].replace("allow", "deny"))])
    path.write_text(json.dumps(edited))
    assert main(["audit", "verify-report", str(path), *pin]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert ("not-included", first["index"]) in {(p["kind"], p["index"]) for p in problems}
    foreign = dict(report, dataset="aurora/steels-yield")
    path.write_text(json.dumps(foreign))
    assert main(["audit", "verify-report", str(path), *pin]) == 1
    assert "foreign" in {p["kind"] for p in json.loads(capsys.readouterr().out)["problems"]}
