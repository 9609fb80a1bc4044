"""Verification of a log and of its exported copy: one test per kind of tampering."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace

import pytest
import sqlalchemy as sa
from audit_samples import decision

from audit.bundle import read_bundle, verify_bundle, verify_log, write_bundle
from audit.checkpoints import sign_checkpoint
from audit.entries import encode_entry, split_entry
from audit.keys import Signer
from audit.log import AuditLog
from audit.merkle import leaf_hash
from audit.verify import verify


@pytest.fixture
def copy(filled: Callable[[int], AuditLog]) -> tuple[AuditLog, list[bytes], list, dict]:
    """A log of 20 entries, checkpoints at 8 and 20, exported and read back."""
    log = filled(8)
    log.checkpoint()
    log.append_many([decision(i) for i in range(8, 20)])
    log.checkpoint()
    out = io.BytesIO()
    assert write_bundle(log, out) == 20
    bundle = read_bundle(io.BytesIO(out.getvalue()))
    return log, bundle.entries, bundle.checkpoints, log.jwks()


def _flip(body: bytes, at: int) -> bytes:
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]


def test_untouched_log_and_copy_verify(copy: tuple) -> None:
    log, entries, checkpoints, jwks = copy
    report = verify(entries, checkpoints, jwks)
    assert report.ok and report.size == 20 and report.verified_size == 20
    assert report.root == log.root().hex()
    assert verify_log(log).ok


def test_flipped_byte_names_the_entry(copy: tuple) -> None:
    _, entries, checkpoints, jwks = copy
    entries[5] = _flip(entries[5], 30)  # inside the event
    report = verify(entries, checkpoints, jwks)
    assert ("altered", 5) in report.kinds()
    assert {p.kind for p in report.problems} == {"altered", "root-mismatch"}


def test_flipped_byte_in_the_chain_field_names_the_entry(copy: tuple) -> None:
    _, entries, checkpoints, jwks = copy
    at = entries[9].rfind(b'"prev":"') + 10
    entries[9] = (
        entries[9][:at] + (b"0" if entries[9][at : at + 1] != b"0" else b"1") + entries[9][at + 1 :]
    )
    report = verify(entries, checkpoints, jwks)
    assert [p.index for p in report.problems if p.kind == "altered"] == [9]


def test_flipped_byte_in_the_last_entry_is_caught_by_the_checkpoint(copy: tuple) -> None:
    _, entries, checkpoints, jwks = copy
    entries[19] = _flip(entries[19], 40)
    report = verify(entries, checkpoints, jwks)
    assert report.kinds() == {("root-mismatch", 19)}


def test_deleted_event(copy: tuple) -> None:
    _, entries, checkpoints, jwks = copy
    del entries[12]
    report = verify(entries, checkpoints, jwks)
    assert ("deleted", 12) in report.kinds()
    assert not {"altered", "inserted", "reordered"} & {p.kind for p in report.problems}


def test_reordered_events(copy: tuple) -> None:
    _, entries, checkpoints, jwks = copy
    entries[3], entries[4] = entries[4], entries[3]
    report = verify(entries, checkpoints, jwks)
    assert ("reordered", 3) in report.kinds()
    assert not {"altered", "inserted", "deleted"} & {p.kind for p in report.problems}


def test_inserted_event_with_a_forged_link(copy: tuple) -> None:
    _, entries, checkpoints, jwks = copy
    seq, prev, _ = split_entry(entries[10])
    forged = encode_entry(decision(999).canonical(), seq, prev)  # claims to be entry 10
    entries.insert(10, forged)
    report = verify(entries, checkpoints, jwks)
    assert ("inserted", 10) in report.kinds()
    assert not {"altered", "deleted", "reordered"} & {p.kind for p in report.problems}


def test_inserted_garbage_line(copy: tuple) -> None:
    _, entries, checkpoints, jwks = copy
    entries.insert(2, b'{"not":"an entry"}')
    report = verify(entries, checkpoints, jwks)
    assert ("malformed", 2) in report.kinds()


def test_truncated_log(copy: tuple) -> None:
    _, entries, checkpoints, jwks = copy
    report = verify(entries[:15], checkpoints, jwks)
    assert ("truncated", 15) in report.kinds()
    assert "entries 15..19 are missing" in report.problems[0].detail


def test_checkpoint_signed_by_the_wrong_key(copy: tuple) -> None:
    log, entries, checkpoints, jwks = copy
    intruder = Signer(Signer.generate("x").key, checkpoints[-1].kid)  # same kid, other key
    forged = sign_checkpoint(intruder, size=20, root=log.root(), time="t", node="node-a")
    report = verify(entries, [*checkpoints, forged], jwks)
    assert [p.kind for p in report.problems] == ["bad-signature"]
    stranger = sign_checkpoint(
        Signer.generate("other"), size=20, root=log.root(), time="t", node="node-a"
    )
    assert [p.kind for p in verify(entries, [stranger], jwks).problems] == ["unknown-key"]


def test_two_checkpoints_of_one_size_with_different_roots(copy: tuple) -> None:
    log, entries, checkpoints, jwks = copy
    other = sign_checkpoint(log.signer, size=8, root=leaf_hash(b"other"), time="t", node="node-a")
    report = verify(entries, [*checkpoints, other], jwks)
    assert "fork" in {p.kind for p in report.problems}
    assert ("root-mismatch", None) in report.kinds() or ("root-mismatch", 7) in report.kinds()


def test_consistent_rewrite_is_caught_by_the_signed_roots(copy: tuple) -> None:
    # rewrite entry 3 and re-chain everything after it: the chain is whole, the roots are not
    _, entries, checkpoints, jwks = copy
    prev = split_entry(entries[3])[1]
    rewritten = entries[:3]
    for seq in range(3, 20):
        event = decision(500 + seq).canonical() if seq == 3 else split_entry(entries[seq])[2]
        body = encode_entry(event, seq, prev)
        rewritten.append(body)
        prev = leaf_hash(body).hex()
    report = verify(rewritten, checkpoints, jwks)
    assert {p.kind for p in report.problems} == {"root-mismatch"}
    assert "entries 0..7" in report.problems[0].detail


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


def test_bundle_file_round_trip_and_header_check(copy: tuple, tmp_path) -> None:
    log, *_ = copy
    path = tmp_path / "log.jsonl"
    with open(path, "wb") as fp:
        write_bundle(log, fp)
    assert verify_bundle(path).ok
    assert verify_bundle(str(path), jwks=log.jwks()).ok
    lines = path.read_bytes().splitlines()
    header = json.loads(lines[0])["header"]
    assert header["node"] == "node-a" and header["size"] == 20
    assert not verify_bundle(path, jwks=Signer.generate(log.signer.kid).jwks()).ok
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(lines[0].replace(b"matgate-audit/1", b"other/9") + b"\n")
    with pytest.raises(ValueError):
        verify_bundle(bad)


def test_checkpoint_dicts_are_accepted(copy: tuple) -> None:
    _, entries, checkpoints, jwks = copy
    assert verify(entries, [c.to_dict() for c in checkpoints], jwks["keys"]).ok
    tampered = replace(checkpoints[0], root="00" * 32)
    assert ("bad-signature", None) in verify(entries, [tampered], jwks).kinds()
