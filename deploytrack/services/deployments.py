"""Deployment records: record (with superseding and heartbeats), decommission, list, describe.

A key is (environment, logical environment, deployment name, kind). At most one record
per key is `deployed`; the schema enforces it with a partial unique index. Records are
history: only status, ended_at, superseded_by and last_seen_at ever change, and only
while a record is active (a trigger enforces that too).
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import fn

from deploytrack import timeutil
from deploytrack.services import ServiceError, evidence, validate
from deploytrack.services.catalog import environments, logical_environments
from deploytrack.services.views import (
    DeploymentDetail,
    DeploymentView,
    RecordResult,
)
from deploytrack.store import Store
from deploytrack.store.models import Deployment, Environment, LogicalEnvironment

DEPLOYED = "deployed"
SUPERSEDED = "superseded"
DECOMMISSIONED = "decommissioned"


@dataclass(frozen=True)
class Key:
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
        kind=row.kind,
        digest=row.digest,
        artifact_ref=row.artifact_ref,
        status=row.status,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        ended_at=row.ended_at,
        superseded_by=row.superseded_by,
    )


def _joined():
    return (
        Deployment.select(Deployment, Environment, LogicalEnvironment)
        .join_from(Deployment, Environment)
        .join_from(Deployment, LogicalEnvironment)
    )


def _joined_view(row: Deployment) -> DeploymentView:
    return _view(row, row.environment.name, row.logical_environment.name)


def record(
    store: Store,
    key: Key,
    digest: str,
    *,
    artifact_ref: str | None = None,
    status: str = DEPLOYED,
) -> RecordResult:
    """Record that `digest` runs at `key` (or, with status decommissioned, that it stopped)."""
    validate.kind(key.kind)
    validate.deployment_name(key.deployment_name)
    digest = validate.sha256(digest)
    if status not in validate.STATUSES:
        raise ServiceError(f"invalid status {status!r}: use deployed or decommissioned")

    with store.write():
        env = environments.get(store, key.environment)
        stage = logical_environments.get(store, key.logical_environment)
        if not evidence.is_known(digest):
            raise ServiceError(
                f"{digest} is not in the evidence store: import an attestation that names it "
                "first ('deploytrack attestation import FILE')"
            )
        # Taken under the write lock, so times follow commit order across processes.
        now = timeutil.now_us()
        in_key = (
            (Deployment.environment == env.id)
            & (Deployment.logical_environment == stage.id)
            & (Deployment.deployment_name == key.deployment_name)
            & (Deployment.kind == key.kind)
        )
        active = Deployment.get_or_none(in_key & (Deployment.status == DEPLOYED))

        def view(row: Deployment) -> DeploymentView:
            return _view(row, env.name, stage.name)

        if status == DECOMMISSIONED:
            return _decommission(key, digest, in_key, active, now, view)

        if active is not None and active.digest == digest:
            seen = max(now, active.last_seen_at)
            Deployment.update(last_seen_at=seen).where(Deployment.id == active.id).execute()
            active.last_seen_at = seen
            return RecordResult("heartbeat", view(active))

        # The successor's id is known before it exists: the active record must point at it
        # when it stops being `deployed` (the partial unique index allows one at a time).
        new_id = (Deployment.select(fn.MAX(Deployment.id)).scalar() or 0) + 1
        previous = None
        if active is not None:
            now = max(now, active.last_seen_at)
            Deployment.update(status=SUPERSEDED, ended_at=now, superseded_by=new_id).where(
                Deployment.id == active.id
            ).execute()
            previous = Deployment.get_by_id(active.id)
        Deployment.insert(
            id=new_id,
            environment=env.id,
            logical_environment=stage.id,
            deployment_name=key.deployment_name,
            kind=key.kind,
            digest=digest,
            artifact_ref=artifact_ref,
            status=DEPLOYED,
            created_at=now,
            last_seen_at=now,
        ).execute()
        created = Deployment.get_by_id(new_id)
        if previous is None:
            return RecordResult("created", view(created))
        return RecordResult("superseded", view(created), view(previous))


def _decommission(key, digest, in_key, active, now, view) -> RecordResult:
    if active is not None and active.digest == digest:
        ended = max(now, active.last_seen_at)
        Deployment.update(status=DECOMMISSIONED, ended_at=ended).where(
            Deployment.id == active.id
        ).execute()
        return RecordResult("decommissioned", view(Deployment.get_by_id(active.id)))
    newest = Deployment.select().where(in_key).order_by(Deployment.id.desc()).first()
    if (
        active is None
        and newest is not None
        and newest.status == DECOMMISSIONED
        and newest.digest == digest
    ):
        return RecordResult("unchanged", view(newest))
    if active is not None:
        raise ServiceError(
            f"cannot decommission {digest} from {key}: the active record carries "
            f"{active.digest}; give that digest"
        )
    raise ServiceError(f"cannot decommission {digest} from {key}: nothing is deployed there")


@dataclass(frozen=True)
class ListFilter:
    environment: str | None = None
    logical_environment: str | None = None
    deployment_name: str | None = None
    kind: str | None = None
    digest: str | None = None
    history: bool = False
    limit: int | None = None


def list_deployments(store: Store, flt: ListFilter) -> list[DeploymentView]:
    """Active records (or all, with history), newest first."""
    with store.read():
        query = _joined()
        if flt.environment is not None:
            env = environments.get(store, flt.environment)
            query = query.where(Deployment.environment == env.id)
        if flt.logical_environment is not None:
            stage = logical_environments.get(store, flt.logical_environment)
            query = query.where(Deployment.logical_environment == stage.id)
        if flt.deployment_name is not None:
            query = query.where(Deployment.deployment_name == flt.deployment_name)
        if flt.kind is not None:
            query = query.where(Deployment.kind == validate.kind(flt.kind))
        if flt.digest is not None:
            query = query.where(Deployment.digest == validate.sha256(flt.digest))
        if not flt.history:
            query = query.where(Deployment.status == DEPLOYED)
        query = query.order_by(Deployment.created_at.desc(), Deployment.id.desc())
        if flt.limit is not None:
            query = query.limit(flt.limit)
        return [_joined_view(row) for row in query]


def describe(store: Store, deployment_id: int) -> DeploymentDetail:
    with store.read():
        row = _joined().where(Deployment.id == deployment_id).first()
        if row is None:
            raise ServiceError(
                f"no deployment record {deployment_id}: see 'deploytrack deployment list --history'"
            )
        predecessor = (
            Deployment.select(Deployment.id).where(Deployment.superseded_by == row.id).first()
        )
        return DeploymentDetail(
            deployment=_joined_view(row),
            supersedes=predecessor.id if predecessor else None,
            attestations=tuple(evidence.attestations_naming(row.digest)),
        )
