"""Three real nodes witness each other's audit logs (c2sp.org/tlog-witness) on loopback.

A node that forks its log is played by signing checkpoint notes with its own key and posting
them straight to the witnesses, as a dishonest operator could.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from test_federation_world import World, build_world, serve

from audit.checkpoints import Checkpoint
from audit.entries import split_entry
from audit.merkle import MerkleTree, leaf_hash
from audit.notes import Note, checkpoint_text, sign_note
from audit.report import verify_report
from audit.search import EventFilter
from audit.verify import Trust, verify_checkpoint

ORIGIN = "matgate/alpha/audit"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from serve(build_world(tmp_path_factory.mktemp("witness")))


@pytest.fixture(scope="module")
def forked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A federation whose alpha operator forks alpha's log (its witnesses' state is spoiled)."""
    yield from serve(build_world(tmp_path_factory.mktemp("forked")))


class Forger:
    """Alpha's key in the hands of its operator: signs checkpoints of any log it likes."""

    def __init__(self, world: World, leaves: list[bytes]) -> None:
        self.key = world.keys["alpha"].private
        self.tree = MerkleTree(leaf_hash(x) for x in leaves)

    def note(self, size: int | None = None, key: object = None) -> Note:
        size = self.tree.size if size is None else size
        text = checkpoint_text(ORIGIN, size, self.tree.root(size))
        return Note(text, (sign_note(text, ORIGIN, key or self.key),))  # type: ignore[arg-type]

    def body(self, old: int, size: int | None = None, *, proof: list[bytes] | None = None) -> bytes:
        size = self.tree.size if size is None else size
        if proof is None:
            proof = self.tree.consistency_proof(old, size) if old else []
        lines = [f"old {old}"] + [base64.b64encode(p).decode() for p in proof]
        return ("\n".join(lines) + "\n\n" + str(self.note(size))).encode()


def _post(world: World, witness: str, body: bytes) -> httpx.Response:
    return httpx.post(
        world.url(witness) + "/audit/witness/add-checkpoint",
        content=body,
        headers={"Content-Type": "text/plain"},
        timeout=10,
    )


def _witness_keys(world: World) -> dict[str, str]:
    return {w: httpx.get(world.url(w) + "/audit/witness").json()["vkey"] for w in world.apps}


def test_peers_cosign_a_nodes_checkpoint_and_verify_counts_them(world: World) -> None:
    gamma = world.node("gamma")
    gamma.audit.append_many([])  # nothing new: the checkpoint is the log as it is

    async def round_once() -> dict[str, str]:
        try:
            return await gamma.cosigners.round(deadline=10)
        finally:
            await gamma.peers.aclose()  # the connections this loop kept to the peers

    outcome = asyncio.run(round_once())
    assert outcome == {"alpha": "cosigned", "beta": "cosigned"}
    answer = httpx.get(
        world.url("gamma") + "/audit/checkpoint",
        params={"format": "note"},
        headers=world.headers("gamma"),
    )
    assert answer.headers["content-type"].startswith("text/plain")
    note = answer.text
    assert note.count("\u2014 matgate/alpha/witness ") == 1
    assert note.count("\u2014 matgate/beta/witness ") == 1
    view = httpx.get(world.url("gamma") + "/audit/checkpoint", headers=world.headers("gamma"))
    cp = Checkpoint.from_dict(view.json())
    keys = _witness_keys(world)
    two = Trust.of(
        jwks=world.keys["gamma"].jwks(), witnesses=[keys["alpha"], keys["beta"]], required=2
    )
    result = verify_checkpoint(cp, two)
    assert result.ok and result.cosigners == ["matgate/alpha/witness", "matgate/beta/witness"]
    # gamma's own witness key is not among its cosigners: a log does not witness itself
    three = Trust.of(jwks=world.keys["gamma"].jwks(), witnesses=list(keys.values()), required=3)
    assert ("witnesses", None) in verify_checkpoint(cp, three).kinds()


def test_split_view_is_caught(forked: World) -> None:
    world = forked
    prefix = [b"e%d" % i for i in range(5)]
    shown_to_beta = Forger(world, [*prefix, b"pay alice"])
    shown_to_gamma = Forger(world, [*prefix, b"pay mallory"])
    common = Forger(world, prefix)
    for witness in ("beta", "gamma"):
        start = _post(world, witness, common.body(0))
        assert start.status_code == 200, start.text
    # each witness alone sees an append-only log, and cosigns it
    assert _post(world, "beta", shown_to_beta.body(5)).status_code == 200
    assert _post(world, "gamma", shown_to_gamma.body(5)).status_code == 200
    # the two views: one size, two roots; neither gathers two cosignatures
    seen = {
        w: httpx.get(world.url(w) + "/audit/witness").json()["logs"][ORIGIN]
        for w in ("beta", "gamma")
    }
    assert seen["beta"]["size"] == seen["gamma"]["size"] == 6
    assert seen["beta"]["root"] != seen["gamma"]["root"]
    # showing a witness the other view is refused and raised: 409, audit event, metric
    refused = _post(world, "beta", shown_to_gamma.body(6, proof=[]))
    assert refused.status_code == 409 and refused.headers["content-type"].startswith(
        "text/x.tlog.size"
    )
    assert refused.text == "6\n"
    events = world.node("beta").audit.events(EventFilter(name="witness-refusal")).entries
    assert events and events[-1].event["origin"] == ORIGIN and "fork" in events[-1].event["reason"]
    auditor = world.headers("beta", roles=("auditor",))
    metrics = httpx.get(world.url("beta") + "/metrics", headers=auditor).text
    assert f'matgate_witness_refusals_total{{origin="{ORIGIN}",reason="fork"}} 1.0' in metrics
    # a shrinking log is refused too
    shrunk = _post(world, "gamma", common.body(0, 5))
    assert shrunk.status_code == 409
    reasons = [
        e.event["reason"]
        for e in world.node("gamma").audit.events(EventFilter(name="witness-refusal")).entries
    ]
    assert any(r.startswith("rollback") for r in reasons)


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("unknown origin", 404),
        ("signed by another key", 403),
        ("old size above the size", 400),
        ("not a checkpoint", 400),
        ("proof lines with old size zero", 400),
        ("proof does not verify", 422),
        ("stale old size", 409),
    ],
)
def test_add_checkpoint_refusals(forked: World, case: str, status: int) -> None:
    world = forked
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if _state(world) is None:  # give beta a checkpoint of alpha's to compare against
        assert _post(world, "beta", Forger(world, [b"x"]).body(0)).status_code == 200
    old = _state(world)["size"]  # type: ignore[index]
    log = Forger(world, [b"%d" % i for i in range(old + 10)])  # another log than the one seen
    junk = base64.b64encode(b"x" * 32).decode()
    body = {
        "unknown origin": log.body(0).replace(ORIGIN.encode() + b"\n", b"elsewhere/log\n", 1),
        "signed by another key": (
            f"old {old}\n\n" + str(log.note(key=Ed25519PrivateKey.generate()))
        ).encode(),
        "old size above the size": log.body(0).replace(b"old 0", b"old %d" % (old + 11), 1),
        "not a checkpoint": b"old 0\n\nhello\n",
        "proof lines with old size zero": f"old 0\n{junk}\n\n{log.note()}".encode(),
        "proof does not verify": f"old {old}\n{junk}\n\n{log.note()}".encode(),
        "stale old size": log.body(old + 1),
    }[case]
    answer = _post(world, "beta", body)
    assert answer.status_code == status, answer.text
    assert _state(world)["size"] == old  # type: ignore[index]  # nothing was recorded


def _state(world: World) -> dict | None:
    return httpx.get(world.url("beta") + "/audit/witness").json()["logs"][ORIGIN]  # type: ignore[no-any-return]


def test_report_follows_a_dataset_across_the_federation(world: World) -> None:
    from gateway.client import Client

    with Client(world.url("alpha"), token=world.token("alpha"), progress=False) as ana:
        ana.dataset("beta/gaps").pull(columns=["sample_id"], purpose="research")
    reports = {}
    for node in ("alpha", "beta"):
        answer = httpx.get(
            world.url(node) + "/audit/report",
            params={"dataset": "beta/gaps"},
            headers=world.headers(node, roles=("auditor",)),
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
        reports[node] = answer.json()

    def names(report: dict) -> set[str]:
        return {json.loads(split_entry(e["body"].encode())[2])["name"] for e in report["entries"]}

    assert "relay" in names(reports["alpha"])  # the home node relayed it
    owner = [json.loads(split_entry(e["body"].encode())[2]) for e in reports["beta"]["entries"]]
    assert any(e["principal"] == "alpha:ana" and e["name"] == "decision" for e in owner)
    keys = _witness_keys(world)
    for node, report in reports.items():
        witnesses = [keys[w] for w in keys if w != node]
        trust = Trust.of(jwks=world.keys[node].jwks(), witnesses=witnesses, required=2)
        result = verify_report(report, trust)
        assert result.ok, result.problems  # each proven against a checkpoint both peers cosigned
    denied = httpx.get(
        world.url("beta") + "/audit/report",
        params={"dataset": "beta/gaps"},
        headers=world.headers("beta"),
    )
    assert denied.status_code == 403
    bad = httpx.get(
        world.url("beta") + "/audit/report",
        params={"dataset": "beta/gaps", "since": "2030-01-01T00:00:00Z", "until": "2020-01-01"},
        headers=world.headers("beta", roles=("auditor",)),
    )
    assert bad.status_code == 400


def test_background_loop_gets_each_new_checkpoint_witnessed(world: World) -> None:
    from audit.events import DatasetRegistered
    from gateway.app import _checkpoints

    beta = world.node("beta")
    beta.audit.append(DatasetRegistered(dataset="beta/loop-check"))
    beta.settings.audit_checkpoint_seconds = 0.2

    async def run_briefly() -> None:
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_checkpoints(beta), 2.0)
        finally:
            await beta.peers.aclose()

    try:
        asyncio.run(run_briefly())
    finally:
        beta.settings.audit_checkpoint_seconds = 3600
    latest = beta.audit.latest_checkpoint()
    assert latest is not None and latest.size == beta.audit.size()
    names = {s.name for s in beta.notary.cosignatures(latest)}
    assert names == {"matgate/alpha/witness", "matgate/gamma/witness"}


def test_oversized_submission_is_refused_before_it_is_read(forked: World) -> None:
    answer = _post(forked, "beta", b"old 0\n" + b"A" * 200_000)
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/problem+json")
