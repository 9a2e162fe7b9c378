"""`report`: what the HTML report shows, as plain data the template lays out.

Times are integer microseconds, as everywhere; chart geometry (x, width, height) is in the
units of the SVG's viewBox, computed by services/report.py so the template only places
what it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# How a record's bar starts: recorded (record, sync), promoted into, or restored by a
# rollback. How it ends: still active, superseded, rolled back (the record a rollback
# replaced: the failed release), decommissioned. The template draws each end with its own
# pattern and each start with its own marker, and writes the words beside them.
Start = Literal["recorded", "promoted", "restored"]
End = Literal["active", "superseded", "rolled back", "decommissioned"]


@dataclass(frozen=True)
class Cell:
    """One active record in the grid of what runs where now."""

    deployment_id: int
    deployment_name: str
    kind: str
    digest: str
    artifact_ref: str | None
    last_seen_at: int
    last_seen: str  # "3h 5m ago"
    stale: bool
    built_from: tuple[str, ...]  # `project version (workflow)` of the attestations naming it
    verified: tuple[str, ...]  # the keys (fingerprints) and identities that verified its evidence
    policy_id: int | None  # the stage policy version that admitted it


@dataclass(frozen=True)
class GridRow:
    environment: str
    cells: tuple[tuple[Cell, ...], ...]  # one tuple per logical environment of the grid


@dataclass(frozen=True)
class Grid:
    logical_environments: tuple[str, ...]
    rows: tuple[GridRow, ...]
    stale_after: int  # microseconds


@dataclass(frozen=True)
class Bar:
    """One record's active interval inside the window."""

    deployment_id: int
    digest: str
    artifact_ref: str | None
    # In the slot's table: the reference without the slot's common repository, and the end
    # time only when the next row does not start at that instant (superseding ends a
    # record when the next one starts): a report of 10,000 records stays under 2 MB.
    ref_tail: str | None
    created_at: int
    ended_at: int | None
    ended_shown: bool
    start: Start
    end: End
    x: float
    width: float


@dataclass(frozen=True)
class SlotTimeline:
    environment: str
    logical_environment: str
    deployment_name: str
    kind: str
    repository: str  # the prefix every reference of its records shares, if any
    bars: tuple[Bar, ...]  # oldest first


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    width: float
    ticks: tuple[Tick, ...]
    slots: tuple[SlotTimeline, ...]
    records: int


@dataclass(frozen=True)
class Column:
    """One bar of a metrics chart: its label, its value and its geometry."""

    label: str
    value: int
    x: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    width: float
    height: float  # of the plotting area; a column's height is out of this
    top: int  # the value a full-height column stands for
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class MetricsPanel:
    """The four metrics of one selection, as `deploytrack metrics` computes them."""

    logical_environment: str
    environment: str | None
    since: int
    until: int
    interval: str
    deployments: int
    band: str | None
    frequency: Chart
    lead_time_count: int
    lead_time_median_seconds: int | None
    lead_time_p90_seconds: int | None
    lead_time_from_import: int  # of those, measured from an attestation's import time
    lead_time: Chart
    failed: int
    total: int
    failure_rate: float | None
    recovery_count: int
    recovery_median_seconds: int | None


@dataclass(frozen=True)
class LogCheckRow:
    name: str
    ok: bool
    detail: str
    problem: str | None


@dataclass(frozen=True)
class LogState:
    origin: str | None
    size: int  # events
    root: str  # base64, as in a checkpoint
    verified: bool  # `log verify` passed when the report was made
    checks: tuple[LogCheckRow, ...]
    checkpoint: str  # the checkpoint the report was made at (unsigned note text)


@dataclass(frozen=True)
class Report:
    generated_at: int
    since: int
    until: int
    logical_environments: tuple[str, ...]  # as selected; empty: all
    environments: tuple[str, ...]
    grid: Grid
    timeline: Timeline
    metrics: tuple[MetricsPanel, ...]
    log: LogState


@dataclass(frozen=True)
class ReportResult:
    """What `report` wrote: the file, its size, and what it covers."""

    path: str
    bytes: int
    slots: int
    records: int
    log_verified: bool
    log_size: int
    since_at: int
    until_at: int
