"""What `deployment sync` did (or, with --dry-run, would do) with each observed artifact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from deploytrack.services.views.deployments import Kind

# Every observed artifact ends in exactly one of these (docs/deployments.md, "Sync").
Outcome = Literal[
    "heartbeat",
    "created",
    "superseded",
    "unattested",
    "refused",
    "skipped",
    "decommissioned",
]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)


@dataclass(frozen=True)
class SyncRow:
    """One observed artifact and its outcome, or (--prune) a record nobody observed."""

    outcome: Outcome
    deployment_name: str | None
    kind: Kind
    digest: str | None
    reason: str | None  # why: skipped, unattested, refused; also what a row decommissioned
    source: dict[str, Any]  # where it was seen: the parser's object, or the pruned record
    environment: str | None  # where it went (differs per row only with --env-from-event)
    deployment_id: int | None  # the record it created, heartbeat or ended; None otherwise
    warning: str | None = None

    def __json__(self) -> dict[str, Any]:
        """The row's fields; `warning` only when there is one (docs/json.md)."""
        out: dict[str, Any] = {
            "outcome": self.outcome,
            "deployment_name": self.deployment_name,
            "kind": self.kind,
            "digest": self.digest,
            "reason": self.reason,
            "source": self.source,
            "environment": self.environment,
            "deployment_id": self.deployment_id,
        }
        if self.warning is not None:
            out["warning"] = self.warning
        return out


@dataclass(frozen=True)
class SyncResult:
    environment: str | None  # None with --env-from-event: each row names its own
    logical_environment: str
    dry_run: bool
    rows: tuple[SyncRow, ...]

    @property
    def counts(self) -> dict[str, int]:
        """How many rows ended in each outcome, every outcome named (0 included)."""
        counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        for row in self.rows:
            counts[row.outcome] += 1
        return counts

    @property
    def drift(self) -> bool:
        """Anything but heartbeats: what runs is not what was recorded (`--exit-code`)."""
        return any(row.outcome != "heartbeat" for row in self.rows)

    def __json__(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "logical_environment": self.logical_environment,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "counts": self.counts,
        }
