"""Verify a log, live or exported, against its signed checkpoints and say exactly what is wrong.

Three independent witnesses: each checkpoint's Ed25519 signature (under the node's JWKS); the
Merkle root of the entries as given at every checkpointed size; and the hash chain inside the
entries (each holds its ``seq`` and its predecessor's leaf hash), which pins a change to one entry:
an altered entry is no longer referenced by its successor, a deleted one leaves a gap in ``seq``,
a moved one breaks the order, an inserted one duplicates a ``seq`` or links to nothing.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audit.checkpoints import Checkpoint
from audit.entries import GENESIS, split_entry
from audit.keys import public_keys
from audit.merkle import MerkleTree

__all__ = ["Problem", "Report", "verify"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: ``kind`` (altered, deleted, inserted, reordered, malformed, truncated,
    root-mismatch, fork, bad-signature, unknown-key), the entry index it concerns, and why."""

    kind: str
    index: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "index": self.index, "detail": self.detail}


@dataclass(slots=True)
class Report:
    """The outcome of a verification: sizes checked and every problem found."""

    size: int
    root: str
    checkpoints: int
    verified_size: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def kinds(self) -> set[tuple[str, int | None]]:
        """``(kind, index)`` of every problem, for quick checks."""
        return {(p.kind, p.index) for p in self.problems}

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the CLI and the API."""
        return {
            "ok": self.ok,
            "size": self.size,
            "root": self.root,
            "checkpoints": self.checkpoints,
            "verified_size": self.verified_size,
            "problems": [p.to_dict() for p in self.problems],
        }


def verify(
    entries: Iterable[bytes],
    checkpoints: Iterable[Checkpoint | Mapping[str, Any]],
    public_keys_: Mapping[str, Any] | Iterable[Mapping[str, Any]],
) -> Report:
    """Verify entry bytes (in stored order) against checkpoints signed by keys of a JWKS."""
    keys = public_keys(public_keys_)
    hashes, seqs, prevs, malformed = _scan(entries)
    n = len(hashes)
    tree = MerkleTree(hashes)
    problems = [
        Problem("malformed", p, f"entry at position {p} is not an audit entry") for p in malformed
    ]
    chain_ok = seqs is None
    if seqs is not None and prevs is not None:
        problems += _chain_problems(hashes, seqs, prevs)
    checked = [_parse(c) for c in checkpoints]
    problems += _checkpoint_problems(checked, keys, tree, n, chain_ok=chain_ok)
    valid = [c for c in checked if c.kid in keys and c.verify(keys[c.kid])]
    covered = max((c.size for c in valid if c.size <= n), default=0)
    return Report(n, tree.root().hex(), len(checked), covered, problems)


def _scan(
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


def _parse(cp: Checkpoint | Mapping[str, Any]) -> Checkpoint:
    return cp if isinstance(cp, Checkpoint) else Checkpoint.from_dict(cp)


def _checkpoint_problems(
    checked: list[Checkpoint], keys: Mapping[str, Any], tree: MerkleTree, n: int, *, chain_ok: bool
) -> list[Problem]:
    problems: list[Problem] = []
    roots_by_size: dict[int, set[str]] = {}
    good_sizes: list[int] = []
    for cp in checked:
        key = keys.get(cp.kid)
        if key is None:
            problems.append(
                Problem(
                    "unknown-key",
                    None,
                    f"checkpoint at size {cp.size} names unknown key {cp.kid!r}",
                )
            )
            continue
        if not cp.verify(key):
            problems.append(
                Problem(
                    "bad-signature",
                    None,
                    f"checkpoint at size {cp.size}: signature does not verify with key {cp.kid!r}",
                )
            )
            continue
        roots_by_size.setdefault(cp.size, set()).add(cp.root)
        if cp.size > n:
            problems.append(
                Problem(
                    "truncated",
                    n,
                    f"log has {n} entries but a checkpoint signed size {cp.size}: "
                    f"entries {n}..{cp.size - 1} are missing",
                )
            )
        elif tree.root(cp.size).hex() != cp.root:
            good = max((s for s in good_sizes if s < cp.size), default=0)
            suspect = cp.size - 1 if chain_ok else None
            problems.append(
                Problem(
                    "root-mismatch",
                    suspect,
                    f"entries {good}..{cp.size - 1} do not hash to the root "
                    f"signed at size {cp.size}",
                )
            )
        else:
            good_sizes.append(cp.size)
    for size, roots in sorted(roots_by_size.items()):
        if len(roots) > 1:
            problems.append(
                Problem(
                    "fork",
                    None,
                    f"{len(roots)} checkpoints of size {size} sign different "
                    f"roots: {sorted(roots)}",
                )
            )
    return problems


def _chain_problems(hashes: list[bytes], seqs: array[int], prevs: list[bytes]) -> list[Problem]:
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
