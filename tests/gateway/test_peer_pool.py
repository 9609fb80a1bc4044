"""Connections to a peer are pooled and kept alive, per event loop, and still checked per request.

A small ASGI app on loopback plays the peer and notes the client port of every request: one
port for many calls means one kept-alive connection.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from gateway_support import LiveServer, free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.netguard import NetPolicy
from gateway.config import PeerConfig
from gateway.errors import BadGateway
from gateway.keys import NodeKey
from gateway.peers import Peer
from policies.principals import Principal

ANA = Principal(subject="ana", institution="alpha")


class Ports:
    """The client ports the fake peer has seen, in order."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def answer(self, request: Request) -> Response:
        assert request.client is not None
        self.seen.append(request.client.port)
        return JSONResponse({"ok": True, "path": request.url.path})


@pytest.fixture(scope="module")
def peer_server() -> Iterator[tuple[str, Ports]]:
    """The fake peer's URL and what it saw."""
    ports = Ports()
    app = Starlette(routes=[Route("/{path:path}", ports.answer, methods=["GET", "POST"])])
    server = LiveServer(app, free_port()).start()  # type: ignore[arg-type]
    yield server.url, ports
    server.stop()


def _peer(url: str, **extra: object) -> Peer:
    config = PeerConfig.model_validate(
        {"institution": "beta", "url": url, "jwks": NodeKey.generate().jwks(), **extra}
    )
    return Peer(config, key=NodeKey.generate(), issuer="http://alpha", institution="alpha")


def test_calls_reuse_one_kept_alive_connection(peer_server):
    url, ports = peer_server
    peer = _peer(url, allow_private_network=True)
    ports.seen.clear()

    async def calls() -> list[object]:
        try:
            return [await peer.get_json(f"/catalog/beta/q{i}", ANA) for i in range(5)]
        finally:
            await peer.aclose()

    answers = anyio.run(calls)
    assert [a["path"] for a in answers] == [f"/catalog/beta/q{i}" for i in range(5)]  # type: ignore[index]
    assert len(ports.seen) == 5 and len(set(ports.seen)) == 1


def test_concurrent_calls_share_the_pool_and_each_loop_has_its_own(peer_server):
    url, ports = peer_server
    peer = _peer(url, allow_private_network=True)

    async def burst() -> None:
        try:
            async with anyio.create_task_group() as group:
                for i in range(4):
                    group.start_soon(peer.get_json, f"/catalog/beta/c{i}", ANA)
            await peer.get_json("/catalog/beta/after", ANA)
        finally:
            await peer.aclose()

    ports.seen.clear()
    anyio.run(burst)
    first = list(ports.seen)
    assert len(first) == 5 and len(set(first)) <= 4
    assert first[-1] in first[:4]  # the call after the burst took a kept connection
    ports.seen.clear()
    anyio.run(burst)  # a new event loop: new connections, not the closed loop's
    assert not set(ports.seen) & set(first)


def test_a_pooled_peer_still_checks_every_request(peer_server):
    url, ports = peer_server
    peer = _peer(url)  # 127.0.0.1 is not allowed without allow_private_network

    async def call() -> None:
        try:
            await peer.get_json("/catalog/beta/q", ANA)
        finally:
            await peer.aclose()

    ports.seen.clear()
    with pytest.raises(BadGateway, match="non-public address"):
        anyio.run(call)
    assert ports.seen == []
    # the same peer with the address allowed node-wide reaches it
    allowed = Peer(
        peer.config,
        key=NodeKey.generate(),
        issuer="http://alpha",
        institution="alpha",
        network=NetPolicy.from_entries(["127.0.0.0/8"]),
    )

    async def twice() -> None:
        try:
            await allowed.get_json("/catalog/beta/q", ANA)
            await allowed.get_json("/catalog/beta/q", ANA)
        finally:
            await allowed.aclose()

    anyio.run(twice)
    assert len(ports.seen) == 2 and len(set(ports.seen)) == 1
