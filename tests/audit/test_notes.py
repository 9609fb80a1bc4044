"""C2SP signed notes, checkpoints and cosignatures: formats, key ids and refusals."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.notes import (
    COSIGNATURE,
    ED25519,
    Note,
    NoteKey,
    checkpoint_text,
    cosign,
    parse_checkpoint,
    parse_note,
    sign_note,
)

ROOT = hashlib.sha256(b"root").digest()


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_checkpoint_note_has_the_c2sp_shape_and_key_id() -> None:
    key = Ed25519PrivateKey.generate()
    text = checkpoint_text("example.com/log", 20852163, ROOT)
    assert text == f"example.com/log\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    sig = sign_note(text, "example.com/log", key)
    note = Note(text, (sig,))
    rendered = str(note)
    assert rendered.startswith(text + "\n\u2014 example.com/log ")
    raw = base64.b64decode(rendered.rstrip("\n").rsplit(" ", 1)[1])
    expected_id = hashlib.sha256(b"example.com/log\n\x01" + _raw(key)).digest()[:4]
    assert raw[:4] == expected_id and len(raw) == 68
    assert parse_note(rendered) == note
    assert parse_checkpoint(note.text) == ("example.com/log", 20852163, ROOT)
    vkey = NoteKey.of("example.com/log", ED25519, key)
    assert note.verified_by([vkey]) == {"example.com/log": 0}
    assert NoteKey.from_vkey(vkey.vkey()) == vkey


def test_cosignature_is_a_timestamped_signature_over_the_v1_message() -> None:
    key = Ed25519PrivateKey.generate()
    text = checkpoint_text("example.com/log", 5, ROOT)
    sig = cosign(text, "witness.example/w1", key, 1679315147)
    assert sig.key_id == hashlib.sha256(b"witness.example/w1\n\x04" + _raw(key)).digest()[:4]
    assert struct.unpack(">Q", sig.signature[:8]) == (1679315147,)
    message = b"cosignature/v1\ntime 1679315147\n" + text.encode()
    key.public_key().verify(sig.signature[8:], message)  # raises if not
    wkey = NoteKey.of("witness.example/w1", COSIGNATURE, key)
    assert Note(text, (sig,)).verified_by([wkey]) == {"witness.example/w1": 1679315147}
    other = checkpoint_text("example.com/log", 6, ROOT)
    assert Note(other, (sig,)).verified_by([wkey]) == {}


def test_a_key_of_another_name_or_type_is_ignored() -> None:
    key = Ed25519PrivateKey.generate()
    text = checkpoint_text("a.example/log", 1, ROOT)
    note = Note(text, (sign_note(text, "a.example/log", key),))
    assert note.verified_by([NoteKey.of("b.example/log", ED25519, key)]) == {}
    assert note.verified_by([NoteKey.of("a.example/log", COSIGNATURE, key)]) == {}


@pytest.mark.parametrize(
    "bad",
    [
        "no blank line\n\u2014 k AAAA\n",
        "text\n\nnot a signature line\n",
        "text\n\n\u2014 k !!notbase64\n",
        "text\x07\n\n\u2014 k AAAAAAA=\n",
        "text\n\n\u2014 k AAAAAAA=",  # no final newline
    ],
)
def test_malformed_notes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_note(bad)


@pytest.mark.parametrize(
    "text",
    ["o\n012\n" + base64.b64encode(ROOT).decode() + "\n", "o\n1\nAAAA\n", "o\n1\n", "\n1\nx\n"],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_checkpoint(text)


def test_vkey_with_a_wrong_key_id_is_refused() -> None:
    vkey = NoteKey.of("x.example/w", COSIGNATURE, Ed25519PrivateKey.generate()).vkey()
    name, _, material = vkey.split("+", 2)
    with pytest.raises(ValueError, match="key id"):
        NoteKey.from_vkey(f"{name}+00000000+{material}")
