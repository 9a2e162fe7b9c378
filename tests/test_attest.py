"""`attestation create` and `attestation sign`: evidence built and signed on a laptop.

Offline here (an OCI layout and a packaged chart); tests/registry/test_create_registry.py
resolves CONTAINER_IMAGE and HELM_CHART materials through a real registry. Every created
envelope is decoded here independently (json + base64) and its signature checked with
`cryptography` over keyutil's own PAE.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Invoke, assert_refused, keep_wal, query, snapshot, stored_bytes
from helpers import sha256_digest
from keyutil import (
    INTOTO,
    PASSWORD,
    PUBLISH_BUNDLE,
    PUBLISH_KEY,
    KeyPair,
    cryptography_keys,
    openssl_keys,
    pae,
    statement,
)
from registry.registry_support import chart_tgz

from deploytrack.crypto.keys import load_public_key_file
from deploytrack.evidence import parse_document

REPO = Path(__file__).parent.parent
LAYOUT = REPO / "demo" / "oci-layout"
PREDICATE = "https://deploytrack.dev/attestation/v1"
RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CYCLONEDX = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": []}
SPDX = {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "app", "packages": []}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    folder = tmp_path_factory.mktemp("keys")
    return {**openssl_keys(folder / "openssl"), **cryptography_keys(folder / "py")}


def layout_digest(tag: str) -> str:
    index = json.loads((LAYOUT / "index.json").read_bytes())
    [entry] = [
        m
        for m in index["manifests"]
        if m["annotations"]["org.opencontainers.image.ref.name"] == tag
    ]
    blob = (LAYOUT / "blobs" / "sha256" / entry["digest"].removeprefix("sha256:")).read_bytes()
    return sha256_digest(blob)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "artifact": tmp_path / "app-1.0.tar.gz",
        "cdx": tmp_path / "sbom.cdx.json",
        "spdx": tmp_path / "sbom.spdx.json",
        "chart": tmp_path / "mychart-0.1.0.tgz",
    }
    out["artifact"].write_bytes(os.urandom(4096))
    out["cdx"].write_text(json.dumps(CYCLONEDX))
    out["spdx"].write_text(json.dumps(SPDX))
    out["chart"].write_bytes(chart_tgz("mychart", "0.1.0"))
    return out


def create(run: Invoke, *args: str, input: str | None = None) -> Any:
    return run(
        "attestation", "create", "--workflow", "release", "--project", "api",
        *args, input=input,
    )  # fmt: skip


def created(ok: Invoke, *args: str, input: str | None = None) -> dict[str, Any]:
    result = ok(
        "attestation", "create", "--workflow", "release", "--project", "api",
        *args, "-o", "json", input=input,
    )  # fmt: skip
    return json.loads(result.stdout)


def decode(envelope_bytes: bytes) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    """(envelope, payload bytes, statement), decoded here."""
    env = json.loads(envelope_bytes)
    payload = base64.b64decode(env["payload"])
    return env, payload, json.loads(payload)


def test_create_with_every_material_kind(
    ok: Invoke, db_path: Path, tmp_path: Path, files: dict[str, Path]
) -> None:
    out = tmp_path / "att.dsse.json"
    image = f"oci:{LAYOUT}:1.0.0"
    result = ok(
        "attestation", "create", "--workflow", "release", "--project", "api",
        "--version", "1.0.0",
        "--material", f"CONTAINER_IMAGE={image}",
        "--material", f"HELM_CHART={files['chart']}",
        "--material", f"ARTIFACT={files['artifact']}",
        "--material", f"SBOM_CYCLONEDX_JSON={files['cdx']}",
        "--material", f"SBOM_SPDX_JSON:spdx-sbom={files['spdx']}",
        "--material", "STRING:commit=0123abc",
        "--material", "STRING=no name",
        "--annotation", "team=platform", "--annotation", "ci.run/id=42",
        "--output-file", str(out),
    )  # fmt: skip
    data = out.read_bytes()
    digest = sha256_digest(data)
    # stdout is the digest alone (for scripts); the summary is on stderr.
    assert result.stdout == digest + "\n"
    assert "signed" not in result.stdout and "unsigned" in result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    env, _payload, st = decode(data)
    assert env["payloadType"] == INTOTO
    assert env["signatures"] == []
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == PREDICATE
    image_digest = layout_digest("1.0.0")
    chart_digest = sha256_digest(files["chart"].read_bytes())
    artifact_digest = sha256_digest(files["artifact"].read_bytes())
    assert st["subject"] == [
        {"name": f"oci:{LAYOUT}:1.0.0", "digest": {"sha256": image_digest[7:]}},
        {"name": "mychart-0.1.0.tgz", "digest": {"sha256": chart_digest[7:]}},
        {"name": "app-1.0.tar.gz", "digest": {"sha256": artifact_digest[7:]}},
    ]
    predicate = st["predicate"]
    assert (predicate["workflow"], predicate["project"], predicate["version"]) == (
        "release",
        "api",
        "1.0.0",
    )
    assert RFC3339_US.match(predicate["createdAt"])
    assert predicate["createdBy"].startswith("deploytrack ")
    assert predicate["annotations"] == {"team": "platform", "ci.run/id": "42"}
    kinds = [
        (m["kind"], m["name"], m.get("digest", {}).get("sha256")) for m in predicate["materials"]
    ]
    assert kinds == [
        ("CONTAINER_IMAGE", f"oci:{LAYOUT}:1.0.0", image_digest[7:]),
        ("HELM_CHART", "mychart-0.1.0.tgz", chart_digest[7:]),
        ("ARTIFACT", "app-1.0.tar.gz", artifact_digest[7:]),
        ("SBOM_CYCLONEDX_JSON", "sbom.cdx.json", sha256_digest(files["cdx"].read_bytes())[7:]),
        ("SBOM_SPDX_JSON", "spdx-sbom", sha256_digest(files["spdx"].read_bytes())[7:]),
        ("STRING", "commit", None),
        ("STRING", None, None),
    ]
    assert predicate["materials"][0]["reference"] == f"oci:{LAYOUT}:1.0.0"
    assert predicate["materials"][0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert predicate["materials"][5]["value"] == "0123abc"
    assert predicate["materials"][2]["size"] == 4096
    # Imported like any other attestation: the stored bytes are the file's bytes.
    assert ok("artifact", "download", "--digest", digest).stdout_bytes == data
    view = json.loads(ok("attestation", "describe", digest, "-o", "json").stdout)
    assert (view["format"], view["predicate_type"]) == ("dsse", PREDICATE)
    assert (view["project"], view["version"], view["workflow"]) == ("api", "1.0.0", "release")
    assert [(m["kind"], m["name"]) for m in view["materials"]] == [(k, n) for k, n, _ in kinds]
    assert view["verifications"] == []
    # Every material file is kept, byte for byte.
    for path in (files["chart"], files["artifact"], files["cdx"], files["spdx"]):
        got = ok("artifact", "download", "--digest", sha256_digest(path.read_bytes())).stdout_bytes
        assert got == path.read_bytes()
    # The attestation names the image: a deployment can be recorded for it.
    ok("environment", "create", "--name", "k8s")
    ok(
        "deployment", "record", "--env", "k8s", "--logical-env", "staging",
        "--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--oci-ref", image,
    )  # fmt: skip
    assert query(db_path, "SELECT count(*) AS n FROM blob")[0]["n"] == 5


def test_create_signs_with_every_key_form(
    ok: Invoke, tmp_path: Path, keys: dict[str, KeyPair], files: dict[str, Path]
) -> None:
    for pair in keys.values():
        args = ["--material", f"ARTIFACT={files['artifact']}", "--key", str(pair.private)]
        if pair.password:
            args.append("--key-password-stdin")
        out = tmp_path / f"{pair.name}.json"
        body = created(ok, *args, "--output-file", str(out), input=pair.stdin)
        fingerprint = load_public_key_file(pair.public).fingerprint
        assert body["signed_by"] == fingerprint
        assert body["output_file"] == str(out)
        env, payload, _ = decode(out.read_bytes())
        [sig] = env["signatures"]
        assert sig["keyid"] == fingerprint
        # Checked here with cryptography, over this file's PAE.
        public = load_public_key_file(pair.public)
        assert public.verify(base64.b64decode(sig["sig"]), pae(INTOTO, payload))
        digest = body["attestation"]["digest"]
        assert [v["source"] for v in body["attestation"]["verifications"]] == ["create"]
        ok("attestation", "verify", digest, "--key", str(pair.public))


def test_signed_statement_is_verified_by_an_independent_pae(
    ok: Invoke, tmp_path: Path, keys: dict[str, KeyPair], files: dict[str, Path]
) -> None:
    pair = keys["rsa-pkcs8"]
    out = tmp_path / "rsa.json"
    created(ok, "--material", f"ARTIFACT={files['artifact']}", "--key", str(pair.private),
            "--output-file", str(out))  # fmt: skip
    env, payload, _ = decode(out.read_bytes())
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    pair.loaded().public_key().verify(
        base64.b64decode(env["signatures"][0]["sig"]),
        pae(INTOTO, payload),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def test_unsigned_attestation_cannot_be_verified(
    ok: Invoke, run: Invoke, files: dict[str, Path], keys: dict[str, KeyPair]
) -> None:
    body = created(ok, "--material", f"ARTIFACT={files['artifact']}")
    assert body["signed_by"] is None
    result = run("attestation", "verify", body["attestation"]["digest"], "--key",
                 str(keys["ec-pkcs8"].public))  # fmt: skip
    assert_refused(result, contains="unsigned DSSE envelope")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--material", "STRING=x"], 1, "needs a subject"),
        (["--material", "IMAGE=nginx"], 1, "KIND one of CONTAINER_IMAGE"),
        (["--material", "ARTIFACT="], 1, "the value after '=' is empty"),
        (["--material", "ARTIFACT"], 1, "use KIND=VALUE"),
        (["--material", "ARTIFACT:=x"], 1, "invalid material name"),
        (["--material", "STRING=" + "x" * (64 * 1024 + 1)], 1, "at most 64 KiB"),
        (["--material", "ARTIFACT=/nonexistent/file"], 1, "cannot read ARTIFACT material"),
        (["--material", "ARTIFACT=."], 1, "is a directory"),
        (["--material", "CONTAINER_IMAGE=oci:/nonexistent"], 1, "nonexistent"),
        (["--material", "CONTAINER_IMAGE=Bad/Ref:1"], 1, "invalid reference"),
        (["--material", "CONTAINER_IMAGE=chart-1.0.tgz"], 1, "give it as HELM_CHART="),
        (["--material", "STRING=x", "--annotation", "bad key=1"], 1, "invalid annotation"),
        (["--material", "STRING=x", "--annotation", "novalue"], 1, "use KEY=VALUE"),
        (["--material", "STRING=x", "--key-password-stdin"], 2, "--key-password-stdin needs"),
        ([], 2, "--material"),
    ],
)
def test_bad_materials_are_refused_and_nothing_is_stored(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path, args: list[str], code: int,
    message: str,
) -> None:  # fmt: skip
    ok("environment", "list")
    before = snapshot(db_path)
    out = tmp_path / "never.json"
    result = create(run, *args, "--output-file", str(out))
    assert_refused(result, code=code, contains=message)
    assert not out.exists()
    assert snapshot(db_path) == before


def test_duplicate_annotation_and_bad_text_are_refused(
    ok: Invoke, run: Invoke, db_path: Path, files: dict[str, Path]
) -> None:
    ok("environment", "list")
    before = snapshot(db_path)
    artifact = f"ARTIFACT={files['artifact']}"
    assert_refused(
        create(run, "--material", artifact, "--annotation", "a=1", "--annotation", "a=2"),
        contains="annotation a is given twice",
    )
    assert_refused(
        run("attestation", "create", "--workflow", "bad\nname", "--project", "p",
            "--material", artifact),
        contains="invalid --workflow",
    )  # fmt: skip
    assert_refused(
        run("attestation", "create", "--workflow", "w", "--project", "p", "--version",
            "\udcff", "--material", artifact),
        contains="not valid UTF-8",
    )  # fmt: skip
    assert snapshot(db_path) == before


def test_sbom_files_must_be_of_their_kind(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path, files: dict[str, Path]
) -> None:
    ok("environment", "list")
    before = snapshot(db_path)
    artifact = f"ARTIFACT={files['artifact']}"
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"bomFormat": "CycloneDX",')
    array = tmp_path / "array.json"
    array.write_text("[]")
    cases = [
        (f"SBOM_CYCLONEDX_JSON={files['spdx']}", "bomFormat is None, not 'CycloneDX' (it looks "
         "like SPDX: use SBOM_SPDX_JSON)"),
        (f"SBOM_SPDX_JSON={files['cdx']}", "it looks like CycloneDX: use SBOM_CYCLONEDX_JSON"),
        (f"SBOM_CYCLONEDX_JSON={bad_json}", "not valid JSON"),
        (f"SBOM_SPDX_JSON={array}", "expected a JSON object"),
        (f"SBOM_SPDX_JSON={files['artifact']}", "invalid UTF-8"),
    ]  # fmt: skip
    for material, message in cases:
        result = create(run, "--material", artifact, "--material", material)
        assert_refused(result, contains=message)
    other = tmp_path / "bom.json"
    other.write_text(json.dumps({**SPDX, "spdxVersion": "2.3"}))
    assert_refused(
        create(run, "--material", artifact, "--material", f"SBOM_SPDX_JSON={other}"),
        contains="expected 'SPDX-<version>'",
    )
    assert snapshot(db_path) == before


def test_material_size_limits(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("environment", "list")
    before = snapshot(db_path)
    # A real file one byte over the SBOM limit (sparse: it costs no disk).
    big = tmp_path / "big.cdx.json"
    with big.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024 + 1)
    result = create(run, "--material", f"SBOM_CYCLONEDX_JSON={big}", "--material", "STRING=x")
    assert_refused(result, contains="larger than 64 MiB, the limit for a file kept")
    # The ARTIFACT limit (256 MiB) is the same code with another number.
    from deploytrack.evidence import predicate

    monkeypatch.setitem(predicate.MAX_FILE_BYTES, "ARTIFACT", 1000)
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1001)
    assert_refused(create(run, "--material", f"ARTIFACT={small}"), contains="larger than")
    small.write_bytes(b"x" * 1000)
    assert snapshot(db_path) == before
    ok("attestation", "create", "--workflow", "w", "--project", "p", "--material",
       f"ARTIFACT={small}")  # fmt: skip


def test_output_file_is_never_overwritten(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path, files: dict[str, Path]
) -> None:
    ok("environment", "list")
    before = snapshot(db_path)
    existing = tmp_path / "existing.json"
    existing.write_text("keep me")
    result = create(run, "--material", f"ARTIFACT={files['artifact']}", "--output-file",
                    str(existing))  # fmt: skip
    assert_refused(result, contains="exists: choose another path")
    assert existing.read_text() == "keep me"
    assert snapshot(db_path) == before


def test_encrypted_key_needs_its_password(
    ok: Invoke, run: Invoke, db_path: Path, keys: dict[str, KeyPair], files: dict[str, Path]
) -> None:
    ok("environment", "list")
    before = snapshot(db_path)
    artifact = f"ARTIFACT={files['artifact']}"
    for name in ("ec-trad-enc", "ec-pkcs8-enc", "rsa-trad-enc", "ed25519-pkcs8-enc"):
        key = str(keys[name].private)
        assert_refused(create(run, "--material", artifact, "--key", key),
                       contains="is encrypted: give --key-password-stdin")  # fmt: skip
        result = create(run, "--material", artifact, "--key", key, "--key-password-stdin",
                        input="Tr0ub4dor&3\n")  # fmt: skip
        assert_refused(result, contains="wrong password")
        assert "Tr0ub4dor" not in result.output + result.stderr
        assert_refused(
            create(run, "--material", artifact, "--key", key, "--key-password-stdin", input="\n"),
            code=2,
            contains="empty password",
        )
    assert_refused(
        create(run, "--material", artifact, "--key", str(keys["ec-pkcs8"].private),
               "--key-password-stdin", input=PASSWORD + "\n"),
        contains="is not encrypted",
    )  # fmt: skip
    assert_refused(
        create(run, "--material", artifact, "--key", str(keys["ec-pkcs8"].public)),
        contains="is a public key",
    )
    assert snapshot(db_path) == before


def test_our_predicate_is_indexed_when_imported_from_elsewhere(ok: Invoke, tmp_path: Path) -> None:
    """A deploytrack predicate written by hand (another tool, another machine) is indexed
    like Chainloop's: materials with their kinds, project, version, workflow."""
    image = "sha256:" + hashlib.sha256(b"image").hexdigest()
    sbom = "sha256:" + hashlib.sha256(b"sbom").hexdigest()
    doc = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "registry.example.com/app:1", "digest": {"sha256": image[7:]}}],
        "predicateType": PREDICATE,
        "predicate": {
            "workflow": "nightly",
            "project": "shop",
            "version": "2.0",
            "materials": [
                {"kind": "CONTAINER_IMAGE", "name": "registry.example.com/app:1",
                 "digest": {"sha256": image[7:]}},
                {"kind": "SBOM_SPDX_JSON", "name": "sbom", "digest": {"sha256": sbom[7:]}},
                {"kind": "STRING", "name": "branch", "value": "main"},
            ],
        },
    }  # fmt: skip
    raw = json.dumps(doc).encode()
    parsed = parse_document(raw, "hand.json")
    assert (parsed.project, parsed.version, parsed.workflow) == ("shop", "2.0", "nightly")
    assert [(m.kind, m.name, m.digest) for m in parsed.materials] == [
        ("CONTAINER_IMAGE", "registry.example.com/app:1", image),
        ("SBOM_SPDX_JSON", "sbom", sbom),
        ("STRING", "branch", None),
    ]
    path = tmp_path / "hand.json"
    path.write_bytes(raw)
    ok("attestation", "import", str(path))
    listed = json.loads(ok("attestation", "list", "--digest", sbom, "-o", "json").stdout)
    assert [a["digest"] for a in listed] == [sha256_digest(raw)]


def test_sign_a_bare_statement_keeps_its_bytes_as_the_payload(
    ok: Invoke, tmp_path: Path, keys: dict[str, KeyPair]
) -> None:
    pair = keys["ec-pkcs8-enc"]
    raw = statement("sha256:" + "cd" * 32)
    path = tmp_path / "provenance.json"
    path.write_bytes(raw)
    out = tmp_path / "signed.json"
    result = ok(
        "attestation", "sign", str(path), "--key", str(pair.private), "--key-password-stdin",
        "--project", "api", "--version", "9", "--workflow", "release", "--output-file", str(out),
        input=pair.stdin,
    )  # fmt: skip
    digest = result.stdout.strip()
    assert digest == sha256_digest(out.read_bytes())
    env, payload, _ = decode(out.read_bytes())
    assert payload == raw
    public = load_public_key_file(pair.public)
    assert env["signatures"][0]["keyid"] == public.fingerprint
    assert public.verify(base64.b64decode(env["signatures"][0]["sig"]), pae(INTOTO, raw))
    view = json.loads(ok("attestation", "describe", digest, "-o", "json").stdout)
    assert (view["project"], view["version"], view["workflow"]) == ("api", "9", "release")
    assert view["predicate_type"] == "https://slsa.dev/provenance/v1"
    ok("attestation", "verify", digest, "--key", str(pair.public))


def test_sign_an_existing_bundle_adds_a_signature(
    ok: Invoke, run: Invoke, keys: dict[str, KeyPair]
) -> None:
    pair = keys["py-ed25519"]
    digest = ok("attestation", "sign", str(PUBLISH_BUNDLE), "--key", str(pair.private)).stdout
    digest = digest.strip()
    both = json.loads(
        ok("attestation", "verify", digest, "--key", str(PUBLISH_KEY), "--key", str(pair.public),
           "-o", "json").stdout
    )  # fmt: skip
    assert [v["signature"] for v in both["verified"]] == [1, 2]
    original = json.loads(PUBLISH_BUNDLE.read_bytes())["dsseEnvelope"]
    stored = json.loads(ok("artifact", "download", "--digest", digest).stdout_bytes)
    assert stored["payload"] == original["payload"]
    assert stored["signatures"][0] == original["signatures"][0]
    assert_refused(
        run("attestation", "sign", "-", "--key", str(pair.private), "--key-password-stdin"),
        code=2,
        contains="stdin cannot hold both",
    )


def test_no_password_or_private_key_reaches_the_database_or_the_output(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path, keys: dict[str, KeyPair],
    files: dict[str, Path], backend: str,
) -> None:  # fmt: skip
    """The database (on SQLite the file with its WAL, kept by an open reader), every output
    and every error of a session that uses encrypted keys holds no password and no private
    key material."""
    ok("environment", "create", "--name", "k8s")
    with keep_wal(db_path):
        outputs: list[str] = []
        secrets: list[bytes] = [PASSWORD.encode()]
        for name in ("ec-trad-enc", "ec-pkcs8-enc", "rsa-trad-enc", "ed25519-pkcs8-enc"):
            pair = keys[name]
            private = pair.loaded()
            from cryptography.hazmat.primitives import serialization

            der = private.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            secrets.append(der[-32:])  # the private scalar / seed ends the DER
            secrets.extend(
                line.encode()
                for line in pair.private.read_text().splitlines()
                if "-----" not in line and ":" not in line and line
            )
            secrets.append(base64.b64encode(der)[-40:])
            for result in (
                create(run, "--material", f"ARTIFACT={files['artifact']}", "--key",
                       str(pair.private), "--key-password-stdin", "-o", "json", input=pair.stdin),
                create(run, "--material", f"ARTIFACT={files['artifact']}", "--key",
                       str(pair.private), "--key-password-stdin", input=pair.stdin),
                create(run, "--material", "STRING=x", "--key", str(pair.private),
                       "--key-password-stdin", input=pair.stdin),  # refused: no subject
                create(run, "--material", f"ARTIFACT={files['artifact']}", "--key",
                       str(pair.private), "--key-password-stdin", input="not " + PASSWORD + "\n"),
                create(run, "--material", f"ARTIFACT={files['artifact']}", "--key",
                       str(pair.private)),
            ):  # fmt: skip
                outputs.append(result.output + result.stderr + repr(result.exception))
            ok("logical-environment", "policy", "set", "--name", "production",
               "--trusted-key", str(pair.public))  # fmt: skip
            outputs.append(
                run("logical-environment", "policy", "set", "--name", "production",
                    "--trusted-key", str(pair.private)).stderr
            )  # fmt: skip
        if backend == "sqlite":
            wal = db_path.with_name(db_path.name + "-wal")
            assert wal.exists() and wal.stat().st_size > 0
        stored = stored_bytes(db_path)
    everything = stored + "\n".join(outputs).encode()
    for secret in secrets:
        assert len(secret) >= 16
        assert secret not in everything, secret[:8]
    # Public keys are stored: the database does hold what it should.
    assert b"-----BEGIN PUBLIC KEY-----" in stored
    assert b"PRIVATE KEY-----" not in stored


def test_create_through_the_entry_point_with_a_password_on_stdin(
    entry_point: str, tmp_path: Path, keys: dict[str, KeyPair], files: dict[str, Path]
) -> None:
    pair = keys["ec-trad-enc"]
    db = str(tmp_path / "ep.db")
    proc = subprocess.run(
        [entry_point, "--db", db, "attestation", "create", "--workflow", "release",
         "--project", "api", "--material", f"ARTIFACT={files['artifact']}",
         "--key", str(pair.private), "--key-password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    digest = proc.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert PASSWORD not in proc.stdout + proc.stderr
    check = subprocess.run(
        [entry_point, "--db", db, "attestation", "verify", digest[:20], "--key", str(pair.public)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr


def test_download_of_an_unknown_digest_says_what_is_kept(run: Invoke) -> None:
    result = run("artifact", "download", "--digest", "sha256:" + "1" * 64)
    assert_refused(result, contains="material files of 'attestation create'")
