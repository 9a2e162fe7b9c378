"""Stage policies and admissions."""

from __future__ import annotations

from dataclasses import dataclass


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
