"""Deployment records: record (with superseding and heartbeats), decommission, list, describe.

A slot is (environment, logical environment, deployment name, kind). At most one record
per slot is `deployed`; the schema enforces it with a partial unique index. Records are
history: only status, ended_at, superseded_by and last_seen_at ever change, and only
while a record is active (a trigger enforces that too).
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from deploytrack import timeutil
from deploytrack.services import ServiceError, validate
from deploytrack.services.catalog import environments, logical_environments
from deploytrack.services.views.deployments import DeploymentView, RecordResult
from deploytrack.store import Store, queries
from deploytrack.store.models import Deployment, Environment, LogicalEnvironment

if TYPE_CHECKING:
    from collections.abc import Callable

    from peewee import Expression

    from deploytrack.services.views.deployments import Kind, Source, Status
    from deploytrack.services.views.detail import DeploymentDetail

DEPLOYED = "deployed"
SUPERSEDED = "superseded"
DECOMMISSIONED = "decommissioned"
DECLARED = "declared"
OBSERVED = "observed"


class NotInEvidence(ServiceError):
    """record()'s refusal of a digest no attestation names: `deployment sync` reports it as
    the outcome `unattested`, apart from the refusals of a stage policy."""


# Inputs are NamedTuples (immutable, typed, and ~0.1 ms to define where a frozen
# dataclass takes ~0.7 ms): this module is on the path of every `deployment record`.
class Slot(NamedTuple):
    environment: str
    logical_environment: str
    deployment_name: str
    kind: str

    def __str__(self) -> str:
        return (
            f"{self.deployment_name} ({self.kind}) in {self.environment}/{self.logical_environment}"
        )


def _view(row: Deployment, environment: str, logical_environment: str) -> DeploymentView:
    return DeploymentView(
        id=row.id,
        environment=environment,
        logical_environment=logical_environment,
        deployment_name=row.deployment_name,
        # The schema's CHECKs hold these columns to the Literal types' values.
        kind=cast("Kind", row.kind),
        digest=row.digest,
        artifact_ref=row.artifact_ref,
        status=cast("Status", row.status),
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        ended_at=row.ended_at,
        superseded_by=row.superseded_by,
        policy_id=row.policy_id,
        promoted_from=row.promoted_from,
        rollback_of=row.rollback_of,
        source=cast("Source", row.source),
    )


def joined_view(row: Deployment) -> DeploymentView:
    """The view of a row read through `queries.with_names()`."""
    return _view(row, row.environment.name, row.logical_environment.name)


def record(
    store: Store,
    slot: Slot,
    digest: str,
    *,
    artifact_ref: str | None = None,
    status: str = DEPLOYED,
    promoted_from: int | None = None,
    rollback_of: int | None = None,
    source: str = DECLARED,
) -> RecordResult:
    """Record that `digest` runs at `slot` (or, with status decommissioned, that it stopped).

    `promoted_from` / `rollback_of` (lineage: promote, rollback) and `source` (declared,
    or observed by `deployment sync`) are stored on the record this call creates; a
    heartbeat keeps the active record as it is.
    """
    validate.kind(slot.kind)
    validate.deployment_name(slot.deployment_name)
    digest = validate.sha256(digest)
    if status == DECOMMISSIONED and (promoted_from is not None or rollback_of is not None):
        raise ServiceError("a decommissioning is neither a promotion nor a rollback")

    with store.write() as log:
        result = _record(
            store, slot, digest, artifact_ref, status, promoted_from, rollback_of, source
        )
        if result.action in ("created", "superseded"):
            if promoted_from is not None:
                log.log("deployment.promoted")
            elif rollback_of is not None:
                log.log("deployment.rolled_back")
            elif result.action == "created":
                log.log("deployment.recorded")
            else:
                log.log("deployment.superseded")
        elif result.action == "heartbeat":
            log.log("deployment.heartbeat")
        elif result.action == "decommissioned":
            log.log("deployment.decommissioned")
        return result


def _record(
    store: Store,
    slot: Slot,
    digest: str,
    artifact_ref: str | None,
    status: str,
    promoted_from: int | None,
    rollback_of: int | None,
    source: str = DECLARED,
) -> RecordResult:
    """record()'s rules, inside its transaction."""
    env = environments.get(store, slot.environment)
    stage = logical_environments.get(store, slot.logical_environment)
    if not queries.digest_in_evidence(digest):
        raise NotInEvidence(f"{digest} {validate.NOT_IN_EVIDENCE}")
    # Taken under the write lock, so times follow commit order across processes.
    now = timeutil.now_us()
    of_slot = queries.in_slot(env.id, stage.id, slot.deployment_name, slot.kind)
    active = queries.active_of(env.id, stage.id, slot.deployment_name, slot.kind)

    def view(row: Deployment) -> DeploymentView:
        return _view(row, env.name, stage.name)

    if status == DECOMMISSIONED:
        return _decommission(slot, digest, of_slot, active, now, view)

    if active is not None and active.digest == digest:
        seen = max(now, active.last_seen_at)
        Deployment.update(last_seen_at=seen).where(Deployment.id == active.id).execute()
        active.last_seen_at = seen
        return RecordResult("heartbeat", view(active))

    # The stage policy gate: a new admission, so it must satisfy the policy in
    # force, verified now from the stored evidence; refused, nothing is written.
    # Heartbeats and decommissioning (above) are not admissions and are never blocked.
    decision = None
    if queries.policy_in_force(stage.id) is not None:
        # Only a logical environment with a policy pays for loading the gate (evidence, keys).
        from deploytrack.services import policies

        decision = policies.admit(stage, digest)
    # The successor's id is known before it exists: the active record must point at it
    # when it stops being `deployed` (the partial unique index allows one at a time).
    new_id = queries.next_record_id()
    previous = None
    if active is None:
        # Records of a slot never overlap in time, even when the clock stepped
        # back after a decommissioning (point-in-time queries rely on it).
        newest = (
            Deployment.select(Deployment.ended_at)
            .where(of_slot)
            .order_by(Deployment.id.desc())
            .limit(1)
            .scalar()
        )
        now = max(now, newest or now)
    else:
        now = max(now, active.last_seen_at)
        Deployment.update(status=SUPERSEDED, ended_at=now, superseded_by=new_id).where(
            Deployment.id == active.id
        ).execute()
        previous = queries.record_by_id(active.id)
    Deployment.insert(
        id=new_id,
        environment=env.id,
        logical_environment=stage.id,
        deployment_name=slot.deployment_name,
        kind=slot.kind,
        digest=digest,
        artifact_ref=artifact_ref,
        status=DEPLOYED,
        created_at=now,
        last_seen_at=now,
        policy_id=decision.policy.id if decision is not None and decision.policy else None,
        promoted_from=promoted_from,
        rollback_of=rollback_of,
        source=source,
    ).execute()
    if decision is not None:
        policies.remember_admission(new_id, decision, now)
    created = queries.record_by_id(new_id)
    if previous is None:
        return RecordResult("created", view(created))
    return RecordResult("superseded", view(created), view(previous))


def decommission(store: Store, slot: Slot) -> RecordResult:
    """Decommission whatever the slot runs, without naming its digest.

    The digest is read from the slot and handed to `record()`, in the same transaction, so
    the rule is record's own: the active record ends; a slot whose last record is already
    decommissioned is `unchanged`. A slot that never ran anything is refused.
    """
    with store.write():
        env = environments.get(store, slot.environment)
        stage = logical_environments.get(store, slot.logical_environment)
        of_slot = queries.in_slot(env.id, stage.id, slot.deployment_name, slot.kind)
        newest = queries.newest_in(of_slot)
        if newest is None:
            raise ServiceError(
                f"nothing to decommission: {slot} has no records (see 'deploytrack deployment "
                f"list --env {slot.environment} --logical-env {slot.logical_environment}')"
            )
        return record(store, slot, newest.digest, status=DECOMMISSIONED)


def _decommission(
    slot: Slot,
    digest: str,
    of_slot: Expression,
    active: Deployment | None,
    now: int,
    view: Callable[[Deployment], DeploymentView],
) -> RecordResult:
    if active is not None and active.digest == digest:
        ended = max(now, active.last_seen_at)
        Deployment.update(status=DECOMMISSIONED, ended_at=ended).where(
            Deployment.id == active.id
        ).execute()
        return RecordResult("decommissioned", view(queries.record_by_id(active.id)))
    newest = queries.newest_in(of_slot)
    if (
        active is None
        and newest is not None
        and newest.status == DECOMMISSIONED
        and newest.digest == digest
    ):
        return RecordResult("unchanged", view(newest))
    if active is not None:
        raise ServiceError(
            f"cannot decommission {digest} from {slot}: the active record carries "
            f"{active.digest}; give that digest"
        )
    raise ServiceError(f"cannot decommission {digest} from {slot}: nothing is deployed there")


class ListFilter(NamedTuple):
    environment: str | None = None
    logical_environment: str | None = None
    deployment_name: str | None = None
    kind: str | None = None
    digest: str | None = None
    history: bool = False
    limit: int | None = None
    # Point in time (microseconds). `at`: what was active at that instant.
    # `since`/`until`: the history of records active at some instant of the window.
    at: int | None = None
    since: int | None = None
    until: int | None = None


def slot_filter(
    store: Store,
    environment: str | None = None,
    logical_environment: str | None = None,
    deployment_name: str | None = None,
    kind: str | None = None,
) -> queries.SlotFilter:
    """Names to ids (unknown names refused), for the point-in-time queries. In a read."""
    return queries.SlotFilter(
        environment_id=(
            environments.get(store, environment).id if environment is not None else None
        ),
        logical_environment_id=(
            logical_environments.get(store, logical_environment).id
            if logical_environment is not None
            else None
        ),
        deployment_name=deployment_name,
        kind=validate.kind(kind) if kind is not None else None,
    )


_VIEW_FIELDS = DeploymentView._fields


def select_views(conditions: list[Any], limit: int | None = None) -> list[DeploymentView]:
    """Records matching any of `conditions` (disjoint sets), newest first. In a read.

    Rows are read as plain dicts, not models: three times faster on the ten thousand
    active records of a big estate. The view's fields are the columns' names, except the
    environment and logical environment, which are names instead of ids (`_view` gives the
    same views).
    """
    parts = []
    for condition in conditions:
        query = queries.newest_first(
            Deployment.select(
                Deployment,
                Environment.name.alias("environment_name"),
                LogicalEnvironment.name.alias("logical_environment_name"),
            )
            .join_from(Deployment, Environment)
            .join_from(Deployment, LogicalEnvironment)
            .where(condition)
        )
        if limit is not None:
            query = query.limit(limit)
        views = []
        for row in query.dicts():
            row["environment"] = row.pop("environment_name")
            row["logical_environment"] = row.pop("logical_environment_name")
            views.append(DeploymentView(**{name: row[name] for name in _VIEW_FIELDS}))
        parts.append(views)
    merged = heapq.merge(*parts, key=lambda v: (v.created_at, v.id), reverse=True)
    return list(itertools.islice(merged, limit))


def by_id(deployment_id: int) -> DeploymentView | None:
    """One record with its names, or None."""
    row = queries.with_names().where(Deployment.id == deployment_id).first()
    return joined_view(row) if row is not None else None


def list_deployments(store: Store, flt: ListFilter) -> list[DeploymentView]:
    """Active records (or all, with history), newest first.

    Point in time: a record is active at T when it was created at or before T and had not
    ended at or before T. `at`: the records active at T. `since`/`until` (history): every
    record active at some instant of [since, until] — created at or before `until`, and
    not ended at or before `since` — so `since = until = T` is `at = T` with history.
    """
    windowed = flt.since is not None or flt.until is not None
    if flt.at is not None and (flt.history or windowed):
        raise ServiceError(
            "--at lists what was active at one instant: it does not combine with --history, "
            "--since or --until"
        )
    if flt.since is not None and flt.until is not None and flt.since > flt.until:
        raise ServiceError("--since is after --until: give a window that ends after it starts")
    with store.read():
        slot = slot_filter(
            store, flt.environment, flt.logical_environment, flt.deployment_name, flt.kind
        )
        digest = None
        if flt.digest is not None:
            # Not on the path of a plain `deployment list`: only a digest filter pays for it.
            from deploytrack.services.evidence import resolve_digest

            wanted = resolve_digest(flt.digest, [Deployment.digest], "deployed digests")
            if wanted is None:
                return []
            digest = Deployment.digest == wanted
        if flt.at is not None:
            conditions = [queries.active_at(flt.at, slot)]
        elif flt.since is not None:
            # Active at `since`, or started inside (since, until]: two disjoint sets, each
            # read through an index (see store/queries.py).
            conditions = [
                queries.active_at(flt.since, slot),
                queries.started_between(flt.since, flt.until, slot),
            ]
        elif flt.until is not None or flt.history:
            conditions = [queries.started_between(None, flt.until, slot)]
        else:
            conditions = [queries.active_now(slot)]
        if digest is not None:
            conditions = [c & digest for c in conditions]
        return select_views(conditions, flt.limit)


def describe(store: Store, deployment_id: int) -> DeploymentDetail:
    with store.read():
        row = queries.with_names().where(Deployment.id == deployment_id).first()
        if row is None:
            raise ServiceError(
                f"no deployment record {deployment_id}: see 'deploytrack deployment list --history'"
            )
        return _detail(row)


# How many records a refusal of `describe --digest` names (one line stays readable).
_SHOWN_RECORDS = 5


def describe_digest(store: Store, digest: str) -> DeploymentDetail:
    """The record that runs `digest` (a whole digest or a unique prefix of 8+ hex digits).

    What a user asks with a digest is "where does this run": the one active record of the
    digest. Several active records (the same release in staging and production), or none
    (it ran once, but runs nowhere now), are refused with the records' ids, newest first,
    so the user can pick one with `deployment describe ID`.
    """
    from deploytrack.services.evidence import resolve_digest

    with store.read():
        wanted = resolve_digest(digest, [Deployment.digest], "deployed digests")
        if wanted is None:
            raise ServiceError(
                f"no deployment record carries a digest starting with {digest.strip()[:80]!r}: "
                "see 'deploytrack deployment list --history'"
            )
        of_digest = Deployment.digest == wanted
        active = list(
            queries.newest_first(
                queries.with_names().where(of_digest & (Deployment.status == DEPLOYED))
            ).limit(_SHOWN_RECORDS + 1)
        )
        if len(active) == 1:
            return _detail(active[0])
        if active:
            count = Deployment.select().where(of_digest & (Deployment.status == DEPLOYED)).count()
            raise ServiceError(
                f"{wanted} runs in {count} slots: {_records(active, count)}; describe one "
                "with 'deploytrack deployment describe ID'"
            )
        ended = list(
            queries.newest_first(queries.with_names().where(of_digest)).limit(_SHOWN_RECORDS + 1)
        )
        if not ended:
            raise ServiceError(
                f"no deployment record carries {wanted}: see 'deploytrack discover {wanted}'"
            )
        count = Deployment.select().where(of_digest).count()
        raise ServiceError(
            f"{wanted} runs nowhere now; its {count} earlier record(s): "
            f"{_records(ended, count)}; describe one with 'deploytrack deployment describe ID'"
        )


def _records(rows: list[Deployment], count: int) -> str:
    shown = ", ".join(
        f"{row.id} ({row.deployment_name} ({row.kind}) in "
        f"{row.environment.name}/{row.logical_environment.name}, {row.status})"
        for row in rows[:_SHOWN_RECORDS]
    )
    more = count - _SHOWN_RECORDS
    return shown + (f" and {more} more" if more > 0 else "")


def _detail(row: Deployment) -> DeploymentDetail:
    """A record with its neighbours, evidence and admission."""
    from deploytrack.services import evidence, policies
    from deploytrack.services.views.detail import DeploymentDetail

    predecessor = Deployment.select(Deployment.id).where(Deployment.superseded_by == row.id).first()
    return DeploymentDetail(
        deployment=joined_view(row),
        supersedes=predecessor.id if predecessor else None,
        attestations=tuple(evidence.attestations_naming(row.digest)),
        policy=policies.get_policy(row.policy_id) if row.policy_id is not None else None,
        admission=policies.admission_of(row.id),
    )
