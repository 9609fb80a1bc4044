"""The hash chain inside the entries, and the findings of a verification.

Each entry holds its ``seq`` and its predecessor's leaf hash, which pins a change to one entry:
an altered entry is no longer referenced by its successor, a deleted one leaves a gap in
``seq``, a moved one breaks the order, an inserted one duplicates a ``seq`` or links to nothing.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audit.entries import GENESIS, split_entry

__all__ = ["Problem", "chain_problems", "scan"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: ``kind`` (altered, deleted, inserted, reordered, malformed, truncated,
    root-mismatch, fork, bad-signature, unknown-key, uncovered, witnesses), the entry index and
    the checkpoint size it concerns, and why."""

    kind: str
    index: int | None
    detail: str
    checkpoint: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "kind": self.kind,
            "index": self.index,
            "checkpoint": self.checkpoint,
            "detail": self.detail,
        }


def scan(
    entries: Iterable[bytes],
) -> tuple[list[bytes], array[int] | None, list[bytes] | None, list[int]]:
    """Leaf hashes of all entries, and (only when the chain is not intact) each entry's seq and
    prev. The intact case is one hash and one ``endswith`` per entry: an entry is in place when
    it ends with the chain suffix its position predicts."""
    sha256 = hashlib.sha256
    hashes: list[bytes] = []
    append = hashes.append
    prev = GENESIS.encode()
    iterator = iter(entries)
    # the head of an entry is not checked here: a wrong one changes the leaf hash, which the
    # signed roots catch; this loop only decides whether the chain needs a closer look
    for position, body in enumerate(iterator):
        digest = sha256(b"\x00" + body).digest()
        append(digest)
        if not body.endswith(b',"prev":"%s","seq":%d}' % (prev, position)):
            break
        prev = digest.hex().encode()
    else:
        return hashes, None, None, []
    # a link is broken: keep every entry's seq and prev from here on for the diagnosis
    m = len(hashes) - 1
    seqs = array("q", range(m))
    prevs = [GENESIS.encode()] + [h.hex().encode() for h in hashes[: m - 1]] if m else []
    malformed: list[int] = []

    def record(position: int, body: bytes) -> None:
        try:
            seq, prev_hex, _ = split_entry(body)
        except ValueError:
            malformed.append(position)
            seq, prev_hex = -1, GENESIS
        seqs.append(seq)
        prevs.append(prev_hex.encode("ascii"))

    record(m, body)
    for position, body in enumerate(iterator, start=m + 1):
        append(sha256(b"\x00" + body).digest())
        record(position, body)
    return hashes, seqs, prevs, malformed


def chain_problems(hashes: list[bytes], seqs: array[int], prevs: list[bytes]) -> list[Problem]:
    """Pin the broken links of the hash chain on single entries."""
    n = len(hashes)
    hexes = [h.hex().encode() for h in hashes]
    at_seq: dict[int, list[int]] = {}
    for pos, seq in enumerate(seqs):
        if seq >= 0:
            at_seq.setdefault(seq, []).append(pos)

    def referenced(pos: int) -> bool | None:
        following = at_seq.get(seqs[pos] + 1)
        if not following:
            return None  # nothing after it vouches for (or against) its bytes
        return any(prevs[q] == hexes[pos] for q in following)

    def linked_back(pos: int) -> bool | None:
        seq = seqs[pos]
        if seq == 0:
            return prevs[pos] == GENESIS.encode()
        before = at_seq.get(seq - 1)
        if not before:
            return None
        return any(prevs[pos] == hexes[q] for q in before)

    def _successor_altered(pos: int) -> bool:
        # a changed "prev" in the successor breaks both of its links: blame it, not this entry
        following = at_seq.get(seqs[pos] + 1, [])
        return bool(following) and all(referenced(q) is False for q in following)

    problems: list[Problem] = []
    inserted: set[int] = set()
    for seq, positions in at_seq.items():
        if len(positions) > 1:
            genuine = [p for p in positions if referenced(p)] or positions[:1]
            for p in positions:
                if p not in genuine[:1]:
                    inserted.add(p)
                    problems.append(
                        Problem(
                            "inserted",
                            p,
                            f"entry at position {p} repeats seq {seq} and is not "
                            f"the one the chain continues from",
                        )
                    )
        elif referenced(positions[0]) is None and linked_back(positions[0]) is None and seq != 0:
            inserted.add(positions[0])
            problems.append(
                Problem(
                    "inserted",
                    positions[0],
                    f"entry at position {positions[0]} (seq {seq}) links to no other entry",
                )
            )
    kept = [p for p in range(n) if seqs[p] >= 0 and p not in inserted]
    present = {seqs[p] for p in kept}
    top = max(present, default=-1)
    missing = [s for s in range(top + 1) if s not in present]
    for first, last in _runs(missing):
        what = f"entry {first}" if first == last else f"entries {first}..{last}"
        problems.append(Problem("deleted", first, f"{what} missing: seq jumps over it"))
    highest = -1
    for p in kept:
        seq = seqs[p]
        if seq < highest:
            problems.append(
                Problem(
                    "reordered", seq, f"entry {seq} found at position {p}, after entry {highest}"
                )
            )
        highest = max(highest, seq)
        if referenced(p) is False and not _successor_altered(p):
            back = linked_back(p)
            problems.append(
                Problem(
                    "altered",
                    seq,
                    f"entry {seq} (position {p}) no longer hashes to the value "
                    f"recorded by entry {seq + 1}"
                    + ("" if back is not False else "; its own link is broken too"),
                )
            )
        elif referenced(p) is None and linked_back(p) is False:
            problems.append(
                Problem(
                    "altered", seq, f"entry {seq} (position {p}) does not link to entry {seq - 1}"
                )
            )
    return problems


def _runs(values: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and runs[-1][1] == v - 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs
