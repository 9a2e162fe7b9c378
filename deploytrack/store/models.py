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


ALL_MODELS: list[type[Model]] = [
    Environment,
    LogicalEnvironment,
    Blob,
    Attestation,
    AttestationSubject,
    AttestationMaterial,
    Deployment,
]
