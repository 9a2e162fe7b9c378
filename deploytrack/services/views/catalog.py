"""Environments and logical environments."""

from __future__ import annotations

from dataclasses import dataclass


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
