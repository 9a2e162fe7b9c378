"""Environments (infrastructure targets) and logical environments (steps of the lifecycle).

Both are named catalogues with the same life cycle; `Catalog` holds the rules once and
the two public objects differ only in data: their model, label, view, whether entries
have a type, and the columns that reference an entry (and so keep it from deletion).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from deploytrack import timeutil
from deploytrack.services import ServiceError, validate
from deploytrack.store import Store, models, queries
from deploytrack.store.models import Environment, LogicalEnvironment

if TYPE_CHECKING:
    # Defined where a view is built: `deployment record` looks names up here, no more.
    from deploytrack.services.views.catalog import EnvironmentView, LogicalEnvironmentView
    from deploytrack.store.eventlog import EventType

V = TypeVar("V")

# An environment's type when none is given.
DEFAULT_TYPE = "custom"


class Catalog(Generic[V]):
    def __init__(
        self,
        model: Any,
        label: str,
        command: str,
        to_view: Callable[[Any], V],
        *,
        typed: bool,
        referenced_by: tuple[tuple[str, str], ...],
        events: tuple[EventType, EventType, EventType],
    ) -> None:
        self.model = model
        self.label = label
        self.command = command
        self.to_view = to_view
        self.typed = typed  # entries have a `type` (environments) or not (logical environments)
        # ("Model.field", what its rows are): history that names an entry, which keeps
        # it from deletion. By name: the lazily defined models load only on a delete.
        self.referenced_by = referenced_by
        # The log's event types of this catalogue: environment.created, ...
        self.events = events

    def _get(self, name: str) -> Any:
        row = queries.by_name(self.model, name)
        if row is None:
            raise ServiceError(
                f"{self.label} {name!r} does not exist: see 'deploytrack {self.command} list'"
            )
        return row

    def get(self, store: Store, name: str) -> Any:
        """The row for `name`, read from `store` (whose transaction must be open); raises
        a clear error when there is none. For services."""
        store.require_transaction()
        return self._get(name)

    def _type(self, type: str | None) -> dict[str, Any]:
        if not self.typed:
            if type is not None:
                raise TypeError(f"a {self.label} has no type")
            return {}
        return {"type": validate.environment_type(type or DEFAULT_TYPE)}

    def create(
        self,
        store: Store,
        name: str,
        description: str = "",
        type: str | None = None,
        *,
        exist_ok: bool = False,
    ) -> tuple[V, bool]:
        """Create `name`; returns the view and whether it was created.

        With exist_ok an existing entry is returned unchanged (idempotent set-up for CI
        scripts that run in parallel); otherwise a duplicate is refused.
        """
        fields = self._type(type)
        validate.name(name, self.label)
        validate.description(description)
        with store.write() as log:
            existing = self.model.get_or_none(self.model.name == name)
            if existing is not None:
                if exist_ok:
                    return self.to_view(existing), False
                raise ServiceError(f"{self.label} {name!r} already exists")
            now = timeutil.now_us()
            row = self.model.create(
                name=name, description=description, created_at=now, updated_at=now, **fields
            )
            log.log(self.events[0])
        return self.to_view(row), True

    def list(self, store: Store) -> list[V]:
        with store.read():
            return [self.to_view(r) for r in self.model.select().order_by(self.model.name)]

    def describe(self, store: Store, name: str) -> V:
        with store.read():
            return self.to_view(self._get(name))

    def update(
        self, store: Store, name: str, description: str | None = None, type: str | None = None
    ) -> tuple[V, bool]:
        """Set the given fields; returns the view and whether anything changed. Values it
        already has change nothing, not even `updated_at` (an honest no-op), and so does
        giving no field: `environment update` refuses that while its command line is read."""
        changes = self._type(type) if type is not None else {}
        if description is not None:
            changes["description"] = validate.description(description)
        with store.write() as log:
            row = self._get(name)
            if all(getattr(row, k) == v for k, v in changes.items()):
                return self.to_view(row), False
            changes["updated_at"] = max(timeutil.now_us(), row.updated_at)
            self.model.update(**changes).where(self.model.id == row.id).execute()
            log.log(self.events[1])
            row = self._get(name)
        return self.to_view(row), True

    def delete(self, store: Store, name: str) -> None:
        with store.write() as log:
            row = self._get(name)
            for column, what in self.referenced_by:
                model_name, field_name = column.split(".")
                field = getattr(getattr(models, model_name), field_name)
                count = field.model.select().where(field == row.id).count()
                if count:
                    raise ServiceError(
                        f"{self.label} {name!r} is referenced by {count} {what} and "
                        "history is never deleted; it cannot be removed"
                    )
            self.model.delete().where(self.model.id == row.id).execute()
            log.log(self.events[2])


def _environment_view(row: Environment) -> EnvironmentView:
    from deploytrack.services.views.catalog import EnvironmentView

    return EnvironmentView(
        name=row.name,
        description=row.description,
        type=row.type,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _logical_view(row: LogicalEnvironment) -> LogicalEnvironmentView:
    from deploytrack.services.views.catalog import LogicalEnvironmentView

    return LogicalEnvironmentView(
        name=row.name,
        description=row.description,
        is_default=bool(row.is_default),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


environments: Catalog[EnvironmentView] = Catalog(
    Environment,
    "environment",
    "environment",
    _environment_view,
    typed=True,
    referenced_by=(
        ("Deployment.environment", "deployment record(s)"),
        ("VariableEvent.environment", "variable change(s)"),
    ),
    events=("environment.created", "environment.updated", "environment.deleted"),
)
logical_environments: Catalog[LogicalEnvironmentView] = Catalog(
    LogicalEnvironment,
    "logical environment",
    "logical-environment",
    _logical_view,
    typed=False,
    referenced_by=(
        ("Deployment.logical_environment", "deployment record(s)"),
        ("VariableEvent.logical_environment", "variable change(s)"),
    ),
    events=(
        "logical_environment.created",
        "logical_environment.updated",
        "logical_environment.deleted",
    ),
)
