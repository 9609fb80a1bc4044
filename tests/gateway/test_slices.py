"""Pulling slices: every format, the manifest and its hash, and every bad input."""

from __future__ import annotations

import hashlib
import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gateway.slices import MANIFEST_KEY

NI = "aurora/ni-superalloys"
SLICE = f"/datasets/{NI}/slice"
COLS = ["alloy", "test_temperature_c", "yield_strength_mpa"]
FILTER = "test_temperature_c > 600 AND yield_strength_mpa IS KNOWN"


@pytest.fixture(scope="module")
def reference(data_dir) -> pd.DataFrame:
    """What the filter keeps, computed straight from the shipped CSV."""
    df = pd.read_csv(data_dir / "ni_superalloys.csv")
    kept = df[(df.test_temperature_c > 600) & df.yield_strength_mpa.notna()]
    return kept[COLS].sort_values(COLS).reset_index(drop=True)


def _body(**extra):
    return {"purpose": "research", "columns": COLS, "filter": FILTER, **extra}


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df[COLS].sort_values(COLS).reset_index(drop=True)


def test_arrow_slice_carries_manifest_and_right_rows(api, auth, reference):
    r = api.post(SLICE, json=_body(), headers=auth["ml-user"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(r.content).read_all()
    pd.testing.assert_frame_equal(_sorted(table.to_pandas()), reference, check_dtype=False)
    manifest = json.loads(table.schema.metadata[MANIFEST_KEY])
    assert manifest["dataset"] == NI
    assert manifest["purpose"] == "research"
    assert manifest["licence"] == "Apache-2.0"
    assert manifest["principal"] == "aurora:mia"
    final = api.get(f"/provenance/{manifest['id']}", headers=auth["ml-user"]).json()["manifest"]
    assert final["rows"] == len(reference)
    assert final["sha256"] == hashlib.sha256(r.content).hexdigest()
    assert final["complete"] is True


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json", "jsonl"])
def test_every_format_has_the_same_rows(api, auth, reference, fmt):
    r = api.post(SLICE, json=_body(format=fmt), headers=auth["ml-user"])
    assert r.status_code == 200, r.text
    if fmt == "parquet":
        df = pq.read_table(io.BytesIO(r.content)).to_pandas()
    elif fmt == "csv":
        df = pd.read_csv(io.BytesIO(r.content))
    else:
        df = pd.read_json(io.BytesIO(r.content), lines=fmt == "jsonl")
    pd.testing.assert_frame_equal(_sorted(df), reference, check_dtype=False)
    rid = r.headers["matgate-request-id"]
    final = api.get(f"/provenance/{rid}", headers=auth["ml-user"]).json()["manifest"]
    assert final["sha256"] == hashlib.sha256(r.content).hexdigest()
    assert final["format"] == fmt


def test_get_form_defaults_to_csv(api, auth, reference):
    params = {"purpose": "research", "columns": ",".join(COLS), "filter": FILTER}
    r = api.get(SLICE, params=params, headers=auth["ml-user"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert len(pd.read_csv(io.BytesIO(r.content))) == len(reference)


def test_order_limit_offset(api, auth, reference):
    body = _body(order_by=["-yield_strength_mpa", "alloy"], limit=5, offset=2)
    table = pa.ipc.open_stream(
        api.post(SLICE, json=body, headers=auth["ml-user"]).content
    ).read_all()
    got = table.column("yield_strength_mpa").to_pylist()
    expected = sorted(reference.yield_strength_mpa, reverse=True)[2:7]
    assert got == expected


def test_empty_result_keeps_the_schema(api, auth):
    body = _body(filter="yield_strength_mpa > 1e9")
    table = pa.ipc.open_stream(
        api.post(SLICE, json=body, headers=auth["ml-user"]).content
    ).read_all()
    assert table.num_rows == 0
    assert table.column_names == COLS


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (_body(filter="yield_strengh > 3"), 400, "yield_strengh"),
        (_body(filter="yield_strength_mpa > > 3"), 400, ""),
        (_body(filter='yield_strength_mpa > "high"'), 400, "yield_strength_mpa"),
        (_body(filter="alloy CONTAINS 3"), 400, "CONTAINS"),
        (_body(columns=["alloy", "nope"]), 400, "nope"),
        (_body(order_by=["nope"]), 400, "nope"),
        (_body(order_by=["x; DROP TABLE"]), 422, "order"),
        (_body(limit=-1), 422, "limit"),
        (_body(format="xlsx"), 422, "format"),
        ({"columns": COLS}, 422, "purpose"),
        (_body(extra="field"), 422, "extra"),
    ],
)
def test_bad_input_is_a_clear_problem(api, auth, body, status, fragment):
    r = api.post(SLICE, json=body, headers=auth["ml-user"])
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status
    assert fragment in problem["detail"]


def test_filter_syntax_error_points_at_position(api, auth):
    r = api.post(SLICE, json=_body(filter="yield_strength_mpa > > 3"), headers=auth["ml-user"])
    assert r.json()["position"] == 21


def test_hostile_filter_strings_are_data_not_sql(api, auth):
    body = _body(
        filter="alloy = \"x' OR '1'='1\" OR alloy CONTAINS \"'; DROP TABLE ni_superalloys; --\""
    )
    r = api.post(SLICE, json=body, headers=auth["ml-user"])
    assert r.status_code == 200
    assert pa.ipc.open_stream(r.content).read_all().num_rows == 0
    again = api.post(SLICE, json=_body(limit=1), headers=auth["ml-user"])
    assert pa.ipc.open_stream(again.content).read_all().num_rows == 1


def test_provenance_is_private_to_the_receiver(api, auth):
    r = api.post(SLICE, json=_body(limit=3), headers=auth["ml-user"])
    rid = r.headers["matgate-request-id"]
    assert api.get(f"/provenance/{rid}", headers=auth["partner"]).status_code == 404
    assert api.get(f"/provenance/{rid}", headers=auth["auditor"]).status_code == 200
    assert api.get("/provenance/unknown", headers=auth["ml-user"]).status_code == 404


def test_parquet_file_metadata_holds_the_manifest(api, auth):
    r = api.post(SLICE, json=_body(format="parquet", limit=10), headers=auth["ml-user"])
    footer = pq.read_metadata(io.BytesIO(r.content)).metadata  # written last: the sealed one
    sealed = json.loads(footer[MANIFEST_KEY])
    assert sealed["dataset"] == NI and sealed["rows"] == 10 and sealed["complete"] is True


def test_arrow_encoding_is_the_standard_ipc_stream():
    """The encoder's bytes are exactly what pyarrow's own stream writer produces."""
    from gateway.formats import Format, encode

    schema = pa.schema([("a", pa.int64()), ("b", pa.string())]).with_metadata({b"k": b"v"})
    batches = [
        pa.record_batch([pa.array([1, 2, None]), pa.array(["x", None, "z"])], schema=schema),
        pa.record_batch([pa.array([], pa.int64()), pa.array([], pa.string())], schema=schema),
        pa.record_batch([pa.array([7]), pa.array(["é"])], schema=schema),
    ]
    ours = b"".join(encode(Format.ARROW, schema, iter(batches)))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    assert ours == sink.getvalue().to_pybytes()


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_keeps_arrow_values_exactly(fmt):
    """JSON slices carry Arrow's own values: every digit of a float, integers as integers
    (nulls too), null for NaN, RFC 3339 UTC timestamps and ISO dates."""
    import datetime as dt

    from gateway.formats import Format, encode

    schema = pa.schema(
        [
            ("n", pa.int64()),
            ("x", pa.float64()),
            ("t", pa.timestamp("us", "UTC")),
            ("d", pa.date32()),
            ("s", pa.string()),
        ]
    )
    when = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    batches = [
        pa.record_batch(
            [
                pa.array([1, None]),
                pa.array([0.1 + 0.2, float("nan")]),
                pa.array([when, None], pa.timestamp("us", "UTC")),
                pa.array([dt.date(2024, 2, 29), None], pa.date32()),
                pa.array(['a "quoted"\nline', "é"]),
            ],
            schema=schema,
        ),
        pa.record_batch([pa.array([], t) for t in schema.types], schema=schema),
        pa.record_batch(
            [
                pa.array([2**53 + 1]),
                pa.array([-1e-7]),
                pa.array([None], pa.timestamp("us", "UTC")),
                pa.array([None], pa.date32()),
                pa.array([""]),
            ],
            schema=schema,
        ),
    ]
    body = b"".join(encode(Format(fmt), schema, iter(batches)))
    rows = [json.loads(line) for line in body.splitlines()] if fmt == "jsonl" else json.loads(body)
    assert rows == [
        {
            "n": 1,
            "x": 0.30000000000000004,
            "t": "2024-05-06T07:08:09.123456Z",
            "d": "2024-02-29",
            "s": 'a "quoted"\nline',
        },
        {"n": None, "x": None, "t": None, "d": None, "s": "é"},
        {"n": 2**53 + 1, "x": -1e-7, "t": None, "d": None, "s": ""},
    ]
    assert type(rows[0]["n"]) is int
