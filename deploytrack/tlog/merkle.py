"""RFC 6962 / RFC 9162 Merkle tree hashing: leaves, interior nodes, roots.

leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), and the root of
the empty tree is SHA-256 of nothing. The prefixes keep a leaf from ever hashing like an
interior node (second-preimage resistance).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from deploytrack.tlog import LogFormatError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def frontier_sizes(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees a tree of `size` leaves is made of, left to right, as
    (level, index): one per set bit of `size`, the largest first. Their roots are the
    tree's right frontier (compact range [0, size)), all appending needs."""
    out: list[tuple[int, int]] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


def root_from_frontier(frontier: Sequence[bytes]) -> bytes:
    """The root of a tree from the roots of its perfect subtrees, left to right
    (`frontier_sizes`): RFC 6962 splits at the largest power of two, so the smaller
    subtrees fold from the right."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    return root


# --- proofs (RFC 6962 §2.1.1-2.1.2 to make them, RFC 9162 §2.1.3.2 and §2.1.4.2 to check) --

Subtree = Callable[[int, int], bytes]
"""The root hash (MTH) of leaves [lo, hi). Proof generation asks only for the ranges RFC
6962's recursion splits a tree into: lo is a multiple of the largest power of two below
hi - lo, so a store answers each from one stored perfect node, or from a few when the
range ends on the tree's right edge."""


class ProofError(LogFormatError):
    """An inclusion or consistency proof that is malformed or does not verify."""


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _short(digest: bytes) -> str:
    return digest.hex()[:16] + "…" if len(digest) == HASH_SIZE else f"{len(digest)} bytes"


def subtree_of(leaf_hashes: Sequence[bytes]) -> Subtree:
    """A Subtree over leaf hashes held in memory (tests, a proof made for a few leaves).
    Each range is hashed once and remembered, so memory grows with the tree: a log of any
    size is rebuilt with a right frontier (frontier_sizes) instead."""
    leaves = list(leaf_hashes)
    known: dict[tuple[int, int], bytes] = {}

    def mth(lo: int, hi: int) -> bytes:
        if not 0 <= lo <= hi <= len(leaves):
            raise ProofError(f"no leaves [{lo}, {hi}) in a tree of {len(leaves)}")
        if hi - lo == 0:
            return EMPTY_ROOT
        if hi - lo == 1:
            return leaves[lo]
        got = known.get((lo, hi))
        if got is None:
            mid = lo + _split(hi - lo)
            got = known[(lo, hi)] = node_hash(mth(lo, mid), mth(mid, hi))
        return got

    return mth


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]): the sibling hashes from the leaf's up to the
    root's children, index 0-based. One subtree call per level."""
    if not 0 <= index < size:
        raise ProofError(f"no entry {index} in a tree of {size} entries (0-based)")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            path.append(subtree(mid, hi))
            hi = mid
        else:
            path.append(subtree(lo, mid))
            lo = mid
    # The recursion yields the root's children first; the proof lists the leaf's first.
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, subtree: Subtree) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[0:new_size]): the hashes that show the tree of
    old_size leaves is a prefix of the tree of new_size. Empty when the sizes are equal."""
    if not 0 < old_size <= new_size:
        raise ProofError(
            f"no consistency proof from a tree of {old_size} to one of {new_size}: the old "
            "tree must have at least one entry and no more than the new one"
        )
    path: list[bytes] = []
    lo, hi = 0, new_size
    # SUBPROOF's flag: whether [lo, hi) is still a left edge the verifier knows the root of.
    known = True
    while old_size != hi:
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            path.append(subtree(mid, hi))
            hi = mid
        else:
            path.append(subtree(lo, mid))
            lo = mid
            known = False
    if not known:
        path.append(subtree(lo, hi))
    path.reverse()
    return path


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    for i, item in enumerate(proof):
        if len(item) != HASH_SIZE:
            raise ProofError(
                f"hash {i + 1} of the {what} proof is {len(item)} bytes, not {HASH_SIZE}"
            )


def _inclusion_length(index: int, size: int) -> int:
    # Below the level where the paths to index and to the last leaf part, one sibling per
    # level; above it, one left sibling per set bit of what remains of the index.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless `proof` shows the leaf hash `leaf` at `index` (0-based) in
    the tree of `size` leaves whose root is `root` (RFC 9162 §2.1.3.2)."""
    if index < 0 or size < 0:
        raise ProofError(f"an index and a tree size are not negative: got {index} and {size}")
    if index >= size:
        raise ProofError(f"index {index} is not in a tree of {size} entries (0-based)")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"the leaf hash is {len(leaf)} bytes, not {HASH_SIZE}")
    if len(root) != HASH_SIZE:
        raise ProofError(f"the root is {len(root)} bytes, not {HASH_SIZE}")
    want = _inclusion_length(index, size)
    if len(proof) != want:
        raise ProofError(
            f"the inclusion proof has {len(proof)} hashes, a tree of {size} needs {want} "
            f"for index {index}"
        )
    _check_hashes(proof, "inclusion")
    # RFC 9162's walk; with the length checked first, its "sn is 0" tests cannot fail
    # (checked for every index of every tree up to 600 leaves), so they are left out.
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if r != root:
        raise ProofError(
            f"the inclusion proof does not lead to the root: it gives {_short(r)}, the root "
            f"is {_short(root)}"
        )


def _consistency_length(old_size: int, new_size: int) -> int:
    # 0 < old_size < new_size. The proof starts at the largest perfect subtree ending at
    # old_size (omitted when old_size is a power of two: it is then the old root), then
    # climbs like an inclusion proof of that subtree's node.
    shift = (old_size & -old_size).bit_length() - 1
    node, last = (old_size - 1) >> shift, (new_size - 1) >> shift
    seed = 0 if old_size == 1 << shift else 1
    return seed + _inclusion_length(node, last + 1)


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Raise ProofError unless `proof` shows the tree of old_size leaves with root old_root
    is a prefix of the tree of new_size leaves with root new_root (RFC 9162 §2.1.4.2).

    Equal sizes need an empty proof and equal roots, compared byte for byte whatever their
    length (transparency-dev/merkle's vectors want that; checkpoints and tree heads hold
    32-byte roots by construction). A proof from the empty tree proves nothing (every
    tree extends it) and is refused, as transparency-dev/merkle does: a checkpoint of size
    0 is checked by its root being EMPTY_ROOT instead."""
    if old_size < 0 or new_size < 0:
        raise ProofError(f"tree sizes are not negative: got {old_size} and {new_size}")
    if old_size > new_size:
        raise ProofError(
            f"the old tree ({old_size} entries) is larger than the new one ({new_size}): a log "
            "only grows"
        )
    if old_size == new_size:
        if proof:
            raise ProofError(
                f"trees of the same size ({old_size}) need an empty consistency proof, got "
                f"{len(proof)} hashes"
            )
        if old_size == 0 and (old_root != EMPTY_ROOT or new_root != EMPTY_ROOT):
            raise ProofError("a tree of 0 entries has the empty tree's root, SHA-256 of nothing")
        if old_root != new_root:
            raise ProofError(
                f"two trees of {old_size} entries have different roots: {_short(old_root)} "
                f"and {_short(new_root)}"
            )
        return
    if old_size == 0:
        raise ProofError(
            "a consistency proof from the empty tree proves nothing: every tree extends it"
        )
    for name, digest in (("old", old_root), ("new", new_root)):
        if len(digest) != HASH_SIZE:
            raise ProofError(f"the {name} root is {len(digest)} bytes, not {HASH_SIZE}")
    want = _consistency_length(old_size, new_size)
    if len(proof) != want:
        raise ProofError(
            f"the consistency proof has {len(proof)} hashes, trees of {old_size} and "
            f"{new_size} need {want}"
        )
    _check_hashes(proof, "consistency")
    # RFC 9162's walk, its "sn is 0" tests left out as in verify_inclusion.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if fr != old_root:
        raise ProofError(
            f"the consistency proof does not lead to the old root: it gives {_short(fr)}, "
            f"the old root is {_short(old_root)}"
        )
    if sr != new_root:
        raise ProofError(
            f"the consistency proof does not lead to the new root: it gives {_short(sr)}, "
            f"the new root is {_short(new_root)}"
        )
