"""The referrer index: what a digest is, what references it, and where it runs.

`discover(digest)` answers as Chainloop's referrer index does, offline:

- what the digest is: the kinds it was seen under (material kinds in attestations,
  deployment record kinds, ATTESTATION when it is a stored attestation) and its names;
- which attestations reference it, as a subject or as a material;
- when it is an attestation, every digest that attestation references;
- which deployment records carry it.

One digest seen under two kinds is ambiguous; `kind` picks one and narrows the answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from deploytrack.services import ServiceError
from deploytrack.services.deployments import DEPLOYED, joined_view
from deploytrack.services.evidence import resolve_digest, views_of
from deploytrack.services.views.deployments import DeploymentView
from deploytrack.services.views.evidence import AttestationView
from deploytrack.store import Store, queries
from deploytrack.store.models import (
    Attestation,
    AttestationMaterial,
    AttestationSubject,
    Blob,
    Deployment,
)

ATTESTATION = "ATTESTATION"
SUBJECT = "subject"
MATERIAL = "material"


@dataclass(frozen=True)
class Role:
    """How an attestation names the digest: as a subject or a material, with what name."""

    role: str  # subject | material
    name: str | None
    kind: str | None


@dataclass(frozen=True)
class Referrer:
    """An attestation naming the digest."""

    attestation: str
    predicate_type: str
    project: str | None
    version: str | None
    workflow: str | None
    verified_by: tuple[str, ...]  # fingerprints of keys a signature verified with
    verified_identities: tuple[str, ...]  # signer identities a keyless verification proved
    roles: tuple[Role, ...]


@dataclass(frozen=True)
class Discovery:
    digest: str
    kinds: tuple[str, ...]
    kind: str | None  # the kind asked for, or the only one seen
    ambiguous: bool
    names: tuple[str, ...]
    stored_bytes: int | None  # size of the bytes kept under this digest, if any
    referenced_by: tuple[Referrer, ...]
    attestation: AttestationView | None  # when the digest is a stored attestation
    deployments: tuple[DeploymentView, ...]


def unique(values: Sequence[str | None]) -> tuple[str, ...]:
    """The values that are set, each once, in the order first seen."""
    return tuple(dict.fromkeys(v for v in values if v))


def discover(store: Store, digest: str, kind: str | None = None) -> Discovery:
    """`digest` may be a unique prefix of 8+ hex digits of any digest the database holds."""
    if kind is not None:
        kind = kind.strip().upper()
    with store.read():
        found = resolve_digest(
            digest,
            [
                AttestationSubject.digest,
                AttestationMaterial.digest,
                Deployment.digest,
                Attestation.digest,
                Blob.digest,
            ],
        )
        if found is None:
            raise ServiceError(
                f"nothing in the evidence store or the deployment records has a digest "
                f"starting with {digest.strip()[:80]!r}"
            )
        wanted = found
        subjects = list(AttestationSubject.select().where(AttestationSubject.digest == wanted))
        materials = list(AttestationMaterial.select().where(AttestationMaterial.digest == wanted))
        owner_ids = sorted({r.attestation_id for r in subjects + materials})
        owners = {a.id: a for a in Attestation.select().where(Attestation.id.in_(owner_ids))}
        verified = queries.verified_by(owner_ids)
        signers = queries.verified_identities(owner_ids)
        records = [
            joined_view(r)
            for r in queries.with_names()
            .where(Deployment.digest == wanted)
            .order_by((Deployment.status != DEPLOYED), Deployment.id.desc())
        ]
        itself = Attestation.get_or_none(Attestation.digest == wanted)
        attestation = views_of([wanted])[wanted] if itself is not None else None
        blob = Blob.select(Blob.size).where(Blob.digest == wanted).first()

    material_kinds: dict[int, set[str]] = defaultdict(set)
    for m in materials:
        if m.kind:
            material_kinds[m.attestation_id].add(m.kind)
    kinds = unique(
        [m.kind for m in materials]
        + [r.kind for r in records]
        + ([ATTESTATION] if attestation is not None else [])
    )
    names = unique([s.name for s in subjects] + [m.name for m in materials])
    if not (subjects or materials or records or attestation or blob):
        raise ServiceError(
            f"nothing in the evidence store or the deployment records names {wanted}"
        )
    if kind is not None and kind not in kinds:
        seen = ", ".join(kinds) if kinds else "no kind (it is only ever a subject)"
        raise ServiceError(f"{wanted} was never seen as {kind}; seen as: {seen}")

    roles: dict[int, list[Role]] = defaultdict(list)
    for s in sorted(subjects, key=lambda r: r.id):
        # A subject has no kind of its own: it takes the kind its attestation gives the
        # same digest as a material (deploytrack's and Chainloop's predicates do).
        own = material_kinds.get(s.attestation_id, set())
        if kind is not None and own and kind not in own:
            continue
        shown = kind if kind in own else (next(iter(own)) if len(own) == 1 else None)
        roles[s.attestation_id].append(Role(SUBJECT, s.name, shown))
    for m in sorted(materials, key=lambda r: r.id):
        if kind is None or m.kind == kind:
            roles[m.attestation_id].append(Role(MATERIAL, m.name, m.kind))
    referrers = tuple(
        Referrer(
            attestation=owners[att_id].digest,
            predicate_type=owners[att_id].predicate_type,
            project=owners[att_id].project,
            version=owners[att_id].version,
            workflow=owners[att_id].workflow,
            verified_by=verified.get(att_id, ()),
            verified_identities=signers.get(att_id, ()),
            roles=tuple(roles[att_id]),
        )
        for att_id in sorted(roles)
    )
    if kind is not None:
        records = [r for r in records if r.kind == kind]
        if kind != ATTESTATION:
            attestation = None
    return Discovery(
        digest=wanted,
        kinds=kinds,
        kind=kind if kind is not None else (kinds[0] if len(kinds) == 1 else None),
        ambiguous=kind is None and len(kinds) > 1,
        names=names,
        stored_bytes=blob.size if blob is not None else None,
        referenced_by=referrers,
        attestation=attestation,
        deployments=tuple(records),
    )


__all__ = ["Discovery", "Referrer", "Role", "discover", "unique"]
