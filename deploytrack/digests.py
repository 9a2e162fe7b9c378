"""Digest strings: "sha256:<64 lowercase hex>" is the form every record uses."""

from __future__ import annotations

import re

# Used with fullmatch: "$" would also match before a trailing newline.
SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
_ANY_DIGEST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}:[A-Za-z0-9_.+/=-]{1,512}")
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")
# The hash functions in-toto's DigestSet names, with their hex lengths. Their names are
# matched case-insensitively and their values must be hex of the right length; any other
# algorithm (gitCommit, dirHash...) keeps its spelling and only has to be well-formed.
HEX_LENGTHS = {
    "md5": 32,
    "sha1": 40,
    "sha224": 56,
    "sha256": 64,
    "sha384": 96,
    "sha512": 128,
    "sha512_224": 56,
    "sha512_256": 64,
    "sha3_224": 56,
    "sha3_256": 64,
    "sha3_384": 96,
    "sha3_512": 128,
    "blake2b": 128,
    "blake2s": 64,
}


def sha256_of(data: bytes) -> str:
    import hashlib  # ~3 ms: not needed by the commands that only compare digests

    return "sha256:" + hashlib.sha256(data).hexdigest()


def normalize_sha256(value: str) -> str | None:
    """The canonical form of a sha256 digest, or None if `value` is not one."""
    candidate = value.strip()
    algorithm, sep, hexpart = candidate.partition(":")
    if not sep or algorithm.lower() != "sha256":
        return None
    candidate = "sha256:" + hexpart.lower()
    return candidate if SHA256_RE.fullmatch(candidate) else None


def normalize_any(value: str) -> str | None:
    """Any "<algorithm>:<value>" digest (sha1, sha512, gitCommit...), hex lower-cased.

    Known hash names are lower-cased and their values checked (SHA256:AB.. is sha256:ab..);
    other names keep their spelling: in-toto names such as gitCommit are case-sensitive.
    """
    algorithm, sep, rest = value.strip().partition(":")
    if not sep:
        return None
    length = HEX_LENGTHS.get(algorithm.lower())
    if length is not None:
        if len(rest) != length or not _HEX_RE.fullmatch(rest):
            return None
        algorithm = algorithm.lower()
    if _HEX_RE.fullmatch(rest):
        rest = rest.lower()
    candidate = f"{algorithm}:{rest}"
    return candidate if _ANY_DIGEST_RE.fullmatch(candidate) else None


def short(digest: str, length: int = 12) -> str:
    algorithm, _, rest = digest.partition(":")
    return f"{algorithm}:{rest[:length]}"


# A lookup may give fewer digits than the whole digest: git's rule of thumb, enough to be
# unique in practice and short enough to type from a table that shows 12.
MIN_PREFIX_HEX = 8


def normalize_lookup(value: str) -> str:
    """A digest as typed to look one up, in canonical form: `sha256:<hex>` (hex lower-cased),
    where the hex may be a prefix of at least MIN_PREFIX_HEX digits. Without an algorithm
    it is sha256; other hash functions need their name (`sha512:...`); an algorithm whose
    values are not hex (gitCommit...) matches only in full. Pure: a click type as is.

    Raises ValueError with a message fit for the user.
    """
    text = value.strip()
    algorithm, sep, rest = text.partition(":")
    if not sep:
        algorithm, rest = "sha256", text
    length = HEX_LENGTHS.get(algorithm.lower())
    if length is None:
        full = normalize_any(text)
        if full is None:
            raise ValueError(
                f"invalid digest {value[:80]!r}: use <algorithm>:<hex>, e.g. sha256:<64 hex "
                f"digits>, or at least {MIN_PREFIX_HEX} of its first hex digits"
            )
        return full
    if not rest or not _HEX_RE.fullmatch(rest) or len(rest) > length:
        raise ValueError(
            f"invalid digest {value[:80]!r}: use {algorithm.lower()}:<{length} hex digits> or at "
            f"least {MIN_PREFIX_HEX} of its first hex digits"
        )
    if len(rest) < MIN_PREFIX_HEX:
        raise ValueError(
            f"digest prefix {value[:80]!r} is too short: give at least {MIN_PREFIX_HEX} hex "
            "digits (or the whole digest)"
        )
    return f"{algorithm.lower()}:{rest.lower()}"


def is_complete(digest: str) -> bool:
    """Whether a normalized lookup is a whole digest rather than a prefix of one."""
    algorithm, _, rest = digest.partition(":")
    length = HEX_LENGTHS.get(algorithm)
    return length is None or len(rest) == length
