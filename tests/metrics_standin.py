"""A stand-in for services/metrics.py while it is written on another branch: the interface
fixed for both (MetricsQuery, compute, the Metrics shape), with simple rules. The report's
tests use it only when the real module is missing; it goes when the real one lands."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Literal

from deploytrack import timeutil
from deploytrack.store import Store
from deploytrack.store.models import Attestation, AttestationSubject, Deployment, LogicalEnvironment

WEEK = 7 * 86_400 * 1_000_000


@dataclass(frozen=True)
class MetricsQuery:
    logical_environment: str = "production"
    environment: str | None = None
    since: int | None = None
    until: int | None = None
    interval: Literal["week", "month"] = "week"
    failure_window_us: int = 24 * 3600 * 1_000_000


@dataclass(frozen=True)
class Selection:
    logical_environment: str
    environment: str | None
    interval: str
    failure_window_seconds: int


@dataclass(frozen=True)
class Interval:
    start: int
    count: int


@dataclass(frozen=True)
class Frequency:
    count: int
    band: str | None
    per_interval: tuple[Interval, ...]


@dataclass(frozen=True)
class LeadTime:
    count: int
    median_seconds: int | None
    p90_seconds: int | None
    from_import_time: int = 0


@dataclass(frozen=True)
class FailureRate:
    failed: int
    total: int
    rate: float | None


@dataclass(frozen=True)
class Recovery:
    count: int
    median_seconds: int | None


@dataclass(frozen=True)
class Metrics:
    since: int
    until: int
    selection: Selection
    deployment_frequency: Frequency
    lead_time: LeadTime
    change_failure_rate: FailureRate
    recovery_time: Recovery
    lead_time_samples: tuple[int, ...]


def compute(store: Store, query: MetricsQuery) -> Metrics:
    until = query.until if query.until is not None else timeutil.now_us()
    since = query.since if query.since is not None else until - 90 * 86_400 * 1_000_000
    with store.read():
        stage = LogicalEnvironment.get(LogicalEnvironment.name == query.logical_environment)
        rows = list(
            Deployment.select().where(
                (Deployment.logical_environment == stage.id)
                & (Deployment.created_at > since)
                & (Deployment.created_at <= until)
            )
        )
        by_id = {r.id: r for r in Deployment.select()}
        built = {}
        for digest in {r.digest for r in rows}:
            times = [
                a.imported_at
                for a in Attestation.select()
                .join(AttestationSubject)
                .where(AttestationSubject.digest == digest)
            ]
            built[digest] = min(times) if times else None
    starts = list(range(since, until, WEEK))
    per = tuple(Interval(s, sum(1 for r in rows if s < r.created_at <= s + WEEK)) for s in starts)
    samples = tuple(
        (r.created_at - built[r.digest]) // 1_000_000
        for r in rows
        if built[r.digest] is not None and r.created_at >= built[r.digest]
    )
    failed = []
    for r in rows:
        nxt = by_id.get(r.superseded_by) if r.superseded_by else None
        ended_by_rollback = nxt is not None and nxt.rollback_of is not None
        ended = ended_by_rollback or r.status == "decommissioned"
        if ended and r.ended_at - r.created_at <= query.failure_window_us:
            failed.append(r)
    recoveries = [(f.ended_at - f.created_at) // 1_000_000 for f in failed if f.superseded_by]

    def pct(values: tuple[int, ...] | list[int], q: float) -> int | None:
        return sorted(values)[int(q * (len(values) - 1))] if values else None

    return Metrics(
        since=since,
        until=until,
        selection=Selection(
            query.logical_environment,
            query.environment,
            query.interval,
            query.failure_window_us // 1_000_000,
        ),
        deployment_frequency=Frequency(len(rows), "weekly" if rows else None, per),
        lead_time=LeadTime(len(samples), pct(samples, 0.5), pct(samples, 0.9), len(samples)),
        change_failure_rate=FailureRate(
            len(failed), len(rows), len(failed) / len(rows) if rows else None
        ),
        recovery_time=Recovery(
            len(recoveries), int(statistics.median(recoveries)) if recoveries else None
        ),
        lead_time_samples=samples,
    )
