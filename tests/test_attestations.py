"""The evidence store through the command line, on a real SQLite file.

`attestation import/list/describe` and `artifact download` through click's CliRunner,
plus a few runs of the installed entry point. Expected digests are computed here with
hashlib from the fixture bytes; expected subjects, materials and metadata come from the
independent decoding in test_evidence_parse.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import (
    MUST_REJECT,
    NGINX_FULL,
    NGINX_GIT,
    Invoke,
    assert_refused,
    attestation,
    good_attestations,
    query,
    snapshot,
    untouched,
)
from helpers import record_args
from test_evidence_parse import (
    CHAINLOOP,
    DROP,
    V01,
    bundle,
    chainloop_statement,
    dsse,
    dumps,
    expected,
    sha256_hex,
    statement,
)

from deploytrack.evidence import MAX_DOCUMENT_BYTES, MAX_INPUT_BYTES

VIEW_FIELDS = {
    "digest",
    "format",
    "statement_type",
    "predicate_type",
    "project",
    "version",
    "workflow",
    "subjects",
    "materials",
    "imported_at",
    "verifications",  # remembered signature verifications
    "identity_verifications",  # remembered keyless verifications
}
RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
FULL = attestation("chainloop-full.json")
DUPLICATED = attestation("chainloop-with-duplicated-sha.json")
GIT = attestation("chainloop-with-git-subject.json")
SAME = attestation("chainloop-same-digest-than-git-subject.json")
STRING = attestation("chainloop-with-string.json")
SLSA = attestation("sigstore-conformance-statement.json")
# The fixtures that are one line of JSON (at most a final newline): JSON Lines material.
ONE_LINE = [
    attestation("chainloop-attestation-bundle.json"),
    attestation("chainloop-bundle.json"),
    attestation("sigstore-conformance-statement.json"),
    attestation("sigstore-go-bundle-provenance.json"),
    attestation("sigstore-go-bundle-publish.json"),
]


# --- helpers ----------------------------------------------------------------------------


def digest_of(path: Path) -> str:
    return sha256_hex(path.read_bytes())


def import_json(ok: Invoke, *args: str, input: bytes | None = None) -> list[dict[str, Any]]:
    result = ok("attestation", "import", *args, "-o", "json", input=input)
    return json.loads(result.stdout)


def list_json(ok: Invoke, *args: str) -> list[dict[str, Any]]:
    return json.loads(ok("attestation", "list", *args, "-o", "json").stdout)


def describe_json(ok: Invoke, digest: str) -> dict[str, Any]:
    return json.loads(ok("attestation", "describe", digest, "-o", "json").stdout)


def check_view(view: dict[str, Any], raw: bytes) -> None:
    """A JSON attestation view says exactly what the document says."""
    want = expected(raw)
    assert set(view) == VIEW_FIELDS
    assert view["digest"] == sha256_hex(raw)
    assert view["format"] == want.format
    assert view["statement_type"] == want.statement_type
    assert view["predicate_type"] == want.predicate_type
    assert (view["project"], view["version"], view["workflow"]) == (
        want.project,
        want.version,
        want.workflow,
    )
    assert all(set(s) == {"name", "digest"} for s in view["subjects"])
    assert Counter((s["name"], s["digest"]) for s in view["subjects"]) == want.subjects
    assert all(set(m) == {"name", "kind", "digest"} for m in view["materials"])
    assert Counter((m["name"], m["kind"], m["digest"]) for m in view["materials"]) == want.materials
    assert RFC3339_US.match(view["imported_at"]), view["imported_at"]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def one_line(path: Path) -> bytes:
    raw = path.read_bytes()
    line = raw.rstrip(b"\n")
    assert b"\n" not in line, path
    return line


def assert_unchanged(db_path: Path, before: list[str], result: Result) -> None:
    assert snapshot(db_path) == before
    assert result.stdout == ""


@pytest.fixture
def baseline(ok: Invoke, db_path: Path) -> list[str]:
    """A database holding one attestation; returns its snapshot."""
    ok("attestation", "import", str(STRING))
    return snapshot(db_path)


# --- import: every real fixture -------------------------------------------------------------


@pytest.mark.parametrize("path", good_attestations(), ids=lambda p: p.name)
def test_every_good_fixture_imports_and_is_indexed(ok: Invoke, path: Path) -> None:
    raw = path.read_bytes()
    [result] = import_json(ok, str(path))
    assert set(result) == {"source", "created", "attestation"}
    assert result["source"] == str(path)
    assert result["created"] is True
    check_view(result["attestation"], raw)
    assert describe_json(ok, sha256_hex(raw)) == result["attestation"]
    for digest in {d for _, d in expected(raw).subjects}:
        assert [v["digest"] for v in list_json(ok, "--digest", digest)] == [sha256_hex(raw)]


def test_all_good_fixtures_in_one_import(ok: Invoke, db_path: Path) -> None:
    paths = good_attestations()
    results = import_json(ok, *map(str, paths))
    assert [r["source"] for r in results] == [str(p) for p in paths]
    assert all(r["created"] for r in results)
    for result, path in zip(results, paths, strict=True):
        check_view(result["attestation"], path.read_bytes())
    listed = list_json(ok)
    assert sorted(v["digest"] for v in listed) == sorted(digest_of(p) for p in paths)
    # One import, one transaction: every row has the same time.
    assert len({v["imported_at"] for v in listed}) == 1


def test_every_named_digest_finds_exactly_the_attestations_naming_it(ok: Invoke) -> None:
    paths = [p for p in good_attestations() if "slsa_provenance" not in p.name]
    ok("attestation", "import", *map(str, paths))
    naming: dict[str, set[str]] = {}
    for path in paths:
        want = expected(path.read_bytes())
        named = {d for _, d in want.subjects} | {d for _, _, d in want.materials if d}
        for digest in named:
            naming.setdefault(digest, set()).add(digest_of(path))
    algorithms = {d.split(":")[0] for d in naming}
    assert {"sha1", "sha256", "sha512"} <= algorithms
    for digest, owners in naming.items():
        listed = [v["digest"] for v in list_json(ok, "--digest", digest)]
        assert sorted(listed) == sorted(owners), digest  # each once, even if named twice


def test_import_text_output(ok: Invoke) -> None:
    out = ok("attestation", "import", str(FULL), str(SLSA)).stdout.splitlines()
    assert out[0].startswith(f"Imported {digest_of(FULL)} from {FULL}: dsse, {CHAINLOOP}")
    assert "1 subject(s), 3 material(s)" in out[0]
    assert out[1].startswith(f"Imported {digest_of(SLSA)} from {SLSA}: statement")


# --- the rules the issue names for particular fixtures ---------------------------------------


def test_duplicated_sha_is_one_digest_under_two_kinds(ok: Invoke) -> None:
    [result] = import_json(ok, str(DUPLICATED))
    kinds = Counter(
        m["kind"] for m in result["attestation"]["materials"] if m["digest"] == NGINX_FULL
    )
    assert kinds == Counter({"CONTAINER_IMAGE": 1, "SBOM_CYCLONEDX_JSON": 1})
    assert [v["digest"] for v in list_json(ok, "--digest", NGINX_FULL)] == [digest_of(DUPLICATED)]


def test_string_material_without_a_digest(ok: Invoke) -> None:
    [result] = import_json(ok, str(STRING))
    strings = [m for m in result["attestation"]["materials"] if m["kind"] == "STRING"]
    assert strings == [{"name": "build-ref", "kind": "STRING", "digest": None}]
    table = ok("attestation", "describe", digest_of(STRING)).stdout
    assert re.search(r"^STRING\s+build-ref\s+-\s*$", table, re.MULTILINE), table


def test_same_digest_as_subject_and_material(ok: Invoke) -> None:
    [result] = import_json(ok, str(SAME))
    view = result["attestation"]
    assert NGINX_GIT in {s["digest"] for s in view["subjects"]}
    assert NGINX_GIT in {m["digest"] for m in view["materials"]}
    assert [v["digest"] for v in list_json(ok, "--digest", NGINX_GIT)] == [digest_of(SAME)]


def test_git_head_sha1_and_npm_sha512_subjects_are_found(ok: Invoke) -> None:
    publish = attestation("sigstore-go-bundle-publish.json")
    provenance = attestation("sigstore-go-bundle-provenance.json")
    ok("attestation", "import", str(GIT), str(publish), str(provenance))
    [(_, sha1)] = [s for s in expected(GIT.read_bytes()).subjects if s[0] == "git.head"]
    assert sha1.startswith("sha1:")
    assert [v["digest"] for v in list_json(ok, "--digest", sha1)] == [digest_of(GIT)]
    [(_, sha512)] = expected(publish.read_bytes()).subjects
    assert sha512.startswith("sha512:")
    found = {v["digest"] for v in list_json(ok, "--digest", sha512)}
    assert found == {digest_of(publish), digest_of(provenance)}
    # Hex is matched whatever its case.
    upper = sha512.split(":")[0] + ":" + sha512.split(":")[1].upper()
    assert {v["digest"] for v in list_json(ok, "--digest", upper)} == found


# --- project, version and workflow -------------------------------------------------------------


def test_chainloop_metadata_is_indexed(ok: Invoke) -> None:
    bundle_fixture = attestation("chainloop-attestation-bundle.json")
    [result] = import_json(ok, str(bundle_fixture))
    want = expected(bundle_fixture.read_bytes())
    assert want.version is not None and want.project is not None and want.workflow is not None
    view = result["attestation"]
    assert (view["project"], view["version"], view["workflow"]) == (
        want.project,
        want.version,
        want.workflow,
    )
    assert list_json(ok, "--project", want.project, "--version", want.version) == [view]


def test_flags_override_chainloop_metadata(ok: Invoke) -> None:
    [result] = import_json(
        ok, str(FULL), "--project", "shop", "--version", "v9", "--workflow", "release"
    )
    view = result["attestation"]
    assert expected(FULL.read_bytes()).project not in (None, "shop")
    assert (view["project"], view["version"], view["workflow"]) == ("shop", "v9", "release")
    assert describe_json(ok, view["digest"])["project"] == "shop"


def test_flags_fill_in_for_slsa(ok: Invoke) -> None:
    [plain] = import_json(ok, str(attestation("sigstore-go-bundle-provenance.json")))
    assert (plain["attestation"]["project"], plain["attestation"]["version"]) == (None, None)
    [result] = import_json(ok, str(SLSA), "--project", "shop", "--version", "1.2.3")
    view = result["attestation"]
    assert (view["project"], view["version"], view["workflow"]) == ("shop", "1.2.3", None)
    # A flag fills in only what is given: the Chainloop workflow stays.
    [chain] = import_json(ok, str(FULL), "--version", "2.0")
    want = expected(FULL.read_bytes())
    assert (chain["attestation"]["project"], chain["attestation"]["workflow"]) == (
        want.project,
        want.workflow,
    )
    assert chain["attestation"]["version"] == "2.0"


def test_list_filters_by_project_and_version(ok: Invoke) -> None:
    ok("attestation", "import", str(SLSA), "--project", "shop", "--version", "1")
    ok("attestation", "import", str(FULL), "--project", "shop", "--version", "2")
    ok("attestation", "import", str(STRING), "--project", "other", "--version", "1")
    assert {v["digest"] for v in list_json(ok, "--project", "shop")} == {
        digest_of(SLSA),
        digest_of(FULL),
    }
    assert [v["digest"] for v in list_json(ok, "--project", "shop", "--version", "1")] == [
        digest_of(SLSA)
    ]
    assert {v["digest"] for v in list_json(ok, "--version", "1")} == {
        digest_of(SLSA),
        digest_of(STRING),
    }
    assert list_json(ok, "--project", "nobody") == []


def test_flag_that_is_not_utf8_is_a_usage_error(run: Invoke, db_path: Path) -> None:
    result = run("attestation", "import", str(FULL), "--project", "bad\udcffname")
    assert_refused(result, code=2, contains="--project")
    assert untouched(db_path)


# --- identical bytes ---------------------------------------------------------------------------


def test_importing_the_same_bytes_again_adds_nothing(ok: Invoke, db_path: Path) -> None:
    [first] = import_json(ok, str(FULL))
    before = snapshot(db_path)
    again = ok("attestation", "import", str(FULL))
    assert again.stdout.startswith(f"Already imported {digest_of(FULL)} from {FULL}")
    assert "nothing added" in again.stdout
    assert snapshot(db_path) == before
    [second] = import_json(ok, str(FULL))
    assert second["created"] is False
    assert second["attestation"] == first["attestation"]  # the same imported_at, too
    assert snapshot(db_path) == before


def test_reimport_says_which_flags_were_not_applied(ok: Invoke, db_path: Path) -> None:
    ok("attestation", "import", str(FULL))
    before = snapshot(db_path)
    again = ok("attestation", "import", str(FULL), "--project", "other", "--workflow", "only-sbom")
    assert "--project not applied: stored attestations never change" in again.stdout
    assert "--workflow" not in again.stdout  # the same value as stored is not a change
    assert snapshot(db_path) == before


def test_control_characters_in_names_are_escaped_in_tables(ok: Invoke, tmp_path: Path) -> None:
    doc = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "evil\x1b[31mred\nline", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://example.com/p",
    }
    path = write(tmp_path, "evil.json", json.dumps(doc).encode())
    [imported] = import_json(ok, str(path))
    shown = ok("attestation", "describe", imported["attestation"]["digest"]).stdout
    assert "\x1b" not in shown and "red\nline" not in shown
    assert "evil\\x1b[31mred\\nline" in shown


def test_same_bytes_under_another_name_and_twice_in_one_import(
    ok: Invoke, tmp_path: Path, db_path: Path
) -> None:
    copy = write(tmp_path, "copy.json", FULL.read_bytes())
    results = import_json(ok, str(FULL), str(copy), str(FULL))
    assert [r["created"] for r in results] == [True, False, False]
    assert len({r["attestation"]["digest"] for r in results}) == 1
    assert len(list_json(ok)) == 1


def test_same_statement_different_bytes_is_another_attestation(ok: Invoke, tmp_path: Path) -> None:
    reformatted = json.dumps(json.loads(SLSA.read_bytes()), indent=2).encode()
    assert reformatted != SLSA.read_bytes()
    path = write(tmp_path, "pretty.json", reformatted)
    results = import_json(ok, str(SLSA), str(path))
    assert [r["attestation"]["digest"] for r in results] == [digest_of(SLSA), digest_of(path)]
    assert all(r["created"] for r in results)


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MUST_REJECT))
def test_must_reject_fixtures_are_refused(
    run: Invoke, db_path: Path, baseline: list[str], name: str
) -> None:
    result = run("attestation", "import", str(attestation(name)))
    assert_refused(result, contains=name)
    assert_unchanged(db_path, baseline, result)


REFUSALS: list[tuple[str, bytes, str]] = [
    ("not-json.json", b'{"_type": "https://in-toto.io/Statement/v1",', "not valid JSON"),
    ("latin1.json", b'{"_type": "caf\xe9"}', "invalid UTF-8"),
    ("empty.json", b"", "is empty"),
    ("blank.json", b"\n \n", "is empty"),
    ("other.json", b'{"apiVersion": "v1", "kind": "Pod"}', "not an attestation"),
    ("array.json", b"[1, 2, 3]", "not an attestation"),
    ("not-base64.json", dumps({**dsse(statement()), "payload": "!!not base64!!"}), "base64"),
    ("payload-not-statement.json", dumps(dsse({"hello": "world"})), "not an in-toto statement"),
    ("payload-not-json.json", dumps(dsse(b"plain text")), "payload is not valid JSON"),
    ("other-type.json", dumps(dsse(statement(), "application/json")), "payloadType"),
    ("no-subject.json", dumps(statement(subject=[])), "names no subject"),
    ("no-subject-key.json", dumps(dsse(statement(subject=DROP))), "names no subject"),
    ("bad-type.json", dumps(statement(_type="https://example.com/Statement")), "_type is"),
    ("no-predicate-type.json", dumps(statement(predicateType=DROP)), "no predicateType"),
    (
        "bundle-04.json",
        dumps(bundle(dsse(statement()), "application/vnd.dev.sigstore.bundle+json;version=0.4")),
        "unsupported bundle media type",
    ),
    (
        "bundle-v04.json",
        dumps(bundle(dsse(statement()), "application/vnd.dev.sigstore.bundle.v0.4+json")),
        "unsupported bundle media type",
    ),
    (
        "message-signature.json",
        dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.2",
                "verificationMaterial": {},
                "messageSignature": {"signature": "c2ln"},
            }
        ),
        "no dsseEnvelope",
    ),
    ("deep.json", b"[" * 100_000, "nested too deeply"),
    ("deep-payload.json", dumps(dsse(b"[" * 100_000)), "nested too deeply"),
    (
        "surrogate.json",
        dumps(statement(subject=[{"name": "X", "digest": {"sha256": "ab" * 32}}])).replace(
            b'"X"', b'"\\udc80"'
        ),
        "surrogate",
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "reason"), REFUSALS, ids=[name for name, _, _ in REFUSALS]
)
def test_bad_files_are_refused_and_nothing_is_stored(
    run: Invoke,
    db_path: Path,
    baseline: list[str],
    tmp_path: Path,
    name: str,
    data: bytes,
    reason: str,
) -> None:
    path = write(tmp_path, name, data)
    result = run("attestation", "import", str(path))
    assert_refused(result, contains=str(path))
    assert reason in result.stderr, result.stderr
    assert_unchanged(db_path, baseline, result)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_one_bad_path_refuses_the_whole_import(
    run: Invoke, db_path: Path, baseline: list[str], tmp_path: Path, position: int
) -> None:
    bad = write(tmp_path, "bad.json", b'{"_type": "https://in-toto.io/Statement/v1"}')
    paths = [str(FULL), str(SLSA)]
    paths.insert(position, str(bad))
    result = run("attestation", "import", *paths)
    assert_refused(result, contains=str(bad))
    assert_unchanged(db_path, baseline, result)


def test_a_must_reject_fixture_among_good_ones_refuses_all(
    run: Invoke, db_path: Path, baseline: list[str]
) -> None:
    paths = [str(p) for p in good_attestations()]
    bad = attestation("chainloop-attestation-invalid-payload.json")
    result = run("attestation", "import", *paths[:5], str(bad), *paths[5:])
    assert_refused(result, contains=bad.name)
    assert_unchanged(db_path, baseline, result)


def test_nonexistent_path_is_refused(
    run: Invoke, db_path: Path, baseline: list[str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-file.json"
    result = run("attestation", "import", str(FULL), str(missing))
    assert_refused(result, contains=str(missing))
    assert "No such file" in result.stderr
    assert_unchanged(db_path, baseline, result)


def test_directory_is_refused(
    run: Invoke, db_path: Path, baseline: list[str], tmp_path: Path
) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    result = run("attestation", "import", str(FULL), str(folder))
    assert_refused(result, contains=str(folder))
    assert "directory" in result.stderr
    assert_unchanged(db_path, baseline, result)


def test_refused_import_does_not_create_the_database(run: Invoke, db_path: Path) -> None:
    result = run("attestation", "import", str(attestation("chainloop-invalid.json")))
    assert_refused(result, contains="chainloop-invalid.json")
    assert untouched(db_path)


def test_import_needs_a_path(run: Invoke, db_path: Path) -> None:
    assert_refused(run("attestation", "import"), code=2, contains="PATH")
    assert untouched(db_path)


# --- stdin ---------------------------------------------------------------------------------------


def test_stdin_one_document(ok: Invoke) -> None:
    raw = FULL.read_bytes()
    [result] = import_json(ok, "-", input=raw)
    assert result["source"] == "stdin"
    check_view(result["attestation"], raw)
    assert ok("artifact", "download", "--digest", sha256_hex(raw)).stdout_bytes == raw


def test_stdin_with_files(ok: Invoke) -> None:
    results = import_json(ok, str(SLSA), "-", input=FULL.read_bytes())
    assert [r["source"] for r in results] == [str(SLSA), "stdin"]
    assert results[1]["attestation"]["digest"] == digest_of(FULL)


def test_stdin_json_lines(ok: Invoke) -> None:
    """Several one-line documents, as `cosign download attestation` prints them."""
    lines = [one_line(p) for p in ONE_LINE]
    results = import_json(ok, "-", input=b"\n".join(lines) + b"\n")
    assert [r["attestation"]["digest"] for r in results] == [sha256_hex(x) for x in lines]
    for result, line in zip(results, lines, strict=True):
        check_view(result["attestation"], line)


def test_stdin_twice_is_a_usage_error(run: Invoke, db_path: Path) -> None:
    result = run("attestation", "import", "-", str(FULL), "-", input=FULL.read_bytes())
    assert_refused(result, code=2, contains="stdin")
    assert untouched(db_path)


def test_empty_stdin_is_refused(run: Invoke, db_path: Path, baseline: list[str]) -> None:
    result = run("attestation", "import", "-", input=b"")
    assert_refused(result, contains="stdin is empty")
    assert_unchanged(db_path, baseline, result)


def test_stdin_bad_line_is_named(run: Invoke, db_path: Path, baseline: list[str]) -> None:
    data = one_line(SLSA) + b"\n" + one_line(ONE_LINE[0]) + b"\n" + b'{"_type": 1}\n'
    result = run("attestation", "import", "-", input=data)
    assert_refused(result, contains="stdin line 3")
    assert_unchanged(db_path, baseline, result)


# --- JSON Lines files --------------------------------------------------------------------------


def test_jsonl_file_stores_each_line(ok: Invoke, tmp_path: Path, db_path: Path) -> None:
    lines = [one_line(p) for p in ONE_LINE]
    path = write(tmp_path, "evidence.jsonl", b"\n".join(lines) + b"\n")
    results = import_json(ok, str(path))
    assert [r["source"] for r in results] == [str(path)] * len(lines)
    assert [r["attestation"]["digest"] for r in results] == [sha256_hex(x) for x in lines]
    for line in lines:
        check_view(describe_json(ok, sha256_hex(line)), line)
        assert ok("artifact", "download", "--digest", sha256_hex(line)).stdout_bytes == line
    # The file as a whole is not an attestation.
    assert list_json(ok, "--digest", sha256_hex(path.read_bytes())) == []


def test_jsonl_bad_line_refuses_the_file(
    run: Invoke, tmp_path: Path, db_path: Path, baseline: list[str]
) -> None:
    lines = [one_line(p) for p in ONE_LINE]
    lines.insert(2, dumps(statement(predicateType=DROP)))
    path = write(tmp_path, "evidence.jsonl", b"\n".join(lines))
    result = run("attestation", "import", str(path))
    assert_refused(result, contains=f"{path} line 3")
    assert "no predicateType" in result.stderr
    assert_unchanged(db_path, baseline, result)


def test_jsonl_file_of_a_pretty_printed_document_is_refused(
    run: Invoke, tmp_path: Path, db_path: Path, baseline: list[str]
) -> None:
    path = write(tmp_path, "pretty.jsonl", FULL.read_bytes())
    result = run("attestation", "import", str(path))
    assert_refused(result, contains=f"{path} line 1")
    assert_unchanged(db_path, baseline, result)


# --- bundle media types through the CLI ----------------------------------------------------------


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    ],
)
def test_bundle_versions_import(ok: Invoke, tmp_path: Path, media_type: str) -> None:
    raw = attestation("chainloop-bundle.json").read_bytes()
    original = json.loads(raw)["mediaType"].encode()
    data = raw.replace(original, media_type.encode())
    assert json.loads(data)["mediaType"] == media_type
    path = write(tmp_path, "bundle.json", data)
    [result] = import_json(ok, str(path))
    check_view(result["attestation"], data)
    assert result["attestation"]["format"] == "sigstore-bundle"


def test_statement_v01_in_dsse_and_proto_json_spelling(ok: Invoke, tmp_path: Path) -> None:
    proto = statement(_type=DROP, predicateType=DROP)
    proto["type"] = "https://in-toto.io/Statement/v1"
    proto["predicate_type"] = "https://slsa.dev/provenance/v1"
    docs = {
        "v01.json": dumps(statement(_type=V01)),
        "dsse.json": dumps(dsse(statement(_type=V01))),
        "proto.json": dumps(proto),
    }
    paths = [write(tmp_path, name, data) for name, data in docs.items()]
    results = import_json(ok, *map(str, paths))
    for result, data in zip(results, docs.values(), strict=True):
        check_view(result["attestation"], data)


# --- list ----------------------------------------------------------------------------------------


def test_empty_list(ok: Invoke) -> None:
    assert ok("attestation", "list", "-o", "json").stdout.strip() == "[]"
    table = ok("attestation", "list")
    assert table.stdout == ""
    assert "No attestations" in table.stderr


def test_list_is_newest_first_with_the_documented_fields(ok: Invoke) -> None:
    ok("attestation", "import", str(SLSA))
    ok("attestation", "import", str(FULL))
    listed = list_json(ok)
    assert [v["digest"] for v in listed] == [digest_of(FULL), digest_of(SLSA)]
    assert listed[0]["imported_at"] >= listed[1]["imported_at"]
    check_view(listed[0], FULL.read_bytes())
    check_view(listed[1], SLSA.read_bytes())
    table = ok("attestation", "list").stdout
    assert digest_of(FULL)[: len("sha256:") + 12] in table
    assert "PREDICATE TYPE" in table


def test_list_by_material_digest(ok: Invoke) -> None:
    ok("attestation", "import", str(FULL), str(DUPLICATED), str(GIT), str(SAME), str(SLSA))
    found = [v["digest"] for v in list_json(ok, "--digest", NGINX_FULL)]
    assert sorted(found) == sorted([digest_of(FULL), digest_of(DUPLICATED)])
    found = [v["digest"] for v in list_json(ok, "--digest", NGINX_GIT)]
    assert sorted(found) == sorted([digest_of(GIT), digest_of(SAME)])


def test_list_by_unknown_digest_is_empty(ok: Invoke) -> None:
    ok("attestation", "import", str(FULL))
    unknown = sha256_hex(b"never attested")
    assert list_json(ok, "--digest", unknown) == []
    # The attestation's own digest is not a digest it names.
    assert list_json(ok, "--digest", digest_of(FULL)) == []


@pytest.mark.parametrize("bad", ["nonsense", "sha256", ":abc", "sha256:abc def"])
def test_list_by_invalid_digest_is_refused(run: Invoke, ok: Invoke, bad: str) -> None:
    ok("attestation", "import", str(FULL))
    # A malformed value is a usage error, as any bad option value is (exit 2).
    assert_refused(run("attestation", "list", "--digest", bad), code=2, contains="invalid digest")


# --- describe ------------------------------------------------------------------------------------


def test_describe_table(ok: Invoke) -> None:
    ok("attestation", "import", str(FULL))
    out = ok("attestation", "describe", digest_of(FULL)).stdout
    want = expected(FULL.read_bytes())
    assert re.search(rf"^Statement type:\s+{re.escape(want.statement_type)}$", out, re.M)
    assert re.search(rf"^Predicate type:\s+{re.escape(want.predicate_type)}$", out, re.M)
    assert re.search(rf"^Project:\s+{want.project}$", out, re.M)
    assert re.search(rf"^Workflow:\s+{want.workflow}$", out, re.M)
    assert re.search(r"^Version:\s+-$", out, re.M)
    for name, digest in want.subjects:
        assert re.search(rf"^{re.escape(name)}\s+{digest}$", out, re.M), out
    for name, kind, digest in want.materials:
        assert re.search(rf"^{kind}\s+{re.escape(str(name))}\s+{digest}$", out, re.M), out


@pytest.mark.parametrize(
    "form",
    [
        lambda d: d,
        lambda d: d.upper(),
        lambda d: d.removeprefix("sha256:"),
        lambda d: d[: len("sha256:") + 8],
        lambda d: d.removeprefix("sha256:")[:8],
        lambda d: d.removeprefix("sha256:")[:8].upper(),
        lambda d: d[: len("sha256:") + 20],
    ],
    ids=["full", "upper", "bare", "prefix8", "bare-prefix8", "upper-prefix8", "prefix20"],
)
def test_describe_by_digest_or_unique_prefix(ok: Invoke, form: Any) -> None:
    ok("attestation", "import", str(FULL), str(SLSA), str(STRING))
    view = describe_json(ok, form(digest_of(FULL)))
    check_view(view, FULL.read_bytes())


@pytest.mark.parametrize(
    ("query", "code", "reason"),
    [
        ("sha256:" + "0" * 64, 1, "no attestation"),
        ("0123abcd", 1, "no attestation"),  # a well-formed prefix nobody has (checked below)
        ("sha512:" + "a" * 128, 1, "invalid attestation digest"),
        # Malformed values and short prefixes are usage errors, before the database opens.
        ("sha256:1234567", 2, "at least 8 hex digits"),
        ("1234567", 2, "at least 8 hex digits"),
        ("", 2, "invalid digest"),
        ("sha256:xyz12345", 2, "invalid digest"),
        ("sha256:" + "a" * 65, 2, "invalid digest"),
    ],
)
def test_describe_refusals(
    run: Invoke, ok: Invoke, db_path: Path, query: str, code: int, reason: str
) -> None:
    import_json(ok, str(FULL), str(SLSA))
    assert not any(v["digest"].startswith("sha256:0123abcd") for v in list_json(ok))
    before = snapshot(db_path)
    result = run("attestation", "describe", query)
    assert_refused(result, code=code, contains=reason)
    assert_unchanged(db_path, before, result)


def _colliding_documents() -> tuple[bytes, bytes]:
    """Two valid statements whose sha256 digests share their first 8 hex digits."""
    template = dumps(statement(subject=[{"name": "N", "digest": {"sha256": "ab" * 32}}]))
    head, tail = template.split(b'"N"')
    seen: dict[str, int] = {}
    number = 0
    while True:
        data = head + b'"%d"' % number + tail
        prefix = hashlib.sha256(data).hexdigest()[:8]
        if prefix in seen:
            return head + b'"%d"' % seen[prefix] + tail, data
        seen[prefix] = number
        number += 1


def test_describe_ambiguous_prefix_is_refused(
    run: Invoke, ok: Invoke, tmp_path: Path, db_path: Path
) -> None:
    first, second = _colliding_documents()
    assert sha256_hex(first)[:15] == sha256_hex(second)[:15] and first != second
    ok(
        "attestation",
        "import",
        str(write(tmp_path, "a.json", first)),
        str(write(tmp_path, "b.json", second)),
    )
    before = snapshot(db_path)
    result = run("attestation", "describe", sha256_hex(first)[:15])
    assert_refused(result, contains="matches 2 attestations")
    assert_unchanged(db_path, before, result)
    # One more digit than they share tells them apart.
    a, b = sha256_hex(first), sha256_hex(second)
    common = next(i for i in range(len(a)) if a[i] != b[i])
    assert describe_json(ok, sha256_hex(first)[: common + 1])["digest"] == sha256_hex(first)
    assert describe_json(ok, sha256_hex(second))["digest"] == sha256_hex(second)


# --- artifact download ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [FULL, SLSA, attestation("sigstore-go-bundle-publish.json")])
def test_download_to_stdout_is_the_exact_bytes(ok: Invoke, path: Path) -> None:
    ok("attestation", "import", str(path))
    result = ok("artifact", "download", "--digest", digest_of(path))
    assert result.stdout_bytes == path.read_bytes()
    explicit = ok("artifact", "download", "--digest", digest_of(path), "--output", "-")
    assert explicit.stdout_bytes == path.read_bytes()


def test_download_to_a_file(ok: Invoke, tmp_path: Path) -> None:
    ok("attestation", "import", str(FULL))
    target = tmp_path / "out" / "copy.json"
    target.parent.mkdir()
    result = ok("artifact", "download", "--digest", digest_of(FULL), "--output", str(target))
    assert target.read_bytes() == FULL.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert result.stdout == ""
    assert str(target) in result.stderr


def test_download_does_not_overwrite(
    run: Invoke, ok: Invoke, tmp_path: Path, db_path: Path
) -> None:
    ok("attestation", "import", str(FULL))
    target = write(tmp_path, "existing.json", b"keep me")
    before = snapshot(db_path)
    result = run("artifact", "download", "--digest", digest_of(FULL), "--output", str(target))
    assert_refused(result, contains=str(target))
    assert target.read_bytes() == b"keep me"
    assert_unchanged(db_path, before, result)


def test_download_does_not_follow_a_dangling_symlink(
    run: Invoke, ok: Invoke, tmp_path: Path
) -> None:
    ok("attestation", "import", str(FULL))
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    result = run("artifact", "download", "--digest", digest_of(FULL), "--output", str(link))
    assert_refused(result, contains=str(link))
    assert not (tmp_path / "elsewhere.json").exists()


@pytest.mark.parametrize(
    "digest",
    [sha256_hex(b"never stored"), NGINX_FULL, "not-a-digest"],
    ids=["unknown", "named-but-not-stored", "invalid"],
)
def test_download_unknown_digest_is_refused(
    run: Invoke, ok: Invoke, tmp_path: Path, db_path: Path, digest: str
) -> None:
    ok("attestation", "import", str(FULL))
    before = snapshot(db_path)
    target = tmp_path / "never.json"
    result = run("artifact", "download", "--digest", digest, "--output", str(target))
    assert_refused(result, code=2 if digest == "not-a-digest" else 1)
    assert not target.exists()
    assert_unchanged(db_path, before, result)
    assert run("artifact", "download", "--digest", digest).stdout_bytes == b""


# --- the link to deployments ---------------------------------------------------------------------


def test_a_deployment_needs_an_attestation_naming_the_digest(
    refuse: Invoke, run: Invoke, ok: Invoke
) -> None:
    ok("environment", "create", "--name", "cluster", "--type", "kubernetes")
    args = (*record_args("cluster", "production", "web"), "--digest")
    refuse(*args, NGINX_FULL, contains="not in the evidence store")
    # An attestation that names it as a material is enough.
    ok("attestation", "import", str(FULL))
    ok(*args, NGINX_FULL)
    # ...and one that names it as a subject.
    [(_, subject)] = expected(SLSA.read_bytes()).subjects
    assert_refused(run(*args, subject), contains="not in the evidence store")
    ok("attestation", "import", str(SLSA))
    ok(*args, subject)


# --- limits ---------------------------------------------------------------------------------------


def _padded_statement(size: int) -> bytes:
    base = dumps(chainloop_statement([], {"name": "wf"}))
    return base[:-1] + b" " * (size - len(base)) + b"}"


def test_document_just_over_the_limit_is_refused(
    run: Invoke, ok: Invoke, tmp_path: Path, db_path: Path, baseline: list[str]
) -> None:
    too_big = write(tmp_path, "big.json", _padded_statement(MAX_DOCUMENT_BYTES + 1))
    result = run("attestation", "import", str(too_big))
    assert_refused(result, contains=str(too_big))
    assert "4 MiB" in result.stderr
    assert_unchanged(db_path, baseline, result)
    # One byte less is accepted, and kept exactly.
    at_limit = write(tmp_path, "limit.json", _padded_statement(MAX_DOCUMENT_BYTES))
    ok("attestation", "import", str(at_limit))
    data = ok("artifact", "download", "--digest", digest_of(at_limit)).stdout_bytes
    assert data == at_limit.read_bytes()


def test_input_over_the_limit_is_refused(
    run: Invoke, tmp_path: Path, db_path: Path, baseline: list[str]
) -> None:
    huge = tmp_path / "huge.jsonl"
    with huge.open("wb") as handle:  # sparse: no 64 MiB written to disk
        handle.truncate(MAX_INPUT_BYTES + 1)
    result = run("attestation", "import", str(huge))
    assert_refused(result, contains=str(huge))
    assert "64 MiB" in result.stderr
    assert_unchanged(db_path, baseline, result)


def test_deep_nesting_is_one_clear_error(
    run: Invoke, tmp_path: Path, db_path: Path, baseline: list[str]
) -> None:
    path = write(tmp_path, "deep.json", b"[" * 100_000 + b"]" * 100_000)
    result = run("attestation", "import", str(path))
    assert_refused(result, contains=str(path))
    assert "nested too deeply" in result.stderr
    assert "internal error" not in result.stderr
    assert_unchanged(db_path, baseline, result)


# --- the installed program ----------------------------------------------------------------------


def _process(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(args), input=input, capture_output=True, timeout=60, check=False)


def test_entry_point_imports_lists_and_downloads(entry_point: str, db_path: Path) -> None:
    db = ["--db", str(db_path)]
    lines = [one_line(p) for p in ONE_LINE[:2]]
    imported = _process(
        entry_point,
        *db,
        "attestation",
        "import",
        str(FULL),
        "-",
        "-o",
        "json",
        input=b"\n".join(lines),
    )
    assert imported.returncode == 0, imported.stderr
    results = json.loads(imported.stdout)
    assert [r["attestation"]["digest"] for r in results] == [
        digest_of(FULL),
        *map(sha256_hex, lines),
    ]
    listed = _process(entry_point, *db, "attestation", "list", "--digest", NGINX_FULL, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    [view] = json.loads(listed.stdout)
    check_view(view, FULL.read_bytes())
    downloaded = _process(entry_point, *db, "artifact", "download", "--digest", digest_of(FULL))
    assert downloaded.returncode == 0, downloaded.stderr
    assert downloaded.stdout == FULL.read_bytes()


def test_entry_point_refusal_is_one_line(entry_point: str, db_path: Path) -> None:
    _process(entry_point, "--db", str(db_path), "attestation", "import", str(STRING))
    before = snapshot(db_path)
    bad = attestation("chainloop-attestation-dsse-invalidtype.json")
    result = _process(
        entry_point, "--db", str(db_path), "attestation", "import", str(FULL), str(bad)
    )
    assert result.returncode == 1
    assert result.stdout == b""
    stderr = result.stderr.decode()
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("Error: ") and bad.name in stderr
    assert "Traceback" not in stderr
    assert snapshot(db_path) == before


def test_entry_point_usage_error_exits_2(entry_point: str, db_path: Path) -> None:
    result = _process(
        entry_point, "--db", str(db_path), "attestation", "import", "-", "-", input=b"{}"
    )
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert len(stderr.splitlines()) == 1 and stderr.startswith("Error: "), stderr
    assert untouched(db_path)


def test_python_dash_m_help() -> None:
    result = _process(sys.executable, "-m", "deploytrack", "--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "Usage:" in out
    assert "attestation" in out and "artifact" in out


def test_a_large_import_in_batches_keeps_every_rule(
    ok: Invoke, tmp_path: Path, db_path: Path
) -> None:
    """1,203 lines: across several insert batches, with repeats and already-stored ones."""

    def line(i: int) -> bytes:
        subject = {"name": f"a{i}", "digest": {"sha256": hashlib.sha256(b"%d" % i).hexdigest()}}
        return json.dumps(
            {"_type": "https://in-toto.io/Statement/v1", "subject": [subject],
             "predicateType": "https://example.com/p"}
        ).encode()  # fmt: skip

    first = write(tmp_path, "first.jsonl", b"\n".join(line(i) for i in range(100)))
    ok("attestation", "import", str(first))
    lines = [line(i) for i in range(1200)] + [line(5), line(700), line(1199)]
    big = write(tmp_path, "big.jsonl", b"\n".join(lines))
    results = import_json(ok, str(big))
    assert len(results) == 1203
    created = [r["created"] for r in results]
    assert created[:100] == [False] * 100  # stored by the first import
    assert created[100:1200] == [True] * 1100
    assert created[1200:] == [False, False, False]  # repeats within the same input
    stored = {r["digest"] for r in query(db_path, "SELECT digest FROM attestation")}
    assert stored == {"sha256:" + hashlib.sha256(x).hexdigest() for x in lines}
    subjects = query(db_path, "SELECT attestation_id, digest FROM attestation_subject")
    assert len(subjects) == 1200
    # Each subject belongs to the attestation whose bytes name it.
    number_of = {"sha256:" + hashlib.sha256(b"%d" % i).hexdigest(): i for i in range(1200)}
    by_id = {r["id"]: r["digest"] for r in query(db_path, "SELECT id, digest FROM attestation")}
    for subject in subjects:
        expected = hashlib.sha256(line(number_of[subject["digest"]])).hexdigest()
        assert by_id[subject["attestation_id"]] == "sha256:" + expected
