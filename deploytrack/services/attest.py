"""`attestation create` and `attestation sign`: build evidence locally, or take a
statement or envelope, sign it, and store it like an import (one shared tail).

`create`: materials are resolved and read first (registry references exactly as
`deployment record --oci-ref` resolves them; files hashed and checked), then the statement
is built, wrapped in a DSSE envelope (signed when a key is given), parsed by the same
parser as any import, and stored in one write transaction with the bytes of the material
files. `sign`: a bare statement is wrapped in a signed envelope, an envelope or bundle
gets one more signature, and the result goes through the same tail.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deploytrack import __version__, timeutil
from deploytrack.digests import sha256_of
from deploytrack.evidence import INTOTO_PAYLOAD_TYPE, MAX_DOCUMENT_BYTES, parse_document
from deploytrack.evidence import predicate as pred
from deploytrack.evidence.dsse import envelope_bytes, pae
from deploytrack.services import ServiceError, read_named_file, trust
from deploytrack.services.evidence import Overrides, insert_parsed, store_blob, views_of
from deploytrack.services.views.evidence import AttestationView, StoredFile
from deploytrack.store import Store
from deploytrack.store.models import Attestation

if TYPE_CHECKING:
    from deploytrack.crypto.keys import SigningKey
    from deploytrack.evidence.parse import ParsedAttestation, Signature
    from deploytrack.registry.options import RegistryOptions

MAX_TEXT_CHARS = 256


@dataclass(frozen=True)
class CreateRequest:
    workflow: str
    project: str
    version: str | None
    materials: tuple[pred.MaterialSpec, ...]
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CreateResult:
    attestation: AttestationView
    signed_by: str | None  # fingerprint of the signing key
    stored_files: tuple[StoredFile, ...]
    envelope: bytes = field(repr=False)


def _text(value: str | None, what: str, required: bool) -> str | None:
    if value is None:
        if required:
            raise ServiceError(f"{what} is required")
        return None
    pred.check_text(value, what)
    if not value or len(value) > MAX_TEXT_CHARS or not value.isprintable():
        raise ServiceError(
            f"invalid {what} {value[:60]!r}: 1 to {MAX_TEXT_CHARS} printable characters"
        )
    return value


def read_material_file(path: str, kind: str) -> bytes:
    """The bytes of a material file, at most the kind's limit; refused with the reason."""
    limit = pred.MAX_FILE_BYTES[kind]
    return read_named_file(
        path,
        f"{kind} material",
        limit,
        f"is larger than {limit // (1024 * 1024)} MiB, the limit for a file kept in the "
        "evidence store",
    )


def _file_name(path: str) -> str:
    return os.path.basename(os.path.normpath(path)) or path


def _materials(
    specs: Sequence[pred.MaterialSpec], options: RegistryOptions | None
) -> tuple[list[dict[str, Any]], dict[str, bytes], list[StoredFile]]:
    """Predicate materials, the files to keep (digest -> bytes), and what was kept."""
    from deploytrack.services.artifacts import CHART_FILE, ArtifactResolver

    resolver = ArtifactResolver(options)
    out: list[dict[str, Any]] = []
    blobs: dict[str, bytes] = {}
    stored: list[StoredFile] = []
    for spec in specs:
        if spec.kind in pred.REFERENCE_KINDS:
            if spec.kind == pred.CONTAINER_IMAGE and spec.value.lower().endswith(
                (".tgz", ".tar.gz")
            ):
                raise ServiceError(
                    f"{spec.value} names a chart file: give it as HELM_CHART={spec.value}"
                )
            resolved = resolver.resolve(spec.kind, spec.value)
            material: dict[str, Any] = {"kind": spec.kind}
            if resolved.source == CHART_FILE:
                # The chart file is kept too: `artifact download` gives it back.
                data = read_material_file(spec.value, pred.ARTIFACT)
                if sha256_of(data) != resolved.digest:
                    raise ServiceError(f"{spec.value} changed while it was read: try again")
                name = spec.name or _file_name(spec.value)
                blobs[resolved.digest] = data
                stored.append(StoredFile(spec.kind, name, resolved.digest, len(data)))
                material["size"] = len(data)
            else:
                name = spec.name or resolved.artifact_ref
            material.update(
                name=name,
                digest={"sha256": resolved.digest.removeprefix("sha256:")},
                reference=resolved.artifact_ref,
            )
            if resolved.media_type:
                material["mediaType"] = resolved.media_type
        elif spec.kind in pred.FILE_KINDS:
            data = read_material_file(spec.value, spec.kind)
            name = spec.name or _file_name(spec.value)
            if spec.kind != pred.ARTIFACT:
                pred.check_sbom(spec.kind, data, f"{spec.kind} material {spec.value}")
            digest = sha256_of(data)
            blobs[digest] = data
            stored.append(StoredFile(spec.kind, name, digest, len(data)))
            material = {
                "kind": spec.kind,
                "name": name,
                "digest": {"sha256": digest.removeprefix("sha256:")},
                "size": len(data),
            }
        else:  # STRING
            material = {"kind": spec.kind, "name": spec.name, "value": spec.value}
        out.append(material)
    return out, blobs, stored


def load_signing_key(path: str, password: bytes | None) -> SigningKey:
    """A private key from a PEM file (imports cryptography)."""
    from deploytrack.crypto.keys import load_private_key_file

    return load_private_key_file(path, password)


def create_attestation(
    store: Store,
    request: CreateRequest,
    options: RegistryOptions | None,
    key: SigningKey | None = None,
    before_store: Callable[[ParsedAttestation], None] | None = None,
) -> CreateResult:
    """Build, sign (when `key` is given), parse and store an attestation; see the module.

    `before_store` is called with the parsed attestation before the write transaction
    (`attestation create --push` pushes it there): if it raises, nothing is stored."""
    workflow = _text(request.workflow, "--workflow", True)
    project = _text(request.project, "--project", True)
    version = _text(request.version, "--version", False)
    assert workflow is not None and project is not None
    if not request.materials:
        raise ServiceError("give at least one --material KIND=VALUE")
    annotations: dict[str, str] = {}
    for name, value in request.annotations:
        if name in annotations:
            raise ServiceError(f"annotation {name} is given twice")
        annotations[name] = value

    materials, blobs, stored = _materials(request.materials, options)
    now = timeutil.now_us()
    created_at = timeutil.rfc3339(now)
    assert created_at is not None
    statement = pred.build_statement(
        workflow=workflow,
        project=project,
        version=version,
        materials=materials,
        annotations=annotations,
        created_at=created_at,
        created_by=f"deploytrack {__version__}",
    )
    return _sign_and_store(
        store,
        statement,
        (),
        key,
        Overrides(),
        too_large=(
            f"the attestation would be larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB, "
            "the limit for one attestation: give fewer or shorter materials and annotations"
        ),
        name="the created attestation",
        blobs=blobs,
        stored=tuple(stored),
        not_before=now,
        before_store=before_store,
    )


def sign_document(
    store: Store, data: bytes, name: str, key: SigningKey, overrides: Overrides
) -> CreateResult:
    """Sign an attestation someone else wrote (`attestation sign`) and store the result.

    A bare in-toto statement becomes the payload of a new DSSE envelope, byte for byte. A
    DSSE envelope or a Sigstore bundle keeps its payload and its signatures, and gets one
    more; the result is a bare DSSE envelope (a bundle's certificate and transparency log
    entries, which the new signature is not part of, are not carried over). Either way the
    result is a new attestation with its own digest; the input is not stored.
    """
    parsed = parse_document(data, name)
    existing: tuple[Signature, ...]
    if parsed.envelope is None:
        payload, existing = parsed.raw, ()
    else:
        payload, existing = parsed.envelope.payload, parsed.envelope.signatures
    return _sign_and_store(
        store,
        payload,
        [(sig.keyid, sig.sig) for sig in existing],
        key,
        overrides,
        too_large=(
            f"the signed attestation would be larger than "
            f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB, the limit for one attestation"
        ),
        name="the signed attestation",
    )


def _sign_and_store(
    store: Store,
    payload: bytes,
    existing: Sequence[tuple[str, bytes | str]],
    key: SigningKey | None,
    overrides: Overrides,
    *,
    too_large: str,
    name: str,
    blobs: dict[str, bytes] | None = None,
    stored: tuple[StoredFile, ...] = (),
    not_before: int = 0,
    before_store: Callable[[ParsedAttestation], None] | None = None,
) -> CreateResult:
    """The tail `attestation create` and `attestation sign` share: add `key`'s signature
    to the `existing` ones, wrap `payload` in a DSSE envelope, parse it as any import is
    parsed, and store it (with `blobs`, the material files) in one write transaction."""
    signatures = list(existing)
    if key is not None:
        message = pae(INTOTO_PAYLOAD_TYPE, payload)
        signature = key.sign(message)
        if not key.public.verify(signature, message):  # never expected; checked anyway
            raise ServiceError(f"the signature made with {key.source} does not verify")
        signatures.append((key.public.fingerprint, signature))
    envelope = envelope_bytes(INTOTO_PAYLOAD_TYPE, payload, signatures)
    if len(envelope) > MAX_DOCUMENT_BYTES:
        raise ServiceError(too_large)
    parsed = parse_document(envelope, name)
    if before_store is not None:
        before_store(parsed)
    with store.write() as log:
        # Not before the statement's own createdAt (taken before the materials were read).
        now = max(not_before, timeutil.now_us())
        for digest, data in (blobs or {}).items():
            store_blob(digest, data, now)
        row = insert_parsed(parsed, overrides, now)
        if row is None:  # the same bytes: only possible with a clock that stood still
            row = Attestation.get(Attestation.digest == parsed.digest)
        if key is not None:
            trust.remember_verification(
                row.id, key.public, key.public.fingerprint, trust.CREATE, now
            )
        log.log("attestation.imported", digests=[parsed.digest])
        view = views_of([parsed.digest])[parsed.digest]
    return CreateResult(
        attestation=view,
        signed_by=key.public.fingerprint if key is not None else None,
        stored_files=stored,
        envelope=envelope,
    )


__all__ = [
    "CreateRequest",
    "CreateResult",
    "StoredFile",
    "create_attestation",
    "load_signing_key",
    "read_material_file",
    "sign_document",
]
