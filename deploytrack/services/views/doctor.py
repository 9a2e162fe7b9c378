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
    healthy: bool
    checks: tuple[Check, ...]
