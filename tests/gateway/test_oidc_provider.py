"""Tokens of a real third-party OpenID provider (oidc-provider on Node.js) against a real node.

Two providers run on loopback, both with a client ``alice`` (client-credentials tokens carry the
client id as ``sub``): the node finds their keys by discovery, qualifies each one's users by its
namespace, reads roles where institutions' IdPs put them, pins algorithms per issuer, caps
token lifetimes, and follows key rotation with one rate-limited refetch.
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
import tomli_w
from fastapi.testclient import TestClient
from gateway_support import free_port, node_settings
from joserfc import jwt
from joserfc.jwk import RSAKey
from oidc_support import OpenIDProvider, private_jwk, provider_home

from gateway import jwks
from gateway.app import create_app
from gateway.config import IssuerConfig
from gateway.demo import prepare
from gateway.errors import Unauthorized
from gateway.identity import Authenticator
from gateway.jwks import IssuerKeys, http_client

SECRET = "a-client-secret-of-at-least-32-characters"
MAGPIE = "aurora/magpie-elements"
NI = "aurora/ni-superalloys"


def _client(client_id: str, alg: str = "RS256", **extra: Any) -> dict[str, Any]:
    return {"client_id": client_id, "client_secret": SECRET, "alg": alg, **extra}


LAB_CLIENTS = [
    _client("alice", claims={"realm_access": {"roles": ["member"]}, "groups": ["/elsewhere"]}),
    _client("stewardbot", claims={"groups": ["/aurora/stewards"], "realm_access": {"roles": []}}),
    _client("nested", claims={"resource_access": {"matgate-node": {"roles": ["auditor"]}}}),
    _client("dotted", claims={"https://matgate.example/roles": ["member"]}),
    _client("es-client", "ES256", claims={"realm_access": {"roles": ["member"]}}),
    _client("ed-client", "EdDSA", claims={"realm_access": {"roles": ["member"]}}),
    _client("long-lived", ttl=48 * 3600, claims={"realm_access": {"roles": ["member"]}}),
    _client("noroles"),
]
LAB_ROLES = [
    "realm_access.roles",
    "resource_access.matgate-node.roles",
    '["https://matgate.example/roles"]',
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A node trusting two real providers by discovery, both with a client ``alice``."""
    home = provider_home()
    plan = prepare(tmp_path_factory.mktemp("oidc"), free_port())
    lab_keys = [private_jwk(a, f"lab-{a}") for a in ("RS256", "ES256", "EdDSA")]
    lab = OpenIDProvider(
        home,
        audience=plan["url"],
        clients=LAB_CLIENTS,
        keys=lab_keys,
        claims_supported=["realm_access", "groups"],
    ).start()
    other = OpenIDProvider(
        home,
        audience=plan["url"],
        clients=[_client("alice"), _client("es-only", "ES256")],
        keys=[private_jwk("RS256", "other-rs"), private_jwk("ES256", "other-es")],
    )
    other.start()
    path = plan["home"] / "node.toml"
    config = tomllib.loads(path.read_text())
    config["issuers"] = [
        {
            "issuer": lab.issuer,
            "namespace": "lab",
            "institution": "aurora",
            "discovery": True,
            "algorithms": ["RS256", "ES256", "EdDSA"],
            "access_tokens_only": True,
            "roles_claim": LAB_ROLES,
            "groups_claim": "groups",
            "group_roles": {"/aurora/stewards": ["steward", "member"]},
        },
        {
            "issuer": other.issuer,
            "institution": "aurora",
            "discovery": True,
            "algorithms": ["RS256"],
            "roles_claim": "scope",
        },
    ]
    config["network"] = {"allow": ["127.0.0.1"]}  # the providers listen on loopback
    config["policy"]["lines"] += [
        {"user": "lab:alice", "domain": "aurora", "dataset": "magpie-elements", "action": "read"},
        {"institution": "aurora", "domain": "aurora", "action": "discover"},
    ]
    path.write_text(tomli_w.dumps(config))
    seen = _Records()
    logging.getLogger("matgate.identity").addHandler(seen)
    app = create_app(node_settings(plan))
    try:
        with TestClient(app) as api:
            yield {
                "api": api,
                "node": app.state.node,
                "lab": lab,
                "other": other,
                "keys": lab_keys,
                "log": seen,
            }
    finally:
        logging.getLogger("matgate.identity").removeHandler(seen)
        lab.stop()
        other.stop()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _pull(api: TestClient, dataset: str, token: str) -> Any:
    return api.get(
        f"/datasets/{dataset}/slice",
        params={"purpose": "research", "limit": 3, "format": "json"},
        headers=_bearer(token),
    )


def test_a_node_configured_by_discovery_accepts_the_providers_tokens(world):
    lab: OpenIDProvider = world["lab"]
    assert lab.hits()["discovery"] >= 1  # looked up at start
    r = world["api"].post(
        "/explain",
        json={"dataset": MAGPIE, "action": "read", "purpose": "research"},
        headers=_bearer(lab.token("alice")),
    )
    assert r.status_code == 200, r.text
    assert r.json()["principal"] == "lab:alice" and r.json()["allowed"] is True


def test_the_same_sub_from_another_issuer_is_another_principal(world):
    api, lab, other = world["api"], world["lab"], world["other"]
    mine, theirs = lab.token("alice"), other.token("alice")
    assert world["node"].auth.authenticate(theirs).id == f"{other.issuer}#alice"
    assert _pull(api, MAGPIE, mine).status_code == 200
    refused = _pull(api, MAGPIE, theirs)
    assert refused.status_code == 403, refused.text
    assert world["node"].auth.authenticate(mine).id == "lab:alice"


@pytest.mark.parametrize(
    ("client", "scope", "roles"),
    [
        ("alice", None, {"member"}),  # realm_access.roles; the unmapped group adds nothing
        ("nested", None, {"auditor"}),  # resource_access.<client>.roles
        ("dotted", None, {"member"}),  # a claim name with dots, in brackets
        ("stewardbot", None, {"steward", "member"}),  # an IdP group mapped to roles
    ],
)
def test_roles_are_read_where_the_idp_puts_them(world, client, scope, roles):
    principal = world["node"].auth.authenticate(world["lab"].token(client, scope))
    assert set(principal.roles) == roles and principal.institution == "aurora"


def test_roles_from_a_space_separated_scope(world):
    token = world["other"].token("alice", scope="member steward")
    assert world["node"].auth.authenticate(token).roles == {"member", "steward"}


@pytest.mark.parametrize("client", ["es-client", "ed-client"])
def test_es256_and_eddsa_tokens_of_an_issuer_that_allows_them(world, client):
    assert _pull(world["api"], NI, world["lab"].token(client)).status_code == 200


def test_algorithms_are_pinned_per_issuer(world):
    r = _pull(world["api"], MAGPIE, world["other"].token("es-only"))
    assert r.status_code == 401 and "ES256" in r.json()["detail"]


def test_a_token_longer_lived_than_its_issuer_may_issue_is_refused(world):
    r = _pull(world["api"], NI, world["lab"].token("long-lived"))
    assert r.status_code == 401 and "lives longer" in r.json()["detail"]


def test_a_missing_roles_claim_is_named_in_the_refusal_and_logged(world):
    for _ in range(3):
        r = _pull(world["api"], NI, world["lab"].token("noroles"))
        assert r.status_code == 403, r.text
        assert "carries no 'realm_access.roles' claim" in r.json()["detail"]
    logged = [m for m in world["log"].messages if "no 'realm_access.roles' claim" in m]
    assert len(logged) == 1  # once per issuer and claim, not once per request


def test_id_tokens_are_refused_where_only_access_tokens_are_accepted(world):
    lab, api = world["lab"], world["api"]
    key = RSAKey.import_key(world["keys"][0])
    now = int(time.time())
    claims = {"iss": lab.issuer, "aud": lab.audience, "sub": "alice", "iat": now, "exp": now + 60}
    claims["realm_access"] = {"roles": ["member"]}
    for typ, status in (("JWT", 401), ("at+jwt", 200)):
        header = {"alg": "RS256", "kid": "lab-RS256", "typ": typ}
        token = jwt.encode(header, claims, key, algorithms=["RS256"])
        assert _pull(api, MAGPIE, token).status_code == status


def test_a_start_warns_about_roles_claims_the_provider_does_not_issue(world):
    seen = _Records()
    logging.getLogger("matgate.identity").addHandler(seen)
    try:
        config = world["node"].auth.keys(world["lab"].issuer).config
        Authenticator([config], default_audience=world["lab"].audience).close()
    finally:
        logging.getLogger("matgate.identity").removeHandler(seen)
    warned = " ".join(seen.messages)
    assert "resource_access.matgate-node.roles" in warned and "claims_supported" in warned
    assert "'realm_access.roles'" not in warned  # the provider lists realm_access


def test_discovery_requires_the_issuer_to_match_exactly(world):
    lab = world["lab"]
    config = IssuerConfig(issuer=lab.issuer + "/", discovery=True, audience=lab.audience)
    with http_client() as http, pytest.raises(Unauthorized, match="must be equal"):
        IssuerKeys(config, http).discover()


def test_key_rotation_refetches_once_and_unknown_kids_are_rate_limited(monkeypatch):
    home = provider_home()
    old, new = private_jwk("RS256", "k-old"), private_jwk("RS256", "k-new")
    provider = OpenIDProvider(
        home, audience="http://node.test", clients=[_client("alice")], keys=[old]
    ).start()
    config = IssuerConfig(
        issuer=provider.issuer, namespace="idp", institution="aurora", discovery=True
    )
    monkeypatch.setattr(jwks, "REFETCH_SECONDS", 1.0)
    auth = Authenticator([config], default_audience="http://node.test")
    try:
        assert auth.authenticate(provider.token("alice")).id == "idp:alice"
        assert provider.hits()["jwks"] == 1
        provider.rotate([new, old])  # a fresh process: its counters start again
        time.sleep(1.1)  # a kid unseen for longer than the refetch interval
        rotated = provider.token("alice")
        assert auth.authenticate(rotated).id == "idp:alice"  # kid k-new: one refetch
        auth.authenticate(rotated)
        assert provider.hits()["jwks"] == 1
        bogus = jwt.encode(
            {"alg": "RS256", "kid": "invented"},
            {"iss": provider.issuer, "aud": "http://node.test", "sub": "x", "exp": 2**31},
            RSAKey.import_key(new),
            algorithms=["RS256"],
        )
        for _ in range(5):
            with pytest.raises(Unauthorized):
                auth.authenticate(bogus)
        assert provider.hits()["jwks"] == 1  # refetched at most once per interval
        time.sleep(1.1)
        with pytest.raises(Unauthorized):
            auth.authenticate(bogus)
        assert provider.hits()["jwks"] == 2
        assert auth.keys(provider.issuer).fetches == 3
    finally:
        auth.close()
        provider.stop()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_an_issuer_outside_the_network_policy_is_never_contacted(world):
    from connectors.netguard import NetPolicy, guarded_client

    lab = world["lab"]
    config = world["node"].auth.keys(lab.issuer).config
    before = lab.hits()
    http = guarded_client(NetPolicy.from_entries([]), timeout=5.0, follow_redirects=False)
    auth = Authenticator([config], default_audience=lab.audience, http=http)
    try:
        with pytest.raises(Unauthorized, match="cannot fetch the keys"):
            auth.authenticate(lab.token("alice"))
    finally:
        auth.close()
    assert lab.hits() == before  # loopback is refused before any connection
