"""The witness's record of a log is one compare-and-swap: replicas on one database cannot roll
a log back between them (c2sp.org/tlog-witness asks check and persist to be atomic)."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.merkle import MerkleTree, leaf_hash
from audit.notes import COSIGNATURE, Note, NoteKey, checkpoint_text, parse_note, sign_note
from audit.store import create_tables
from gateway.witness import Witness, parse_submission

ORIGIN = "matgate/alpha/audit"


def _body(key: Ed25519PrivateKey, tree: MerkleTree, old: int, size: int) -> bytes:
    text = checkpoint_text(ORIGIN, size, tree.root(size))
    note = Note(text, (sign_note(text, ORIGIN, key),))
    proof = tree.consistency_proof(old, size) if old else []
    lines = [f"old {old}"] + [base64.b64encode(p).decode() for p in proof]
    return ("\n".join(lines) + "\n\n" + str(note)).encode()


def test_replicas_share_one_record_and_cannot_roll_back(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    create_tables(engine)
    key = Ed25519PrivateKey.generate()
    witness_key = Ed25519PrivateKey.generate()
    replicas = [Witness(engine, witness_key, "w.example/w") for _ in range(2)]
    tree = MerkleTree(leaf_hash(b"%d" % i) for i in range(20))
    log_keys = [key.public_key()]
    # the log asks both replicas at once from size 0: exactly one records, the other is told
    # the size now recorded
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def ask(replica: Witness, size: int) -> None:
        sub = parse_submission(_body(key, tree, 0, size))
        barrier.wait()
        answers.append(replica.add_checkpoint(sub, log_keys).status)

    threads = [
        threading.Thread(target=ask, args=(r, s)) for r, s in zip(replicas, (10, 5), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 409]
    recorded = replicas[0].latest(ORIGIN)
    assert recorded is not None and recorded[0] in (5, 10)
    assert replicas[1].latest(ORIGIN) == recorded
    # moving on from the recorded size works on either replica; going back works on neither
    size = recorded[0]
    ahead = replicas[1].add_checkpoint(parse_submission(_body(key, tree, size, 15)), log_keys)
    assert ahead.status == 200
    cosig = parse_note(str(Note(checkpoint_text(ORIGIN, 15, tree.root(15)), ())) + ahead.body)
    assert cosig.verified_by([NoteKey.of("w.example/w", COSIGNATURE, witness_key)])
    for replica in replicas:
        back = replica.add_checkpoint(parse_submission(_body(key, tree, size, size)), log_keys)
        assert back.status == 409 and back.body == "15\n"
    assert replicas[0].latest(ORIGIN)[0] == 15  # type: ignore[index]
    engine.dispose()
