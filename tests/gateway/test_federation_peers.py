"""Peers that misbehave: down, slow, dripping, garbage, another institution's rows, redirects.

One small ASGI app on loopback plays every bad peer, one per path prefix (``/slow``, ``/drip``
...); alpha, a real node, names each prefix as a peer of its own institution.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pyarrow as pa
import pytest
from gateway_support import LiveServer, free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from test_federation_world import World, build_world, dataset_doc, serve

from audit.search import EventFilter
from gateway.keys import NodeKey

COLUMNS = ["sample_id", "band_gap_ev"]
BAD = ("slow", "drip", "dripstart", "garbage", "stranger", "extra", "redirect", "big")


def _arrow(peer: str, *, node: str | None = None, extra: bool = False) -> bytes:
    names = [*COLUMNS, "secret"] if extra else COLUMNS
    manifest = {
        "id": "f" * 32,
        "node": node or peer,
        "dataset": f"{node or peer}/gaps",
        "principal": "alpha:ana",
        "purpose": "research",
        "query": {"columns": names},
    }
    arrays = [pa.array(["x-1", "x-2"]), pa.array([1.0, 2.0])] + (
        [pa.array([7, 8])] if extra else []
    )
    table = pa.Table.from_arrays(arrays, names=names)
    table = table.replace_schema_metadata({b"matgate.manifest": json.dumps(manifest).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


async def _drip(head: bytes, count: int) -> AsyncIterator[bytes]:
    yield head
    for _ in range(count):  # bounded: the test's deadline must cut it long before the end
        await asyncio.sleep(0.1)
        yield b"\x00"


async def _fake(request: Request) -> Response:
    peer, _, rest = request.url.path.strip("/").partition("/")
    headers = {"Matgate-Request-Id": "f" * 32}
    if peer == "slow":
        await asyncio.sleep(3)
        return JSONResponse({"count": 0, "datasets": []})
    if peer == "redirect":
        return RedirectResponse("http://127.0.0.1:1/elsewhere", status_code=302)
    if peer == "garbage":
        return Response(b"\x89PNG not what you asked for" * 10, headers=headers)
    if peer == "big":
        return JSONResponse({"count": 0, "datasets": [], "pad": "x" * 200_000})
    if rest == "catalog":
        found = dataset_doc("gaps", "CC-BY-4.0") | {
            "institution": "gamma" if peer == "stranger" else peer
        }
        return JSONResponse({"count": 1, "datasets": [found]})
    if rest.startswith("catalog/"):
        return JSONResponse(dataset_doc("gaps", "CC-BY-4.0") | {"institution": peer})
    if rest.endswith("/slice"):
        if peer == "dripstart":
            # a schema message announced, then never finished
            head = b"\xff\xff\xff\xff" + (1000).to_bytes(4, "little")
            return StreamingResponse(_drip(head, 100), headers=headers)
        if peer == "drip":
            return StreamingResponse(_drip(_arrow(peer)[:-8], 100), headers=headers)
        body = _arrow(peer, node="gamma" if peer == "stranger" else None, extra=peer == "extra")
        return Response(body, headers=headers)
    return JSONResponse({"detail": "no"}, status_code=404)


@pytest.fixture(scope="module")
def fake() -> Iterator[str]:
    """The misbehaving peers' server; yields its URL."""
    app = Starlette(routes=[Route("/{path:path}", _fake, methods=["GET", "POST"])])
    port = free_port()
    server = LiveServer(app, port).start()  # type: ignore[arg-type]
    yield server.url
    server.stop()


def _entry(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "institution": name,
        "url": url,
        "jwks": NodeKey.generate().jwks(),
        "allow_private_network": True,
        "connect_timeout": 0.5,
        "read_timeout": 0.5,
        "deadline": 1.0,
        "slice_deadline": 1.0,
        "retries": 0,
        "max_json_bytes": 100_000,
        "breaker_failures": 100,
        **extra,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, fake: str) -> Iterator[World]:
    """alpha, whose peers are the fake's bad peers, a dead port, and a private one not allowed."""
    entries = [_entry(name, f"{fake}/{name}") for name in BAD]
    entries.append(_entry("down", f"http://127.0.0.1:{free_port()}"))
    entries.append(_entry("flaky", f"http://127.0.0.1:{free_port()}", breaker_failures=2))
    # Its own public URL: a URL two peers shared would make their assertions indistinguishable.
    entries.append(
        _entry(
            "private",
            f"{fake}/stranger",
            public_url=f"{fake}/private",
            allow_private_network=False,
        )
    )
    built = build_world(tmp_path_factory.mktemp("bad-peers"), {"alpha": entries})
    yield from serve(built, "alpha")


def _pull(world: World, dataset: str) -> httpx.Response:
    body = {"purpose": "research", "columns": COLUMNS}
    return httpx.post(
        f"{world.url('alpha')}/datasets/{dataset}/slice",
        json=body,
        headers=world.headers("alpha"),
        timeout=30,
    )


@pytest.mark.parametrize(
    ("peer", "status", "detail"),
    [
        ("down", 503, "cannot be reached"),
        ("slow", 504, "timed out"),
        ("dripstart", 504, "did not start the slice in time"),
        ("garbage", 502, "did not send an Arrow stream"),
        ("stranger", 502, "names node 'gamma', not 'stranger'"),
        ("extra", 502, "columns not asked for: secret"),
        ("redirect", 502, "redirects are not followed"),
        ("private", 502, "non-public address"),
    ],
)
def test_bad_peers_give_a_problem_before_any_byte(world, peer, status, detail):
    r = _pull(world, f"{peer}/gaps")
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert detail in r.json()["detail"]


def test_bad_answers_are_recorded_at_home(world):
    _pull(world, "stranger/gaps")
    page = world.node("alpha").audit.events(EventFilter(name="relay", dataset="stranger/gaps"))
    assert any("gamma" in e.event["error"] and not e.event["complete"] for e in page.entries)


def test_a_dripping_peer_is_cut_at_the_deadline(world):
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            f"{world.url('alpha')}/datasets/drip/gaps/slice",
            json={"purpose": "research", "columns": COLUMNS},
            headers=world.headers("alpha"),
        ) as r,
    ):
        assert r.status_code == 200  # the owner's schema passed; the body then drips
        relay_id = r.headers["matgate-request-id"]
        with pytest.raises(httpx.HTTPError):
            for _ in r.iter_bytes():
                pass
    manifest = world.node("alpha").provenance.get(relay_id)["manifest"]
    assert (
        manifest["complete"] is False and "did not finish the slice within 1 s" in manifest["error"]
    )
    assert manifest["rows"] is None  # so the client refuses it (rows must match)


def test_the_breaker_opens_after_repeated_failures(world):
    first = [_pull(world, "flaky/gaps").json()["detail"] for _ in range(2)]
    assert all("cannot be reached" in d for d in first)
    third = _pull(world, "flaky/gaps")
    assert third.status_code == 503 and "circuit is open" in third.json()["detail"]


def test_federated_catalog_reports_each_bad_site(world):
    r = httpx.get(
        f"{world.url('alpha')}/catalog",
        params={"federated": "true"},
        headers=world.headers("alpha"),
        timeout=30,
    )
    page = r.json()
    sites = {name: s["status"] for name, s in page["meta"]["sites"].items()}
    assert page["meta"]["complete"] is False
    assert sites["alpha"] == "ok" and sites["extra"] == "ok"
    assert sites["slow"] == "timeout" and sites["down"] == "unavailable"
    assert sites["garbage"] == sites["stranger"] == sites["big"] == sites["redirect"] == "error"
    institutions = {d["institution"] for d in page["datasets"]}
    assert "gamma" not in institutions and "extra" in institutions


def test_federated_query_is_partial_and_flagged(world):
    ids = ["alpha/gaps", "slow/gaps", "down/gaps", "stranger/gaps", "extra/gaps", "drip/gaps"]
    body = {"datasets": ids, "columns": COLUMNS, "purpose": "research", "format": "json"}
    url = f"{world.url('alpha')}/federation/query"
    r = httpx.post(url, json=body, headers=world.headers("alpha"), timeout=30)
    assert r.status_code == 200, r.text
    result = r.json()
    status = {k: v["status"] for k, v in result["sites"].items()}
    assert result["complete"] is False
    assert status == {
        "alpha/gaps": "ok",
        "slow/gaps": "timeout",
        "down/gaps": "unavailable",
        "stranger/gaps": "error",
        "extra/gaps": "error",
        "drip/gaps": "timeout",
    }
    assert {row["site"] for row in result["rows"]} == {"alpha"}
    strict = httpx.post(
        url, json=body | {"require_all": True}, headers=world.headers("alpha"), timeout=30
    )
    assert strict.status_code == 502 and strict.json()["sites"]["slow/gaps"]["status"] == "timeout"
