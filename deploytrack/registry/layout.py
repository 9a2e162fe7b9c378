"""Resolve a tag from an OCI image layout, a folder (`oci:DIR[:TAG]`) or a tar of one
(`oci-archive:FILE[:TAG]`), with no network, as skopeo's transports of those names do.

A tag is the `org.opencontainers.image.ref.name` annotation of a descriptor in the
layout's index.json; without a tag the layout must hold exactly one manifest. The
manifest blob the descriptor names must be in the layout with that sha256.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from deploytrack import jsondoc
from deploytrack.digests import normalize_sha256
from deploytrack.files import read_at_most
from deploytrack.registry import RegistryError
from deploytrack.registry.media import MANIFEST_MEDIA_TYPES, MAX_INDEX_BYTES, MAX_MANIFEST_BYTES

REF_NAME = "org.opencontainers.image.ref.name"
_SHOWN = 10


@dataclass(frozen=True)
class LayoutManifest:
    """The manifest a layout tag names: digest, media type, body, and the tag it carries."""

    digest: str
    media_type: str
    body: bytes
    ref_name: str | None


def split_transport(text: str, transport: str) -> tuple[str, str | None]:
    """`oci:DIR[:TAG]` -> (DIR, TAG): split at the first ':' after the transport, as skopeo."""
    rest = text[len(transport) + 1 :]
    location, sep, tag = rest.partition(":")
    if not location:
        raise RegistryError(f"invalid reference {text!r}: give {transport}:PATH[:TAG]")
    if sep and not tag:
        raise RegistryError(f"invalid reference {text!r}: the tag after ':' is empty")
    return location, (tag if sep else None)


class _Source(Protocol):
    where: str

    def read(self, name: str, limit: int) -> bytes | None: ...


class _Folder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = f"OCI layout {path}"
        if not path.is_dir():
            raise RegistryError(f"no OCI layout at {path}: it is not a folder")

    def read(self, name: str, limit: int) -> bytes | None:
        try:
            return read_at_most(self.path / name, limit)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"cannot read {self.path / name}: {exc.strerror}") from None

    def close(self) -> None:
        """A folder holds nothing open."""


class _Archive:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = f"OCI archive {path}"
        try:
            self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise RegistryError(f"no OCI archive at {path}: the file does not exist") from None
        except IsADirectoryError:
            raise RegistryError(
                f"{path} is a folder: use oci:{path}[:TAG] for a layout folder"
            ) from None
        except (tarfile.TarError, OSError) as exc:
            raise RegistryError(f"{path} is not a tar archive of an OCI layout ({exc})") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            for member in self.tar.getmembers():
                name = str(PurePosixPath(member.name))
                self.members[name.removeprefix("./")] = member
        except (tarfile.TarError, OSError, EOFError) as exc:
            self.tar.close()
            raise RegistryError(f"{path} is not a readable tar archive ({exc})") from None

    def read(self, name: str, limit: int) -> bytes | None:
        member = self.members.get(name)
        if member is None or not member.isfile():
            return None
        try:
            handle = self.tar.extractfile(member)
            assert handle is not None
            with handle:
                return handle.read(limit + 1)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise RegistryError(f"cannot read {name} from {self.path} ({exc})") from None

    def close(self) -> None:
        self.tar.close()


def _descriptors(source: _Source) -> list[dict[str, Any]]:
    marker = source.read("oci-layout", 4096)
    if marker is None:
        raise RegistryError(f"{source.where} is not an OCI image layout: it has no oci-layout file")
    raw = source.read("index.json", MAX_INDEX_BYTES)
    if raw is None:
        raise RegistryError(f"{source.where} has no index.json")
    if len(raw) > MAX_INDEX_BYTES:
        raise RegistryError(f"{source.where}: index.json is larger than 16 MiB")
    try:
        index = jsondoc.loads(raw, max_bytes=MAX_INDEX_BYTES)
    except jsondoc.JSONError as exc:
        raise RegistryError(f"{source.where}: index.json is {exc}") from None
    try:
        manifests = index["manifests"]
        if not isinstance(manifests, list) or not all(isinstance(d, dict) for d in manifests):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise RegistryError(
            f"{source.where}: index.json is not an OCI index (no 'manifests' list)"
        ) from None
    return manifests


def _ref_name(descriptor: dict[str, Any]) -> str | None:
    annotations = descriptor.get("annotations")
    if isinstance(annotations, dict) and isinstance(name := annotations.get(REF_NAME), str):
        return name
    return None


def _shown(descriptors: list[dict[str, Any]]) -> str:
    names = [_ref_name(d) or str(d.get("digest", "?")) for d in descriptors]
    return ", ".join(names[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")


def _select(source: _Source, tag: str | None, text: str) -> dict[str, Any]:
    descriptors = _descriptors(source)
    if not descriptors:
        raise RegistryError(f"{source.where} holds no manifest")
    if tag is None:
        if len(descriptors) == 1:
            return descriptors[0]
        raise RegistryError(
            f"{source.where} holds {len(descriptors)} manifests: name one with "
            f"{text}:TAG, one of: {_shown(descriptors)}"
        )
    matches = [d for d in descriptors if _ref_name(d) == tag]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        tagged = [d for d in descriptors if _ref_name(d) is not None]
        have = f"its tags: {_shown(tagged)}" if tagged else "it has no tagged manifest"
        raise RegistryError(f"tag {tag} is not in {source.where} ({have})")
    digests = ", ".join(str(d.get("digest")) for d in matches[:_SHOWN])
    raise RegistryError(
        f"tag {tag} names {len(matches)} manifests in {source.where} ({digests}): give the "
        "digest with --digest instead"
    )


def _manifest(source: _Source, descriptor: dict[str, Any]) -> LayoutManifest:
    digest = normalize_sha256(str(descriptor.get("digest", "")))
    if digest is None:
        raise RegistryError(
            f"{source.where} names the manifest by {descriptor.get('digest')!r}: deploytrack "
            "records sha256 digests only"
        )
    media_type = descriptor.get("mediaType")
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise RegistryError(
            f"{source.where}: {digest} is {media_type or 'of no media type'}, not an image "
            "manifest or index"
        )
    body = source.read(f"blobs/sha256/{digest.removeprefix('sha256:')}", MAX_MANIFEST_BYTES)
    if body is None:
        raise RegistryError(f"{source.where} is incomplete: the blob of {digest} is missing")
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        raise RegistryError(f"{source.where} is corrupt: the blob of {digest} has another sha256")
    return LayoutManifest(digest, media_type, body, _ref_name(descriptor))


def open_source(transport: str, location: str) -> _Folder | _Archive:
    """The layout `oci:` (a folder) or `oci-archive:` (a tar) names; close an archive."""
    return _Archive(Path(location)) if transport == "oci-archive" else _Folder(Path(location))


def descriptors(source: _Source) -> list[dict[str, Any]]:
    """The descriptors of the layout's index.json (bounded, checked to be an OCI index)."""
    return _descriptors(source)


def read_blob(source: _Source, digest: str, limit: int) -> bytes:
    """A blob of the layout, refused when missing, past `limit` bytes, or of another sha256."""
    body = source.read(f"blobs/sha256/{digest.removeprefix('sha256:')}", limit)
    if body is None:
        raise RegistryError(f"{source.where} is incomplete: the blob of {digest} is missing")
    if len(body) > limit:
        raise RegistryError(
            f"{source.where}: the blob of {digest} is larger than {limit // (1024 * 1024)} MiB"
        )
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        raise RegistryError(f"{source.where} is corrupt: the blob of {digest} has another sha256")
    return body


def resolve_folder(path: str, tag: str | None, text: str) -> LayoutManifest:
    source = _Folder(Path(path))
    return _manifest(source, _select(source, tag, text))


def resolve_archive(path: str, tag: str | None, text: str) -> LayoutManifest:
    source = _Archive(Path(path))
    try:
        return _manifest(source, _select(source, tag, text))
    finally:
        source.close()


def absolute(path: str) -> str:
    """The path recorded in artifact_ref: absolute, without resolving symlinks."""
    return os.path.abspath(path)
