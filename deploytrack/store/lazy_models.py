"""The models no hot command uses: evidence bytes, public keys, verifications, policy keys,
admissions and variables. `models` imports this module on first use of one of them
(see its docstring); they reach the database through the same proxy as the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from peewee import (
    BigIntegerField,
    BlobField,
    CharField,
    CompositeKey,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from deploytrack.store.models import (
    Attestation,
    AttestationMaterial,
    AttestationSubject,
    BaseModel,
    Deployment,
    DeploymentSlot,
    Environment,
    FlagField,
    LogicalEnvironment,
    StagePolicy,
)

if TYPE_CHECKING:
    from peewee import AutoField, Field


class Blob(BaseModel):
    digest = CharField(primary_key=True)
    size = BigIntegerField()
    content = BlobField()
    created_at = BigIntegerField()


class VariableEvent(BaseModel):
    """One change of a scoped variable (append-only but for redaction). Secrets: ciphertext
    + key_id only."""

    logical_environment = ForeignKeyField(LogicalEnvironment, column_name="logical_environment_id")
    environment = ForeignKeyField(Environment, column_name="environment_id", null=True)
    deployment_name = TextField(null=True)
    name = TextField()
    action = CharField()
    is_secret = FlagField(default=False)
    value = TextField(null=True)
    value_salt = CharField(null=True)  # m005: the salt of the event log's commitment to value
    ciphertext = BlobField(null=True)
    key_id = CharField(null=True)
    created_at = BigIntegerField()
    redacted = FlagField(default=False)  # a plain value removed by a later 'redacted' line
    redacts = IntegerField(null=True)  # on a 'redacted' line: the entry whose value it removed

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]
        logical_environment_id: Field[int]
        environment_id: Field[int | None]


class PublicKey(BaseModel):
    """A public key (SubjectPublicKeyInfo PEM) by its OpenSSH SHA256 fingerprint."""

    fingerprint = CharField(unique=True)
    algorithm = CharField()
    pem = TextField()
    created_at = BigIntegerField()

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]


class AttestationVerification(BaseModel):
    """A signature on an attestation's envelope verified with a key (append-only)."""

    attestation = ForeignKeyField(Attestation, column_name="attestation_id")
    public_key = ForeignKeyField(PublicKey, column_name="public_key_id")
    keyid = TextField(default="")
    source = CharField()
    verified_at = BigIntegerField()

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]
        attestation_id: Field[int]
        public_key_id: Field[int]


class AttestationIdentityVerification(BaseModel):
    """A Sigstore bundle's certificate verified for a signer identity and issuer, chained to
    the trusted root kept in `blob` (append-only, m007)."""

    attestation = ForeignKeyField(Attestation, column_name="attestation_id")
    identity = TextField()
    issuer = TextField()
    trusted_root_digest = CharField()
    source = CharField()
    verified_at = BigIntegerField()

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]
        attestation_id: Field[int]


class StagePolicyIdentity(BaseModel):
    """A trusted signer identity of a stage policy (m008): `match` is exact or regexp."""

    policy = ForeignKeyField(StagePolicy, column_name="policy_id")
    match = CharField()
    identity = TextField()
    issuer = TextField()
    trusted_root_digest = CharField()

    class Meta:
        primary_key = CompositeKey("policy", "match", "identity", "issuer", "trusted_root_digest")

    if TYPE_CHECKING:  # peewee adds these at runtime
        policy_id: Field[int]


class StagePolicyKey(BaseModel):
    policy = ForeignKeyField(StagePolicy, column_name="policy_id")
    public_key = ForeignKeyField(PublicKey, column_name="public_key_id")

    class Meta:
        primary_key = CompositeKey("policy", "public_key")

    if TYPE_CHECKING:  # peewee adds these at runtime
        policy_id: Field[int]
        public_key_id: Field[int]


class DeploymentAdmission(BaseModel):
    """The evidence that satisfied a rule of the policy that admitted a record."""

    deployment = ForeignKeyField(Deployment, column_name="deployment_id")
    requirement = TextField()
    attestation = ForeignKeyField(Attestation, column_name="attestation_id")
    public_key = ForeignKeyField(PublicKey, column_name="public_key_id", null=True)
    # m009: the keyless verification made at admission, when a trusted identity met the rule.
    identity_verification = ForeignKeyField(
        AttestationIdentityVerification, column_name="identity_verification_id", null=True
    )

    if TYPE_CHECKING:  # peewee adds these at runtime
        id: AutoField[int]
        deployment_id: Field[int]
        attestation_id: Field[int]
        public_key_id: Field[int | None]
        identity_verification_id: Field[int | None]


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
    AttestationIdentityVerification,
    StagePolicy,
    StagePolicyKey,
    StagePolicyIdentity,
    DeploymentAdmission,
]
