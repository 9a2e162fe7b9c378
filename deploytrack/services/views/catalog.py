"""Environments and logical environments."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class EnvironmentView:
    name: str
    description: str
    type: str
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class LogicalEnvironmentView:
    name: str
    description: str
    is_default: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Created:
    """`create`: the entry, and False when --if-not-exists found it there already."""

    entry: EnvironmentView | LogicalEnvironmentView
    created: bool

    def __json__(self) -> dict[str, Any]:
        """The entry's fields, then `created` (docs/json.md)."""
        return {**asdict(self.entry), "created": self.created}


@dataclass(frozen=True)
class Updated:
    """`update`: the entry, and False when it already had the values given."""

    entry: EnvironmentView | LogicalEnvironmentView
    changed: bool

    def __json__(self) -> dict[str, Any]:
        """The entry's fields, then `changed` (docs/json.md)."""
        return {**asdict(self.entry), "changed": self.changed}
