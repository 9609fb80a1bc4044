"""Console sign-in with OIDC: the authorization-code flow with PKCE (S256) against a real
identity provider on loopback, which the node trusts; the access token is validated like any
bearer token. Also: a wrong state, a replayed code, or a wrong verifier sign nobody in."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import tomllib
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import tomli_w
from console_support import csrf_of
from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.testclient import TestClient
from gateway_support import LiveServer, free_port, node_settings
from joserfc import jwt
from joserfc.jwk import OKPKey

from gateway.app import create_app
from gateway.console.web import ConsoleSettings
from gateway.demo import prepare
from gateway.keys import ALGORITHM

CLIENT_ID = "matgate-console"
AUDIENCE = "aurora-node"


def identity_provider(issuer: str, key: OKPKey) -> FastAPI:
    """A minimal OIDC provider: discovery, authorize (auto-approves mia), token with PKCE."""
    idp = FastAPI()
    codes: dict[str, dict[str, str]] = {}

    @idp.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "code_challenge_methods_supported": ["S256"],
        }

    @idp.get("/authorize")
    def authorize(
        client_id: str,
        redirect_uri: str,
        state: str,
        code_challenge: str,
        code_challenge_method: str,
        response_type: str,
    ) -> RedirectResponse:
        if client_id != CLIENT_ID or response_type != "code" or code_challenge_method != "S256":
            raise HTTPException(400, "bad authorization request")
        code = secrets.token_urlsafe(16)
        codes[code] = {"challenge": code_challenge, "redirect_uri": redirect_uri}
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")

    @idp.post("/token")
    def token(
        grant_type: Annotated[str, Form()],
        code: Annotated[str, Form()],
        redirect_uri: Annotated[str, Form()],
        code_verifier: Annotated[str, Form()],
        client_id: Annotated[str, Form()],
    ) -> JSONResponse:
        grant = codes.pop(code, None)  # a code works once
        digest = hashlib.sha256(code_verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if (
            grant is None
            or grant_type != "authorization_code"
            or client_id != CLIENT_ID
            or grant["redirect_uri"] != redirect_uri
            or grant["challenge"] != challenge
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {"iss": issuer, "aud": AUDIENCE, "sub": "mia", "iat": now, "exp": now + 600,
                  "roles": ["member", "steward"]}  # fmt: skip
        access = jwt.encode({"alg": ALGORITHM, "kid": key.kid}, claims, key, algorithms=[ALGORITHM])
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 600})

    return idp


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    """A node that trusts a loopback identity provider, and that provider running."""
    idp_port = free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "idp-1"})
    plan = prepare(tmp_path_factory.mktemp("oidc"), free_port())
    config_file = plan["home"] / "node.toml"
    config = tomllib.loads(config_file.read_text())
    trusted = {
        "issuer": issuer,
        "institution": "aurora",
        "audience": AUDIENCE,
        "jwks": {"keys": [key.as_dict(private=False)]},
        "algorithms": [ALGORITHM],
    }
    config["issuers"] = [*config.get("issuers", []), trusted]
    config_file.write_text(tomli_w.dumps(config))
    app = create_app(node_settings(plan))
    app.state.console_settings = ConsoleSettings(oidc_issuers=(issuer,))
    server = LiveServer(identity_provider(issuer, key), idp_port).start()
    try:
        yield app, issuer
    finally:
        server.stop()


def _start(app: FastAPI, issuer: str) -> tuple[TestClient, str]:
    client = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
    page = client.get("/console/signin")
    assert f"Sign in with {issuer}" in page.text
    start = client.get("/console/signin/oidc", params={"issuer": issuer})
    assert start.status_code == 303
    location = start.headers["location"]
    assert location.startswith(f"{issuer}/authorize?")
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    return client, location


def _callback(client: TestClient, idp_redirect: str) -> httpx.Response:
    back = urlsplit(idp_redirect)
    return client.get(f"{back.path}?{back.query}")


def test_oidc_authorization_code_with_pkce_signs_in(world):
    app, issuer = world
    client, location = _start(app, issuer)
    at_idp = httpx.get(location, follow_redirects=False)
    assert at_idp.status_code == 307
    signed_in = _callback(client, at_idp.headers["location"])
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/catalog"
    policy = client.get("/console/policy")
    assert policy.status_code == 200 and f"{issuer}#mia" in policy.text  # issuer-qualified
    assert csrf_of(policy.text)


def test_a_replayed_code_or_a_wrong_state_signs_nobody_in(world):
    app, issuer = world
    client, location = _start(app, issuer)
    redirect = httpx.get(location, follow_redirects=False).headers["location"]
    forged = redirect.replace("state=", "state=x")
    assert _callback(client, forged).status_code == 403
    assert client.get("/console/catalog").headers["location"] == "/console/signin"
    # a full flow, then its code replayed with the state of a new flow of the same session
    client, location = _start(app, issuer)
    redirect = httpx.get(location, follow_redirects=False).headers["location"]
    assert _callback(client, redirect).status_code == 303
    _, location = _start_again(client, issuer)
    state = parse_qs(urlsplit(location).query)["state"][0]
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    replay = client.get("/console/oidc/callback", params={"code": code, "state": state})
    assert replay.status_code == 403 and "refused the code" in replay.text


def _start_again(client: TestClient, issuer: str) -> tuple[TestClient, str]:
    start = client.get("/console/signin/oidc", params={"issuer": issuer})
    assert start.status_code == 303
    return client, start.headers["location"]


def test_an_issuer_the_node_does_not_trust_is_not_offered(world, tmp_path):
    _, issuer = world
    other = create_app(node_settings(prepare(tmp_path, free_port())))
    other.state.console_settings = ConsoleSettings(oidc_issuers=(issuer,))
    client = TestClient(other, follow_redirects=False)
    assert issuer not in client.get("/console/signin").text
    assert client.get("/console/signin/oidc", params={"issuer": issuer}).status_code == 403
