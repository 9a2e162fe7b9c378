"""The event log: events as `log list` shows them, and what `log verify` found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EventView:
    """One event. `event` is the event object exactly as hashed (its canonical JSON parsed
    back); `changed` says in a few words which rows it changed (for tables)."""

    seq: int
    time: str
    type: str
    changed: str
    leaf_hash: str
    event: dict[str, Any]

    def __json__(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "type": self.type,
            "changed": self.changed,
            "leaf_hash": self.leaf_hash,
            "event": self.event,
        }


@dataclass(frozen=True)
class LogCheck:
    """One check of `log verify` (and `doctor`): ok, or the first problem it found."""

    name: str
    ok: bool
    detail: str
    problem: str | None


@dataclass(frozen=True)
class LogReport:
    origin: str | None
    size: int
    root: str  # base64, as in a checkpoint
    ok: bool
    checks: tuple[LogCheck, ...]
