"""Every query written once: the records of a slot (its active and newest one), records
joined with their names, point in time, which attestations name a digest, verifications,
stage policies in force, digest prefixes.

The deployment queries are the ones whose plans matter on a long history.

A record is active at T when it was created at or before T and had not ended at or
before T: `created_at <= T AND (ended_at IS NULL OR ended_at > T)`. Read literally that
condition scans every record created before T. But per slot (environment, logical
environment, name, kind) records never overlap in time — superseding ends the old record
at the instant the new one starts — so the record active in a slot at T is the newest one
created at or before T, if it had not ended at or before T. `deployment_slot` lists the
slots, and one seek per slot in `deployment_key_time` (slot columns, created_at) finds that
record: the cost follows the number of slots, not the length of the history.

Active records *now* are read through the partial indexes on `status = 'deployed'`
(`deployment_active_created`, `_stage`, `_env`), which hold one entry per slot.

`tests/test_lifecycle.py` checks that these plans stay index-driven (EXPLAIN QUERY PLAN),
and bench/run.py measures them on 1,000,000 records over 10,000 slots.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from peewee import Expression

from deploytrack.store.models import (
    AttestationMaterial,
    AttestationSubject,
    Deployment,
    DeploymentSlot,
    Environment,
    LogicalEnvironment,
    StagePolicy,
)

if TYPE_CHECKING:
    from peewee import Field, SelectBase


class SlotFilter(NamedTuple):
    """Ids and names already resolved by the services; None means any."""

    environment_id: int | None = None
    logical_environment_id: int | None = None
    deployment_name: str | None = None
    kind: str | None = None

    def on(self, model: Any) -> Expression | None:
        """The filter as a condition on a model with the four slot columns."""
        terms: list[Expression] = []
        if self.environment_id is not None:
            terms.append(model.environment == self.environment_id)
        if self.logical_environment_id is not None:
            terms.append(model.logical_environment == self.logical_environment_id)
        if self.deployment_name is not None:
            terms.append(model.deployment_name == self.deployment_name)
        if self.kind is not None:
            terms.append(model.kind == self.kind)
        if not terms:
            return None
        condition = terms[0]
        for term in terms[1:]:
            condition = condition & term
        return condition


def in_slot(environment_id: int, logical_environment_id: int, name: str, kind: str) -> Any:
    """The records of one slot (environment, logical environment, deployment name, kind)."""
    return SlotFilter(environment_id, logical_environment_id, name, kind).on(Deployment)


def active_in(of_slot: Any) -> Deployment | None:
    """The active record of a slot (`in_slot`'s condition), or None. In a transaction."""
    return Deployment.get_or_none(of_slot & (Deployment.status == "deployed"))


def active_of(
    environment_id: int, logical_environment_id: int, name: str, kind: str
) -> Deployment | None:
    """The active record of one slot, or None. In a transaction.

    `active_in(in_slot(...))` written out: it is asked once per observed artifact by
    `deployment sync` (and by every `record`), and peewee takes ~0.3 ms to build this
    statement where reading it takes ~0.02. The literal status lets SQLite read the
    partial index `deployment_one_active`.
    """
    rows = Deployment.raw(
        "SELECT * FROM deployment WHERE environment_id = ? AND logical_environment_id = ?"
        " AND deployment_name = ? AND kind = ? AND status = 'deployed'",
        environment_id,
        logical_environment_id,
        name,
        kind,
    )
    for row in rows:
        found: Deployment = row
        return found
    return None


def record_by_id(deployment_id: int) -> Deployment:
    """A record read back after a write, by its id (which exists): written out, as
    `active_of`, because every record and sync reads one back."""
    for row in Deployment.raw("SELECT * FROM deployment WHERE id = ?", deployment_id):
        found: Deployment = row
        return found
    raise LookupError(f"no deployment record {deployment_id}")


def next_record_id() -> int:
    """The id the next record gets (one more than the largest)."""
    cursor = Deployment._meta.database.execute_sql("SELECT coalesce(max(id), 0) FROM deployment")
    return int(cursor.fetchone()[0]) + 1


def by_name(model: Any, name: str) -> Any:
    """The row of a named catalogue entry (environment, logical environment), or None: one
    statement written out, for the same reason as `active_of` (asked per artifact by sync)."""
    for row in model.raw(f'SELECT * FROM "{model._meta.table_name}" WHERE name = ?', name):
        return row
    return None


def newest_in(of_slot: Any) -> Deployment | None:
    """The newest record of a slot: its active one, or the one that ended it (a superseded
    record always has a newer one). In a transaction."""
    row: Deployment | None = (
        Deployment.select().where(of_slot).order_by(Deployment.id.desc()).first()
    )
    return row


def with_names() -> Any:
    """Records joined with their environment and logical environment, so `row.environment.name` and
    `row.logical_environment.name` cost no query of their own."""
    return (
        Deployment.select(Deployment, Environment, LogicalEnvironment)
        .join_from(Deployment, Environment)
        .join_from(Deployment, LogicalEnvironment)
    )


def _and(*terms: Expression | None) -> Expression:
    present = [t for t in terms if t is not None]
    condition = present[0]
    for term in present[1:]:
        condition = condition & term
    return condition


def active_now(flt: SlotFilter) -> Expression:
    """Condition on Deployment: the record is active (read via the partial indexes)."""
    return _and(Deployment.status == "deployed", flt.on(Deployment))


def active_at(at: int, flt: SlotFilter) -> Expression:
    """Condition on Deployment: the record was active at `at` (one index seek per slot)."""
    newer = Deployment.alias("x")
    newest_in_slot = (
        newer.select(newer.id)
        .where(
            (newer.environment == DeploymentSlot.environment)
            & (newer.logical_environment == DeploymentSlot.logical_environment)
            & (newer.deployment_name == DeploymentSlot.deployment_name)
            & (newer.kind == DeploymentSlot.kind)
            & (newer.created_at <= at)
        )
        .order_by(newer.created_at.desc(), newer.id.desc())
        .limit(1)
    )
    slots = DeploymentSlot.select(newest_in_slot)
    slot_condition = flt.on(DeploymentSlot)
    if slot_condition is not None:
        slots = slots.where(slot_condition)
    # The filter is on the slots only: repeated on Deployment, it tempts SQLite to walk the
    # slots' whole history in deployment_key_time instead of fetching the ids by rowid.
    return Deployment.id.in_(slots) & (Deployment.ended_at.is_null() | (Deployment.ended_at > at))


def started_between(after: int | None, until: int | None, flt: SlotFilter) -> Expression:
    """Condition on Deployment: created after `after` (exclusive) and at or before `until`
    (read through `deployment_created`)."""
    terms: list[Expression | None] = [flt.on(Deployment)]
    if after is not None:
        terms.append(Deployment.created_at > after)
    if until is not None:
        terms.append(Deployment.created_at <= until)
    if all(t is None for t in terms):
        return Deployment.id.is_null(False)
    return _and(*terms)


def newest_first(query: Any) -> Any:
    return query.order_by(Deployment.created_at.desc(), Deployment.id.desc())


__all__ = [
    "SlotFilter",
    "active_at",
    "active_in",
    "active_now",
    "active_of",
    "by_name",
    "digest_in_evidence",
    "naming",
    "newest_first",
    "newest_in",
    "next_record_id",
    "record_by_id",
    "started_between",
    "verified_by",
    "verified_identities",
    "with_names",
]


def _naming_queries(digest: str) -> tuple[Any, Any]:
    return (
        AttestationSubject.select(AttestationSubject.attestation).where(
            AttestationSubject.digest == digest
        ),
        AttestationMaterial.select(AttestationMaterial.attestation).where(
            AttestationMaterial.digest == digest
        ),
    )


def naming(digest: str) -> set[int]:
    """Ids of the attestations that name `digest` as a subject or a material."""
    return {row[0] for query in _naming_queries(digest) for row in query.tuples()}


def digest_in_evidence(digest: str) -> bool:
    """Whether some stored attestation names `digest` (as subject or material): the rule
    every deployment record obeys (the schema's trigger checks the same).
    """
    # The same question as `naming`, stopped at the first row (`deployment record` asks it).
    return any(query.exists() for query in _naming_queries(digest))


def verified_by(ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Per attestation id, the fingerprints of the keys its signatures verified with, in
    the order first verified. In a transaction."""
    # Rare models, defined on first use: not on the path of `deployment record`.
    from deploytrack.store.models import AttestationVerification, PublicKey

    found: dict[int, list[str]] = defaultdict(list)
    rows = (
        AttestationVerification.select(AttestationVerification, PublicKey)
        .join(PublicKey)
        .where(AttestationVerification.attestation.in_(ids))
        .order_by(AttestationVerification.id)
    )
    for row in rows:
        if row.public_key.fingerprint not in found[row.attestation_id]:
            found[row.attestation_id].append(row.public_key.fingerprint)
    return {k: tuple(v) for k, v in found.items()}


def verified_identities(ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Per attestation id, the signer identities a keyless verification proved, in the order
    first verified. In a transaction."""
    from deploytrack.store.models import AttestationIdentityVerification as Verification

    found: dict[int, list[str]] = defaultdict(list)
    for row in (
        Verification.select().where(Verification.attestation.in_(ids)).order_by(Verification.id)
    ):
        if row.identity not in found[row.attestation_id]:
            found[row.attestation_id].append(row.identity)
    return {k: tuple(v) for k, v in found.items()}


POLICY_SET = "set"  # a policy version that sets requirements (the other kind clears them)


def newest_policy(stage_id: int) -> StagePolicy | None:
    """The newest version (set or clear) of a logical environment's policy."""
    newest: StagePolicy | None = (
        StagePolicy.select()
        .where(StagePolicy.logical_environment == stage_id)
        .order_by(StagePolicy.id.desc())
        .first()
    )
    return newest


def policy_in_force(stage_id: int) -> StagePolicy | None:
    """The policy version in force in a logical environment: its newest, unless that one
    cleared it."""
    row = newest_policy(stage_id)
    return row if row is not None and row.action == POLICY_SET else None


def _prefix_range(column: Field[Any], prefix: str) -> Expression:
    # A range on the column's own (BINARY) index: [prefix, prefix with its last character
    # incremented). Every digest that starts with the prefix sorts inside it, and nothing
    # else does ('f' + 1 is 'g', above every hex digit). LIKE would scan the table.
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return (column >= prefix) & (column < upper)


def digests_with_prefix(columns: Sequence[Field[Any]], prefix: str, limit: int) -> list[str]:
    """The distinct digests of `columns` that start with `prefix`, sorted, at most `limit`;
    each column is read by an index range scan."""
    found: set[str] = set()
    for column in columns:
        query = (
            column.model.select(column)
            .where(_prefix_range(column, prefix))
            .distinct()
            .order_by(column)
            .limit(limit)
        )
        found.update(row[0] for row in query.tuples())
    return sorted(found)[:limit]


def count_digests_with_prefix(columns: Sequence[Field[Any]], prefix: str) -> int:
    """How many distinct digests of `columns` start with `prefix` (index range scans)."""
    parts: list[SelectBase] = [
        column.model.select(column.alias("digest")).where(_prefix_range(column, prefix))
        for column in columns
    ]
    union = parts[0]
    for part in parts[1:]:
        union = union | part  # UNION: each digest once, whichever tables name it
    return union.count()
