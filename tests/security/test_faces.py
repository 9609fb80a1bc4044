"""Foreign protocol faces (OPTIMADE, Delta Sharing) must not leak what the native route refuses.

Threat: a caller refused a slice (no token, no relationship, no agreement, a withheld column)
asks the same node through another protocol. Each row: the native answer, and what each face
gives the same caller for the same data: nothing more.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from faces_support import faces_node
from fastapi.testclient import TestClient
from gateway_support import persona_tokens

NI, GAPS, STEELS = "ni-superalloys", "expt-gap", "steels-yield"


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """A node whose three datasets are mapped to OPTIMADE and shared with two institutions."""
    app, _plan = faces_node(
        Path(tmp_path_factory.mktemp("faces")),
        optimade={
            "structures": [
                {"dataset": GAPS, "formula": "formula"},
                {"dataset": STEELS, "formula": "formula"},
                {"dataset": NI, "formula": "alloy", "id_column": "record_id"},
            ]
        },
        shares=[
            {"name": "all", "datasets": [NI, GAPS, STEELS], "institutions": ["borealis", "cygnus"]}
        ],
    )
    tokens = persona_tokens(app.state.node.issuer)
    tokens["stranger"] = app.state.node.issuer.mint("sam", institution="cygnus")
    headers = {who: {"Authorization": f"Bearer {t}"} for who, t in tokens.items()}
    headers["anonymous"] = {}
    with TestClient(app) as client:
        yield client, headers


def _optimade_count(client: TestClient, headers: dict[str, str], dataset: str) -> int:
    r = client.get(
        "/optimade/structures",
        params={"filter": f'id STARTS "{dataset}:"', "page_limit": 1},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return int(r.json()["meta"]["data_returned"])


def _shared(client: TestClient, headers: dict[str, str], dataset: str) -> tuple[int, Any]:
    r = client.post(
        f"/delta-sharing/shares/all/schemas/aurora/tables/{dataset}/query", json={}, headers=headers
    )
    if r.status_code != 200:
        return r.status_code, None
    file = json.loads(r.text.splitlines()[2])["file"]
    return 200, pq.read_table(io.BytesIO(client.get(file["url"]).content))


@pytest.mark.parametrize(
    ("who", "dataset", "native", "sharing"),
    [
        ("anonymous", NI, 404, 401),  # no token: not public
        ("stranger", NI, 404, 404),  # a recipient of the share, but no relationship with Aurora
        ("partner", STEELS, 403, 403),  # the steels' agreement is not accepted
        ("anonymous", STEELS, 404, 401),
        ("stranger", STEELS, 404, 404),
    ],
)
def test_a_refused_slice_is_refused_by_every_face(node, who, dataset, native, sharing):
    client, headers = node
    r = client.get(
        f"/datasets/aurora/{dataset}/slice", params={"purpose": "research"}, headers=headers[who]
    )
    assert r.status_code == native
    assert _optimade_count(client, headers[who], dataset) == 0
    assert _shared(client, headers[who], dataset)[0] == sharing


def test_a_withheld_column_is_absent_from_every_face(node):
    client, headers = node
    partner = headers["partner"]
    native = client.get(
        f"/datasets/aurora/{NI}/slice",
        params={"purpose": "research", "columns": "sponsor"},
        headers=partner,
    )
    assert native.status_code == 403
    info = client.get("/optimade/info/structures", headers=partner).json()["data"]["properties"]
    assert "_matgate_sponsor" not in info and "_matgate_operator" in info
    found = client.get(
        "/optimade/structures",
        params={"filter": f'id STARTS "{NI}:"', "page_limit": 50},
        headers=partner,
    )
    assert all("_matgate_sponsor" not in e["attributes"] for e in found.json()["data"])
    asked = client.get(
        "/optimade/structures",
        params={"response_fields": "_matgate_sponsor", "filter": f'id STARTS "{NI}:"'},
        headers=partner,
    )
    assert all(e["attributes"].get("_matgate_sponsor") is None for e in asked.json()["data"])
    probe = client.get(
        "/optimade/structures", params={"filter": '_matgate_sponsor STARTS "A"'}, headers=partner
    )
    assert probe.status_code == 200 and probe.json()["meta"]["data_returned"] == 0
    status, table = _shared(client, partner, NI)
    assert status == 200 and "sponsor" not in table.column_names
