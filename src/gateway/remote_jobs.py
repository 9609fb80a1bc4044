"""Compute-to-data across the federation: a training job on another institution's node, asked
for and followed through the user's home node.

The home node forwards ``POST /datasets/{other}/{name}/train`` to the owner with an on-behalf-of
assertion; the owner decides ``train`` by its own policies and runs the job where the rows are.
The home node records the request (``RelayForwarded``, action ``train``) and names the job
``<institution>:<job id>``, so that ``/jobs/{id}``, ``/jobs/{id}/predict``, ``/jobs/{id}/screen``
and ``/jobs/{id}/model`` on the home node are relayed to the owner, where only the same user may
see the job. Rows never cross; the model stays with the owner, which answers predictions and
screening under its own policy, budgets and probe refusals (each relayed call is recorded here
too), and sends the model file only where its policy grants the user ``export-model``.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from fastapi import Response

from audit.events import RelayForwarded
from gateway.access import record
from gateway.errors import BadGateway, NotFound
from gateway.federation import bridge, peer_of
from gateway.peers import Peer, read_capped
from gateway.schemas import TrainBody
from policies.decisions import Action
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = ["is_remote_job", "job", "model", "start", "use"]

SEPARATOR = ":"  # institution slugs have none, so "<institution>:<job id>" splits unambiguously
_MAX_JSON = 8 << 20
_MAX_MODEL = 512 << 20


def is_remote_job(job_id: str) -> bool:
    """Whether ``job_id`` names a job on a peer's node."""
    return SEPARATOR in job_id


def start(node: Node, principal: Principal, dataset_id: str, body: TrainBody) -> dict[str, Any]:
    """Ask the owner to train on its dataset; the job comes back named for the home node."""
    peer = peer_of(
        node, principal, dataset_id.split("/", 1)[0], NotFound(f"no dataset {dataset_id!r}")
    )
    data, _ = bridge(
        _call,
        peer,
        principal,
        "POST",
        f"/datasets/{dataset_id}/train",
        body.model_dump(mode="json"),
    )
    found = _job(peer, data)
    record(
        node,
        RelayForwarded(
            node=node.institution,
            principal=principal.id,
            institution=principal.institution,
            dataset=dataset_id,
            action=Action.TRAIN.value,
            purpose=body.purpose,
            decision="allow",
            peer=peer.institution,
            manifest_id=str(found["id"]),
        ),
    )
    return _renamed(peer, found)


def job(node: Node, principal: Principal, job_id: str) -> dict[str, Any]:
    """The owner's view of a remote job (the same 404 as for no job if it is not yours)."""
    peer, remote_id = _split(node, principal, job_id)
    data, _ = bridge(_call, peer, principal, "GET", f"/jobs/{remote_id}", None)
    return _renamed(peer, _job(peer, data))


def use(
    node: Node, principal: Principal, job_id: str, kind: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Predict or screen (``kind``) with a model kept on the owner's node, recorded here."""
    peer, remote_id = _split(node, principal, job_id)
    data, _ = bridge(_call, peer, principal, "POST", f"/jobs/{remote_id}/{kind}", body)
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("dataset"), str):
        raise BadGateway(f"peer {peer.institution!r} answered with something that is not a {kind}")
    rows = answer.get("rows", answer.get("candidates", 0))
    record(
        node,
        RelayForwarded(
            node=node.institution,
            principal=principal.id,
            institution=principal.institution,
            dataset=answer["dataset"],
            action=kind,
            purpose=str(answer.get("purpose", "")),
            decision="allow",
            peer=peer.institution,
            manifest_id=job_id,
            rows=rows if isinstance(rows, int) else 0,
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        ),
    )
    return {**answer, "job": job_id, "site": peer.institution}


def model(node: Node, principal: Principal, job_id: str) -> Response:
    """The model file of a finished remote job, checked against the hash the owner states."""
    peer, remote_id = _split(node, principal, job_id)
    data, headers = bridge(
        _call, peer, principal, "GET", f"/jobs/{remote_id}/model", None, _MAX_MODEL
    )
    stated = headers.get("matgate-model-sha256", "")
    if hashlib.sha256(data).hexdigest() != stated:
        raise BadGateway(f"peer {peer.institution!r} sent a model that does not match its hash")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Matgate-Model-Sha256": stated,
            "Content-Disposition": 'attachment; filename="model.skops"',
        },
    )


def _split(node: Node, principal: Principal, job_id: str) -> tuple[Peer, str]:
    institution, _, remote_id = job_id.partition(SEPARATOR)
    return peer_of(node, principal, institution, NotFound(f"no job {job_id!r}")), remote_id


def _renamed(peer: Peer, found: dict[str, Any]) -> dict[str, Any]:
    return {**found, "id": f"{peer.institution}{SEPARATOR}{found['id']}", "site": peer.institution}


def _job(peer: Peer, data: bytes) -> dict[str, Any]:
    try:
        found = json.loads(data)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not isinstance(found.get("id"), str) or "status" not in found:
        raise BadGateway(f"peer {peer.institution!r} answered with something that is not a job")
    return found


async def _call(
    peer: Peer,
    principal: Principal,
    method: str,
    path: str,
    body: Any,
    cap: int = _MAX_JSON,
) -> tuple[bytes, dict[str, str]]:
    """One request to the peer as ``principal`` (not retried: starting a job is not idempotent)."""
    peer.admit()
    headers = {"Authorization": f"Bearer {peer.assertion(principal)}"}
    end = time.monotonic() + peer.config.deadline
    async with peer.stream(method, path, headers=headers, end=end, json_body=body) as response:
        data = await read_capped(response, cap, peer.institution)
        if response.status_code >= 300:
            raise peer.answer_error(response, data)
    peer.breaker.success()
    return data, dict(response.headers)
