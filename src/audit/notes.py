"""C2SP signed notes, checkpoints and cosignatures (c2sp.org/signed-note, tlog-checkpoint,
tlog-cosignature), Ed25519 only.

A checkpoint is the note text ``<origin>\\n<size>\\n<base64 root>\\n``; a note is its text, a
blank line and signature lines ``— <key name> base64(key id || signature)``. The log signs the
text with signature type 0x01; a witness cosigns with type 0x04, a ``timestamped_signature``
(u64 big-endian POSIX time || Ed25519 signature) over ``cosignature/v1\\ntime <t>\\n<text>``.
Key ids are ``SHA-256(name || 0x0A || type || public key)[:4]``. Verifier keys are written as
``<name>+<hex key id>+<base64(type || public key)>`` (the signed-note "vkey" form).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from audit.keys import verify_signature

__all__ = [
    "COSIGNATURE",
    "ED25519",
    "MAX_SIGNATURES",
    "Note",
    "NoteKey",
    "NoteSignature",
    "checkpoint_text",
    "cosign",
    "parse_checkpoint",
    "parse_note",
    "sign_note",
]

ED25519 = 0x01
COSIGNATURE = 0x04
MAX_SIGNATURES = 64  # the spec asks verifiers to accept at least 16
_DASH = "\u2014 "
_COSIGNED = b"cosignature/v1\ntime %d\n"


def _raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ValueError(f"bad key name {name!r}: non-empty, no spaces, no '+'")
    return name


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {text[:40]!r}") from exc


@dataclass(frozen=True, slots=True)
class NoteKey:
    """A verifier key: name, signature type (0x01 log, 0x04 cosigner) and Ed25519 public key."""

    name: str
    kind: int
    public: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        """``SHA-256(name || 0x0A || type || public key)[:4]``."""
        data = self.name.encode() + b"\n" + bytes([self.kind]) + _raw(self.public)
        return hashlib.sha256(data).digest()[:4]

    def vkey(self) -> str:
        """``<name>+<hex key id>+<base64(type || key)>``."""
        material = base64.b64encode(bytes([self.kind]) + _raw(self.public)).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def of(cls, name: str, kind: int, key: Ed25519PrivateKey | Ed25519PublicKey) -> NoteKey:
        """The verifier key of ``key`` under ``name``."""
        public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
        return cls(_check_name(name), kind, public)

    @classmethod
    def from_vkey(cls, text: str) -> NoteKey:
        """Parse a vkey, checking that its key id matches its name and key."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError(f"not a verifier key (name+id+key): {text[:60]!r}")
        name, hex_id, material = parts
        raw = _b64decode(material)
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE):
            raise ValueError(f"verifier key {name!r}: not an Ed25519 (0x01) or cosigner (0x04) key")
        key = cls(_check_name(name), raw[0], Ed25519PublicKey.from_public_bytes(raw[1:]))
        if key.key_id.hex() != hex_id.lower():
            raise ValueError(f"verifier key {name!r}: key id {hex_id} does not match the key")
        return key

    def verify(self, text: bytes, signature: NoteSignature) -> int | None:
        """Whether ``signature`` is this key's over note ``text``: None if not, else the
        cosignature's timestamp (0 for a plain Ed25519 note signature)."""
        if signature.name != self.name or signature.key_id != self.key_id:
            return None
        if self.kind == ED25519:
            ok = verify_signature(self.public, signature.signature, text)
            return 0 if ok else None
        if len(signature.signature) != 72:
            return None
        (timestamp,) = struct.unpack(">Q", signature.signature[:8])
        if timestamp >= 2**63:
            return None
        message = _COSIGNED % timestamp + text
        return (
            timestamp if verify_signature(self.public, signature.signature[8:], message) else None
        )


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """``— <name> base64(key id || signature)\\n``."""
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"

    @classmethod
    def parse(cls, line: str) -> NoteSignature:
        """One line (without its newline) of a note's signature block."""
        if not line.startswith(_DASH):
            raise ValueError(f"not a signature line: {line[:60]!r}")
        name, sep, b64 = line[len(_DASH) :].partition(" ")
        if not sep:
            raise ValueError(f"signature line without a signature: {line[:60]!r}")
        raw = _b64decode(b64)
        if len(raw) < 5:
            raise ValueError("signature too short")
        return cls(_check_name(name), raw[:4], raw[4:])


@dataclass(frozen=True, slots=True)
class Note:
    """A signed note: its text (ending in a newline) and its signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __str__(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def verified_by(self, keys: Iterable[NoteKey]) -> dict[str, int]:
        """The names of ``keys`` with a valid signature on this note, and each one's timestamp."""
        text = self.text.encode()
        found: dict[str, int] = {}
        for key in keys:
            for sig in self.signatures:
                stamp = key.verify(text, sig)
                if stamp is not None:
                    found[key.name] = stamp
                    break
        return found

    def with_signatures(self, extra: Iterable[NoteSignature]) -> Note:
        """This note with ``extra`` signature lines added (duplicates dropped)."""
        out = list(self.signatures)
        for sig in extra:
            if sig not in out:
                out.append(sig)
        return Note(self.text, tuple(out))


def parse_note(data: str | bytes, *, max_signatures: int = MAX_SIGNATURES) -> Note:
    """Parse a signed note; ``ValueError`` if it is not one."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ValueError("a note must not contain control characters other than newline")
    at = text.rfind("\n\n")
    if at < 0 or not text.endswith("\n"):
        raise ValueError("a note is text, a blank line and signature lines")
    lines = text[at + 2 : -1].split("\n")
    if not lines or len(lines) > max_signatures:
        raise ValueError(f"a note needs 1 to {max_signatures} signature lines")
    return Note(text[: at + 1], tuple(NoteSignature.parse(line) for line in lines))


def sign_note(text: str, name: str, key: Ed25519PrivateKey) -> NoteSignature:
    """The Ed25519 (type 0x01) signature of note ``text`` by ``key`` under ``name``."""
    nk = NoteKey.of(name, ED25519, key)
    return NoteSignature(nk.name, nk.key_id, key.sign(text.encode()))


def cosign(text: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> NoteSignature:
    """A cosignature/v1 (type 0x04) of checkpoint ``text`` at POSIX ``timestamp``."""
    nk = NoteKey.of(name, COSIGNATURE, key)
    signature = key.sign(_COSIGNED % timestamp + text.encode())
    return NoteSignature(nk.name, nk.key_id, struct.pack(">Q", timestamp) + signature)


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    """The note text of a checkpoint: origin, size and the base64 root hash."""
    if not origin or "\n" in origin:
        raise ValueError("a checkpoint origin is one non-empty line")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """``(origin, size, root)`` of checkpoint note text; ``ValueError`` if malformed."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        raise ValueError("a checkpoint is at least three non-empty lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or (size != "0" and size.startswith("0")) or not size.isascii():
        raise ValueError(f"bad tree size line {size[:30]!r}")
    digest = _b64decode(root)
    if len(digest) != 32:
        raise ValueError("the root hash line is not a base64 SHA-256 hash")
    return origin, int(size), digest
