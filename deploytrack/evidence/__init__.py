"""Parsers for evidence formats: in-toto statements, DSSE envelopes, Sigstore bundles.

Pure functions over bytes: no database, no network. `parse_input` turns a file's bytes
into one `ParsedAttestation` per document, or raises `EvidenceError` naming the file.
"""

from deploytrack.evidence.parse import (
    INTOTO_PAYLOAD_TYPE,
    MAX_DOCUMENT_BYTES,
    MAX_INPUT_BYTES,
    Envelope,
    EvidenceError,
    Material,
    ParsedAttestation,
    Signature,
    Subject,
    parse_document,
    parse_input,
)

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "MAX_DOCUMENT_BYTES",
    "MAX_INPUT_BYTES",
    "Envelope",
    "EvidenceError",
    "Material",
    "ParsedAttestation",
    "Signature",
    "Subject",
    "parse_document",
    "parse_input",
]
