"""RFC 6962 / RFC 9162 Merkle tree hashing: leaves, interior nodes, roots.

leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), and the root of
the empty tree is SHA-256 of nothing. The prefixes keep a leaf from ever hashing like an
interior node (second-preimage resistance).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# The root hash of the leaves [lo, hi): how proofs reach a tree's stored nodes.
Subtree = Callable[[int, int], bytes]


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
