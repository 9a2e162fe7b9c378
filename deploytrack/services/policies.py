"""Stage policies: what evidence a digest needs before it may be deployed in a
logical environment.

A policy of a logical environment has required predicate types, trusted public keys and
trusted signer identities (keyless: an identity and its OIDC issuer, with the trusted root
a Sigstore bundle's certificate must chain to, kept in the database). A digest is admitted
when:

- for each required predicate type, an attestation of exactly that type names the digest
  (as a subject or a material), and, when trusted keys or identities are set, one such
  attestation verifies with one of the keys or for one of the identities;
- with trusted keys or identities and no required predicate type, at least one attestation
  naming the digest verifies with one of them.

Signatures are verified from the stored bytes every time (never from a remembered
result), so a key or identity removed from the policy no longer admits anything. A policy
with identities imports sigstore (services/keyless.py) at admission; one without does not.

Policy changes are versions in an append-only table: `set` writes the whole policy (its
predicates and keys), `clear` removes it. The newest version of a
logical environment's policy is in force.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from deploytrack import timeutil
from deploytrack.services import ServiceError, trust, validate
from deploytrack.services.catalog import logical_environments
from deploytrack.services.views.policies import (
    AdmissionEvidence,
    AdmissionView,
    Decision,
    PolicyChange,
    PolicyIdentityView,
    PolicyKeyView,
    PolicyReport,
    PolicyView,
)
from deploytrack.store import Store, queries
from deploytrack.store.models import (
    Attestation,
    Blob,
    DeploymentAdmission,
    LogicalEnvironment,
    StagePolicy,
    StagePolicyKey,
)
from deploytrack.store.models import PublicKey as PublicKeyRow

if TYPE_CHECKING:
    from deploytrack.crypto.keys import PublicKey
    from deploytrack.services.keyless import IdentityRule, TrustedRootFile, Verified
    from deploytrack.services.views.policies import PolicyAction

    Signer = tuple[Verified, TrustedRootFile]

SET = queries.POLICY_SET
CLEAR = "clear"
ANY = ""  # the requirement of a policy of trusted keys only
MAX_PREDICATES = 64
MAX_KEYS = 64
MAX_IDENTITIES = 64


def _view(row: StagePolicy, stage_name: str) -> PolicyView:
    keys = (
        PublicKeyRow.select()
        .join(StagePolicyKey, on=(StagePolicyKey.public_key == PublicKeyRow.id))
        .where(StagePolicyKey.policy == row.id)
        .order_by(PublicKeyRow.fingerprint)
    )
    from deploytrack.store.models import StagePolicyIdentity

    identities = (
        StagePolicyIdentity.select()
        .where(StagePolicyIdentity.policy == row.id)
        .order_by(
            StagePolicyIdentity.identity,
            StagePolicyIdentity.match,
            StagePolicyIdentity.issuer,
            StagePolicyIdentity.trusted_root_digest,
        )
    )
    return PolicyView(
        id=row.id,
        logical_environment=stage_name,
        action=cast("PolicyAction", row.action),  # held to these values by a CHECK
        required_predicates=tuple(json.loads(row.required_predicates)),
        trusted_keys=tuple(PolicyKeyView(k.fingerprint, k.algorithm) for k in keys),
        created_at=row.created_at,
        trusted_identities=tuple(
            PolicyIdentityView(i.identity, i.match, i.issuer, i.trusted_root_digest)
            for i in identities
        ),
    )


def in_force(stage: LogicalEnvironment) -> PolicyView | None:
    """The policy in force in a logical environment, or None."""
    row = queries.policy_in_force(stage.id)
    return None if row is None else _view(row, stage.name)


def get_policy(policy_id: int) -> PolicyView:
    """A policy version by id."""
    row = StagePolicy.get_by_id(policy_id)
    return _view(row, LogicalEnvironment.get_by_id(row.logical_environment_id).name)


def set_policy(
    store: Store,
    stage_name: str,
    predicates: Sequence[str],
    keys: Sequence[PublicKey],
    identities: Sequence[tuple[IdentityRule, TrustedRootFile]] = (),
) -> PolicyChange:
    """Write the whole policy of a logical environment. Returns the policy in force and
    whether it changed (setting the policy already in force adds no version). `policy set`
    refuses an empty policy while its command line is read (usage error): it is the one
    caller. Each identity comes with the trusted root its certificates must chain to."""
    wanted = sorted({validate.predicate_type(p) for p in predicates})
    by_fingerprint = {k.fingerprint: k for k in keys}
    roots = {root.digest: root for _, root in identities}
    signers = {
        PolicyIdentityView(rule.identity, rule.match, rule.issuer, root.digest)
        for rule, root in identities
    }
    if (
        len(wanted) > MAX_PREDICATES
        or len(by_fingerprint) > MAX_KEYS
        or len(signers) > MAX_IDENTITIES
    ):
        raise ServiceError(
            f"a policy holds at most {MAX_PREDICATES} predicate types, {MAX_KEYS} keys and "
            f"{MAX_IDENTITIES} identities"
        )
    with store.write() as log:
        stage = logical_environments.get(store, stage_name)
        current = in_force(stage)
        if (
            current is not None
            and list(current.required_predicates) == wanted
            and {k.fingerprint for k in current.trusted_keys} == set(by_fingerprint)
            and set(current.trusted_identities) == signers
        ):
            return PolicyChange(False, current)
        now = timeutil.now_us()
        newest = queries.newest_policy(stage.id)
        if newest is not None:
            now = max(now, newest.created_at)
        row = StagePolicy.create(
            logical_environment=stage.id,
            action=SET,
            required_predicates=json.dumps(wanted, separators=(",", ":")),
            created_at=now,
        )
        for key in by_fingerprint.values():
            key_row = trust.remember_key(key, now)
            StagePolicyKey.insert(policy=row.id, public_key=key_row.id).execute()
        if signers:
            from deploytrack.services.evidence import store_blob
            from deploytrack.store.models import StagePolicyIdentity

            for root in roots.values():
                store_blob(root.digest, root.data, now)
            for signer in sorted(signers, key=lambda v: (v.identity, v.match, v.issuer)):
                StagePolicyIdentity.insert(
                    policy=row.id,
                    match=signer.match,
                    identity=signer.identity,
                    issuer=signer.issuer,
                    trusted_root_digest=signer.trusted_root,
                ).execute()
        log.log("policy.set")
        return PolicyChange(True, _view(row, stage.name))


def clear_policy(store: Store, stage_name: str) -> PolicyChange:
    """Remove the policy of a logical environment (a `clear` version). Returns the clear
    version, or no policy and changed False when the logical environment had no policy."""
    with store.write() as log:
        stage = logical_environments.get(store, stage_name)
        newest = queries.newest_policy(stage.id)
        if newest is None or newest.action != SET:
            return PolicyChange(False, None)
        row = StagePolicy.create(
            logical_environment=stage.id,
            action=CLEAR,
            required_predicates="[]",
            created_at=max(timeutil.now_us(), newest.created_at),
        )
        log.log("policy.cleared")
        return PolicyChange(True, _view(row, stage.name))


def show_policy(store: Store, stage_name: str) -> PolicyReport:
    """The policy in force in a logical environment (or None), and every version, oldest first."""
    with store.read():
        stage = logical_environments.get(store, stage_name)
        rows = (
            StagePolicy.select()
            .where(StagePolicy.logical_environment == stage.id)
            .order_by(StagePolicy.id)
        )
        history = tuple(_view(r, stage.name) for r in rows)
        return PolicyReport(stage_name, in_force(stage), history)


def _load_keys(policy: PolicyView) -> list[PublicKey]:
    if not policy.trusted_keys:
        return []
    from deploytrack.crypto.keys import load_public_key

    rows = PublicKeyRow.select().where(
        PublicKeyRow.fingerprint.in_([k.fingerprint for k in policy.trusted_keys])
    )
    return [load_public_key(r.pem.encode("ascii"), f"trusted key {r.fingerprint}") for r in rows]


def _load_signers(policy: PolicyView) -> list[tuple[IdentityRule, TrustedRootFile]]:
    """The policy's identities with their trusted roots, read from the database."""
    if not policy.trusted_identities:
        return []
    from deploytrack.services import keyless

    roots = {
        b.digest: keyless.stored_root(b.digest, bytes(b.content))
        for b in Blob.select().where(
            Blob.digest.in_([i.trusted_root for i in policy.trusted_identities])
        )
    }
    return [
        (keyless.IdentityRule(i.identity, i.issuer, i.match), roots[i.trusted_root])
        for i in policy.trusted_identities
    ]


def _trusted(policy: PolicyView) -> str:
    """The policy's trusted keys and identities, for a refusal."""
    shown = [k.fingerprint for k in policy.trusted_keys]
    shown += [
        f"{'identity matching ' if i.match == 'regexp' else ''}{i.identity} (issuer {i.issuer})"
        for i in policy.trusted_identities
    ]
    return ", ".join(shown)


def evaluate(stage: LogicalEnvironment, digest: str) -> Decision:
    """Apply the logical environment's policy in force to `digest`."""
    policy = in_force(stage)
    if policy is None:
        return Decision(stage.name, digest, None, True, (), ())
    keys = _load_keys(policy)
    signers = _load_signers(policy)
    trusted = _trusted(policy)
    kinds = " or ".join(k for k, given in (("key", keys), ("identity", signers)) if given)
    ids = queries.naming(digest)
    # Newest first: the most recent evidence is the one recorded as the admission's.
    attestations = list(
        Attestation.select().where(Attestation.id.in_(list(ids))).order_by(Attestation.id.desc())
    )
    cache: dict[int, tuple[trust.Match | None, Signer | None]] = {}

    def verified(att: Attestation) -> tuple[trust.Match | None, Signer | None]:
        if att.id not in cache:
            cache[att.id] = (_by_key(att), None)
            if cache[att.id][0] is None:
                cache[att.id] = (None, _by_identity(att))
        return cache[att.id]

    def _by_key(att: Attestation) -> trust.Match | None:
        if not keys:
            return None
        envelope = trust.stored_envelope(att.digest)
        matches = [] if envelope is None else trust.verify_envelope(envelope, keys)
        return matches[0] if matches else None

    def _by_identity(att: Attestation) -> Signer | None:
        if not signers or att.format != "sigstore-bundle":
            return None
        for rule, root in signers:
            try:
                return trust.verify_stored_identity(att, rule, root), root
            except ServiceError:
                continue
        return None

    reasons: list[str] = []
    found: list[tuple[str, Attestation, tuple[trust.Match | None, Signer | None]]] = []

    def first_verified(requirement: str, candidates: list[Attestation], which: str) -> None:
        good = next((a for a in candidates if any(verified(a))), None)
        if good is None:
            reasons.append(
                f"none of the {len(candidates)} attestation(s) {which}naming it verifies with "
                f"a trusted {kinds} ({trusted})"
            )
        else:
            found.append((requirement, good, verified(good)))

    if policy.required_predicates:
        for predicate in policy.required_predicates:
            candidates = [a for a in attestations if a.predicate_type == predicate]
            if not candidates:
                reasons.append(f"no attestation of predicate type {predicate} names it")
            elif not keys and not signers:
                found.append((predicate, candidates[0], (None, None)))
            else:
                first_verified(predicate, candidates, f"of predicate type {predicate} ")
    else:
        first_verified(ANY, attestations, "")
    admission = tuple(
        AdmissionView(
            req,
            att.digest,
            match.key.fingerprint if match is not None else None,
            signer[0].identity if signer is not None else None,
            signer[0].issuer if signer is not None else None,
        )
        for req, att, (match, signer) in found
    )
    return Decision(
        logical_environment=stage.name,
        digest=digest,
        policy=policy,
        passed=not reasons,
        reasons=tuple(reasons),
        admission=admission if not reasons else (),
        evidence=tuple(
            AdmissionEvidence(req, att.id, match, signer) for req, att, (match, signer) in found
        )
        if not reasons
        else (),
    )


def admit(stage: LogicalEnvironment, digest: str) -> Decision:
    """The gate of `deployment record`: the decision, or ServiceError listing what is
    missing. Call inside the write transaction of the record."""
    decision = evaluate(stage, digest)
    if not decision.passed:
        raise ServiceError(decision.refusal())
    return decision


def remember_admission(deployment_id: int, decision: Decision, now: int) -> None:
    """Store the evidence that admitted a new record. Call inside its write transaction."""
    for item in decision.evidence:
        key_id = None
        verification_id = None
        if item.match is not None:
            match = item.match
            key_id = trust.remember_key(match.key, now).id
            trust.remember_verification(
                item.attestation_id, match.key, match.keyid, trust.ADMISSION, now
            )
        elif item.signer is not None:
            verified, root = item.signer
            verification_id = trust.remember_identity_verification(
                item.attestation_id, verified, root, trust.ADMISSION, now
            )
        DeploymentAdmission.create(
            deployment=deployment_id,
            requirement=item.requirement,
            attestation=item.attestation_id,
            public_key=key_id,
            identity_verification=verification_id,
        )


def admission_of(deployment_id: int) -> tuple[AdmissionView, ...]:
    """The evidence stored when a record was admitted."""
    rows = (
        DeploymentAdmission.select(DeploymentAdmission, Attestation)
        .join(Attestation)
        .where(DeploymentAdmission.deployment == deployment_id)
        .order_by(DeploymentAdmission.id)
    )
    out = []
    for row in rows:
        fingerprint = identity = issuer = None
        if row.public_key_id is not None:
            fingerprint = PublicKeyRow.get_by_id(row.public_key_id).fingerprint
        if row.identity_verification_id is not None:
            from deploytrack.store.models import AttestationIdentityVerification

            signer = AttestationIdentityVerification.get_by_id(row.identity_verification_id)
            identity, issuer = signer.identity, signer.issuer
        out.append(
            AdmissionView(row.requirement, row.attestation.digest, fingerprint, identity, issuer)
        )
    return tuple(out)


def check(store: Store, stage_name: str, digest: str) -> Decision:
    """Would `deployment record` admit `digest` in this logical environment now? Writes nothing."""
    digest = validate.sha256(digest)
    with store.read():
        stage = logical_environments.get(store, stage_name)
        decision = evaluate(stage, digest)
        if not queries.digest_in_evidence(digest):
            reason = f"it {validate.NOT_IN_EVIDENCE}"
            return Decision(
                stage.name, digest, decision.policy, False, (reason, *decision.reasons), ()
            )
        return decision


__all__ = [
    "Decision",
    "admission_of",
    "admit",
    "check",
    "clear_policy",
    "evaluate",
    "get_policy",
    "in_force",
    "remember_admission",
    "set_policy",
    "show_policy",
]
