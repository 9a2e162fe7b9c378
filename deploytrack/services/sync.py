"""`deployment sync`: what a cluster was seen running becomes what `deployment record` would
do with it, for every observed artifact at once.

The observations come from the pure parsers of `deploytrack.observe` (kubectl, helm,
CDEvents); this module holds the rules, the same for every source. Each observation goes
through `deployments.record()` (evidence required, stage policy, heartbeat, supersede),
with `source` observed, inside a savepoint of the one transaction of the sync: a refusal
rolls back that observation alone and becomes its outcome, so one bad entry never aborts
the run. A dry run does exactly the same work and rolls the whole transaction back, so
its plan is what a real run would do, refusals and supersedings included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from deploytrack.digests import short
from deploytrack.services import ServiceError, deployments, validate
from deploytrack.services.catalog import environments, logical_environments
from deploytrack.services.deployments import DECOMMISSIONED, OBSERVED, Slot
from deploytrack.services.views.sync import SyncResult, SyncRow
from deploytrack.store import Store, queries
from deploytrack.store.models import Deployment

if TYPE_CHECKING:
    from deploytrack.observe import Observed
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.services.charts import ChartMatch
    from deploytrack.services.views.deployments import Kind
    from deploytrack.services.views.sync import Outcome

# How a chart release (name, version) becomes a digest: services/charts.py's lookup, in
# the evidence store or (--chart-repo) the registry. Its ChartMatch says the outcome of a
# release it cannot give one digest for: `unattested` (nothing names the chart) or
# `skipped` (several digests do, or the registry could not answer), with the reason.
ChartResolver = Callable[[str, str], "ChartMatch"]

UNATTESTED = "no attestation names this digest: import one that does, then sync again"


class _DryRun(Exception):
    """Raised inside the sync's transaction to roll it back with its result."""

    def __init__(self, result: SyncResult) -> None:
        super().__init__("dry run")
        self.result = result


def sync(
    store: Store,
    environment: str | None,
    logical_environment: str,
    observed: list[Observed],
    *,
    prune: bool = False,
    dry_run: bool = False,
    resolve_chart: ChartResolver | None = None,
    progress: Callable[[int], None] | None = None,
) -> SyncResult:
    """Apply `observed` to (environment, logical environment) in one transaction;
    `progress(1)` after each observed artifact (len(observed) in all).

    `environment` may be None only when every observation names its own (CDEvents with
    --env-from-event); an observation's own environment wins. With `prune`, the records
    of (environment, logical environment) active before the sync and not observed are
    decommissioned: a snapshot (kubectl, helm) says everything that runs; a stream of
    events (observations with a time) does not, and cannot prune.

    Refused with nothing written: an environment or logical environment that does not
    exist, and two observations of one snapshot that name the same slot (a name template
    that maps two artifacts to one name).
    """
    events = any(obs.time is not None for obs in observed)
    if prune and events:
        raise ServiceError(
            "--prune needs a snapshot of everything that runs (kubectl, helm): events say "
            "only what changed"
        )
    if prune and environment is None:
        raise ServiceError("--prune needs --env: the environment whose records it may end")
    if not events:
        _refuse_collisions(observed, environment)
    try:
        # Every change is named by record()'s own events, in the savepoints below.
        with store.write():
            result = _apply(
                store,
                environment,
                logical_environment,
                observed,
                prune,
                dry_run,
                resolve_chart,
                progress,
            )
            if dry_run:
                raise _DryRun(result)
            return result
    except _DryRun as planned:
        return planned.result


def _refuse_collisions(observed: list[Observed], environment: str | None) -> None:
    """Two observations of one snapshot in one slot: the name template is not unique."""
    seen: dict[tuple[str | None, str, str], Observed] = {}
    for obs in observed:
        if obs.skip is not None or obs.deployment_name is None:
            continue
        key = (obs.environment or environment, obs.deployment_name, obs.kind)
        first = seen.setdefault(key, obs)
        if first is not obs:
            raise ServiceError(
                f"two observed artifacts map to deployment name {obs.deployment_name!r} "
                f"({obs.kind}): {_where(first)} and {_where(obs)}; give a --name-template "
                "that tells them apart (e.g. with {namespace} and {container})"
            )


def _where(obs: Observed) -> str:
    """An observation's source in a message: `namespace=shop workload=web ...`."""
    parts = [f"{k}={v}" for k, v in obs.source.items() if isinstance(v, (str, int))]
    return " ".join(parts)[:200] or "(no source)"


def _apply(
    store: Store,
    environment: str | None,
    logical_environment: str,
    observed: list[Observed],
    prune: bool,
    dry_run: bool,
    resolve_chart: ChartResolver | None,
    progress: Callable[[int], None] | None,
) -> SyncResult:
    """The sync inside its transaction."""
    stage = logical_environments.get(store, logical_environment)
    env = environments.get(store, environment) if environment is not None else None
    # Active records before the sync: what --prune may end.
    before: dict[tuple[str, str], Deployment] = {}
    if prune and env is not None:
        for row in Deployment.select().where(
            (Deployment.environment == env.id)
            & (Deployment.logical_environment == stage.id)
            & (Deployment.status == "deployed")
        ):
            before[(row.deployment_name, row.kind)] = row
    rows: list[SyncRow] = []
    seen: set[tuple[str, str]] = set()
    known_envs: dict[str, bool] = {}
    for obs in observed:
        where = obs.environment or environment
        if obs.deployment_name is not None and where == environment:
            seen.add((obs.deployment_name, obs.kind))
        rows.append(_one(store, obs, where, logical_environment, resolve_chart, known_envs))
        if progress is not None:
            progress(1)
    for (name, kind), row in sorted(before.items()):
        if (name, kind) in seen:
            continue
        assert environment is not None
        slot = Slot(environment, logical_environment, name, kind)
        ended = deployments.record(store, slot, row.digest, status=DECOMMISSIONED)
        rows.append(
            SyncRow(
                outcome="decommissioned",
                deployment_name=name,
                kind=cast("Kind", kind),
                digest=row.digest,
                reason="not observed (--prune)",
                source={"deployment_id": row.id},
                environment=environment,
                deployment_id=ended.deployment.id,
            )
        )
    return SyncResult(environment, logical_environment, dry_run, tuple(rows))


def _one(
    store: Store,
    obs: Observed,
    environment: str | None,
    logical_environment: str,
    resolve_chart: ChartResolver | None,
    known_envs: dict[str, bool],
) -> SyncRow:
    """One observation's outcome; its changes, if any, in a savepoint of its own."""

    def row(
        outcome: Outcome,
        reason: str | None = None,
        digest: str | None = obs.digest,
        deployment_id: int | None = None,
    ) -> SyncRow:
        return SyncRow(
            outcome=outcome,
            deployment_name=obs.deployment_name,
            kind=obs.kind,
            digest=digest,
            reason=reason,
            source=obs.source,
            environment=environment,
            deployment_id=deployment_id,
            warning=obs.warning,
        )

    if obs.skip is not None:
        return row("skipped", obs.skip)
    if obs.deployment_name is None:
        return row("skipped", "no deployment name")
    try:
        validate.deployment_name(obs.deployment_name)
        validate.kind(obs.kind)
    except ServiceError as exc:
        return row("skipped", str(exc))
    if environment is None:
        return row("skipped", "the event names no environment: give --env")
    if environment not in known_envs:
        known_envs[environment] = (
            environments.model.get_or_none(environments.model.name == environment) is not None
        )
    if not known_envs[environment]:
        return row(
            "skipped",
            f"environment {environment!r} does not exist: create it with 'deploytrack "
            "environment create'",
        )
    slot = Slot(environment, logical_environment, obs.deployment_name, obs.kind)
    if obs.action == "decommission":
        return _decommission(store, slot, row)

    digest = obs.digest
    if digest is None and obs.chart is not None:
        if resolve_chart is None:
            return row("skipped", "no digest, and no way to find the chart's (a helm input)")
        match = resolve_chart(*obs.chart)
        if match.digest is None:
            return row("skipped" if match.outcome == "skipped" else "unattested", match.reason)
        digest = match.digest
    if digest is None:
        return row("skipped", "no digest")
    try:
        digest = validate.sha256(digest)
    except ServiceError as exc:
        return row("skipped", str(exc), digest=digest)
    try:
        # record()'s transaction is a savepoint of the sync's: a refusal rolls back this
        # observation alone.
        result = deployments.record(
            store, slot, digest, artifact_ref=obs.artifact_ref, source=OBSERVED
        )
    except deployments.NotInEvidence:
        # The digest is in its own column: the reason says what to do.
        return row("unattested", UNATTESTED, digest=digest)
    except ServiceError as exc:
        return row("refused", str(exc), digest=digest)
    outcome = cast("Outcome", result.action)
    reason = None
    if result.previous is not None:
        reason = f"supersedes deployment {result.previous.id} ({short(result.previous.digest)})"
    return row(outcome, reason, digest=digest, deployment_id=result.deployment.id)


def _decommission(store: Store, slot: Slot, row: Callable[..., SyncRow]) -> SyncRow:
    """A removal (CDEvents service.removed): end whatever the slot runs."""
    env = environments.get(store, slot.environment)
    stage = logical_environments.get(store, slot.logical_environment)
    of_slot = queries.in_slot(env.id, stage.id, slot.deployment_name, slot.kind)
    active = queries.active_in(of_slot)
    if active is None:
        newest = queries.newest_in(of_slot)
        if newest is not None:
            return row("skipped", "already decommissioned", digest=newest.digest)
        return row("skipped", "nothing is deployed there to decommission")
    result = deployments.record(store, slot, active.digest, status=DECOMMISSIONED)
    return row(
        "decommissioned",
        "removed",
        digest=active.digest,
        deployment_id=result.deployment.id,
    )


def chart_resolver(
    store: Store, chart_repo: str | None, registry: RegistryOptions | None
) -> ChartResolver:
    """How `deployment sync --from-helm` finds a release's chart digest: by the evidence
    store, or with `chart_repo` through the registry (services/charts.py)."""
    from deploytrack.services import charts

    return charts.chart_resolver(store, chart_repo, registry)
