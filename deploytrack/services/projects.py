"""Projects: the attestations imported under a project name, grouped by version, with the
artifacts they name and where those run now."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import cast

from deploytrack.services import ServiceError
from deploytrack.services.deployments import DEPLOYED, joined_view
from deploytrack.services.discover import unique
from deploytrack.services.views.deployments import DeploymentView
from deploytrack.store import Store, queries
from deploytrack.store.models import (
    Attestation,
    AttestationMaterial,
    AttestationSubject,
    Deployment,
)


@dataclass(frozen=True)
class ProjectSummary:
    name: str
    versions: tuple[str, ...]
    workflows: tuple[str, ...]
    attestations: int
    last_imported_at: int


@dataclass(frozen=True)
class ProjectAttestation:
    digest: str
    predicate_type: str
    format: str
    workflow: str | None
    imported_at: int
    verified_by: tuple[str, ...]


@dataclass(frozen=True)
class ProjectArtifact:
    digest: str
    kinds: tuple[str, ...]
    names: tuple[str, ...]
    running: tuple[DeploymentView, ...]  # active deployment records of the digest


@dataclass(frozen=True)
class ProjectVersion:
    version: str | None
    workflows: tuple[str, ...]
    attestations: tuple[ProjectAttestation, ...]
    artifacts: tuple[ProjectArtifact, ...]


@dataclass(frozen=True)
class ProjectDetail:
    name: str
    versions: tuple[ProjectVersion, ...]


def list_projects(store: Store) -> list[ProjectSummary]:
    with store.read():
        rows = list(
            Attestation.select()
            .where(Attestation.project.is_null(False))
            .order_by(Attestation.project, Attestation.id)
        )
    grouped: dict[str, list[Attestation]] = defaultdict(list)
    for row in rows:
        grouped[cast(str, row.project)].append(row)  # the query excludes NULL
    return [
        ProjectSummary(
            name=name,
            versions=unique([r.version for r in atts]),
            workflows=unique([r.workflow for r in atts]),
            attestations=len(atts),
            last_imported_at=max(r.imported_at for r in atts),
        )
        for name, atts in sorted(grouped.items())
    ]


def describe_project(store: Store, name: str) -> ProjectDetail:
    with store.read():
        rows = list(
            Attestation.select().where(Attestation.project == name).order_by(Attestation.id)
        )
        if not rows:
            raise ServiceError(
                f"no attestation belongs to project {name!r}: see 'deploytrack project list'"
            )
        ids = [r.id for r in rows]
        verified = queries.verified_by(ids)
        named: dict[int, list[tuple[str, str | None, str | None]]] = defaultdict(list)
        for s in AttestationSubject.select().where(AttestationSubject.attestation.in_(ids)):
            named[s.attestation_id].append((s.digest, s.name, None))
        for m in AttestationMaterial.select().where(
            AttestationMaterial.attestation.in_(ids) & AttestationMaterial.digest.is_null(False)
        ):
            named[m.attestation_id].append((cast(str, m.digest), m.name, m.kind))  # not NULL
        digests = sorted({d for items in named.values() for d, _, _ in items})
        running: dict[str, list[DeploymentView]] = defaultdict(list)
        for record in (
            queries.with_names()
            .where(Deployment.digest.in_(digests) & (Deployment.status == DEPLOYED))
            .order_by(Deployment.id)
        ):
            running[record.digest].append(joined_view(record))

    by_version: dict[str | None, list[Attestation]] = {}
    for row in rows:
        by_version.setdefault(row.version, []).append(row)
    versions = []
    for version, atts in sorted(by_version.items(), key=lambda item: item[0] is None):
        artifacts: dict[str, tuple[list[str | None], list[str | None]]] = {}
        for att in atts:
            for digest, item_name, item_kind in named[att.id]:
                kinds, names = artifacts.setdefault(digest, ([], []))
                kinds.append(item_kind)
                names.append(item_name)
        versions.append(
            ProjectVersion(
                version=version,
                workflows=unique([a.workflow for a in atts]),
                attestations=tuple(
                    ProjectAttestation(
                        digest=a.digest,
                        predicate_type=a.predicate_type,
                        format=a.format,
                        workflow=a.workflow,
                        imported_at=a.imported_at,
                        verified_by=verified.get(a.id, ()),
                    )
                    for a in atts
                ),
                artifacts=tuple(
                    ProjectArtifact(
                        digest=digest,
                        kinds=unique(kinds + [r.kind for r in running.get(digest, [])]),
                        names=unique(names),
                        running=tuple(running.get(digest, [])),
                    )
                    for digest, (kinds, names) in artifacts.items()
                ),
            )
        )
    return ProjectDetail(name=name, versions=tuple(versions))


__all__ = ["ProjectDetail", "ProjectSummary", "describe_project", "list_projects"]
