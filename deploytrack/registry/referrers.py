"""What is attached to a digest: OCI 1.1 referrers in a registry or an OCI layout.

In a registry, in this order (distribution-spec 1.1 and cosign):

- the referrers API, `GET /v2/<name>/referrers/<digest>`, following `Link` pages;
- when the registry answers 404 there (distribution 2.8, ghcr.io), the referrers tag
  schema: the index tagged `sha256-<hex>`;
- and cosign's attestation tag `sha256-<hex>.att`, a manifest whose layers are DSSE
  envelopes (cosign writes it whatever the registry supports).

In a layout (`oci:DIR`, `oci-archive:FILE`): the manifests of index.json whose `subject`
is the digest, which is what `oras attach` and `oras copy -r` write.

The caller says which artifact types it wants (`wanted`); only their manifests and blobs
are fetched. Every manifest and blob fetched is bounded in size and checked against the
digest that named it; any inconsistency is a `RegistryError`. The registry client is
passed in: this module imports no HTTP library.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from deploytrack import jsondoc
from deploytrack.digests import normalize_sha256
from deploytrack.registry import RegistryError, layout
from deploytrack.registry.media import (
    BUNDLE_CONTENT_ANNOTATION,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MAX_MANIFEST_BYTES,
    MAX_PULLED_BYTES,
    MAX_REFERRER_PAGES,
    MAX_REFERRERS,
    MESSAGE_SIGNATURE,
)
from deploytrack.registry.reference import Reference

if TYPE_CHECKING:
    from deploytrack.registry.client import RegistryClient

Source = Literal["api", "tag", "cosign", "layout"]
SIGNATURE = "a signature (message-signature bundle), not an attestation"
Wanted = Callable[[str], bool]


@dataclass(frozen=True)
class Attached:
    """One thing attached to the digest: the manifest that attaches it, its artifact type
    (for a cosign layer, the layer's media type), where it was found, and, when it is of a
    wanted type, the blob's digest and bytes (checked)."""

    manifest: str
    artifact_type: str
    source: Source
    blob: str | None = None
    data: bytes | None = None
    reason: str | None = None  # why a wanted type holds nothing to read


def media_type(value: Any) -> str:
    """A media type as compared: parameters kept, spaces and case dropped."""
    return "".join(value.split()).lower() if isinstance(value, str) else ""


def tag_schema(digest: str) -> str:
    """The tag of the referrers tag schema (distribution-spec 1.1): `sha256-<hex>`."""
    return digest.replace(":", "-", 1)


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = jsondoc.loads(body, max_bytes=MAX_MANIFEST_BYTES)
    except jsondoc.JSONError as exc:
        raise RegistryError(f"{what} is {exc}") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return doc


def _list(doc: dict[str, Any], field: str, what: str) -> list[dict[str, Any]]:
    items = doc.get(field, [])
    if items is None:
        items = []
    if not isinstance(items, list) or not all(isinstance(d, dict) for d in items):
        raise RegistryError(f"{what}: '{field}' is not a list of descriptors")
    return items


def _digest(descriptor: dict[str, Any], what: str) -> str:
    digest = normalize_sha256(str(descriptor.get("digest", "")))
    if digest is None:
        raise RegistryError(
            f"{what} names {str(descriptor.get('digest'))[:80]!r}: deploytrack reads sha256 "
            "digests only"
        )
    return digest


def _size(descriptor: dict[str, Any], what: str) -> None:
    """Refuse what its descriptor says is too large, before a request (a read past the
    limit is refused too, for a descriptor that lies)."""
    size = descriptor.get("size")
    if isinstance(size, int) and size > MAX_MANIFEST_BYTES:
        raise RegistryError(
            f"{what} is {size} bytes, more than the {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB "
            "limit for one manifest or attestation"
        )


def artifact_type(manifest: dict[str, Any]) -> str:
    """OCI 1.1: the manifest's artifactType, else its config's media type."""
    declared = manifest.get("artifactType")
    if isinstance(declared, str) and declared:
        return declared
    config = manifest.get("config")
    return str(config.get("mediaType", "")) if isinstance(config, dict) else ""


def _layers(manifest: dict[str, Any], kind: str, wanted: Wanted, what: str) -> list[str]:
    """The layers that hold the attestation: those of a wanted media type, or the only
    layer of a manifest whose artifact type is wanted (`oras attach` types files
    application/vnd.oci.image.layer.v1.tar unless told otherwise)."""
    layers = _list(manifest, "layers", what)
    chosen = [_digest(d, what) for d in layers if wanted(media_type(d.get("mediaType")))]
    if not chosen and wanted(media_type(kind)) and len(layers) == 1:
        chosen = [_digest(layers[0], what)]
    for d in layers:
        if d.get("digest") is not None and normalize_sha256(str(d["digest"])) in chosen:
            _size(d, f"{what}: layer {d['digest']}")
    return chosen


def _signs_a_message(item: dict[str, Any]) -> bool:
    """A Sigstore bundle referrer annotated as holding a signature (cosign's new bundle
    format for `cosign sign` has the attestations' artifact type)."""
    annotations = item.get("annotations")
    return isinstance(annotations, dict) and (
        annotations.get(BUNDLE_CONTENT_ANNOTATION) == MESSAGE_SIGNATURE
    )


def _bounded(descriptors: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    if len(descriptors) > MAX_REFERRERS:
        raise RegistryError(
            f"{where} lists {len(descriptors)} referrers, more than the {MAX_REFERRERS} "
            "deploytrack reads for one digest"
        )
    return descriptors


class _Reader(ABC):
    """Fetches manifests and blobs from one place, each checked against its digest."""

    where: str
    pulled = 0  # attestation bytes read so far

    @abstractmethod
    def manifest(self, digest: str) -> bytes: ...

    @abstractmethod
    def fetch_blob(self, digest: str) -> bytes: ...

    def blob(self, digest: str) -> bytes:
        """An attestation's bytes, counted against the bound of one pull."""
        data = self.fetch_blob(digest)
        self.pulled += len(data)
        if self.pulled > MAX_PULLED_BYTES:
            raise RegistryError(
                f"{self.where} attaches more than {MAX_PULLED_BYTES // (1024 * 1024)} MiB of "
                "attestations to one digest: refused"
            )
        return data

    def attached(
        self, digest: str, descriptor: dict[str, Any], source: Source, wanted: Wanted
    ) -> Iterator[Attached]:
        """What one referrer descriptor attaches: skipped by its type without a request
        when the descriptor carries one, else read from its manifest."""
        what = f"a referrer of {digest} in {self.where}"
        manifest_digest = _digest(descriptor, what)
        if manifest_digest == digest:
            raise RegistryError(f"{self.where} lists {digest} as a referrer of itself: a loop")
        declared = media_type(descriptor.get("artifactType"))
        if descriptor.get("mediaType") in INDEX_MEDIA_TYPES:
            yield Attached(
                manifest_digest,
                str(descriptor.get("artifactType") or descriptor["mediaType"]),
                source,
                reason="an index of artifacts, not an attestation manifest",
            )
            return
        if declared and not wanted(declared):
            yield Attached(manifest_digest, str(descriptor["artifactType"]), source)
            return
        if _signs_a_message(descriptor):
            yield Attached(
                manifest_digest, str(descriptor.get("artifactType")), source, reason=SIGNATURE
            )
            return
        _size(descriptor, f"referrer manifest {manifest_digest}")
        where = f"referrer manifest {manifest_digest} in {self.where}"
        body = self.manifest(manifest_digest)
        manifest = _json(body, where)
        subject = manifest.get("subject")
        named = _digest(subject, f"{where}: subject") if isinstance(subject, dict) else None
        if named != digest:
            raise RegistryError(
                f"{self.where} lists {manifest_digest} as a referrer of {digest}, but its "
                f"subject is {named or 'missing'}"
            )
        kind = artifact_type(manifest)
        if _signs_a_message(manifest):
            yield Attached(manifest_digest, kind, source, reason=SIGNATURE)
            return
        if not wanted(media_type(kind)) and not any(
            wanted(media_type(d.get("mediaType"))) for d in _list(manifest, "layers", where)
        ):
            yield Attached(manifest_digest, kind, source)
            return
        layers = _layers(manifest, kind, wanted, where)
        if not layers:
            yield Attached(manifest_digest, kind, source, reason="it has no attestation layer")
        for layer in layers:
            yield Attached(manifest_digest, kind, source, layer, self.blob(layer))


class _RegistryReader(_Reader):
    def __init__(self, client: RegistryClient, ref: Reference) -> None:
        self.client = client
        self.ref = ref
        self.where = ref.name

    def _at(self, target: str) -> Reference:
        digest = normalize_sha256(target)
        return Reference(self.ref.registry, self.ref.repository, None if digest else target, digest)

    def manifest(self, digest: str) -> bytes:
        fetched = self.client.fetch(self._at(digest))
        if fetched.digest != digest or fetched.body is None:
            raise RegistryError(
                f"{self.where} served a manifest for {digest} whose sha256 is {fetched.digest}"
            )
        return fetched.body

    def fetch_blob(self, digest: str) -> bytes:
        return self.client.blob(self.ref, digest, MAX_MANIFEST_BYTES)

    def listing(self, digest: str) -> tuple[Source, list[dict[str, Any]]]:
        """The referrers API's descriptors, or the referrers tag schema's when it has none."""
        page = self.client.referrers(self.ref, digest)
        if page is None:
            index = self.client.fetch_if_present(self._at(tag_schema(digest)))
            if index is None:
                return "tag", []
            what = f"the referrers index {self.ref.name}:{tag_schema(digest)}"
            if index.media_type not in INDEX_MEDIA_TYPES:
                raise RegistryError(f"{what} is {index.media_type}, not an image index")
            assert index.body is not None
            return "tag", _list(_json(index.body, what), "manifests", what)
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            what = f"the referrers of {digest} from {self.ref.registry}"
            found += _list(_json(page.body, what), "manifests", what)
            if page.next_url is None:
                return "api", found
            if page.next_url in seen or len(seen) >= MAX_REFERRER_PAGES:
                raise RegistryError(
                    f"{what}: the pages link back to one already read (a loop of indexes) "
                    f"or run past {MAX_REFERRER_PAGES}"
                )
            seen.add(page.next_url)
            page = self.client.referrers(self.ref, digest, page.next_url)
            assert page is not None

    def cosign(self, digest: str, wanted: Wanted) -> Iterator[Attached]:
        """cosign's `sha256-<hex>.att`: one attestation per DSSE layer."""
        att = self.client.fetch_if_present(self._at(tag_schema(digest) + ".att"))
        if att is None:
            return
        assert att.body is not None
        what = f"cosign's attestations {self.ref.name}:{tag_schema(digest)}.att"
        for descriptor in _list(_json(att.body, what), "layers", what):
            layer = _digest(descriptor, what)
            kind = str(descriptor.get("mediaType", ""))
            if not wanted(media_type(kind)):
                yield Attached(att.digest, kind, "cosign")
                continue
            _size(descriptor, f"{what}: layer {layer}")
            yield Attached(att.digest, kind, "cosign", layer, self.blob(layer))


def from_registry(
    client: RegistryClient, ref: Reference, digest: str, wanted: Wanted
) -> list[Attached]:
    """Everything attached to `digest` in `ref`'s repository (see the module docstring)."""
    reader = _RegistryReader(client, ref)
    source, descriptors = reader.listing(digest)
    _bounded(descriptors, f"{ref.name} ({source})")
    found: list[Attached] = []
    seen: set[str] = set()
    for descriptor in descriptors:
        key = str(descriptor.get("digest"))
        if key in seen:  # a page may repeat a descriptor; one fetch is enough
            continue
        seen.add(key)
        found += reader.attached(digest, descriptor, source, wanted)
    found += reader.cosign(digest, wanted)
    return found


class _LayoutReader(_Reader):
    def __init__(self, source: Any, where: str) -> None:
        self.source = source
        self.where = where

    def manifest(self, digest: str) -> bytes:
        return layout.read_blob(self.source, digest, MAX_MANIFEST_BYTES)

    def fetch_blob(self, digest: str) -> bytes:
        return layout.read_blob(self.source, digest, MAX_MANIFEST_BYTES)


def from_layout(transport: str, location: str, digest: str, wanted: Wanted) -> list[Attached]:
    """The manifests of the layout's index.json whose subject is `digest`, read offline."""
    source = layout.open_source(transport, location)
    try:
        reader = _LayoutReader(source, source.where)
        found: list[Attached] = []
        matches: list[dict[str, Any]] = []
        for descriptor in layout.descriptors(source):
            if descriptor.get("mediaType") not in MANIFEST_MEDIA_TYPES:
                continue
            named = normalize_sha256(str(descriptor.get("digest", "")))
            # Other images of the layout are no concern of this pull, whatever their digest.
            if named in (None, digest) or descriptor.get("mediaType") in INDEX_MEDIA_TYPES:
                continue
            assert named is not None
            _size(descriptor, f"{source.where}: manifest {named}")
            manifest = _json(reader.manifest(named), f"{source.where}: manifest {named}")
            subject = manifest.get("subject")
            if (
                not isinstance(subject, dict)
                or normalize_sha256(str(subject.get("digest", ""))) != digest
            ):
                continue  # another image, or a referrer of something else
            matches.append(descriptor)
        for descriptor in _bounded(matches, source.where):
            found += reader.attached(digest, descriptor, "layout", wanted)
        return found
    finally:
        source.close()


__all__ = ["Attached", "Source", "artifact_type", "from_layout", "from_registry", "tag_schema"]
