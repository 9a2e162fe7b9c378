"""The audit bundle: what `audit export`, `audit verify` and `audit import` report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BundleCounts:
    """What a bundle holds: events, rows per state table (as the events leave them),
    blobs (attestations, material files, ciphertexts) and plain values."""

    events: int
    rows: dict[str, int]
    blobs: int
    values: int


@dataclass(frozen=True)
class Running:
    """An active deployment record of the bundle's final state: what ran where."""

    environment: str
    logical_environment: str
    deployment_name: str
    kind: str
    digest: str
    record: int
    created_at: int


@dataclass(frozen=True)
class KeptCheckpoint:
    """A checkpoint given with --checkpoint, consistent with the bundle's log."""

    file: str
    size: int
    root: str  # base64


@dataclass(frozen=True)
class BundleReport:
    """A bundle that verified: its log, who signed its checkpoint, the kept checkpoints it
    extends, its counts and what ran where at its end."""

    file: str
    origin: str
    size: int
    root: str  # base64, as in a checkpoint
    signed_by: tuple[str, ...]  # verifier key names (name+hex key ID) that signed it
    checkpoints: tuple[KeptCheckpoint, ...]
    counts: BundleCounts
    running: tuple[Running, ...]


@dataclass(frozen=True)
class ExportResult:
    file: str
    origin: str
    size: int
    root: str  # base64
    signed: bool
    counts: BundleCounts


@dataclass(frozen=True)
class ImportResult:
    database: str
    origin: str
    size: int
    root: str  # base64
    counts: BundleCounts
