"""API7 (2023), server-side request forgery: OPTIMADE stores, peers and JWKS URLs.

A hostile server on loopback plays the provider, the peer and the identity provider: it answers,
redirects elsewhere, or serves keys; a trap server on another port counts every request that
reaches it. Each row is an attempt to make a node contact what its network policy does not
allow (loopback by any spelling, metadata addresses, IPv6 forms, redirects to another origin,
DNS answers that change); each is refused, and the trap stays untouched. The rows where the
node's ``[network] allow`` list names the destination show the same requests working.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gateway_support import LiveServer, free_port
from joserfc import jwt
from joserfc.jwk import OKPKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from store_world import column_entry, entry, node_with

from connectors.errors import StoreError
from connectors.netguard import DestinationRefused, NetPolicy, guarded_client
from connectors.optimade import OptimadeConnector
from connectors.query import Query
from gateway.config import PeerConfig
from gateway.errors import BadGateway
from gateway.keys import NodeKey
from gateway.peers import Peer
from policies.principals import Principal

IDP = "https://idp.hostile.test"
KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "idp-1"})
INFO = {
    "data": {
        "type": "info",
        "id": "/",
        "attributes": {
            "api_version": "1.1.0",
            "available_api_versions": [],
            "formats": ["json"],
            "available_endpoints": ["info", "structures"],
            "entry_types_by_format": {"json": ["structures"]},
            "is_index": False,
        },
    },
    "meta": {},
}


class Hostile:
    """A server on loopback that redirects, answers and counts; ``trap`` is a second one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.trap_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hits: list[tuple[str, str]] = []  # (path, Host header)
        self.trap_hits: list[str] = []

    def redirects(self) -> dict[str, str]:
        """Where each /redirect-<case>/ path sends its caller."""
        trap = f"http://127.0.0.1:{self.trap_port}"
        return {
            "other-port": f"{trap}/v1/info",
            "other-port-https": f"https://127.0.0.1:{self.trap_port}/v1/info",
            "localhost": f"http://localhost:{self.port}/ok/v1/info",
            "decimal": f"http://2130706433:{self.port}/ok/v1/info",
            "ipv6-loopback": f"http://[::1]:{self.port}/ok/v1/info",
            "mapped": f"http://[::ffff:127.0.0.1]:{self.port}/ok/v1/info",
            "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "metadata-v6": "http://[fd00:ec2::254]/latest/meta-data/",
            "file": "file:///etc/passwd",
            "chain": f"{self.url}/redirect-other-port/v1/info",
            "same": "/ok/v1/info",
        }

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        self.hits.append((path, request.headers.get("host", "")))
        head, _, _ = path.strip("/").partition("/")
        if head.startswith("redirect-"):
            return RedirectResponse(self.redirects()[head.removeprefix("redirect-")], 302)
        if path in ("/ok/v1/info", "/paged/v1/info"):
            return JSONResponse(INFO)
        if path == "/paged/v1/info/structures":
            return JSONResponse({"data": {"properties": {"id": {"type": "string"}}}, "meta": {}})
        if path == "/paged/v1/structures":
            trap = f"http://127.0.0.1:{self.trap_port}/paged/v1/structures?page_offset=1"
            page = [{"id": "a", "type": "structures", "attributes": {}}]
            return JSONResponse({"data": page, "links": {"next": trap}, "meta": {}})
        if path == "/jwks.json":
            return JSONResponse({"keys": [KEY.as_dict(private=False)]})
        if path == "/jwks-redirect.json":
            return RedirectResponse(f"http://127.0.0.1:{self.trap_port}/jwks.json", 302)
        if path == "/peer/ping":
            return JSONResponse({"pong": True})
        if path == "/peer-redirect/ping":
            return RedirectResponse(f"http://127.0.0.1:{self.trap_port}/ping", 307)
        return JSONResponse({"errors": [{"status": "404"}]}, 404)

    async def trap(self, request: Request) -> Response:
        self.trap_hits.append(request.url.path)
        return JSONResponse({"keys": [KEY.as_dict(private=False)], **INFO})

    def apps(self) -> tuple[Starlette, Starlette]:
        route = ["GET", "POST"]
        main = Starlette(routes=[Route("/{p:path}", self.handle, methods=route)])
        return main, Starlette(routes=[Route("/{p:path}", self.trap, methods=route)])


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    main, trap = server.apps()
    one = LiveServer(main, server.port).start()
    two = LiveServer(trap, server.trap_port).start()
    yield server
    one.stop()
    two.stop()


@pytest.fixture(autouse=True)
def _trap_untouched(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here ends with the trap server never contacted."""
    yield
    if "hostile" in request.fixturenames:
        assert request.getfixturevalue("hostile").trap_hits == []


LOOPBACK = NetPolicy.from_entries(["127.0.0.1"])

# ---- the destination itself ---------------------------------------------------------------

REFUSED_URLS = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://017700000001/",
    "http://0177.0.0.1/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "ftp://example.org/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_non_public_destinations_are_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        NetPolicy().check_url(url)
    with guarded_client(NetPolicy()) as client, pytest.raises((httpx.HTTPError, httpx.InvalidURL)):
        client.get(url)


@pytest.mark.parametrize(
    ("allow", "url", "allowed"),
    [
        (["127.0.0.1"], "http://127.0.0.1/", True),
        (["127.0.0.1"], "http://2130706433/", True),  # the same address, however it is spelt
        (["127.0.0.0/8"], "http://127.9.9.9/", True),
        (["localhost"], "http://localhost/", True),
        (["localhost"], "http://LocalHost/", True),
        (["LOCALHOST."], "http://localhost/", True),
        (["localhost"], "http://127.0.0.1/", False),  # a name allows that name only
        (["127.0.0.1"], "http://[::1]/", False),
        (["169.254.0.0/16"], "http://169.254.169.254/", False),  # metadata: exact entry only
        (["169.254.169.254"], "http://169.254.169.254/", True),
        (["10.0.0.0/8"], "http://[::ffff:10.1.2.3]/", True),
        (["10.0.0.0/8"], "http://192.168.0.1/", False),
    ],
)
def test_the_allow_list_names_what_may_be_reached(allow, url, allowed) -> None:
    policy = NetPolicy.from_entries(allow)
    if allowed:
        policy.check_url(url)
    else:
        with pytest.raises(DestinationRefused):
            policy.check_url(url)


# ---- OPTIMADE stores on a live node -------------------------------------------------------

OPTIMADE_REFUSED = [
    # (store URL, allow list, reason)
    ("{url}/ok", [], "non-public address"),
    ("http://2130706433:{port}/ok", [], "non-public address"),
    ("http://0x7f.1:{port}/ok", [], "non-public address"),
    ("http://localhost:{port}/ok", [], "non-public address"),
    ("http://[::ffff:127.0.0.1]:{port}/ok", [], "non-public address"),
    ("http://127.0.0.1:{port}/ok", ["localhost"], "non-public address"),
    ("{url}/redirect-other-port", ["127.0.0.1"], "another origin"),
    ("{url}/redirect-other-port-https", ["127.0.0.1"], "another origin"),
    ("{url}/redirect-localhost", ["127.0.0.1", "localhost"], "another origin"),
    ("{url}/redirect-decimal", ["127.0.0.1"], "another origin"),
    ("{url}/redirect-ipv6-loopback", ["127.0.0.1", "::1"], "another origin"),
    ("{url}/redirect-mapped", ["127.0.0.1"], "another origin"),
    ("{url}/redirect-metadata", ["127.0.0.1", "169.254.169.254"], "another origin"),
    ("{url}/redirect-metadata-v6", ["127.0.0.1"], "another origin"),
    ("{url}/redirect-file", ["127.0.0.1"], "another origin"),
    ("{url}/redirect-chain", ["127.0.0.1"], "another origin"),
]


def _optimade_registration(tmp_path, hostile: Hostile, url: str, allow: list[str]) -> Any:
    target = url.format(url=hostile.url, port=hostile.port)
    stores = {"remote": {"kind": "optimade", "url": target}}
    with node_with(tmp_path, stores, network={"allow": allow}) as (client, headers):
        body = entry("remote-gaps", "remote", "structures", [column_entry("id", "string")])
        return client.post("/catalog", json=body, headers=headers["steward"])


@pytest.mark.parametrize(("url", "allow", "reason"), OPTIMADE_REFUSED)
def test_optimade_store_refuses(tmp_path, hostile: Hostile, url, allow, reason) -> None:
    before = len(hostile.hits)
    r = _optimade_registration(tmp_path, hostile, url, allow)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert reason in r.json()["detail"]
    if reason == "non-public address":
        assert len(hostile.hits) == before  # refused before connecting


def test_optimade_store_allowed_by_name_follows_same_origin_redirects(hostile: Hostile) -> None:
    """The allowed case: loopback named in the policy, a redirect on the same origin followed."""
    with OptimadeConnector(f"{hostile.url}/redirect-same", network=LOOPBACK) as connector:
        assert connector.tables() == ("structures",)
    with OptimadeConnector(f"{hostile.url}/ok", network=LOOPBACK) as connector:
        assert connector.tables() == ("structures",)
    with (
        OptimadeConnector(f"{hostile.url}/ok", network=NetPolicy()) as connector,
        pytest.raises(StoreError, match="non-public address"),
    ):
        connector.tables()


def test_optimade_next_link_to_another_port_is_refused(hostile: Hostile) -> None:
    """A page whose next link points at another port of the same host is not fetched."""
    with OptimadeConnector(f"{hostile.url}/paged", network=LOOPBACK) as connector:
        batches = connector.batches(Query("structures", ("id",)))
        with pytest.raises(StoreError, match="next link"):
            list(batches)


# ---- DNS answers that change ---------------------------------------------------------------


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A name server for *.rebind.test whose answers the test sets; other names resolve as usual."""
    real = socket.getaddrinfo
    state: dict[str, Any] = {"answers": [], "calls": 0}

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith("rebind.test"):
            state["calls"] += 1
            answer = state["answers"][min(state["calls"], len(state["answers"])) - 1]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answer]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return state


def test_the_checked_address_is_the_connected_one(hostile: Hostile, resolver) -> None:
    """Resolved once per request and pinned: a second, different answer is never used."""
    resolver["answers"] = [["127.0.0.1"], ["10.9.9.9"], ["10.9.9.9"]]
    url = f"http://a.rebind.test:{hostile.port}/ok/v1/info"
    with guarded_client(LOOPBACK) as client:
        assert client.get(url).status_code == 200
        assert resolver["calls"] == 1
        assert hostile.hits[-1] == ("/ok/v1/info", f"a.rebind.test:{hostile.port}")
        with pytest.raises(DestinationRefused, match=re.escape("10.9.9.9")):
            client.get(url)  # the next request resolves again, and is checked again


def test_a_name_with_one_private_answer_is_refused(resolver) -> None:
    resolver["answers"] = [["93.184.216.34", "127.0.0.1"]]
    with pytest.raises(DestinationRefused, match=re.escape("127.0.0.1")):
        NetPolicy().check_url("http://b.rebind.test/")


def test_a_name_resolving_to_metadata_is_refused_even_when_named(resolver) -> None:
    resolver["answers"] = [["169.254.169.254"]]
    policy = NetPolicy.from_entries(["c.rebind.test"])
    with pytest.raises(DestinationRefused, match="metadata"):
        policy.check_url("http://c.rebind.test/")


# ---- peers ---------------------------------------------------------------------------------

PEER_ROWS = [
    # (peer URL, path, allow list, allow_private_network, expected detail or None for success)
    ("{url}/peer", "/ping", [], False, "non-public address"),
    ("http://2130706433:{port}/peer", "/ping", [], False, "non-public address"),
    ("http://localhost:{port}/peer", "/ping", [], False, "non-public address"),
    ("http://[::ffff:127.0.0.1]:{port}/peer", "/ping", [], False, "non-public address"),
    ("{url}/peer-redirect", "/ping", ["127.0.0.1"], False, "redirects are not followed"),
    ("{url}/peer", "/ping", ["127.0.0.1"], False, None),
    ("{url}/peer", "/ping", [], True, None),
    ("http://localhost:{port}/peer", "/ping", ["localhost"], False, None),
]


@pytest.mark.parametrize(("url", "path", "allow", "private", "detail"), PEER_ROWS)
def test_peer_calls(hostile: Hostile, url, path, allow, private, detail) -> None:
    target = url.format(url=hostile.url, port=hostile.port)
    config = PeerConfig(
        institution="beta",
        url=target,
        jwks={"keys": []},
        allow_private_network=private,
        retries=0,
    )
    peer = Peer(
        config,
        key=NodeKey.generate(),
        issuer="http://alpha.test",
        institution="alpha",
        network=NetPolicy.from_entries(allow),
    )
    principal = Principal(subject="ana", institution="alpha")

    async def call() -> object:
        try:
            return await peer.get_json(path, principal)
        finally:
            await peer.aclose()  # the peer's kept-alive connections belong to this loop

    if detail is None:
        assert asyncio.run(call()) == {"pong": True}
    else:
        with pytest.raises(BadGateway, match=detail):
            asyncio.run(call())


# ---- JWKS URLs on a live node --------------------------------------------------------------


def _token(audience: str) -> str:
    now = int(time.time())
    claims = {
        "iss": IDP,
        "aud": audience,
        "sub": "mallory",
        "iat": now,
        "exp": now + 300,
        "institution": "aurora",
        "roles": ["member"],
    }
    return jwt.encode({"alg": "Ed25519", "kid": "idp-1"}, claims, KEY, algorithms=["Ed25519"])


@pytest.mark.parametrize(
    ("jwks", "allow", "status"),
    [
        ("{url}/jwks.json", [], 401),
        ("http://2130706433:{port}/jwks.json", [], 401),
        ("http://[::1]:{port}/jwks.json", ["127.0.0.1"], 401),
        ("http://localhost:{port}/jwks.json", ["localhost"], 200),
        ("{url}/jwks-redirect.json", ["127.0.0.1"], 401),
        ("{url}/jwks.json", ["127.0.0.1"], 200),
    ],
)
def test_jwks_urls(tmp_path, hostile: Hostile, jwks, allow, status) -> None:
    before = len(hostile.hits)
    issuer = {"issuer": IDP, "jwks_url": jwks.format(url=hostile.url, port=hostile.port)}
    issuer |= {"institution": "aurora", "algorithms": ["Ed25519"]}
    with node_with(tmp_path, {}, network={"allow": allow}, issuers=[issuer]) as (client, _):
        audience = client.app.state.node.public_url
        r = client.get("/catalog", headers={"Authorization": f"Bearer {_token(audience)}"})
    assert r.status_code == status, r.text
    if status == 401 and "jwks.json" in jwks and "redirect" not in jwks:
        assert len(hostile.hits) == before  # refused before connecting
