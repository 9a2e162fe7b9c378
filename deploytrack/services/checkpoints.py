"""Checkpoints of the event log: made from the store, signed with an Ed25519 key, and the
keys that verify them (c2sp.org/tlog-checkpoint as a c2sp.org/signed-note).

The signer's name is the log's origin, so a checkpoint names its database twice: in its
first line and in its signature. The formats themselves: tlog/note.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from deploytrack.services import ServiceError
from deploytrack.store import Store, eventlog

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from deploytrack.tlog.note import Checkpoint, Verifier

# What the keys of these commands sign, in messages.
PURPOSE = "log checkpoints"


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


__all__ = ["PURPOSE", "current", "sign", "signer", "verifiers"]
