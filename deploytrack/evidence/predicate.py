"""deploytrack's own attestation: an in-toto Statement v1 with predicate type
`https://deploytrack.dev/attestation/v1`, written by `attestation create` (pure).

    {
      "_type": "https://in-toto.io/Statement/v1",
      "subject": [{"name": "...", "digest": {"sha256": "..."}}, ...],
      "predicateType": "https://deploytrack.dev/attestation/v1",
      "predicate": {
        "workflow": "release", "project": "api-server", "version": "1.1.0" | null,
        "createdAt": "2026-11-21T21:25:49.123456Z",
        "createdBy": "deploytrack 0.1.0",
        "materials": [
          {"kind": "CONTAINER_IMAGE", "name": "...", "digest": {"sha256": "..."},
           "reference": "...", "mediaType": "..."},
          {"kind": "ARTIFACT", "name": "app.tar.gz", "digest": {"sha256": "..."}, "size": 1234},
          {"kind": "STRING", "name": "commit" | null, "value": "..."}
        ],
        "annotations": {"key": "value"}
      }
    }

The subjects are the CONTAINER_IMAGE, HELM_CHART and ARTIFACT materials. JSON is written
compact with sorted keys, so the same inputs at the same time give the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deploytrack import jsondoc
from deploytrack.evidence.parse import EvidenceError

PREDICATE_TYPE = "https://deploytrack.dev/attestation/v1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"

CONTAINER_IMAGE = "CONTAINER_IMAGE"
HELM_CHART = "HELM_CHART"
ARTIFACT = "ARTIFACT"
SBOM_CYCLONEDX_JSON = "SBOM_CYCLONEDX_JSON"
SBOM_SPDX_JSON = "SBOM_SPDX_JSON"
STRING = "STRING"
MATERIAL_KINDS = (
    CONTAINER_IMAGE,
    HELM_CHART,
    ARTIFACT,
    SBOM_CYCLONEDX_JSON,
    SBOM_SPDX_JSON,
    STRING,
)
SUBJECT_KINDS = (CONTAINER_IMAGE, HELM_CHART, ARTIFACT)
REFERENCE_KINDS = (CONTAINER_IMAGE, HELM_CHART)
FILE_KINDS = (ARTIFACT, SBOM_CYCLONEDX_JSON, SBOM_SPDX_JSON)

# Materials kept in the evidence store are read whole: these bound memory and the size
# of the database an auditor is handed.
MAX_FILE_BYTES = {
    ARTIFACT: 256 * 1024 * 1024,
    SBOM_CYCLONEDX_JSON: 64 * 1024 * 1024,
    SBOM_SPDX_JSON: 64 * 1024 * 1024,
}
MAX_STRING_BYTES = 64 * 1024
MAX_ANNOTATION_VALUE_BYTES = 4 * 1024
MAX_NAME_CHARS = 256
_ANNOTATION_KEY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?")


@dataclass(frozen=True)
class MaterialSpec:
    """One `--material KIND[:NAME]=VALUE`, as given."""

    kind: str
    name: str | None
    value: str


def check_text(value: str, what: str) -> str:
    """Refuse text that is not UTF-8 (a command-line argument of other bytes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EvidenceError(f"{what} is not valid UTF-8 text") from None
    return value


def _printable(value: str, what: str, limit: int) -> str:
    if not value or len(value) > limit or not value.isprintable():
        raise EvidenceError(f"invalid {what} {value[:60]!r}: 1 to {limit} printable characters")
    return value


def parse_material_spec(text: str) -> MaterialSpec:
    """`KIND=VALUE` or `KIND:NAME=VALUE` (NAME overrides the name deploytrack derives)."""
    check_text(text, "--material")
    head, sep, value = text.partition("=")
    kind, colon, name = head.partition(":")
    kind = kind.strip().upper()
    if not sep or kind not in MATERIAL_KINDS:
        raise EvidenceError(
            f"invalid material {text[:80]!r}: use KIND=VALUE or KIND:NAME=VALUE with KIND one of "
            + ", ".join(MATERIAL_KINDS)
        )
    if not value:
        raise EvidenceError(f"invalid material {text[:80]!r}: the value after '=' is empty")
    if colon:
        _printable(name, "material name", MAX_NAME_CHARS)
    if kind == STRING and (len(value.encode("utf-8")) > MAX_STRING_BYTES or "\0" in value):
        raise EvidenceError(
            f"invalid STRING material: at most {MAX_STRING_BYTES // 1024} KiB, without NUL"
        )
    return MaterialSpec(kind, name if colon else None, value)


def parse_annotation(text: str) -> tuple[str, str]:
    check_text(text, "--annotation")
    key, sep, value = text.partition("=")
    if not sep or not _ANNOTATION_KEY.fullmatch(key):
        raise EvidenceError(
            f"invalid annotation {text[:80]!r}: use KEY=VALUE, KEY of 1 to 128 letters, digits, "
            "'.', '_', '/' or '-'"
        )
    if len(value.encode("utf-8")) > MAX_ANNOTATION_VALUE_BYTES or "\0" in value:
        raise EvidenceError(
            f"invalid annotation {key}: the value is at most "
            f"{MAX_ANNOTATION_VALUE_BYTES // 1024} KiB, without NUL"
        )
    return key, value


def check_sbom(kind: str, data: bytes, what: str) -> None:
    """Refuse a file that is not JSON of the SBOM kind it is given as.

    CycloneDX JSON: an object with "bomFormat": "CycloneDX". SPDX JSON: an object whose
    "spdxVersion" starts with "SPDX-".
    """
    label = "CycloneDX" if kind == SBOM_CYCLONEDX_JSON else "SPDX"
    try:
        doc = jsondoc.loads(data, max_bytes=MAX_FILE_BYTES[kind])
    except jsondoc.JSONError as exc:
        raise EvidenceError(f"{what} is not a {label} JSON SBOM: {exc}") from None
    if not isinstance(doc, dict):
        raise EvidenceError(f"{what} is not a {label} JSON SBOM: expected a JSON object")
    if kind == SBOM_CYCLONEDX_JSON:
        if doc.get("bomFormat") != "CycloneDX":
            found = doc.get("bomFormat")
            hint = " (it looks like SPDX: use SBOM_SPDX_JSON)" if "spdxVersion" in doc else ""
            raise EvidenceError(
                f"{what} is not a CycloneDX JSON SBOM: bomFormat is {found!r}, not "
                f"'CycloneDX'{hint}"
            )
    else:
        version = doc.get("spdxVersion")
        if not isinstance(version, str) or not version.startswith("SPDX-"):
            hint = (
                " (it looks like CycloneDX: use SBOM_CYCLONEDX_JSON)" if "bomFormat" in doc else ""
            )
            raise EvidenceError(
                f"{what} is not an SPDX JSON SBOM: spdxVersion is {version!r}, expected "
                f"'SPDX-<version>'{hint}"
            )


def build_statement(
    *,
    workflow: str,
    project: str,
    version: str | None,
    materials: Sequence[dict[str, Any]],
    annotations: dict[str, str],
    created_at: str,
    created_by: str,
) -> bytes:
    """The statement's bytes. `materials` are the predicate's material objects."""
    subjects: list[dict[str, Any]] = []
    for material in materials:
        if material["kind"] in SUBJECT_KINDS:
            subject = {"name": material["name"], "digest": dict(material["digest"])}
            if subject not in subjects:
                subjects.append(subject)
    if not subjects:
        raise EvidenceError(
            "an attestation needs a subject: give at least one CONTAINER_IMAGE, HELM_CHART or "
            "ARTIFACT material"
        )
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "workflow": workflow,
            "project": project,
            "version": version,
            "createdAt": created_at,
            "createdBy": created_by,
            "materials": list(materials),
            "annotations": dict(annotations),
        },
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


__all__ = [
    "MATERIAL_KINDS",
    "PREDICATE_TYPE",
    "MaterialSpec",
    "build_statement",
    "check_sbom",
    "parse_annotation",
    "parse_material_spec",
]
