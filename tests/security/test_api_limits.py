"""API4 (unrestricted resource consumption): bodies, lists and strings bounded before use.

A body larger than its route allows is refused with 413 before authentication and before any
parsing, whether its size is declared, chunked or lied about; every list and string a request
carries has a bound, answered with a 4xx problem, never a 5xx or a store's error text.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.limits import ROUTE_LIMITS

KIB = 1024
SLICE = "/datasets/aurora/ni-superalloys/slice"
DEFAULT = 256 * KIB  # Settings.max_body_bytes

# (method, path, limit): one row per class of route.
ROUTES = [
    ("POST", SLICE, ROUTE_LIMITS["/datasets/{institution}/{name}/slice"]),
    ("POST", "/datasets/aurora/ni-superalloys/train", 64 * KIB),
    ("POST", "/explain", 64 * KIB),
    ("POST", "/federation/query", 64 * KIB),
    ("POST", "/catalog", 1024 * KIB),
    ("POST", "/policies/aurora", 1024 * KIB),
    ("POST", "/policies/aurora/dry-run", 1024 * KIB),
    ("POST", "/lineage/runs", 4096 * KIB),
    ("POST", "/agreements/steels-terms/accept", DEFAULT),
    ("POST", "/no/such/route", DEFAULT),
    ("GET", "/catalog", 0),
    ("GET", SLICE + "?purpose=research", 0),
]
ROUTE_IDS = [f"{m} {p.split('?')[0]}" for m, p, _ in ROUTES]


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    """A problem document with ``status`` and the request's id, and no store internals."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["request_id"] == r.headers["x-request-id"]
    for fragment in ("SELECT", "Traceback", "sqlalchemy", "sqlite3", "psycopg", "pymysql"):
        assert fragment not in r.text
    return body


@pytest.mark.parametrize("token", [False, True], ids=["no-token", "token"])
@pytest.mark.parametrize(("method", "path", "limit"), ROUTES, ids=ROUTE_IDS)
def test_a_body_over_the_limit_is_refused_first(
    api: TestClient,
    auth: dict[str, dict[str, str]],
    method: str,
    path: str,
    limit: int,
    token: bool,
) -> None:
    """Declared size over the route's limit: 413, with or without a valid token."""
    headers = {"Content-Type": "application/json", **(auth["steward"] if token else {})}
    r = api.request(method, path, content=b" " * (limit + 1), headers=headers)
    body = assert_problem(r, 413)
    assert str(limit) in body["detail"]


@pytest.mark.parametrize(("method", "path", "limit"), ROUTES[:8], ids=ROUTE_IDS[:8])
def test_a_chunked_body_over_the_limit_is_refused(
    api: TestClient, method: str, path: str, limit: int
) -> None:
    """No Content-Length (chunked): counted as it comes, refused past the limit (on routes that
    read a body; the others answer without reading it at all)."""

    def chunks() -> Iterator[bytes]:
        sent = 0
        while sent <= limit:
            yield b" " * 16 * KIB
            sent += 16 * KIB

    r = api.request(method, path, content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_problem(r, 413)


@pytest.mark.parametrize(("method", "path", "limit"), ROUTES[:4], ids=ROUTE_IDS[:4])
def test_a_body_at_the_limit_goes_on_to_authentication(
    api: TestClient, method: str, path: str, limit: int
) -> None:
    """The limit is not stricter than it says: a body of exactly ``limit`` bytes is read.

    Without a token it then meets authentication (401), or, where the route is open to the
    ``public`` subject (slices), validation of the empty body (422).
    """
    body = b"{}" + b" " * (limit - 2)
    r = api.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert_problem(r, 422 if path == SLICE else 401)


def _asgi(app: FastAPI, headers: list[tuple[bytes, bytes]], body: list[bytes]) -> int:
    """Run one request through the app's ASGI stack directly; returns the status sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": SLICE,
        "raw_path": SLICE.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    parts = list(body)
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        if parts:
            return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    asyncio.run(app(scope, receive, send))
    return statuses[0]


def test_a_content_length_that_lies_does_not_help(app: FastAPI, api: TestClient) -> None:
    """Declared 10 bytes, sent 256 KiB: the bytes are counted, not the claim."""
    status = _asgi(app, [(b"content-length", b"10")], [b"{}"] + [b" " * 32 * KIB] * 8)
    assert status == 413


@pytest.mark.parametrize(
    "values",
    [[b"abc"], [b"-1"], [b"10", b"10"], [b"1" * 40], [b"0x10"]],
    ids=["text", "negative", "twice", "huge", "hex"],
)
def test_a_malformed_content_length_is_a_bad_request(
    app: FastAPI, api: TestClient, values: list[bytes]
) -> None:
    """A Content-Length that is not one plain number is refused before the app sees it."""
    status = _asgi(app, [(b"content-length", v) for v in values], [b"{}"])
    assert status == 400


def _connect(live: str) -> socket.socket:
    url = urlsplit(live)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    return sock


def _status(sock: socket.socket) -> int:
    head = b""
    deadline = time.monotonic() + 10
    while b"\r\n" not in head and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1])


def test_a_declared_200_mb_body_is_answered_before_it_is_sent(live: str) -> None:
    """The 413 arrives though not one byte of the 200 MB was sent: the node read nothing."""
    with _connect(live) as sock:
        sock.sendall(
            f"POST {SLICE} HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
            f"Content-Length: {200 * 1024 * 1024}\r\n\r\n".encode()
        )
        assert _status(sock) == 413


def test_an_endless_chunked_body_is_cut_off(live: str) -> None:
    """A chunked body without end: refused long before 200 MB, while it streams."""
    chunk = b"%x\r\n%s\r\n" % (64 * KIB, b" " * 64 * KIB)
    sent = 0
    with _connect(live) as sock:
        sock.sendall(
            f"POST {SLICE} HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        sock.setblocking(False)
        answered = False
        while sent < 200 * 1024 * 1024:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                answered = True
                break
            if not writable:
                break
            try:
                sent += sock.send(chunk)
            except (BlockingIOError, ConnectionError):
                break
        sock.setblocking(True)
        assert answered or sent < 64 * 1024 * 1024
        assert _status(sock) == 413
    assert sent < 64 * 1024 * 1024, sent


LONG = "a" * 129
BOUNDS: list[tuple[str, str, str, dict[str, Any], int]] = [
    # (persona, method, path, request kwargs, status)
    (
        "ml-user",
        "POST",
        SLICE,
        {"json": {"purpose": "research", "order_by": ["alloy"] * 5000}},
        422,
    ),
    (
        "ml-user",
        "GET",
        SLICE,
        {"params": {"purpose": "research", "order_by": "alloy," * 5000}},
        422,
    ),
    ("ml-user", "GET", SLICE, {"params": {"purpose": "research", "order_by": "alloy," * 300}}, 422),
    ("ml-user", "POST", SLICE, {"json": {"purpose": "research", "columns": ["alloy"] * 1001}}, 422),
    ("ml-user", "POST", SLICE, {"json": {"purpose": "research", "columns": [LONG]}}, 422),
    ("ml-user", "POST", SLICE, {"json": {"purpose": "research", "order_by": [LONG]}}, 422),
    ("ml-user", "POST", SLICE, {"json": {"purpose": "research", "filter": "a" * 20_001}}, 422),
    ("ml-user", "POST", SLICE, {"json": {"purpose": "r" * 65}}, 422),
    ("ml-user", "GET", SLICE, {"params": {"purpose": "research", "columns": "a," * 10_001}}, 422),
    ("ml-user", "GET", SLICE, {"params": {"purpose": "research", "filter": "a" * 20_001}}, 422),
    (
        "ml-user",
        "POST",
        SLICE,
        {"json": {"purpose": "research", "filter": "(" * 2000 + "alloy = 1" + ")" * 2000}},
        400,
    ),
    (
        "ml-user",
        "POST",
        SLICE,
        {"json": {"purpose": "research", "filter": " OR ".join(["yield_strength_mpa > 1"] * 400)}},
        400,
    ),
    ("ml-user", "POST", SLICE, {"content": b"[" * 30_000 + b"]" * 30_000}, 400),
    (
        "steward",
        "POST",
        "/explain",
        {
            "json": {
                "dataset": "aurora/ni-superalloys",
                "action": "read",
                "purpose": "research",
                "principal": {"subject": "x", "institution": "aurora", "roles": ["m"] * 101},
            }
        },
        422,
    ),
    (
        "steward",
        "POST",
        "/explain",
        {
            "json": {
                "dataset": "aurora/ni-superalloys",
                "action": "read",
                "purpose": "research",
                "columns": [LONG],
            }
        },
        422,
    ),
    (
        "ml-user",
        "POST",
        "/federation/query",
        {"json": {"datasets": ["aurora/ni-superalloys"] * 51, "purpose": "research"}},
        422,
    ),
    (
        "ml-user",
        "POST",
        "/lineage/runs",
        {"json": {"manifests": ["x"] * 1001, "model_name": "m"}},
        422,
    ),
    (
        "ml-user",
        "POST",
        "/lineage/runs",
        {"json": {"manifests": ["x" * 40_000], "model_name": "m"}},
        422,
    ),
    (
        "ml-user",
        "POST",
        "/lineage/runs",
        {
            "json": {
                "manifests": ["x"],
                "model_name": "m",
                "metrics": {f"m{i}": 1 for i in range(101)},
            }
        },
        422,
    ),
    (
        "ml-user",
        "POST",
        "/datasets/aurora/ni-superalloys/train",
        {"json": {"target": "yield_strength_mpa", "inputs": ["alloy"] * 1001}},
        422,
    ),
    (
        "steward",
        "POST",
        "/policies/aurora/dry-run",
        {"json": {"add": [{f"k{i}": "v" for i in range(40)}]}},
        422,
    ),
    ("ml-user", "GET", "/catalog", {"params": [("pspp", "property")] * 7}, 422),
    ("ml-user", "GET", "/catalog", {"params": {"q": "q" * 501}}, 422),
    ("auditor", "GET", "/audit/events", {"params": {"principal": "p" * 301}}, 422),
    ("ml-user", "GET", "/catalog/" + "a" * 65 + "/x", {}, 422),
    ("ml-user", "GET", "/provenance/" + "r" * 129, {}, 422),
    ("ml-user", "GET", "/jobs/" + "j" * 129, {}, 422),
    ("steward", "POST", "/agreements/" + "g" * 129 + "/accept", {}, 422),
]


@pytest.mark.parametrize(
    ("persona", "method", "path", "kwargs", "status"),
    BOUNDS,
    ids=[f"{i:02d}-{m}-{p.split('/')[1][:10]}" for i, (_, m, p, _, _) in enumerate(BOUNDS)],
)
def test_every_list_and_string_has_a_bound(
    api: TestClient,
    auth: dict[str, dict[str, str]],
    persona: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    """Too many, too long or too deep: a 4xx problem, never a 5xx with the store's SQL."""
    headers = {**auth[persona], "Content-Type": "application/json"}
    r = api.request(method, path, headers=headers, **kwargs)
    assert_problem(r, status)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "t" * 501),
        ("description", "d" * 50_001),
        ("keywords", ["k"] * 201),
        ("creators", ["c" * 501]),
        ("citation", "c" * 5_001),
    ],
)
def test_a_registration_is_bounded_field_by_field(
    api: TestClient, auth: dict[str, dict[str, str]], field: str, value: Any
) -> None:
    """A dataset's metadata otherwise valid, one field too large: 422 naming that field."""
    dataset = api.get("/catalog/aurora/ni-superalloys", headers=auth["steward"]).json()
    dataset = {**dataset, "name": "bounded-probe", field: value}
    r = api.post("/catalog", json=dataset, headers=auth["steward"])
    body = assert_problem(r, 422)
    assert any(field in e["loc"] for e in body["errors"]), body
