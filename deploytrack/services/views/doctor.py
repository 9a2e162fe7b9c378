"""`doctor`: the checks and their report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One check: `problems` are lines for people (at most 50)."""

    name: str
    ok: bool
    detail: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    database: str  # the file's path, or the server's URL with its password masked
    backend: str  # "sqlite" | "postgresql"
    backend_version: str  # SQLite's library version, or PostgreSQL's server_version
    tls: bool | None  # PostgreSQL: whether the connection is encrypted; null on SQLite
    origin: str | None  # the event log's origin: what its checkpoints name
    healthy: bool
    checks: tuple[Check, ...]
