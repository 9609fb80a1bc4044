"""Witnessing across the federation: peers cosign this node's checkpoints, it cosigns theirs.

As a log, the node posts each new checkpoint to every peer's ``/audit/witness/add-checkpoint``
(c2sp.org/tlog-witness) with a consistency proof from the size that peer last cosigned, checks
the cosignature it gets back against the peer's witness key and stores it with the checkpoint.
As a witness (``gateway.witness``), it resolves a submitted origin to a configured peer and
checks the note against that peer's keys, the same keys its on-behalf-of assertions use.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import time
from typing import Any

from audit.checkpoints import Checkpoint, Notary
from audit.keys import public_keys, thumbprint
from audit.log import AuditLog
from audit.notes import NoteKey, NoteSignature
from audit.search import format_time
from gateway.errors import BadGateway, MatgateError
from gateway.peers import Peer, Peers, read_capped
from gateway.witness import SIZE_MEDIA, Answer, Witness, parse_submission
from policies.principals import Principal

__all__ = ["Cosigners", "add_checkpoint", "checkpoint_view", "witness_info"]

log = logging.getLogger("matgate.witness")
ADD_CHECKPOINT = "/audit/witness/add-checkpoint"
_MAX_ANSWER = 64 * 1024


def _institution_of(origin: str) -> str | None:
    parts = origin.split("/")
    if len(parts) == 3 and parts[0] == "matgate" and parts[2] == "audit" and parts[1]:
        return parts[1]
    return None


class Cosigners:
    """Asks this node's peers to witness its checkpoints; remembers what each one cosigned."""

    def __init__(self, peers: Peers, audit: AuditLog, notary: Notary, service: Principal) -> None:
        self._peers = peers
        self._audit = audit
        self._notary = notary
        self._service = service
        self._old: dict[str, int] = {}
        self._keys: dict[str, NoteKey] = {}

    async def round(self, cp: Checkpoint | None = None, *, deadline: float = 5.0) -> dict[str, str]:
        """Ask every peer to cosign ``cp`` (default: a checkpoint signed now), concurrently,
        within ``deadline`` seconds; returns each peer's outcome."""
        if cp is None:
            cp = await asyncio.to_thread(self._audit.checkpoint)
        end = time.monotonic() + deadline
        peers = list(self._peers)
        outcomes = await asyncio.gather(
            *(self._ask(peer, cp, end) for peer in peers), return_exceptions=True
        )
        result: dict[str, str] = {}
        for peer, outcome in zip(peers, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                detail = outcome.detail if isinstance(outcome, MatgateError) else repr(outcome)
                result[peer.institution] = f"error: {detail}"
                log.warning("peer %s did not cosign: %s", peer.institution, detail)
            else:
                result[peer.institution] = outcome
        return result

    async def _witness_key(self, peer: Peer) -> NoteKey:
        key = self._keys.get(peer.institution)
        if key is None:
            info = await peer.get_json("/audit/witness", self._service)
            if not isinstance(info, dict) or not isinstance(info.get("vkey"), str):
                raise BadGateway(f"peer {peer.institution!r} names no witness key")
            key = self._keys[peer.institution] = NoteKey.from_vkey(info["vkey"])
        return key

    async def _ask(self, peer: Peer, cp: Checkpoint, end: float) -> str:
        key = await self._witness_key(peer)
        note = self._notary.signed(cp)
        for _ in range(2):
            old = self._old.get(peer.institution, 0)
            if old > cp.size:
                return f"conflict: the witness cosigned size {old}, larger than {cp.size}"
            proof = self._audit.consistency_proof(old, cp.size).path if old else []
            lines = [f"old {old}"] + [base64.b64encode(bytes.fromhex(h)).decode() for h in proof]
            body = ("\n".join(lines) + "\n\n" + str(note)).encode()
            headers = {"Content-Type": "text/plain; charset=utf-8"}
            async with peer.stream(
                "POST", ADD_CHECKPOINT, headers=headers, end=end, content=body
            ) as resp:
                data = (await read_capped(resp, _MAX_ANSWER, peer.institution)).decode()
                status, media = resp.status_code, resp.headers.get("content-type", "")
            if status == 409 and media.startswith(SIZE_MEDIA) and data.strip().isdigit():
                self._old[peer.institution] = int(data.strip())
                continue
            if status != 200:
                return f"refused: HTTP {status}: {data[:200].strip()}"
            sigs = [NoteSignature.parse(line) for line in data.splitlines() if line]
            good = [s for s in sigs if key.verify(note.text.encode(), s) is not None]
            if not good:
                return "refused: no valid cosignature in the answer"
            now = format_time(dt.datetime.now(dt.UTC))
            await asyncio.to_thread(self._notary.add_cosignatures, cp, good, now)
            self._old[peer.institution] = cp.size
            return "cosigned"
        return "conflict: the witness keeps answering with another size"


async def add_checkpoint(witness: Witness, peers: Peers, service: Principal, body: bytes) -> Answer:
    """Handle one ``add-checkpoint`` request from a peer log (c2sp.org/tlog-witness)."""
    try:
        sub = parse_submission(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return Answer(400, f"{exc}\n")
    institution = _institution_of(sub.origin)
    peer = peers.get(institution) if institution else None
    if peer is None:
        return await asyncio.to_thread(witness.add_checkpoint, sub, None)
    try:
        keys = list(public_keys(await peer.jwks(service)).values())
    except MatgateError as exc:
        return Answer(503, f"the keys of {peer.institution!r} are unavailable: {exc.detail}\n")
    return await asyncio.to_thread(witness.add_checkpoint, sub, keys, peer.institution)


def witness_info(witness: Witness, peers: Peers) -> dict[str, Any]:
    """This node's witness identity and the latest checkpoint it cosigned for each peer."""
    logs: dict[str, Any] = {}
    for peer in peers:
        origin = f"matgate/{peer.institution}/audit"
        found = witness.latest(origin)
        logs[origin] = {"size": found[0], "root": found[1]} if found else None
    return {"name": witness.name, "vkey": witness.key.vkey(), "logs": logs}


def checkpoint_view(audit: AuditLog, notary: Notary) -> dict[str, Any]:
    """The latest checkpoint (signed now if the log grew) with its note, cosignatures and the
    log's key in the forms an auditor pins (C2SP vkey, RFC 7638 thumbprint)."""
    cp = notary.attach(audit.checkpoint())
    out = cp.to_dict()
    out["origin"] = notary.origin
    out["vkey"] = notary.key.vkey()
    out["fingerprint"] = thumbprint(audit.signer.public_jwk())
    out["cosigners"] = [s.name for s in notary.cosignatures(cp)]
    return out
