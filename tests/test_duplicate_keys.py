"""A key twice in one JSON object is refused in every document read from outside.

Python's json keeps the last value; other parsers keep the first or refuse. So a document
with a key twice can mean one thing to deploytrack and another to the tool that signed,
verified or wrote it. Each test writes such a document the way a hand edit or a hostile
producer would (the real value last, so a last-wins parser accepts it), runs the real CLI
on a real database, and expects one `Error:` line that names the key (and the file), with
nothing stored. No registry is contacted: the docker config is read before any request.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from conftest import Invoke, assert_refused, raw, snapshot
from helpers import intoto_statement, sha256_digest

from deploytrack import jsondoc
from deploytrack.registry import RegistryError
from deploytrack.registry.client import RegistryClient
from deploytrack.registry.options import RegistryOptions
from deploytrack.registry.reference import parse_reference

V1 = "https://in-toto.io/Statement/v1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
# Port 9 (discard) on loopback: nothing answers, and nothing is asked before the config.
NOWHERE = "127.0.0.1:9"


def statement(digest: str, name: str = "app") -> dict:
    predicate = {"buildDefinition": {"buildType": "test"}}
    return intoto_statement([(name, digest)], "https://slsa.dev/provenance/v1", predicate)


def twice(raw: bytes, key: str, first: object = None) -> bytes:
    """`raw` with `"key": <first>, ` before the first `"key": `: the key twice in its object."""
    needle = json.dumps(key).encode() + b": "
    at = raw.index(needle)
    return raw[:at] + needle + json.dumps(first).encode() + b", " + raw[at:]


def envelope(payload: bytes) -> bytes:
    return json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(payload).decode(),
            "signatures": [],
        }
    ).encode()


@pytest.fixture
def empty_db(ok: Invoke, db_path: Path) -> list[str]:
    ok("environment", "create", "--name", "k8s")
    return snapshot(db_path)


# --- attestations --------------------------------------------------------------------------

GOOD = sha256_digest(b"the real artifact")
FORGED = sha256_digest(b"another artifact")


@pytest.mark.parametrize(
    ("document", "key", "where"),
    [
        (twice(json.dumps(statement(GOOD)).encode(), "subject"), "subject", "att.json is"),
        (
            # Nested: the digest set names two sha256 values for one subject.
            twice(json.dumps(statement(GOOD)).encode(), "sha256", FORGED.removeprefix("sha256:")),
            "sha256",
            "att.json is",
        ),
        (
            twice(envelope(json.dumps(statement(GOOD)).encode()), "payload", "e30="),
            "payload",
            "att.json is",
        ),
        (
            # The signed payload itself: a verifier and deploytrack must read one statement.
            envelope(twice(json.dumps(statement(GOOD)).encode(), "subject")),
            "subject",
            "att.json: DSSE payload is",
        ),
        (
            twice(
                json.dumps(
                    {
                        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                        "verificationMaterial": {},
                        "dsseEnvelope": json.loads(envelope(json.dumps(statement(GOOD)).encode())),
                    }
                ).encode(),
                "dsseEnvelope",
            ),
            "dsseEnvelope",
            "att.json is",
        ),
    ],
    ids=["statement", "nested-digest-set", "dsse-envelope", "dsse-payload", "sigstore-bundle"],
)
def test_import_refuses_a_key_twice(
    run: Invoke, db_path: Path, tmp_path: Path, empty_db: list[str], document: bytes, key: str,
    where: str,
) -> None:  # fmt: skip
    path = tmp_path / "att.json"
    path.write_bytes(document)
    result = run("attestation", "import", str(path))
    assert_refused(result, contains=f'duplicate key "{key}"')
    assert where in result.stderr, result.stderr
    assert snapshot(db_path) == empty_db


def test_import_of_json_lines_names_the_line_and_stores_none(
    run: Invoke, db_path: Path, tmp_path: Path, empty_db: list[str]
) -> None:
    good = json.dumps(statement(GOOD)).encode()
    payload = twice(json.dumps(statement(FORGED)).encode(), "predicateType", "x")
    path = tmp_path / "many.jsonl"
    path.write_bytes(good + b"\n" + envelope(payload) + b"\n")
    result = run("attestation", "import", str(path))
    assert_refused(result, contains=f"{path} line 2: DSSE payload is not valid JSON")
    assert 'duplicate key "predicateType"' in result.stderr
    assert snapshot(db_path) == empty_db


def test_attestation_create_refuses_an_sbom_with_a_key_twice(
    run: Invoke, db_path: Path, tmp_path: Path, empty_db: list[str]
) -> None:
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"an artifact")
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_bytes(twice(b'{"bomFormat": "CycloneDX", "specVersion": "1.5"}', "bomFormat"))
    result = run(
        "attestation", "create", "--workflow", "w", "--project", "p",
        "--material", f"ARTIFACT={artifact}", "--material", f"SBOM_CYCLONEDX_JSON={sbom}",
    )  # fmt: skip
    assert_refused(result, contains='duplicate key "bomFormat"')
    assert str(sbom) in result.stderr
    assert snapshot(db_path) == empty_db


# --- docker config and credential helpers --------------------------------------------------


def record_ref(run: Invoke, ref: str, kind: str = "CONTAINER_IMAGE") -> object:
    return run(
        "deployment", "record", "--env", "k8s", "--logical-env", "staging",
        "--deployment-name", "app", "--kind", kind, "--oci-ref", ref,
    )  # fmt: skip


def test_a_docker_config_with_a_key_twice_is_refused_before_any_request(
    run: Invoke, db_path: Path, tmp_path: Path, empty_db: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    folder = tmp_path / "docker"
    folder.mkdir()
    entry = {"auth": base64.b64encode(b"alice:pw").decode()}
    config = json.dumps({"auths": {NOWHERE: entry}}).encode()
    # Nested: the registry's login twice; docker (Go, last wins) and others disagree.
    (folder / "config.json").write_bytes(twice(config, "auth", "Ym9iOnB3"))
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    result = record_ref(run, f"{NOWHERE}/acme/app:1.0")
    assert_refused(
        result, contains=f"cannot read docker config {folder / 'config.json'}: not valid JSON"
    )
    assert 'duplicate key "auth"' in result.stderr
    assert "Ym9iOnB3" not in result.stderr and entry["auth"] not in result.stderr
    assert snapshot(db_path) == empty_db


def test_a_credential_helper_answer_with_a_key_twice_is_refused_without_the_secret(
    run: Invoke, db_path: Path, tmp_path: Path, empty_db: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-twice"
    helper.write_text(
        "#!/bin/sh\n"
        "cat >/dev/null\n"
        """printf '%s' '{"Username": "alice", "Secret": "s3cr3t-one", "Secret": "s3cr3t-two"}'\n"""
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "docker"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"credHelpers": {NOWHERE: "twice"}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    result = record_ref(run, f"{NOWHERE}/acme/app:1.0")
    assert_refused(result, contains="credential helper docker-credential-twice answered for")
    assert 'duplicate key "Secret"' in result.stderr
    assert "s3cr3t" not in result.output + result.stderr
    assert snapshot(db_path) == empty_db


# --- OCI layouts and manifests -------------------------------------------------------------


def layout(folder: Path, index: bytes, blobs: list[bytes]) -> Path:
    (folder / "blobs" / "sha256").mkdir(parents=True)
    for blob in blobs:
        (folder / "blobs" / "sha256" / sha256_digest(blob).removeprefix("sha256:")).write_bytes(
            blob
        )
    (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (folder / "index.json").write_bytes(index)
    return folder


def descriptor(blob: bytes, tag: str) -> dict:
    return {
        "mediaType": OCI_MANIFEST,
        "digest": sha256_digest(blob),
        "size": len(blob),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }


def manifest(config_type: str, salt: str) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": sha256_digest(salt.encode()), "size": 2},
            "layers": [],
        }
    ).encode()


def test_an_oci_layout_index_with_a_key_twice_is_refused(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path, empty_db: list[str]
) -> None:
    shown, hidden = manifest(OCI_CONFIG, "shown"), manifest(OCI_CONFIG, "hidden")
    # "manifests" twice: skopeo and deploytrack could resolve the tag to different images.
    index = json.dumps({"schemaVersion": 2, "manifests": [descriptor(hidden, "1.0")]}).encode()
    index = twice(index, "manifests", [descriptor(shown, "1.0")])
    folder = layout(tmp_path / "oci", index, [shown, hidden])
    statement_file = tmp_path / "s.json"
    statement_file.write_text(json.dumps(statement(sha256_digest(hidden))))
    ok("attestation", "import", str(statement_file))  # so only the index can refuse it
    before = snapshot(db_path)
    result = record_ref(run, f"oci:{folder}:1.0")
    assert_refused(result, contains=f"OCI layout {folder}: index.json is not valid JSON")
    assert 'duplicate key "manifests"' in result.stderr
    assert snapshot(db_path) == before


def test_a_helm_chart_manifest_with_a_key_twice_is_refused(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path, empty_db: list[str]
) -> None:
    # "config" twice: an image config first, the Helm config last (what Python would keep).
    chart = twice(manifest(HELM_CONFIG, "chart"), "config", {"mediaType": OCI_CONFIG})
    index = json.dumps({"schemaVersion": 2, "manifests": [descriptor(chart, "0.1.0")]}).encode()
    folder = layout(tmp_path / "oci", index, [chart])
    statement_file = tmp_path / "s.json"
    statement_file.write_text(json.dumps(statement(sha256_digest(chart), "mychart")))
    ok("attestation", "import", str(statement_file))
    before = snapshot(db_path)
    result = record_ref(run, f"oci:{folder}:0.1.0", kind="HELM_CHART")
    assert_refused(result, contains="the manifest of oci:")
    assert 'duplicate key "config"' in result.stderr
    assert snapshot(db_path) == before


def test_a_registry_manifest_read_for_its_media_type_refuses_a_key_twice() -> None:
    # When a registry serves a manifest without its media type, the body says it.
    client = RegistryClient(NOWHERE, RegistryOptions(plain_http=True), None)
    ref = parse_reference(f"{NOWHERE}/acme/app:1.0")
    body = twice(manifest(OCI_CONFIG, "m"), "mediaType", "application/vnd.oci.image.index.v1+json")
    with pytest.raises(RegistryError, match='duplicate key "mediaType"'):
        client._media_type("application/octet-stream", body, ref)
    assert client._media_type("application/octet-stream", manifest(OCI_CONFIG, "m"), ref) == (
        OCI_MANIFEST
    )


# --- the shared helper ---------------------------------------------------------------------


def test_the_helper_keeps_every_other_rule() -> None:
    cases = {
        b'{"a": NaN}': "NaN is not a JSON value",
        b'{"a": -Infinity}': "-Infinity is not a JSON value",
        b'{"a": "\xff"}': "invalid UTF-8 at byte 7",
        b"[" * 100_000: "nested too deeply",
        b'{"a": 1} x': "Extra data at line 1 column 10",
        b'{"a": 1, "b": {"c": 1, "c": 2}}': 'duplicate key "c"',
    }
    for text, reason in cases.items():
        with pytest.raises(jsondoc.JSONError, match=reason):
            jsondoc.loads(text, max_bytes=1 << 20)
    with pytest.raises(jsondoc.JSONError, match="larger than 16 bytes"):
        jsondoc.loads(b'{"a": "0123456789"}', max_bytes=16)
    assert jsondoc.loads(b'{"a": [{"b": 1}, {"b": 2}]}', max_bytes=27) == {
        "a": [{"b": 1}, {"b": 2}]
    }


# --- attestations stored before this rule ----------------------------------------------------


def test_a_stored_attestation_with_a_key_twice_is_not_verified(
    run: Invoke, db_path: Path, tmp_path: Path, empty_db: list[str]
) -> None:
    # Written by an older deploytrack, which took the key twice: verify parses the stored
    # bytes again, and an ambiguous document is not vouched for, even when signed.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    public = tmp_path / "key.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    payload = twice(json.dumps(statement(GOOD)).encode(), "subject", [])
    payload_type = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)
    document = json.dumps(
        {
            "payloadType": payload_type,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(key.sign(pae)).decode()}],
        }
    ).encode()
    digest = sha256_digest(document)
    with raw(db_path) as conn:
        conn.execute(
            "INSERT INTO blob (digest, size, content, created_at) VALUES (?, ?, ?, 0)",
            (digest, len(document), document),
        )
        conn.execute(
            "INSERT INTO attestation (digest, format, statement_type, predicate_type,"
            " imported_at) VALUES (?, 'dsse', ?, 'https://slsa.dev/provenance/v1', 0)",
            (digest, V1),
        )
        conn.commit()
    before = snapshot(db_path)
    result = run("attestation", "verify", digest, "--key", str(public))
    assert_refused(result, contains=f"attestation {digest}: DSSE payload is not valid JSON")
    assert 'duplicate key "subject"' in result.stderr
    assert snapshot(db_path) == before
