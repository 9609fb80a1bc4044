"""RFC 6962 hashing and proofs against the published certificate-transparency test vectors."""

from __future__ import annotations

import hashlib

import pytest

from audit.errors import ProofError
from audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    RootAccumulator,
    leaf_hash,
    node_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

# The reference tree of RFC 6962 implementations (certificate-transparency, trillian): eight
# leaf inputs, the tree head at every size, and the published audit and consistency paths.
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (leaf index, tree size, path)
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, []),
]
# (first size, second size, path)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def _unhex(path: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in path]


@pytest.fixture
def tree() -> MerkleTree:
    return MerkleTree(leaf_hash(leaf) for leaf in LEAVES)


def test_hash_prefixes_follow_rfc6962() -> None:
    assert leaf_hash(b"ab") == hashlib.sha256(b"\x00ab").digest()
    left, right = b"l" * 32, b"r" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert EMPTY_ROOT.hex() == ROOTS[0]


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_tree_heads_match_reference(tree: MerkleTree, size: int) -> None:
    assert tree.root(size).hex() == ROOTS[size]
    assert root_from_leaves(LEAVES[:size]).hex() == ROOTS[size]


def test_growing_tree_and_accumulator_agree_with_reference() -> None:
    grown, acc = MerkleTree(), RootAccumulator()
    for n, leaf in enumerate(LEAVES, start=1):
        grown.append(leaf_hash(leaf))
        acc.add(leaf_hash(leaf))
        assert grown.root().hex() == ROOTS[n] == acc.root().hex()


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_reference(
    tree: MerkleTree, index: int, size: int, path: list[str]
) -> None:
    proof = tree.inclusion_proof(index, size)
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(ROOTS[size])
    assert verify_inclusion(leaf_hash(LEAVES[index]), index, size, _unhex(path), root)


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_consistency_proofs_match_reference(
    tree: MerkleTree, first: int, second: int, path: list[str]
) -> None:
    assert [p.hex() for p in tree.consistency_proof(first, second)] == path
    r1, r2 = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
    assert verify_consistency(first, second, r1, r2, _unhex(path))


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION[:4])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, path: list[str]) -> None:
    proof, root, leaf = _unhex(path), bytes.fromhex(ROOTS[size]), leaf_hash(LEAVES[index])
    probes = [
        (leaf, index + 1, size, proof, root),
        (leaf, index ^ 2, size, proof, root),
        (leaf, index, size * 2, proof, root),
        (leaf, index, size // 2, proof, root),
        (leaf_hash(b"WrongLeaf"), index, size, proof, root),
        (leaf, index, size, proof, EMPTY_ROOT),
        (leaf, index, size, [*proof, root], root),
        (leaf, index, size, [root, *proof], root),
        (leaf, index, size, proof[:-1], root),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        probes.append((leaf, index, size, bad, root))
    assert not any(verify_inclusion(*p) for p in probes)


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY[1:])
def test_corrupted_consistency_proofs_fail(first: int, second: int, path: list[str]) -> None:
    proof, r1, r2 = _unhex(path), bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
    probes = [
        (first - 1, second, r1, r2, proof),
        (first + 1, second, r1, r2, proof),
        (first, second * 2, r1, r2, proof),
        (first, second // 2, r1, r2, proof),
        (first, second, r2, r1, proof),
        (first, second, EMPTY_ROOT, r2, proof),
        (first, second, r1, r2, []),
        (first, second, r1, r2, [*proof, r1]),
        (first, second, r1, r2, [r2, *proof]),
        (first, second, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((first, second, r1, r2, bad))
    assert not any(verify_consistency(*p) for p in probes)


def test_every_proof_of_a_larger_tree_verifies() -> None:
    # generated proofs at every size up to 70, checked by the independent verifier
    big = MerkleTree(leaf_hash(i.to_bytes(4, "big")) for i in range(70))
    for size in range(1, 71):
        root = big.root(size)
        for index in range(size):
            proof = big.inclusion_proof(index, size)
            assert verify_inclusion(big.leaf(index), index, size, proof, root)
        for first in range(1, size + 1):
            proof = big.consistency_proof(first, size)
            assert verify_consistency(first, size, big.root(first), root, proof)


@pytest.mark.parametrize(("index", "size"), [(-1, 3), (3, 3), (0, 9)])
def test_out_of_range_proof_requests_are_refused(tree: MerkleTree, index: int, size: int) -> None:
    with pytest.raises(ProofError):
        tree.inclusion_proof(index, size)
    with pytest.raises(ProofError):
        tree.consistency_proof(4, 9)
