"""`deploytrack metrics`: the four DORA metrics of a selection over a window.

Frozen plain data; the JSON shape is written once, in `Metrics.__json__` (docs/json.md):
times as RFC 3339 strings, durations in whole seconds, `rate` the one float (4 places),
null where there is nothing to measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from deploytrack import timeutil

Interval = Literal["week", "month"]
Band = Literal["daily", "weekly", "monthly", "yearly"]


@dataclass(frozen=True)
class Selection:
    """Which records were measured (a logical environment, one environment or all) and the
    settings the numbers depend on."""

    logical_environment: str
    environment: str | None
    interval: Interval
    failure_window_seconds: int


@dataclass(frozen=True)
class IntervalCount:
    """Deployments in one interval: `start` is the interval's calendar start (a Monday or
    the first of a month, 00:00 UTC), in microseconds; only the part inside the window
    counts."""

    start: int
    count: int

    def __json__(self) -> dict[str, Any]:
        return {"start": timeutil.rfc3339(self.start), "count": self.count}


@dataclass(frozen=True)
class DeploymentFrequency:
    count: int
    band: Band | None  # None: no record of the selection before the window's end
    per_interval: tuple[IntervalCount, ...]


@dataclass(frozen=True)
class LeadTime:
    count: int
    median_seconds: int | None
    p90_seconds: int | None
    # How many of the `count` lead times started from an attestation's import time, the
    # evidence stating no build time: the "say which", for machines as for people.
    from_import_time: int = 0

    def __json__(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "median_seconds": self.median_seconds,
            "p90_seconds": self.p90_seconds,
            "from_import_time": self.from_import_time,
        }


@dataclass(frozen=True)
class ChangeFailureRate:
    failed: int
    total: int
    rate: float | None  # failed / total, 4 places; None when total is 0


@dataclass(frozen=True)
class RecoveryTime:
    count: int
    median_seconds: int | None


@dataclass(frozen=True)
class Metrics:
    since: int  # microseconds, the window [since, until)
    until: int
    selection: Selection
    deployment_frequency: DeploymentFrequency
    lead_time: LeadTime
    change_failure_rate: ChangeFailureRate
    recovery_time: RecoveryTime
    # Outside the JSON: one lead time per measured deployment, in seconds, in the order of
    # the deployments (for the report's distribution chart).
    lead_time_samples: tuple[int, ...] = ()

    def __json__(self) -> dict[str, Any]:
        return {
            "since": timeutil.rfc3339(self.since),
            "until": timeutil.rfc3339(self.until),
            "selection": self.selection,
            "deployment_frequency": self.deployment_frequency,
            "lead_time": self.lead_time,
            "change_failure_rate": self.change_failure_rate,
            "recovery_time": self.recovery_time,
        }
