"""Results of the lifecycle services: status, promote, rollback and diff.

NamedTuples, as in views/deployments.py: `status` defines all seven, and seven frozen
dataclasses cost ~3 ms of its start-up where these take well under one. No `from
__future__ import annotations`, for the same reason as there.
"""

from typing import Final, Literal, NamedTuple

from deploytrack import timeutil
from deploytrack.services.views.deployments import Action, DeploymentView, Kind

# Literal types, as in views/deployments.py: the strings the JSON shows, checked.
Change = Literal["added", "removed", "changed", "same"]
ADDED: Final = "added"
REMOVED: Final = "removed"
CHANGED: Final = "changed"
SAME: Final = "same"


class PromoteResult(NamedTuple):
    # created | superseded | heartbeat (the target already ran that digest): record()'s
    # actions for a deployed status
    action: Action
    deployment: DeploymentView
    previous: DeploymentView | None
    source: DeploymentView


class RollbackResult(NamedTuple):
    # superseded (the slot was active) | created (the slot had been decommissioned)
    action: Action
    deployment: DeploymentView
    previous: DeploymentView | None
    restored: DeploymentView


class StatusRow(NamedTuple):
    environment: str
    logical_environment: str
    deployment_name: str
    kind: Kind
    digest: str
    deployed_at: int
    last_seen_at: int
    stale: bool


class StatusReport(NamedTuple):
    now: int
    stale_after: int
    rows: tuple[StatusRow, ...]

    def __json__(self) -> tuple[StatusRow, ...]:
        """`status -o json` is the list of rows (docs/json.md)."""
        return self.rows


class Selection(NamedTuple):
    """One side of a diff: environment and logical environment (None: every one), at a time
    (None: now)."""

    environment: str | None = None
    logical_environment: str | None = None
    at: int | None = None

    def __str__(self) -> str:
        where = f"{self.environment or '*'}/{self.logical_environment or '*'}"
        return where + (f" at {timeutil.short(self.at)}" if self.at is not None else " now")


class DiffRow(NamedTuple):
    deployment_name: str
    kind: Kind
    environment: str
    logical_environment: str
    from_digest: str | None
    to_digest: str | None
    change: Change


class DiffReport(NamedTuple):
    source: Selection
    target: Selection
    rows: tuple[DiffRow, ...]

    def __json__(self) -> tuple[DiffRow, ...]:
        """`deployment diff -o json` is the list of rows (docs/json.md)."""
        return self.rows

    @property
    def differs(self) -> bool:
        return any(row.change != SAME for row in self.rows)
