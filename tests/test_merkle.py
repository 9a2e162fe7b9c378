"""RFC 6962 / RFC 9162 Merkle proofs (deploytrack.tlog.merkle).

- every inclusion and consistency vector of transparency-dev/merkle (tests/fixtures/merkle,
  with its README), each `wantErr` variant refused with a ProofError;
- the roots of RFC 6962's eight-leaf tree;
- for every tree of 1..70 leaves, each generated proof verifies, asks the Subtree only for
  RFC 6962's ranges, O(log n) times, and a flipped bit in a hash, the root, or a wrong
  index or size is refused.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploytrack.tlog import LogFormatError
from deploytrack.tlog.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    frontier_sizes,
    inclusion_proof,
    leaf_hash,
    root_from_frontier,
    subtree_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parent / "fixtures" / "merkle"
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
MAX_SIZE = 70


def _vectors(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    return [pytest.param(f, id=str(f.relative_to(VECTORS / kind))) for f in files]


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_the_vectors_are_all_there() -> None:
    # 98 files each, the count of the upstream folders (subtree* left out):
    # a lost folder would pass every remaining test.
    assert len(_vectors("inclusion")) == 98
    assert len(_vectors("consistency")) == 98


@pytest.mark.parametrize("path", _vectors("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], [_b64(p) for p in v["proof"] or []])
    if v["wantErr"]:
        with pytest.raises(ProofError) as refused:
            verify_inclusion(*args, _b64(v["root"]))
        assert "\n" not in str(refused.value)
    else:
        verify_inclusion(*args, _b64(v["root"]))


@pytest.mark.parametrize("path", _vectors("consistency"))
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    args = (v["size1"], v["size2"], [_b64(p) for p in v["proof"] or []])
    roots = (_b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(ProofError) as refused:
            verify_consistency(*args, *roots)
        assert "\n" not in str(refused.value)
    else:
        verify_consistency(*args, *roots)


def test_the_vectors_index_leaves_from_zero() -> None:
    """leafIdx is 0-based: each happy path's leaf hash is that of LEAVES[leafIdx], and the
    proofs we generate from the eight leaves are the vectors' proofs."""
    hashes = [leaf_hash(leaf) for leaf in LEAVES]
    for path in sorted(VECTORS.glob("inclusion/[0-9]/happy-path.json")):
        v = _load(path)
        assert _b64(v["leafHash"]) == hashes[v["leafIdx"]], path
        tree = subtree_of(hashes[: v["treeSize"]])
        assert inclusion_proof(v["leafIdx"], v["treeSize"], tree) == [
            _b64(p) for p in v["proof"] or []
        ]
    for path in sorted(VECTORS.glob("consistency/[0-9]/happy-path.json")):
        v = _load(path)
        tree = subtree_of(hashes[: v["size2"]])
        assert consistency_proof(v["size1"], v["size2"], tree) == [
            _b64(p) for p in v["proof"] or []
        ]
        assert tree(0, v["size1"]) == _b64(v["root1"])
        assert tree(0, v["size2"]) == _b64(v["root2"])


def test_roots_of_rfc6962_tree() -> None:
    hashes = [leaf_hash(leaf) for leaf in LEAVES]
    assert [subtree_of(hashes[:n])(0, n).hex() for n in range(1, 9)] == ROOTS
    assert subtree_of([])(0, 0) == EMPTY_ROOT
    assert EMPTY_ROOT.hex().startswith("e3b0c442")


# --- generated trees -----------------------------------------------------------------------

_HASHES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE)]
_TREE = subtree_of(_HASHES)
_ROOT = [_TREE(0, n) for n in range(MAX_SIZE + 1)]


def test_the_right_frontier_gives_the_root() -> None:
    assert frontier_sizes(0) == []
    assert frontier_sizes(13) == [(3, 0), (2, 2), (0, 12)]
    for size in range(MAX_SIZE + 1):
        frontier = [_TREE(i << level, (i + 1) << level) for level, i in frontier_sizes(size)]
        assert root_from_frontier(frontier) == _ROOT[size]


class _Counted:
    """A Subtree that holds proof generation to RFC 6962's ranges and counts the calls."""

    def __init__(self, size: int) -> None:
        self.size, self.calls = size, 0

    def __call__(self, lo: int, hi: int) -> bytes:
        self.calls += 1
        assert 0 <= lo < hi <= self.size
        if hi - lo > 1:
            # a perfect range sits on a multiple of its size; one on the right edge on a
            # multiple of its largest power of two
            split = 1 << ((hi - lo - 1).bit_length() - 1)
            assert lo % (split * 2 if hi - lo == split * 2 else split) == 0, (lo, hi)
        return _TREE(lo, hi)


def _log2(n: int) -> int:
    return max(1, (n - 1).bit_length())


def test_every_inclusion_proof_verifies() -> None:
    for size in range(1, MAX_SIZE + 1):
        for index in range(size):
            counted = _Counted(size)
            proof = inclusion_proof(index, size, counted)
            assert counted.calls == len(proof) <= _log2(size)
            verify_inclusion(_HASHES[index], index, size, proof, _ROOT[size])


def test_every_consistency_proof_verifies() -> None:
    for new in range(1, MAX_SIZE + 1):
        for old in range(1, new + 1):
            counted = _Counted(new)
            proof = consistency_proof(old, new, counted)
            assert counted.calls == len(proof) <= _log2(new) + 1
            verify_consistency(old, new, proof, _ROOT[old], _ROOT[new])


def _flip(digest: bytes, bit: int) -> bytes:
    out = bytearray(digest)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, MAX_SIZE), st.data())
def test_a_changed_inclusion_proof_is_refused(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, size, _TREE)
    bit = data.draw(st.integers(0, 255))
    leaf, root = _HASHES[index], _ROOT[size]
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        changed = [*proof[:at], _flip(proof[at], bit), *proof[at + 1 :]]
        with pytest.raises(ProofError, match="does not lead to the root"):
            verify_inclusion(leaf, index, size, changed, root)
    with pytest.raises(ProofError, match="does not lead to the root"):
        verify_inclusion(leaf, index, size, proof, _flip(root, bit))
    with pytest.raises(ProofError, match="does not lead to the root"):
        verify_inclusion(_flip(leaf, bit), index, size, proof, root)
    other = data.draw(st.integers(0, MAX_SIZE))
    if other != index:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, other, size, proof, root)
    # The proof alone does not fix the size (index 0 climbs alike in trees of 33 and 34):
    # the signed checkpoint binds size and root together, so check them as a pair.
    other = data.draw(st.integers(1, MAX_SIZE))
    if other != size and index < other:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, other, proof, _ROOT[other])


@settings(max_examples=300, deadline=None)
@given(st.integers(2, MAX_SIZE), st.data())
def test_a_changed_consistency_proof_is_refused(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(1, new - 1))
    proof = consistency_proof(old, new, _TREE)
    bit = data.draw(st.integers(0, 255))
    at = data.draw(st.integers(0, len(proof) - 1))
    changed = [*proof[:at], _flip(proof[at], bit), *proof[at + 1 :]]
    with pytest.raises(ProofError, match=r"does not lead to the (old|new) root"):
        verify_consistency(old, new, changed, _ROOT[old], _ROOT[new])
    # When old is a power of two the old root is the proof's first hash, so a changed one
    # shows at the new root.
    with pytest.raises(ProofError, match=r"does not lead to the (old|new) root"):
        verify_consistency(old, new, proof, _flip(_ROOT[old], bit), _ROOT[new])
    with pytest.raises(ProofError, match="does not lead to the new root"):
        verify_consistency(old, new, proof, _ROOT[old], _flip(_ROOT[new], bit))
    other = data.draw(st.integers(1, MAX_SIZE))
    if other not in (old, new):
        with pytest.raises(ProofError):
            verify_consistency(other, new, proof, _ROOT[other], _ROOT[new])
        with pytest.raises(ProofError):
            verify_consistency(old, other, proof, _ROOT[old], _ROOT[other])


# --- messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda p: verify_inclusion(_HASHES[5], 5, 7, p[:2], _ROOT[7]),
            "the inclusion proof has 2 hashes, a tree of 7 needs 3 for index 5",
        ),
        (
            lambda p: verify_inclusion(_HASHES[5], 7, 7, p, _ROOT[7]),
            "index 7 is not in a tree of 7 entries (0-based)",
        ),
        (
            lambda p: verify_inclusion(_HASHES[5], 5, 7, [p[0], p[1][:31], p[2]], _ROOT[7]),
            "hash 2 of the inclusion proof is 31 bytes, not 32",
        ),
        (
            lambda p: verify_inclusion(_HASHES[5][:16], 5, 7, p, _ROOT[7]),
            "the leaf hash is 16 bytes, not 32",
        ),
        (
            lambda p: verify_inclusion(_HASHES[5], 5, 7, p, b""),
            "the root is 0 bytes, not 32",
        ),
        (
            lambda p: verify_consistency(7, 6, [], _ROOT[7], _ROOT[6]),
            "the old tree (7 entries) is larger than the new one (6): a log only grows",
        ),
        (
            lambda p: verify_consistency(6, 6, p[:1], _ROOT[6], _ROOT[6]),
            "trees of the same size (6) need an empty consistency proof, got 1 hashes",
        ),
        (
            lambda p: verify_consistency(0, 6, [], EMPTY_ROOT, _ROOT[6]),
            "a consistency proof from the empty tree proves nothing: every tree extends it",
        ),
        (
            lambda p: verify_consistency(6, 8, p[:2], _ROOT[6], _ROOT[8]),
            "the consistency proof has 2 hashes, trees of 6 and 8 need 3",
        ),
        (
            lambda p: verify_consistency(6, 6, [], _ROOT[6], _ROOT[5]),
            "two trees of 6 entries have different roots: ",
        ),
        (
            lambda p: verify_inclusion(_HASHES[5], -1, 7, p, _ROOT[7]),
            "an index and a tree size are not negative: got -1 and 7",
        ),
        (
            lambda p: verify_consistency(-1, 7, p, _ROOT[1], _ROOT[7]),
            "tree sizes are not negative: got -1 and 7",
        ),
        (
            lambda p: verify_consistency(0, 0, [], _ROOT[1], _ROOT[1]),
            "a tree of 0 entries has the empty tree's root, SHA-256 of nothing",
        ),
        (
            lambda p: verify_consistency(6, 8, p, _ROOT[6][:31], _ROOT[8]),
            "the old root is 31 bytes, not 32",
        ),
        (
            lambda p: verify_consistency(6, 8, p, _ROOT[6], _ROOT[8] + b"x"),
            "the new root is 33 bytes, not 32",
        ),
        (
            lambda p: verify_consistency(6, 8, [*p[:2], b""], _ROOT[6], _ROOT[8]),
            "hash 3 of the consistency proof is 0 bytes, not 32",
        ),
        (
            lambda p: subtree_of(_HASHES[:3])(2, 5),
            "no leaves [2, 5) in a tree of 3",
        ),
        (
            lambda p: inclusion_proof(7, 7, _TREE),
            "no entry 7 in a tree of 7 entries (0-based)",
        ),
        (
            lambda p: consistency_proof(0, 7, _TREE),
            "no consistency proof from a tree of 0 to one of 7",
        ),
    ],
)
def test_refusals_say_what_is_wrong(call: Any, message: str) -> None:
    proof = inclusion_proof(5, 7, _TREE)
    with pytest.raises(ProofError) as refused:
        call(proof)
    assert str(refused.value).startswith(message)
    assert isinstance(refused.value, LogFormatError)


def test_equal_sizes_need_no_proof() -> None:
    verify_consistency(5, 5, [], _ROOT[5], _ROOT[5])
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    assert consistency_proof(5, 5, _TREE) == []
    # a root shown short in a message: hex, 16 digits and an ellipsis
    with pytest.raises(ProofError, match=rf"gives {_ROOT[8].hex()[:16]}…, the root is"):
        verify_inclusion(_HASHES[0], 0, 8, inclusion_proof(0, 8, _TREE), _flip(_ROOT[8], 0))


def test_merkle_is_light_enough_for_the_record_path() -> None:
    """Appending an event hashes it on `deployment record`, a hot path: importing the
    hashing loads hashlib and our errors, no cryptography (note.py's) and no dataclasses."""
    code = (
        "import sys; before = set(sys.modules); import deploytrack.tlog.merkle; "
        "print(*sorted(set(sys.modules) - before))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    ours = {m for m in loaded if m.startswith("deploytrack")}
    assert ours == {
        "deploytrack",
        "deploytrack.errors",
        "deploytrack.tlog",
        "deploytrack.tlog.merkle",
    }
    assert not [m for m in loaded if m.startswith(("cryptography", "dataclasses", "typing"))]
