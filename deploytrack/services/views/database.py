"""`db migrate`: what it did."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migrated:
    database: str  # the file's path, or the server's URL with any password masked
    backend: str  # "sqlite" or "postgresql"
    applied: tuple[str, ...]  # the migrations applied now, in order (empty: it was current)
    current: str  # the newest migration the schema now has
