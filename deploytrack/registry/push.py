"""Attach an artifact to an image as an OCI 1.1 referrer: what `attestation push` sends.

A referrer is an OCI image manifest whose `subject` is the image's descriptor, with an
`artifactType`, the empty config (`{}`) and one layer holding the artifact's exact bytes.
A registry learns of it in one of two ways (distribution-spec 1.1):

- the **referrers API** (`GET /v2/<name>/referrers/<digest>`): the registry indexes
  manifests that have a subject itself, so pushing the manifest is all there is to do;
- the **referrers tag schema**, for registries without that API (distribution 2.8,
  ghcr.io): the tag `sha256-<hex>` holds an OCI index of the subject's referrers, which
  each pusher reads, adds its descriptor to, and writes back.

The order keeps a refusal from leaving anything half done: the subject, the probe, the
tag index read and checked, then the blobs, the manifest, and only then the index, so an
index entry never names a manifest the registry does not have. Each step whose result is
in the registry already is skipped: pushing the same artifact again uploads no blob, puts
no manifest and rewrites no index. The manifest is serialised the same way every time
(no creation time in it), so the same artifact on the same subject has one digest.

Requests go through `RegistryClient.call` (credentials, TLS, timeouts): this module does
not import oras itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urljoin, urlsplit

from deploytrack import jsondoc
from deploytrack.digests import sha256_of
from deploytrack.registry import RegistryError
from deploytrack.registry.media import (
    EMPTY_DIGEST,
    EMPTY_JSON,
    MANIFEST_MEDIA_TYPES,
    MAX_MANIFEST_BYTES,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
)
from deploytrack.registry.reference import api_host

if TYPE_CHECKING:
    from deploytrack.registry.client import Answer, RegistryClient
    from deploytrack.registry.reference import Reference

ReferrersMode = Literal["auto", "api", "tag"]
REFERRERS_MODES: tuple[ReferrersMode, ...] = ("auto", "api", "tag")
Referrers = Literal["api", "tag"]

ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
# A registry's own words in a refusal are cut here: one readable line.
_SHOWN_MESSAGE = 200


@dataclass(frozen=True)
class Descriptor:
    """What a manifest points to: media type, digest and size (OCI descriptor)."""

    media_type: str
    digest: str
    size: int

    def oci(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Artifact:
    """What to attach: its bytes, its media type (the layer's and the manifest's
    artifactType) and the manifest's annotations."""

    data: bytes
    media_type: str
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Pushed:
    """What a push did. `pushed` is False when the registry had the manifest already."""

    manifest: Descriptor
    pushed: bool
    blobs_uploaded: int
    referrers: Referrers
    tag: str | None  # the referrers tag (tag schema), None with the API
    tag_updated: bool  # the tag's index was written (False: it listed the manifest already)


def referrers_tag(digest: str) -> str:
    """The tag schema's tag for a subject: `<algorithm>-<hex>`, at most 128 characters."""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}-{value}"[:128]


def _compact(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_bytes(subject: Descriptor, artifact: Artifact) -> bytes:
    """The referrer manifest, serialised the same way every time (its digest is stable)."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact.media_type,
        # The empty descriptor with its data inline (e30= is base64 of {}), as the image
        # spec shows it; the blob is uploaded too, since registries check that it exists.
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
        "layers": [
            {
                "mediaType": artifact.media_type,
                "digest": sha256_of(artifact.data),
                "size": len(artifact.data),
            }
        ],
        "subject": subject.oci(),
    }
    if artifact.annotations:
        doc["annotations"] = dict(artifact.annotations)
    return _compact(doc)


def index_entry(manifest: Descriptor, artifact: Artifact) -> dict[str, Any]:
    """The manifest's descriptor in a referrers index: artifactType and annotations copied,
    as the referrers API shows them."""
    entry = {**manifest.oci(), "artifactType": artifact.media_type}
    if artifact.annotations:
        entry["annotations"] = dict(artifact.annotations)
    return entry


def _registry_words(body: bytes) -> str:
    """`: CODE message` from a registry's JSON error body, when it has one."""
    try:
        errors = json.loads(body.decode("utf-8", "replace")).get("errors")
        first = errors[0]
        words = f"{first.get('code', '')} {first.get('message', '')}".strip()
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        return ""
    return f": {words[:_SHOWN_MESSAGE]}" if words else ""


class ReferrerPusher:
    """Pushes referrers of one repository's manifests (`ref`'s repository)."""

    def __init__(self, client: RegistryClient, ref: Reference) -> None:
        self.client = client
        self.ref = ref
        self.repository = ref.repository
        self.where = ref.name

    def _path(self, kind: str, target: str) -> str:
        return f"/v2/{self.repository}/{kind}/{target}"

    def _refused(self, answer: Answer, doing: str) -> RegistryError:
        host, status = self.client.registry, answer.status
        if status == 401:
            credentials = self.client.credentials
            if credentials is not None and self.client.oras.auth.sent_credentials:
                return RegistryError(
                    f"authentication failed: {host} refused {credentials} for "
                    f"{self.repository} while {doing} (wrong password, or no push access)"
                )
            return RegistryError(
                f"authentication required: {host} wants a login to push to {self.repository}: "
                f"give --registry-server {host} --registry-username USER "
                "--registry-password-stdin, or log in with docker login"
            )
        if status == 403:
            who = str(self.client.credentials) if self.client.credentials else "anonymous requests"
            return RegistryError(
                f"access denied: {host} refuses {who} push access to {self.repository} "
                f"(while {doing})"
            )
        words = _registry_words(answer.body)
        what = "registry server error: " if status >= 500 else ""
        return RegistryError(
            f"{what}{host} answered HTTP {status} {answer.reason} while {doing} in "
            f"{self.repository}{words}"
        )

    # --- reading -------------------------------------------------------------------------

    def subject(self) -> Descriptor:
        """The descriptor of the manifest `ref` names (one GET: its size is needed)."""
        found = self.client.fetch(self.ref)
        assert found.body is not None
        if self.ref.digest is not None and found.digest != self.ref.digest:
            raise RegistryError(
                f"{self.client.registry} served {found.digest} for {self.ref}: refusing it"
            )
        return Descriptor(found.media_type, found.digest, len(found.body))

    def has_referrers_api(self, subject: Descriptor) -> bool:
        """Whether the registry answers the referrers API: 200 with an index, or 404."""
        path = self._path("referrers", subject.digest)
        answer = self.client.call("GET", path, headers={"Accept": OCI_INDEX})
        if answer.status == 404:
            return False
        if answer.status in (401, 403):
            raise self._refused(answer, "asking for the referrers of " + subject.digest)
        if answer.status == 200 and not answer.too_large:
            try:
                doc = jsondoc.loads(answer.body, max_bytes=MAX_MANIFEST_BYTES)
            except jsondoc.JSONError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("manifests"), list):
                return True
        raise RegistryError(
            f"cannot tell whether {self.client.registry} has the referrers API: GET {path} "
            f"answered HTTP {answer.status} {answer.reason} without a referrers index; give "
            "--referrers-mode tag (the referrers tag) or api"
        )

    def read_index(self, tag: str) -> dict[str, Any] | None:
        """The referrers tag's index, checked; None when the tag does not exist yet."""
        # Every manifest type is accepted: asked for an index only, a registry answers 404
        # for an image under that tag, which would then be overwritten.
        answer = self.client.call("GET", self._path("manifests", tag), headers={"Accept": ACCEPT})
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise self._refused(answer, f"reading the referrers tag {tag}")
        fix = (
            "delete that tag, or push with --referrers-mode api to a registry that has the "
            "referrers API"
        )
        if answer.too_large:
            raise RegistryError(
                f"the referrers tag {tag} of {self.where} is larger than "
                f"{MAX_MANIFEST_BYTES // (1024 * 1024)} MiB: refusing to read or rewrite it; " + fix
            )
        try:
            doc = jsondoc.loads(answer.body, max_bytes=MAX_MANIFEST_BYTES)
        except jsondoc.JSONError as exc:
            raise RegistryError(
                f"the referrers tag {tag} of {self.where} is not a referrers index: it is "
                f"{exc}; {fix}"
            ) from None
        manifests = doc.get("manifests") if isinstance(doc, dict) else None
        if (
            not isinstance(doc, dict)
            or doc.get("mediaType") != OCI_INDEX
            or not isinstance(manifests, list)
            or not all(isinstance(m, dict) for m in manifests)
        ):
            shown = doc.get("mediaType") if isinstance(doc, dict) else None
            raise RegistryError(
                f"the referrers tag {tag} of {self.where} is not a referrers index (an OCI "
                f"image index; it holds {shown if isinstance(shown, str) else 'another document'}"
                f"): {fix}"
            )
        return doc

    def exists(self, kind: str, digest: str) -> bool:
        """HEAD a manifest or blob by digest."""
        headers = {"Accept": ACCEPT} if kind == "manifests" else {}
        answer = self.client.call("HEAD", self._path(kind, digest), headers=headers)
        if answer.status == 200:
            return True
        if answer.status == 404:
            return False
        raise self._refused(answer, f"looking for {digest}")

    # --- writing -------------------------------------------------------------------------

    def upload(self, data: bytes, digest: str) -> None:
        """A blob in two requests: POST opens the upload, PUT sends the bytes and digest."""
        start = self._path("blobs", "uploads/")
        opened = self.client.call("POST", start, data=b"")
        if opened.status != 202:
            raise self._refused(opened, f"starting the upload of {digest}")
        location = opened.headers.get("location", "")
        base = f"{self.client.scheme}://{api_host(self.client.registry)}"
        url = urljoin(base + start, location)
        if not location or urlsplit(url)[:2] != urlsplit(base)[:2]:
            # The login goes with the upload: it is sent to no other host than the registry's.
            raise RegistryError(
                f"{self.client.registry} sent the upload of {digest} to "
                f"{urlsplit(url).netloc or 'no location'}: refusing to send it elsewhere"
            )
        url += ("&" if "?" in url else "?") + "digest=" + quote(digest, safe="")
        headers = {"Content-Type": "application/octet-stream"}
        done = self.client.call("PUT", url, headers=headers, data=data)
        if done.status != 201:
            raise self._refused(done, f"uploading {digest}")

    def put_manifest(self, target: str, body: bytes, media_type: str) -> None:
        answer = self.client.call(
            "PUT", self._path("manifests", target), headers={"Content-Type": media_type}, data=body
        )
        if answer.status != 201:
            raise self._refused(answer, f"putting the manifest {target}")

    def push(self, subject: Descriptor, artifact: Artifact, mode: ReferrersMode) -> Pushed:
        """Attach `artifact` to `subject`; see the module docstring for the order."""
        body = manifest_bytes(subject, artifact)
        manifest = Descriptor(OCI_MANIFEST, sha256_of(body), len(body))
        tag = referrers_tag(subject.digest)
        use_api = mode != "tag" and self.has_referrers_api(subject)
        if mode == "api" and not use_api:
            raise RegistryError(
                f"{self.client.registry} has no referrers API (GET "
                f"{self._path('referrers', subject.digest)} answered 404): push with "
                f"--referrers-mode auto or tag, which keep the referrers tag {tag}"
            )
        new_index: bytes | None = None
        if not use_api:
            index = self.read_index(tag)
            entries: list[Any] = index["manifests"] if index is not None else []
            if not any(e.get("digest") == manifest.digest for e in entries):
                doc = index if index is not None else {"schemaVersion": 2, "mediaType": OCI_INDEX}
                new_index = _compact(
                    {**doc, "manifests": [*entries, index_entry(manifest, artifact)]}
                )
                if len(new_index) > MAX_MANIFEST_BYTES:
                    raise RegistryError(
                        f"the referrers tag {tag} of {self.where} would grow past "
                        f"{MAX_MANIFEST_BYTES // (1024 * 1024)} MiB: nothing pushed"
                    )
        pushed = not self.exists("manifests", manifest.digest)
        uploaded = 0
        if pushed:
            for data in (EMPTY_JSON, artifact.data):
                digest = sha256_of(data)
                if not self.exists("blobs", digest):
                    self.upload(data, digest)
                    uploaded += 1
            self.put_manifest(manifest.digest, body, OCI_MANIFEST)
        if new_index is not None:
            self.put_manifest(tag, new_index, OCI_INDEX)
        return Pushed(
            manifest=manifest,
            pushed=pushed,
            blobs_uploaded=uploaded,
            referrers="api" if use_api else "tag",
            tag=None if use_api else tag,
            tag_updated=new_index is not None,
        )


__all__ = [
    "REFERRERS_MODES",
    "Artifact",
    "Descriptor",
    "Pushed",
    "ReferrerPusher",
    "ReferrersMode",
    "index_entry",
    "manifest_bytes",
    "referrers_tag",
]
