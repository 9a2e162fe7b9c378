"""Pushing stored attestations to a registry as OCI 1.1 referrers of the image they name.

The rules: the attestation is in the evidence store (pushed byte for byte as stored), the
target is a registry reference resolved with the same flags and credentials as
`deployment record --oci-ref`, and the attestation must name the digest that reference
points to among its subjects (an attestation is attached only to what it attests). The
artifact type follows the format, as the tools that push attestations write it: a
Sigstore bundle as actions/attest-build-provenance does, a DSSE envelope, a bare in-toto
statement. Pushing changes nothing in the database: the store is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploytrack.digests import sha256_of
from deploytrack.registry import chart
from deploytrack.registry.media import DSSE_ENVELOPE, INTOTO_STATEMENT, SIGSTORE_BUNDLE_V03
from deploytrack.services import ServiceError

if TYPE_CHECKING:
    from deploytrack.crypto.keys import SigningKey
    from deploytrack.evidence import ParsedAttestation
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.registry.push import Artifact, ReferrersMode
    from deploytrack.registry.reference import Reference
    from deploytrack.services.attest import CreateRequest, CreateResult
    from deploytrack.services.views.push import PushResult
    from deploytrack.store import Store

# The annotation cosign and Docker put beside an in-toto layer; a bundle carries its own.
PREDICATE_TYPE_ANNOTATION = "in-toto.io/predicate-type"
_SHOWN_SUBJECTS = 3


def target_reference(text: str) -> Reference:
    """The registry reference of `--to`/`--push`: layouts and chart files are refused."""
    from deploytrack.registry.reference import parse_reference

    if text.startswith(("oci:", "oci-archive:")) and not text.startswith("oci://"):
        raise ServiceError(
            f"{text[:200]} is an OCI layout: attestations are pushed to a registry; give "
            "REGISTRY/REPOSITORY:TAG (or @sha256:...)"
        )
    if chart.is_chart_path(text) and not text.startswith("oci://"):
        raise ServiceError(
            f"{text[:200]} is a chart file: push to the chart in its registry, "
            "oci://REGISTRY/REPOSITORY:VERSION"
        )
    return parse_reference(text.removeprefix("oci://"))


def artifact_of(parsed: ParsedAttestation) -> Artifact:
    """The artifact type and annotations of an attestation, by its format."""
    from deploytrack.registry.push import Artifact

    if parsed.format == "sigstore-bundle":
        version = parsed.bundle_version or "0.3"
        media_type = (
            SIGSTORE_BUNDLE_V03
            if version == "0.3"
            else f"application/vnd.dev.sigstore.bundle+json;version={version}"
        )
        # What actions/attest-build-provenance writes (deploytrack stores only bundles
        # that carry a DSSE envelope).
        annotations = (
            ("dev.sigstore.bundle.content", "dsse-envelope"),
            ("dev.sigstore.bundle.predicateType", parsed.predicate_type),
        )
        return Artifact(parsed.raw, media_type, annotations)
    media_type = DSSE_ENVELOPE if parsed.format == "dsse" else INTOTO_STATEMENT
    return Artifact(parsed.raw, media_type, ((PREDICATE_TYPE_ANNOTATION, parsed.predicate_type),))


def push_parsed(
    parsed: ParsedAttestation,
    to: str,
    options: RegistryOptions | None,
    mode: ReferrersMode = "auto",
) -> PushResult:
    """Attach an attestation's bytes to the image `to` points to (no database access)."""
    from deploytrack.registry.push import ReferrerPusher
    from deploytrack.services.artifacts import ArtifactResolver
    from deploytrack.services.views.push import DescriptorView, PushResult

    ref = target_reference(to)
    pusher = ReferrerPusher(ArtifactResolver(options).client(ref.registry), ref)
    subject = pusher.subject()
    named = [s.digest for s in parsed.subjects]
    if subject.digest not in named:
        shown = ", ".join(named[:_SHOWN_SUBJECTS]) + (
            f" and {len(named) - _SHOWN_SUBJECTS} more" if len(named) > _SHOWN_SUBJECTS else ""
        )
        raise ServiceError(
            f"attestation {parsed.digest} does not name {subject.digest}, which {ref} points "
            f"to (its subjects: {shown}): push it to the image it attests"
        )
    artifact = artifact_of(parsed)
    done = pusher.push(subject, artifact, mode)
    return PushResult(
        attestation=parsed.digest,
        repository=ref.name,
        subject=DescriptorView(subject.media_type, subject.digest, subject.size),
        referrer=DescriptorView(done.manifest.media_type, done.manifest.digest, done.manifest.size),
        artifact_type=artifact.media_type,
        referrers=done.referrers,
        tag=done.tag,
        pushed=done.pushed,
        tag_updated=done.tag_updated,
    )


def push_attestation(
    store: Store,
    digest: str,
    to: str,
    options: RegistryOptions | None,
    mode: ReferrersMode = "auto",
) -> PushResult:
    """`attestation push`: a stored attestation (digest or unique prefix), byte for byte."""
    from deploytrack.evidence import parse_document
    from deploytrack.services.evidence import find_attestation
    from deploytrack.store.models import Blob

    target_reference(to)  # a malformed --to is refused before the database is read
    with store.read():
        row = find_attestation(digest)
        blob = Blob.get_or_none(Blob.digest == row.digest)
        data = bytes(blob.content) if blob is not None else b""
    if sha256_of(data) != row.digest:
        raise ServiceError(
            f"the stored bytes of attestation {row.digest} are missing or do not hash to it: "
            "run 'deploytrack doctor'"
        )
    return push_parsed(parse_document(data, f"attestation {row.digest}"), to, options, mode)


@dataclass(frozen=True)
class CreatedAndPushed:
    created: CreateResult
    pushed: PushResult

    @property
    def envelope(self) -> bytes:
        return self.created.envelope


def create_and_push(
    store: Store,
    request: CreateRequest,
    options: RegistryOptions | None,
    key: SigningKey | None,
    to: str,
    mode: ReferrersMode = "auto",
) -> CreatedAndPushed:
    """`attestation create --push`: the attestation is pushed once built and before it is
    stored, so a refused push stores nothing (the command can simply be run again)."""
    from deploytrack.services import attest

    target_reference(to)
    pushed: list[PushResult] = []
    created = attest.create_attestation(
        store,
        request,
        options,
        key,
        before_store=lambda parsed: pushed.append(push_parsed(parsed, to, options, mode)),
    )
    return CreatedAndPushed(created, pushed[0])


__all__ = [
    "CreatedAndPushed",
    "artifact_of",
    "create_and_push",
    "push_attestation",
    "push_parsed",
    "target_reference",
]
