"""The C2SP text formats of a transparency log: signed notes, checkpoints, proofs.

- c2sp.org/signed-note: a text ending in a newline, a blank line, then signature lines
  `— <key name> base64(key ID || signature)`. Ed25519 only (signature type 0x01), its key
  ID SHA-256(name || 0x0A || 0x01 || public key)[:4], its verifier key
  `name+hex(key ID)+base64(0x01 || public key)`.
- c2sp.org/tlog-checkpoint: a note whose text is `origin\\nsize\\nbase64(root)\\n`, then
  optional extension lines.
- c2sp.org/tlog-proof: `c2sp.org/tlog-proof@v1`, an optional `extra` line, `index N`, the
  inclusion proof's hashes, a blank line, and the signed checkpoint verbatim.

Everything here is parsed strictly (canonical base64, decimal numbers without leading
zeros, bounded sizes) and every refusal is a LogFormatError with one line: a note, a
checkpoint or a proof comes from outside (a CI artifact, a ticket, a bundle). Signatures
use `cryptography`; nothing here stores or prints a private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from deploytrack.tlog import LogFormatError
from deploytrack.tlog.merkle import HASH_SIZE, verify_inclusion

# Checkpoints are a few hundred bytes; a note with the spec's 100 post-quantum signatures
# of ~5 kB each still fits.
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
# An inclusion proof has one hash per level: 63 covers a log of 2^63 entries.
MAX_PROOF_HASHES = 63
# The largest size or index a log can reach (SQLite's integers are signed 64-bit).
MAX_INDEX = (1 << 63) - 1
MAX_VERIFIER_KEY_CHARS = 4096
ED25519 = 0x01
KEY_ID_BYTES = 4
SIGNATURE_PREFIX = "\u2014 "
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


def _shown(text: str, limit: int = 80) -> str:
    """A name or line for a message: non-printable characters escaped, long ones cut."""
    cut = text[:limit]
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    return shown + "…" if len(text) > limit else shown


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    """Standard base64 with padding, in its one canonical spelling: the text of a note
    maps to exactly one value, so nothing can be re-encoded past a signature."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise LogFormatError(f"{what} is not base64: {_shown(text, 24)}") from None
    if _b64(data) != text:
        raise LogFormatError(f"{what} is not in canonical base64: {_shown(text, 24)}")
    return data


def _decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise LogFormatError(
            f"{what} is not a decimal number without sign or leading zeros: {_shown(text, 24)}"
        )
    value = int(text)
    if value > MAX_INDEX:
        raise LogFormatError(f"{what} is larger than 2^63 - 1: {text}")
    return value


def _check_name(name: str, what: str = "the key name") -> None:
    if not name:
        raise LogFormatError(f"{what} is empty")
    if any(c.isspace() or c == "+" or c < " " for c in name):
        raise LogFormatError(
            f"{what} '{_shown(name)}' has a space, a control character or a '+': a key name "
            "has none"
        )


def _check_text(text: str, what: str) -> None:
    """The rules of signed-note for its text: no control character but the newline."""
    for number, line in enumerate(text.split("\n"), start=1):
        bad = next((c for c in line if c < " "), None)
        if bad is not None:
            raise LogFormatError(
                f"{what} has a control character ({bad!r}) on line {number}: only newlines "
                "are allowed"
            )


# --- keys --------------------------------------------------------------------------------


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte key ID signed-note recommends: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + _raw(public_key))
    return digest.digest()[:KEY_ID_BYTES]


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 key that may sign notes under `name` (a checkpoint's origin)."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @property
    def label(self) -> str:
        """`name+hex(key ID)`: how messages name the key."""
        return f"{_shown(self.name)}+{self.key_id.hex()}"

    def text(self) -> str:
        """The verifier key: `name+hex(key ID)+base64(0x01 || public key)`."""
        raw = bytes([ED25519]) + _raw(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{_b64(raw)}"


def verifier_of(name: str, public_key: Ed25519PublicKey) -> Verifier:
    _check_name(name)
    return Verifier(name, key_id(name, public_key), public_key)


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    return verifier_of(name, public_key).text()


def parse_verifier_key(text: str) -> Verifier:
    """A verifier key `name+hex(key ID)+base64(0x01 || key)`, surrounding whitespace (the
    newline of a file) ignored. Its key ID must be the one computed from name and key."""
    text = text.strip()
    if len(text) > MAX_VERIFIER_KEY_CHARS:
        raise LogFormatError(f"the verifier key is longer than {MAX_VERIFIER_KEY_CHARS} characters")
    # The name and the ID hold no '+'; base64 may, so only the first two split.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise LogFormatError(
            "a verifier key is NAME+KEYID+KEY (three parts joined by '+'), got "
            f"{len(parts)} part{'s' if len(parts) != 1 else ''}"
        )
    name, hex_id, encoded = parts
    _check_name(name, "the verifier key's name")
    if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
        raise LogFormatError(
            f"the verifier key's ID is not 8 lowercase hex digits: {_shown(hex_id, 24)}"
        )
    raw = _unb64(encoded, "the verifier key's public key")
    if not raw or raw[0] != ED25519:
        kind = f"0x{raw[0]:02x}" if raw else "missing"
        raise LogFormatError(
            f"the verifier key's signature type is {kind}: deploytrack verifies Ed25519 keys "
            "(type 0x01)"
        )
    if len(raw) != 1 + 32:
        raise LogFormatError(f"the verifier key's Ed25519 key is {len(raw) - 1} bytes, not 32")
    # cryptography takes any 32 bytes as a key (checked: it raises only on another length)
    verifier = verifier_of(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
    if verifier.key_id.hex() != hex_id:
        raise LogFormatError(
            f"the verifier key's ID {hex_id} does not match its name and key, which give "
            f"{verifier.key_id.hex()}"
        )
    return verifier


# --- notes -------------------------------------------------------------------------------


class Signature(NamedTuple):
    """One signature line: the key's name and ID, and the signature bytes after the ID."""

    name: str
    key_id: bytes
    signature: bytes

    @property
    def label(self) -> str:
        return f"{_shown(self.name)}+{self.key_id.hex()}"


@dataclass(frozen=True)
class Note:
    """A parsed signed note. Its signatures are not checked until `verify` is asked with
    a key: signatures by unknown keys are carried, never errors (signed-note)."""

    text: str
    signatures: tuple[Signature, ...]

    def verify(self, verifier: Verifier, *, what: str = "note") -> bool:
        """True when `verifier` signed the text, False when no signature line names it.
        A signature line that names it and does not verify refuses the whole note."""
        found = False
        for sig in self.signatures:
            if sig.name != verifier.name or sig.key_id != verifier.key_id:
                continue
            try:
                # a signature of another length is refused as invalid by cryptography
                verifier.public_key.verify(sig.signature, self.text.encode())
            except InvalidSignature:
                raise LogFormatError(
                    f"the signature by key {verifier.label} does not verify: the {what} was "
                    "changed after it was signed, or the signature is damaged"
                ) from None
            found = True
        return found

    def require_signature(self, verifiers: Iterable[Verifier], *, what: str = "note") -> Verifier:
        """The first of `verifiers` that signed the note; LogFormatError when none did."""
        keys = list(verifiers)
        for verifier in keys:
            if self.verify(verifier, what=what):
                return verifier
        wanted = ", ".join(v.label for v in keys) or "(no key given)"
        carried = ", ".join(dict.fromkeys(s.label for s in self.signatures)) or "none"
        plural = "key" if len(keys) == 1 else "any of the keys"
        raise LogFormatError(
            f"the {what} is not signed by {plural} {wanted}: it carries signatures by {carried}"
        )


def open_note(data: bytes, *, max_size: int = MAX_NOTE_BYTES) -> Note:
    """Parse a signed note (c2sp.org/signed-note) without checking any signature."""
    if len(data) > max_size:
        raise LogFormatError(f"the note is larger than {max_size} bytes")
    try:
        message = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LogFormatError(f"the note is not UTF-8 text (byte {exc.start})") from None
    _check_text(message, "the note")
    split = message.rfind("\n\n")
    if split < 0:
        raise LogFormatError(
            "the note has no blank line before its signatures: a signed note is its text, a "
            "blank line, then lines '— NAME SIGNATURE'"
        )
    text, block = message[: split + 1], message[split + 2 :]
    if not block:
        raise LogFormatError("the note has no signature line after its blank line")
    if not block.endswith("\n"):
        raise LogFormatError("the note's last line has no newline: the note is truncated")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise LogFormatError(f"the note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for number, line in enumerate(lines, start=1):
        what = f"signature line {number} of the note"
        if not line.startswith(SIGNATURE_PREFIX):
            raise LogFormatError(
                f"{what} does not start with an em dash (U+2014) and a space: {_shown(line, 40)}"
            )
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        _check_name(name, f"the key name of {what}")
        raw = _unb64(encoded, f"the signature of {what}")
        if len(raw) <= KEY_ID_BYTES:
            raise LogFormatError(f"the signature of {what} is {len(raw)} bytes: too short")
        signatures.append(Signature(name, raw[:KEY_ID_BYTES], raw[KEY_ID_BYTES:]))
    return Note(text, tuple(signatures))


def sign_note(text: str, name: str, key: Ed25519PrivateKey) -> str:
    """The signed note: `text`, a blank line, and `— name base64(key ID || signature)`."""
    if not text.endswith("\n"):
        raise LogFormatError("the text of a note ends with a newline")
    _check_text(text, "the text of the note")
    _check_name(name)
    signature = key.sign(text.encode())
    return f"{text}\n{SIGNATURE_PREFIX}{name} {_b64(key_id(name, key.public_key()) + signature)}\n"


# --- checkpoints -------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head (c2sp.org/tlog-checkpoint): origin, size, root, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin:
            raise LogFormatError("the checkpoint's origin is empty")
        if not 0 <= self.size <= MAX_INDEX:
            raise LogFormatError(f"the checkpoint's tree size {self.size} is out of range")
        if len(self.root) != HASH_SIZE:
            raise LogFormatError(
                f"the checkpoint's root hash is {len(self.root)} bytes, not {HASH_SIZE}"
            )
        for line in (self.origin, *self.extensions):
            if not line or "\n" in line:
                raise LogFormatError("a checkpoint's lines are not empty and hold no newline")
            _check_text(line, "the checkpoint")

    def text(self) -> str:
        """The note text: `origin\\nsize\\nbase64(root)\\n`, then the extension lines."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """A checkpoint from its note text (Note.text)."""
    if not text.endswith("\n"):
        raise LogFormatError("the checkpoint's last line has no newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise LogFormatError(
            f"the checkpoint has {len(lines)} line{'s' if len(lines) != 1 else ''}: it needs "
            "three (origin, tree size, root hash)"
        )
    for number, line in enumerate(lines, start=1):
        if not line:
            raise LogFormatError(f"line {number} of the checkpoint is empty")
    origin, size, root, *extensions = lines
    _check_text(text, "the checkpoint")
    return Checkpoint(
        origin=origin,
        size=_decimal(size, "the checkpoint's tree size"),
        root=_unb64(root, "the checkpoint's root hash"),
        extensions=tuple(extensions),
    )


def read_checkpoint(
    data: bytes, verifiers: Sequence[Verifier] = (), *, max_size: int = MAX_NOTE_BYTES
) -> Checkpoint:
    """A checkpoint from a file's bytes: a signed note, or (only when no verifier is
    required) the bare checkpoint text. With verifiers, one of them named as the origin
    must have signed it."""
    if len(data) > max_size:
        raise LogFormatError(f"the checkpoint is larger than {max_size} bytes")
    if b"\n\n" not in data:
        if verifiers:
            raise LogFormatError("the checkpoint is not signed: it has no signature lines")
        try:
            bare = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LogFormatError(f"the checkpoint is not UTF-8 text (byte {exc.start})") from None
        return parse_checkpoint(bare)
    note = open_note(data, max_size=max_size)
    checkpoint = parse_checkpoint(note.text)
    if verifiers:
        _require_origin_key(note, checkpoint, verifiers)
    return checkpoint


def _require_origin_key(note: Note, checkpoint: Checkpoint, verifiers: Sequence[Verifier]) -> None:
    """tlog-proof and tlog-checkpoint: the log's signature is by a key of its origin."""
    own = [v for v in verifiers if v.name == checkpoint.origin]
    if not own:
        keys = ", ".join(v.label for v in verifiers)
        raise LogFormatError(
            f"the checkpoint is from origin {_shown(checkpoint.origin)}, and no key given is "
            f"that origin's: {keys}"
        )
    note.require_signature(own, what="checkpoint")


# --- proofs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InclusionProof:
    """A c2sp.org/tlog-proof: the entry's 0-based index, the inclusion proof's hashes (the
    leaf's sibling first), the signed checkpoint verbatim, and unauthenticated extra data."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def text(self) -> str:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {_b64(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(_b64(h) for h in self.hashes)
        return "".join(line + "\n" for line in lines) + "\n" + self.checkpoint_note

    def note(self) -> Note:
        return open_note(self.checkpoint_note.encode())

    def checkpoint(self) -> Checkpoint:
        return parse_checkpoint(self.note().text)

    def verify(self, leaf: bytes, verifiers: Sequence[Verifier]) -> Checkpoint:
        """tlog-proof's verification: the checkpoint is signed by a key of its origin among
        `verifiers`, and the hashes lead from the leaf hash `leaf` at `index` to its root.
        Returns the checkpoint; raises LogFormatError (ProofError) otherwise."""
        note = self.note()
        checkpoint = parse_checkpoint(note.text)
        _require_origin_key(note, checkpoint, verifiers)
        verify_inclusion(leaf, self.index, checkpoint.size, self.hashes, checkpoint.root)
        return checkpoint


def parse_proof(data: bytes, *, max_size: int = MAX_NOTE_BYTES) -> InclusionProof:
    """A c2sp.org/tlog-proof, its checkpoint note checked to be a well-formed checkpoint
    (its signatures are checked by InclusionProof.verify)."""
    if len(data) > max_size:
        raise LogFormatError(f"the proof is larger than {max_size} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LogFormatError(f"the proof is not UTF-8 text (byte {exc.start})") from None
    header, _, rest = text.partition("\n")
    if header != PROOF_HEADER:
        raise LogFormatError(
            f"the proof does not start with the line {PROOF_HEADER}: {_shown(header, 40)}"
        )
    extra = None
    line, _, rest = rest.partition("\n")
    if line.startswith("extra "):
        extra = _unb64(line[len("extra ") :], "the proof's extra data")
        line, _, rest = rest.partition("\n")
    if not line.startswith("index "):
        raise LogFormatError(f"the proof has no 'index N' line: {_shown(line, 40)}")
    index = _decimal(line[len("index ") :], "the proof's index")
    hashes: list[bytes] = []
    while True:
        if not rest:
            raise LogFormatError("the proof ends before its blank line and checkpoint")
        line, _, rest = rest.partition("\n")
        if not line:
            break
        if len(hashes) == MAX_PROOF_HASHES:
            raise LogFormatError(f"the proof has more than {MAX_PROOF_HASHES} hashes")
        digest = _unb64(line, f"hash {len(hashes) + 1} of the proof")
        if len(digest) != HASH_SIZE:
            raise LogFormatError(
                f"hash {len(hashes) + 1} of the proof is {len(digest)} bytes, not {HASH_SIZE}"
            )
        hashes.append(digest)
    proof = InclusionProof(index, tuple(hashes), rest, extra)
    proof.checkpoint()  # refuses a malformed note or checkpoint now, not at verification
    return proof
