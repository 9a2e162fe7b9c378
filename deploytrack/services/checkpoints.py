"""Checkpoints of the event log: made from the store, signed with an Ed25519 key, and the
keys that verify them (c2sp.org/tlog-checkpoint as a c2sp.org/signed-note).

The signer's name is the log's origin, so a checkpoint names its database twice: in its
first line and in its signature. The formats themselves: tlog/note.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploytrack.services import ServiceError, read_named_file
from deploytrack.store import Store, eventlog

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from deploytrack.tlog.merkle import Subtree
    from deploytrack.tlog.note import Checkpoint, Note, Verifier

# What the keys of these commands sign, in messages.
PURPOSE = "log checkpoints"
# A checkpoint is a few hundred bytes; a proof carries one and an event. Files read from
# outside are bounded: the signed-note limit, 1 MiB.
MAX_FILE_BYTES = 1 << 20


def current(store: Store) -> Checkpoint:
    """The checkpoint of the whole log as it is now."""
    from deploytrack.tlog.note import Checkpoint

    with store.read():
        size, root = eventlog.root(store.db)
        return Checkpoint(eventlog.origin(store.db), size, root)


def signer(path: str, password: bytes | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file `path` (refused, in one line, otherwise)."""
    from deploytrack.crypto.keys import load_private_key_file

    return load_private_key_file(path, password).ed25519(PURPOSE)


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> str:
    """The checkpoint as a signed note, signed under the name of its origin."""
    from deploytrack.tlog.note import sign_note

    return sign_note(checkpoint.text(), checkpoint.origin, key)


def verifiers(paths: Sequence[str], origin: str) -> list[Verifier]:
    """The note verifiers of the Ed25519 public keys in `paths`, named by `origin`."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from deploytrack.crypto.keys import load_public_key_file
    from deploytrack.tlog.note import verifier_of

    out = []
    for path in paths:
        public = load_public_key_file(path)
        if not isinstance(public.key, Ed25519PublicKey):
            raise ServiceError(
                f"{path} is an {public.algorithm} key, but {PURPOSE} are signed with Ed25519: "
                "give the public half of the key that signed them"
            )
        out.append(verifier_of(origin, public.key))
    return out


def read_file(path: str, what: str) -> bytes:
    """The bytes of a file the user named (a checkpoint, a proof, an event), at most
    1 MiB; `what` names it in messages. FIFOs and devices are refused, never waited on."""
    return read_named_file(path, what, MAX_FILE_BYTES, f"is larger than 1 MiB: it is not a {what}")


@dataclass(frozen=True)
class Kept:
    """A checkpoint kept elsewhere and read back: the file, and what its bytes say.
    `note` is None for a bare checkpoint (no signature lines)."""

    path: str
    data: bytes
    checkpoint: Checkpoint
    note: Note | None


def load(path: str) -> Kept:
    """The checkpoint in the file `path`: a signed note or a bare checkpoint, well formed
    (signatures are checked by `problem`, which knows the keys)."""
    from deploytrack.tlog import LogFormatError
    from deploytrack.tlog.note import open_note, read_checkpoint

    data = read_file(path, "checkpoint")
    try:
        checkpoint = read_checkpoint(data)
        note = open_note(data) if b"\n\n" in data else None
    except LogFormatError as exc:
        raise ServiceError(f"checkpoint {path} is not a checkpoint: {exc}") from None
    return Kept(path, data, checkpoint, note)


def problem(
    kept: Kept,
    origin: str,
    size: int,
    root: bytes,
    subtree: Subtree,
    keys: Sequence[Verifier] = (),
) -> str | None:
    """Why the kept checkpoint does not vouch for this log (origin, size and root now,
    its stored nodes), or None: it is this log's, signed by one of `keys` when any are
    given, no larger than the log, and the log extends it (RFC 9162 consistency)."""
    from deploytrack.tlog import LogFormatError, merkle

    old, path = kept.checkpoint, kept.path
    if old.origin != origin:
        return f"checkpoint {path} is of another log (origin {old.origin}, this log is {origin})"
    if keys:
        if kept.note is None:
            return (
                f"checkpoint {path} is not signed: it is a bare checkpoint, and --key asks for "
                "a signature by one of the given keys"
            )
        try:
            signed = [k for k in keys if kept.note.verify(k, what=f"checkpoint {path}")]
        except LogFormatError as exc:
            return str(exc)
        if not signed:
            wanted = ", ".join(k.label for k in keys)
            carried = ", ".join(dict.fromkeys(s.label for s in kept.note.signatures))
            return (
                f"checkpoint {path} is not signed by any of the given keys ({wanted}): it "
                f"carries signatures by {carried}"
            )
    if old.size > size:
        return (
            f"checkpoint {path} is for {old.size} events, this log has {size}: events were removed"
        )
    rewritten = (
        f"checkpoint size {old.size} (root {old.root.hex()[:16]}…) in {path} is not a prefix "
        f"of this log: the history up to event {old.size} was rewritten"
    )
    if old.size == 0:
        # No proof from the empty tree exists (merkle refuses one): its root is the check.
        return None if old.root == merkle.EMPTY_ROOT else rewritten
    try:
        proof = merkle.consistency_proof(old.size, size, subtree)
        merkle.verify_consistency(old.size, size, proof, old.root, root)
    except merkle.ProofError:
        return rewritten
    return None


__all__ = [
    "MAX_FILE_BYTES",
    "PURPOSE",
    "Kept",
    "current",
    "load",
    "problem",
    "read_file",
    "sign",
    "signer",
    "verifiers",
]
