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
    database: str
    origin: str | None  # the event log's origin: what its checkpoints name
    healthy: bool
    checks: tuple[Check, ...]
