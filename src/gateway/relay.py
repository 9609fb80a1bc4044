"""Relayed pulls: another institution's slice streamed through the home node.

The home node forwards the request to the owning node with an on-behalf-of assertion
(``gateway.assertions``); the owner decides by its own policies and audits its release; the home
node relays the bytes as they come, recording ``RelayForwarded`` once the owner has accepted and
before the first byte goes out, then, when the stream ends, the ``SliceDelivered`` of the relay's
own manifest. That manifest (request id, home node, user, rows and SHA-256 of what was relayed,
``upstream``: the owner's signed manifest) is signed by the home node and served at its
``/provenance/{id}``, so a client checks a cross-site pull exactly as a local one. It is
``complete`` only when the owner's manifest verifies under the peer's keys and names the same
bytes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pyarrow as pa
from fastapi.responses import StreamingResponse

from audit.errors import AuditError
from audit.events import RelayForwarded
from audit.manifests import verify_manifest
from gateway.access import record
from gateway.errors import (
    BadGateway,
    GatewayTimeout,
    MatgateError,
)
from gateway.federation import bridge, peer_for
from gateway.formats import Format
from gateway.node import Node
from gateway.observability import claim_request_id
from gateway.peers import Peer, read_capped
from gateway.slices import MANIFEST_KEY, SliceRequest, keep, released
from policies.decisions import Action
from policies.principals import Principal

__all__ = ["Relay", "open_relay", "relay_slice"]

log = logging.getLogger("matgate.federation")
_MAX_SCHEMA_BYTES = 16 * 2**20


@dataclass
class Relay:
    """A peer's slice, accepted by the owner and checked, ready to relay."""

    request_id: str
    upstream_id: str
    peer: Peer
    dataset_id: str
    format: Format
    chunks: AsyncIterator[bytes] = field(repr=False)
    upstream: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        """Response headers naming the relay's own manifest."""
        return {
            "Matgate-Request-Id": self.request_id,
            "Link": f'</provenance/{self.request_id}>; rel="provenance"',
        }


def _slice_body(req: SliceRequest) -> dict[str, Any]:
    return {
        "purpose": req.purpose,
        "columns": list(req.columns) if req.columns is not None else None,
        "filter": req.filter,
        "order_by": list(req.order_by),
        "limit": req.limit,
        "offset": req.offset,
        "format": req.format.value,
    }


def _relay_event(
    node: Node, principal: Principal, peer: Peer, dataset_id: str, req: SliceRequest, **fields: Any
) -> RelayForwarded:
    return RelayForwarded(
        node=node.institution,
        principal=principal.id,
        institution=principal.institution,
        dataset=dataset_id,
        action=Action.READ.value,
        purpose=req.purpose,
        peer=peer.institution,
        **fields,
    )


async def _record(node: Node, event: Any) -> None:
    await anyio.to_thread.run_sync(record, node, event)


async def open_relay(node: Node, principal: Principal, dataset_id: str, req: SliceRequest) -> Relay:
    """Forward a slice request to the owning node and check its answer before any byte is sent."""
    peer = peer_for(node, principal, dataset_id)
    relay_id = claim_request_id(lambda rid: released(node, rid))
    end = time.monotonic() + peer.config.slice_deadline
    stack = contextlib.AsyncExitStack()
    try:
        peer.admit()
        with anyio.fail_after(min(peer.config.deadline, peer.config.slice_deadline)):
            headers = {"Authorization": f"Bearer {peer.assertion(principal)}"}
            response = await stack.enter_async_context(
                peer.stream(
                    "POST",
                    f"/datasets/{dataset_id}/slice",
                    headers=headers,
                    end=end,
                    json_body=_slice_body(req),
                )
            )
            if response.status_code != 200:
                body = await read_capped(response, peer.config.max_json_bytes, peer.institution)
                error = peer.answer_error(response, body)
                (peer.breaker.failure if error.status >= 500 else peer.breaker.success)()
                raise error
            upstream_id = response.headers.get("matgate-request-id", "")
            if not upstream_id.isalnum() or len(upstream_id) > 64:
                raise BadGateway(f"peer {peer.institution!r} sent a slice without a request id")
            chunks = response.aiter_bytes()
            prefix, upstream = (
                await _arrow_prefix(chunks, peer, principal, dataset_id, req)
                if req.format is Format.ARROW
                else ([], {})
            )
    except BaseException as exc:
        await stack.aclose()
        if isinstance(exc, TimeoutError):
            peer.breaker.failure()
            exc = GatewayTimeout(f"peer {peer.institution!r} did not start the slice in time")
        if isinstance(exc, MatgateError):
            with contextlib.suppress(MatgateError):  # the error itself is what the user must see
                decision = "deny" if exc.status in (403, 404) else ""
                event = _relay_event(
                    node,
                    principal,
                    peer,
                    dataset_id,
                    req,
                    request_id=relay_id,
                    decision=decision,
                    complete=False,
                    error=exc.detail,
                )
                await _record(node, event)
            raise exc from None
        raise
    peer.breaker.success()
    # Fail closed: without the relay in the home log, nothing is relayed.
    await _record(
        node,
        _relay_event(
            node,
            principal,
            peer,
            dataset_id,
            req,
            request_id=relay_id,
            decision="allow",
            manifest_id=upstream_id,
            complete=False,
        ),
    )
    relay = Relay(relay_id, upstream_id, peer, dataset_id, req.format, chunks=_empty())
    relay.upstream = upstream
    relay.chunks = _stream(node, principal, relay, req, prefix, chunks, stack, end)
    return relay


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


async def _arrow_prefix(
    chunks: AsyncIterator[bytes],
    peer: Peer,
    principal: Principal,
    dataset_id: str,
    req: SliceRequest,
) -> tuple[list[bytes], dict[str, Any]]:
    """Read up to the Arrow schema message, and check it and the manifest it carries."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= 8:
            head = b"".join(parts)
            if head[:4] != b"\xff\xff\xff\xff":
                break
            length = int.from_bytes(head[4:8], "little", signed=True)
            if not 0 < length <= _MAX_SCHEMA_BYTES:
                break
            if size >= 8 + length:
                return parts, _check_schema(head, peer, principal, dataset_id, req)
        if size > _MAX_SCHEMA_BYTES:
            break
    raise BadGateway(f"peer {peer.institution!r} did not send an Arrow stream")


def _check_schema(
    head: bytes, peer: Peer, principal: Principal, dataset_id: str, req: SliceRequest
) -> dict[str, Any]:
    who = f"peer {peer.institution!r}"
    try:
        schema = pa.ipc.open_stream(pa.py_buffer(head)).schema
        manifest = json.loads((schema.metadata or {})[MANIFEST_KEY])
    except (pa.ArrowInvalid, KeyError, ValueError) as exc:
        raise BadGateway(f"{who} sent an Arrow stream without a readable manifest") from exc
    if not isinstance(manifest, dict):
        raise BadGateway(f"{who} sent a manifest that is not an object")
    expected = {
        "node": peer.institution,
        "dataset": dataset_id,
        "principal": principal.id,
        "purpose": req.purpose,
    }
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise BadGateway(
                f"{who} sent a slice whose manifest names {key} {manifest.get(key)!r}, "
                f"not {value!r}"
            )
    names = list(schema.names)
    not_asked = sorted(set(names) - set(req.columns)) if req.columns is not None else []
    if not_asked:
        raise BadGateway(f"{who} sent columns not asked for: {', '.join(not_asked)}")
    declared = (manifest.get("query") or {}).get("columns")
    if declared != names:
        raise BadGateway(f"{who} sent columns {names} where its manifest declares {declared}")
    return manifest


async def _stream(
    node: Node,
    principal: Principal,
    relay: Relay,
    req: SliceRequest,
    prefix: list[bytes],
    chunks: AsyncIterator[bytes],
    stack: contextlib.AsyncExitStack,
    end: float,
) -> AsyncIterator[bytes]:
    peer = relay.peer
    digest = hashlib.sha256()
    sent = 0
    error = ""
    try:
        for chunk in prefix:
            digest.update(chunk)
            sent += len(chunk)
            yield chunk
        iterator = chunks.__aiter__()
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise GatewayTimeout(f"peer {peer.institution!r}: slice deadline reached")
            try:
                with anyio.fail_after(remaining):
                    chunk = await iterator.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                peer.breaker.failure()
                raise GatewayTimeout(
                    f"peer {peer.institution!r} did not finish the slice within "
                    f"{peer.config.slice_deadline:g} s"
                ) from None
            sent += len(chunk)
            if sent > peer.config.max_slice_bytes:
                raise BadGateway(
                    f"peer {peer.institution!r} sent more than {peer.config.max_slice_bytes} bytes"
                )
            digest.update(chunk)
            yield chunk
    except GeneratorExit:
        error = "client went away"
        raise
    except BaseException as exc:
        error = exc.detail if isinstance(exc, MatgateError) else f"{type(exc).__name__}: {exc}"
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await stack.aclose()
            await _finish(node, principal, relay, req, digest.hexdigest(), sent, error, end)


async def _finish(
    node: Node,
    principal: Principal,
    relay: Relay,
    req: SliceRequest,
    sha256: str,
    sent: int,
    error: str,
    end: float,
) -> None:
    """Verify the owner's signed manifest against what was relayed; sign and record ours."""
    peer = relay.peer
    upstream: dict[str, Any] = dict(relay.upstream)
    token = ""
    if not error:
        try:
            remaining = max(1.0, min(peer.config.deadline, end - time.monotonic()))
            found = await peer.get_json(
                f"/provenance/{relay.upstream_id}", principal, deadline=remaining
            )
            token = str(found.get("signature") or "") if isinstance(found, dict) else ""
            upstream = verify_manifest(token, await peer.jwks(principal))
            error = _upstream_problem(upstream, relay, principal, sha256, sent)
        except (MatgateError, AuditError, ValueError) as exc:
            error = f"owner's manifest not verified: {getattr(exc, 'detail', None) or exc}"
    complete = not error
    final = {
        "id": relay.request_id,
        "node": node.institution,
        "node_url": node.public_url,
        "relay": True,
        "peer": peer.institution,
        "peer_url": peer.config.issuer,
        "dataset": relay.dataset_id,
        "dataset_version": upstream.get("dataset_version"),
        "dataset_title": upstream.get("dataset_title"),
        "query": upstream.get("query") or _slice_body(req),
        "purpose": req.purpose,
        "principal": principal.id,
        "actor": None,
        "licence": upstream.get("licence"),
        "citation": upstream.get("citation"),
        "obligations": upstream.get("obligations") or [],
        "policy_version": int(upstream.get("policy_version") or 0),
        "decision": upstream.get("decision") or {},
        "format": req.format.value,
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "upstream": [token] if token else [],
        "rows": upstream.get("rows") if complete else None,
        "bytes": sent,
        "sha256": sha256,
        "complete": complete,
        "error": error,
        "completed": dt.datetime.now(dt.UTC).isoformat(),
    }
    await anyio.to_thread.run_sync(_keep, node, principal, final, error)


def _upstream_problem(
    upstream: dict[str, Any], relay: Relay, principal: Principal, sha256: str, sent: int
) -> str:
    checks = {
        "id": relay.upstream_id,
        "node": relay.peer.institution,
        "dataset": relay.dataset_id,
        "principal": principal.id,
        "sha256": sha256,
        "bytes": sent,
        "complete": True,
    }
    wrong = [k for k, v in checks.items() if upstream.get(k) != v]
    return f"owner's manifest disagrees on {', '.join(wrong)}" if wrong else ""


def _keep(node: Node, principal: Principal, final: dict[str, Any], error: str) -> None:
    """Record the relay's completion and keep its signed manifest (logged loudly on failure)."""
    try:
        keep(node, principal, final, error=error)
    except Exception:
        log.exception("could not record the completion of relay %s", final["id"])


def relay_slice(
    node: Node, principal: Principal, dataset_id: str, req: SliceRequest
) -> StreamingResponse:
    """Open a relayed slice (from a route's worker thread) and stream it as it comes."""
    relay = bridge(open_relay, node, principal, dataset_id, req)
    name = dataset_id.replace("/", "_") + req.format.suffix
    headers = {**relay.headers, "Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(relay.chunks, media_type=req.format.media_type, headers=headers)
