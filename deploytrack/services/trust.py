"""Signatures on stored attestations: verify them with public keys, remember what verified.

Two ways. Key-based DSSE verification: a signature on the envelope (bare, or inside a
Sigstore bundle) must verify over the DSSE pre-authentication encoding of the payload and
its type with one of the given public keys. Keyless verification (`verify_identity`) of a
Sigstore bundle for a signer identity and OIDC issuer: certificate chain to a trusted
root, transparency log proof and timestamps, SCT, identity, by sigstore-python in
services/keyless.py.

`cryptography` is imported only by the functions that verify (deploytrack.crypto.keys);
`sigstore` only by keyless verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploytrack import timeutil
from deploytrack.evidence import Envelope, parse_document
from deploytrack.evidence.dsse import pae, signature_candidates
from deploytrack.services import ServiceError
from deploytrack.services.evidence import find_attestation
from deploytrack.services.views.evidence import VerifiedSignature, VerifyResult
from deploytrack.store import Store
from deploytrack.store.models import AttestationVerification, Blob
from deploytrack.store.models import PublicKey as PublicKeyRow

if TYPE_CHECKING:
    from deploytrack.crypto.keys import PublicKey
    from deploytrack.services.keyless import IdentityRule, TrustedRootFile, Verified
    from deploytrack.services.views.evidence import IdentityVerifyResult
    from deploytrack.store.models import Attestation

VERIFY = "verify"
CREATE = "create"
ADMISSION = "admission"


@dataclass(frozen=True)
class Match:
    """Signature `index` (1-based) of an envelope, with its keyid, verifies with `key`."""

    index: int
    keyid: str
    key: PublicKey


def verify_envelope(envelope: Envelope, keys: Sequence[PublicKey]) -> list[Match]:
    """Every (signature, key) pair that verifies over PAE(payloadType, payload). Pure."""
    message = pae(envelope.payload_type, envelope.payload)
    matches: list[Match] = []
    for index, signature in enumerate(envelope.signatures, start=1):
        candidates = signature_candidates(signature.sig)
        for key in keys:
            if any(key.verify(candidate, message) for candidate in candidates):
                matches.append(Match(index, signature.keyid, key))
    return matches


def stored_envelope(digest: str) -> Envelope | None:
    """The DSSE envelope of a stored attestation (None for a bare statement).

    Parsed again from the stored bytes, so what is verified is exactly what is stored.
    """
    blob = Blob.get_by_id(digest)
    return parse_document(bytes(blob.content), f"attestation {digest}").envelope


def remember_key(key: PublicKey, now: int) -> PublicKeyRow:
    """The row of a public key, inserted on first use. Call inside a write transaction."""
    row = PublicKeyRow.get_or_none(PublicKeyRow.fingerprint == key.fingerprint)
    if row is None:
        row = PublicKeyRow.create(
            fingerprint=key.fingerprint, algorithm=key.algorithm, pem=key.pem, created_at=now
        )
    elif row.pem != key.pem:  # a SHA-256 collision; never expected
        raise ServiceError(f"key {key.fingerprint} is stored with other key material")
    return row


def remember_verification(
    attestation_id: int, key: PublicKey, keyid: str, source: str, now: int
) -> None:
    """Append a verification. Call inside a write transaction."""
    row = remember_key(key, now)
    AttestationVerification.create(
        attestation=attestation_id,
        public_key=row.id,
        keyid=keyid,
        source=source,
        verified_at=now,
    )


def load_public_keys(paths: Sequence[str]) -> list[PublicKey]:
    """Public keys from PEM files (imports cryptography only when there are any)."""
    if not paths:
        return []
    from deploytrack.crypto.keys import load_public_key_file

    return [load_public_key_file(path) for path in paths]


def _explain(digest: str, envelope: Envelope, keys: Sequence[PublicKey]) -> str:
    tried = ", ".join(f"{k.fingerprint} ({k.source})" for k in keys)
    by_fingerprint = {k.fingerprint for k in keys}
    named = [s.keyid for s in envelope.signatures if s.keyid in by_fingerprint]
    count = len(envelope.signatures)
    if named:
        why = (
            f"a signature names key {named[0]} but does not verify with it: the payload, its "
            "type or the signature was changed after signing"
        )
    else:
        keyids = [s.keyid for s in envelope.signatures if s.keyid]
        signer = f" (keyid {', '.join(keyids)})" if keyids else ""
        why = f"it was signed by another key{signer}, or changed after signing"
    return (
        f"no signature on attestation {digest} verifies with the given key(s) {tried}: "
        f"{count} signature(s), checked over the DSSE pre-authentication encoding; {why}"
    )


def verify_attestation(store: Store, digest: str, keys: Sequence[PublicKey]) -> VerifyResult:
    """Verify a stored attestation's signatures with `keys`; remember each key that verifies.

    Raises ServiceError with the reason when none does.
    """
    if not keys:
        raise ServiceError("give at least one --key PUBLIC_KEY_PEM")
    with store.read():
        row = find_attestation(digest)
        envelope = stored_envelope(row.digest)
    if envelope is None:
        raise ServiceError(
            f"attestation {row.digest} is a bare in-toto statement: it carries no signature, "
            "so no key can verify it (sign it in a DSSE envelope)"
        )
    if not envelope.signatures:
        raise ServiceError(
            f"attestation {row.digest} is an unsigned DSSE envelope (its signatures list is "
            "empty): no key can verify it"
        )
    matches = verify_envelope(envelope, keys)
    if not matches:
        raise ServiceError(_explain(row.digest, envelope, keys))
    with store.write() as log:
        now = timeutil.now_us()
        for match in matches:
            remember_verification(row.id, match.key, match.keyid, VERIFY, now)
        log.log("attestation.verified", digests=[row.digest])
    return VerifyResult(
        attestation=row.digest,
        format=row.format,
        predicate_type=row.predicate_type,
        signatures=len(envelope.signatures),
        verified=tuple(
            VerifiedSignature(m.index, m.keyid, m.key.fingerprint, m.key.algorithm, m.key.source)
            for m in matches
        ),
        verified_at=now,
    )


def verify_stored_identity(row: Attestation, rule: IdentityRule, root: TrustedRootFile) -> Verified:
    """Verify a stored attestation keylessly, on its stored bytes; in a transaction.

    The attestation's digest identifies the bundle; what the bundle vouches for is its
    statement's subjects. So the payload sigstore-python verified must be byte for byte the
    statement the evidence store parsed, and its subjects exactly the ones indexed: the
    digests `deployment record` and `discover` find this attestation by are the verified
    ones.
    """
    from deploytrack.services import keyless
    from deploytrack.store.models import AttestationSubject

    what = f"attestation {row.digest}"
    if row.format != "sigstore-bundle":
        form = "bare in-toto statement" if row.format == "statement" else "DSSE envelope"
        raise ServiceError(
            f"{what} is a {form}: keyless verification needs a Sigstore bundle, whose "
            "certificate names the signer (verify a key signature with --key PUBLIC_KEY_PEM)"
        )
    raw = bytes(Blob.get_by_id(row.digest).content)
    verified = keyless.verify_bundle(raw, rule, root, what)
    parsed = parse_document(raw, what)
    assert parsed.envelope is not None  # a stored Sigstore bundle carries a DSSE envelope
    if (verified.payload_type, verified.payload) != (
        parsed.envelope.payload_type,
        parsed.envelope.payload,
    ):
        raise ServiceError(f"{what}: the verified payload is not the statement stored")
    indexed = {
        (s.name, s.digest)
        for s in AttestationSubject.select().where(AttestationSubject.attestation == row.id)
    }
    if indexed != {(s.name, s.digest) for s in parsed.subjects}:
        raise ServiceError(f"{what}: the verified statement's subjects are not the ones indexed")
    return verified


def remember_identity_verification(
    attestation_id: int, verified: Verified, root: TrustedRootFile, source: str, now: int
) -> int:
    """Append a keyless verification (and keep its trusted root); its id. In a write
    transaction."""
    from deploytrack.services.evidence import store_blob
    from deploytrack.store.models import AttestationIdentityVerification

    store_blob(root.digest, root.data, now)
    row = AttestationIdentityVerification.create(
        attestation=attestation_id,
        identity=verified.identity,
        issuer=verified.issuer,
        trusted_root_digest=root.digest,
        source=source,
        verified_at=now,
    )
    return row.id


def verify_identity(
    store: Store, digest: str, rule: IdentityRule, root: TrustedRootFile
) -> IdentityVerifyResult:
    """Verify a stored Sigstore bundle for a signer identity, offline; remember success.

    Raises ServiceError with the reason when it does not verify; nothing is written then.
    """
    from deploytrack.services.views.evidence import IdentityVerifyResult, SubjectView
    from deploytrack.store.models import AttestationSubject

    with store.read():
        row = find_attestation(digest)
        verified = verify_stored_identity(row, rule, root)
        subjects = tuple(
            SubjectView(s.name, s.digest)
            for s in AttestationSubject.select()
            .where(AttestationSubject.attestation == row.id)
            .order_by(AttestationSubject.id)
        )
    with store.write() as log:
        now = timeutil.now_us()
        remember_identity_verification(row.id, verified, root, VERIFY, now)
        log.log("attestation.verified", digests=[row.digest])
    return IdentityVerifyResult(
        attestation=row.digest,
        format=row.format,
        predicate_type=row.predicate_type,
        identity=verified.identity,
        issuer=verified.issuer,
        trusted_root=root.digest,
        trusted_root_source=root.source,
        subjects=subjects,
        verified_at=now,
    )


__all__ = [
    "Match",
    "VerifyResult",
    "load_public_keys",
    "remember_identity_verification",
    "remember_key",
    "remember_verification",
    "stored_envelope",
    "verify_attestation",
    "verify_envelope",
    "verify_identity",
    "verify_stored_identity",
]
