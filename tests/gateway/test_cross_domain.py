"""A stranger (an institution the policy names nowhere) learns nothing beyond what is public,
through any door, and every attempt is recorded."""

from __future__ import annotations

import pytest

NI = "aurora/ni-superalloys"


@pytest.fixture(scope="module")
def stranger(app):
    token = app.state.node.issuer.mint("zed", institution="zeta", roles=["member", "steward"])
    return {"Authorization": f"Bearer {token}"}


def test_catalog_is_only_the_public_part_for_a_stranger(api, stranger):
    # What the policy opens to ``public`` (the published band gaps), and nothing else.
    found = api.get("/catalog", headers=stranger).json()
    assert found == {**api.get("/catalog").json(), "meta": found["meta"]}
    assert [f"{d['institution']}/{d['name']}" for d in found["datasets"]] == ["aurora/expt-gap"]

    def datasets(doc):
        nodes = doc.get("@graph", [doc])
        # (a dataset's source is a dcat:Dataset too, of the catalog's own "#source" IRI)
        return [n["@id"] for n in nodes if n["@id"].endswith("#dataset")]

    seen = datasets(api.get("/catalog.jsonld", headers=stranger).json())
    assert seen == datasets(api.get("/catalog.jsonld").json())
    assert len(seen) == 1 and seen[0].endswith("/catalog/aurora/expt-gap#dataset")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/catalog/{ds}", None),
        ("GET", "/catalog/{ds}/dcat", None),
        ("POST", "/datasets/{ds}/slice", {"purpose": "research"}),
        ("POST", "/datasets/{ds}/slice", {"purpose": "research", "filter": "alloy IS KNOWN"}),
        ("GET", "/datasets/{ds}/slice?purpose=research&format=csv", None),
        ("GET", "/datasets/{ds}/agreements", None),
        ("POST", "/datasets/{ds}/train", {"target": "yield_strength_mpa"}),
        ("POST", "/explain", {"dataset": "{ds}", "action": "read", "purpose": "research"}),
    ],
)
def test_hidden_dataset_answers_exactly_like_a_missing_one(api, auth, stranger, method, path, body):
    def ask(dataset_id: str):
        url = path.format(ds=dataset_id)
        payload = None
        if body is not None:
            payload = {
                k: (v.format(ds=dataset_id) if isinstance(v, str) else v) for k, v in body.items()
            }
        return api.request(method, url, json=payload, headers=stranger)

    hidden, missing = ask(NI), ask("aurora/no-such-dataset")
    assert hidden.status_code == missing.status_code == 404
    scrub = lambda r: {  # noqa: E731
        k: v for k, v in r.json().items() if k not in ("detail", "instance", "request_id")
    }
    assert scrub(hidden) == scrub(missing)
    assert hidden.json()["detail"].replace(NI, "X") == missing.json()["detail"].replace(
        "aurora/no-such-dataset", "X"
    )


def test_stranger_probes_are_in_the_log(api, auth, stranger):
    api.get(f"/catalog/{NI}", headers=stranger)
    events = api.get(
        "/audit/events",
        params={"principal": "zeta:zed", "decision": "deny", "limit": 1000},
        headers=auth["auditor"],
    ).json()["events"]
    assert any(e["dataset"] == NI and e["action"] == "discover" for e in events)


def test_stranger_cannot_edit_or_read_the_domain(api, stranger):
    line = {"role": "member", "domain": "aurora", "action": "read"}
    assert api.post("/policies/aurora", json={"add": [line]}, headers=stranger).status_code == 403
    assert api.get("/policies/aurora", headers=stranger).status_code == 403
    assert api.get("/audit/events", headers=stranger).status_code == 403
