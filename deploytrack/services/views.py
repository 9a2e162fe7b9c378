"""Results of services: frozen, plain data. Field names are the documented JSON names.

Times are integer microseconds since the epoch (UTC); output turns them into RFC 3339.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvironmentView:
    name: str
    description: str
    type: str
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class LogicalEnvironmentView:
    name: str
    description: str
    is_default: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class SubjectView:
    name: str
    digest: str


@dataclass(frozen=True)
class MaterialView:
    name: str | None
    kind: str | None
    digest: str | None


@dataclass(frozen=True)
class AttestationView:
    digest: str
    format: str
    statement_type: str
    predicate_type: str
    project: str | None
    version: str | None
    workflow: str | None
    subjects: tuple[SubjectView, ...]
    materials: tuple[MaterialView, ...]
    imported_at: int


@dataclass(frozen=True)
class ImportResult:
    source: str
    created: bool  # False: the same bytes were already stored
    attestation: AttestationView


@dataclass(frozen=True)
class DeploymentView:
    id: int
    environment: str
    logical_environment: str
    deployment_name: str
    kind: str
    digest: str
    artifact_ref: str | None
    status: str
    created_at: int
    last_seen_at: int
    ended_at: int | None
    superseded_by: int | None


@dataclass(frozen=True)
class RecordResult:
    # created | superseded | heartbeat | decommissioned | unchanged
    action: str
    deployment: DeploymentView
    previous: DeploymentView | None = None


@dataclass(frozen=True)
class DeploymentDetail:
    deployment: DeploymentView
    supersedes: int | None
    attestations: tuple[AttestationView, ...]
