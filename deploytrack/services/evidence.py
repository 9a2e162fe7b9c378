"""The evidence store: import attestations, index what they name, and answer by digest."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from peewee import fn

from deploytrack import timeutil
from deploytrack.services import ServiceError
from deploytrack.store import Store, queries
from deploytrack.store.models import (
    Attestation,
    AttestationMaterial,
    AttestationSubject,
    AttestationVerification,
    Blob,
    PublicKey,
)

if TYPE_CHECKING:
    from deploytrack.evidence import ParsedAttestation
    from deploytrack.services.views.evidence import AttestationView, ImportResult

# The parser and the views are imported where they are used: `deployment record` asks this
# module only whether a digest is known, and must not pay for defining them.

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
    from deploytrack.services.views.evidence import (
        AttestationView,
        IdentityVerificationView,
        MaterialView,
        SubjectView,
        VerificationView,
    )
    from deploytrack.store.models import AttestationIdentityVerification

    if not rows:
        return []
    ids = [r.id for r in rows]
    subjects: dict[int, list[SubjectView]] = defaultdict(list)
    materials: dict[int, list[MaterialView]] = defaultdict(list)
    verifications: dict[int, list[VerificationView]] = defaultdict(list)
    identities: dict[int, list[IdentityVerificationView]] = defaultdict(list)
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
        for iv in (
            AttestationIdentityVerification.select()
            .where(AttestationIdentityVerification.attestation.in_(chunk))
            .order_by(AttestationIdentityVerification.id.desc())
        ):
            seen = identities[iv.attestation_id]
            if all(
                (x.identity, x.issuer, x.trusted_root)
                != (iv.identity, iv.issuer, iv.trusted_root_digest)
                for x in seen
            ):
                seen.append(
                    IdentityVerificationView(
                        identity=iv.identity,
                        issuer=iv.issuer,
                        trusted_root=iv.trusted_root_digest,
                        source=iv.source,
                        verified_at=iv.verified_at,
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
            identity_verifications=tuple(identities[r.id]),
        )
        for r in rows
    ]


def parse_sources(
    sources: Iterable[Source], progress: Callable[[int], None] | None = None
) -> list[tuple[str, ParsedAttestation]]:
    """Parse every input before anything is stored: one bad file refuses the whole import.
    `progress(1)` after each source parsed."""
    from deploytrack.evidence import parse_input

    parsed: list[tuple[str, ParsedAttestation]] = []
    for source in sources:
        for item in parse_input(source.data, source.name, jsonl=source.jsonl):
            parsed.append((source.name, item))
        if progress is not None:
            progress(1)
    return parsed


def store_blob(digest: str, data: bytes, now: int) -> None:
    """Keep bytes under their sha256 (content-addressed; a second copy adds nothing).
    Call inside a write transaction."""
    if Blob.get_or_none(Blob.digest == digest) is None:
        Blob.insert(digest=digest, size=len(data), content=data, created_at=now).execute()


def _chunks(values: Sequence[Any], size: int = _INSERT_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _present(column: Any, digests: Sequence[str]) -> set[str]:
    """Which of `digests` the column holds, asked in chunks (SQLite caps parameters)."""
    found: set[str] = set()
    for chunk in _chunks(digests):
        found.update(
            row[0] for row in column.model.select(column).where(column.in_(chunk)).tuples()
        )
    return found


def insert_parsed_many(
    items: Sequence[ParsedAttestation],
    overrides: Overrides,
    now: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Store and index parsed attestations; returns {digest: id} of those newly stored
    (bytes stored already, or repeated in `items`, add nothing). In a write transaction.
    `progress(n)` as the rows of n of `items` are written (len(items) in all).

    Batched: a few statements per 500 attestations, not per attestation, so importing
    ten thousand statements in one call takes seconds, not minutes.
    """
    unique = list({item.digest: item for item in items}.values())
    stored = _present(Attestation.digest, [item.digest for item in unique])
    new = [item for item in unique if item.digest not in stored]
    if progress is not None and len(items) > len(new):
        progress(len(items) - len(new))  # repeats and bytes stored already: nothing to write
    if not new:
        return {}
    have_bytes = _present(Blob.digest, [item.digest for item in new])
    blobs = [
        {"digest": i.digest, "size": len(i.raw), "content": i.raw, "created_at": now}
        for i in new
        if i.digest not in have_bytes
    ]
    for chunk in _chunks(blobs):
        Blob.insert_many(chunk).execute()
    # Ids are handed out here, under the write lock, so subjects and materials can be
    # written in bulk too (no round trip per attestation to learn its id).
    first = (Attestation.select(fn.MAX(Attestation.id)).scalar() or 0) + 1
    ids = {item.digest: first + n for n, item in enumerate(new)}
    rows = [
        {
            "id": ids[i.digest],
            "digest": i.digest,
            "format": i.format,
            "statement_type": i.statement_type,
            "predicate_type": i.predicate_type,
            "project": overrides.project or i.project,
            "version": overrides.version or i.version,
            "workflow": overrides.workflow or i.workflow,
            "imported_at": now,
        }
        for i in new
    ]
    for chunk in _chunks(rows, 300):  # 9 parameters per row
        Attestation.insert_many(chunk).execute()
        if progress is not None:
            progress(len(chunk))
    subjects = [
        {"attestation": ids[i.digest], "name": s.name, "digest": s.digest}
        for i in new
        for s in i.subjects
    ]
    for chunk in _chunks(subjects):
        AttestationSubject.insert_many(chunk).execute()
    materials = [
        {"attestation": ids[i.digest], "name": m.name, "kind": m.kind, "digest": m.digest}
        for i in new
        for m in i.materials
    ]
    for chunk in _chunks(materials):
        AttestationMaterial.insert_many(chunk).execute()
    return ids


def insert_parsed(item: ParsedAttestation, overrides: Overrides, now: int) -> Attestation | None:
    """Store one parsed attestation and index it; None when its bytes are stored already.
    Call inside a write transaction."""
    created = insert_parsed_many([item], overrides, now)
    return Attestation.get_by_id(created[item.digest]) if created else None


def views_of(digests: Iterable[str]) -> dict[str, AttestationView]:
    """Views of stored attestations by digest."""
    wanted = list(set(digests))
    rows: list[Attestation] = []
    for chunk in _chunks(wanted):
        rows.extend(Attestation.select().where(Attestation.digest.in_(chunk)))
    return {v.digest: v for v in _views(rows)}


def store_parsed(
    store: Store,
    parsed: Sequence[tuple[str, ParsedAttestation]],
    overrides: Overrides,
    progress: Callable[[int], None] | None = None,
) -> list[ImportResult]:
    """Store parsed attestations in one transaction. Already-stored bytes add nothing.
    `progress(n)` as the rows of n attestations are written, then len(parsed) once the
    event is logged (2 * len(parsed) in all: the event that lists every new row takes
    about as long to write as the rows)."""
    results: list[tuple[str, bool, str]] = []
    with store.write() as log:
        now = timeutil.now_us()
        items = [item for _, item in parsed]
        created = set(insert_parsed_many(items, overrides, now, progress))
        # One event for the batch (one command, one transaction), naming each new
        # attestation by digest.
        log.log("attestation.imported", digests=sorted(created))
        if progress is not None and parsed:
            progress(len(parsed))
        for source, item in parsed:
            # The first occurrence of new bytes is "created"; a repeat is already stored.
            results.append((source, item.digest in created, item.digest))
            created.discard(item.digest)
        views = views_of(d for _, _, d in results)
    from deploytrack.services.views.evidence import ImportResult

    return [ImportResult(source, created, views[digest]) for source, created, digest in results]


def import_sources(
    store: Store, sources: Iterable[Source], overrides: Overrides | None = None
) -> list[ImportResult]:
    return store_parsed(store, parse_sources(sources), overrides or Overrides())


def attestations_naming(digest: str) -> list[AttestationView]:
    """Attestations that name `digest`, oldest first."""
    ids = queries.naming(digest)
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
            wanted = resolve_digest(
                digest, [AttestationSubject.digest, AttestationMaterial.digest], "named digests"
            )
            ids = queries.naming(wanted) if wanted is not None else set()
            query = query.where(Attestation.id.in_(list(ids)))
        return _views(list(query.order_by(Attestation.imported_at.desc(), Attestation.id.desc())))


# How many candidates an ambiguous prefix names in its refusal (one line stays readable).
_SHOWN_CANDIDATES = 5


def resolve_digest(value: str, columns: Sequence[Any], what: str = "digests") -> str | None:
    """The one place a digest typed by a user is looked up (deployment list and describe,
    attestation list and describe, artifact download, discover).

    `value` is a whole digest or a prefix of at least 8 hex digits, with or without
    `sha256:` (deploytrack.digests.normalize_lookup). A whole digest is returned as is
    (normalized; the caller's own query tells whether anything has it); a prefix is looked
    up in `columns` by an index range scan and returns the one digest that starts with it,
    or None when none does. Several are refused with the first few, so the user can pick.
    """
    from deploytrack.digests import is_complete
    from deploytrack.services import validate

    wanted = validate.digest_or_prefix(value)
    if is_complete(wanted):
        return wanted
    found = queries.digests_with_prefix(columns, wanted, _SHOWN_CANDIDATES + 1)
    if len(found) <= 1:
        return found[0] if found else None
    shown = ", ".join(found[:_SHOWN_CANDIDATES])
    total = len(found)
    if total > _SHOWN_CANDIDATES:
        total = queries.count_digests_with_prefix(columns, wanted)
        shown += f" and {total - _SHOWN_CANDIDATES} more"
    raise ServiceError(f"{value.strip()[:80]!r} matches {total} {what}: {shown}; give more digits")


def find_attestation(digest_or_prefix: str) -> Attestation:
    """An attestation by full digest, or by a unique prefix of at least 8 hex digits."""
    wanted = resolve_digest(digest_or_prefix, [Attestation.digest], "attestations")
    if wanted is not None and not wanted.startswith("sha256:"):
        raise ServiceError(
            f"invalid attestation digest {digest_or_prefix[:80]!r}: attestations are stored "
            "under their sha256:<hex>"
        )
    row = Attestation.get_or_none(Attestation.digest == wanted) if wanted else None
    if row is None:
        raise ServiceError(
            f"no attestation {digest_or_prefix!r} in the evidence store: see "
            "'deploytrack attestation list'"
        )
    return row


def describe_attestation(store: Store, digest: str) -> AttestationView:
    with store.read():
        return _views([find_attestation(digest)])[0]


def download(store: Store, digest: str) -> bytes:
    """The stored bytes for `digest` exactly as imported."""
    with store.read():
        wanted = resolve_digest(digest, [Blob.digest], "stored digests")
        row = Blob.get_or_none(Blob.digest == wanted) if wanted is not None else None
        if row is None:
            raise ServiceError(
                f"nothing stored under {wanted or digest.strip()[:80]}: the evidence store "
                "keeps attestations and the material files of 'attestation create' "
                "('deploytrack discover DIGEST' tells what a digest is)"
            )
        return bytes(row.content)
