"""The three-institution demo: configs that name each other, re-cut data, and each site's policy.

Every policy case is checked on the home node of its dataset, with tokens that node mints for
the visiting persona (the cross-node path is the federation's own tests).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from gateway_support import free_port, node_settings

from gateway.app import create_app
from gateway.config import load_config
from gateway.demo import PERSONAS, personas, prepare, prepare_federation
from gateway.demo.cygnus import HALOGENS, SUPPLIERS, cobalt
from gateway.demo.tour import guide

SITES = ("aurora", "borealis", "cygnus")
# Who asks, as (subject, institution, roles): roles count only in the home institution.
MIA = ("mia", "aurora", ("member",))
PABLO = ("pablo", "borealis", ("member",))
CYRA = ("cyra", "cygnus", ("member",))


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The three nodes' stores and configs, written once."""
    return prepare_federation(tmp_path_factory.mktemp("federation"), free_port())


@pytest.fixture(scope="module")
def nodes(plans: list[dict[str, Any]]) -> Iterator[dict[str, TestClient]]:
    """An in-process client of each node, by institution."""
    apps = {p["institution"]: create_app(node_settings(p)) for p in plans}
    clients = {name: TestClient(app) for name, app in apps.items()}
    for client in clients.values():
        client.__enter__()
    yield clients
    for client in clients.values():
        client.__exit__(None, None, None)


def _headers(nodes: dict[str, TestClient], site: str, who: tuple[str, str, tuple[str, ...]]):
    subject, institution, roles = who
    issuer = nodes[site].app.state.node.issuer  # type: ignore[attr-defined]
    token = issuer.mint(subject, roles=roles, institution=institution)
    return {"Authorization": f"Bearer {token}"}


def _pull(nodes, site, who, dataset, **body):
    body.setdefault("purpose", "research")
    return nodes[site].post(
        f"/datasets/{dataset}/slice", json=body, headers=_headers(nodes, site, who)
    )


def _table(response) -> pa.Table:
    assert response.status_code == 200, response.text
    return pa.ipc.open_stream(response.content).read_all()


def test_three_configs_load_and_name_each_other_as_peers(plans):
    assert [p["institution"] for p in plans] == list(SITES)
    ports = [p["port"] for p in plans]
    assert ports == [ports[0], ports[0] + 1, ports[0] + 2]
    urls = {p["institution"]: p["url"] for p in plans}
    for plan in plans:
        config = load_config(plan["home"] / "node.toml")
        assert config.node.institution == plan["institution"]
        assert config.node.public_url == plan["url"]
        peers = {peer.institution: peer for peer in config.peers}
        assert set(peers) == set(SITES) - {plan["institution"]}
        for name, peer in peers.items():
            assert peer.url == urls[name]
            assert peer.jwks_url == f"{urls[name]}/.well-known/jwks.json"
            assert peer.allow_private_network


def test_store_kinds_differ_between_sites(plans):
    kinds = {
        p["institution"]: sorted(
            (s.kind, Path(s.target).suffix or "folder")
            for s in load_config(p["home"] / "node.toml").stores.values()
        )
        for p in plans
    }
    assert kinds["aurora"] == [("files", "folder"), ("sql", ".db")]
    assert kinds["borealis"] == [("files", "folder")]
    assert kinds["cygnus"] == [("sql", ".db")]
    assert {f.suffix for f in (plans[1]["home"] / "stores" / "csv").iterdir()} == {".csv"}


def test_prepare_alone_is_aurora_without_peers(tmp_path):
    plan = prepare(tmp_path, 9100)
    config = load_config(plan["home"] / "node.toml")
    assert plan["institution"] == "aurora" and config.peers == ()
    assert [d.name for d in config.datasets] == [
        "ni-superalloys",
        "steels-yield",
        "expt-gap",
        "magpie-elements",
    ]


def test_every_dataset_validates_against_its_store(nodes):
    seen = []
    for client in nodes.values():
        node = client.app.state.node  # type: ignore[attr-defined]
        for dataset in node.catalog.all():
            node.stores.get(dataset.location.store).validate(dataset)
            seen.append(dataset.id)
    assert len(seen) == 8


@pytest.mark.parametrize(
    ("site", "dataset", "rows", "rule"),
    [
        ("borealis", "oxide-gaps", 1090, lambda r: "O" in re.findall(r"[A-Z][a-z]?", r["formula"])),
        (
            "cygnus",
            "halide-gaps",
            243,
            lambda r: (
                bool(set(re.findall(r"[A-Z][a-z]?", r["formula"])) & HALOGENS)
                and "O" not in re.findall(r"[A-Z][a-z]?", r["formula"])
            ),
        ),
        ("cygnus", "cobalt-steels", 193, lambda r: cobalt(r["formula"]) >= 0.01),
        ("borealis", "superalloy-creep", 856, lambda r: r["stress_rupture_time_h"] is not None),
    ],
)
def test_recuts_hold_what_their_description_says(nodes, site, dataset, rows, rule):
    home = {"borealis": PABLO, "cygnus": CYRA}[site]
    got = _table(_pull(nodes, site, home, f"{site}/{dataset}")).to_pylist()
    assert len(got) == rows
    assert all(rule(r) for r in got)
    meta = nodes[site].get(f"/catalog/{site}/{dataset}", headers=_headers(nodes, site, home))
    assert f"{rows:,}" in meta.json()["description"]


def test_added_columns_are_marked_synthetic(nodes):
    meta = nodes["cygnus"].get(
        "/catalog/cygnus/cobalt-steels", headers=_headers(nodes, "cygnus", CYRA)
    )
    supplier = next(c for c in meta.json()["columns"] if c["name"] == "supplier")
    assert supplier["synthetic"] and supplier["sensitivity"] == "confidential"


@pytest.mark.parametrize(
    ("site", "who", "dataset", "purpose", "status"),
    [
        # Borealis: partners read the oxides for anything, the creep subset not at all.
        ("borealis", MIA, "borealis/oxide-gaps", "commercial", 200),
        ("borealis", CYRA, "borealis/oxide-gaps", "research", 200),
        ("borealis", MIA, "borealis/superalloy-creep", "ml-training", 403),
        ("borealis", MIA, "borealis/superalloy-creep", "research", 403),
        ("borealis", PABLO, "borealis/superalloy-creep", "ml-training", 200),
        # Cygnus: the halides are embargoed for others; cobalt steels are for research only.
        ("cygnus", MIA, "cygnus/halide-gaps", "research", 403),
        ("cygnus", PABLO, "cygnus/halide-gaps", "research", 403),
        ("cygnus", CYRA, "cygnus/halide-gaps", "research", 200),
        ("cygnus", MIA, "cygnus/cobalt-steels", "research", 200),
        ("cygnus", MIA, "cygnus/cobalt-steels", "commercial", 403),
        # Aurora keeps today's policy; Cygnus is no partner of Aurora: it cannot even see it.
        ("aurora", PABLO, "aurora/ni-superalloys", "research", 200),
        ("aurora", PABLO, "aurora/ni-superalloys", "commercial", 403),
        ("aurora", CYRA, "aurora/magpie-elements", "research", 404),
        ("aurora", CYRA, "aurora/expt-gap", "research", 200),  # published: public may read
    ],
)
def test_read_matrix(nodes, site, who, dataset, purpose, status):
    r = _pull(nodes, site, who, dataset, purpose=purpose, limit=3)
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["reasons"], "a refusal carries its reasons"


def test_embargo_is_the_reason_and_the_dataset_stays_discoverable(nodes):
    r = _pull(nodes, "cygnus", MIA, "cygnus/halide-gaps")
    assert any("embargo until" in reason for reason in r.json()["reasons"])
    meta = nodes["cygnus"].get(
        "/catalog/cygnus/halide-gaps", headers=_headers(nodes, "cygnus", MIA)
    )
    assert meta.status_code == 200 and meta.json()["embargo_until"]


def test_partner_sees_the_confidential_supplier_redacted(nodes):
    partner = _table(_pull(nodes, "cygnus", MIA, "cygnus/cobalt-steels"))
    member = _table(_pull(nodes, "cygnus", CYRA, "cygnus/cobalt-steels"))
    assert set(member.column("supplier").to_pylist()) == set(SUPPLIERS)
    redacted = set(partner.column("supplier").to_pylist())
    assert len(redacted) == 1 and not redacted & set(SUPPLIERS)
    assert partner.column("formula").to_pylist() == member.column("formula").to_pylist()
    manifest = json.loads(partner.schema.metadata[b"matgate.manifest"])
    assert manifest["decision"]["masked"] == {"supplier": "redact"}


@pytest.mark.parametrize(
    ("action", "purpose", "allowed"),
    [("train", "ml-training", True), ("train", "research", False), ("read", "ml-training", False)],
)
def test_creep_subset_is_train_only_for_partners(nodes, action, purpose, allowed):
    r = nodes["borealis"].post(
        "/explain",
        json={"dataset": "borealis/superalloy-creep", "action": action, "purpose": purpose},
        headers=_headers(nodes, "borealis", MIA),
    )
    assert r.status_code == 200, r.text
    assert r.json()["allowed"] is allowed


def test_personas_carry_home_and_guest_tokens(nodes):
    from joserfc import jwt
    from joserfc.jwk import KeySet

    by_site = {name: c.app.state.node for name, c in nodes.items()}  # type: ignore[attr-defined]
    people = personas(by_site)
    assert [p["name"] for p in people] == [p.name for p in PERSONAS]
    for person in people:
        home = by_site[person["institution"]]
        claims = jwt.decode(
            person["token"], KeySet.import_key_set(home.key.jwks()), algorithms=["Ed25519"]
        ).claims
        assert claims["iss"] == home.public_url and claims["sub"] == person["subject"]
        # At home and as a guest elsewhere, one and the same principal, the one policies name.
        assert home.auth.authenticate(person["token"]).id == person["principal"]
        for site, token in person["guest_tokens"].items():
            assert by_site[site].auth.authenticate(token).id == person["principal"]
        assert set(person["guest_tokens"]) == set(SITES) - {person["institution"]}


def test_tour_is_numbered_and_walks_every_case(plans, nodes):
    by_site = {name: c.app.state.node for name, c in nodes.items()}  # type: ignore[attr-defined]
    demo = {
        "nodes": [{"institution": p["institution"], "url": p["url"]} for p in plans],
        "personas": personas(by_site),
        "embargo_until": "2099-01-01",
    }
    text = guide(demo, Path("/tmp/demo.json"))
    steps = re.findall(r"^(\d+)\. ", text, flags=re.MULTILINE)
    assert 6 <= len(steps) <= 10 and steps == [str(i) for i in range(1, len(steps) + 1)]
    for needle in (
        "federated=true",
        "purpose=commercial",
        "cygnus/cobalt-steels",
        "cygnus/halide-gaps",
        "/federation/query",
        '"action": "train"',
        "/agreements/aurora-steels-terms/accept",
        "matgate audit verify",
        "from gateway.client import Client",
        "2099-01-01",
    ):
        assert needle in text, needle
    for person in demo["personas"]:
        assert person["token"] in text
    # Every command's dataset is a dataset of the demo.
    ids = {d.id for n in by_site.values() for d in n.catalog.all()}
    named = set(re.findall(r"(?:aurora|borealis|cygnus)/[a-z-]+(?=[/\"?\s])", text))
    assert named and named <= ids
