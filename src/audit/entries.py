"""The stored form of a log entry: the leaf data that the Merkle tree and the hash chain cover.

An entry is canonical JSON ``{"event": {...}, "prev": "<hex>", "seq": n}``: the event, the leaf
hash of the entry before it (zeros for the first) and its own position. ``seq`` and ``prev`` are
inside the hashed bytes, so a deleted, inserted, reordered or altered entry shows up exactly where
it happened, not only as a wrong root at the next checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["GENESIS", "AuditEntry", "encode_entry", "split_entry"]

GENESIS = "0" * 64
_HEAD = b'{"event":'
_PREV = b',"prev":"'
_SEQ = b'","seq":'


def encode_entry(event_json: bytes, seq: int, prev: str) -> bytes:
    """The canonical entry bytes around an event's canonical JSON (keys already in order)."""
    return b"".join((_HEAD, event_json, _PREV, prev.encode("ascii"), _SEQ, str(seq).encode(), b"}"))


def split_entry(body: bytes) -> tuple[int, str, bytes]:
    """``(seq, prev, event_json)`` of entry bytes, without parsing the event; ``ValueError`` if
    the bytes do not have the entry's shape."""
    # the top-level "prev" is the last one: a nested key would be inside the event, before it
    at = body.rfind(_PREV)
    if not body.startswith(_HEAD) or at < 0 or body[-1:] != b"}":
        raise ValueError("not an audit entry")
    prev = body[at + 9 : at + 73]
    digits = body[at + 81 : -1]
    if body[at + 73 : at + 81] != _SEQ or not digits.isdigit() or len(prev) != 64:
        raise ValueError("not an audit entry")
    return int(digits), prev.decode("ascii"), body[9:at]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored entry: its index, leaf hash and the event as a dict."""

    index: int
    leaf_hash: str
    prev: str
    event: dict[str, Any]

    @classmethod
    def from_body(cls, index: int, body: bytes, leaf_hash: bytes) -> AuditEntry:
        """Decode stored entry bytes."""
        _, prev, event_json = split_entry(body)
        return cls(index, leaf_hash.hex(), prev, json.loads(event_json))

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API and JSON Lines exports."""
        return {"index": self.index, "leaf_hash": self.leaf_hash, **self.event}
