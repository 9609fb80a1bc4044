"""Verification of a log and of its exported copy: the tamper table, and what trust means."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import sqlalchemy as sa
from audit_samples import decision

from audit.bundle import Bundle, read_bundle, verify_bundle, verify_log, write_bundle
from audit.checkpoints import Checkpoint, Notary, origin_of, sign_checkpoint
from audit.entries import encode_entry, split_entry
from audit.keys import Signer, thumbprint
from audit.log import AuditLog
from audit.merkle import MerkleTree, leaf_hash
from audit.notes import COSIGNATURE, NoteKey, cosign, parse_note
from audit.verify import Trust, verify


@dataclass
class Copy:
    """An exported log read back, with what made it."""

    log: AuditLog
    notary: Notary
    bundle: Bundle

    @property
    def trust(self) -> Trust:
        return Trust.of(jwks=self.log.jwks())


@pytest.fixture
def copy(filled: Callable[[int], AuditLog], engine: sa.Engine) -> Copy:
    """A log of 20 entries, checkpoints at 8 and 20 (the second signed at export)."""
    log = filled(8)
    log.checkpoint()
    log.append_many([decision(i) for i in range(8, 20)])
    notary = Notary(engine, log.signer, origin_of(log.node))
    out = io.BytesIO()
    assert write_bundle(log, out, notary) == 20
    return Copy(log, notary, read_bundle(io.BytesIO(out.getvalue())))


def _flip(body: bytes, at: int) -> bytes:
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]


def _rechain(entries: list[bytes], start: int) -> list[bytes]:
    """Renumber and re-link every entry from ``start`` on: the unkeyed chain recomputed."""
    prev = split_entry(entries[start])[1]
    out = entries[:start]
    for seq, body in enumerate(entries[start:], start=start):
        out.append(encode_entry(split_entry(body)[2], seq, prev))
        prev = leaf_hash(out[-1]).hex()
    return out


def _forge(copy: Copy, entries: list[bytes], signer: Signer) -> list[Checkpoint]:
    """Checkpoints of ``entries`` at every original size, signed by ``signer``."""
    tree = MerkleTree(leaf_hash(b) for b in entries)
    return [
        sign_checkpoint(signer, size=cp.size, root=tree.root(cp.size), time=cp.time, node=cp.node)
        for cp in copy.bundle.checkpoints
        if cp.size <= tree.size
    ]


def _flip_byte(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    e[5] = _flip(e[5], 30)
    return e, cps, c.trust


def _delete(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    del e[12]
    return e, cps, c.trust


def _reorder(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    e[3], e[4] = e[4], e[3]
    return e, cps, c.trust


def _insert(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    seq, prev, _ = split_entry(e[10])
    e.insert(10, encode_entry(decision(999).canonical(), seq, prev))  # claims to be entry 10
    return e, cps, c.trust


def _truncate_tail(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    return e[:15], cps, c.trust


def _drop_checkpoints(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    return e, [], c.trust


def _drop_last_checkpoint(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    return e, [cp for cp in cps if cp.size < 20], c.trust


def _edit_and_rechain(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    e[3] = encode_entry(decision(500).canonical(), 3, split_entry(e[3])[1])
    return _rechain(e, 3), cps, c.trust


def _delete_and_rechain(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    del e[12]
    return _rechain(e, 12), cps, c.trust


def _delete_rechain_drop_checkpoints(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    del e[12]
    return _rechain(e, 12), [cp for cp in cps if cp.size <= 8], c.trust


def _resign_with_header_jwks(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    # the attacker edits, re-chains, signs with a key of their own and ships its JWKS in the
    # header; the auditor pinned the node's real key fingerprint
    attacker = Signer.generate(c.log.signer.kid)
    e[3] = encode_entry(decision(500).canonical(), 3, split_entry(e[3])[1])
    e = _rechain(e, 3)
    pinned = thumbprint(c.log.signer.public_jwk())
    return e, _forge(c, e, attacker), Trust.of(pins=[pinned], offered=attacker.jwks())


def _resign_against_trusted_jwks(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    attacker = Signer.generate("attacker")
    e = _rechain([*e[:5], *e[6:]], 5)
    return e, _forge(c, e, attacker), c.trust


def _fork_one_size(c: Copy, e: list[bytes], cps: list[Checkpoint]) -> tuple:
    other = sign_checkpoint(c.log.signer, size=8, root=leaf_hash(b"x"), time="t", node="node-a")
    return e, [*cps, other], c.trust


TAMPERING = [
    ("flip a byte", _flip_byte, {("altered", 5)}, None),
    ("delete an entry", _delete, {("deleted", 12)}, None),
    ("reorder two entries", _reorder, {("reordered", 3)}, None),
    ("insert an entry", _insert, {("inserted", 10)}, None),
    ("truncate the tail", _truncate_tail, {("truncated", 15)}, 20),
    ("drop every checkpoint", _drop_checkpoints, {("uncovered", 0)}, None),
    ("drop the last checkpoint", _drop_last_checkpoint, {("uncovered", 8)}, None),
    ("edit, recompute the chain", _edit_and_rechain, {("root-mismatch", 7)}, 8),
    ("delete, recompute the chain", _delete_and_rechain, {("truncated", 19)}, 20),
    (
        "delete, recompute the chain, drop checkpoints",
        _delete_rechain_drop_checkpoints,
        {("uncovered", 8)},
        None,
    ),
    ("re-sign, JWKS in the header", _resign_with_header_jwks, {("unknown-key", None)}, 8),
    ("re-sign, trusted JWKS", _resign_against_trusted_jwks, {("unknown-key", None)}, 8),
    ("two roots for one size", _fork_one_size, {("fork", None)}, 8),
]


@pytest.mark.parametrize(
    ("tamper", "expected", "checkpoint"),
    [pytest.param(t, e, c, id=name) for name, t, e, c in TAMPERING],
)
def test_tampering_is_detected_and_named(
    copy: Copy, tamper: Callable[..., tuple], expected: set, checkpoint: int | None
) -> None:
    entries, checkpoints, trust = tamper(copy, list(copy.bundle.entries), copy.bundle.checkpoints)
    report = verify(entries, checkpoints, trust)
    assert not report.ok and report.status == "failed"
    assert expected <= report.kinds(), report.problems
    if checkpoint is not None:
        assert checkpoint in {p.checkpoint for p in report.problems}


def test_untouched_copy_verifies_and_says_what_was_proven(copy: Copy) -> None:
    report = verify(copy.bundle.entries, copy.bundle.checkpoints, copy.trust)
    assert report.ok and report.status == "verified", report.problems
    out = report.to_dict()
    assert out["entries"] == 20 and out["verified_size"] == 20
    assert out["root"] == copy.log.root().hex() and out["signer"] == copy.log.signer.kid
    assert "20 entries proven" in out["summary"]


def test_pinned_fingerprint_accepts_the_offered_key_only_if_it_matches(copy: Copy) -> None:
    pinned = thumbprint(copy.log.signer.public_jwk())
    trust = Trust.of(pins=[pinned], offered=copy.bundle.jwks)
    assert verify(copy.bundle.entries, copy.bundle.checkpoints, trust).ok
    vkey = Trust.of(pins=[copy.notary.key.vkey()])  # the C2SP vkey holds the key itself
    assert verify(copy.bundle.entries, copy.bundle.checkpoints, vkey).ok


def test_without_a_trust_root_authenticity_is_not_claimed(copy: Copy, tmp_path) -> None:
    report = verify(copy.bundle.entries, copy.bundle.checkpoints, None)
    assert report.status == "unauthenticated" and not report.ok
    assert "NOT checked" in report.summary()
    path = tmp_path / "copy.jsonl"
    with path.open("wb") as fp:
        write_bundle(copy.log, fp)
    assert verify_bundle(path).status == "unauthenticated"  # the header's JWKS is not trusted
    assert verify_bundle(path, copy.log.jwks()).ok


def test_fresh_empty_log_exports_a_covering_checkpoint(log: AuditLog) -> None:
    out = io.BytesIO()
    assert write_bundle(log, out) == 0
    bundle = read_bundle(io.BytesIO(out.getvalue()))
    assert [cp.size for cp in bundle.checkpoints] == [0]
    assert verify(bundle.entries, bundle.checkpoints, log.jwks()).ok
    assert verify(bundle.entries, [], log.jwks()).kinds() == {("uncovered", None)}


def test_witness_quorum(copy: Copy) -> None:
    witnesses = [Signer.generate(f"w{i}") for i in range(3)]
    keys = [NoteKey.of(f"w{i}.example/w", COSIGNATURE, w.key) for i, w in enumerate(witnesses)]
    head = copy.bundle.checkpoints[-1]
    note = parse_note(head.note)
    cosigned = note.with_signatures(
        cosign(note.text, k.name, w.key, 1_700_000_000)
        for k, w in zip(keys[:2], witnesses[:2], strict=True)
    )
    cps = [*copy.bundle.checkpoints[:-1], replace(head, note=str(cosigned))]
    trust = Trust.of(jwks=copy.log.jwks(), witnesses=keys, required=2)
    report = verify(copy.bundle.entries, cps, trust)
    assert report.ok and report.cosigners == sorted(k.name for k in keys[:2])
    three = Trust.of(jwks=copy.log.jwks(), witnesses=keys, required=3)
    report = verify(copy.bundle.entries, cps, three)
    assert report.kinds() == {("witnesses", None)} and report.problems[0].checkpoint == 20
    # a cosignature over another root does not count
    forged = cosign(note.text.replace("20\n", "21\n"), keys[2].name, witnesses[2].key, 1)
    cps[-1] = replace(head, note=str(cosigned.with_signatures([forged])))
    assert not verify(copy.bundle.entries, cps, three).ok


def test_tampered_database_rows_are_found(log: AuditLog, engine: sa.Engine) -> None:
    log.append_many([decision(i) for i in range(10)])
    log.checkpoint()
    body = list(log.bodies())[4]
    with engine.begin() as conn:
        # an intruder with file access drops the guard first
        conn.exec_driver_sql("DROP TRIGGER audit_entries_no_update")
        conn.execute(
            sa.text("UPDATE audit_entries SET body = :b WHERE idx = 4"),
            {"b": body.replace(b'"allow"', b'"deny"')},
        )
    report = verify_log(log)
    assert ("altered", 4) in report.kinds()


def test_header_format_is_checked(copy: Copy, tmp_path) -> None:
    path = tmp_path / "log.jsonl"
    with open(path, "wb") as fp:
        write_bundle(copy.log, fp)
    lines = path.read_bytes().splitlines()
    header = json.loads(lines[0])["header"]
    assert header["node"] == "node-a" and header["size"] == 20
    assert header["origin"] == "matgate/node-a/audit"
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(lines[0].replace(b"matgate-audit/2", b"other/9") + b"\n")
    with pytest.raises(ValueError):
        verify_bundle(bad)


def test_checkpoint_dicts_and_tampered_fields(copy: Copy) -> None:
    entries, cps = copy.bundle.entries, copy.bundle.checkpoints
    assert verify(entries, [c.to_dict() for c in cps], copy.log.jwks()["keys"]).ok
    tampered = replace(cps[0], root="00" * 32, note="")
    assert ("bad-signature", None) in verify(entries, [tampered], copy.trust).kinds()
