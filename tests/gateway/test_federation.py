"""Three real nodes on loopback: cross-site pulls, federated catalog and query, audits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pytest
from test_federation_world import World, build_world, rows_of, serve

from audit.manifests import verify_manifest
from audit.search import EventFilter
from gateway import errors
from gateway.client import Client

WIDE = ["sample_id", "temperature_c", "band_gap_ev"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """alpha, beta and gamma, each naming the two others as peers."""
    yield from serve(build_world(tmp_path_factory.mktemp("federation")))


@pytest.fixture(scope="module")
def ana(world: World) -> Iterator[Client]:
    """ana, a member of alpha, at her home node."""
    with Client(world.url("alpha"), token=world.token("alpha"), progress=False) as client:
        yield client


def _events(world: World, institution: str, **filters: Any) -> list[dict[str, Any]]:
    page = world.node(institution).audit.events(EventFilter(**filters), limit=1000)
    return [e.event for e in page.entries]


def test_cross_site_pull_applies_the_owners_rules(world, ana):
    df = ana.dataset("beta/gaps").pull(purpose="research")
    source = pd.DataFrame(rows_of("beta"))
    expected = source[source.temperature_c < 500].drop(columns=["operator"])
    assert "operator" not in df.columns  # beta withholds personal columns from partners
    assert sorted(df.columns) == sorted(expected.columns)
    got = df.sort_values("sample_id").reset_index(drop=True)
    want = expected.sort_values("sample_id").reset_index(drop=True)[list(df.columns)]
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    manifest = df.attrs["matgate"]
    assert manifest["relay"] is True and manifest["node"] == "alpha" and manifest["peer"] == "beta"
    assert manifest["complete"] is True and manifest["rows"] == len(want)
    assert manifest["query"]["row_filter"] == "temperature_c < 500"


def test_relay_manifest_wraps_the_owners_signed_manifest(world, ana):
    table = ana.dataset("beta/gaps").to_arrow(["sample_id", "band_gap_ev"], purpose="research")
    relay = json.loads(table.schema.metadata[b"matgate.manifest"])
    (token,) = relay["upstream"]
    owner = verify_manifest(token, world.keys["beta"].jwks())
    assert owner["node"] == "beta" and owner["principal"] == "alpha:ana"
    assert owner["actor"] == "alpha"  # the owner knows who spoke for ana
    assert owner["sha256"] == relay["sha256"] and owner["rows"] == relay["rows"] == table.num_rows
    with pytest.raises(Exception, match="unknown key"):
        verify_manifest(token, world.keys["gamma"].jwks())


def test_masks_of_the_owner_apply(world, ana):
    df = ana.dataset("gamma/gaps").pull(["sample_id", "cost"], purpose="research")
    clear = {f"{r['cost']}" for r in rows_of("gamma")} | {r["cost"] for r in rows_of("gamma")}
    assert len(df) == len(rows_of("gamma"))
    assert not set(df["cost"]) & clear  # gamma hashes its confidential column


def test_both_ends_audit_a_cross_site_pull(world, ana):
    table = ana.dataset("gamma/gaps").to_arrow(["sample_id"], purpose="research", limit=5)
    relay_id = json.loads(table.schema.metadata[b"matgate.manifest"])["id"]
    relays = _events(world, "alpha", name="relay", dataset="gamma/gaps")
    mine = [e for e in relays if e["request_id"] == relay_id]
    assert mine and mine[0]["peer"] == "gamma" and mine[0]["decision"] == "allow"
    delivered = _events(world, "alpha", name="slice", dataset="gamma/gaps")
    assert any(e["manifest_id"] == relay_id and e["rows"] == 5 for e in delivered)
    owner_id = mine[0]["manifest_id"]
    at_owner = _events(world, "gamma", principal="alpha:ana", dataset="gamma/gaps")
    assert {"decision", "slice"} <= {e["name"] for e in at_owner if e["request_id"] == owner_id}


@pytest.mark.parametrize(
    ("dataset", "purpose", "error"),
    [
        ("beta/gaps", "commercial", errors.Forbidden),  # research only
        ("beta/gaps-nope", "research", errors.NotFound),
        ("omega/gaps", "research", errors.NotFound),  # not a peer
        ("alpha/private-notes", "research", None),  # alpha's own: no relay
    ],
)
def test_pull_outcomes(world, ana, dataset, purpose, error):
    if error is None:
        assert len(ana.dataset(dataset).pull(["sample_id"], purpose=purpose)) == 40
        return
    with pytest.raises(error):
        ana.dataset(dataset).pull(["sample_id"], purpose=purpose)


def test_a_refused_relay_is_recorded_at_home(world, ana):
    with pytest.raises(errors.Forbidden, match="commercial"):
        ana.dataset("gamma/gaps").pull(purpose="commercial")
    refused = _events(world, "alpha", name="relay", dataset="gamma/gaps", purpose="commercial")
    assert refused and refused[-1]["decision"] == "deny" and refused[-1]["complete"] is False


def test_home_speaks_only_for_its_own_users(world):
    guest = world.headers("alpha", of="beta")  # alpha's issuer may mint for guests
    body = {"purpose": "research", "columns": ["sample_id"]}
    r = httpx.post(world.url("alpha") + "/datasets/gamma/gaps/slice", json=body, headers=guest)
    assert r.status_code == 403 and "speaks to its peers for 'alpha'" in r.json()["detail"]


def test_federated_catalog_spans_the_peers(world, ana):
    page = ana.get("/catalog", params={"federated": "true", "q": "band gap"})
    ids = {f"{d['institution']}/{d['name']}" for d in page["datasets"]}
    assert {"alpha/gaps", "alpha/private-notes", "beta/gaps", "beta/gaps-sa", "gamma/gaps"} <= ids
    assert page["meta"]["complete"] is True
    assert {s: v["status"] for s, v in page["meta"]["sites"].items()} == {
        "alpha": "ok",
        "beta": "ok",
        "gamma": "ok",
    }
    local = ana.get("/catalog")
    assert {d["institution"] for d in local["datasets"]} == {"alpha"}


def _names(entries: list[dict[str, Any]]) -> list[str]:
    return [f"{d['institution']}/{d['name']}" for d in entries]


@pytest.mark.parametrize("params", [{}, {"q": "band gap"}, {"license": "cc-by-4.0"}])
def test_federated_pages_carry_each_sites_position(world, ana, params):
    whole = ana.get("/catalog", params={**params, "federated": "true", "limit": 1000})
    assert whole["next"] is None and whole["meta"]["complete"] is True
    expected = _names(whole["datasets"])
    assert len({n.split("/")[0] for n in expected}) >= 2  # more than one site answers
    seen: list[str] = []
    cursor = None
    while True:
        asked = {
            **params,
            "federated": "true",
            "limit": 2,
            **({"cursor": cursor} if cursor else {}),
        }
        page = ana.get("/catalog", params=asked)
        assert page["count"] == len(page["datasets"]) <= 2
        assert page["meta"]["complete"] is True
        seen += _names(page["datasets"])
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))  # each once
    walked = ana.catalog(**params, federated=True, page_size=2)
    assert _names(walked) == seen and walked.complete
    first = ana.catalog(**params, federated=True, limit=3, page_size=2)
    rest = ana.catalog(**params, federated=True, cursor=first.next)
    together = _names(first) + _names(rest)
    assert len(first) == 3 and sorted(together) == sorted(seen)
    assert len(together) == len(set(together))


def test_a_federated_cursor_is_bound_to_its_search(world, ana):
    page = ana.get("/catalog", params={"federated": "true", "limit": 1})
    with pytest.raises(errors.BadRequest, match="cursor"):
        ana.get("/catalog", params={"federated": "true", "q": "gap", "cursor": page["next"]})
    with pytest.raises(errors.BadRequest, match="cursor"):
        ana.get("/catalog", params={"cursor": page["next"]})  # not a local cursor


def test_partners_discover_only_what_the_owner_allows(world):
    with Client(world.url("beta"), token=world.token("beta"), progress=False) as ben:
        page = ben.get("/catalog", params={"federated": "true"})
    ids = {f"{d['institution']}/{d['name']}" for d in page["datasets"]}
    assert "alpha/gaps" in ids and "alpha/private-notes" not in ids


def test_remote_metadata(world, ana):
    meta = ana.dataset("gamma/gaps-kelvin").metadata()
    assert meta["institution"] == "gamma" and meta["columns"][2]["unit"] == "K"


def _query(world: World, **body: Any) -> httpx.Response:
    payload = {"columns": WIDE, "purpose": "research", "format": "json", **body}
    return httpx.post(
        world.url("alpha") + "/federation/query",
        json=payload,
        headers=world.headers("alpha"),
        timeout=30,
    )


def test_federated_query_unions_the_sites(world):
    ids = ["alpha/gaps", "beta/gaps", "gamma/gaps"]
    r = _query(world, datasets=ids, filter="band_gap_ev > 2", format="arrow")
    assert r.status_code == 200, r.text
    assert r.headers["matgate-complete"] == "true"
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.column_names == ["site", *WIDE]
    got = table.to_pandas()
    for inst in ("alpha", "beta", "gamma"):
        rows = pd.DataFrame(rows_of(inst))
        rows = rows[rows.band_gap_ev > 2]
        if inst == "beta":
            rows = rows[rows.temperature_c < 500]
        assert sorted(got[got.site == inst].sample_id) == sorted(rows.sample_id)
    proof = httpx.get(
        world.url("alpha") + f"/provenance/{r.headers['matgate-request-id']}",
        headers=world.headers("alpha"),
    ).json()["manifest"]
    assert proof["complete"] is True and proof["rows"] == table.num_rows
    assert len(proof["upstream"]) == 3
    assert {o["kind"] for o in proof["obligations"]} == {"attribute"}


def test_a_denied_site_makes_a_partial_result(world):
    r = _query(world, datasets=["alpha/gaps", "beta/gaps"], columns=[*WIDE, "operator"])
    body = r.json()
    assert r.status_code == 200 and body["complete"] is False
    assert body["sites"]["alpha/gaps"]["status"] == "ok"
    assert body["sites"]["beta/gaps"]["status"] == "denied"
    assert {row["site"] for row in body["rows"]} == {"alpha"}
    strict = _query(
        world, datasets=["alpha/gaps", "beta/gaps"], columns=[*WIDE, "operator"], require_all=True
    )
    assert strict.status_code == 403
    assert strict.json()["sites"]["beta/gaps"]["status"] == "denied"


@pytest.mark.parametrize(
    ("datasets", "reason"),
    [
        (["beta/gaps-sa", "gamma/gaps-nc"], "cannot be combined"),
        (["beta/gaps", "gamma/gaps-kelvin"], "unit degC in beta/gaps but K in gamma/gaps-kelvin"),
    ],
)
def test_incompatible_datasets_are_refused(world, datasets, reason):
    r = _query(world, datasets=datasets)
    assert r.status_code == 422 and reason in r.json()["detail"]


def test_query_filter_is_checked_once_at_home(world):
    r = _query(world, datasets=["beta/gaps"], filter="band_gap > 1")
    assert r.status_code == 400
