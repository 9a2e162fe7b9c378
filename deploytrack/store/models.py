"""peewee models over the tables that `migrations` creates.

The migrations own the DDL; these classes only describe the columns for queries, so a
model never creates or alters a table. Times are integer microseconds (see timeutil).
"""

from __future__ import annotations

from peewee import (
    BigIntegerField,
    BlobField,
    BooleanField,
    CharField,
    CompositeKey,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)


class BaseModel(Model):
    class Meta:
        legacy_table_names = False


class Environment(BaseModel):
    name = CharField(unique=True)
    description = TextField(default="")
    type = CharField()
    created_at = BigIntegerField()
    updated_at = BigIntegerField()


class LogicalEnvironment(BaseModel):
    name = CharField(unique=True)
    description = TextField(default="")
    is_default = BooleanField(default=False)
    created_at = BigIntegerField()
    updated_at = BigIntegerField()


class Blob(BaseModel):
    digest = CharField(primary_key=True)
    size = BigIntegerField()
    content = BlobField()
    created_at = BigIntegerField()


class Attestation(BaseModel):
    digest = CharField(unique=True)
    format = CharField()
    statement_type = TextField()
    predicate_type = TextField()
    project = TextField(null=True)
    version = TextField(null=True)
    workflow = TextField(null=True)
    imported_at = BigIntegerField()


class AttestationSubject(BaseModel):
    attestation = ForeignKeyField(Attestation, column_name="attestation_id", backref="subjects")
    name = TextField()
    digest = TextField()


class AttestationMaterial(BaseModel):
    attestation = ForeignKeyField(Attestation, column_name="attestation_id", backref="materials")
    name = TextField(null=True)
    kind = TextField(null=True)
    digest = TextField(null=True)


class Deployment(BaseModel):
    environment = ForeignKeyField(Environment, column_name="environment_id")
    logical_environment = ForeignKeyField(LogicalEnvironment, column_name="logical_environment_id")
    deployment_name = TextField()
    kind = CharField()
    digest = CharField()
    artifact_ref = TextField(null=True)
    status = CharField()
    created_at = BigIntegerField()
    last_seen_at = BigIntegerField()
    ended_at = BigIntegerField(null=True)
    superseded_by = IntegerField(null=True)
    # Issue 5 (m003_lifecycle): lineage, set once on insert.
    promoted_from = IntegerField(null=True)
    rollback_of = IntegerField(null=True)
    # Issue 4 (m002_evidence_trust): the stage policy version that admitted the record.
    policy_id = IntegerField(null=True)


class DeploymentSlot(BaseModel):
    """Every (environment, stage, name, kind) that ever had a record; kept by a trigger."""

    environment = ForeignKeyField(Environment, column_name="environment_id")
    logical_environment = ForeignKeyField(LogicalEnvironment, column_name="logical_environment_id")
    deployment_name = TextField()
    kind = CharField()


class VariableEvent(BaseModel):
    """One change of a scoped variable (append-only but for redaction). Secrets: ciphertext
    + key_id only."""

    logical_environment = ForeignKeyField(LogicalEnvironment, column_name="logical_environment_id")
    environment = ForeignKeyField(Environment, column_name="environment_id", null=True)
    deployment_name = TextField(null=True)
    name = TextField()
    action = CharField()
    is_secret = BooleanField(default=False)
    value = TextField(null=True)
    ciphertext = BlobField(null=True)
    key_id = CharField(null=True)
    created_at = BigIntegerField()
    redacted = BooleanField(default=False)  # a plain value removed by a later 'redacted' line
    redacts = IntegerField(null=True)  # on a 'redacted' line: the entry whose value it removed


class PublicKey(BaseModel):
    """A public key (SubjectPublicKeyInfo PEM) by its OpenSSH SHA256 fingerprint."""

    fingerprint = CharField(unique=True)
    algorithm = CharField()
    pem = TextField()
    created_at = BigIntegerField()


class AttestationVerification(BaseModel):
    """A signature on an attestation's envelope verified with a key (append-only)."""

    attestation = ForeignKeyField(Attestation, column_name="attestation_id")
    public_key = ForeignKeyField(PublicKey, column_name="public_key_id")
    keyid = TextField(default="")
    source = CharField()
    verified_at = BigIntegerField()


class StagePolicy(BaseModel):
    """One version of a stage's policy (append-only); the newest one is in force."""

    logical_environment = ForeignKeyField(LogicalEnvironment, column_name="logical_environment_id")
    action = CharField()
    required_predicates = TextField(default="[]")
    created_at = BigIntegerField()


class StagePolicyKey(BaseModel):
    policy = ForeignKeyField(StagePolicy, column_name="policy_id")
    public_key = ForeignKeyField(PublicKey, column_name="public_key_id")

    class Meta:
        primary_key = CompositeKey("policy", "public_key")


class DeploymentAdmission(BaseModel):
    """The evidence that satisfied a rule of the policy that admitted a record."""

    deployment = ForeignKeyField(Deployment, column_name="deployment_id")
    requirement = TextField()
    attestation = ForeignKeyField(Attestation, column_name="attestation_id")
    public_key = ForeignKeyField(PublicKey, column_name="public_key_id", null=True)


ALL_MODELS: list[type[Model]] = [
    Environment,
    LogicalEnvironment,
    Blob,
    Attestation,
    AttestationSubject,
    AttestationMaterial,
    Deployment,
    DeploymentSlot,
    VariableEvent,
    PublicKey,
    AttestationVerification,
    StagePolicy,
    StagePolicyKey,
    DeploymentAdmission,
]
