"""Signed tree heads: ``(size, root)`` of the log at a time, signed with the node's key.

A checkpoint has two signed forms: the JSON one the log stores (an Ed25519 signature over its
canonical JSON) and the C2SP ``tlog-checkpoint`` note (``origin``, size, base64 root) signed by
the same key, which witnesses cosign. ``Notary`` renders a stored checkpoint as its note (Ed25519
is deterministic, so the note of one tree head is always the same bytes) with every cosignature
witnesses returned for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from audit.canonical import canonical_json
from audit.errors import AuditUnavailable
from audit.keys import Signer, b64url, b64url_decode, verify_signature
from audit.notes import ED25519, Note, NoteKey, NoteSignature, checkpoint_text, sign_note
from audit.store import cosignatures

__all__ = ["Checkpoint", "Notary", "origin_of", "sign_checkpoint"]


def origin_of(node: str) -> str:
    """The C2SP origin line of a node's audit log (also its note key name)."""
    return f"matgate/{node}/audit"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head; ``root`` is hex, ``signature`` base64url over ``signed_bytes()``;
    ``note`` the C2SP signed note of the same head with its cosignatures, when known."""

    size: int
    root: str
    time: str
    node: str
    kid: str
    signature: str
    note: str = field(default="", compare=False)

    def signed_bytes(self) -> bytes:
        """The canonical JSON the signature covers (every field but the signature)."""
        return canonical_json(
            {
                "kid": self.kid,
                "node": self.node,
                "root": self.root,
                "size": self.size,
                "time": self.time,
            }
        )

    def verify(self, key: Ed25519PublicKey) -> bool:
        """Whether the signature is ``key``'s."""
        try:
            signature = b64url_decode(self.signature)
        except ValueError:
            return False
        return verify_signature(key, signature, self.signed_bytes())

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what ``GET /audit/checkpoint`` returns); ``note`` only when known."""
        out: dict[str, Any] = {
            "size": self.size,
            "root": self.root,
            "time": self.time,
            "node": self.node,
            "kid": self.kid,
            "signature": self.signature,
        }
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Rebuild from ``to_dict()`` output."""
        return cls(
            size=int(data["size"]),
            root=str(data["root"]),
            time=str(data["time"]),
            node=str(data["node"]),
            kid=str(data["kid"]),
            signature=str(data["signature"]),
            note=str(data.get("note") or ""),
        )


def sign_checkpoint(signer: Signer, *, size: int, root: bytes, time: str, node: str) -> Checkpoint:
    """A checkpoint of ``(size, root)`` signed by ``signer``."""
    unsigned = Checkpoint(size, root.hex(), time, node, signer.kid, "")
    signature = b64url(signer.sign(unsigned.signed_bytes()))
    return Checkpoint(size, root.hex(), time, node, signer.kid, signature)


class Notary:
    """A log's checkpoints as C2SP notes, and the cosignatures witnesses gave them."""

    def __init__(self, engine: sa.Engine, signer: Signer, origin: str) -> None:
        self._engine = engine
        self._signer = signer
        self.origin = origin

    @property
    def key(self) -> NoteKey:
        """The log's verifier key (type 0x01, named after the origin)."""
        return NoteKey.of(self.origin, ED25519, self._signer.key)

    def text(self, cp: Checkpoint) -> str:
        """The checkpoint note text of ``cp``."""
        return checkpoint_text(self.origin, cp.size, bytes.fromhex(cp.root))

    def signed(self, cp: Checkpoint) -> Note:
        """The note of ``cp`` signed by the log key only."""
        text = self.text(cp)
        return Note(text, (sign_note(text, self.origin, self._signer.key),))

    def note(self, cp: Checkpoint) -> Note:
        """The note of ``cp`` with the log signature and every stored cosignature."""
        return self.signed(cp).with_signatures(self.cosignatures(cp))

    def attach(self, cp: Checkpoint) -> Checkpoint:
        """``cp`` with its note (and cosignatures) filled in."""
        return replace(cp, note=str(self.note(cp)))

    def cosignatures(self, cp: Checkpoint) -> list[NoteSignature]:
        """The cosignature lines stored for ``cp``'s size and root."""
        c = cosignatures.c
        query = sa.select(c.line).where(c.size == cp.size, c.root == cp.root).order_by(c.id)
        try:
            with self._engine.connect() as conn:
                lines = [row[0] for row in conn.execute(query)]
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"cosignatures unreadable: {exc.__class__.__name__}") from exc
        return [NoteSignature.parse(line.rstrip("\n")) for line in lines]

    def add_cosignatures(self, cp: Checkpoint, sigs: Iterable[NoteSignature], time: str) -> int:
        """Store cosignatures of ``cp`` (one per witness name); returns how many were new."""
        added = 0
        for sig in sigs:
            row = {
                "size": cp.size,
                "root": cp.root,
                "witness": sig.name,
                "line": sig.line(),
                "time": time,
            }
            try:
                with self._engine.begin() as conn:
                    conn.execute(cosignatures.insert(), [row])
                added += 1
            except IntegrityError:
                continue  # this witness's cosignature is already stored
            except SQLAlchemyError as exc:
                raise AuditUnavailable(f"cosignature not stored: {exc.__class__.__name__}") from exc
        return added
