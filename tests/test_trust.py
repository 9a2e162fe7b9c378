"""Keys, fingerprints, the DSSE pre-authentication encoding, and `attestation verify`.

Keys are generated here by the openssl CLI (every PEM form it writes) and by the
`cryptography` package. Envelopes and bundles are signed here with keyutil's own PAE
(written from the DSSE spec), so deploytrack's encoding is checked against another one.
The real cases come from Sigstore: the npm publish bundle and its key, and the
conformance bundles whose signature verifies (or does not) with their certificate's key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    DB_ERRORS,
    INTEGRITY_ERRORS,
    NGINX_FULL,
    Invoke,
    assert_refused,
    attestation,
    query,
    raw,
    snapshot,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from helpers import sha256_digest
from keyutil import (
    INTOTO,
    PASSWORD,
    PUBLISH_BUNDLE,
    PUBLISH_KEY,
    KeyPair,
    bundle,
    cryptography_keys,
    envelope,
    openssl,
    openssl_keys,
    pae,
    sign,
    signed_envelope,
    statement,
)

from deploytrack.crypto.keys import (
    KeyFileError,
    load_private_key,
    load_private_key_file,
    load_public_key,
    load_public_key_file,
)
from deploytrack.evidence import Envelope, Signature
from deploytrack.evidence import dsse as dsse_module
from deploytrack.services.trust import verify_envelope

APP = "sha256:" + hashlib.sha256(b"the app image").hexdigest()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    folder = tmp_path_factory.mktemp("keys")
    return {**openssl_keys(folder / "openssl"), **cryptography_keys(folder / "py")}


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """A key that signs nothing in these tests."""
    folder = tmp_path_factory.mktemp("other")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", folder / "other.pem")  # fmt: skip
    openssl("pkey", "-in", folder / "other.pem", "-pubout", "-out", folder / "other.pub")
    return KeyPair("other", folder / "other.pem", folder / "other.pub", "ecdsa-p256")


def put(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def imported(ok: Invoke, tmp_path: Path, name: str, data: bytes) -> str:
    ok("attestation", "import", str(put(tmp_path, name, data)))
    return sha256_digest(data)


def verify(run: Invoke, digest: str, *key_files: Path | str, output: str = "table") -> Any:
    args = ["attestation", "verify", digest]
    for key in key_files:
        args += ["--key", str(key)]
    return run(*args, "-o", output)


def ssh_fingerprint(public: Any) -> str:
    """OpenSSH's fingerprint, from the SSH wire format built here by hand (RFC 4253/5656/8709)."""

    def string(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    def mpint(value: int) -> bytes:
        raw = value.to_bytes((value.bit_length() + 8) // 8, "big")  # a leading 0 when needed
        return string(raw)

    if isinstance(public, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "nistp256", "secp384r1": "nistp384"}[public.curve.name]
        point = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        blob = string(f"ecdsa-sha2-{curve}".encode()) + string(curve.encode()) + string(point)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        blob = string(b"ssh-ed25519") + string(raw)
    else:
        numbers = public.public_numbers()
        blob = string(b"ssh-rsa") + mpint(numbers.e) + mpint(numbers.n)
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return "SHA256:" + digest


# --- fingerprints and PAE -----------------------------------------------------------------


def test_fingerprint_of_the_sigstore_key_is_the_bundles_hint_and_keyid() -> None:
    key = load_public_key_file(PUBLISH_KEY)
    doc = json.loads(PUBLISH_BUNDLE.read_bytes())
    assert key.algorithm == "ecdsa-p256"
    assert key.fingerprint == doc["verificationMaterial"]["publicKey"]["hint"]
    assert key.fingerprint == doc["dsseEnvelope"]["signatures"][0]["keyid"]


def test_fingerprint_is_openssh_sha256_for_every_key_type(keys: dict[str, KeyPair]) -> None:
    seen = set()
    for pair in keys.values():
        key = load_public_key_file(pair.public)
        public = serialization.load_pem_public_key(pair.public.read_bytes())
        assert key.fingerprint == ssh_fingerprint(public), pair.name
        assert key.algorithm == pair.algorithm, pair.name
        # The private key gives the same public key and fingerprint.
        private = load_private_key_file(
            pair.private, pair.password.encode() if pair.password else None
        )
        assert private.public.fingerprint == key.fingerprint
        seen.add(key.algorithm)
    assert seen == {"ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-2048", "rsa-3072"}


def test_pae_matches_the_dsse_spec_example() -> None:
    # https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
    assert (
        dsse_module.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert dsse_module.pae("", b"") == b"DSSEv1 0  0 "
    # Lengths are in bytes, not characters.
    assert dsse_module.pae("tÿpe", "é".encode()) == b"DSSEv1 5 t\xc3\xbfpe 2 \xc3\xa9"
    for payload in (b"", b"x", b"{}" * 1000, bytes(range(256))):
        assert dsse_module.pae(INTOTO, payload) == pae(INTOTO, payload)


# --- the real Sigstore cases --------------------------------------------------------------


def test_publish_bundle_verifies_with_its_key_and_is_remembered(
    ok: Invoke, run: Invoke, db_path: Path
) -> None:
    ok("attestation", "import", str(PUBLISH_BUNDLE))
    digest = sha256_digest(PUBLISH_BUNDLE.read_bytes())
    result = verify(run, digest, PUBLISH_KEY, output="json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    hint = json.loads(PUBLISH_BUNDLE.read_bytes())["verificationMaterial"]["publicKey"]["hint"]
    assert body["attestation"] == digest
    assert body["format"] == "sigstore-bundle"
    assert body["signatures"] == 1
    [verified] = body["verified"]
    assert (verified["signature"], verified["fingerprint"], verified["algorithm"]) == (
        1,
        hint,
        "ecdsa-p256",
    )
    described = json.loads(ok("attestation", "describe", digest, "-o", "json").stdout)
    [remembered] = described["verifications"]
    assert remembered["fingerprint"] == hint
    assert remembered["source"] == "verify"
    assert remembered["verified_at"] == body["verified_at"]
    text = ok("attestation", "describe", digest).stdout
    assert hint in text and "attestation verify" in text
    # The database holds the public key, and only it.
    [row] = query(db_path, "SELECT fingerprint, algorithm, pem FROM public_key")
    assert row["fingerprint"] == hint
    assert load_public_key(row["pem"].encode(), "db").fingerprint == hint


def test_publish_bundle_with_one_payload_byte_changed_does_not_verify(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path
) -> None:
    doc = json.loads(PUBLISH_BUNDLE.read_bytes())
    payload = bytearray(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    # One byte inside a string value, so the statement still parses and imports.
    at = payload.index(b'"name":"') + len(b'"name":"')
    payload[at] = ord("X") if payload[at] != ord("X") else ord("Y")
    doc["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    digest = imported(ok, tmp_path, "tampered.json", json.dumps(doc).encode())
    before = snapshot(db_path)
    result = verify(run, digest, PUBLISH_KEY)
    assert_refused(result, contains="no signature on attestation")
    assert "names key SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA" in result.stderr
    assert "changed after signing" in result.stderr
    assert snapshot(db_path) == before  # a failure is not remembered


def test_publish_bundle_does_not_verify_with_a_key_that_did_not_sign_it(
    ok: Invoke, run: Invoke, db_path: Path, other_key: KeyPair, keys: dict[str, KeyPair]
) -> None:
    ok("attestation", "import", str(PUBLISH_BUNDLE))
    digest = sha256_digest(PUBLISH_BUNDLE.read_bytes())
    before = snapshot(db_path)
    for key in (other_key.public, keys["ed25519-pkcs8"].public, keys["rsa-trad"].public):
        result = verify(run, digest, key)
        assert_refused(result, contains="signed by another key")
    assert snapshot(db_path) == before
    # Among several keys, the one that signed is found.
    result = verify(run, digest, other_key.public, PUBLISH_KEY)
    assert result.exit_code == 0
    assert load_public_key_file(PUBLISH_KEY).fingerprint in result.stdout


def _leaf_key(bundle_path: Path, folder: Path) -> Path:
    """The public key of a keyless bundle's leaf certificate, as a PEM file."""
    material = json.loads(bundle_path.read_bytes())["verificationMaterial"]
    raw = (
        material["certificate"]["rawBytes"]
        if "certificate" in material
        else material["x509CertificateChain"]["certificates"][0]["rawBytes"]
    )
    cert = x509.load_der_x509_certificate(base64.b64decode(raw))
    path = folder / f"{bundle_path.stem}.pub"
    path.write_bytes(
        cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.mark.parametrize(
    ("name", "verifies"),
    [
        ("sigstore-conformance-happy-path-intoto-in-dsse-v3.sigstore.json", True),
        ("sigstore-conformance-dsse-invalid-sig.sigstore.json", False),
        ("chainloop-attestation-bundle.json", True),
        ("chainloop-slsa_provenance.sigstore.json", True),
        ("sigstore-go-bundle-provenance.json", True),
        # Chainloop encodes the signature twice (base64 of the base64 text).
        ("chainloop-bundle.json", True),
    ],
)
def test_keyless_bundles_with_their_certificate_key(
    ok: Invoke, run: Invoke, tmp_path: Path, name: str, verifies: bool
) -> None:
    """Key-based verification with the key a keyless bundle's certificate names: the
    signature check alone (no chain, no identity), on real bundles of both outcomes."""
    path = attestation(name)
    ok("attestation", "import", str(path))
    result = verify(run, sha256_digest(path.read_bytes()), _leaf_key(path, tmp_path))
    if verifies:
        assert result.exit_code == 0, result.stderr
    else:
        assert_refused(result, contains="no signature on attestation")


# --- every verification path, every key type, every tamper --------------------------------


def _flip(data: bytes, index: int = -1) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def test_every_key_type_bare_dsse_and_bundle_and_their_tampering(
    ok: Invoke, run: Invoke, tmp_path: Path, keys: dict[str, KeyPair], other_key: KeyPair
) -> None:
    payload = statement(APP)
    tampered_payload = statement("sha256:" + "ab" * 32)
    for pair in keys.values():
        key = pair.loaded()
        signature = sign(key, pae(INTOTO, payload))
        cases = {
            "dsse": (envelope(payload, ("", signature)), True),
            "bundle": (bundle(envelope(payload, ("", signature))), True),
            # The payload changed after signing.
            "dsse-payload": (envelope(tampered_payload, ("", signature)), False),
            "bundle-payload": (bundle(envelope(tampered_payload, ("", signature))), False),
            # Signed over another payloadType than the envelope declares.
            "dsse-type": (
                envelope(payload, ("", sign(key, pae("text/plain", payload)))),
                False,
            ),
            # The signature bytes changed (last byte, then first byte).
            "dsse-sig": (envelope(payload, ("", _flip(signature))), False),
            "bundle-sig": (bundle(envelope(payload, ("", _flip(signature, 0)))), False),
        }
        for case, (data, verifies) in cases.items():
            digest = imported(ok, tmp_path, f"{pair.name}-{case}.json", data)
            result = verify(run, digest, pair.public)
            if verifies:
                assert result.exit_code == 0, (pair.name, case, result.stderr)
                # ...and not with another key.
                assert_refused(verify(run, digest, other_key.public))
            else:
                assert_refused(result, contains="no signature on attestation")


def test_payload_type_is_bound_by_the_signature(keys: dict[str, KeyPair]) -> None:
    """The parser refuses other payload types at import, so this path is checked on the
    envelope itself: the same payload and signature under another type do not verify."""
    pair = keys["ec-pkcs8"]
    payload = statement(APP)
    sig = base64.b64encode(sign(pair.loaded(), pae(INTOTO, payload))).decode()
    public = load_public_key_file(pair.public)
    good = Envelope(INTOTO, payload, (Signature("", sig),))
    assert [m.index for m in verify_envelope(good, [public])] == [1]
    for other_type in ("application/vnd.in-toto+JSON", "text/plain", INTOTO + " ", ""):
        assert verify_envelope(Envelope(other_type, payload, good.signatures), [public]) == []
    assert verify_envelope(Envelope(INTOTO, payload + b" ", good.signatures), [public]) == []


def test_signature_forms_other_tools_write(
    ok: Invoke, run: Invoke, tmp_path: Path, keys: dict[str, KeyPair]
) -> None:
    payload = statement(APP)
    message = pae(INTOTO, payload)
    rsa_key = keys["py-rsa"].loaded()
    ec_key = keys["py-ec"].loaded()
    r, s = decode_dss_signature(sign(ec_key, message))
    p1363 = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = sign(ec_key, message)
    url_safe = base64.urlsafe_b64encode(der).decode()
    cases = {
        "rsa-pss": (envelope(payload, ("", sign(rsa_key, message, pss=True))), "py-rsa"),
        "ec-p1363": (envelope(payload, ("", p1363)), "py-ec"),
        "ec-url-safe": (
            json.dumps(
                {
                    "payloadType": INTOTO,
                    "payload": base64.b64encode(payload).decode(),
                    "signatures": [{"sig": url_safe}],
                }
            ).encode(),
            "py-ec",
        ),
        # Two signatures, the second one good.
        "two-sigs": (envelope(payload, ("x", b"\x30\x00"), ("y", der)), "py-ec"),
    }
    for case, (data, key_name) in cases.items():
        digest = imported(ok, tmp_path, f"{case}.json", data)
        result = verify(run, digest, keys[key_name].public, output="json")
        assert result.exit_code == 0, (case, result.stderr)
    body = json.loads(result.stdout)
    assert [v["signature"] for v in body["verified"]] == [2]
    assert [v["keyid"] for v in body["verified"]] == ["y"]


def test_signature_that_names_the_key_but_was_tampered(
    ok: Invoke, run: Invoke, tmp_path: Path, keys: dict[str, KeyPair]
) -> None:
    pair = keys["ed25519-pkcs8"]
    fingerprint = load_public_key_file(pair.public).fingerprint
    good = sign(pair.loaded(), pae(INTOTO, statement(APP)))
    digest = imported(
        ok, tmp_path, "named.json", envelope(statement(APP), (fingerprint, _flip(good)))
    )
    result = verify(run, digest, pair.public)
    assert_refused(result, contains=f"a signature names key {fingerprint} but does not verify")


# --- refusals -----------------------------------------------------------------------------


def test_nothing_to_verify_is_refused(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path, keys: dict[str, KeyPair]
) -> None:
    bare = imported(ok, tmp_path, "bare.json", statement(APP))
    unsigned = imported(ok, tmp_path, "unsigned.json", envelope(statement(APP)))
    pub = keys["ec-pkcs8"].public
    before = snapshot(db_path)
    assert_refused(verify(run, bare, pub), contains="bare in-toto statement")
    assert_refused(verify(run, unsigned, pub), contains="unsigned DSSE envelope")
    assert_refused(verify(run, "sha256:" + "0" * 64, pub), contains="no attestation")
    assert_refused(verify(run, bare[:12], pub), code=2, contains="at least 8 hex digits")
    # A unique prefix of 8+ digits works as in describe.
    assert_refused(verify(run, bare[:20], pub), contains="bare in-toto statement")
    assert_refused(run("attestation", "verify", bare), code=2, contains="--key")
    assert snapshot(db_path) == before


def test_bad_key_files_are_refused_without_showing_them(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path, keys: dict[str, KeyPair]
) -> None:
    ok("attestation", "import", str(PUBLISH_BUNDLE))
    digest = sha256_digest(PUBLISH_BUNDLE.read_bytes())
    private = keys["ec-pkcs8"].private
    cert = tmp_path / "cert.pem"
    openssl("req", "-x509", "-key", private, "-out", cert, "-days", "1", "-subj", "/CN=t")
    weak = tmp_path / "rsa1024.pem"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", weak)
    weak_pub = tmp_path / "rsa1024.pub"
    openssl("pkey", "-in", weak, "-pubout", "-out", weak_pub)
    k1 = tmp_path / "k1.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1", "-out", k1)
    k1_pub = tmp_path / "k1.pub"
    openssl("pkey", "-in", k1, "-pubout", "-out", k1_pub)
    garbage = put(tmp_path, "garbage.pem", b"-----BEGIN PUBLIC KEY-----\nnot base64\n")
    huge = put(tmp_path, "huge.pem", b"A" * (65 * 1024))
    cases = {
        private: "is a private key: give its public key",
        cert: "is a certificate",
        weak_pub: "RSA keys of 1024 bits are too weak",
        k1_pub: "elliptic curve secp256k1 is not supported",
        garbage: "is not a PEM public key",
        huge: "larger than 64 KiB",
        tmp_path / "missing.pub": "cannot read public key",
    }
    before = snapshot(db_path)
    secret_lines = [line for line in private.read_text().splitlines() if "-----" not in line]
    for path, message in cases.items():
        result = verify(run, digest, path)
        assert_refused(result, contains=message)
        for line in secret_lines:
            assert line not in result.output + result.stderr
    assert_refused(verify(run, digest, tmp_path), code=2, contains="is a directory")
    assert snapshot(db_path) == before


# --- keys loaded for signing --------------------------------------------------------------


def test_private_keys_load_in_every_form(keys: dict[str, KeyPair]) -> None:
    for pair in keys.values():
        password = pair.password.encode() if pair.password else None
        key = load_private_key_file(pair.private, password)
        assert key.public.algorithm == pair.algorithm
        assert pair.private.read_text() not in repr(key) + str(key)
        message = pae(INTOTO, b"{}")
        assert key.public.verify(key.sign(message), message)
        assert not key.public.verify(key.sign(message), message + b" ")


def test_private_key_refusals(keys: dict[str, KeyPair], tmp_path: Path) -> None:
    encrypted = keys["ec-pkcs8-enc"]
    with pytest.raises(KeyFileError, match="is encrypted: give --key-password-stdin"):
        load_private_key_file(encrypted.private, None)
    with pytest.raises(KeyFileError, match="wrong password") as info:
        load_private_key_file(encrypted.private, b"not the password")
    assert "not the password" not in str(info.value)
    with pytest.raises(KeyFileError, match="wrong password"):
        load_private_key_file(keys["rsa-trad-enc"].private, b"nope")
    # The traditional PEM encryption sometimes "decrypts" with a wrong password into bytes
    # with valid padding (about 1 in 256): that is a wrong password too, never another error.
    data = keys["ec-trad-enc"].private.read_bytes()
    for attempt in range(3000):
        with pytest.raises(KeyFileError, match="wrong password"):
            load_private_key(data, "ec-trad-enc.pem", f"wrong-{attempt}".encode())
    with pytest.raises(KeyFileError, match="is not encrypted"):
        load_private_key_file(keys["ec-pkcs8"].private, PASSWORD.encode())
    with pytest.raises(KeyFileError, match="is a public key"):
        load_private_key_file(keys["ec-pkcs8"].public, None)
    cosign = put(
        tmp_path,
        "cosign.key",
        b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n"
        b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
    )
    with pytest.raises(KeyFileError, match="cosign import-key-pair"):
        load_private_key_file(cosign, None)
    ssh = tmp_path / "ssh.pem"
    ssh.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="OpenSSH private key"):
        load_private_key_file(ssh, None)
    weak = tmp_path / "weak.pem"
    weak.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="too weak"):
        load_private_key_file(weak, None)


# --- what is remembered, and where it is shown --------------------------------------------


def test_deployment_describe_shows_the_remembered_verification(
    ok: Invoke, tmp_path: Path, keys: dict[str, KeyPair]
) -> None:
    pair = keys["ec384-pkcs8"]
    digest = imported(
        ok, tmp_path, "signed.json", signed_envelope(pair.loaded(), statement(NGINX_FULL))
    )
    ok("attestation", "verify", digest, "--key", str(pair.public))
    ok("environment", "create", "--name", "cluster")
    made = json.loads(
        ok(
            "deployment", "record", "--env", "cluster", "--logical-env", "staging",
            "--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--digest", NGINX_FULL,
            "-o", "json",
        ).stdout
    )["deployment"]  # fmt: skip
    body = json.loads(ok("deployment", "describe", str(made["id"]), "-o", "json").stdout)
    [ours] = [a for a in body["attestations"] if a["digest"] == digest]
    fingerprint = load_public_key_file(pair.public).fingerprint
    assert [v["fingerprint"] for v in ours["verifications"]] == [fingerprint]
    assert ours["verifications"][0]["algorithm"] == "ecdsa-p384"
    text = ok("deployment", "describe", str(made["id"])).stdout
    assert fingerprint in text


def test_repeated_verification_is_appended_and_shown_once_per_key(
    ok: Invoke, db_path: Path
) -> None:
    ok("attestation", "import", str(PUBLISH_BUNDLE))
    digest = sha256_digest(PUBLISH_BUNDLE.read_bytes())
    ok("attestation", "verify", digest, "--key", str(PUBLISH_KEY))
    ok("attestation", "verify", digest, "--key", str(PUBLISH_KEY))
    rows = query(db_path, "SELECT verified_at FROM attestation_verification ORDER BY id")
    assert len(rows) == 2
    view = json.loads(ok("attestation", "describe", digest, "-o", "json").stdout)
    assert len(view["verifications"]) == 1
    assert view["verifications"][0]["verified_at"].startswith("20")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE public_key SET algorithm = 'x'",
        "DELETE FROM public_key",
        "UPDATE attestation_verification SET source = 'create'",
        "DELETE FROM attestation_verification",
    ],
)
def test_trust_history_is_append_only(ok: Invoke, db_path: Path, sql: str) -> None:
    ok("attestation", "import", str(PUBLISH_BUNDLE))
    ok(
        "attestation",
        "verify",
        sha256_digest(PUBLISH_BUNDLE.read_bytes()),
        "--key",
        str(PUBLISH_KEY),
    )
    before = snapshot(db_path)
    conn = raw(db_path)
    with pytest.raises(DB_ERRORS, match="trust history"):
        conn.execute(sql)
    conn.close()
    assert snapshot(db_path) == before


def test_public_key_table_refuses_private_material(ok: Invoke, db_path: Path) -> None:
    ok("environment", "list")  # creates the database
    conn = raw(db_path)
    with pytest.raises(INTEGRITY_ERRORS):
        conn.execute(
            "INSERT INTO public_key (fingerprint, algorithm, pem, created_at) VALUES "
            "('SHA256:x', 'ed25519', '-----BEGIN PRIVATE KEY-----', 0)"
        )
    conn.close()


# --- the installed entry point, and what is imported --------------------------------------


def test_verify_through_the_entry_point(entry_point: str, tmp_path: Path) -> None:
    db = str(tmp_path / "ep.db")
    subprocess.run(
        [entry_point, "--db", db, "attestation", "import", str(PUBLISH_BUNDLE)], check=True
    )
    digest = sha256_digest(PUBLISH_BUNDLE.read_bytes())
    good = subprocess.run(
        [entry_point, "--db", db, "attestation", "verify", digest, "--key", str(PUBLISH_KEY)],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"Verified {digest}")
    bad = subprocess.run(
        [entry_point, "--db", db, "attestation", "verify", digest, "--key", str(PUBLISH_BUNDLE)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: ") and len(bad.stderr.splitlines()) == 1


def test_cryptography_is_imported_only_on_key_paths(tmp_path: Path) -> None:
    """Commands that handle no key never load cryptography (nor the crypto adapter)."""
    db = tmp_path / "lazy.db"
    script = (
        "import sys\n"
        "from deploytrack.cli import cli\n"
        "for args in sys.argv[1:]:\n"
        "    try:\n"
        "        cli.main(['--db', sys.argv[0]] + args.split(), standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('cryptography', "
        "'deploytrack.crypto'))))\n"
    )
    commands = [
        f"attestation import {attestation('chainloop-full.json')}",
        "environment create --name cluster",
        f"deployment record --env cluster --logical-env staging --deployment-name a "
        f"--kind CONTAINER_IMAGE --digest {NGINX_FULL}",
        "deployment describe 1",
        f"discover {NGINX_FULL}",
        "project list",
        "logical-environment policy show --name production",
        f"policy check --logical-env production --digest {NGINX_FULL}",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", script.replace("sys.argv[0]", repr(str(db))), *commands],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_pkcs1_rsa_public_keys_and_p521(tmp_path: Path) -> None:
    rsa_key = tmp_path / "rsa.pem"
    openssl("genrsa", "-out", rsa_key, "2048")
    pkcs1 = tmp_path / "rsa-pkcs1.pub"
    openssl("rsa", "-in", rsa_key, "-RSAPublicKey_out", "-out", pkcs1)
    spki = tmp_path / "rsa.pub"
    openssl("pkey", "-in", rsa_key, "-pubout", "-out", spki)
    assert pkcs1.read_text().startswith("-----BEGIN RSA PUBLIC KEY-----")
    assert load_public_key_file(pkcs1).fingerprint == load_public_key_file(spki).fingerprint
    p521 = tmp_path / "p521.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521", "-out", p521)
    p521_pub = tmp_path / "p521.pub"
    openssl("pkey", "-in", p521, "-pubout", "-out", p521_pub)
    signer = load_private_key_file(p521, None)
    public = load_public_key_file(p521_pub)
    assert public.algorithm == "ecdsa-p521"
    message = pae(INTOTO, statement(APP))
    assert public.verify(signer.sign(message), message)
    assert public.fingerprint == ssh_fingerprint_p521(public.key)


def ssh_fingerprint_p521(public: Any) -> str:
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )

    def string(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    blob = string(b"ecdsa-sha2-nistp521") + string(b"nistp521") + string(point)
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
