"""`attestation pull` and `--pull-evidence`: attestations attached to an image, from its
registry or its OCI layout, stored with every rule of `attestation import`.

Two steps, so that nothing is stored unless everything checks out, and no write lock is
held while the network is read:

1. `fetch`: resolve the reference exactly as `deployment record --oci-ref` does, list
   what is attached to its digest (deploytrack.registry.referrers), fetch the blobs of
   attestation types (bounded, checked against their digests) and parse each with the
   import's parser. Any registry or validation error raises here; the database is not
   opened.
2. `store_pulled`: one write transaction storing what is new, logged as one
   `attestation.pulled` event (none when nothing is new). `record_pulled` runs it and
   `deployment record` in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploytrack import timeutil
from deploytrack.registry import layout, referrers
from deploytrack.registry.media import DSSE_ENVELOPE, INTOTO_STATEMENT
from deploytrack.registry.reference import parse_reference
from deploytrack.services import ServiceError, evidence
from deploytrack.services.artifacts import (
    CHART_FILE,
    CONTAINER_IMAGE,
    OCI_ARCHIVE,
    OCI_LAYOUT,
    ArtifactResolver,
)

if TYPE_CHECKING:
    from deploytrack.evidence import ParsedAttestation
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.services.deployments import Slot
    from deploytrack.services.views.deployments import RecordResult
    from deploytrack.services.views.evidence import PullResult
    from deploytrack.store import Store


def is_attestation_type(media_type: str) -> bool:
    """Sigstore bundles (every spelling the parser knows), in-toto statements and DSSE
    envelopes; anything else attached (SBOMs, signatures) is skipped."""
    from deploytrack.evidence.parse import BUNDLE_MEDIA_TYPES

    bundles = {referrers.media_type(t) for t in BUNDLE_MEDIA_TYPES}
    return media_type in bundles or media_type in (DSSE_ENVELOPE, INTOTO_STATEMENT)


@dataclass(frozen=True)
class Found:
    """One referrer and, for an attestation, what the import's parser made of it."""

    attached: referrers.Attached
    parsed: ParsedAttestation | None
    reason: str | None


@dataclass(frozen=True)
class Fetched:
    """Everything a pull found, checked and parsed, nothing stored yet."""

    source: str  # the reference as given (references carry no credentials: flags do)
    digest: str
    artifact_ref: str
    found: tuple[Found, ...]


def _signs_a_message(data: bytes) -> bool:
    """A Sigstore bundle that signs a message rather than carrying a DSSE envelope: what
    `cosign sign` attaches in the bundle format, under the attestations' artifact type when
    no annotation says otherwise. A signature, skipped; never a refusal of the pull."""
    from deploytrack import jsondoc
    from deploytrack.evidence.parse import BUNDLE_MEDIA_TYPES, MAX_DOCUMENT_BYTES

    try:
        doc = jsondoc.loads(data, max_bytes=MAX_DOCUMENT_BYTES)
    except jsondoc.JSONError:
        return False  # the import's parser says what is wrong with it
    return (
        isinstance(doc, dict)
        and doc.get("mediaType") in BUNDLE_MEDIA_TYPES
        and "messageSignature" in doc
        and "dsseEnvelope" not in doc
    )


def _found(item: referrers.Attached, digest: str) -> Found:
    if item.data is None:
        reason = item.reason or f"not an attestation ({item.artifact_type or 'no type'})"
        return Found(item, None, reason)
    from deploytrack.evidence import parse_document

    if _signs_a_message(item.data):
        return Found(item, None, referrers.SIGNATURE)
    what = f"the attestation {item.blob} attached to {digest} ({item.source})"
    parsed = parse_document(item.data, what)
    if all(s.digest != digest for s in parsed.subjects):
        # Attached to the image, but about something else: not evidence for this digest.
        return Found(item, None, f"its statement does not name {digest}")
    return Found(item, parsed, None)


def fetch(
    text: str, options: RegistryOptions | None = None, kind: str = CONTAINER_IMAGE
) -> Fetched:
    """Resolve `text`, find and check what is attached to its digest; store nothing."""
    resolver = ArtifactResolver(options)
    resolved = resolver.resolve(kind, text)
    digest = resolved.digest
    if resolved.source in (OCI_LAYOUT, OCI_ARCHIVE):
        transport = "oci-archive" if resolved.source == OCI_ARCHIVE else "oci"
        location, _ = layout.split_transport(text, transport)
        attached = referrers.from_layout(transport, location, digest, is_attestation_type)
    elif resolved.source == CHART_FILE:
        raise ServiceError(
            f"{text} is a chart file: nothing is attached to a file; pull from the chart's "
            "registry (oci://REGISTRY/REPO/CHART:VERSION) or its OCI layout"
        )
    else:
        ref = parse_reference(text.removeprefix("oci://"))
        client = resolver.client(ref.registry)
        attached = referrers.from_registry(client, ref, digest, is_attestation_type)
    found = tuple(_found(item, digest) for item in attached)
    return Fetched(text, digest, resolved.artifact_ref, found)


def store_pulled(
    store: Store, fetched: Fetched, overrides: evidence.Overrides | None = None
) -> PullResult:
    """Store what `fetch` found that is new, in one transaction and one event."""
    from deploytrack.services.views.evidence import PulledReferrer, PullResult

    items = [f.parsed for f in fetched.found if f.parsed is not None]
    created: set[str] = set()
    if items:
        with store.write() as log:
            now = timeutil.now_us()
            created = set(
                evidence.insert_parsed_many(items, overrides or evidence.Overrides(), now)
            )
            log.log(
                "attestation.pulled",
                digests=sorted(created),
                subject=fetched.digest,
                source=fetched.source,
            )
    rows = []
    for f in fetched.found:
        item = f.attached
        if f.parsed is None:
            outcome, attestation = "skipped", None
        else:
            attestation = f.parsed.digest
            outcome = "imported" if attestation in created else "present"
            created.discard(attestation)  # a repeat of new bytes is present the second time
        rows.append(
            PulledReferrer(
                item.manifest, item.artifact_type, item.source, outcome, f.reason, attestation
            )
        )
    return PullResult(fetched.digest, tuple(rows))


def pull(
    store: Store,
    text: str,
    options: RegistryOptions | None = None,
    overrides: evidence.Overrides | None = None,
    kind: str = CONTAINER_IMAGE,
) -> PullResult:
    """`attestation pull`: fetch, then store."""
    return store_pulled(store, fetch(text, options, kind), overrides)


def record_pulled(
    store: Store, fetched: Fetched, slot: Slot, status: str
) -> tuple[PullResult, RecordResult]:
    """`deployment record --pull-evidence`: the pulled evidence and the record in one
    transaction, the record's rules (the stage policy) seeing what was pulled. A refused
    record stores nothing, pulled evidence included."""
    from deploytrack.services import deployments

    with store.write():
        pulled = store_pulled(store, fetched)
        result = deployments.record(
            store, slot, fetched.digest, artifact_ref=fetched.artifact_ref, status=status
        )
    return pulled, result


__all__ = ["Fetched", "fetch", "is_attestation_type", "pull", "record_pulled", "store_pulled"]
