"""This node as a witness of its peers' audit logs (c2sp.org/tlog-witness ``add-checkpoint``).

A peer log posts ``old <size>``, a consistency proof, a blank line and its checkpoint note. The
witness checks the note against the peer's key, checks the proof from the last checkpoint it
cosigned for that origin, and only then records the new one and answers with a cosignature/v1
line. Checking and recording are one compare-and-swap on ``audit_witnessed``, so replicas of the
witness cannot roll a log back between them. A checkpoint that contradicts the recorded one (two
roots for one size, a shrinking log, a proof that does not verify) is refused, recorded in this
node's audit log, counted and logged as an error: it is evidence that the peer forks its log.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from audit.errors import AuditError
from audit.events import CheckpointRefused
from audit.log import AuditLog
from audit.merkle import verify_consistency
from audit.notes import COSIGNATURE, ED25519, Note, NoteKey, cosign, parse_checkpoint, parse_note
from audit.store import witnessed

__all__ = ["Answer", "Submission", "Witness", "parse_submission"]

log = logging.getLogger("matgate.witness")
SIZE_MEDIA = "text/x.tlog.size"
MAX_PROOF = 63
MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer of the witness: status, body and media type (as the protocol fixes them)."""

    status: int
    body: str
    media_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Submission:
    """A parsed ``add-checkpoint`` request."""

    old: int
    proof: tuple[bytes, ...]
    note: Note
    origin: str
    size: int
    root: bytes


def parse_submission(body: bytes) -> Submission:
    """Parse an ``add-checkpoint`` body; ``ValueError`` says what is malformed."""
    if len(body) > MAX_BODY:
        raise ValueError(f"request larger than {MAX_BODY} bytes")
    text = body.decode("utf-8")
    head, sep, rest = text.partition("\n\n")
    if not sep:
        raise ValueError("expected an old size line, proof lines, a blank line and a checkpoint")
    lines = head.split("\n")
    first = lines[0]
    digits = first.removeprefix("old ")
    if digits == first or not digits.isdigit() or (digits != "0" and digits.startswith("0")):
        raise ValueError(f"bad old size line {first[:40]!r}")
    if len(lines) - 1 > MAX_PROOF:
        raise ValueError(f"more than {MAX_PROOF} consistency proof lines")
    proof: list[bytes] = []
    for line in lines[1:]:
        try:
            digest = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"proof line is not base64: {line[:40]!r}") from exc
        if len(digest) != 32:
            raise ValueError("a proof line is not a SHA-256 hash")
        proof.append(digest)
    note = parse_note(rest)
    origin, size, root = parse_checkpoint(note.text)
    return Submission(int(digits), tuple(proof), note, origin, size, root)


class Witness:
    """Cosigns peers' checkpoints that are consistent with what it saw before."""

    def __init__(
        self,
        engine: sa.Engine,
        key: Ed25519PrivateKey,
        name: str,
        *,
        audit: AuditLog | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._engine = engine
        self._private = key
        self.name = name
        self.key = NoteKey.of(name, COSIGNATURE, key)
        self._audit = audit
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        # set by the app: called with (origin, reason) for every refused inconsistency
        self.on_alarm: Callable[[str, str], None] | None = None

    def add_checkpoint(
        self, sub: Submission, keys: Sequence[Ed25519PublicKey] | None, peer: str = ""
    ) -> Answer:
        """Check ``sub`` against the log's ``keys`` (None: unknown origin) and the last checkpoint
        cosigned for its origin; cosign it or say why not, with the protocol's status."""
        if keys is None:
            return Answer(404, f"unknown log origin {sub.origin!r}\n")
        text = sub.note.text.encode()
        signed = any(
            NoteKey(sig.name, ED25519, key).verify(text, sig) is not None
            for key in keys
            for sig in sub.note.signatures
        )
        if not signed:
            return Answer(403, "no signature of a known log key verifies\n")
        if sub.old > sub.size:
            return Answer(400, f"old size {sub.old} is larger than the checkpoint size\n")
        if sub.old == 0 and sub.proof:
            return Answer(400, "the proof must be empty when the old size is zero\n")
        with self._lock:
            return self._check_and_record(sub, peer)

    def _latest(self, origin: str) -> tuple[int, bytes] | None:
        c = witnessed.c
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(c.size, c.root).where(c.origin == origin)).first()
        return (int(row[0]), bytes.fromhex(row[1])) if row else None

    def latest(self, origin: str) -> tuple[int, str] | None:
        """The size and hex root last cosigned for ``origin``."""
        found = self._latest(origin)
        return (found[0], found[1].hex()) if found else None

    def _check_and_record(self, sub: Submission, peer: str) -> Answer:
        try:
            latest = self._latest(sub.origin)
        except SQLAlchemyError:
            return Answer(503, "witness state unavailable\n")
        size, root = latest if latest else (0, b"")
        if latest and sub.size < size:
            self._alarm(sub, peer, "rollback", f"size {sub.size} is below the cosigned {size}")
        elif latest and sub.size == size and sub.root != root:
            self._alarm(sub, peer, "fork", f"two roots for size {size}: {root.hex()}")
            return Answer(409, f"{size}\n", SIZE_MEDIA)
        if sub.old != size:
            return Answer(409, f"{size}\n", SIZE_MEDIA)
        if sub.old and not verify_consistency(sub.old, sub.size, root, sub.root, sub.proof):
            self._alarm(sub, peer, "inconsistent", f"no consistency from size {sub.old}")
            return Answer(422, "the consistency proof does not verify\n")
        if not self._record(sub, latest):
            fresh = self._latest(sub.origin)
            return Answer(409, f"{fresh[0] if fresh else 0}\n", SIZE_MEDIA)
        stamp = int(self._clock().timestamp())
        return Answer(200, cosign(sub.note.text, self.name, self._private, stamp).line())

    def _record(self, sub: Submission, latest: tuple[int, bytes] | None) -> bool:
        """Compare-and-swap the latest checkpoint of the origin; False if another writer won."""
        row = {
            "size": sub.size,
            "root": sub.root.hex(),
            "note": str(sub.note),
            "time": self._clock().isoformat(),
        }
        c = witnessed.c
        try:
            with self._engine.begin() as conn:
                if latest is None:
                    conn.execute(witnessed.insert(), [{"origin": sub.origin, **row}])
                    return True
                result = conn.execute(
                    witnessed.update()
                    .where(c.origin == sub.origin, c.size == latest[0], c.root == latest[1].hex())
                    .values(**row)
                )
                return result.rowcount == 1
        except IntegrityError:
            return False

    def _alarm(self, sub: Submission, peer: str, reason: str, detail: str) -> None:
        log.error(
            "witness refused checkpoint of %s at size %d: %s (%s)",
            sub.origin,
            sub.size,
            reason,
            detail,
            extra={"fields": {"origin": sub.origin, "reason": reason, "size": sub.size}},
        )
        if self.on_alarm is not None:
            self.on_alarm(sub.origin, reason)
        if self._audit is not None:
            event = CheckpointRefused(
                institution=peer,
                origin=sub.origin,
                size=sub.size,
                root=sub.root.hex(),
                old_size=sub.old,
                reason=f"{reason}: {detail}",
                note=str(sub.note),
            )
            try:
                self._audit.append(event)
            except AuditError:
                log.exception("the refusal could not be recorded in the audit log")
