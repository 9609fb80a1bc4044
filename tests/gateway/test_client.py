"""The Python client against a node served on loopback."""

from __future__ import annotations

import hashlib

import pandas as pd
import pyarrow as pa
import pytest

from gateway import errors
from gateway.client import Client

NI = "aurora/ni-superalloys"
COLS = ["alloy", "test_temperature_c", "yield_strength_mpa"]


@pytest.fixture
def client(live, tokens):
    with Client(live, token=tokens["ml-user"], progress=False) as c:
        yield c


def test_catalog_search(client):
    found = client.catalog(q="yield strength", pspp="property")
    assert {f"{d['institution']}/{d['name']}" for d in found} == {NI, "aurora/steels-yield"}


def test_pull_returns_dataframe_with_verified_manifest(client, data_dir):
    df = client.dataset(NI).pull(
        columns=COLS,
        filter="test_temperature_c > 600 AND yield_strength_mpa IS KNOWN",
        purpose="research",
    )
    source = pd.read_csv(data_dir / "ni_superalloys.csv")
    expected = source[(source.test_temperature_c > 600) & source.yield_strength_mpa.notna()]
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == COLS
    assert len(df) == len(expected)
    manifest = df.attrs["matgate"]
    assert manifest["rows"] == len(df)
    assert manifest["complete"] is True
    assert manifest["dataset"] == NI
    assert df.attrs["matgate_signature"].count(".") == 2  # a compact JWS


def test_to_arrow(client):
    table = client.dataset(NI).to_arrow(["alloy"], 'alloy STARTS "Inconel"', purpose="research")
    assert isinstance(table, pa.Table)
    assert table.num_rows > 0
    assert all(a.startswith("Inconel") for a in table.column("alloy").to_pylist())


def test_errors_are_the_nodes_problems(client):
    with pytest.raises(errors.BadRequest, match="yield_strengh"):
        client.dataset(NI).pull(filter="yield_strengh > 1", purpose="research")
    with pytest.raises(errors.NotFound):
        client.dataset("aurora/missing").pull(purpose="research")
    with Client(client.url, token="nonsense") as stranger, pytest.raises(errors.Unauthorized):
        stranger.catalog()


def test_tampered_content_is_detected(client, monkeypatch):
    import gateway.client as mod

    real = hashlib.sha256

    class Tampered:
        def __init__(self):
            self._h = real()

        def update(self, data):
            self._h.update(data + b"!")

        def hexdigest(self):
            return self._h.hexdigest()

    monkeypatch.setattr(mod.hashlib, "sha256", Tampered)
    with pytest.raises(errors.IntegrityError, match="content hash"):
        client.dataset(NI).pull(columns=["alloy"], purpose="research", limit=10)
