"""On-behalf-of assertions at the owning node, replay caches, SSRF checks and the breaker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from test_federation_world import World, build_world

from gateway.assertions import MemoryReplayCache, RedisReplayCache, mint_assertion
from gateway.errors import BadGateway
from gateway.keys import NodeKey
from gateway.peers import Breaker, check_address
from policies.principals import Principal

ANA = Principal("ana", "alpha", frozenset({"member"}))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The three nodes, not served: beta is called in-process with alpha's assertions."""
    return build_world(tmp_path_factory.mktemp("assertions"), inline=True)


@pytest.fixture(scope="module")
def beta(world: World) -> Iterator[TestClient]:
    """beta's app, in-process."""
    with TestClient(world.apps["beta"]) as client:
        yield client


def _claims(world: World, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": world.url("alpha"),
        "aud": world.url("beta"),
        "sub": "ana",
        "institution": "alpha",
        "roles": ["member"],
        "act": {"sub": "alpha"},
        "iat": now,
        "exp": now + 30,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: NodeKey, kid: str | None = None) -> str:
    header = {"alg": "Ed25519", "kid": kid or key.kid}
    return jwt.encode(header, claims, key.jwk, algorithms=["Ed25519"])


def _get(beta: TestClient, token: str) -> Any:
    return beta.get("/catalog", headers={"Authorization": f"Bearer {token}"})


def test_a_peers_assertion_is_accepted_and_decided_by_the_owner(world, beta):
    token = mint_assertion(
        world.keys["alpha"],
        issuer=world.url("alpha"),
        audience=world.url("beta"),
        principal=ANA,
        actor="alpha",
    )
    r = _get(beta, token)
    assert r.status_code == 200, r.text
    # beta's own policy: partners discover gaps and gaps-*, nothing else of beta's
    assert {d["name"] for d in r.json()["datasets"]} == {"gaps", "gaps-sa"}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda now: {"institution": "gamma"}, "may speak only for its own users"),
        (lambda now: {"act": {"sub": "gamma"}}, "must name it as actor"),
        (lambda now: {"act": None}, "must name it as actor"),
        (lambda now: {"aud": "http://127.0.0.1:1"}, "invalid token"),
        (lambda now: {"exp": now - 120, "iat": now - 150}, "invalid token"),
        (lambda now: {"exp": now + 600}, "at most 60 s"),
        (lambda now: {"jti": None}, "unique 'jti'"),
        (lambda now: {"iss": "http://127.0.0.1:2"}, "not trusted"),
    ],
    ids=[
        "other-institution",
        "other-actor",
        "no-actor",
        "audience-of-another-node",
        "expired",
        "too-long-lived",
        "no-jti",
        "not-a-peer",
    ],
)
def test_forged_assertions_are_refused(world, beta, change, why):
    r = _get(beta, _sign(_claims(world, **change(int(time.time()))), world.keys["alpha"]))
    assert r.status_code == 401 and why in r.json()["detail"], r.text


def test_an_assertion_signed_by_another_key_is_refused(world, beta):
    forged = _sign(_claims(world), NodeKey.generate(), kid=world.keys["alpha"].kid)
    assert _get(beta, forged).status_code == 401
    gammas = _sign(_claims(world), world.keys["gamma"])  # a real peer, but not the issuer named
    assert _get(beta, gammas).status_code == 401


def test_a_replayed_assertion_is_refused(world, beta):
    token = _sign(_claims(world), world.keys["alpha"])
    assert _get(beta, token).status_code == 200
    again = _get(beta, token)
    assert again.status_code == 401 and "replay" in again.json()["detail"]


def test_memory_replay_cache_forgets_expired_ids_only():
    cache = MemoryReplayCache(max_entries=2)
    now = time.time()
    assert cache.first_use("a", now + 30) and not cache.first_use("a", now + 30)
    assert cache.first_use("old", now - 1)
    assert cache.first_use("b", now + 30)  # full: the expired id makes room
    assert not cache.first_use("c", now + 30)  # full of live ids: fail closed


@pytest.mark.redis
def test_redis_replay_cache_is_shared_by_replicas(redis_url):
    prefix = f"matgate:test:{uuid.uuid4().hex}:"
    one, two = RedisReplayCache(redis_url, prefix), RedisReplayCache(redis_url, prefix)
    try:
        assert one.first_use("jti-1", time.time() + 30)
        assert not two.first_use("jti-1", time.time() + 30)
        assert two.first_use("jti-2", time.time() + 30)
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000", False),
        ("http://10.1.2.3", False),
        ("http://192.168.0.7", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://[::1]:8000", False),
        ("http://[::ffff:127.0.0.1]", False),
        ("http://0.0.0.0", False),
        ("ftp://93.184.216.34", False),
        ("http://93.184.216.34", True),
        ("https://[2606:2800:220:1:248:1893:25c8:1946]", True),
    ],
)
def test_peer_addresses_are_checked_against_ssrf(url, allowed):
    if allowed:
        check_address(url, allow_private=False)
    else:
        with pytest.raises(BadGateway):
            check_address(url, allow_private=False)


def test_private_addresses_need_the_peers_explicit_permission():
    check_address("http://127.0.0.1:8000", allow_private=True)
    with pytest.raises(BadGateway, match="allow_private_network"):
        check_address("http://127.0.0.1:8000", allow_private=False)


def test_breaker_opens_then_lets_one_trial_through():
    breaker = Breaker(failures=2, cooldown=0.05)
    breaker.failure()
    assert breaker.state == "closed" and breaker.admit()
    breaker.failure()
    assert breaker.state == "open" and not breaker.admit()
    deadline = time.monotonic() + 5
    while breaker.state == "open" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert breaker.admit() and not breaker.admit()  # one trial at a time
    breaker.failure()
    assert breaker.state == "open"  # the trial failed: open again
    while breaker.state == "open" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert breaker.admit()
    breaker.success()
    assert breaker.state == "closed" and breaker.admit()
