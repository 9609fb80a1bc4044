"""API2:2023 Broken Authentication: forged, stretched and borrowed identities.

A node of Aurora trusts two identity providers (``lab``, RS256, namespace ``lab``; another,
ES256, without a namespace, so its users are qualified by its URL), its own development issuer,
and the peer Borealis for on-behalf-of assertions. Each row is a token an attacker could make or
obtain, and the status the node must answer when it is presented for a slice. A few rows are
honest tokens, so the table shows the refusals are not the node refusing everything.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import tomli_w
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from fastapi.testclient import TestClient
from gateway_support import free_port, node_settings
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from gateway.app import create_app
from gateway.assertions import mint_assertion
from gateway.demo import prepare
from gateway.keys import NodeKey
from policies.principals import Principal

LAB = "https://idp-lab.example"
OTHER = "https://idp-other.example"
PEER = "http://127.0.0.1:9"  # Borealis's node: never contacted, its keys are inline
MAGPIE = "aurora/magpie-elements"  # readable by the user lab:alice only
STEELS = "aurora/steels-yield"  # readable by aurora:sana; partners need an agreement
NI = "aurora/ni-superalloys"  # readable by members and, for research, by partners


@dataclass
class World:
    """The node and every key an honest party (or an attacker) holds."""

    api: TestClient
    url: str
    lab: RSAKey
    other: ECKey
    peer: NodeKey
    node: NodeKey
    attacker: RSAKey


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Aurora's node trusting two IdPs, its own issuer and the peer Borealis."""
    plan = prepare(tmp_path_factory.mktemp("identity-attacks"), free_port())
    lab = RSAKey.generate_key(2048, private=True, parameters={"kid": "lab-1"})
    other = ECKey.generate_key("P-256", private=True, parameters={"kid": "other-1"})
    peer = NodeKey.generate()
    path = plan["home"] / "node.toml"
    config = tomllib.loads(path.read_text())
    config["issuers"] = [
        {
            "issuer": LAB,
            "namespace": "lab",
            "institution": "aurora",
            "jwks": {"keys": [lab.as_dict(private=False)]},
            "algorithms": ["RS256"],
            "max_token_lifetime": 86400,
        },
        {
            "issuer": OTHER,
            "institution": "aurora",
            "jwks": {"keys": [other.as_dict(private=False)]},
            "algorithms": ["ES256"],
        },
    ]
    config["peers"] = [
        {"institution": "borealis", "url": PEER, "jwks": peer.jwks(), "allow_private_network": True}
    ]
    config["policy"]["lines"] += [
        {"user": "lab:alice", "domain": "aurora", "dataset": "magpie-elements", "action": "read"},
        {"user": "aurora:sana", "domain": "aurora", "dataset": "steels-yield", "action": "read"},
        {"institution": "aurora", "domain": "aurora", "action": "discover"},
    ]
    path.write_text(tomli_w.dumps(config))
    app = create_app(node_settings(plan))
    attacker = RSAKey.generate_key(2048, private=True, parameters={"kid": "lab-1"})
    with TestClient(app) as api:
        yield World(api, plan["url"], lab, other, peer, app.state.node.key, attacker)


def _claims(w: World, iss: str, /, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": iss, "aud": w.url, "sub": "alice", "iat": now, "exp": now + 600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _lab(w: World, header: dict[str, Any] | None = None, **changes: Any) -> str:
    head = {"alg": "RS256", "kid": "lab-1", **(header or {})}
    return jwt.encode(head, _claims(w, LAB, **changes), w.lab, algorithms=["RS256"])


def _other(w: World, **changes: Any) -> str:
    head = {"alg": "ES256", "kid": "other-1"}
    return jwt.encode(head, _claims(w, OTHER, **changes), w.other, algorithms=["ES256"])


def _node(w: World, **changes: Any) -> str:
    changes = {"sub": "sana", "institution": "aurora", "roles": ["member"], **changes}
    head = {"alg": "Ed25519", "kid": w.node.kid}
    return jwt.encode(head, _claims(w, w.url, **changes), w.node.jwk, algorithms=["Ed25519"])


def _assert(w: World, principal: Principal, *, lifetime: int = 30, **changes: Any) -> str:
    token = mint_assertion(
        w.peer, issuer=PEER, audience=w.url, principal=principal, actor="borealis",
        lifetime=lifetime,
    )  # fmt: skip
    if not changes:
        return token
    claims = {**jwt.decode(token, w.peer.jwk, algorithms=["Ed25519"]).claims, **changes}
    head = {"alg": "Ed25519", "kid": w.peer.kid, "typ": "matgate-obo+jwt"}
    return jwt.encode(head, claims, w.peer.jwk, algorithms=["Ed25519"])


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head, body = json.dumps(header).encode(), json.dumps(claims).encode()
    return f"{part(head)}.{part(body)}.{part(signature)}"


def _rs256_raw(w: World, header: dict[str, Any]) -> str:
    """Signed by the IdP's own key, with a header joserfc itself would refuse to write."""
    unsigned = _unsigned({"alg": "RS256", **header}, _claims(w, LAB)).rsplit(".", 1)[0]
    signature = w.lab.private_key.sign(unsigned.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{unsigned}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _hs256_with_public_key(w: World) -> str:
    """Alg confusion: HMAC keyed with the IdP's public key, which anyone can fetch."""
    pem = w.lab.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": "lab-1"}
    unsigned = _unsigned(header, _claims(w, LAB)).rsplit(".", 1)[0]
    mac = hmac.new(pem, unsigned.encode(), "sha256").digest()
    return f"{unsigned}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _with_foreign_key_header(w: World, name: str) -> str:
    """Signed by the attacker, pointing at the attacker's key (jku, x5u) or embedding it."""
    value: Any = {
        "jku": "http://127.0.0.1:9/attacker-jwks.json",
        "x5u": "http://127.0.0.1:9/attacker.pem",
        "jwk": w.attacker.as_dict(private=False),
    }[name]
    head = {"alg": "RS256", "kid": "lab-1", name: value}
    return jwt.encode(head, _claims(w, LAB), w.attacker, algorithms=["RS256"])


def _honest_header_with_jku(w: World) -> str:
    """The IdP's own signature with a jku header: the header is ignored, not followed."""
    return _lab(w, {"jku": "http://127.0.0.1:9/attacker-jwks.json"})


YEAR_30000 = 884_541_340_800
Attack = Callable[[World], str]
ATTACKS: list[tuple[str, Attack, str, int]] = [
    # Honest rows: the same machinery lets the right people in.
    ("honest: lab's alice", lambda w: _lab(w), MAGPIE, 200),
    ("honest: the node's own sana", lambda w: _node(w), STEELS, 200),
    (
        "honest: Borealis speaks for pablo",
        lambda w: _assert(w, Principal("pablo", "borealis")),
        NI,
        200,
    ),
    (
        "honest: audience listed among others",
        lambda w: _lab(w, aud=["https://x", w.url]),
        MAGPIE,
        200,
    ),
    # One sub, two issuers: never one principal.
    ("issuer collision: the other IdP's alice", lambda w: _other(w), MAGPIE, 403),
    ("issuer collision: the other IdP's sana", lambda w: _other(w, sub="sana"), STEELS, 403),
    ("issuer collision: lab's sana", lambda w: _lab(w, sub="sana"), STEELS, 403),
    ("sub spelled as a qualified id", lambda w: _other(w, sub="lab:alice"), MAGPIE, 403),
    ("sub spelled as a qualified id, lab", lambda w: _lab(w, sub="aurora:sana"), STEELS, 403),
    # On-behalf-of: only a configured peer, only for its own users.
    (
        "act claim in an IdP token",
        lambda w: _lab(w, sub="aurora:sana", act={"sub": "aurora"}),
        STEELS,
        403,
    ),
    (
        "peer speaks for Aurora's steward",
        lambda w: _assert(w, Principal("sana", "borealis", namespace="aurora")),
        STEELS,
        403,
    ),
    (
        "peer speaks for another institution",
        lambda w: _assert(w, Principal("carl", "cygnus")),
        NI,
        401,
    ),
    (
        "peer assertion without act",
        lambda w: _assert(w, Principal("pablo", "borealis"), act=None),
        NI,
        401,
    ),
    (
        "peer assertion living too long",
        lambda w: _assert(w, Principal("pablo", "borealis"), exp=int(time.time()) + 3600),
        NI,
        401,
    ),
    # Time.
    ("exp in the year 30000", lambda w: _lab(w, exp=YEAR_30000), MAGPIE, 401),
    ("exp in the year 30000, no iat", lambda w: _lab(w, exp=YEAR_30000, iat=None), MAGPIE, 401),
    ("node token in the year 30000", lambda w: _node(w, exp=YEAR_30000), STEELS, 401),
    (
        "lifetime beyond the issuer's maximum",
        lambda w: _lab(w, exp=int(time.time()) + 25 * 3600),
        MAGPIE,
        401,
    ),
    (
        "iat in the future",
        lambda w: _lab(w, iat=int(time.time()) + 3600, exp=int(time.time()) + 4000),
        MAGPIE,
        401,
    ),
    ("nbf in the future", lambda w: _lab(w, nbf=int(time.time()) + 600), MAGPIE, 401),
    (
        "expired",
        lambda w: _lab(w, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        MAGPIE,
        401,
    ),
    ("exp as a string", lambda w: _lab(w, exp="99999999999"), MAGPIE, 401),
    ("exp as a huge float", lambda w: _lab(w, exp=1e308), MAGPIE, 401),
    # Algorithms and keys.
    ("alg none", lambda w: _unsigned({"alg": "none"}, _claims(w, LAB)), MAGPIE, 401),
    (
        "alg None spelled otherwise",
        lambda w: _unsigned({"alg": "NONE"}, _claims(w, LAB)),
        MAGPIE,
        401,
    ),
    ("HS256 keyed with the public key", _hs256_with_public_key, MAGPIE, 401),
    (
        "ES256 where RS256 is pinned",
        lambda w: jwt.encode(
            {"alg": "ES256", "kid": "other-1"}, _claims(w, LAB), w.other, algorithms=["ES256"]
        ),
        MAGPIE,
        401,
    ),
    (
        "attacker key with the IdP's kid",
        lambda w: jwt.encode(
            {"alg": "RS256", "kid": "lab-1"}, _claims(w, LAB), w.attacker, algorithms=["RS256"]
        ),
        MAGPIE,
        401,
    ),
    ("jku to the attacker's keys", lambda w: _with_foreign_key_header(w, "jku"), MAGPIE, 401),
    (
        "x5u to the attacker's certificate",
        lambda w: _with_foreign_key_header(w, "x5u"),
        MAGPIE,
        401,
    ),
    ("embedded jwk of the attacker", lambda w: _with_foreign_key_header(w, "jwk"), MAGPIE, 401),
    ("jku on an honest token is ignored", _honest_header_with_jku, MAGPIE, 200),
    ("kid path traversal", lambda w: _lab(w, {"kid": "../../../../dev/null"}), MAGPIE, 401),
    ("kid SQL injection", lambda w: _lab(w, {"kid": "' OR '1'='1"}), MAGPIE, 401),
    ("kid as an object", lambda w: _rs256_raw(w, {"kid": {"$ne": None}}), MAGPIE, 401),
    (
        "crit header",
        lambda w: _rs256_raw(w, {"kid": "lab-1", "crit": ["b64"], "b64": True}),
        MAGPIE,
        401,
    ),
    # Audience.
    ("audience of another node", lambda w: _lab(w, aud="http://elsewhere.example"), MAGPIE, 401),
    ("audience with a trailing slash", lambda w: _lab(w, aud=w.url + "/"), MAGPIE, 401),
    ("audience in upper case", lambda w: _lab(w, aud=w.url.upper()), MAGPIE, 401),
    (
        "audience list without this node",
        lambda w: _lab(w, aud=["https://a", "https://b"]),
        MAGPIE,
        401,
    ),
    ("audience list empty", lambda w: _lab(w, aud=[]), MAGPIE, 401),
    ("audience list with a non-string", lambda w: _lab(w, aud=[w.url, 7]), MAGPIE, 401),
    ("audience missing", lambda w: _lab(w, aud=None), MAGPIE, 401),
    # Issuers.
    (
        "unconfigured issuer",
        lambda w: jwt.encode(
            {"alg": "RS256", "kid": "lab-1"},
            _claims(w, "https://idp-evil.example"),
            w.lab,
            algorithms=["RS256"],
        ),
        MAGPIE,
        401,
    ),
    (
        "issuer with a trailing slash",
        lambda w: jwt.encode(
            {"alg": "RS256", "kid": "lab-1"}, _claims(w, LAB + "/"), w.lab, algorithms=["RS256"]
        ),
        MAGPIE,
        401,
    ),
    ("issuer as a list", lambda w: _lab(w, iss=[LAB]), MAGPIE, 401),
    # Subjects and claims.
    ("no sub", lambda w: _lab(w, sub=None), MAGPIE, 401),
    ("sub with a newline", lambda w: _lab(w, sub="alice\nadmin"), MAGPIE, 401),
    ("sub with a comma", lambda w: _lab(w, sub="alice,role:steward"), MAGPIE, 401),
    ("sub of 10,000 characters", lambda w: _lab(w, sub="a" * 10_000), MAGPIE, 401),
    ("roles as an object", lambda w: _node(w, roles={"member": True}), STEELS, 401),
    ("institution not a slug", lambda w: _node(w, institution="Aurora Institute"), STEELS, 401),
    ("institution missing", lambda w: _node(w, institution=None), STEELS, 401),
]


@pytest.mark.parametrize(
    ("token", "dataset", "status"),
    [pytest.param(a, d, s, id=name) for name, a, d, s in ATTACKS],
)
def test_identity_attack(world: World, token: Attack, dataset: str, status: int) -> None:
    r = world.api.get(
        f"/datasets/{dataset}/slice",
        params={"purpose": "research", "limit": 1, "format": "json"},
        headers={"Authorization": f"Bearer {token(world)}"},
    )
    assert r.status_code == status, r.text[:500]
    if status >= 400:
        assert r.headers["content-type"] == "application/problem+json"


def test_a_peer_assertion_is_used_once(world: World) -> None:
    token = _assert(world, Principal("pablo", "borealis"))
    headers = {"Authorization": f"Bearer {token}"}
    params = {"purpose": "research", "limit": 1, "format": "json"}
    assert world.api.get(f"/datasets/{NI}/slice", params=params, headers=headers).status_code == 200
    again = world.api.get(f"/datasets/{NI}/slice", params=params, headers=headers)
    assert again.status_code == 401 and "replay" in again.json()["detail"]


def test_a_peers_users_live_in_the_peers_namespace(world: World) -> None:
    auth = world.api.app.state.node.auth  # type: ignore[attr-defined]
    mine = auth.authenticate(_assert(world, Principal("pablo", "borealis")))
    theirs = auth.authenticate(_assert(world, Principal("sana", "borealis", namespace="aurora")))
    url = auth.authenticate(
        _assert(world, Principal("pablo", "borealis", namespace="https://idp.borealis.example"))
    )
    assert (mine.id, mine.actor) == ("borealis:pablo", "borealis")
    assert theirs.id == "borealis:aurora:sana"
    assert url.id == "borealis:https://idp.borealis.example#pablo"
    assert auth.authenticate(_lab(world, act={"sub": "borealis"})).actor is None
