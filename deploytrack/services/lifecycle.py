"""Environment lifecycle: status, promote, rollback and diff.

Promote and rollback never write a record themselves: they choose a digest and call
`deployments.record()`, inside the same write transaction as the choice, so superseding,
heartbeats and the stage policy apply exactly as for `deployment record`.
"""

from __future__ import annotations

from deploytrack import timeutil
from deploytrack.digests import short
from deploytrack.services import ServiceError, deployments
from deploytrack.services.catalog import environments, logical_environments
from deploytrack.services.deployments import Slot
from deploytrack.services.views.deployments import DeploymentView
from deploytrack.services.views.lifecycle import (
    ADDED,
    CHANGED,
    REMOVED,
    SAME,
    Change,
    DiffReport,
    DiffRow,
    PromoteResult,
    RollbackResult,
    Selection,
    StatusReport,
    StatusRow,
)
from deploytrack.store import Store, queries
from deploytrack.store.models import Deployment, Environment, LogicalEnvironment

DEFAULT_STALE_AFTER_US = 24 * 3_600 * 1_000_000


def _view(row: Deployment) -> DeploymentView:
    found = deployments.by_id(row.id)
    assert found is not None
    return found


def promote(
    store: Store,
    environment: str,
    deployment_name: str,
    kind: str,
    from_logical_environment: str,
    to_logical_environment: str,
    to_environment: str | None = None,
) -> PromoteResult:
    """Record in (to_environment or environment, to logical environment, name, kind)
    exactly the digest active in (environment, from logical environment, name, kind),
    through `deployments.record()`."""
    target_env = to_environment or environment
    source_slot = Slot(environment, from_logical_environment, deployment_name, kind)
    target_slot = Slot(target_env, to_logical_environment, deployment_name, kind)
    if (target_env, to_logical_environment) == (environment, from_logical_environment):
        raise ServiceError(
            f"cannot promote {source_slot} to itself: give another --to-logical-env or --to-env"
        )
    with store.write():
        env = environments.get(store, environment)
        stage = logical_environments.get(store, from_logical_environment)
        environments.get(store, target_env)
        logical_environments.get(store, to_logical_environment)
        in_source = queries.in_slot(env.id, stage.id, deployment_name, kind)
        source = queries.active_in(in_source)
        if source is None:
            raise ServiceError(
                f"nothing to promote: {source_slot} has no active record (see 'deploytrack "
                f"deployment list --history --env {environment} --logical-env "
                f"{from_logical_environment}')"
            )
        result = deployments.record(
            store,
            target_slot,
            source.digest,
            artifact_ref=source.artifact_ref,
            promoted_from=source.id,
        )
        shown = _view(source)
    return PromoteResult(result.action, result.deployment, result.previous, shown)


def rollback(store: Store, slot: Slot, to_id: int | None = None) -> RollbackResult:
    """Record again an earlier digest of the slot, through `deployments.record()`.

    Without `to_id`: the newest earlier record whose digest differs from the active one,
    or, when the slot was decommissioned, the digest that was decommissioned. With it:
    that record, which must belong to the slot and carry another digest than the active one.
    """
    kind = slot.kind
    with store.write():
        env = environments.get(store, slot.environment)
        stage = logical_environments.get(store, slot.logical_environment)
        of_slot = queries.in_slot(env.id, stage.id, slot.deployment_name, kind)
        active = queries.active_in(of_slot)
        target: Deployment | None
        if to_id is not None:
            target = _chosen(slot, to_id, active, env, stage)
        elif active is None:
            target = queries.newest_in(of_slot)
            if target is None:
                raise ServiceError(f"nothing to roll back: {slot} has no records")
        else:
            target = (
                Deployment.select()
                .where(of_slot & (Deployment.id < active.id) & (Deployment.digest != active.digest))
                .order_by(Deployment.id.desc())
                .first()
            )
            if target is None:
                raise ServiceError(
                    f"nothing to roll back to: no earlier record of {slot} carries another "
                    f"digest than the active one ({short(active.digest)}, deployment "
                    f"{active.id})"
                )
        result = deployments.record(
            store, slot, target.digest, artifact_ref=target.artifact_ref, rollback_of=target.id
        )
        restored = _view(target)
    return RollbackResult(result.action, result.deployment, result.previous, restored)


def _chosen(
    slot: Slot,
    to_id: int,
    active: Deployment | None,
    env: Environment,
    stage: LogicalEnvironment,
) -> Deployment:
    target: Deployment | None = (
        Deployment.select(Deployment, Environment, LogicalEnvironment)
        .join_from(Deployment, Environment)
        .join_from(Deployment, LogicalEnvironment)
        .where(Deployment.id == to_id)
        .first()
    )
    if target is None:
        raise ServiceError(
            f"no deployment record {to_id}: see 'deploytrack deployment list --history'"
        )
    target_slot = (
        target.environment.id,
        target.logical_environment.id,
        target.deployment_name,
        target.kind,
    )
    if target_slot != (env.id, stage.id, slot.deployment_name, slot.kind):
        other = Slot(
            target.environment.name,
            target.logical_environment.name,
            target.deployment_name,
            target.kind,
        )
        raise ServiceError(
            f"deployment {to_id} belongs to another slot ({other}): --to takes an earlier "
            f"record of {slot}"
        )
    if active is not None and target.id == active.id:
        raise ServiceError(
            f"deployment {to_id} is the active record of {slot}: nothing to roll back"
        )
    if active is not None and target.digest == active.digest:
        raise ServiceError(
            f"deployment {to_id} carries {short(target.digest)}, which already runs in {slot} "
            f"(deployment {active.id}): nothing to roll back"
        )
    return target


def status(
    store: Store,
    environment: str | None = None,
    logical_environment: str | None = None,
    stale_after: int = DEFAULT_STALE_AFTER_US,
    now: int | None = None,
) -> StatusReport:
    """Every active deployment, by environment and logical environment; stale when its last
    heartbeat is more than `stale_after` microseconds old."""
    if stale_after < 0:
        raise ServiceError("--stale-after must not be negative")
    with store.read():
        slot = deployments.slot_filter(store, environment, logical_environment)
        views = deployments.select_views([queries.active_now(slot)])
    now = timeutil.now_us() if now is None else now
    rows = [
        StatusRow(
            environment=v.environment,
            logical_environment=v.logical_environment,
            deployment_name=v.deployment_name,
            kind=v.kind,
            digest=v.digest,
            deployed_at=v.created_at,
            last_seen_at=v.last_seen_at,
            stale=now - v.last_seen_at > stale_after,
        )
        for v in views
    ]
    rows.sort(key=lambda r: (r.environment, r.logical_environment, r.deployment_name, r.kind))
    return StatusReport(now, stale_after, tuple(rows))


def _selected(store: Store, side: Selection) -> list[DeploymentView]:
    slot = deployments.slot_filter(store, side.environment, side.logical_environment)
    condition = queries.active_now(slot) if side.at is None else queries.active_at(side.at, slot)
    return deployments.select_views([condition])


def _shown(source: str | None, target: str | None) -> str:
    """The environment (or logical environment) of a row: the one of the side(s) where it runs; when
    both sides run it in different ones (a fixed side of each), `FROM->TO`."""
    if source is None or target is None or source == target:
        return source or target or ""
    return f"{source}->{target}"


def diff(store: Store, source: Selection, target: Selection) -> DiffReport:
    """Compare the active deployments of two selections (see docs/lifecycle.md).

    An omitted `target` environment or logical environment takes the `source` value; an
    omitted time is now on either side (the natural reading of `--from-at 1d`: from then to
    now). Rows are matched on deployment name and kind, plus environment when the source
    does not fix one, plus the logical environment when the source does not fix one (a
    target can fix one only if the source does too, or it is compared against every value
    of the source).
    """
    target = Selection(
        target.environment or source.environment,
        target.logical_environment or source.logical_environment,
        target.at,
    )
    by_env = source.environment is None
    by_stage = source.logical_environment is None

    def match(v: DeploymentView) -> tuple[str, ...]:
        parts: tuple[str, ...] = (v.deployment_name, v.kind)
        if by_env:
            parts += (v.environment,)
        if by_stage:
            parts += (v.logical_environment,)
        return parts

    with store.read():
        before = {match(v): v for v in _selected(store, source)}
        after = {match(v): v for v in _selected(store, target)}
    rows = []
    for k in sorted(before.keys() | after.keys()):
        old, new = before.get(k), after.get(k)
        change: Change
        if old is None:
            change = ADDED
        elif new is None:
            change = REMOVED
        else:
            change = SAME if old.digest == new.digest else CHANGED
        either = new or old
        assert either is not None
        rows.append(
            DiffRow(
                deployment_name=either.deployment_name,
                kind=either.kind,
                environment=_shown(old and old.environment, new and new.environment),
                logical_environment=_shown(
                    old and old.logical_environment, new and new.logical_environment
                ),
                from_digest=old.digest if old else None,
                to_digest=new.digest if new else None,
                change=change,
            )
        )
    return DiffReport(source, target, tuple(rows))


__all__ = [
    "DEFAULT_STALE_AFTER_US",
    "DiffReport",
    "DiffRow",
    "PromoteResult",
    "RollbackResult",
    "Selection",
    "StatusReport",
    "StatusRow",
    "diff",
    "promote",
    "rollback",
    "status",
]
