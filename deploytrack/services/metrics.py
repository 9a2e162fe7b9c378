"""The four DORA metrics of a selection of records over a window, from the records alone
(docs/metrics.md states every rule; this module is its code).

- A **deployment** is a record of the selection (a logical environment, and one
  environment or all) created in the window [since, until). `record()` creates a record
  only when a slot's digest changes (a first record, a record in a slot a decommissioning
  emptied, superseding with another digest, a promotion, a rollback); a heartbeat moves
  `last_seen_at` and a decommissioning ends a record: neither is a deployment.
- **Deployment frequency**: their number, per interval, and the Four Keys band.
- **Lead time for changes**: for each deployment that is the first of its digest in the
  selection, from the earliest build time the evidence naming the digest as a subject
  states (else the earliest import time of an attestation naming it) to its start.
- **Change failure rate**: deployments whose record was ended by a rollback or a
  decommissioning within the failure window of its start, over all deployments.
- **Failed deployment recovery time**: from a failed deployment's start to the start of
  the record that replaced it in its slot.

Aggregation happens here, in Python, over the few columns read: no SQL that one backend
orders or rounds differently from another.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

from deploytrack import timeutil
from deploytrack.services import ServiceError
from deploytrack.services.catalog import environments, logical_environments
from deploytrack.services.views.metrics import (
    ChangeFailureRate,
    DeploymentFrequency,
    IntervalCount,
    LeadTime,
    Metrics,
    RecoveryTime,
    Selection,
)
from deploytrack.store import Store
from deploytrack.store.models import (
    Attestation,
    AttestationMaterial,
    AttestationSubject,
    Deployment,
)

if TYPE_CHECKING:
    from peewee import Expression

    from deploytrack.services.views.metrics import Band

DAY_US = 86_400 * 1_000_000
# The window `metrics` and `report` look at when --since is not given.
DEFAULT_WINDOW_US = 90 * DAY_US
DEFAULT_FAILURE_WINDOW_US = 24 * 3600 * 1_000_000
# 0001-01-01T00:00:00Z, the first instant a time can be written for (a Monday).
FIRST_US = -62_135_596_800 * 1_000_000
# Rows per `IN (...)` list: well under SQLite's and PostgreSQL's parameter limits.
_CHUNK = 500
HALF = Fraction(1, 2)


@dataclass(frozen=True)
class MetricsQuery:
    logical_environment: str = "production"
    environment: str | None = None
    since: int | None = None  # microseconds; None = until - 90 days
    until: int | None = None  # microseconds; None = now
    interval: Literal["week", "month"] = "week"
    failure_window_us: int = DEFAULT_FAILURE_WINDOW_US


class _Record(NamedTuple):
    id: int
    digest: str
    created_at: int
    ended_at: int | None
    status: str
    superseded_by: int | None
    environment_id: int
    deployment_name: str
    kind: str


_COLUMNS = (
    Deployment.id,
    Deployment.digest,
    Deployment.created_at,
    Deployment.ended_at,
    Deployment.status,
    Deployment.superseded_by,
    Deployment.environment,
    Deployment.deployment_name,
    Deployment.kind,
)


def compute(store: Store, query: MetricsQuery) -> Metrics:
    """The metrics of `query`'s selection over [since, until)."""
    until = timeutil.now_us() if query.until is None else query.until
    # The default start stays within the times RFC 3339 can print (year 1 on).
    since = max(until - DEFAULT_WINDOW_US, FIRST_US) if query.since is None else query.since
    if since >= until:
        raise ServiceError("--since is not before --until: give a window that ends after it starts")
    if until - since > timeutil.MAX_DURATION_US:
        # Every day and interval of the window is walked and listed: a window of millennia
        # would take seconds and megabytes to say nothing more.
        raise ServiceError("the window is longer than 100 years: give a later --since")
    if query.failure_window_us < 0:
        raise ServiceError("the failure window is negative: give a duration such as 24h")
    with store.read():
        stage = logical_environments.get(store, query.logical_environment)
        selected: Expression = Deployment.logical_environment == stage.id
        if query.environment is not None:
            env = environments.get(store, query.environment)
            selected = selected & (Deployment.environment == env.id)
        deployments = _records(
            selected & (Deployment.created_at >= since) & (Deployment.created_at < until)
        )
        first_record = (
            Deployment.select(Deployment.created_at)
            .where(selected)
            .order_by(Deployment.created_at)
            .limit(1)
            .scalar()
        )
        failures, recoveries = _failures(deployments, selected, query.failure_window_us)
        lead_times, from_import = _lead_times(deployments, selected, since)

    times = [d.created_at for d in deployments]
    total = len(deployments)
    return Metrics(
        since=since,
        until=until,
        selection=Selection(
            logical_environment=query.logical_environment,
            environment=query.environment,
            interval=query.interval,
            failure_window_seconds=query.failure_window_us // 1_000_000,
        ),
        deployment_frequency=DeploymentFrequency(
            count=total,
            band=band(times, first_record, since, until),
            per_interval=tuple(per_interval(times, since, until, query.interval)),
        ),
        lead_time=LeadTime(
            count=len(lead_times),
            median_seconds=_percentile_seconds(lead_times, HALF),
            p90_seconds=_percentile_seconds(lead_times, Fraction(9, 10)),
            from_import_time=from_import,
        ),
        change_failure_rate=ChangeFailureRate(
            failed=failures,
            total=total,
            rate=round(failures / total, 4) if total else None,
        ),
        recovery_time=RecoveryTime(
            count=len(recoveries),
            median_seconds=_percentile_seconds(recoveries, HALF),
        ),
        lead_time_samples=tuple(lead_times),
    )


def _records(condition: Expression) -> list[_Record]:
    """Records matching `condition`, oldest first (by start, then id: the order they were
    written in, whatever order a backend returns rows of equal times in)."""
    # peewee's stubs type .tuples() as the model query it was called on.
    found = cast(
        "Iterable[tuple[Any, ...]]", Deployment.select(*_COLUMNS).where(condition).tuples()
    )
    rows = [_Record(*row) for row in found]
    rows.sort(key=lambda r: (r.created_at, r.id))
    return rows


def _chunks(values: Sequence[str] | Sequence[int]) -> Iterator[Sequence[str] | Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


# --- change failure rate and recovery time ---------------------------------------------


def _failures(
    deployments: Sequence[_Record], selected: Expression, window_us: int
) -> tuple[int, list[int]]:
    """How many deployments failed, and the recovery time (seconds) of each failed one that
    a later record replaced.

    A failure is a record ended within `window_us` of its start by a rollback (the record
    that superseded it restores an earlier digest: `rollback_of`) or by a decommissioning.
    The record that replaced it is its successor for a rollback, the next record of its
    slot for a decommissioning (none yet: not recovered, not counted).
    """
    successor_ids = [d.superseded_by for d in deployments if d.superseded_by is not None]
    successors: dict[int, tuple[int, bool]] = {}
    for chunk in _chunks(successor_ids):
        rows = Deployment.select(
            Deployment.id, Deployment.created_at, Deployment.rollback_of
        ).where(Deployment.id.in_(chunk))
        for row_id, created_at, rollback_of in cast(
            "Iterable[tuple[int, int, int | None]]", rows.tuples()
        ):
            successors[row_id] = (created_at, rollback_of is not None)

    failed = 0
    recoveries: list[int] = []
    for record in deployments:
        if record.ended_at is None or record.ended_at - record.created_at > window_us:
            continue
        replaced_at: int | None
        if record.status == "decommissioned":
            replaced_at = _next_in_slot(record, selected)
        elif record.superseded_by is not None and successors[record.superseded_by][1]:
            replaced_at = successors[record.superseded_by][0]
        else:
            continue  # superseded by a new release, not rolled back: not a failure
        failed += 1
        if replaced_at is not None:
            recoveries.append((replaced_at - record.created_at) // 1_000_000)
    return failed, recoveries


def _next_in_slot(record: _Record, selected: Expression) -> int | None:
    """When the first record after a decommissioned one started in its slot, or None.
    Records of a slot never overlap and get increasing ids: the next one is the oldest with
    a larger id."""
    later = (
        Deployment.select(Deployment.created_at)
        .where(
            selected
            & (Deployment.environment == record.environment_id)
            & (Deployment.deployment_name == record.deployment_name)
            & (Deployment.kind == record.kind)
            & (Deployment.id > record.id)
        )
        .order_by(Deployment.id)
        .limit(1)
        .scalar()
    )
    return None if later is None else int(later)


# --- lead time for changes -------------------------------------------------------------


def _lead_times(
    deployments: Sequence[_Record], selected: Expression, since: int
) -> tuple[list[int], int]:
    """The lead time (seconds) of each deployment that is the first of its digest in the
    selection, in the deployments' order; and how many of them started from an import time.
    """
    digests = sorted({d.digest for d in deployments})
    seen_before: set[str] = set()
    for chunk in _chunks(digests):
        rows = Deployment.select(Deployment.digest).where(
            selected & (Deployment.created_at < since) & Deployment.digest.in_(chunk)
        )
        seen_before.update(digest for (digest,) in cast("Iterable[tuple[str]]", rows.tuples()))
    firsts: dict[str, _Record] = {}
    for record in deployments:  # oldest first: the first of each digest wins
        if record.digest not in seen_before:
            firsts.setdefault(record.digest, record)

    built = build_times(list(firsts))
    samples: list[int] = []
    from_import = 0
    for record in deployments:
        if firsts.get(record.digest) is not record:
            continue
        start = built.get(record.digest)
        if start is None:
            continue  # no evidence names it (the schema refuses such a record)
        moment, from_evidence = start
        from_import += not from_evidence
        # A build time after the deployment (clocks that disagree) counts as no wait.
        samples.append(max(record.created_at - moment, 0) // 1_000_000)
    return samples, from_import


def build_times(digests: Iterable[str]) -> dict[str, tuple[int, bool]]:
    """For each digest, when it was built, and whether that time is from the evidence.

    The earliest build time stated by an attestation naming the digest as a subject (a
    material is an input of what was built, not its output); when none states one, the
    earliest import time of an attestation naming it as a subject or a material (False).
    In a transaction.
    """
    from deploytrack.evidence.buildtime import built_at, has_build_time
    from deploytrack.store.models import Blob

    wanted = list(digests)
    built: dict[str, int] = {}
    imported: dict[str, int] = {}
    for chunk in _chunks(wanted):
        naming: list[Any] = [
            AttestationSubject.select(
                AttestationSubject.digest,
                Attestation.digest,
                Attestation.predicate_type,
                Attestation.imported_at,
            )
            .join(Attestation)
            .where(AttestationSubject.digest.in_(chunk)),
            AttestationMaterial.select(
                AttestationMaterial.digest,
                Attestation.digest,
                Attestation.predicate_type,
                Attestation.imported_at,
            )
            .join(Attestation)
            .where(AttestationMaterial.digest.in_(chunk)),
        ]
        readable: dict[str, list[str]] = {}
        for as_subject, query in zip((True, False), naming, strict=True):
            found = cast("Iterable[tuple[str, str, str, int]]", query.tuples())
            for digest, attestation, predicate_type, imported_at in found:
                imported[digest] = min(imported.get(digest, imported_at), imported_at)
                if as_subject and has_build_time(predicate_type):
                    readable.setdefault(attestation, []).append(digest)
        # Each attestation's bytes are read once, however many of the digests it names.
        types: dict[str, str] = dict(
            cast(
                "Iterable[tuple[str, str]]",
                Attestation.select(Attestation.digest, Attestation.predicate_type)
                .where(Attestation.digest.in_(list(readable)))
                .tuples(),
            )
        )
        blobs = Blob.select(Blob.digest, Blob.content).where(Blob.digest.in_(list(readable)))
        for attestation, content in cast("Iterable[tuple[str, bytes]]", blobs.tuples()):
            moment = built_at(bytes(content), types[attestation])
            if moment is None:
                continue
            for digest in readable[attestation]:
                built[digest] = min(built.get(digest, moment), moment)
    times: dict[str, tuple[int, bool]] = {}
    for digest in wanted:
        if digest in built:
            times[digest] = (built[digest], True)
        elif digest in imported:
            times[digest] = (imported[digest], False)
    return times


def _percentile(values: Sequence[int], fraction: Fraction) -> Fraction:
    """The `fraction` percentile of `values` as PERCENTILE_CONT computes it (Four Keys takes
    its medians with it): linear between the two nearest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    value = Fraction(ordered[low])
    if position != low:
        value += (ordered[low + 1] - ordered[low]) * (position - low)
    return value


def _percentile_seconds(values: Sequence[int], fraction: Fraction) -> int | None:
    """`_percentile` rounded to a whole second, halves up; None without values."""
    if not values:
        return None
    return math.floor(_percentile(values, fraction) + HALF)


# --- deployment frequency --------------------------------------------------------------


def _day(us: int) -> int:
    """Days since 1970-01-01 of the UTC day holding `us`."""
    return us // DAY_US


def _week_start_day(day: int) -> int:
    """The Monday of the ISO week holding `day` (1970-01-01 was a Thursday)."""
    return day - (day + 3) % 7


def _month_start(us: int) -> int:
    moment = timeutil.from_us(us)
    return timeutil.to_us(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0))


def _next_month(start: int) -> int:
    """The first of the next month, counted in days: after December 9999 there is no date,
    but the window's end may be in it."""
    import calendar

    moment = timeutil.from_us(start)
    return start + calendar.monthrange(moment.year, moment.month)[1] * DAY_US


def per_interval(
    times: Sequence[int], since: int, until: int, interval: Literal["week", "month"]
) -> list[IntervalCount]:
    """Every interval overlapping [since, until), with the number of `times` in it (0
    included), oldest first. An interval starts at its calendar start (Monday or the first
    of the month, 00:00 UTC), even when the window starts later."""
    start = _week_start_day(_day(since)) * DAY_US if interval == "week" else _month_start(since)
    starts: list[int] = []
    while start < until:
        starts.append(start)
        start = start + 7 * DAY_US if interval == "week" else _next_month(start)
    counts = dict.fromkeys(starts, 0)
    for moment in times:
        key = _week_start_day(_day(moment)) * DAY_US if interval == "week" else _month_start(moment)
        counts[key] += 1
    return [IntervalCount(start, count) for start, count in counts.items()]


def band(times: Sequence[int], first_record: int | None, since: int, until: int) -> Band | None:
    """The DORA band of deployment frequency, computed as Four Keys' dashboard does.

    Over every UTC day from the later of `since` and the selection's first record (the
    start of the data) to the window's last day, grouped by week (Monday to Sunday): daily
    when the median number of days per week with a deployment is at least 3; else weekly
    when the median of "the week had a deployment" (1 or 0) is at least 1; else monthly
    when the median, over the weeks, of the number of weeks with a deployment in the
    week's month is at least 1; else yearly. None when the selection has no record before
    `until`: there is no data to judge.
    """
    if first_record is None or first_record >= until:
        return None
    deployed = {_day(t) for t in times}
    weeks: dict[int, int] = {}  # Monday -> days with a deployment
    for day in range(_day(max(since, first_record)), _day(until - 1) + 1):
        monday = _week_start_day(day)
        weeks[monday] = weeks.get(monday, 0) + (day in deployed)
    days_deployed = list(weeks.values())
    if _percentile(days_deployed, HALF) >= 3:
        return "daily"
    week_deployed = [1 if n else 0 for n in days_deployed]
    if _percentile(week_deployed, HALF) >= 1:
        return "weekly"
    # Four Keys sums week_deployed per month of the week's start, then takes the median
    # over the weeks (each week carries its month's sum).
    month_of = {monday: _month_start(monday * DAY_US) for monday in weeks}
    per_month: dict[int, int] = {}
    for monday, had in zip(weeks, week_deployed, strict=True):
        per_month[month_of[monday]] = per_month.get(month_of[monday], 0) + had
    if _percentile([per_month[month_of[monday]] for monday in weeks], HALF) >= 1:
        return "monthly"
    return "yearly"
