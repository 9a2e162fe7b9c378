"""Digest strings: "sha256:<64 lowercase hex>" is the form every record uses."""

from __future__ import annotations

import hashlib
import re

SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_ANY_DIGEST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}:[A-Za-z0-9_.+/=-]{1,512}$")
_HEX_RE = re.compile(r"^[0-9A-Fa-f]+$")


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def normalize_sha256(value: str) -> str | None:
    """The canonical form of a sha256 digest, or None if `value` is not one."""
    candidate = value.strip()
    algorithm, sep, hexpart = candidate.partition(":")
    if not sep or algorithm.lower() != "sha256":
        return None
    candidate = "sha256:" + hexpart.lower()
    return candidate if SHA256_RE.match(candidate) else None


def normalize_any(value: str) -> str | None:
    """Any "<algorithm>:<value>" digest (sha1, sha512, gitCommit...), hex lower-cased.

    The algorithm keeps its spelling: in-toto names such as gitCommit are case-sensitive.
    """
    algorithm, sep, rest = value.strip().partition(":")
    if not sep:
        return None
    if _HEX_RE.match(rest):
        rest = rest.lower()
    candidate = f"{algorithm}:{rest}"
    return candidate if _ANY_DIGEST_RE.match(candidate) else None


def short(digest: str, length: int = 12) -> str:
    algorithm, _, rest = digest.partition(":")
    return f"{algorithm}:{rest[:length]}"
