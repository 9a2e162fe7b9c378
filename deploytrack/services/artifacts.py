"""Which digest an artifact reference names, before anything is recorded.

One entry point, `resolve_artifact(kind, text, options)` (or an `ArtifactResolver` to
resolve several references with shared registry sessions and tokens). By form of `text`:

    name@sha256:... / name:tag@sha256:...   the digest, with no request (the digest wins)
    oci:DIR[:TAG]                           an OCI image layout folder (no network)
    oci-archive:FILE[:TAG]                  a tar of one (no network)
    CHART.tgz (HELM_CHART)                  the sha256 of a packaged chart file
    oci://registry/repo/chart:version       a chart in a registry (HELM_CHART; config checked)
    registry/repo:tag, nginx, ...           what the tag points to in the registry

The registry client (oras) is imported only for the last two forms.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploytrack import jsondoc
from deploytrack.registry import RegistryError, chart, layout
from deploytrack.registry.credentials import credentials_for
from deploytrack.registry.media import (
    HELM_CONFIG_MEDIA_TYPE,
    INDEX_MEDIA_TYPES,
    MAX_MANIFEST_BYTES,
)
from deploytrack.registry.options import RegistryOptions
from deploytrack.registry.reference import parse_reference
from deploytrack.services import validate

if TYPE_CHECKING:
    from deploytrack.registry.client import RegistryClient

CONTAINER_IMAGE = "CONTAINER_IMAGE"
HELM_CHART = "HELM_CHART"
_HELM_SCHEME = "oci://"

# Where a digest came from (ResolvedArtifact.source).
PINNED = "pinned"
REGISTRY = "registry"
OCI_LAYOUT = "oci-layout"
OCI_ARCHIVE = "oci-archive"
CHART_FILE = "chart-file"


@dataclass(frozen=True)
class ResolvedArtifact:
    """The digest to record, and the reference as given, normalised, for artifact_ref."""

    digest: str
    artifact_ref: str
    source: str
    media_type: str | None = None


def _check_helm(body: bytes, media_type: str, what: str) -> None:
    if media_type in INDEX_MEDIA_TYPES:
        raise RegistryError(f"{what} is an image index, not a Helm chart")
    try:
        manifest: Any = jsondoc.loads(body, max_bytes=MAX_MANIFEST_BYTES)
    except jsondoc.JSONError as exc:
        raise RegistryError(f"the manifest of {what} is {exc}") from None
    try:
        config_type = manifest["config"]["mediaType"]
    except (KeyError, TypeError):
        config_type = None
    if config_type != HELM_CONFIG_MEDIA_TYPE:
        raise RegistryError(
            f"{what} is not a Helm chart: its config media type is "
            f"{config_type or 'missing'}, not {HELM_CONFIG_MEDIA_TYPE}"
        )


class ArtifactResolver:
    """Resolves references with one set of registry options; reuses a client per registry."""

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options if options is not None else RegistryOptions()
        self._clients: dict[str, RegistryClient] = {}

    def resolve(self, kind: str, text: str) -> ResolvedArtifact:
        kind = validate.kind(kind)
        if text.startswith("oci-archive:"):
            return self._layout(kind, text, "oci-archive", layout.resolve_archive, OCI_ARCHIVE)
        if text.startswith("oci:") and not text.startswith(_HELM_SCHEME):
            return self._layout(kind, text, "oci", layout.resolve_folder, OCI_LAYOUT)
        if chart.is_chart_path(text) and not text.startswith(_HELM_SCHEME):
            if kind != HELM_CHART:
                raise RegistryError(f"{text} names a chart file: give --kind HELM_CHART")
            found = chart.read_chart(text)
            return ResolvedArtifact(found.digest, os.path.abspath(text), CHART_FILE)
        prefix = _HELM_SCHEME if text.startswith(_HELM_SCHEME) else ""
        ref = parse_reference(text.removeprefix(prefix))
        artifact_ref = prefix + ref.display
        if ref.digest is not None:
            return ResolvedArtifact(ref.digest, artifact_ref, PINNED)
        client = self.client(ref.registry)
        if kind == HELM_CHART:
            fetched = client.fetch(ref)
            assert fetched.body is not None
            _check_helm(fetched.body, fetched.media_type, prefix + str(ref))
            return ResolvedArtifact(fetched.digest, artifact_ref, REGISTRY, fetched.media_type)
        manifest = client.resolve(ref)
        return ResolvedArtifact(manifest.digest, artifact_ref, REGISTRY, manifest.media_type)

    def client(self, registry: str) -> RegistryClient:
        """The client for one registry host (imports oras on first use)."""
        if registry not in self._clients:
            from deploytrack.registry.client import RegistryClient

            credentials = credentials_for(registry, self.options)
            self._clients[registry] = RegistryClient(registry, self.options, credentials)
        return self._clients[registry]

    def _layout(
        self,
        kind: str,
        text: str,
        transport: str,
        read: Callable[[str, str | None, str], layout.LayoutManifest],
        source: str,
    ) -> ResolvedArtifact:
        location, tag = layout.split_transport(text, transport)
        found = read(location, tag, f"{transport}:{location}")
        shown_tag = tag or found.ref_name
        artifact_ref = f"{transport}:{layout.absolute(location)}"
        if shown_tag:
            artifact_ref += f":{shown_tag}"
        if kind == HELM_CHART:
            _check_helm(found.body, found.media_type, artifact_ref)
        return ResolvedArtifact(found.digest, artifact_ref, source, found.media_type)


def resolve_artifact(
    kind: str, text: str, options: RegistryOptions | None = None
) -> ResolvedArtifact:
    """The digest `text` names for an artifact of `kind` (see the module docstring)."""
    return ArtifactResolver(options).resolve(kind, text)


__all__ = ["ArtifactResolver", "ResolvedArtifact", "resolve_artifact"]
