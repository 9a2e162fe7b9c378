"""Signing keys for the trust tests, made the two ways users make them: with the openssl
CLI (every PEM form it writes) and with the `cryptography` package.

Nothing is stored in the repository: every test run generates fresh keys.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from helpers import intoto_statement

PASSWORD = "correct horse battery staple 7!"
FIXTURES = Path(__file__).parent / "fixtures" / "attestations"
PUBLISH_BUNDLE = FIXTURES / "sigstore-go-bundle-publish.json"
PUBLISH_KEY = FIXTURES / "sigstore-go-publish_key.pub"
INTOTO = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class KeyPair:
    """A private key file, its public key file, and the password when it is encrypted."""

    name: str
    private: Path
    public: Path
    algorithm: str  # as deploytrack names it
    password: str | None = None

    @property
    def stdin(self) -> str | None:
        return None if self.password is None else self.password + "\n"

    def loaded(self) -> Any:
        password = self.password.encode() if self.password else None
        return serialization.load_pem_private_key(self.private.read_bytes(), password)


def openssl(*args: str | Path) -> bytes:
    proc = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.decode()[-1000:]}")
    return proc.stdout


def _pub(private: Path, public: Path, password: str | None = None) -> None:
    extra = ["-passin", f"pass:{password}"] if password else []
    openssl("pkey", "-in", private, *extra, "-pubout", "-out", public)


def openssl_keys(folder: Path) -> dict[str, KeyPair]:
    """Every form: traditional and PKCS#8, plain and encrypted, ECDSA P-256/P-384, Ed25519
    and RSA, as `openssl ecparam/genpkey/genrsa/ec/rsa/pkcs8` write them."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, KeyPair] = {}

    def add(name: str, algorithm: str, password: str | None = None) -> None:
        private = folder / f"{name}.pem"
        public = folder / f"{name}.pub"
        _pub(private, public, password)
        out[name] = KeyPair(name, private, public, algorithm, password)

    pw = f"pass:{PASSWORD}"
    # ecparam -genkey writes an EC PARAMETERS block before BEGIN EC PRIVATE KEY.
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-out", folder / "ec-ecparam.pem")
    add("ec-ecparam", "ecdsa-p256")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", folder / "ec-trad.pem")
    add("ec-trad", "ecdsa-p256")
    openssl(
        "ec", "-in", folder / "ec-trad.pem", "-aes256", "-passout", pw,
        "-out", folder / "ec-trad-enc.pem",
    )  # fmt: skip
    add("ec-trad-enc", "ecdsa-p256", PASSWORD)
    openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", folder / "ec-pkcs8.pem",
    )  # fmt: skip
    add("ec-pkcs8", "ecdsa-p256")
    openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-aes256", "-pass", pw, "-out", folder / "ec-pkcs8-enc.pem",
    )  # fmt: skip
    add("ec-pkcs8-enc", "ecdsa-p256", PASSWORD)
    openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384",
        "-out", folder / "ec384-pkcs8.pem",
    )  # fmt: skip
    add("ec384-pkcs8", "ecdsa-p384")
    openssl("genpkey", "-algorithm", "ed25519", "-out", folder / "ed25519-pkcs8.pem")
    add("ed25519-pkcs8", "ed25519")
    openssl(
        "pkcs8", "-topk8", "-in", folder / "ed25519-pkcs8.pem", "-v2", "aes-256-cbc",
        "-passout", pw, "-out", folder / "ed25519-pkcs8-enc.pem",
    )  # fmt: skip
    add("ed25519-pkcs8-enc", "ed25519", PASSWORD)
    openssl("genrsa", "-traditional", "-out", folder / "rsa-trad.pem", "2048")
    add("rsa-trad", "rsa-2048")
    openssl(
        "rsa", "-in", folder / "rsa-trad.pem", "-aes256", "-traditional", "-passout", pw,
        "-out", folder / "rsa-trad-enc.pem",
    )  # fmt: skip
    add("rsa-trad-enc", "rsa-2048", PASSWORD)
    openssl(
        "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072",
        "-out", folder / "rsa-pkcs8.pem",
    )  # fmt: skip
    add("rsa-pkcs8", "rsa-3072")
    return out


def cryptography_keys(folder: Path) -> dict[str, KeyPair]:
    """Keys the `cryptography` package writes: PKCS#8 and traditional, plain and encrypted."""
    folder.mkdir(parents=True, exist_ok=True)
    keys: dict[str, tuple[Any, str]] = {
        "py-ec": (ec.generate_private_key(ec.SECP256R1()), "ecdsa-p256"),
        "py-ec384": (ec.generate_private_key(ec.SECP384R1()), "ecdsa-p384"),
        "py-ed25519": (ed25519.Ed25519PrivateKey.generate(), "ed25519"),
        "py-rsa": (rsa.generate_private_key(public_exponent=65537, key_size=2048), "rsa-2048"),
    }
    out: dict[str, KeyPair] = {}
    for name, (key, algorithm) in keys.items():
        forms = [("", serialization.PrivateFormat.PKCS8)]
        if algorithm != "ed25519":  # Ed25519 has no traditional form
            forms.append(("-trad", serialization.PrivateFormat.TraditionalOpenSSL))
        for suffix, fmt in forms:
            for enc in (False, True):
                full = f"{name}{suffix}{'-enc' if enc else ''}"
                private = folder / f"{full}.pem"
                encryption = (
                    serialization.BestAvailableEncryption(PASSWORD.encode())
                    if enc
                    else serialization.NoEncryption()
                )
                private.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, encryption))
                public = folder / f"{full}.pub"
                public.write_bytes(
                    key.public_key().public_bytes(
                        serialization.Encoding.PEM,
                        serialization.PublicFormat.SubjectPublicKeyInfo,
                    )
                )
                out[full] = KeyPair(full, private, public, algorithm, PASSWORD if enc else None)
    return out


def ed25519_pair(folder: Path, stem: str) -> tuple[Path, Path]:
    """A fresh Ed25519 key pair as PEM files `stem.pem` (PKCS#8) and `stem.pub`: what the
    log's checkpoints and the audit bundle are signed with."""
    key = ed25519.Ed25519PrivateKey.generate()
    private, public = folder / f"{stem}.pem", folder / f"{stem}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def pae(payload_type: str, payload: bytes) -> bytes:
    """PAE written here from the DSSE spec, independently of deploytrack's."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign(key: Any, message: bytes, pss: bool = False) -> bytes:
    """A signature as cosign makes it (pss: RSA-PSS instead of PKCS#1 v1.5)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()
        return key.sign(message, ec.ECDSA(digest))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    pad = (
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
        if pss
        else padding.PKCS1v15()
    )
    return key.sign(message, pad, hashes.SHA256())


def statement(*digests: str, predicate_type: str = "https://slsa.dev/provenance/v1") -> bytes:
    predicate = {"buildDefinition": {"buildType": "https://example.com/build@v1"}}
    subjects = (("app", d) for d in digests)
    return json.dumps(
        intoto_statement(subjects, predicate_type, predicate), sort_keys=True
    ).encode()


def envelope(payload: bytes, *signatures: tuple[str, bytes], payload_type: str = INTOTO) -> bytes:
    """A DSSE envelope written here (not by deploytrack), pretty-printed like other tools."""
    return json.dumps(
        {
            "payloadType": payload_type,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [
                {"keyid": keyid, "sig": base64.b64encode(sig).decode()} for keyid, sig in signatures
            ],
        },
        indent=2,
    ).encode()


def signed_envelope(key: Any, payload: bytes, keyid: str = "", pss: bool = False) -> bytes:
    return envelope(payload, (keyid, sign(key, pae(INTOTO, payload), pss=pss)))


def bundle(envelope_bytes: bytes, hint: str = "") -> bytes:
    """A Sigstore bundle v0.3 carrying a DSSE envelope, with a public key hint."""
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": hint}},
            "dsseEnvelope": json.loads(envelope_bytes),
        },
        indent=2,
    ).encode()
