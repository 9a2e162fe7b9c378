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
class VerificationView:
    """A signature on the attestation verified with a public key (remembered)."""

    fingerprint: str
    algorithm: str
    keyid: str  # the keyid of the signature that verified ("" when it had none)
    source: str  # verify | create | admission
    verified_at: int


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
    # Newest verification per key, newest first (issue 4).
    verifications: tuple[VerificationView, ...] = ()


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
    policy_id: int | None  # the stage policy version that admitted it (issue 4)
    # Issue 5: the record a promotion copied / the earlier record a rollback restored.
    promoted_from: int | None
    rollback_of: int | None


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
    # Issue 4: the policy version that admitted the record, and the evidence that did.
    policy: PolicyView | None = None
    admission: tuple[AdmissionView, ...] = ()


@dataclass(frozen=True)
class PolicyKeyView:
    fingerprint: str
    algorithm: str


@dataclass(frozen=True)
class PolicyView:
    """One version of a stage policy. action: set | clear (a clear has no rules)."""

    id: int
    logical_environment: str
    action: str
    required_predicates: tuple[str, ...]
    trusted_keys: tuple[PolicyKeyView, ...]
    created_at: int


@dataclass(frozen=True)
class AdmissionView:
    """Evidence that satisfied a rule when a record was admitted.

    requirement: a required predicate type, or "" for "an attestation naming the digest
    verifies with a trusted key" (a policy of trusted keys only).
    """

    requirement: str
    attestation: str
    fingerprint: str | None
