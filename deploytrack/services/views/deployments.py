"""Deployment records."""

from __future__ import annotations

from dataclasses import dataclass


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
