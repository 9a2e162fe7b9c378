"""Attestations in the evidence store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploytrack.services.views.push import PushResult


@dataclass(frozen=True)
class SubjectView:
    name: str
    digest: str


@dataclass(frozen=True)
class MaterialView:
    name: str | None
    kind: str | None
    digest: str | None


@dataclass(frozen=True)
class VerificationView:
    """A signature on the attestation verified with a public key (remembered)."""

    fingerprint: str
    algorithm: str
    keyid: str  # the keyid of the signature that verified ("" when it had none)
    source: str  # verify | create | admission
    verified_at: int


@dataclass(frozen=True)
class IdentityVerificationView:
    """A Sigstore bundle verified keylessly for a signer identity (remembered)."""

    identity: str  # the certificate's identity that matched
    issuer: str  # its OIDC issuer
    trusted_root: str  # sha256 digest of the trusted_root.json it chained to
    source: str  # verify | admission
    verified_at: int


@dataclass(frozen=True)
class AttestationView:
    digest: str
    format: str
    statement_type: str
    predicate_type: str
    project: str | None
    version: str | None
    workflow: str | None
    subjects: tuple[SubjectView, ...]
    materials: tuple[MaterialView, ...]
    imported_at: int
    # Newest verification per key, newest first.
    verifications: tuple[VerificationView, ...] = ()
    # Newest keyless verification per (identity, issuer, trusted root), newest first.
    identity_verifications: tuple[IdentityVerificationView, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    source: str
    created: bool  # False: the same bytes were already stored
    attestation: AttestationView


@dataclass(frozen=True)
class StoredFile:
    """A material file `attestation create` kept in the evidence store."""

    kind: str
    name: str
    digest: str
    size: int


@dataclass(frozen=True)
class VerifiedSignature:
    signature: int  # 1-based index in the envelope
    keyid: str
    fingerprint: str
    algorithm: str
    key_file: str


@dataclass(frozen=True)
class VerifyResult:
    attestation: str
    format: str
    predicate_type: str
    signatures: int
    verified: tuple[VerifiedSignature, ...]
    verified_at: int


@dataclass(frozen=True)
class IdentityVerifyResult:
    """`attestation verify --certificate-identity`: what a keyless verification proved."""

    attestation: str
    format: str
    predicate_type: str
    identity: str  # the certificate's identity that matched
    issuer: str
    trusted_root: str  # sha256 digest of the trusted_root.json
    trusted_root_source: str  # the file given, or "the Sigstore public-good root"
    subjects: tuple[SubjectView, ...]  # what the verified statement names
    verified_at: int


@dataclass(frozen=True)
class SignedAttestation:
    """`attestation sign`: the stored attestation, the signing key, the envelope file."""

    attestation: AttestationView
    signed_by: str | None  # fingerprint of the signing key
    output_file: str | None  # where --output-file wrote the envelope (None: not asked)


@dataclass(frozen=True)
class CreatedAttestation:
    """`attestation create`: as SignedAttestation, with the files kept beside it."""

    attestation: AttestationView
    signed_by: str | None  # None: created unsigned
    output_file: str | None
    stored_files: tuple[StoredFile, ...]
    pushed: PushResult | None = None  # what --push did (None: not asked)


@dataclass(frozen=True)
class PulledReferrer:
    """One thing `attestation pull` found attached to the digest."""

    digest: str  # the manifest that attaches it (for cosign, the `.att` manifest)
    artifact_type: str
    source: str  # api | tag | cosign | layout
    outcome: str  # imported | present | skipped
    reason: str | None  # why it was skipped
    attestation: str | None  # the stored attestation's digest (None when skipped)


@dataclass(frozen=True)
class PullResult:
    digest: str
    referrers: tuple[PulledReferrer, ...]
