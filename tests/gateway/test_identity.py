"""Bearer tokens: who may call at all."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey
from pydantic import ValidationError

from gateway.claims import parse_claim_path, strings_at
from gateway.config import ConfigError, IssuerConfig, NodeConfig, load_config
from gateway.identity import Authenticator
from gateway.keys import NodeKey
from policies.lines import PolicyLine
from policies.principals import Principal, split_principal_id


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
        lambda c: c.update(roles=42),
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


# Issuer-qualified principal ids.


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (Principal("mia", "aurora"), "aurora:mia"),  # the node's own and a peer's users
        (Principal("alice", "aurora", namespace="lab"), "lab:alice"),
        (
            Principal("alice", "aurora", namespace="https://idp.example/r"),
            "https://idp.example/r#alice",
        ),
        (Principal("https://x#y", "borealis"), "borealis:https://x#y"),  # a peer's foreign id
    ],
)
def test_principal_ids_carry_their_namespace(principal, expected):
    assert principal.id == expected
    assert split_principal_id(principal.id)[1] == principal.subject


@pytest.mark.parametrize(
    "text",
    ["bob@kyoto", "kyoto", ":bob", "Kyoto:bob", "kyoto:", "https://idp.example", "k:a b", "k:a,b"],
)
def test_unqualified_or_malformed_ids_are_refused(text):
    with pytest.raises(ValueError, match="issuer-qualified"):
        split_principal_id(text)


def test_a_policy_line_cannot_name_a_bare_subject():
    line = {"user": "alice@aurora", "domain": "aurora", "action": "read"}
    with pytest.raises(ValidationError, match="namespace:subject"):
        PolicyLine.model_validate(line)
    assert PolicyLine.model_validate({**line, "user": "lab:alice"}).subject == "user:lab:alice"


# Issuer configuration.

KEYS = {"keys": [NodeKey.generate().jwk.as_dict(private=False)]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"algorithms": ["HS256"]}, "no shared-secret"),
        ({"algorithms": ["none"]}, "never accepted"),
        ({"algorithms": []}, "algorithms must be among"),
        ({"discovery": True}, "no 'jwks_url'"),
        ({"jwks": None}, "exactly one"),
        ({"namespace": "Lab Users"}, "must be a slug"),
        ({"namespace": "a:b"}, "must be a slug"),
        ({"roles_claim": "realm_access..roles"}, "empty key"),
        ({"roles_claim": ["ok", '["unterminated']}, "expected"),
        ({"group_roles": {"/g": ["member"]}}, "needs 'groups_claim'"),
        ({"groups_claim": "groups", "group_roles": {"/g": ["Bad Role"]}}, "not role names"),
        ({"max_token_lifetime": 0}, "greater than 0"),
        ({"max_token_lifetime": 365 * 86400}, "less than or equal"),
    ],
)
def test_issuer_config_refuses_what_it_cannot_enforce(change, message):
    base = {"issuer": "https://idp.example", "jwks": KEYS}
    with pytest.raises(ValidationError, match=message):
        IssuerConfig.model_validate({**base, **change})


def _node_config(issuers, peers=()):
    return {
        "node": {"institution": "aurora"},
        "issuers": [{"jwks": KEYS, **i} for i in issuers],
        "peers": [{"url": "https://peer.example", "jwks": KEYS, **p} for p in peers],
    }


@pytest.mark.parametrize(
    ("issuers", "peers", "message"),
    [
        (
            [
                {"issuer": "https://a", "namespace": "lab"},
                {"issuer": "https://b", "namespace": "lab"},
            ],
            [],
            "another issuer's already",
        ),
        ([{"issuer": "https://a"}, {"issuer": "https://a"}], [], "trusted twice"),
        ([], [{"institution": "borealis"}, {"institution": "cygnus"}], "share a public URL"),
        ([{"issuer": "https://peer.example"}], [{"institution": "borealis"}], "trusted twice"),
        (
            [{"issuer": "https://a", "namespace": "borealis"}],
            [{"institution": "borealis"}],
            "only an issuer of its own users",
        ),
        ([{"issuer": "https://a", "namespace": "aurora"}], [], "only an issuer of its own users"),
    ],
)
def test_two_issuers_can_never_share_a_principal(issuers, peers, message):
    with pytest.raises(ValidationError, match=message):
        NodeConfig.model_validate(_node_config(issuers, peers))


def test_an_institutions_own_idp_may_use_its_name_as_namespace():
    config = NodeConfig.model_validate(
        _node_config([{"issuer": "https://a", "namespace": "aurora", "institution": "aurora"}])
    )
    assert config.issuers[0].qualifier == "aurora"


def test_a_config_error_in_an_issuer_names_its_line(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(
        '[node]\ninstitution = "aurora"\n\n[[issuers]]\nissuer = "https://idp.example"\n'
        'jwks_url = "https://idp.example/jwks"\nalgorithms = ["HS256"]\n'
    )
    with pytest.raises(ConfigError, match=r"node.toml:4: issuers\[0\]"):
        load_config(path)


# Claim paths.


@pytest.mark.parametrize(
    ("path", "claims", "expected"),
    [
        ("roles", {"roles": ["a", "b"]}, ["a", "b"]),
        ("scope", {"scope": "member  steward"}, ["member", "steward"]),
        ("realm_access.roles", {"realm_access": {"roles": ["a"]}}, ["a"]),
        ("resource_access.node.roles", {"resource_access": {"node": {"roles": ["b"]}}}, ["b"]),
        (
            'resource_access["my.client"].roles',
            {"resource_access": {"my.client": {"roles": ["c"]}}},
            ["c"],
        ),
        ('["https://x.example/roles"]', {"https://x.example/roles": ["d"]}, ["d"]),
        (r"https://x\.example/roles", {"https://x.example/roles": ["e"]}, ["e"]),
        ("realm_access.roles", {"realm_access.roles": ["not-nested"]}, None),
        ("realm_access.roles", {"realm_access": ["roles"]}, None),
        ("roles", {}, None),
    ],
)
def test_claim_paths_find_roles_where_idps_put_them(path, claims, expected):
    assert strings_at(claims, parse_claim_path(path)) == expected


@pytest.mark.parametrize("value", [42, {"a": 1}, ["a", 1], True])
def test_a_roles_claim_of_the_wrong_shape_is_an_error(value):
    with pytest.raises(ValueError, match="list of strings"):
        strings_at({"roles": value}, ("roles",))


# The node's own issuer.


def test_the_node_issuer_will_not_mint_long_lived_tokens(app):
    with pytest.raises(ValueError, match="at most"):
        app.state.node.issuer.mint("mia", ttl_seconds=30 * 86400)


def test_a_guest_token_is_the_same_principal_a_peer_would_assert(api, auth):
    # The operator's guest token for Borealis's pablo, and Borealis speaking for pablo, agree:
    # both are borealis:pablo (the tour accepts an agreement with one and pulls with the other).
    r = api.post(
        "/explain",
        json={"dataset": "aurora/expt-gap", "action": "read", "purpose": "research"},
        headers=auth["partner"],
    )
    assert r.status_code == 200 and r.json()["principal"] == "borealis:pablo"


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        (lambda now: {"exp": 884_541_340_800}, 401),  # the year 30000
        (lambda now: {"iat": now, "exp": now + 8 * 86400}, 401),
        (lambda now: {"iat": now + 600}, 401),
        (lambda now: {"nbf": now + 600}, 401),
        (lambda now: {"iat": now - 60, "nbf": now - 60}, 200),
        (lambda now: {"roles": "member auditor"}, 200),  # a space-separated string
    ],
)
def test_node_tokens_are_held_to_a_lifetime(api, app, changes, status):
    # times are taken when the test runs, not when it is collected
    token = _sign(_forge(app, **changes(int(time.time()))), app.state.node.key.jwk)
    assert api.get("/catalog", headers={"Authorization": f"Bearer {token}"}).status_code == status


def test_stored_user_names_are_qualified_by_the_migration(tmp_path):
    import sqlalchemy as sa
    from alembic import command

    from gateway.migrations import alembic_config, migrate

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'node.db'}")
    command.upgrade(alembic_config(engine), "0002")
    rows = {
        "casbin_rule": [
            {"ptype": "p", "v0": "user:bob@kyoto", "v1": "nims", "v2": "*", "v3": "read"},
            {"ptype": "g", "v0": "user:carol@kyoto", "v1": "role:partner", "v2": "nims", "v3": ""},
            {"ptype": "p", "v0": "role:member", "v1": "nims", "v2": "*", "v3": "read"},
        ],
        "policy_acceptances": [
            {"agreement": "t", "holder": "user:bob@kyoto", "accepted_by": "bob@kyoto",
             "accepted_at": "2026-01-01"},
            {"agreement": "t", "holder": "inst:kyoto", "accepted_by": "erin@kyoto",
             "accepted_at": "2026-01-01"},
        ],
        "jobs": [
            {"id": "j1", "owner": "mia@aurora", "kind": "train", "created": "2026-01-01",
             "status": "done", "stage": "", "progress": 1.0},
        ],
    }  # fmt: skip
    with engine.begin() as conn:
        for table, values in rows.items():
            conn.execute(sa.insert(sa.table(table, *map(sa.column, values[0]))), values)

    def stored() -> list[tuple[str, ...]]:
        with engine.connect() as conn:
            queries = (
                "SELECT v0 FROM casbin_rule ORDER BY id",
                "SELECT holder, accepted_by FROM policy_acceptances ORDER BY id",
                "SELECT owner FROM jobs",
            )
            return [tuple(row) for q in queries for row in conn.execute(sa.text(q))]

    before = stored()
    migrate(engine)
    assert stored() == [
        ("user:kyoto:bob",),
        ("user:kyoto:carol",),
        ("role:member",),
        ("user:kyoto:bob", "kyoto:bob"),
        ("inst:kyoto", "kyoto:erin"),
        ("aurora:mia",),
    ]
    command.downgrade(alembic_config(engine), "0002")
    assert stored() == before
    engine.dispose()


def test_an_issuer_named_like_the_node_itself_is_refused(app):
    node = app.state.node
    same = IssuerConfig(issuer=node.public_url, namespace="lab", institution="aurora", jwks=KEYS)
    with pytest.raises(ValueError, match="trusted twice"):
        Authenticator([node.issuer.as_trusted(), same], default_audience=node.public_url)


def test_a_remembered_token_is_refused_once_its_key_is_withdrawn(tmp_path):
    """Verified tokens are remembered, but only under the key set that verified them: when the
    issuer rotates its keys, a token of the withdrawn key is refused, remembered or not."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from gateway.errors import Unauthorized
    from gateway.identity import TokenIssuer
    from gateway.jwks import REFETCH_SECONDS

    old, new = (NodeKey.load_or_create(tmp_path / f"{n}.pem") for n in ("old", "new"))
    served = {"keys": old.jwks()["keys"]}

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(served).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    idp = "https://idp.example"
    config = IssuerConfig(
        issuer=idp,
        institution="aurora",
        audience="https://node.example",
        jwks_url=f"http://127.0.0.1:{server.server_address[1]}/jwks",
        algorithms=("Ed25519",),
    )
    auth = Authenticator([config], default_audience="https://node.example")
    by_old, by_new = (TokenIssuer(k, idp, "https://node.example", "aurora") for k in (old, new))
    try:
        token = by_old.mint("mia", ttl_seconds=600)
        assert auth.remembered(token) is None  # never verified: nothing to remember
        first = auth.authenticate(token)
        assert auth.authenticate(token) == first  # remembered
        assert auth.remembered(token) == first  # and known without a thread or a fetch
        assert auth.remembered(by_old.mint("mia", ttl_seconds=600)) is None
        served["keys"] = new.jwks()["keys"]  # the IdP withdraws the old key
        time.sleep(REFETCH_SECONDS + 0.2)  # a fetch may follow the last one after this
        fetches = auth.keys(idp).fetches
        assert auth.authenticate(by_new.mint("mia", ttl_seconds=600)).id == first.id
        assert auth.keys(idp).fetches == fetches + 1  # the new kid fetched the new set
        assert auth.remembered(token) is None  # verified under a set that is no longer served
        with pytest.raises(Unauthorized):
            auth.authenticate(token)
    finally:
        auth.close()
        server.shutdown()
        server.server_close()
