"""`deployment describe`: a record with its evidence and admission."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploytrack.services.views.deployments import DeploymentView
    from deploytrack.services.views.evidence import AttestationView
    from deploytrack.services.views.policies import AdmissionView, PolicyView


@dataclass(frozen=True)
class DeploymentDetail:
    deployment: DeploymentView
    supersedes: int | None
    attestations: tuple[AttestationView, ...]
    # Admission: the policy version that admitted the record, and the evidence that did.
    policy: PolicyView | None = None
    admission: tuple[AdmissionView, ...] = ()

    def __json__(self) -> dict[str, Any]:
        """The record's own fields, then what the describe adds (docs/json.md)."""
        return {
            **self.deployment._asdict(),
            "supersedes": self.supersedes,
            "attestations": self.attestations,
            "policy": self.policy,
            "admission": self.admission,
        }
