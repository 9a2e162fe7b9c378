"""What `attestation push` (and `attestation create --push`) did in the registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Referrers = Literal["api", "tag"]


@dataclass(frozen=True)
class DescriptorView:
    """A manifest in the registry: media type, digest, size in bytes."""

    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class PushResult:
    attestation: str  # the attestation's digest (= the layer's digest)
    repository: str  # registry/repository the referrer went to
    subject: DescriptorView  # the image it is attached to
    referrer: DescriptorView  # the referrer manifest
    artifact_type: str
    referrers: Referrers  # how the registry lists it: its referrers API, or the tag
    tag: str | None  # the referrers tag (sha256-<hex>) with the tag schema, else None
    pushed: bool  # False: the registry had this manifest already (nothing uploaded)
    tag_updated: bool  # the tag's index was written; False: it listed the referrer already
