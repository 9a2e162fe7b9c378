"""Recognise and index one attestation document.

Accepted: a bare in-toto Statement (v0.1 or v1, JSON or proto-JSON field spelling), a
DSSE envelope whose payload is one, or a Sigstore bundle v0.1 to v0.3 carrying such an
envelope. Anything else is refused with the reason; nothing here touches storage.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deploytrack import jsondoc
from deploytrack.digests import normalize_any, sha256_of
from deploytrack.errors import DeploytrackError

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")
CHAINLOOP_PREDICATE_PREFIX = "chainloop.dev/attestation/"
CHAINLOOP_KIND_ANNOTATION = "chainloop.material.type"
# This project's predicate (`attestation create`); see deploytrack/evidence/predicate.py.
DEPLOYTRACK_PREDICATE_PREFIX = "https://deploytrack.dev/attestation/"
BUNDLE_MEDIA_TYPES = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
}
# Real attestations are kilobytes (a large SLSA bundle is ~20 KB). The limits keep a
# hostile file from costing unbounded time or memory; they are documented in the README.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
MAX_INPUT_BYTES = 64 * 1024 * 1024


class EvidenceError(DeploytrackError):
    """A document is not an attestation deploytrack can store."""


@dataclass(frozen=True)
class Subject:
    name: str
    digest: str  # "<algorithm>:<value>", e.g. "sha256:ab12..."


@dataclass(frozen=True)
class Material:
    name: str | None
    kind: str | None
    digest: str | None  # None for materials with no digest (Chainloop STRING)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: str  # base64 as found in the envelope


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]


@dataclass(frozen=True)
class ParsedAttestation:
    raw: bytes
    digest: str
    format: str  # statement | dsse | sigstore-bundle
    statement_type: str
    predicate_type: str
    subjects: tuple[Subject, ...]
    materials: tuple[Material, ...]
    project: str | None
    version: str | None
    workflow: str | None
    envelope: Envelope | None
    bundle_version: str | None


def _loads(data: bytes, what: str) -> Any:
    # One home for what JSON deploytrack accepts (UTF-8, no NaN, no key twice, depth).
    try:
        return jsondoc.loads(data, max_bytes=MAX_DOCUMENT_BYTES)
    except jsondoc.JSONError as exc:
        raise EvidenceError(f"{what} is {exc}") from None


def _digest_set(value: Any, where: str) -> list[str]:
    """An in-toto DigestSet as sorted "alg:value" strings; hex values are lower-cased."""
    if not isinstance(value, dict) or not value:
        raise EvidenceError(f"{where} has no digest")
    out = []
    for algorithm, digest in value.items():
        normal = (
            normalize_any(f"{algorithm}:{digest}")
            if isinstance(algorithm, str) and ":" not in algorithm and isinstance(digest, str)
            else None
        )
        if normal is None:
            raise EvidenceError(f"{where} has an invalid digest {str(algorithm)[:40]!r}")
        out.append(normal)
    return sorted(out)


def _statement(doc: Any, what: str) -> tuple[str, str, dict[str, Any], list[Subject]]:
    if not isinstance(doc, dict):
        raise EvidenceError(f"{what} is not an in-toto statement: expected a JSON object")
    statement_type = doc.get("_type", doc.get("type"))
    if statement_type not in STATEMENT_TYPES:
        raise EvidenceError(
            f"{what} is not an in-toto statement: _type is {statement_type!r}, expected "
            + " or ".join(STATEMENT_TYPES)
        )
    predicate_type = doc.get("predicateType", doc.get("predicate_type"))
    if not isinstance(predicate_type, str) or not predicate_type:
        raise EvidenceError(f"{what} is not an in-toto statement: it has no predicateType")
    predicate = doc.get("predicate", {})
    if predicate is None:
        predicate = {}
    if not isinstance(predicate, dict):
        raise EvidenceError(f"{what} is not an in-toto statement: predicate is not an object")
    raw_subjects = doc.get("subject")
    if not isinstance(raw_subjects, list) or not raw_subjects:
        raise EvidenceError(f"{what} is not an in-toto statement: it names no subject")
    subjects: list[Subject] = []
    for index, item in enumerate(raw_subjects):
        where = f"{what}: subject {index + 1}"
        if not isinstance(item, dict):
            raise EvidenceError(f"{where} is not an object")
        name = item.get("name", item.get("uri", ""))
        if not isinstance(name, str):
            raise EvidenceError(f"{where} has a name that is not a string")
        subjects.extend(Subject(name, d) for d in _digest_set(item.get("digest"), where))
    return statement_type, predicate_type, predicate, subjects


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _materials(
    predicate: dict[str, Any],
    what: str,
    family: str,
    kind_and_name: Callable[[dict[str, Any]], tuple[str | None, str | None]],
) -> list[Material]:
    """Every material of a predicate's `materials` list, with the kind and name that
    `kind_and_name` reads from each item (the two predicate formats put them apart): one
    entry per digest algorithm, one without a digest (a STRING) when none."""
    raw = predicate.get("materials") or []
    if not isinstance(raw, list):
        raise EvidenceError(f"{what}: {family} predicate materials is not a list")
    materials: list[Material] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise EvidenceError(f"{what}: material {index + 1} is not an object")
        kind, name = kind_and_name(item)
        if not item.get("digest"):
            materials.append(Material(name, kind, None))
        else:
            where = f"{what}: material {index + 1}"
            materials.extend(Material(name, kind, d) for d in _digest_set(item["digest"], where))
    return materials


def _chainloop_kind_and_name(item: dict[str, Any]) -> tuple[str | None, str | None]:
    annotations = item.get("annotations") or {}
    if not isinstance(annotations, dict):
        annotations = {}
    kind = _text(annotations.get(CHAINLOOP_KIND_ANNOTATION))
    name = _text(item.get("name")) or _text(annotations.get("chainloop.material.name"))
    return kind, name


def _chainloop(
    predicate: dict[str, Any], what: str
) -> tuple[list[Material], dict[str, str | None]]:
    metadata = predicate.get("metadata") or {}
    if not isinstance(metadata, dict):
        metadata = {}
    found = {
        "project": _text(metadata.get("project")),
        "version": _text(metadata.get("projectVersion")),
        "workflow": _text(metadata.get("name")),
    }
    return _materials(predicate, what, "Chainloop", _chainloop_kind_and_name), found


def _deploytrack(
    predicate: dict[str, Any], what: str
) -> tuple[list[Material], dict[str, str | None]]:
    """Index deploytrack's own predicate: workflow, project, version, and every material
    with its kind, name and digest (STRING materials have no digest)."""
    found = {
        "project": _text(predicate.get("project")),
        "version": _text(predicate.get("version")),
        "workflow": _text(predicate.get("workflow")),
    }

    def kind_and_name(item: dict[str, Any]) -> tuple[str | None, str | None]:
        return _text(item.get("kind")), _text(item.get("name"))

    return _materials(predicate, what, "deploytrack", kind_and_name), found


def _b64(value: Any, what: str, field: str) -> bytes:
    if not isinstance(value, str):
        raise EvidenceError(f"{what}: DSSE {field} is not a base64 string")
    # DSSE: "Either standard or URL-safe encoding is allowed" (both padded, as RFC 4648),
    # one alphabet or the other, not a mix.
    alphabets: list[bytes | None] = [None] if "+" in value or "/" in value else [None, b"-_"]
    for altchars in alphabets:
        try:
            return base64.b64decode(value, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    raise EvidenceError(f"{what}: DSSE {field} is not valid base64")


def _envelope(doc: Any, what: str) -> Envelope:
    if not isinstance(doc, dict):
        raise EvidenceError(f"{what}: DSSE envelope is not a JSON object")
    payload_type = doc.get("payloadType")
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise EvidenceError(
            f"{what}: DSSE payloadType is {payload_type!r}; only in-toto payloads "
            f"({INTOTO_PAYLOAD_TYPE}) are attestations"
        )
    encoded = doc.get("payload")
    payload = _b64(encoded, what, "payload")
    raw_sigs = doc.get("signatures", [])
    if not isinstance(raw_sigs, list):
        raise EvidenceError(f"{what}: DSSE signatures is not a list")
    signatures = []
    for item in raw_sigs:
        if not isinstance(item, dict) or not isinstance(item.get("sig"), str):
            raise EvidenceError(f"{what}: a DSSE signature has no sig")
        signatures.append(Signature(str(item.get("keyid") or ""), item["sig"]))
    return Envelope(payload_type, payload, tuple(signatures))


def _check_text(values: list[str | None], what: str) -> None:
    """Refuse lone surrogates: JSON lets a string say "\\ud800", but that is not Unicode
    text, and it can be neither stored (SQLite text is UTF-8) nor printed."""
    for value in values:
        if value is None:
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EvidenceError(
                f"{what} is not an attestation: a string holds an unpaired surrogate "
                f"{value[exc.start]!r}, which is not valid Unicode"
            ) from None


def parse_document(raw: bytes, what: str) -> ParsedAttestation:
    """Parse one document; `what` names it in errors (a file name, "line 3 of x.jsonl")."""
    if not raw.strip():
        raise EvidenceError(f"{what} is empty")
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise EvidenceError(
            f"{what} is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB, the limit for "
            "one attestation"
        )
    doc = _loads(raw, what)
    if not isinstance(doc, dict):
        raise EvidenceError(f"{what} is not an attestation: expected a JSON object")

    envelope: Envelope | None = None
    bundle_version: str | None = None
    if "mediaType" in doc:
        media_type = doc["mediaType"]
        bundle_version = BUNDLE_MEDIA_TYPES.get(media_type) if isinstance(media_type, str) else None
        if bundle_version is None:
            raise EvidenceError(
                f"{what}: unsupported bundle media type {media_type!r} (Sigstore bundles "
                "v0.1 to v0.3 are supported)"
            )
        if "dsseEnvelope" not in doc:
            raise EvidenceError(
                f"{what}: the Sigstore bundle signs a plain message, not an attestation "
                "(it has no dsseEnvelope)"
            )
        envelope = _envelope(doc["dsseEnvelope"], what)
        fmt = "sigstore-bundle"
    elif "payloadType" in doc or "payload" in doc:
        envelope = _envelope(doc, what)
        fmt = "dsse"
    elif "_type" in doc or "type" in doc:
        fmt = "statement"
    else:
        raise EvidenceError(
            f"{what} is not an attestation: expected an in-toto statement, a DSSE envelope or "
            "a Sigstore bundle"
        )

    if envelope is not None:
        statement_doc = _loads(envelope.payload, f"{what}: DSSE payload")
        statement_type, predicate_type, predicate, subjects = _statement(
            statement_doc, f"{what}: DSSE payload"
        )
    else:
        statement_type, predicate_type, predicate, subjects = _statement(doc, what)

    materials: list[Material] = []
    found: dict[str, str | None] = {"project": None, "version": None, "workflow": None}
    if predicate_type.startswith(CHAINLOOP_PREDICATE_PREFIX):
        materials, found = _chainloop(predicate, what)
    elif predicate_type.startswith(DEPLOYTRACK_PREDICATE_PREFIX):
        materials, found = _deploytrack(predicate, what)

    _check_text(
        [
            predicate_type,
            *(s.name for s in subjects),
            *(m.name for m in materials),
            *(m.kind for m in materials),
            *found.values(),
        ],
        what,
    )
    return ParsedAttestation(
        raw=raw,
        digest=sha256_of(raw),
        format=fmt,
        statement_type=statement_type,
        predicate_type=predicate_type,
        subjects=tuple(subjects),
        materials=tuple(materials),
        project=found["project"],
        version=found["version"],
        workflow=found["workflow"],
        envelope=envelope,
        bundle_version=bundle_version,
    )


def statement_of(raw: bytes, what: str) -> dict[str, Any]:
    """The in-toto statement inside a stored document (bare, in a DSSE envelope or in a
    Sigstore bundle's envelope), as a JSON object; raises EvidenceError like parse_document."""
    doc = _loads(raw, what)
    if isinstance(doc, dict) and "mediaType" in doc:
        doc = _envelope(doc.get("dsseEnvelope"), what)
    elif isinstance(doc, dict) and ("payloadType" in doc or "payload" in doc):
        doc = _envelope(doc, what)
    if isinstance(doc, Envelope):
        doc = _loads(doc.payload, f"{what}: DSSE payload")
    if not isinstance(doc, dict):
        raise EvidenceError(f"{what} is not an in-toto statement: expected a JSON object")
    return doc


def _split_lines(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if line.strip():
            out.append((number, line))
    return out


def parse_input(data: bytes, name: str, *, jsonl: bool = False) -> list[ParsedAttestation]:
    """Parse a whole input: one JSON document, or JSON Lines (one document per line).

    JSON Lines is used for `.jsonl` files, and for any input that holds several JSON
    documents on separate lines (what `cosign download attestation` prints). Each line is
    stored as its own attestation, its digest the sha256 of the line's bytes.
    """
    if len(data) > MAX_INPUT_BYTES:
        raise EvidenceError(
            f"{name} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB, the limit for one input"
        )
    if not data.strip():
        raise EvidenceError(f"{name} is empty")
    # Not empty: the byte that is not whitespace is on a line _split_lines keeps (both
    # strip the same bytes), so `lines` has at least one.
    lines = _split_lines(data)
    if not jsonl:
        # Several one-line objects: JSON Lines. A pretty-printed document never has a
        # complete object on its first line, so this needs no trial parse.
        first = lines[0][1].strip()
        jsonl = len(lines) > 1 and first.startswith(b"{") and first.endswith(b"}")
    if not jsonl:
        return [parse_document(data, name)]
    return [parse_document(line, f"{name} line {number}") for number, line in lines]
