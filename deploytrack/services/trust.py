"""Signatures on stored attestations: verify them with public keys, remember what verified.

This is key-based DSSE verification: a signature on the envelope (bare, or inside a
Sigstore bundle) must verify over the DSSE pre-authentication encoding of the payload and
its type with one of the given public keys. It is NOT Sigstore keyless verification: no
Fulcio certificate chain, no signer identity, no Rekor inclusion proof or timestamp.

`cryptography` is imported only by the functions that verify (deploytrack.crypto.keys).
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


__all__ = [
    "Match",
    "VerifyResult",
    "load_public_keys",
    "remember_key",
    "remember_verification",
    "stored_envelope",
    "verify_attestation",
    "verify_envelope",
]
