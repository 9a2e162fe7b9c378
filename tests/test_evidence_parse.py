"""Unit tests of the pure evidence parser: bytes in, a ParsedAttestation or a refusal out.

No database here. Expected values never come from the code under test: digests are
computed with hashlib from the bytes, and subjects, materials and metadata come from
`expected()`, an independent decoding of the fixture JSON written for these tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import MUST_REJECT, NGINX_FULL, NGINX_GIT, attestation, good_attestations

from deploytrack.evidence import (
    MAX_DOCUMENT_BYTES,
    MAX_INPUT_BYTES,
    EvidenceError,
    ParsedAttestation,
    parse_document,
    parse_input,
)
from deploytrack.evidence import parse as parse_module

INTOTO = "application/vnd.in-toto+json"
V01 = "https://in-toto.io/Statement/v0.1"
V1 = "https://in-toto.io/Statement/v1"
SLSA1 = "https://slsa.dev/provenance/v1"
CHAINLOOP = "chainloop.dev/attestation/v0.2"
BUNDLE_03 = "application/vnd.dev.sigstore.bundle+json;version=0.3"
ARTIFACT_HEX = hashlib.sha256(b"an artifact").hexdigest()
OTHER_HEX = hashlib.sha256(b"another artifact").hexdigest()


# --- an independent decoding of the formats, for expected values ---------------------


@dataclass(frozen=True)
class Expected:
    format: str
    statement_type: str
    predicate_type: str
    subjects: Counter[tuple[str, str]]
    materials: Counter[tuple[str | None, str | None, str | None]]
    project: str | None
    version: str | None
    workflow: str | None
    signatures: tuple[tuple[str, str], ...]
    payload: bytes | None


def sha256_hex(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _digests(digest_set: dict[str, str]) -> list[str]:
    return [f"{alg}:{value.lower()}" for alg, value in digest_set.items()]


def expected(raw: bytes) -> Expected:
    """What a document says, decoded here without the application's parser."""
    doc = json.loads(raw)
    if "mediaType" in doc:
        fmt, envelope = "sigstore-bundle", doc["dsseEnvelope"]
    elif "payloadType" in doc:
        fmt, envelope = "dsse", doc
    else:
        fmt, envelope = "statement", None
    payload = base64.b64decode(envelope["payload"]) if envelope else None
    statement = json.loads(payload) if payload is not None else doc
    predicate_type = statement.get("predicateType") or statement["predicate_type"]
    subjects = Counter(
        (item["name"], digest)
        for item in statement["subject"]
        for digest in _digests(item["digest"])
    )
    materials: Counter[tuple[str | None, str | None, str | None]] = Counter()
    project = version = workflow = None
    if predicate_type.startswith("chainloop.dev/attestation/"):
        predicate = statement["predicate"]
        metadata = predicate.get("metadata") or {}
        project = metadata.get("project") or None
        version = metadata.get("projectVersion") or None
        workflow = metadata.get("name") or None
        for item in predicate.get("materials") or []:
            annotations = item.get("annotations") or {}
            name = item.get("name") or annotations.get("chainloop.material.name")
            kind = annotations.get("chainloop.material.type")
            if item.get("digest"):
                for digest in _digests(item["digest"]):
                    materials[(name, kind, digest)] += 1
            else:
                materials[(name, kind, None)] += 1
    signatures = tuple(
        (s.get("keyid") or "", s["sig"]) for s in (envelope or {}).get("signatures", [])
    )
    return Expected(
        format=fmt,
        statement_type=statement.get("_type") or statement["type"],
        predicate_type=predicate_type,
        subjects=subjects,
        materials=materials,
        project=project,
        version=version,
        workflow=workflow,
        signatures=signatures,
        payload=payload,
    )


def subjects_of(parsed: ParsedAttestation) -> Counter[tuple[str, str]]:
    return Counter((s.name, s.digest) for s in parsed.subjects)


def materials_of(parsed: ParsedAttestation) -> Counter[tuple[str | None, str | None, str | None]]:
    return Counter((m.name, m.kind, m.digest) for m in parsed.materials)


# --- builders for synthetic documents ----------------------------------------------------


DROP = object()  # statement(field=DROP) leaves the field out


def statement(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_type": V1,
        "subject": [{"name": "app.tar.gz", "digest": {"sha256": ARTIFACT_HEX}}],
        "predicateType": SLSA1,
        "predicate": {"buildDefinition": {}},
    }
    for key, value in fields.items():
        if value is DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def dsse(payload: Any, payload_type: str = INTOTO) -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else dumps(payload)
    return {
        "payloadType": payload_type,
        "payload": b64(raw),
        "signatures": [{"keyid": "key-1", "sig": b64(b"not a real signature")}],
    }


def bundle(envelope: Any, media_type: Any = BUNDLE_03) -> dict[str, Any]:
    return {"mediaType": media_type, "verificationMaterial": {}, "dsseEnvelope": envelope}


def chainloop_statement(materials: list[Any], metadata: dict[str, Any]) -> dict[str, Any]:
    return statement(
        predicateType=CHAINLOOP,
        predicate={"metadata": metadata, "materials": materials},
    )


def refused(raw: bytes, name: str = "doc.json", **kwargs: Any) -> str:
    with pytest.raises(EvidenceError) as info:
        parse_input(raw, name, **kwargs)
    message = str(info.value)
    assert name in message, message
    return message


# --- the real fixtures -------------------------------------------------------------------


@pytest.mark.parametrize("path", good_attestations(), ids=lambda p: p.name)
def test_every_good_fixture_parses_as_decoded(path: Path) -> None:
    raw = path.read_bytes()
    want = expected(raw)
    [parsed] = parse_input(raw, path.name)
    assert parsed.raw == raw
    assert parsed.digest == sha256_hex(raw)
    assert parsed.format == want.format
    assert parsed.statement_type == want.statement_type
    assert parsed.predicate_type == want.predicate_type
    assert subjects_of(parsed) == want.subjects
    assert materials_of(parsed) == want.materials
    assert (parsed.project, parsed.version, parsed.workflow) == (
        want.project,
        want.version,
        want.workflow,
    )
    assert parsed.envelope is None if want.format == "statement" else parsed.envelope is not None
    if parsed.envelope is not None:
        assert parsed.envelope.payload == want.payload
        assert parsed.envelope.payload_type == INTOTO
        assert tuple((s.keyid, s.sig) for s in parsed.envelope.signatures) == want.signatures


def test_the_fixture_set_covers_every_format() -> None:
    formats = Counter(expected(p.read_bytes()).format for p in good_attestations())
    assert set(formats) == {"statement", "dsse", "sigstore-bundle"}
    assert len(good_attestations()) == len(list(attestation("").glob("*.json"))) - len(MUST_REJECT)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("chainloop-invalid.json", "not an attestation"),
        ("chainloop-attestation-dsse-invalidtype.json", "payloadType"),
        ("chainloop-attestation-invalid-intoto.json", "DSSE payload is not valid JSON"),
        ("chainloop-attestation-invalid-payload.json", "not valid base64"),
    ],
)
def test_must_reject_fixtures_are_refused_with_the_reason(name: str, reason: str) -> None:
    assert name in MUST_REJECT
    message = refused(attestation(name).read_bytes(), name)
    assert reason in message, message


def test_duplicated_sha_fixture_keeps_one_digest_under_both_kinds() -> None:
    raw = attestation("chainloop-with-duplicated-sha.json").read_bytes()
    [parsed] = parse_input(raw, "dup.json")
    kinds = {m.kind for m in parsed.materials if m.digest == NGINX_FULL}
    assert kinds == {"CONTAINER_IMAGE", "SBOM_CYCLONEDX_JSON"}
    assert kinds == {k for _, k, d in expected(raw).materials if d == NGINX_FULL}


def test_string_material_is_kept_without_a_digest() -> None:
    raw = attestation("chainloop-with-string.json").read_bytes()
    [parsed] = parse_input(raw, "string.json")
    strings = [m for m in parsed.materials if m.kind == "STRING"]
    assert len(strings) == 1
    assert strings[0].digest is None
    assert strings[0].name == "build-ref"  # its chainloop.material.name annotation


def test_same_digest_as_subject_and_material() -> None:
    raw = attestation("chainloop-same-digest-than-git-subject.json").read_bytes()
    [parsed] = parse_input(raw, "same.json")
    assert NGINX_GIT in {s.digest for s in parsed.subjects}
    assert ("CONTAINER_IMAGE", NGINX_GIT) in {(m.kind, m.digest) for m in parsed.materials}


def test_git_subject_fixture_uses_proto_json_spelling_and_sha1() -> None:
    raw = attestation("chainloop-with-git-subject.json").read_bytes()
    payload = json.loads(base64.b64decode(json.loads(raw)["payload"]))
    assert "type" in payload and "_type" not in payload  # the fixture is what it claims
    assert "predicate_type" in payload
    [parsed] = parse_input(raw, "git.json")
    heads = [s for s in parsed.subjects if s.name == "git.head"]
    assert len(heads) == 1
    assert heads[0].digest.startswith("sha1:")
    assert len(heads[0].digest) == len("sha1:") + 40


def test_npm_publish_bundle_v01_has_a_sha512_subject() -> None:
    raw = attestation("sigstore-go-bundle-publish.json").read_bytes()
    assert json.loads(raw)["mediaType"] == "application/vnd.dev.sigstore.bundle+json;version=0.1"
    [parsed] = parse_input(raw, "publish.json")
    assert parsed.format == "sigstore-bundle"
    assert parsed.bundle_version == "0.1"
    assert [s.digest.split(":")[0] for s in parsed.subjects] == ["sha512"]


def test_slsa_bundle_in_the_v03_media_type_spelling() -> None:
    raw = attestation("chainloop-slsa_provenance.sigstore.json").read_bytes()
    assert json.loads(raw)["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    [parsed] = parse_input(raw, "slsa.json")
    assert parsed.bundle_version == "0.3"
    assert len(parsed.subjects) == sum(expected(raw).subjects.values()) > 1
    # Not a Chainloop predicate: no materials and no project are read from it.
    assert parsed.materials == ()
    assert parsed.project is None


def test_slsa_v02_materials_are_not_indexed() -> None:
    raw = attestation("sigstore-go-bundle-provenance.json").read_bytes()
    payload = json.loads(base64.b64decode(json.loads(raw)["dsseEnvelope"]["payload"]))
    assert payload["predicate"]["materials"]  # SLSA v0.2 has materials of its own
    [parsed] = parse_input(raw, "prov.json")
    assert parsed.materials == ()


def test_chainloop_project_version_comes_from_the_metadata() -> None:
    raw = attestation("chainloop-attestation-bundle.json").read_bytes()
    [parsed] = parse_input(raw, "b.json")
    assert parsed.version is not None
    assert parsed.version == expected(raw).version


# --- formats, synthesised ----------------------------------------------------------------


@pytest.mark.parametrize("statement_type", [V01, V1])
def test_bare_statement_both_versions(statement_type: str) -> None:
    raw = dumps(statement(_type=statement_type))
    [parsed] = parse_input(raw, "s.json")
    assert parsed.format == "statement"
    assert parsed.statement_type == statement_type
    assert parsed.envelope is None
    assert [(s.name, s.digest) for s in parsed.subjects] == [
        ("app.tar.gz", f"sha256:{ARTIFACT_HEX}")
    ]


def test_bare_statement_in_proto_json_spelling() -> None:
    doc = statement(_type=DROP, predicateType=DROP)
    doc["type"] = V1
    doc["predicate_type"] = SLSA1
    [parsed] = parse_input(dumps(doc), "proto.json")
    assert (parsed.statement_type, parsed.predicate_type) == (V1, SLSA1)


def test_dsse_envelope_of_a_statement() -> None:
    inner = dumps(statement())
    raw = dumps(dsse(inner))
    [parsed] = parse_input(raw, "e.json")
    assert parsed.format == "dsse"
    assert parsed.envelope is not None and parsed.envelope.payload == inner
    assert parsed.digest == sha256_hex(raw)


def _url_safe_statement() -> tuple[bytes, str]:
    """A statement whose standard base64 has '+' or '/', and that base64 URL-safe."""
    for size in range(64):
        raw = dumps(statement(predicate={"note": "?" * size + ">>>"}))
        encoded = b64(raw)
        if "/" in encoded and "+" in encoded:
            return raw, encoded.replace("+", "-").replace("/", "_")
    raise AssertionError("no such statement")


def test_dsse_payload_in_url_safe_base64_is_accepted() -> None:
    """DSSE: "Either standard or URL-safe encoding is allowed"."""
    raw, url_safe = _url_safe_statement()
    doc = {**dsse(statement()), "payload": url_safe}
    [parsed] = parse_input(dumps(doc), "url.json")
    assert parsed.envelope is not None and parsed.envelope.payload == raw
    [parsed] = parse_input(dumps(bundle(doc)), "url-bundle.json")
    assert parsed.envelope is not None and parsed.envelope.payload == raw


def test_dsse_payload_mixing_both_base64_alphabets_is_refused() -> None:
    raw, url_safe = _url_safe_statement()
    standard = b64(raw)
    cut = url_safe.index("_") if "_" in url_safe else url_safe.index("-")
    mixed = url_safe[: cut + 1] + standard[cut + 1 :]
    assert ("+" in mixed or "/" in mixed) and ("-" in mixed or "_" in mixed)
    assert "base64" in refused(dumps({**dsse(statement()), "payload": mixed}))


def test_parse_document_of_nothing_is_empty() -> None:
    for raw in (b"", b"  \r\n"):
        with pytest.raises(EvidenceError, match=r"one\.json is empty"):
            parse_document(raw, "one.json")


@pytest.mark.parametrize("jsonl", [False, True])
def test_an_input_of_whitespace_alone_is_empty_in_both_modes(jsonl: bool) -> None:
    # Every byte bytes.strip() removes: parse_input's one emptiness check covers JSON Lines.
    for raw in (b"", b"\n", b" \t\r\n\x0b\x0c\n\r\n"):
        with pytest.raises(EvidenceError, match=r"in\.jsonl is empty"):
            parse_input(raw, "in.jsonl", jsonl=jsonl)


@pytest.mark.parametrize(
    ("media_type", "version"),
    [
        ("application/vnd.dev.sigstore.bundle+json;version=0.1", "0.1"),
        ("application/vnd.dev.sigstore.bundle+json;version=0.2", "0.2"),
        ("application/vnd.dev.sigstore.bundle+json;version=0.3", "0.3"),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", "0.3"),
    ],
)
def test_bundle_media_types(media_type: str, version: str) -> None:
    [parsed] = parse_input(dumps(bundle(dsse(statement()), media_type)), "b.json")
    assert parsed.format == "sigstore-bundle"
    assert parsed.bundle_version == version


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.dev.sigstore.bundle+json;version=0.4",
        "application/vnd.dev.sigstore.bundle.v0.4+json",
        "application/vnd.dev.sigstore.bundle+json",
        "application/json",
        3,
        None,
    ],
)
def test_unsupported_bundle_media_types_are_refused(media_type: Any) -> None:
    message = refused(dumps(bundle(dsse(statement()), media_type)))
    assert "unsupported bundle media type" in message


def test_bundle_with_a_message_signature_is_refused() -> None:
    doc = {
        "mediaType": BUNDLE_03,
        "verificationMaterial": {},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(bytes(32))},
            "signature": b64(b"sig"),
        },
    }
    assert "dsseEnvelope" in refused(dumps(doc))


def _surrogate_doc(where: str) -> bytes:
    text = '"\\ud800"'  # a JSON string escape for an unpaired surrogate
    if where == "subject":
        doc = statement()
        doc["subject"][0]["name"] = "PLACEHOLDER"
    elif where == "predicate type":
        doc = statement(predicateType="PLACEHOLDER")
    else:
        doc = chainloop_statement([], {"name": "wf", "project": "PLACEHOLDER"})
    return dumps(doc).replace(b'"PLACEHOLDER"', text.encode())


BAD_DOCUMENTS: list[tuple[str, bytes, str]] = [
    ("not JSON", b'{"_type": ', "not valid JSON"),
    ("trailing garbage", dumps(statement()) + b" x", "not valid JSON"),
    ("invalid UTF-8", b'{"_type": "\xff\xfe"}', "invalid UTF-8"),
    ("empty", b"", "is empty"),
    ("only whitespace", b" \n\t\r\n", "is empty"),
    ("a JSON array", b"[]", "not an attestation"),
    ("a JSON string", b'"hello"', "not an attestation"),
    ("some other object", b'{"hello": "world"}', "not an attestation"),
    ("empty object", b"{}", "not an attestation"),
    ("payload not base64", dumps({**dsse(statement()), "payload": "%%%not base64%%%"}), "base64"),
    ("payload not a string", dumps({**dsse(statement()), "payload": 12}), "base64"),
    (
        "payload with a character outside base64",
        dumps(
            {
                **dsse(statement()),
                "payload": b64(dumps(statement()))[:8] + "*" + b64(dumps(statement()))[8:],
            }
        ),
        "base64",
    ),
    (
        "payload without its padding",
        dumps({**dsse(statement()), "payload": b64(dumps(statement())).rstrip("=")}),
        "base64",
    ),
    ("payload not JSON", dumps(dsse(b"\x00\x01 binary")), "DSSE payload is not valid JSON"),
    ("payload a JSON array", dumps(dsse([1, 2])), "not an in-toto statement"),
    ("payload another object", dumps(dsse({"a": 1})), "not an in-toto statement"),
    ("payloadType not in-toto", dumps(dsse(statement(), "application/json")), "payloadType"),
    ("payloadType missing", dumps({"payload": b64(dumps(statement()))}), "payloadType"),
    ("signatures not a list", dumps({**dsse(statement()), "signatures": {}}), "signatures"),
    ("signature without sig", dumps({**dsse(statement()), "signatures": [{}]}), "sig"),
    ("bundle envelope not an object", dumps(bundle([])), "not a JSON object"),
    ("no subject", dumps(statement(subject=DROP)), "names no subject"),
    ("empty subject list", dumps(statement(subject=[])), "names no subject"),
    ("subject not a list", dumps(statement(subject={"name": "x"})), "names no subject"),
    ("subject not an object", dumps(statement(subject=["x"])), "subject 1 is not an object"),
    ("subject without digest", dumps(statement(subject=[{"name": "x"}])), "has no digest"),
    (
        "subject with empty digest",
        dumps(statement(subject=[{"name": "x", "digest": {}}])),
        "has no digest",
    ),
    (
        "subject digest not a string",
        dumps(statement(subject=[{"name": "x", "digest": {"sha256": 5}}])),
        "invalid digest",
    ),
    (
        "subject digest algorithm with a colon",
        dumps(statement(subject=[{"name": "x", "digest": {"sha256:": ARTIFACT_HEX}}])),
        "invalid digest",
    ),
    (
        "subject name not a string",
        dumps(statement(subject=[{"name": 7, "digest": {"sha256": ARTIFACT_HEX}}])),
        "name that is not a string",
    ),
    ("bad _type", dumps(statement(_type="https://in-toto.io/Statement/v2")), "_type is"),
    ("_type not a string", dumps(statement(_type=1)), "_type is"),
    ("no predicateType", dumps(statement(predicateType=DROP)), "no predicateType"),
    ("empty predicateType", dumps(statement(predicateType="")), "no predicateType"),
    ("predicate not an object", dumps(statement(predicate=[1])), "predicate is not an object"),
    (
        "Chainloop materials not a list",
        dumps(statement(predicateType=CHAINLOOP, predicate={"materials": {"m": 1}})),
        "materials is not a list",
    ),
    (
        "Chainloop material not an object",
        dumps(chainloop_statement(["x"], {})),
        "material 1 is not an object",
    ),
    (
        "Chainloop material digest malformed",
        dumps(chainloop_statement([{"name": "m", "digest": {"sha256": ["x"]}}], {})),
        "material 1 has an invalid digest",
    ),
    ("unpaired surrogate in a subject name", _surrogate_doc("subject"), "surrogate"),
    ("unpaired surrogate in the predicate type", _surrogate_doc("predicate type"), "surrogate"),
    ("unpaired surrogate in the Chainloop project", _surrogate_doc("project"), "surrogate"),
]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(raw, reason) for _, raw, reason in BAD_DOCUMENTS],
    ids=[case for case, _, _ in BAD_DOCUMENTS],
)
def test_bad_documents_are_refused_with_the_reason(raw: bytes, reason: str) -> None:
    message = refused(raw, "bad-doc.json")
    assert reason in message, message


def _statement_like(raw: bytes) -> bool:
    try:
        doc = json.loads(raw)
    except ValueError:
        return False
    return isinstance(doc, dict) and "_type" in doc


BAD_STATEMENTS = [case for case in BAD_DOCUMENTS if _statement_like(case[1])]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(raw, reason) for _, raw, reason in BAD_STATEMENTS],
    ids=[case for case, _, _ in BAD_STATEMENTS],
)
def test_bad_statements_are_refused_inside_an_envelope_or_bundle_too(
    raw: bytes, reason: str
) -> None:
    inner = json.loads(raw)
    for wrapped in (dsse(inner), bundle(dsse(inner))):
        message = refused(dumps(wrapped))
        assert reason in message, message


def test_the_bad_statements_cover_the_statement_rules() -> None:
    assert len(BAD_STATEMENTS) >= 15


def test_uppercase_hex_digests_are_lower_cased_and_algorithm_names_kept() -> None:
    doc = statement(
        subject=[
            {"name": "a", "digest": {"sha256": ARTIFACT_HEX.upper()}},
            {"name": "b", "digest": {"gitCommit": "AB" * 20, "sha1": "CD" * 20}},
        ]
    )
    [parsed] = parse_input(dumps(doc), "u.json")
    assert Counter((s.name, s.digest) for s in parsed.subjects) == Counter(
        [
            ("a", f"sha256:{ARTIFACT_HEX}"),
            ("b", "gitCommit:" + "ab" * 20),
            ("b", "sha1:" + "cd" * 20),
        ]
    )


def test_known_hash_names_are_lower_cased_and_their_values_checked() -> None:
    doc = statement(subject=[{"name": "a", "digest": {"SHA256": ARTIFACT_HEX.upper()}}])
    [parsed] = parse_input(dumps(doc), "u.json")
    assert [s.digest for s in parsed.subjects] == [f"sha256:{ARTIFACT_HEX}"]


@pytest.mark.parametrize(
    "digest_set",
    [{"sha256": "xyz"}, {"sha256": "ab" * 31}, {"SHA1": "ab" * 21}, {"sha512": "00" * 32}],
    ids=["not-hex", "short-sha256", "long-sha1", "short-sha512"],
)
def test_known_hash_with_a_malformed_value_is_refused(digest_set: dict[str, str]) -> None:
    doc = statement(subject=[{"name": "a", "digest": digest_set}])
    assert "invalid digest" in refused(dumps(doc))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_constants_are_refused(constant: str) -> None:
    raw = dumps(statement()).replace(
        b'"predicate": {', b'"predicate": {"x": ' + constant.encode() + b", "
    )
    assert raw != dumps(statement())
    assert "not valid JSON" in refused(raw)


def test_chainloop_metadata_and_materials() -> None:
    materials = [
        {
            "name": "registry.example/app",
            "digest": {"sha256": ARTIFACT_HEX},
            "annotations": {"chainloop.material.type": "CONTAINER_IMAGE"},
        },
        {
            "digest": {"sha256": OTHER_HEX, "sha512": "ab" * 64},
            "annotations": {
                "chainloop.material.type": "ARTIFACT",
                "chainloop.material.name": "tarball",
            },
        },
        {"annotations": {"chainloop.material.type": "STRING"}},
    ]
    metadata = {"name": "build", "project": "shop", "projectVersion": "v2.1.0"}
    [parsed] = parse_input(dumps(chainloop_statement(materials, metadata)), "c.json")
    assert (parsed.project, parsed.version, parsed.workflow) == ("shop", "v2.1.0", "build")
    assert materials_of(parsed) == Counter(
        [
            ("registry.example/app", "CONTAINER_IMAGE", f"sha256:{ARTIFACT_HEX}"),
            ("tarball", "ARTIFACT", f"sha256:{OTHER_HEX}"),
            ("tarball", "ARTIFACT", "sha512:" + "ab" * 64),
            (None, "STRING", None),
        ]
    )


def test_chainloop_predicate_without_metadata() -> None:
    [parsed] = parse_input(dumps(statement(predicateType=CHAINLOOP, predicate={})), "c.json")
    assert (parsed.project, parsed.version, parsed.workflow) == (None, None, None)
    assert parsed.materials == ()


def test_non_chainloop_predicate_with_chainloop_like_fields_is_not_indexed() -> None:
    predicate = {
        "metadata": {"name": "wf", "project": "p", "projectVersion": "1"},
        "materials": [{"name": "m", "digest": {"sha256": OTHER_HEX}}],
    }
    [parsed] = parse_input(dumps(statement(predicate=predicate)), "s.json")
    assert parsed.materials == ()
    assert (parsed.project, parsed.version, parsed.workflow) == (None, None, None)


def test_digest_is_of_the_exact_bytes() -> None:
    compact = dumps(statement())
    spaced = json.dumps(statement(), indent=4).encode() + b"\n"
    [a] = parse_input(compact, "a.json")
    [b] = parse_input(spaced, "b.json")
    assert a.digest == sha256_hex(compact)
    assert b.digest == sha256_hex(spaced)
    assert a.digest != b.digest
    assert b.raw == spaced


# --- JSON Lines ------------------------------------------------------------------------


def _lines() -> list[bytes]:
    return [
        dumps(statement()),
        dumps(dsse(statement(_type=V01))),
        dumps(bundle(dsse(chainloop_statement([], {"name": "wf"})))),
    ]


def test_jsonl_stores_each_line_with_its_own_digest() -> None:
    lines = _lines()
    data = b"\n".join(lines) + b"\n"
    parsed = parse_input(data, "x.jsonl", jsonl=True)
    assert [p.digest for p in parsed] == [sha256_hex(line) for line in lines]
    assert [p.raw for p in parsed] == lines
    assert [p.format for p in parsed] == ["statement", "dsse", "sigstore-bundle"]


def test_jsonl_skips_blank_lines_and_strips_crlf() -> None:
    lines = _lines()
    data = b"\r\n\r\n".join(lines) + b"\r\n\n"
    parsed = parse_input(data, "x.jsonl", jsonl=True)
    assert [p.raw for p in parsed] == lines


def test_jsonl_of_one_line_is_one_document() -> None:
    line = dumps(statement())
    [parsed] = parse_input(line + b"\n", "one.jsonl", jsonl=True)
    assert parsed.digest == sha256_hex(line)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"hello": 1}', "not an attestation"),
        (dumps(statement(subject=[])), "names no subject"),
    ],
)
def test_jsonl_bad_line_is_named(bad: bytes, reason: str) -> None:
    lines = _lines()
    data = b"\n".join([lines[0], b"", bad, lines[1]])
    message = refused(data, "x.jsonl", jsonl=True)
    assert "x.jsonl line 3" in message
    assert reason in message


def test_several_one_line_documents_are_json_lines_without_the_flag() -> None:
    """What `cosign download attestation` prints: one-line documents, read from stdin."""
    lines = _lines()
    parsed = parse_input(b"\n".join(lines) + b"\n", "stdin")
    assert [p.digest for p in parsed] == [sha256_hex(line) for line in lines]
    message = refused(b"\n".join([*lines, b"{oops}"]), "stdin")
    assert "stdin line 4" in message


@pytest.mark.parametrize("path", good_attestations(), ids=lambda p: p.name)
def test_a_whole_fixture_is_one_document_without_the_flag(path: Path) -> None:
    """Pretty-printed or one line with a final newline: one document, all of its bytes."""
    raw = path.read_bytes()
    [parsed] = parse_input(raw, path.name)
    assert parsed.digest == sha256_hex(raw)


def test_jsonl_that_is_empty() -> None:
    assert "is empty" in refused(b"\n\n \n", "e.jsonl", jsonl=True)


# --- limits -------------------------------------------------------------------------------


def _padded(size: int) -> bytes:
    """A valid statement of exactly `size` bytes (white space before the final brace)."""
    base = dumps(statement())
    assert base.endswith(b"}") and size >= len(base)
    return base[:-1] + b" " * (size - len(base)) + b"}"


def test_document_at_the_limit_is_accepted_and_one_byte_more_refused() -> None:
    at_limit = _padded(MAX_DOCUMENT_BYTES)
    assert parse_document(at_limit, "big.json").digest == sha256_hex(at_limit)
    message = refused(_padded(MAX_DOCUMENT_BYTES + 1), "big.json")
    assert "limit for one attestation" in message


def test_document_limit_uses_the_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    small = dumps(statement(predicate=DROP))
    raw = dumps(statement())
    assert len(small) < len(raw)
    monkeypatch.setattr(parse_module, "MAX_DOCUMENT_BYTES", len(raw))
    assert parse_input(raw, "ok.json")
    monkeypatch.setattr(parse_module, "MAX_DOCUMENT_BYTES", len(raw) - 1)
    assert "limit for one attestation" in refused(raw, "small.json")
    # ...and for each line of JSON Lines: the short line passes, the long one is named.
    message = refused(small + b"\n" + raw, "small.jsonl", jsonl=True)
    assert "small.jsonl line 2" in message and "limit for one attestation" in message


def test_input_limit_uses_the_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _lines()
    data = b"\n".join(lines)
    monkeypatch.setattr(parse_module, "MAX_INPUT_BYTES", len(data))
    assert len(parse_input(data, "in.jsonl", jsonl=True)) == 3
    monkeypatch.setattr(parse_module, "MAX_INPUT_BYTES", len(data) - 1)
    assert "limit for one input" in refused(data, "in.jsonl", jsonl=True)


def test_input_over_the_real_limit_is_refused_before_parsing() -> None:
    message = refused(b" " * (MAX_INPUT_BYTES + 1), "huge.jsonl", jsonl=True)
    assert "limit for one input" in message


def test_limits_are_the_documented_sizes() -> None:
    assert MAX_DOCUMENT_BYTES == 4 * 1024 * 1024
    assert MAX_INPUT_BYTES == 64 * 1024 * 1024


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        dumps(statement(predicate={"deep": "PLACEHOLDER"})).replace(
            b'"PLACEHOLDER"', b"[" * 100_000 + b"]" * 100_000
        ),
        dumps(dsse(b"[" * 100_000 + b"]" * 100_000)),
    ],
    ids=["open-arrays", "closed-arrays", "objects", "inside-a-statement", "inside-a-payload"],
)
def test_deeply_nested_json_is_refused_not_a_recursion_error(raw: bytes) -> None:
    message = refused(raw, "deep.json")
    assert "nested too deeply" in message, message


def test_deeply_nested_line_of_json_lines_is_named() -> None:
    data = dumps(statement()) + b"\n" + b"[" * 100_000
    message = refused(data, "deep.jsonl", jsonl=True)
    assert "deep.jsonl line 2" in message and "nested too deeply" in message


# --- duplicate keys ----------------------------------------------------------------------------


def twice(raw: bytes, key: str, occurrence: int = 1) -> bytes:
    """`raw` with `"key": null, ` written before the n-th `"key": `: the same object then
    holds the key twice, and a last-wins parser would still read the real value."""
    needle = json.dumps(key).encode() + b": "
    at = -1
    for _ in range(occurrence):
        at = raw.index(needle, at + 1)
    return raw[:at] + needle + b"null, " + raw[at:]


def _chainloop_with_material() -> dict[str, Any]:
    material = {
        "name": "app",
        "digest": {"sha256": OTHER_HEX},
        "annotations": {"chainloop.material.type": "CONTAINER_IMAGE"},
    }
    return chainloop_statement([material], {"name": "wf", "project": "p"})


DUPLICATES: list[tuple[str, bytes, str, str]] = [
    # (id, document, duplicated key, where the message says it is)
    ("statement subject", twice(dumps(statement()), "subject"), "subject", "doc.json is"),
    ("statement _type", twice(dumps(statement()), "_type"), "_type", "doc.json is"),
    ("nested: a subject's digest set", twice(dumps(statement()), "sha256"), "sha256", "doc.json"),
    (
        "nested: chainloop material annotations",
        twice(dumps(_chainloop_with_material()), "chainloop.material.type"),
        "chainloop.material.type",
        "doc.json",
    ),
    (
        "nested: deep in the predicate",
        twice(dumps(statement(predicate={"a": {"b": [{"c": {"d": 1}}]}})), "d"),
        "d",
        "doc.json",
    ),
    ("DSSE envelope payload", twice(dumps(dsse(statement())), "payload"), "payload", "doc.json"),
    (
        "DSSE envelope signature keyid",
        twice(dumps(dsse(statement())), "keyid"),
        "keyid",
        "doc.json",
    ),
    (
        "DSSE payload subject",
        dumps(dsse(twice(dumps(statement()), "subject"))),
        "subject",
        "doc.json: DSSE payload is",
    ),
    (
        "DSSE payload, nested digest set",
        dumps(dsse(twice(dumps(statement()), "sha256"))),
        "sha256",
        "doc.json: DSSE payload is",
    ),
    (
        "bundle mediaType",
        twice(dumps(bundle(dsse(statement()))), "mediaType"),
        "mediaType",
        "doc.json",
    ),
    (
        "bundle dsseEnvelope",
        twice(dumps(bundle(dsse(statement()))), "dsseEnvelope"),
        "dsseEnvelope",
        "doc.json",
    ),
    (
        "bundle: the payload of its envelope",
        dumps(bundle(dsse(twice(dumps(_chainloop_with_material()), "project")))),
        "project",
        "doc.json: DSSE payload is",
    ),
]


@pytest.mark.parametrize(
    ("raw", "key", "where"), [d[1:] for d in DUPLICATES], ids=[d[0] for d in DUPLICATES]
)
def test_a_key_twice_in_one_object_is_refused_and_named(raw: bytes, key: str, where: str) -> None:
    json.loads(raw)  # Python's own parser takes it (the last value wins): the bug
    message = refused(raw)
    assert f"duplicate key {json.dumps(key)}" in message, message
    assert where in message, message


def test_a_key_twice_on_one_line_of_json_lines_names_the_line() -> None:
    lines = _lines()
    lines[1] = twice(lines[1], "payloadType")
    message = refused(b"\n".join(lines), "x.jsonl", jsonl=True)
    assert "x.jsonl line 2" in message and 'duplicate key "payloadType"' in message


def test_a_key_twice_in_the_payload_of_a_json_lines_line_names_the_line() -> None:
    lines = _lines()
    lines[2] = dumps(bundle(dsse(twice(dumps(statement()), "predicateType"))))
    message = refused(b"\n".join(lines), "x.jsonl", jsonl=True)
    assert "x.jsonl line 3: DSSE payload" in message
    assert 'duplicate key "predicateType"' in message


def test_the_same_key_in_different_objects_is_fine() -> None:
    # "name" and "digest" in every subject, "sha256" in every digest set: one per object.
    doc = statement(
        subject=[
            {"name": "a", "digest": {"sha256": ARTIFACT_HEX}},
            {"name": "b", "digest": {"sha256": OTHER_HEX}},
        ]
    )
    assert len(parse_document(dumps(doc), "ok.json").subjects) == 2


def test_a_duplicated_key_is_shown_escaped_and_cut() -> None:
    key = "\x1b[31m" + "k" * 200
    raw = twice(dumps(statement(predicate={key: 1})), key)
    message = refused(raw)
    assert "\x1b" not in message and "\\u001b[31m" in message
    assert "k" * 64 not in message and "..." in message
