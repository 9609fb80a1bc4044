"""Agreements of another institution's dataset, seen and accepted through the home node.

Beta's ``gaps`` needs its terms accepted before a partner may read it. Ana (alpha) is refused
with a 403 that says where to accept: at her home node, which forwards her acceptance to beta
with the federation's on-behalf-of assertion. Beta records the acceptance (naming alpha as the
node it came through), alpha records that it forwarded it, and her relayed pull then succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import test_federation_world as world_module
from test_federation_world import World, build_world, serve

TERMS = "beta-gaps-terms"
GAPS = "beta/gaps"
_POLICY = world_module._policy


def _policy_with_terms(institution: str) -> dict[str, Any]:
    policy = _POLICY(institution)
    if institution == "beta":
        policy["agreements"] = [
            {
                "id": TERMS,
                "title": "Beta band-gap terms",
                "terms": "Research use only; cite the beta team.",
                "dataset": GAPS,
            }
        ]
        for line in policy["lines"]:
            if line.get("dataset") == "gaps" and line["action"] == "read":
                line["agreement"] = TERMS
    return policy


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """alpha, beta and gamma; beta's ``gaps`` needs its terms accepted."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(world_module, "_policy", _policy_with_terms)
        built = build_world(tmp_path_factory.mktemp("agreements"))
    yield from serve(built)


def _slice(world: World, headers: dict[str, str]) -> httpx.Response:
    url = f"{world.url('alpha')}/datasets/{GAPS}/slice"
    return httpx.get(url, params={"purpose": "research", "format": "json"}, headers=headers)


def _events(world: World, institution: str, name: str) -> list[dict[str, Any]]:
    headers = world.headers(institution, user="aud", roles=("auditor",))
    r = httpx.get(f"{world.url(institution)}/audit/events", params={"name": name}, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def test_a_partner_accepts_through_the_home_node(world):
    ana = world.headers("alpha")
    home_accept = f"{world.url('alpha')}/datasets/{GAPS}/agreements/{TERMS}/accept"
    owner_accept = f"{world.url('beta')}/datasets/{GAPS}/agreements/{TERMS}/accept"

    refused = _slice(world, ana)
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert problem["agreements"] == [
        {
            "id": TERMS,
            "title": "Beta band-gap terms",
            "accept": home_accept,
            "accept_here": owner_accept,
        }
    ]
    assert f"POST {home_accept}" in problem["detail"]
    assert any("has not been accepted" in r for r in problem["reasons"])

    listed = httpx.get(f"{world.url('alpha')}/datasets/{GAPS}/agreements", headers=ana)
    assert listed.status_code == 200, listed.text
    assert [a["id"] for a in listed.json()] == [TERMS]

    accepted = httpx.post(home_accept, headers=ana)
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["agreement"] == TERMS and body["holder"].startswith("user:")
    ana_id = world.node("alpha").auth.authenticate(world.token("alpha")).id
    assert body["accepted_by"] == ana_id

    pulled = _slice(world, ana)
    assert pulled.status_code == 200, pulled.text
    assert len(pulled.json()) > 0

    # audited on both sides: the owner's acceptance names the node it came through
    owned = [e for e in _events(world, "beta", "agreement") if e["agreement_id"] == TERMS]
    assert [(e["principal"], e["via"], e["dataset"]) for e in owned] == [(ana_id, "alpha", GAPS)]
    forwarded = _events(world, "alpha", "agreement-relay")
    assert [(e["principal"], e["peer"], e["agreement_id"]) for e in forwarded] == [
        (ana_id, "beta", TERMS)
    ]


def test_a_guest_at_the_owner_is_told_of_both_places(world):
    guest = world.headers("beta", of="gamma", roles=("member",))
    url = f"{world.url('beta')}/datasets/{GAPS}/slice"
    refused = httpx.get(url, params={"purpose": "research"}, headers=guest)
    assert refused.status_code == 403, refused.text
    (terms,) = refused.json()["agreements"]
    assert terms["accept"] == f"{world.url('gamma')}/datasets/{GAPS}/agreements/{TERMS}/accept"
    assert terms["accept_here"].startswith(world.url("beta"))


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/datasets/{GAPS}/agreements/no-such-terms/accept", 404),  # the owner's 404
        ("/datasets/beta/nothing/agreements/beta-gaps-terms/accept", 404),
        ("/datasets/alpha/gaps/agreements/beta-gaps-terms/accept", 404),  # not alpha's terms
    ],
)
def test_what_cannot_be_accepted(world, path, status):
    r = httpx.post(world.url("alpha") + path, headers=world.headers("alpha", user="ida"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_a_home_node_speaks_for_its_own_users_only(world):
    gil_at_alpha = world.headers("alpha", of="gamma")
    r = httpx.post(
        f"{world.url('alpha')}/datasets/{GAPS}/agreements/{TERMS}/accept", headers=gil_at_alpha
    )
    assert r.status_code == 403
    assert not [e for e in _events(world, "beta", "agreement") if "gil" in e["principal"]]


def test_the_client_accepts_through_the_home_node(world):
    from gateway.client import Client
    from gateway.errors import Forbidden

    with Client(world.url("alpha"), token=world.token("alpha", user="cleo"), progress=False) as c:
        gaps = c.dataset(GAPS)
        with pytest.raises(Forbidden) as refused:
            gaps.pull(purpose="research")
        assert refused.value.extra["agreements"][0]["id"] == TERMS
        assert [a["id"] for a in gaps.agreements()] == [TERMS]
        assert gaps.accept(TERMS)["agreement"] == TERMS
        assert len(gaps.pull(purpose="research")) > 0
