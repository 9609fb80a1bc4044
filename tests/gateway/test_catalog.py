"""Catalog search, metadata, DCAT, registration."""

from __future__ import annotations

import pytest
from rdflib import Graph, URIRef
from rdflib.namespace import DCTERMS, RDF

NI = "aurora/ni-superalloys"


def ids(response) -> set[str]:
    assert response.status_code == 200, response.text
    found = response.json()["datasets"]
    assert all(d["id"] == f"{d['institution']}/{d['name']}" for d in found)
    return {d["id"] for d in found}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {NI, "aurora/steels-yield", "aurora/expt-gap", "aurora/magpie-elements"}),
        ({"q": "yield strength", "pspp": "property"}, {NI, "aurora/steels-yield"}),
        ({"q": "experimental band gap"}, {"aurora/expt-gap"}),
        ({"q": "band gap"}, {"aurora/expt-gap", "aurora/magpie-elements"}),
        ({"pspp": "performance"}, {NI}),
        ({"unit": "eV"}, {"aurora/expt-gap", "aurora/magpie-elements"}),
        ({"license": "apache-2.0"}, {NI}),
        ({"column": "wt_pct"}, {NI}),
        ({"institution": "borealis"}, set()),
        ({"q": "no such words anywhere"}, set()),
    ],
)
def test_search(api, auth, params, expected):
    assert ids(api.get("/catalog", params=params, headers=auth["ml-user"])) == expected


def test_metadata_is_truthful(api, auth):
    ds = api.get(f"/catalog/{NI}", headers=auth["ml-user"]).json()
    assert ds["id"] == NI
    assert ds["license"] == "Apache-2.0"
    assert "10.1016/j.matdes.2017.06.007" in ds["citation"]
    roles = {c["name"]: c["pspp"] for c in ds["columns"]}
    assert roles["ni_wt_pct"] == "processing"
    assert roles["ht1_temperature_c"] == "processing"
    assert roles["strengthening_precipitate_phase"] == "structure"
    assert roles["yield_strength_mpa"] == "property"
    assert roles["stress_rupture_time_h"] == "performance"
    assert roles["test_temperature_c"] == "condition"
    synthetic = {c["name"] for c in ds["columns"] if c["synthetic"]}
    assert synthetic == {"operator", "sponsor", "release_at"}


def test_dcat(api, auth):
    # The DCAT-AP conformance itself is in test_dcat.py.
    dcat = "http://www.w3.org/ns/dcat#"
    doc = Graph().parse(
        data=api.get(f"/catalog/{NI}/dcat", headers=auth["ml-user"]).text, format="json-ld"
    )
    assert len(list(doc.subjects(RDF.type, URIRef(dcat + "Dataset")))) == 2  # itself, its source
    assert URIRef("http://spdx.org/licenses/Apache-2.0") in set(doc.objects(None, DCTERMS.license))
    media = {str(m) for m in doc.objects(None, URIRef(dcat + "mediaType"))}
    assert any(m.endswith("application/vnd.apache.arrow.stream") for m in media)
    catalog = Graph().parse(
        data=api.get("/catalog.jsonld", headers=auth["ml-user"]).text, format="json-ld"
    )
    assert len(list(catalog.objects(None, URIRef(dcat + "dataset")))) == 4


def test_unknown_dataset_is_404_problem(api, auth):
    r = api.get("/catalog/aurora/nope", headers=auth["ml-user"])
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404


def _entry(name: str, **changes):
    base = {
        "institution": "aurora",
        "name": name,
        "title": "Steels again",
        "license": "MIT",
        "location": {"store": "lab", "table": "steels_yield"},
        "columns": [
            {"name": "formula", "type": "string", "pspp": "structure"},
            {"name": "target", "type": "float", "pspp": "property", "unit": "MPa"},
        ],
    }
    base.update(changes)
    return base


def test_steward_registers_dataset_validated_against_store(api, auth):
    r = api.post("/catalog", json=_entry("steels-copy"), headers=auth["steward"])
    assert r.status_code == 201, r.text
    assert "aurora/steels-copy" in ids(api.get("/catalog", headers=auth["steward"]))
    again = api.post("/catalog", json=_entry("steels-copy"), headers=auth["steward"])
    assert again.status_code == 409
    # what the catalog serves can be sent back: its id must agree with institution/name
    served = api.get("/catalog/aurora/steels-copy", headers=auth["steward"]).json()
    assert served["id"] == "aurora/steels-copy"
    echoed = api.post("/catalog", json=served, headers=auth["steward"])
    assert echoed.status_code == 409, echoed.text
    # id is read-only: a served entry under a new name registers as that name
    copy = api.post("/catalog", json={**served, "name": "steels-copy2"}, headers=auth["steward"])
    assert copy.status_code == 201, copy.text
    assert copy.json()["id"] == "aurora/steels-copy2"


@pytest.mark.parametrize(
    ("changes", "status", "fragment"),
    [
        ({"columns": [{"name": "formula", "type": "float", "pspp": "structure"}]}, 422, "formula"),
        ({"columns": [{"name": "nope", "type": "float", "pspp": "property"}]}, 422, "nope"),
        ({"location": {"store": "lab", "table": "no_table"}}, 422, "no_table"),
        ({"location": {"store": "nowhere", "table": "t"}}, 422, "nowhere"),
        ({"license": "LicenseRef-unknown"}, 422, "LicenseRef-unknown"),
        ({"institution": "borealis"}, 403, "aurora"),
    ],
)
def test_registration_refuses_bad_entries(api, auth, changes, status, fragment):
    r = api.post("/catalog", json=_entry("bad-one", **changes), headers=auth["steward"])
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]


def test_only_stewards_register(api, auth):
    r = api.post("/catalog", json=_entry("sneaky"), headers=auth["ml-user"])
    assert r.status_code == 403
