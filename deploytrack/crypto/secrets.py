"""Secret variables: AES-256-GCM (the `cryptography` package) with a key file kept outside
the database.

The key lives in `platformdirs.user_config_dir("deploytrack")/secrets.key` (or the file
named by $DEPLOYTRACK_SECRETS_KEY_FILE): 32 random bytes, base64 on one line, mode 0600,
created on first use. The database holds only nonce + ciphertext + tag and the key's id,
so a database handed to an auditor reveals no secret, and decrypting with a lost or
different key fails with a clear error instead of garbage (GCM authenticates every
ciphertext). The associated data binds each ciphertext to its variable and scope, so a
ciphertext copied to another variable does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from deploytrack import locations
from deploytrack.errors import DeploytrackError
from deploytrack.files import make_private_folders, open_new_private

KEY_FILE_ENV = locations.SECRETS_KEY_ENV
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_BYTES = 32


class SecretsError(DeploytrackError):
    """A secret could not be encrypted or decrypted."""


def key_path() -> Path:
    return Path(locations.secrets_key_path())


def key_id(key: bytes) -> str:
    """A public name for a key: tells which key encrypted a secret, reveals nothing of it."""
    return hashlib.sha256(b"deploytrack secrets key id\0" + key).hexdigest()[:16]


def _read_key(path: Path) -> bytes:
    """The key in `path`; FileNotFoundError when there is none."""
    try:
        text = path.read_text(encoding="ascii").strip()
        key = base64.b64decode(text, validate=True)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretsError(f"cannot read the secrets key {path}: {exc.strerror}") from None
    except ValueError:
        raise SecretsError(
            f"the secrets key {path} is damaged (not one line of base64): restore it from a backup"
        ) from None
    if len(key) != _KEY_BYTES:
        raise SecretsError(
            f"the secrets key {path} is not a deploytrack key ({len(key)} bytes, not "
            f"{_KEY_BYTES}): restore it from a backup"
        )
    return key


def _create_key(path: Path) -> bytes:
    """Write a new random key; if another process won the race, use its key.

    The key is written to a private temporary file and hard-linked into place, so no
    process ever reads a half-written key and an existing key is never replaced.
    """
    make_private_folders(path.parent)
    key = os.urandom(_KEY_BYTES)
    line = (base64.b64encode(key).decode() + "\n").encode()
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_new_private(temp)
    try:
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # fails if the file exists: never replace a key
        except FileExistsError:
            return _read_key(path)
        except OSError:
            # A file system without hard links: create the file exclusively instead.
            try:
                fd = open_new_private(path)
            except FileExistsError:
                return _read_key(path)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return key
    finally:
        temp.unlink(missing_ok=True)


class SecretBox:
    """Encrypts and decrypts secret values with the key file's key."""

    def __init__(self, key: bytes, path: Path) -> None:
        self._key = key
        self.path = path
        self.key_id = key_id(key)

    @classmethod
    def existing(cls) -> SecretBox | None:
        """The key in use, or None when its file does not exist (nothing is created)."""
        path = key_path()
        try:
            return cls(_read_key(path), path)
        except FileNotFoundError:
            return None

    @classmethod
    def load(cls, *, create: bool) -> SecretBox:
        """The key in use; `create` makes one when there is none (to encrypt, never to
        decrypt: a new key cannot read old secrets)."""
        path = key_path()
        try:
            return cls(_read_key(path), path)
        except FileNotFoundError:
            if not create:
                raise SecretsError(
                    f"the secrets key {path} does not exist: secrets cannot be decrypted "
                    f"without the key that encrypted them (restore the file, or set "
                    f"{KEY_FILE_ENV} to it)"
                ) from None
        try:
            return cls(_create_key(path), path)
        except OSError as exc:
            raise SecretsError(
                f"cannot create the secrets key {path}: {exc.strerror} (set {KEY_FILE_ENV} to "
                "a writable path)"
            ) from None

    def encrypt(self, plaintext: str, associated: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(self._key).encrypt(nonce, plaintext.encode("utf-8"), associated)

    def decrypt(self, blob: bytes, associated: bytes, expected_key_id: str) -> str:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if expected_key_id != self.key_id:
            raise SecretsError(
                f"a secret was encrypted with key {expected_key_id}, but {self.path} holds key "
                f"{self.key_id}: restore the original key file (or set {KEY_FILE_ENV} to it), "
                "or set the secret again"
            )
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            raise SecretsError("a stored secret is damaged (too short): set it again")
        try:
            data = AESGCM(self._key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], associated)
        except InvalidTag:
            raise SecretsError(
                "a stored secret does not decrypt with its key: it was damaged or moved to "
                "another variable; set it again"
            ) from None
        return data.decode("utf-8")
