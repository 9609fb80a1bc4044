"""The faces on a catalog of thousands: each answer reads what it shows, and hides what it must.

A node of 3,000 datasets, a third of them (``hid-*``) hidden from members by a deny line. Its
Delta Sharing shares, OPTIMADE mapping and DCAT-AP catalog are read by a member. The catalog's
whole-catalog walks (``Catalog.page``, ``Catalog.iterate``) are made to fail where a face must
not need them: a Delta Sharing listing or lookup and the OPTIMADE entries read their datasets by
id. Pages skip hidden datasets without a trace: no count, no position, no empty last page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rdflib import Graph, Namespace, URIRef
from rdflib.namespace import RDF
from test_dcat import violations

from gateway.app import create_app
from gateway.catalog import Catalog
from gateway.config import NodeConfig
from gateway.settings import Settings

INSTITUTION = "vega"
SHOWN = [f"ds-{i:05d}" for i in range(2_000)]
HIDDEN = [f"hid-{i:05d}" for i in range(1_000)]
# a share that interleaves hidden datasets, with a run of them at the start and at the end
MIXED = [HIDDEN[0], HIDDEN[1], SHOWN[0], HIDDEN[2], SHOWN[1], SHOWN[2], HIDDEN[3]]
MIXED += [SHOWN[3], HIDDEN[4], HIDDEN[5], HIDDEN[6], SHOWN[4], SHOWN[5], SHOWN[6], HIDDEN[7]]
MIXED += [HIDDEN[8]]
VISIBLE_MIXED = [n for n in MIXED if n.startswith("ds-")]
EVERYTHING = [n for pair in zip(SHOWN, HIDDEN, strict=False) for n in pair] + SHOWN[1_000:]
DCAT = Namespace("http://www.w3.org/ns/dcat#")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
BASE = "http://vega.test"


def _store(folder: Path) -> str:
    url = f"sqlite:///{folder / 'lab.db'}"
    engine = sa.create_engine(url)
    md = sa.MetaData()
    table = sa.Table("t0", md, sa.Column("formula", sa.Text()), sa.Column("c0", sa.Float()))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"formula": f, "c0": 1.5} for f in ("Fe2O3", "NiAl", "TiO2")])
    engine.dispose()
    return url


def _dataset(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": f"Measurements {name}",
        "description": "Synthetic entries of a large catalog.",
        "license": "CC-BY-4.0",
        "location": {"store": "lab", "table": "t0"},
        "columns": [
            {"name": "formula", "type": "string", "pspp": "structure"},
            {"name": "c0", "type": "float", "unit": "eV", "pspp": "property"},
        ],
    }


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """A node with 3,000 datasets, its faces configured."""
    folder = tmp_path_factory.mktemp("faces-at-scale")
    config = {
        "node": {"institution": INSTITUTION, "title": "Vega"},
        "stores": {"lab": {"kind": "sql", "url": _store(folder)}},
        "datasets": [_dataset(n) for n in EVERYTHING],  # hidden ones between the others
        "policy": {
            "lines": [
                {"role": "member", "domain": INSTITUTION, "action": "discover"},
                {"role": "member", "domain": INSTITUTION, "action": "read"},
                {"role": "steward", "domain": INSTITUTION, "action": "manage"},
                {
                    "effect": "deny",
                    "role": "member",
                    "domain": INSTITUTION,
                    "dataset": "hid-*",
                    "action": "discover",
                },
            ],
        },
        "shares": [
            {"name": "mixed", "datasets": MIXED, "institutions": [INSTITUTION]},
            {"name": "everything", "datasets": EVERYTHING, "institutions": [INSTITUTION]},
            {"name": "hidden", "datasets": HIDDEN[:50], "institutions": [INSTITUTION]},
        ],
        "optimade": {
            "structures": [
                {"dataset": SHOWN[7], "formula": "formula"},
                {"dataset": HIDDEN[9], "formula": "formula"},
            ]
        },
    }
    settings = Settings(
        data_dir=folder / "node",
        database_url=f"sqlite:///{folder / 'node.db'}",
        public_url=BASE,
        log_json=False,
        log_level="WARNING",
        audit_checkpoint_seconds=3600,
    )
    app = create_app(settings, NodeConfig.model_validate(config))
    yield app
    app.state.node.close()


@pytest.fixture(scope="module")
def api(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=True) as client:
        yield client


@pytest.fixture(scope="module")
def member(app: FastAPI) -> dict[str, str]:
    token = app.state.node.issuer.mint("mia", roles=("member",), institution=INSTITUTION)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def no_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalog refuses to be walked: what runs now reads its datasets by id."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the whole catalog was walked")

    monkeypatch.setattr(Catalog, "page", refuse)
    monkeypatch.setattr(Catalog, "iterate", refuse)
    monkeypatch.setattr(Catalog, "all", refuse)


def _walk(api: TestClient, member: dict[str, str], path: str, size: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"maxResults": size, **({"pageToken": token} if token else {})}
        r = api.get(f"/delta-sharing{path}", params=params, headers=member)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        token = pages[-1].get("nextPageToken")
        if token is None:
            return pages


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 500])
def test_pages_of_a_share_skip_hidden_tables_without_a_trace(api, member, no_walks, size):
    pages = _walk(api, member, "/shares/mixed/all-tables", size)
    names = [t["name"] for p in pages for t in p["items"]]
    assert names == VISIBLE_MIXED
    # every page but the last is full, and no page is empty: nothing tells of the hidden ones
    assert all(len(p["items"]) == size for p in pages[:-1])
    assert all(p["items"] for p in pages)
    assert len(pages) == -(-len(VISIBLE_MIXED) // size)


def test_a_page_token_names_only_what_the_page_showed(api, member):
    first = _walk(api, member, "/shares/mixed/schemas/vega/tables", 2)[0]
    name = first["nextPageToken"].split(".")[0]
    shown = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    assert shown == first["items"][-1]["name"]


def test_a_share_of_thousands_is_walked_page_by_page(api, member, no_walks):
    pages = _walk(api, member, "/shares/everything/all-tables", 500)
    names = [t["name"] for p in pages for t in p["items"]]
    assert names == [n for n in EVERYTHING if n.startswith("ds-")] and len(pages) == 4


def test_a_share_of_hidden_tables_is_empty_and_has_no_next_page(api, member, no_walks):
    r = api.get("/delta-sharing/shares/hidden/all-tables", params={"maxResults": 1}, headers=member)
    assert r.status_code == 200 and r.json() == {"items": []}


def _forged(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=") + "." + "0" * 32


@pytest.mark.parametrize(
    "token",
    [
        "2",  # an offset, as tokens once were
        "x",
        _forged(SHOWN[0]),
        _forged(HIDDEN[2]),  # a hidden table's name: refused like any other forgery
        _forged("no-such-table"),
        "." * 40,
    ],
)
def test_altered_or_forged_page_tokens_are_refused(api, member, token):
    r = api.get(
        "/delta-sharing/shares/mixed/all-tables", params={"pageToken": token}, headers=member
    )
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == "INVALID_PARAMETER_VALUE"
    assert "invalid pageToken" in r.json()["message"]


def test_a_token_of_one_listing_does_not_continue_another(api, member):
    first = api.get(
        "/delta-sharing/shares/everything/all-tables", params={"maxResults": 1}, headers=member
    )
    token = first.json()["nextPageToken"]
    r = api.get(
        "/delta-sharing/shares/mixed/all-tables", params={"pageToken": token}, headers=member
    )
    assert r.status_code == 400
    shares = api.get("/delta-sharing/shares", params={"pageToken": token}, headers=member)
    assert shares.status_code == 400


def test_shares_and_schemas_are_paged_too(api, member):
    pages = _walk(api, member, "/shares", 1)
    assert [p["items"][0]["name"] for p in pages] == ["mixed", "everything", "hidden"]
    schemas = _walk(api, member, "/shares/mixed/schemas", 1)
    assert [p["items"] for p in schemas] == [[{"name": INSTITUTION, "share": "mixed"}]]


@pytest.mark.parametrize(
    ("table", "status"),
    [(SHOWN[1], 200), (HIDDEN[2], 404), (SHOWN[10], 404), ("nothing-here", 404)],
)
def test_one_table_is_looked_up_by_its_id(api, member, no_walks, table, status):
    base = f"/delta-sharing/shares/mixed/schemas/vega/tables/{table}"
    assert api.get(f"{base}/version", headers=member).status_code == status
    metadata = api.get(f"{base}/metadata", headers=member)
    assert metadata.status_code == status
    if status == 404:
        assert metadata.json()["errorCode"] == "RESOURCE_DOES_NOT_EXIST"
    else:
        assert '"name": "' + table + '"' in metadata.text


def test_optimade_reads_its_mapped_datasets_by_id(api, member, no_walks):
    r = api.get("/optimade/structures", params={"page_limit": 2}, headers=member)
    assert r.status_code == 200, r.text
    body = r.json()
    # only the discoverable mapping answers: three entries, two on this page
    assert [d["id"].split(":")[0] for d in body["data"]] == [SHOWN[7]] * 2
    assert body["meta"]["data_returned"] == 3 and body["meta"]["more_data_available"]
    rest = api.get(body["links"]["next"].removeprefix(BASE), headers=member).json()
    assert len(rest["data"]) == 1 and rest["links"]["next"] is None
    one = api.get(f"/optimade/structures/{SHOWN[7]}:NiAl", headers=member)
    assert one.status_code == 200 and one.json()["data"]["id"] == f"{SHOWN[7]}:NiAl"
    assert api.get(f"/optimade/structures/{HIDDEN[9]}:NiAl", headers=member).status_code == 404


def _graph(r: Any) -> Graph:
    assert r.status_code == 200, r.text
    kind = "json-ld" if r.headers["content-type"].startswith("application/ld+json") else "turtle"
    return Graph().parse(data=r.text, format=kind)


def _datasets(g: Graph) -> list[str]:
    return sorted(
        str(d).rsplit("/", 1)[1].removesuffix("#dataset") for d in g.objects(None, DCAT.dataset)
    )


def test_the_dcat_catalog_comes_a_page_at_a_time(api, member):
    r = api.get("/catalog", headers={**member, "Accept": "text/turtle"})
    g = _graph(r)
    assert _datasets(g) == SHOWN[:100]  # the default page, not the 2,000 datasets visible
    (view,) = g.subjects(RDF.type, HYDRA.PartialCollectionView)
    assert (URIRef(f"{BASE}/catalog"), HYDRA.view, view) in g
    following = g.value(view, HYDRA.next)
    assert r.headers["link"] == f'<{following}>; rel="next"'
    assert str(g.value(view, HYDRA.first)) == f"{BASE}/catalog"
    assert violations(g, "shapes.ttl", "range.ttl") == []


def test_a_harvester_following_next_gets_every_visible_dataset_once(api, member):
    # the hundred shown datasets whose number begins 000, each beside a hidden one
    url: str | None = f"{BASE}/catalog.jsonld?q=000&limit=30"
    seen: list[str] = []
    pages = 0
    while url is not None:
        g = _graph(api.get(url.removeprefix(BASE), headers=member))
        pages += 1
        seen += _datasets(g)
        views = list(g.subjects(RDF.type, HYDRA.PartialCollectionView))
        following = g.value(views[0], HYDRA.next)
        url = None if following is None else str(following)
    assert sorted(seen) == SHOWN[:100] and pages == 4


def test_a_tampered_dcat_cursor_is_refused(api, member):
    r = api.get("/catalog.jsonld", params={"cursor": "eyJrIjoibG9jYWwifQ"}, headers=member)
    assert r.status_code == 400


def test_a_catalog_cursor_does_not_tell_its_place(api, member):
    # the place counts the hidden datasets before it: it travels sealed, and altered is refused
    first = api.get("/catalog", params={"limit": 1}, headers=member).json()
    body = json.loads(base64.urlsafe_b64decode(first["next"] + "=" * (-len(first["next"]) % 4)))
    assert isinstance(body["a"], str) and not body["a"].isdigit()
    again = api.get("/catalog", params={"limit": 1}, headers=member).json()["next"]
    assert again != first["next"]  # sealed afresh each time: equal places look unrelated
    for altered in ({**body, "a": body["a"][:-2] + ("AA" if body["a"][-2:] != "AA" else "BB")},
                    {**body, "a": 1}):  # fmt: skip
        cursor = base64.urlsafe_b64encode(json.dumps(altered).encode()).decode()
        r = api.get("/catalog", params={"cursor": cursor}, headers=member)
        assert r.status_code == 400, r.text
    second = api.get("/catalog", params={"limit": 1, "cursor": first["next"]}, headers=member)
    assert [d["name"] for d in second.json()["datasets"]] == [SHOWN[1]]


def test_a_share_offered_through_the_api_checks_its_datasets_by_id(app, api, no_walks):
    token = app.state.node.issuer.mint("sue", roles=("steward",), institution=INSTITUTION)
    steward = {"Authorization": f"Bearer {token}"}
    offer = {"datasets": [SHOWN[5], HIDDEN[5]], "institutions": [INSTITUTION]}
    r = api.put("/delta-sharing/admin/shares/offered", json=offer, headers=steward)
    assert r.status_code == 200, r.text
    missing = {**offer, "datasets": [SHOWN[5], "no-such-table", "nor-this"]}
    r = api.put("/delta-sharing/admin/shares/offered", json=missing, headers=steward)
    assert r.status_code == 400 and "'no-such-table', 'nor-this'" in r.json()["detail"]
    withdrawn = api.delete("/delta-sharing/admin/shares/offered", headers=steward)
    assert withdrawn.status_code == 204  # the module's other tests see the shares of the config
