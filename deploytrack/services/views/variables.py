"""Scoped variables: scopes, values, their history and redactions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

VariableAction = Literal["set", "unset", "redacted"]


@dataclass(frozen=True)
class Scope:
    logical_environment: str
    environment: str | None = None
    deployment_name: str | None = None

    @property
    def level(self) -> int:
        """Specificity: 3 (logical environment, env, deployment) > 2 (logical environment,
        deployment) > 1 (logical environment, env) > 0 (logical environment)."""
        return (2 if self.deployment_name else 0) + (1 if self.environment else 0)

    def options(self) -> str:
        """The command-line options naming exactly this scope."""
        parts = ["--logical-env", self.logical_environment]
        if self.environment:
            parts += ["--env", self.environment]
        if self.deployment_name:
            parts += ["--deployment-name", self.deployment_name]
        return " ".join(parts)

    def __str__(self) -> str:
        parts = [self.logical_environment]
        if self.environment:
            parts.append(f"env={self.environment}")
        if self.deployment_name:
            parts.append(f"deployment={self.deployment_name}")
        return " ".join(parts)


@dataclass(frozen=True)
class VariableView:
    name: str
    value: str  # services.variables.MASK for a secret unless revealed
    secret: bool
    scope: Scope
    updated_at: int


@dataclass(frozen=True)
class VariableChange:
    id: int
    name: str
    action: VariableAction
    secret: bool
    value: str | None  # plain values only; None for secrets, unsets, redacted values
    change: str  # "set to '...'", "secret changed", "unset", "set (value redacted)", ...
    scope: Scope
    changed_at: int
    redacted: bool = False  # a plain value removed by a later redaction
    redacts: int | None = None  # on a redaction: the id of the entry whose value it removed

    def __json__(self) -> dict[str, Any]:
        """`variable history -o json`: when, what, where first (docs/json.md)."""
        return {
            "id": self.id,
            "changed_at": self.changed_at,
            "name": self.name,
            "scope": self.scope,
            "action": self.action,
            "secret": self.secret,
            "value": self.value,
            "redacted": self.redacted,
            "redacts": self.redacts,
            "change": self.change,
        }


@dataclass(frozen=True)
class Redaction:
    change: VariableChange  # the redaction line
    redacted: VariableChange  # the entry whose value is gone
    was_current: bool  # it was the variable's value at its scope: the scope has none now
    scrubbed: bool  # no copy of the old bytes is left in the WAL either


@dataclass(frozen=True)
class ResolvedVariables:
    """The effective variables of one deployment (`variable resolve`), by name."""

    variables: tuple[VariableView, ...]

    def __iter__(self) -> Iterator[VariableView]:
        return iter(self.variables)

    def __json__(self) -> dict[str, Any]:
        """An object keyed by name; each value is the view without its name (docs/json.md)."""
        return {
            v.name: {
                "value": v.value,
                "secret": v.secret,
                "scope": v.scope,
                "updated_at": v.updated_at,
            }
            for v in self.variables
        }
