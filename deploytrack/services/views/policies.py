"""Stage policies and admissions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from deploytrack import timeutil

if TYPE_CHECKING:
    from deploytrack.services.keyless import TrustedRootFile, Verified
    from deploytrack.services.trust import Match

PolicyAction = Literal["set", "clear"]


@dataclass(frozen=True)
class PolicyKeyView:
    fingerprint: str
    algorithm: str


@dataclass(frozen=True)
class PolicyIdentityView:
    """A trusted signer identity: exact, or a regexp the whole identity must match."""

    identity: str
    match: str  # exact | regexp
    issuer: str
    trusted_root: str  # sha256 digest of the trusted_root.json certificates must chain to


@dataclass(frozen=True)
class PolicyView:
    """One version of a stage policy; a clear has no rules."""

    id: int
    logical_environment: str
    action: PolicyAction
    required_predicates: tuple[str, ...]
    trusted_keys: tuple[PolicyKeyView, ...]
    created_at: int
    trusted_identities: tuple[PolicyIdentityView, ...] = ()


@dataclass(frozen=True)
class AdmissionView:
    """Evidence that satisfied a rule when a record was admitted.

    requirement: a required predicate type, or "" for "an attestation naming the digest
    verifies with a trusted key" (a policy of trusted keys only).
    """

    requirement: str
    attestation: str
    fingerprint: str | None
    # When a trusted identity met the rule (keyless): the identity and issuer verified.
    identity: str | None = None
    issuer: str | None = None


@dataclass(frozen=True)
class PolicyChange:
    """What `policy set` / `policy clear` did: the version in force (or written), and
    whether a version was added. policy is None after a clear that found no policy."""

    changed: bool
    policy: PolicyView | None


@dataclass(frozen=True)
class PolicyReport:
    """`policy show`: the version in force (None: no policy) and every version, oldest first."""

    logical_environment: str
    policy: PolicyView | None
    history: tuple[PolicyView, ...]


@dataclass(frozen=True)
class AdmissionEvidence:
    """An admission row to store: the rule, the attestation that met it, and the signature
    that verified it (None when the policy trusts no key), or the signer identity."""

    requirement: str
    attestation_id: int
    match: Match | None
    # A keyless verification that met the rule instead of a key, with its trusted root.
    signer: tuple[Verified, TrustedRootFile] | None = None


@dataclass(frozen=True)
class Decision:
    """The answer of a policy for one digest in one logical environment."""

    logical_environment: str
    digest: str
    policy: PolicyView | None
    passed: bool
    reasons: tuple[str, ...]
    admission: tuple[AdmissionView, ...]
    # What remember_admission stores: internal, never printed.
    evidence: tuple[AdmissionEvidence, ...] = ()

    def __json__(self) -> dict[str, Any]:
        """`policy check -o json` (docs/json.md): every field but the stored evidence."""
        return {
            "logical_environment": self.logical_environment,
            "digest": self.digest,
            "passed": self.passed,
            "reasons": self.reasons,
            "policy": self.policy,
            "admission": self.admission,
        }

    def refusal(self) -> str:
        if self.policy is None:
            return f"{self.digest} may not be deployed to {self.logical_environment}: " + "; ".join(
                self.reasons
            )
        return (
            f"stage policy {self.policy.id} of {self.logical_environment} (set "
            f"{timeutil.rfc3339(self.policy.created_at)}) refuses {self.digest}: "
            + "; ".join(self.reasons)
            + f" (see 'deploytrack logical-environment policy show --name "
            f"{self.logical_environment}')"
        )
