"""Self-describing slice files: catalog metadata on every field, nullability, UTC timestamps,
columns in the order asked, and the signed manifest sealed into the file, which
``matgate verify`` checks on its own against the node's published keys."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.keys import Signer
from gateway.cli import main
from gateway.filecheck import verify_file
from gateway.formats import Format, encode, read_seal

NI = "aurora/ni-superalloys"
SLICE = f"/datasets/{NI}/slice"
ASKED = ["yield_strength_mpa", "alloy", "test_temperature_c", "release_at"]


def pull(api, auth, fmt: str, persona: str = "ml-user", **body: Any) -> bytes:
    payload = {"purpose": "research", "columns": ASKED, "limit": 50, "format": fmt, **body}
    r = api.post(SLICE, json=payload, headers=auth[persona])
    assert r.status_code == 200, r.text
    return r.content


def read(fmt: str, data: bytes) -> pa.Table:
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data))
    return pa.ipc.open_stream(data).read_all()


@pytest.fixture(scope="module")
def jwks(api) -> dict[str, Any]:
    return api.get("/.well-known/jwks.json").json()


@pytest.fixture(scope="module")
def catalog(api, auth) -> dict[str, dict[str, Any]]:
    return {
        c["name"]: c for c in api.get(f"/catalog/{NI}", headers=auth["ml-user"]).json()["columns"]
    }


def save(tmp_path: Path, fmt: str, data: bytes) -> Path:
    path = tmp_path / f"slice{Format(fmt).suffix}"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_fields_describe_themselves(api, auth, catalog, fmt):
    table = read(fmt, pull(api, auth, fmt))
    assert table.schema.names == ASKED  # the order asked, not the dataset's
    for f in table.schema:
        col = catalog[f.name]
        meta = {k.decode(): v.decode() for k, v in f.metadata.items()}
        assert meta["matgate.pspp"] == col["pspp"]
        assert meta["matgate.sensitivity"] == col["sensitivity"]
        assert meta["matgate.description"] == col["description"]
        assert meta["matgate.type"] == col["type"]
        assert meta.get("matgate.unit") == col.get("unit")
        assert "matgate.mask" not in meta
        assert f.nullable is col["nullable"]
    assert table.schema.field("alloy").nullable is False  # the catalog says every row has one
    assert table.schema.field("release_at").type == pa.timestamp("us", tz="UTC")


def test_default_order_is_the_dataset_order(api, auth, catalog):
    table = read("arrow", pull(api, auth, "arrow", columns=None))
    assert table.schema.names == [c for c in catalog if c in table.schema.names]


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_a_masked_field_says_so(api, auth, fmt):
    data = pull(api, auth, fmt, "partner", columns=["operator", "alloy"])
    f = read(fmt, data).schema.field("operator")
    assert (
        f.metadata[b"matgate.mask"] == b"hash" and f.metadata[b"matgate.sensitivity"] == b"personal"
    )
    assert f.nullable is True


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_a_sealed_file_verifies_on_its_own(api, auth, jwks, tmp_path, fmt):
    data = pull(api, auth, fmt)
    report = verify_file(save(tmp_path, fmt, data), jwks)
    assert report.ok, report.to_dict()
    names = [c.name for c in report.checks]
    assert {"signature", "manifest", "rows", "content", "schema", "complete"} <= set(names)
    sealed = report.manifest
    assert sealed is not None and sealed["rows"] == read(fmt, data).num_rows == 50
    kept = api.get(f"/provenance/{sealed['id']}", headers=auth["ml-user"]).json()["manifest"]
    # The node's record adds what only the end of the stream knows: every byte's hash.
    assert kept["content"] == sealed["content"] and kept["rows"] == sealed["rows"]
    assert kept["bytes"] == len(data) and kept["sha256"] != sealed["content"]["sha256"]
    assert [c["name"] for c in sealed["schema"]] == ASKED


def test_an_empty_slice_is_sealed_too(api, auth, jwks, tmp_path):
    for fmt in ("arrow", "parquet"):
        data = pull(api, auth, fmt, filter="yield_strength_mpa < 0")
        report = verify_file(save(tmp_path, fmt, data), jwks)
        assert report.ok and report.manifest and report.manifest["rows"] == 0, report.to_dict()


def test_the_arrow_schema_carries_a_draft_and_the_last_message_the_seal(api, auth):
    data = pull(api, auth, "arrow")
    draft = json.loads(pa.ipc.open_stream(data).schema.metadata[b"matgate.manifest"])
    assert draft["rows"] is None and draft["complete"] is False  # unknown when it was written
    sealed = read_seal(data)
    assert json.loads(sealed.seal["matgate.manifest"])["id"] == draft["id"]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1 :]


def _reencode_with_unit(data: bytes, unit: str) -> bytes:
    """The same batches and seal message under a schema whose unit was changed."""
    reader = pa.ipc.open_stream(data)
    schema = reader.schema
    i = schema.get_field_index("yield_strength_mpa")
    meta = {**schema.field(i).metadata, b"matgate.unit": unit.encode()}
    schema = schema.set(i, schema.field(i).with_metadata(meta))
    batches, seal = [], None
    while True:
        try:
            batch, custom = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        if custom and b"matgate.signature" in custom:
            seal = {k.decode(): v.decode() for k, v in custom.items()}
        else:
            batches.append(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    return b"".join(encode(Format.ARROW, schema, iter(batches), lambda content: seal))


def _rewritten_parquet(data: bytes) -> bytes:
    """The file's table written again by pyarrow, with the original footer seal copied over."""
    seal = read_seal(data).seal
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, pq.read_table(io.BytesIO(data)).schema) as writer:
        writer.write_table(pq.read_table(io.BytesIO(data)))
        writer.add_key_value_metadata(seal)
    return sink.getvalue()


@pytest.mark.parametrize(
    ("fmt", "tamper", "failed"),
    [
        ("arrow", lambda d: _flip(d, len(d) // 2), {"content", "seal"}),
        ("parquet", lambda d: _flip(d, 40), {"content", "seal"}),
        ("arrow", lambda d: _reencode_with_unit(d, "ksi"), {"content", "schema"}),
        ("parquet", _rewritten_parquet, {"content"}),
        ("arrow", lambda d: d[: len(d) // 2], {"seal"}),
        ("parquet", lambda d: d[:-100], {"seal"}),
    ],
    ids=["arrow-bit", "parquet-bit", "arrow-unit", "parquet-rewritten", "arrow-cut", "parquet-cut"],
)
def test_tampered_files_fail(api, auth, jwks, tmp_path, fmt, tamper, failed):
    report = verify_file(save(tmp_path, fmt, tamper(pull(api, auth, fmt))), jwks)
    assert not report.ok
    assert {c.name for c in report.checks if not c.ok} & failed, report.to_dict()


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_keys_other_than_the_nodes_are_refused(api, auth, jwks, tmp_path, fmt):
    path = save(tmp_path, fmt, pull(api, auth, fmt))
    kid = jwks["keys"][0]["kid"]
    for keys in (Signer.generate("someone-else").jwks(), Signer.generate(kid).jwks()):
        report = verify_file(path, keys)
        assert [c.name for c in report.checks if not c.ok] == ["signature"]


def test_a_csv_file_has_no_seal(api, auth, jwks, tmp_path):
    report = verify_file(save(tmp_path, "csv", pull(api, auth, "csv")), jwks)
    assert not report.ok and report.checks[0].name == "seal"


def test_verify_command(api, auth, jwks, tmp_path, live, capsys):
    path = save(tmp_path, "parquet", pull(api, auth, "parquet"))
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks))
    assert main(["verify", str(path), "--jwks", str(keys)]) == 0
    assert "verified" in capsys.readouterr().out
    assert main(["verify", str(path), "--jwks", live, "--json"]) == 0  # the node's URL
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["verify", str(path), "--jwks", f"{live}/.well-known/jwks.json"]) == 0
    capsys.readouterr()
    assert main(["verify", str(path)]) == 2  # no trust root named: none taken from the file
    assert live in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(json.dumps(Signer.generate("k").jwks()))
    assert main(["verify", str(path), "--jwks", str(other)]) == 1
    assert "NOT verified" in capsys.readouterr().out


def test_pull_saves_the_sealed_file(tokens, live, jwks, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MATGATE_URL", live)
    monkeypatch.setenv("MATGATE_TOKEN", tokens["ml-user"])
    for name in ("pulled.parquet", "pulled.arrows"):
        out = tmp_path / name
        args = ["pull", NI, "-o", str(out), "--purpose", "research", "--columns", "alloy"]
        assert main([*args, "--limit", "5", "--no-progress"]) == 0
        report = verify_file(out, jwks)
        assert report.ok and report.manifest and report.manifest["rows"] == 5, report.to_dict()
    capsys.readouterr()


def test_a_store_breaking_the_catalogs_not_null_fails_before_any_byte(fresh):
    api, headers = fresh
    entry = api.get(f"/catalog/{NI}", headers=headers["steward"]).json()
    columns = [
        {**c, "nullable": False} if c["name"] == "yield_strength_mpa" else c
        for c in entry["columns"]
    ]
    strict = {**entry, "name": "ni-strict", "persistent_id": None, "columns": columns}
    r = api.post("/catalog", json=strict, headers=headers["steward"])
    assert r.status_code == 201, r.text
    r = api.post(
        "/datasets/aurora/ni-strict/slice",
        json={"purpose": "research", "columns": ["alloy", "yield_strength_mpa"]},
        headers=headers["ml-user"],
    )
    assert r.status_code == 503 and "declared not null" in r.json()["detail"]
    ok = api.post(
        "/datasets/aurora/ni-strict/slice",
        json={"purpose": "research", "filter": "yield_strength_mpa IS KNOWN", "limit": 5},
        headers=headers["ml-user"],
    )
    assert ok.status_code == 200
    assert pa.ipc.open_stream(ok.content).schema.field("yield_strength_mpa").nullable is False
