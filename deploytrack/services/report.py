"""`report`: one self-contained HTML file of what runs where, its history and how delivery
goes: the grid of active records, a timeline per slot, the four metrics of
services/metrics.py with their charts, and the event log's state.

Everything is read in one read transaction (one snapshot: the log checked is the log the
records come from), laid out as plain data (services/views/report.py), then rendered by
the Jinja2 template shipped in `deploytrack/services/templates/` with autoescaping on. The
charts are SVG written by the template from the geometry computed here (docs/report.md
says why no chart library). Jinja2 is imported only here, when a report is rendered.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from deploytrack import timeutil
from deploytrack.digests import short
from deploytrack.services import ServiceError, deployments
from deploytrack.services.catalog import environments, logical_environments
from deploytrack.services.metrics import DAY_US, DEFAULT_WINDOW_US, MetricsQuery, compute
from deploytrack.services.views.report import (
    Bar,
    Cell,
    Chart,
    Column,
    End,
    Grid,
    GridRow,
    LogCheckRow,
    LogState,
    MetricsPanel,
    Report,
    ReportResult,
    SlotTimeline,
    Start,
    Tick,
    Timeline,
)
from deploytrack.store import Store, queries
from deploytrack.store.models import (
    Attestation,
    AttestationMaterial,
    AttestationSubject,
    Deployment,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from deploytrack.services.views.deployments import DeploymentView

# `status`'s rule: a slot whose last heartbeat is older than this is stale.
STALE_AFTER_US = 24 * 3_600 * 1_000_000
# The viewBox widths of the charts (their height follows their rows).
TIMELINE_WIDTH = 1000.0
CHART_WIDTH = 600.0
CHART_HEIGHT = 140.0
# A bar narrower than this would not show at all: a record of a few seconds in a quarter.
MIN_BAR = 0.6
# Lead time distribution buckets: (upper bound in seconds, label); the last is open.
LEAD_TIME_BUCKETS: tuple[tuple[int | None, str], ...] = (
    (3_600, "< 1 h"),
    (6 * 3_600, "1–6 h"),
    (86_400, "6–24 h"),
    (3 * 86_400, "1–3 d"),
    (7 * 86_400, "3–7 d"),
    (28 * 86_400, "1–4 w"),
    (None, "≥ 4 w"),
)
# Batches of ids or digests in one IN (...): far below SQLite's and PostgreSQL's limits.
_BATCH = 500


def build(
    store: Store,
    logical_environments_selected: Sequence[str] = (),
    environments_selected: Sequence[str] = (),
    since: int | None = None,
    until: int | None = None,
    now: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Everything the report shows, read in one snapshot.

    The grid and the timeline cover the selected environments and logical environments
    (all when none is named); the metrics are computed once per logical environment
    selected (production when none is), and per environment when environments are named.
    `progress` is `log.verify`'s (its units: `log.verify_units`), the one long part.
    """
    now = timeutil.now_us() if now is None else now
    until = now if until is None else until
    since = until - DEFAULT_WINDOW_US if since is None else since
    if since > until:
        raise ServiceError("--since is after --until: give a window that ends after it starts")
    stages = tuple(dict.fromkeys(logical_environments_selected))
    envs = tuple(dict.fromkeys(environments_selected))
    with store.read():
        for name in stages:
            logical_environments.get(store, name)
        for name in envs:
            environments.get(store, name)
        grid = _grid(stages, envs, now)
        timeline = _timeline(stages, envs, since, until)
        metrics = tuple(
            _metrics(store, stage, env, since, until)
            for stage in stages or ("production",)
            for env in envs or (None,)
        )
        log = _log_state(store, progress)
    return Report(
        generated_at=now,
        since=since,
        until=until,
        logical_environments=stages,
        environments=envs,
        grid=grid,
        timeline=timeline,
        metrics=metrics,
        log=log,
    )


def _selected(view: DeploymentView, stages: Sequence[str], envs: Sequence[str]) -> bool:
    return (not stages or view.logical_environment in stages) and (
        not envs or view.environment in envs
    )


def _sorted_names(names: Iterable[str]) -> list[str]:
    # In Python, not in SQL: the order must not depend on the database's collation.
    return sorted(set(names))


# --- what runs where now ---------------------------------------------------------------------


def _grid(stages: Sequence[str], envs: Sequence[str], now: int) -> Grid:
    active = [
        v
        for v in deployments.select_views([queries.active_now(queries.SlotFilter())])
        if _selected(v, stages, envs)
    ]
    evidence = _evidence({v.digest for v in active})
    columns = list(stages) or _stage_order({v.logical_environment for v in active})
    rows_by_env: dict[str, dict[str, list[Cell]]] = defaultdict(lambda: defaultdict(list))
    for v in sorted(active, key=lambda v: (v.deployment_name, v.kind)):
        rows_by_env[v.environment][v.logical_environment].append(
            Cell(
                deployment_id=v.id,
                deployment_name=v.deployment_name,
                kind=v.kind,
                digest=v.digest,
                artifact_ref=v.artifact_ref,
                last_seen_at=v.last_seen_at,
                last_seen=timeutil.age(now - v.last_seen_at) + " ago",
                stale=now - v.last_seen_at > STALE_AFTER_US,
                built_from=evidence[v.digest][0],
                verified=evidence[v.digest][1],
                policy_id=v.policy_id,
            )
        )
    rows = tuple(
        GridRow(env, tuple(tuple(rows_by_env[env][stage]) for stage in columns))
        for env in (list(envs) or _sorted_names(rows_by_env))
    )
    return Grid(tuple(columns), rows, STALE_AFTER_US)


def _stage_order(names: set[str]) -> list[str]:
    """The lifecycle's order for the three every database starts with, then the others by
    name."""
    first = [n for n in ("development", "staging", "production") if n in names]
    return first + _sorted_names(names - set(first))


def _evidence(digests: set[str]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Per digest: what the attestations naming it say built it (`project version
    (workflow)`), and the key fingerprints and signer identities that verified one of
    them (`attestation verify`, or an admission by a stage policy)."""
    naming: dict[int, set[str]] = defaultdict(set)
    ordered = sorted(digests)
    for i in range(0, len(ordered), _BATCH):
        batch = ordered[i : i + _BATCH]
        for model in (AttestationSubject, AttestationMaterial):
            # peewee's stubs type .tuples() as the model query it was called on.
            pairs = cast(
                "Iterable[tuple[int, str]]",
                model.select(model.attestation, model.digest)
                .where(model.digest.in_(batch))
                .tuples(),
            )
            for attestation_id, digest in pairs:
                naming[attestation_id].add(digest)
    ids = sorted(naming)
    built: dict[str, set[str]] = defaultdict(set)
    verified: dict[str, set[str]] = defaultdict(set)
    for i in range(0, len(ids), _BATCH):
        batch_ids = ids[i : i + _BATCH]
        keys = queries.verified_by(batch_ids)
        identities = queries.verified_identities(batch_ids)
        rows = cast(
            "Iterable[tuple[int, str | None, str | None, str | None]]",
            Attestation.select(
                Attestation.id, Attestation.project, Attestation.version, Attestation.workflow
            )
            .where(Attestation.id.in_(batch_ids))
            .tuples(),
        )
        for attestation_id, project, version, workflow in rows:
            said = " ".join(v for v in (project, version) if v)
            if workflow:
                said = f"{said} ({workflow})" if said else f"workflow {workflow}"
            for digest in naming[attestation_id]:
                if said:
                    built[digest].add(said)
                verified[digest].update(keys.get(attestation_id, ()))
                verified[digest].update(identities.get(attestation_id, ()))
    return {
        digest: (tuple(sorted(built[digest])), tuple(sorted(verified[digest])))
        for digest in digests
    }


# --- the timeline --------------------------------------------------------------------------


def _timeline(stages: Sequence[str], envs: Sequence[str], since: int, until: int) -> Timeline:
    """Every record active at some instant of [since, until], per slot, as bars."""
    every = queries.SlotFilter()
    records = [
        v
        for v in deployments.select_views(
            [queries.active_at(since, every), queries.started_between(since, until, every)]
        )
        if _selected(v, stages, envs)
    ]
    rollback_of = _rollback_of_successors(records)
    span = max(until - since, 1)
    by_slot: dict[tuple[str, str, str, str], list[DeploymentView]] = defaultdict(list)
    for v in records:
        by_slot[(v.environment, v.logical_environment, v.deployment_name, v.kind)].append(v)
    stage_rank = {name: i for i, name in enumerate(_stage_order({k[1] for k in by_slot}))}
    slots = []
    for key in sorted(by_slot, key=lambda k: (k[0], stage_rank[k[1]], k[2], k[3])):
        ordered = sorted(by_slot[key], key=lambda v: (v.created_at, v.id))
        repository = _repository([v.artifact_ref for v in ordered if v.artifact_ref])
        bars = []
        for i, v in enumerate(ordered):
            start = max(v.created_at, since)
            stop = min(v.ended_at if v.ended_at is not None else until, until)
            x = (start - since) / span * TIMELINE_WIDTH
            width = max((stop - start) / span * TIMELINE_WIDTH, MIN_BAR)
            following = ordered[i + 1].created_at if i + 1 < len(ordered) else None
            bars.append(
                Bar(
                    deployment_id=v.id,
                    digest=v.digest,
                    artifact_ref=v.artifact_ref,
                    ref_tail=v.artifact_ref[len(repository) :] if v.artifact_ref else None,
                    created_at=v.created_at,
                    ended_at=v.ended_at,
                    ended_shown=v.ended_at is not None and v.ended_at != following,
                    start=_start(v),
                    end=_end(v, rollback_of),
                    x=round(min(x, TIMELINE_WIDTH - MIN_BAR), 1),
                    width=round(width, 1),
                )
            )
        slots.append(SlotTimeline(*key, repository=repository, bars=tuple(bars)))
    return Timeline(TIMELINE_WIDTH, _ticks(since, until), tuple(slots), len(records))


def _repository(refs: Sequence[str]) -> str:
    """The prefix all `refs` share, cut after its last `/`, `:` or `@` (a repository, or
    a layout's folder); empty when there is none worth naming."""
    if len(refs) < 2:
        return ""
    # Character by character is meant: references, not paths.
    common = os.path.commonprefix(list(refs))  # noqa: RUF071
    cut = max(common.rfind("/"), common.rfind(":"), common.rfind("@"))
    return common[: cut + 1] if cut > 0 else ""


def _start(v: DeploymentView) -> Start:
    if v.promoted_from is not None:
        return "promoted"
    if v.rollback_of is not None:
        return "restored"
    return "recorded"


def _end(v: DeploymentView, rollback_of: dict[int, int | None]) -> End:
    if v.status == "deployed":
        return "active"
    if v.status == "decommissioned":
        return "decommissioned"
    # Superseded: by a rollback, this is the release that was rolled back.
    assert v.superseded_by is not None
    return "rolled back" if rollback_of.get(v.superseded_by) is not None else "superseded"


def _rollback_of_successors(records: Sequence[DeploymentView]) -> dict[int, int | None]:
    """`rollback_of` of every record that superseded one of `records` (those outside the
    window read by id)."""
    known = {v.id: v.rollback_of for v in records}
    missing = sorted({v.superseded_by for v in records if v.superseded_by is not None} - set(known))
    for i in range(0, len(missing), _BATCH):
        rows = cast(
            "Iterable[tuple[int, int | None]]",
            Deployment.select(Deployment.id, Deployment.rollback_of)
            .where(Deployment.id.in_(missing[i : i + _BATCH]))
            .tuples(),
        )
        known.update(rows)
    return known


# How many parts the time axis is cut into (the template draws the lines between them).
TICKS = 6


def _ticks(since: int, until: int, count: int = TICKS) -> tuple[Tick, ...]:
    """Evenly spaced times along the window: dates, or times of day when it is shorter
    than 3 days, with seconds when shorter than an hour."""
    span = max(until - since, 1)
    ticks = []
    for i in range(count + 1):
        at = since + span * i // count
        text = timeutil.short(at)
        if span >= 3 * DAY_US:
            label = text[:10]
        elif span >= 3_600_000_000:
            label = text[5:16].replace("T", " ")
        else:
            label = text[11:19]
        ticks.append(Tick(round(i / count * TIMELINE_WIDTH, 1), label))
    return tuple(ticks)


# --- metrics -------------------------------------------------------------------------------


def _metrics(store: Store, stage: str, env: str | None, since: int, until: int) -> MetricsPanel:
    """`deploytrack metrics` of one selection, with its two charts."""
    found = compute(
        store,
        MetricsQuery(logical_environment=stage, environment=env, since=since, until=until),
    )
    frequency = found.deployment_frequency
    lead = found.lead_time
    failures = found.change_failure_rate
    recovery = found.recovery_time
    return MetricsPanel(
        logical_environment=stage,
        environment=env,
        since=since,
        until=until,
        interval=found.selection.interval,
        deployments=frequency.count,
        band=frequency.band,
        frequency=_chart(
            [(_interval_label(i.start), i.count) for i in frequency.per_interval],
        ),
        lead_time_count=lead.count,
        lead_time_median_seconds=lead.median_seconds,
        lead_time_p90_seconds=lead.p90_seconds,
        lead_time_from_import=lead.from_import_time,
        lead_time=_chart(_distribution(found.lead_time_samples)),
        failed=failures.failed,
        total=failures.total,
        failure_rate=failures.rate,
        recovery_count=recovery.count,
        recovery_median_seconds=recovery.median_seconds,
    )


def _interval_label(start: Any) -> str:
    """An interval's first day: YYYY-MM-DD, from microseconds or an RFC 3339 string."""
    text = timeutil.short(start) if isinstance(start, int) else str(start)
    return text[:10]


def _distribution(samples: Sequence[int]) -> list[tuple[str, int]]:
    counts = [0] * len(LEAD_TIME_BUCKETS)
    for seconds in samples:
        for i, (bound, _) in enumerate(LEAD_TIME_BUCKETS):
            if bound is None or seconds < bound:
                counts[i] += 1
                break
    return [(label, count) for (_, label), count in zip(LEAD_TIME_BUCKETS, counts, strict=True)]


def _chart(values: Sequence[tuple[str, int]]) -> Chart:
    top = max((v for _, v in values), default=0)
    slot = CHART_WIDTH / max(len(values), 1)
    columns = tuple(
        Column(
            label=label,
            value=value,
            x=round(i * slot + slot * 0.1, 1),
            width=round(slot * 0.8, 1),
            height=round(value / top * CHART_HEIGHT, 1) if top else 0.0,
        )
        for i, (label, value) in enumerate(values)
    )
    return Chart(CHART_WIDTH, CHART_HEIGHT, top, columns)


# --- the event log -------------------------------------------------------------------------


def _log_state(store: Store, progress: Callable[[int], None] | None) -> LogState:
    """`log verify` now, and the checkpoint of the log it verified."""
    from deploytrack.services import log

    report = log.verify(store, progress=progress)
    checkpoint = log.checkpoint(store, None)
    return LogState(
        origin=report.origin,
        size=report.size,
        root=report.root,
        verified=report.ok,
        checks=tuple(LogCheckRow(c.name, c.ok, c.detail, c.problem) for c in report.checks),
        checkpoint=checkpoint.note,
    )


# --- rendering -----------------------------------------------------------------------------

# Control characters (C0 but tab and newline, DEL, C1) and the bidirectional controls that
# could reorder what an auditor reads: shown as escapes, as the CLI's tables show them.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(value: Any) -> Any:
    """A string with its invisible characters written as escapes; anything else as is
    (markup the template made, such as a macro's output, was made of values already
    shown this way)."""
    if not isinstance(value, str) or hasattr(value, "__html__"):
        return value

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

    return _INVISIBLE.sub(escape, value)


def _duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "–"
    return timeutil.age(int(seconds) * 1_000_000)


def _num(value: float) -> str:
    """A coordinate in as few characters as it needs (`12`, `12.5`): 10,000 bars."""
    return f"{value:.1f}".removesuffix(".0")


def render(report: Report) -> str:
    """The report as one HTML document (inline CSS and SVG, no script, nothing fetched)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("deploytrack.services", "templates"),
        # Every value from the database is escaped: a name carrying markup is text.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=visible,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = timeutil.short
    # A bar's hover, to the minute (the table beside it has the seconds): 10,000 bars.
    env.filters["minute"] = lambda us: timeutil.short(us)[:16].replace("T", " ")
    env.filters["short"] = short
    env.filters["duration"] = _duration
    env.filters["duration_us"] = timeutil.age
    env.filters["hex12"] = lambda digest: short(digest).removeprefix("sha256:")
    env.filters["num"] = _num
    return env.get_template("report.html.j2").render(report=report)


def write(
    store: Store,
    path: str,
    logical_environments_selected: Sequence[str] = (),
    environments_selected: Sequence[str] = (),
    since: int | None = None,
    until: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReportResult:
    """Build and render the report, then write it to `path`: a new file, 0600, created
    only once the page is whole (a refusal leaves nothing behind)."""
    from deploytrack.files import create_output

    report = build(
        store,
        logical_environments_selected,
        environments_selected,
        since,
        until,
        progress=progress,
    )
    data = render(report).encode("utf-8")
    with os.fdopen(create_output(path), "wb") as handle:
        handle.write(data)
    return ReportResult(
        path=path,
        bytes=len(data),
        slots=len(report.timeline.slots),
        records=report.timeline.records,
        log_verified=report.log.verified,
        log_size=report.log.size,
        since_at=report.since,
        until_at=report.until,
    )
