"""The evidence store: import attestations, index what they name, and answer by digest."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from deploytrack import timeutil
from deploytrack.digests import normalize_any
from deploytrack.evidence import ParsedAttestation, parse_input
from deploytrack.services import ServiceError
from deploytrack.services.views import (
    AttestationView,
    ImportResult,
    MaterialView,
    SubjectView,
    VerificationView,
)
from deploytrack.store import Store
from deploytrack.store.models import (
    Attestation,
    AttestationMaterial,
    AttestationSubject,
    AttestationVerification,
    Blob,
    PublicKey,
)

# SQLite allows 32766 host parameters per statement; stay well below with 4 per row.
_INSERT_BATCH = 500


@dataclass(frozen=True)
class Source:
    """One input: a name for messages, its bytes, and whether it is JSON Lines."""

    name: str
    data: bytes
    jsonl: bool = False


@dataclass(frozen=True)
class Overrides:
    project: str | None = None
    version: str | None = None
    workflow: str | None = None


def _views(rows: Sequence[Attestation]) -> list[AttestationView]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    subjects: dict[int, list[SubjectView]] = defaultdict(list)
    materials: dict[int, list[MaterialView]] = defaultdict(list)
    verifications: dict[int, list[VerificationView]] = defaultdict(list)
    for chunk_start in range(0, len(ids), _INSERT_BATCH):
        chunk = ids[chunk_start : chunk_start + _INSERT_BATCH]
        for s in (
            AttestationSubject.select()
            .where(AttestationSubject.attestation.in_(chunk))
            .order_by(AttestationSubject.id)
        ):
            subjects[s.attestation_id].append(SubjectView(s.name, s.digest))
        for m in (
            AttestationMaterial.select()
            .where(AttestationMaterial.attestation.in_(chunk))
            .order_by(AttestationMaterial.id)
        ):
            materials[m.attestation_id].append(MaterialView(m.name, m.kind, m.digest))
        for v in (
            AttestationVerification.select(AttestationVerification, PublicKey)
            .join(PublicKey)
            .where(AttestationVerification.attestation.in_(chunk))
            .order_by(AttestationVerification.id.desc())
        ):
            shown = verifications[v.attestation_id]
            if all(x.fingerprint != v.public_key.fingerprint for x in shown):
                shown.append(
                    VerificationView(
                        fingerprint=v.public_key.fingerprint,
                        algorithm=v.public_key.algorithm,
                        keyid=v.keyid,
                        source=v.source,
                        verified_at=v.verified_at,
                    )
                )
    return [
        AttestationView(
            digest=r.digest,
            format=r.format,
            statement_type=r.statement_type,
            predicate_type=r.predicate_type,
            project=r.project,
            version=r.version,
            workflow=r.workflow,
            subjects=tuple(subjects[r.id]),
            materials=tuple(materials[r.id]),
            imported_at=r.imported_at,
            verifications=tuple(verifications[r.id]),
        )
        for r in rows
    ]


def parse_sources(sources: Iterable[Source]) -> list[tuple[str, ParsedAttestation]]:
    """Parse every input before anything is stored: one bad file refuses the whole import."""
    parsed: list[tuple[str, ParsedAttestation]] = []
    for source in sources:
        for item in parse_input(source.data, source.name, jsonl=source.jsonl):
            parsed.append((source.name, item))
    return parsed


def store_blob(digest: str, data: bytes, now: int) -> None:
    """Keep bytes under their sha256 (content-addressed; a second copy adds nothing).
    Call inside a write transaction."""
    if Blob.get_or_none(Blob.digest == digest) is None:
        Blob.insert(digest=digest, size=len(data), content=data, created_at=now).execute()


def insert_parsed(item: ParsedAttestation, overrides: Overrides, now: int) -> Attestation | None:
    """Store one parsed attestation and index it; None when its bytes are stored already.
    Call inside a write transaction."""
    if Attestation.get_or_none(Attestation.digest == item.digest) is not None:
        return None
    store_blob(item.digest, item.raw, now)
    row = Attestation.create(
        digest=item.digest,
        format=item.format,
        statement_type=item.statement_type,
        predicate_type=item.predicate_type,
        project=overrides.project or item.project,
        version=overrides.version or item.version,
        workflow=overrides.workflow or item.workflow,
        imported_at=now,
    )
    subject_rows = [
        {"attestation": row.id, "name": s.name, "digest": s.digest} for s in item.subjects
    ]
    material_rows = [
        {"attestation": row.id, "name": m.name, "kind": m.kind, "digest": m.digest}
        for m in item.materials
    ]
    for start in range(0, len(subject_rows), _INSERT_BATCH):
        AttestationSubject.insert_many(subject_rows[start : start + _INSERT_BATCH]).execute()
    for start in range(0, len(material_rows), _INSERT_BATCH):
        AttestationMaterial.insert_many(material_rows[start : start + _INSERT_BATCH]).execute()
    return row


def views_of(digests: Iterable[str]) -> dict[str, AttestationView]:
    """Views of stored attestations by digest. Call inside a transaction."""
    wanted = list(set(digests))
    rows = list(Attestation.select().where(Attestation.digest.in_(wanted)))
    return {v.digest: v for v in _views(rows)}


def store_parsed(
    store: Store, parsed: Sequence[tuple[str, ParsedAttestation]], overrides: Overrides
) -> list[ImportResult]:
    """Store parsed attestations in one transaction. Already-stored bytes add nothing."""
    results: list[tuple[str, bool, str]] = []
    with store.write():
        now = timeutil.now_us()
        for source, item in parsed:
            created = insert_parsed(item, overrides, now) is not None
            results.append((source, created, item.digest))
        views = views_of(d for _, _, d in results)
    return [ImportResult(source, created, views[digest]) for source, created, digest in results]


def import_sources(
    store: Store, sources: Iterable[Source], overrides: Overrides | None = None
) -> list[ImportResult]:
    return store_parsed(store, parse_sources(sources), overrides or Overrides())


def _query_digest(value: str) -> str:
    digest = normalize_any(value)
    if digest is None:
        raise ServiceError(
            f"invalid digest {value[:80]!r}: use <algorithm>:<value>, e.g. sha256:<64 hex digits>"
        )
    return digest


def naming(digest: str) -> set[int]:
    """Ids of attestations that name `digest` as a subject or a material."""
    ids = {
        r.attestation_id
        for r in AttestationSubject.select(AttestationSubject.attestation).where(
            AttestationSubject.digest == digest
        )
    }
    ids.update(
        r.attestation_id
        for r in AttestationMaterial.select(AttestationMaterial.attestation).where(
            AttestationMaterial.digest == digest
        )
    )
    return ids


def is_known(digest: str) -> bool:
    """True when some stored attestation names `digest`. Call inside a transaction."""
    subject = AttestationSubject.select().where(AttestationSubject.digest == digest).exists()
    return (
        subject or AttestationMaterial.select().where(AttestationMaterial.digest == digest).exists()
    )


def attestations_naming(digest: str) -> list[AttestationView]:
    """Attestations that name `digest`, oldest first. Call inside a transaction."""
    ids = naming(digest)
    if not ids:
        return []
    rows = list(Attestation.select().where(Attestation.id.in_(list(ids))).order_by(Attestation.id))
    return _views(rows)


def list_attestations(
    store: Store,
    project: str | None = None,
    version: str | None = None,
    digest: str | None = None,
) -> list[AttestationView]:
    with store.read():
        query = Attestation.select()
        if project is not None:
            query = query.where(Attestation.project == project)
        if version is not None:
            query = query.where(Attestation.version == version)
        if digest is not None:
            ids = naming(_query_digest(digest))
            query = query.where(Attestation.id.in_(list(ids)))
        return _views(list(query.order_by(Attestation.imported_at.desc(), Attestation.id.desc())))


def find_attestation(digest_or_prefix: str) -> Attestation:
    """An attestation by full digest, or by a unique prefix of at least 8 hex digits.
    Call inside a transaction."""
    text = digest_or_prefix.strip().lower()
    if not text.startswith("sha256:"):
        text = "sha256:" + text
    hexpart = text.removeprefix("sha256:")
    if not hexpart or any(c not in "0123456789abcdef" for c in hexpart) or len(hexpart) > 64:
        raise ServiceError(
            f"invalid attestation digest {digest_or_prefix[:80]!r}: use sha256:<hex>"
        )
    if len(hexpart) == 64:
        row = Attestation.get_or_none(Attestation.digest == text)
        matches = [row] if row is not None else []
    elif len(hexpart) < 8:
        raise ServiceError("an attestation digest prefix needs at least 8 hex digits")
    else:
        matches = list(
            Attestation.select()
            .where(
                (Attestation.digest >= text)
                & (Attestation.digest < text + "g")  # every hex digit sorts below "g"
            )
            .limit(2)
        )
    if not matches:
        raise ServiceError(
            f"no attestation {digest_or_prefix!r} in the evidence store: see "
            "'deploytrack attestation list'"
        )
    if len(matches) > 1:
        raise ServiceError(f"{digest_or_prefix!r} matches several attestations: give more digits")
    return matches[0]


def describe_attestation(store: Store, digest: str) -> AttestationView:
    with store.read():
        return _views([find_attestation(digest)])[0]


def download(store: Store, digest: str) -> bytes:
    """The stored bytes for `digest` exactly as imported."""
    with store.read():
        wanted = _query_digest(digest)
        row = Blob.get_or_none(Blob.digest == wanted)
        if row is None:
            raise ServiceError(
                f"nothing stored under {wanted}: the evidence store keeps attestations and "
                "the material files of 'attestation create' ('deploytrack discover DIGEST' "
                "tells what a digest is)"
            )
        return bytes(row.content)
