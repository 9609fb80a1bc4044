"""Bearer tokens: who may call at all."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey

from gateway.keys import NodeKey


def test_missing_token_is_401_problem(api):
    r = api.get("/policies/aurora")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == "Bearer"


def _forge(app, **changes):
    node = app.state.node
    now = int(time.time())
    claims = {
        "iss": node.public_url,
        "aud": node.public_url,
        "sub": "eve",
        "exp": now + 600,
        "institution": "aurora",
        "roles": ["member"],
    }
    claims.update(changes)
    return claims


def _sign(claims, key: OKPKey, alg: str = "Ed25519", kid: str | None = None) -> str:
    return jwt.encode({"alg": alg, "kid": kid or key.kid}, claims, key, algorithms=[alg])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.update(exp=int(time.time()) - 3600),
        lambda c: c.update(aud="http://elsewhere"),
        lambda c: c.update(iss="http://untrusted.example"),
        lambda c: c.pop("sub"),
        lambda c: c.pop("exp"),
        lambda c: c.update(roles="member"),
    ],
    ids=["expired", "wrong-audience", "untrusted-issuer", "no-sub", "no-exp", "roles-not-list"],
)
def test_bad_claims_are_refused(api, app, mutate):
    claims = _forge(app)
    mutate(claims)
    token = _sign(claims, app.state.node.key.jwk)
    r = api.get("/catalog", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text


def test_token_signed_by_another_key_is_refused(api, app):
    other = NodeKey.generate()
    token = _sign(_forge(app), other.jwk, kid=app.state.node.key.kid)
    assert api.get("/catalog", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_malformed_tokens_are_refused(api, token):
    assert api.get("/catalog", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_jwks_is_public_and_verifies_node_tokens(api, tokens):
    keys = api.get("/.well-known/jwks.json").json()["keys"]
    assert keys[0]["kty"] == "OKP" and "d" not in keys[0]
    from joserfc.jwk import KeySet

    decoded = jwt.decode(
        tokens["ml-user"], KeySet.import_key_set({"keys": keys}), algorithms=["Ed25519"]
    )
    assert decoded.claims["sub"] == "mia"
