"""peewee models over the tables that `migrations` creates.

The migrations own the DDL; these classes only describe the columns for queries, so a
model never creates or alters a table. Times are integer microseconds (see timeutil).

Defining a model costs ~0.1 ms. This module defines the ones `deployment record`,
`deployment list` and `status` use; the others (evidence bytes, public keys,
verifications, policy keys, admissions, variables) live in `lazy_models` and are defined
on first use: `from deploytrack.store.models import PublicKey` works for every model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peewee import (
    BigIntegerField,
    CharField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from deploytrack.store.binding import DATABASE

if TYPE_CHECKING:
    from peewee import AutoField, Field

    from deploytrack.store.lazy_models import ALL_MODELS as ALL_MODELS
    from deploytrack.store.lazy_models import (
        AttestationIdentityVerification as AttestationIdentityVerification,
    )
    from deploytrack.store.lazy_models import AttestationVerification as AttestationVerification
    from deploytrack.store.lazy_models import Blob as Blob
    from deploytrack.store.lazy_models import DeploymentAdmission as DeploymentAdmission
    from deploytrack.store.lazy_models import PublicKey as PublicKey
    from deploytrack.store.lazy_models import StagePolicyIdentity as StagePolicyIdentity
    from deploytrack.store.lazy_models import StagePolicyKey as StagePolicyKey
    from deploytrack.store.lazy_models import VariableEvent as VariableEvent


class FlagField(IntegerField):
    """A yes/no column stored as 0 or 1 (INTEGER with a CHECK, on both backends: the event
    log's row images carry the number, so they are the same bytes everywhere); reads as
    a bool. peewee's BooleanField would send PostgreSQL a boolean for an integer column."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else int(bool(value))

    def python_value(self, value: Any) -> Any:
        return None if value is None else bool(value)


class BaseModel(Model):
    class Meta:
        # The proxy of `binding`, which a store's transaction points at that store's
        # database. Unlike db.bind(models), it also reaches the models that
        # lazy_models.py defines later, when a command first needs one of them.
        database = DATABASE
        legacy_table_names = False


def _catalog_columns() -> tuple[CharField, TextField, BigIntegerField, BigIntegerField]:
    """The columns every catalogue entry has (name, description, created_at, updated_at),
    the ones services/catalog.py reads and writes on both; fresh fields for each model."""
    return CharField(unique=True), TextField(default=""), BigIntegerField(), BigIntegerField()


class Environment(BaseModel):
    name, description, created_at, updated_at = _catalog_columns()
    type = CharField()

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]


class LogicalEnvironment(BaseModel):
    name, description, created_at, updated_at = _catalog_columns()
    is_default = FlagField(default=False)

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]


class Attestation(BaseModel):
    digest = CharField(unique=True)
    format = CharField()
    statement_type = TextField()
    predicate_type = TextField()
    project = TextField(null=True)
    version = TextField(null=True)
    workflow = TextField(null=True)
    imported_at = BigIntegerField()

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]


class AttestationSubject(BaseModel):
    attestation = ForeignKeyField(Attestation, column_name="attestation_id", backref="subjects")
    name = TextField()
    digest = TextField()

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]
        attestation_id: Field[int]


class AttestationMaterial(BaseModel):
    attestation = ForeignKeyField(Attestation, column_name="attestation_id", backref="materials")
    name = TextField(null=True)
    kind = TextField(null=True)
    digest = TextField(null=True)

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]
        attestation_id: Field[int]


def _slot_columns() -> tuple[
    ForeignKeyField[Environment], ForeignKeyField[LogicalEnvironment], TextField, CharField
]:
    """The four columns of a slot (environment, logical environment, deployment name,
    kind), as `deployment` and `deployment_slot` both hold them: fresh fields for each
    model, which peewee binds to the class they are assigned in (a shared base model would
    be one more model to define on every start: ~0.1 ms)."""
    return (
        ForeignKeyField(Environment, column_name="environment_id"),
        ForeignKeyField(LogicalEnvironment, column_name="logical_environment_id"),
        TextField(),
        CharField(),
    )


class Deployment(BaseModel):
    environment, logical_environment, deployment_name, kind = _slot_columns()
    digest = CharField()
    artifact_ref = TextField(null=True)
    status = CharField()
    created_at = BigIntegerField()
    last_seen_at = BigIntegerField()
    ended_at = BigIntegerField(null=True)
    superseded_by = IntegerField(null=True)
    # Lineage (m003_lifecycle), set once on insert.
    promoted_from = IntegerField(null=True)
    rollback_of = IntegerField(null=True)
    # Admission (m002_evidence_trust): the stage policy version that admitted the record.
    policy_id = IntegerField(null=True)
    # Where it came from (m010_deployment_source): declared (record, promote, rollback) or
    # observed (sync), set once on insert.
    source = CharField(default="declared")

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]
        environment_id: Field[int]
        logical_environment_id: Field[int]


class DeploymentSlot(BaseModel):
    """Every (environment, logical environment, name, kind) that ever had a record; kept by
    a trigger."""

    environment, logical_environment, deployment_name, kind = _slot_columns()

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]
        environment_id: Field[int]
        logical_environment_id: Field[int]


class StagePolicy(BaseModel):
    """One version of a logical environment's policy (append-only); the newest is in force."""

    logical_environment = ForeignKeyField(LogicalEnvironment, column_name="logical_environment_id")
    action = CharField()
    required_predicates = TextField(default="[]")
    created_at = BigIntegerField()

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]
        logical_environment_id: Field[int]


_LAZY = frozenset(
    {
        "ALL_MODELS",
        "AttestationIdentityVerification",
        "AttestationVerification",
        "Blob",
        "DeploymentAdmission",
        "PublicKey",
        "StagePolicyIdentity",
        "StagePolicyKey",
        "VariableEvent",
    }
)


def __getattr__(name: str) -> Any:
    """The models of `lazy_models`, defined on first use (PEP 562)."""
    if name in _LAZY:
        from deploytrack.store import lazy_models

        return getattr(lazy_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
