"""RFC 6962 Merkle trees: hashes, tree heads, inclusion and consistency proofs, and checks.

``MerkleTree`` keeps every complete interior node (one flat ``bytearray`` per level, 32 bytes a
node), so a root or a proof at any size costs O(log n) lookups and a few hashes, never a rehash of
the leaves. The verification functions follow RFC 9162 sections 2.1.3.2 and 2.1.4.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from audit.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "MerkleTree",
    "RootAccumulator",
    "leaf_hash",
    "node_hash",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]

_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()
_HASH = 32


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only tree of leaf hashes with all complete subtree hashes kept."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0]) // _HASH

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash, completing the interior nodes it closes."""
        levels = self._levels
        levels[0] += leaf
        level, count = 0, len(levels[0]) // _HASH
        while count % 2 == 0:
            row = levels[level]
            parent = node_hash(row[-2 * _HASH : -_HASH], row[-_HASH:])
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += parent
            count = len(levels[level]) // _HASH

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add leaf hashes in order, completing interior nodes level by level."""
        levels = self._levels
        levels[0] += b"".join(leaves)
        level = 0
        while (pairs := len(levels[level]) // (2 * _HASH)) > 0:
            if level + 1 == len(levels):
                levels.append(bytearray())
            row, up = levels[level], levels[level + 1]
            parents = [
                _sha256(b"\x01" + row[at : at + 2 * _HASH]).digest()
                for at in range(len(up) * 2, pairs * 2 * _HASH, 2 * _HASH)
            ]
            up += b"".join(parents)
            level += 1

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        if not 0 <= index < self.size:
            raise ProofError(f"no leaf {index} in a tree of size {self.size}")
        return bytes(self._levels[0][index * _HASH : (index + 1) * _HASH])

    def _subtree(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            at = (lo >> level) * _HASH
            return bytes(self._levels[level][at : at + _HASH])
        k = _split(n)
        return node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """The tree head at ``size`` (default: the whole tree)."""
        size = self.size if size is None else size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 6962 2.1.1)."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ProofError(f"leaf {index} is not in a tree of size {size}")
        proof: list[bytes] = []
        lo, hi = 0, size
        # walk down from the root, collecting siblings; RFC order is leaf-to-root, so reverse
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                proof.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._subtree(lo, lo + k))
                lo += k
        proof.reverse()
        return proof

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """Proof that the first ``first`` leaves are a prefix of ``second`` (RFC 6962 2.1.2)."""
        second = self.size if second is None else second
        self._check_size(second)
        if not 0 <= first <= second:
            raise ProofError(f"no consistency proof from {first} to {second}")
        if first in (0, second):
            return []
        proof: list[bytes] = []
        lo, hi, m, whole = 0, second, first, True
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                proof.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._subtree(lo, lo + k))
                lo, m, whole = lo + k, m - k, False
        if not whole:
            proof.append(self._subtree(lo, hi))
        proof.reverse()
        return proof

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ProofError(f"size {size} is outside the log (size {self.size})")


class RootAccumulator:
    """Roots of every prefix of a leaf stream in one pass (a compact range of perfect subtrees)."""

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self.size = 0

    def add(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        stack = self._stack
        stack.append(leaf)
        self.size += 1
        n = self.size
        while n & 1 == 0:
            right = stack.pop()
            stack[-1] = node_hash(stack[-1], right)
            n >>= 1

    def root(self) -> bytes:
        """The tree head of the leaves added so far."""
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            acc = node_hash(left, acc)
        return acc


def root_from_leaves(leaves: Iterable[bytes]) -> bytes:
    """The tree head of raw leaf inputs (hashing each as a leaf)."""
    acc = RootAccumulator()
    for data in leaves:
        acc.add(leaf_hash(data))
    return acc.root()


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``(size, root)``."""
    if not 0 <= index < size or len(leaf) != _HASH:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != _HASH:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree ``(first, first_root)`` is a prefix of the second."""
    if first < 0 or first > second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof or any(len(p) != _HASH for p in proof):
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
