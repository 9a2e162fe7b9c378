"""Keys for DSSE signatures: load, fingerprint, sign and verify, all with `cryptography`.

Private keys (`attestation create --key`): PEM, in the forms openssl writes:

    PKCS#8               BEGIN PRIVATE KEY / BEGIN ENCRYPTED PRIVATE KEY
    traditional OpenSSL  BEGIN EC PRIVATE KEY / BEGIN RSA PRIVATE KEY, plain or encrypted
                         (Proc-Type: 4,ENCRYPTED); a leading EC PARAMETERS block is fine

Public keys (`--key` of verify, `--trusted-key` of policies): PEM SubjectPublicKeyInfo
(BEGIN PUBLIC KEY, what `openssl pkey -pubout` and `cosign generate-key-pair` write) or
PKCS#1 (BEGIN RSA PUBLIC KEY).

Algorithms, as cosign and sigstore use them over the DSSE pre-authentication encoding:

    ECDSA P-256 / P-384 / P-521   SHA-256 / SHA-384 / SHA-512, ASN.1 DER signatures
                                  (IEEE P1363 r||s is accepted when verifying)
    Ed25519                       pure Ed25519
    RSA, 2048 bits or more        signs PKCS#1 v1.5 with SHA-256 (cosign's default);
                                  verifies that or PSS (MGF1 SHA-256, any salt length)

The fingerprint of a public key is OpenSSH's: "SHA256:" + unpadded base64 of the sha256
of the key's SSH wire encoding. `ssh-keygen -l` prints the same value, and it is what
Sigstore bundles and npm put in `publicKey.hint` / the DSSE `keyid`.

Private keys and passwords are held only in memory: never stored, printed or put in a
message. Messages name the file a key came from, never its content.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from deploytrack.errors import DeploytrackError

MAX_KEY_FILE_BYTES = 64 * 1024
MIN_RSA_BITS = 2048
_EC_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
_EC_NAMES = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}
_COSIGN_HEADERS = (b"ENCRYPTED SIGSTORE PRIVATE KEY", b"ENCRYPTED COSIGN PRIVATE KEY")


class KeyFileError(DeploytrackError):
    """A key file that cannot be used: unreadable, of another kind, encrypted, unsupported."""


def _algorithm(key: Any, source: str) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        name = _EC_NAMES.get(key.curve.name)
        if name is None:
            raise KeyFileError(
                f"{source}: the elliptic curve {key.curve.name} is not supported: use P-256, "
                "P-384 or P-521"
            )
        return name
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyFileError(
                f"{source}: RSA keys of {key.key_size} bits are too weak: use {MIN_RSA_BITS} "
                "bits or more"
            )
        return f"rsa-{key.key_size}"
    raise KeyFileError(
        f"{source}: unsupported key type {type(key).__name__.removeprefix('_')}: use ECDSA "
        "(P-256, P-384, P-521), Ed25519 or RSA"
    )


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint of a public key (as `ssh-keygen -l` prints it)."""
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class PublicKey:
    """A public key with its stable names. `pem` is its SubjectPublicKeyInfo PEM."""

    algorithm: str
    fingerprint: str
    pem: str
    source: str
    key: Any = field(repr=False, compare=False)

    @classmethod
    def of(cls, key: Any, source: str) -> PublicKey:
        algorithm = _algorithm(key, source)
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
        return cls(algorithm, fingerprint(key), pem, source, key)

    def __str__(self) -> str:
        return f"{self.fingerprint} ({self.algorithm})"

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when `signature` is this key's signature over `message`."""
        key = self.key
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                algorithm = ec.ECDSA(_EC_HASHES[key.curve.name]())
                for candidate in _ecdsa_forms(signature, key):
                    try:
                        key.verify(candidate, message, algorithm)
                        return True
                    except InvalidSignature:
                        continue
                return False
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, message)
                return True
            if isinstance(key, rsa.RSAPublicKey):
                for pad in (
                    padding.PKCS1v15(),
                    padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                ):
                    try:
                        key.verify(signature, message, pad, hashes.SHA256())
                        return True
                    except InvalidSignature:
                        continue
                return False
        except (InvalidSignature, ValueError):
            return False
        return False


def _ecdsa_forms(signature: bytes, key: ec.EllipticCurvePublicKey) -> list[bytes]:
    """The DER signature, and the DER form of an IEEE P1363 (r||s) one of the curve's size."""
    forms = [signature]
    size = (key.curve.key_size + 7) // 8
    if len(signature) == 2 * size:
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        if r and s:
            forms.append(encode_dss_signature(r, s))
    return forms


class SigningKey:
    """A private key, loaded for one command. Its repr and str never show the key."""

    def __init__(self, private: Any, source: str) -> None:
        self._private = private
        self.public = PublicKey.of(private.public_key(), source)
        self.source = source

    def __repr__(self) -> str:
        return f"SigningKey({self.public})"

    __str__ = __repr__

    def ed25519(self, purpose: str) -> ed25519.Ed25519PrivateKey:
        """The key itself, for a format that signs only with Ed25519 (signed notes)."""
        if not isinstance(self._private, ed25519.Ed25519PrivateKey):
            raise KeyFileError(
                f"{self.source} is an {self.public.algorithm} key, but {purpose} are signed "
                "with Ed25519: create one with 'openssl genpkey -algorithm ed25519 -out KEY'"
            )
        return self._private

    def sign(self, message: bytes) -> bytes:
        key = self._private
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(message, ec.ECDSA(_EC_HASHES[key.curve.name]()))
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        raise KeyFileError(f"{self.source}: unsupported key type")  # _algorithm refused it


def read_key_file(path: str | Path, what: str) -> bytes:
    """The bytes of a key file (at most 64 KiB); `what` names it in messages."""
    from deploytrack.files import read_at_most

    try:
        data = read_at_most(path, MAX_KEY_FILE_BYTES)
    except IsADirectoryError:
        raise KeyFileError(f"{what} {path} is a directory, not a PEM key file") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{what} {path} is larger than 64 KiB: it is not a PEM key")
    return data


def load_public_key(data: bytes, source: str) -> PublicKey:
    """A public key from PEM bytes. A private key or a certificate is refused with a hint."""
    if b"PRIVATE KEY-----" in data:
        raise KeyFileError(
            f"{source} is a private key: give its public key instead (openssl pkey -in KEY "
            "-pubout -out key.pub); private keys are never stored"
        )
    if b"-----BEGIN CERTIFICATE-----" in data:
        raise KeyFileError(
            f"{source} is a certificate: give the public key it certifies (openssl x509 -in "
            "CERT -pubkey -noout > key.pub); deploytrack verifies keys, not certificate "
            "identities"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"{source} is not a PEM public key: expected -----BEGIN PUBLIC KEY----- "
            "(SubjectPublicKeyInfo, as openssl pkey -pubout and cosign write)"
        ) from None
    return PublicKey.of(key, source)


def load_public_key_file(path: str | Path) -> PublicKey:
    return load_public_key(read_key_file(path, "public key"), str(path))


def _is_encrypted(data: bytes) -> bool:
    return b"BEGIN ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data


def load_private_key(data: bytes, source: str, password: bytes | None) -> SigningKey:
    """A signing key from PEM bytes, decrypted with `password` when it is encrypted."""
    if any(header in data for header in _COSIGN_HEADERS):
        raise KeyFileError(
            f"{source} is in cosign's own encrypted format (scrypt and NaCl secretbox), which "
            "the cryptography package cannot open: create the key with openssl (PKCS#8 or "
            "traditional PEM) and give it to cosign with 'cosign import-key-pair'"
        )
    if b"PRIVATE KEY-----" not in data:
        if b"PUBLIC KEY-----" in data:
            raise KeyFileError(f"{source} is a public key: --key needs the private key")
        raise KeyFileError(
            f"{source} is not a PEM private key: expected PKCS#8 (BEGIN PRIVATE KEY) or "
            "traditional (BEGIN EC PRIVATE KEY, BEGIN RSA PRIVATE KEY)"
        )
    if b"OPENSSH PRIVATE KEY" in data:
        raise KeyFileError(
            f"{source} is an OpenSSH private key: convert it to PKCS#8 "
            "(ssh-keygen -p -m PKCS8 -f KEY) or create a PEM key with openssl"
        )
    encrypted = _is_encrypted(data)
    if encrypted and password is None:
        raise KeyFileError(
            f"{source} is encrypted: give --key-password-stdin and the password on stdin"
        )
    if not encrypted and password is not None:
        raise KeyFileError(
            f"{source} is not encrypted, but --key-password-stdin was given: leave it out"
        )
    try:
        private = serialization.load_pem_private_key(data, password)
    except ValueError:
        # A wrong password is not always reported as one: the traditional PEM encryption
        # (MD5-derived key, CBC) sometimes decrypts to bytes with valid padding that are
        # then not a key. For an encrypted file, any failure here is reported the same way.
        if encrypted:
            raise KeyFileError(
                f"cannot decrypt {source}: wrong password (or a damaged key file)"
            ) from None
        raise KeyFileError(
            f"{source} is not a private key deploytrack can read (damaged, or an unsupported "
            "PEM form)"
        ) from None
    except (TypeError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"{source} is not a private key deploytrack can read (unsupported algorithm or "
            "encryption)"
        ) from None
    _algorithm(private, source)
    return SigningKey(private, source)


def load_private_key_file(path: str | Path, password: bytes | None) -> SigningKey:
    return load_private_key(read_key_file(path, "private key"), str(path), password)


__all__ = [
    "KeyFileError",
    "PublicKey",
    "SigningKey",
    "fingerprint",
    "load_private_key",
    "load_private_key_file",
    "load_public_key",
    "load_public_key_file",
]
