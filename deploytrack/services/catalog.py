"""Environments (infrastructure targets) and logical environments (lifecycle stages).

Both are named catalogues with the same life cycle; `_Catalog` holds the rules once and
the two public objects differ only in their model, label and extra field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from deploytrack import timeutil
from deploytrack.services import ServiceError, validate
from deploytrack.store import Store
from deploytrack.store.models import Deployment, Environment, LogicalEnvironment

if TYPE_CHECKING:
    # Defined where a view is built: `deployment record` looks names up here, no more.
    from deploytrack.services.views.catalog import EnvironmentView, LogicalEnvironmentView

V = TypeVar("V")


class _Catalog(Generic[V]):
    def __init__(
        self,
        model: Any,
        label: str,
        command: str,
        reference: Any,
        to_view: Callable[[Any], V],
    ) -> None:
        self.model = model
        self.label = label
        self.command = command
        self.reference = reference  # the Deployment column that points here
        self.to_view = to_view

    def _get(self, name: str) -> Any:
        row = self.model.get_or_none(self.model.name == name)
        if row is None:
            raise ServiceError(
                f"{self.label} {name!r} does not exist: see 'deploytrack {self.command} list'"
            )
        return row

    def get(self, store: Store, name: str) -> Any:
        """The row for `name`; raises a clear error when there is none. For services."""
        return self._get(name)

    def create(
        self, store: Store, name: str, description: str, *, exist_ok: bool = False, **fields: Any
    ) -> tuple[V, bool]:
        """Create `name`; returns the view and whether it was created.

        With exist_ok an existing entry is returned unchanged (idempotent set-up for CI
        scripts that run in parallel); otherwise a duplicate is refused.
        """
        validate.name(name, self.label)
        validate.description(description)
        with store.write():
            existing = self.model.get_or_none(self.model.name == name)
            if existing is not None:
                if exist_ok:
                    return self.to_view(existing), False
                raise ServiceError(f"{self.label} {name!r} already exists")
            now = timeutil.now_us()
            row = self.model.create(
                name=name, description=description, created_at=now, updated_at=now, **fields
            )
        return self.to_view(row), True

    def list(self, store: Store) -> list[V]:
        with store.read():
            return [self.to_view(r) for r in self.model.select().order_by(self.model.name)]

    def describe(self, store: Store, name: str) -> V:
        with store.read():
            return self.to_view(self._get(name))

    def update(
        self, store: Store, name: str, description: str | None, **fields: Any
    ) -> tuple[V, bool]:
        """Set the given fields; returns the view and whether anything changed. Values it
        already has change nothing, not even `updated_at` (an honest no-op)."""
        changes = {k: v for k, v in fields.items() if v is not None}
        if description is not None:
            changes["description"] = validate.description(description)
        if not changes:
            raise ServiceError("nothing to update: give a new --description or another option")
        with store.write():
            row = self._get(name)
            if all(getattr(row, k) == v for k, v in changes.items()):
                return self.to_view(row), False
            changes["updated_at"] = max(timeutil.now_us(), row.updated_at)
            self.model.update(**changes).where(self.model.id == row.id).execute()
            row = self._get(name)
        return self.to_view(row), True

    def delete(self, store: Store, name: str) -> None:
        with store.write():
            row = self._get(name)
            count = Deployment.select().where(self.reference == row.id).count()
            if count:
                raise ServiceError(
                    f"{self.label} {name!r} is referenced by {count} deployment record(s) and "
                    "history is never deleted; it cannot be removed"
                )
            # Issue 5: variable changes name environments and stages too (kept forever).
            from deploytrack.services import variables

            if self.model is Environment:
                changes = variables.references(environment_id=row.id)
            else:
                changes = variables.references(logical_environment_id=row.id)
            if changes:
                raise ServiceError(
                    f"{self.label} {name!r} is referenced by {changes} variable change(s) and "
                    "history is never deleted; it cannot be removed"
                )
            self.model.delete().where(self.model.id == row.id).execute()


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


class _Environments(_Catalog["EnvironmentView"]):
    def create(  # type: ignore[override]
        self,
        store: Store,
        name: str,
        description: str = "",
        type: str = "custom",
        *,
        exist_ok: bool = False,
    ) -> tuple[EnvironmentView, bool]:
        return super().create(
            store, name, description, exist_ok=exist_ok, type=validate.environment_type(type)
        )

    def update(  # type: ignore[override]
        self, store: Store, name: str, description: str | None = None, type: str | None = None
    ) -> tuple[EnvironmentView, bool]:
        if type is not None:
            validate.environment_type(type)
        return super().update(store, name, description, type=type)


class _LogicalEnvironments(_Catalog["LogicalEnvironmentView"]):
    def create(  # type: ignore[override]
        self, store: Store, name: str, description: str = "", *, exist_ok: bool = False
    ) -> tuple[LogicalEnvironmentView, bool]:
        return super().create(store, name, description, exist_ok=exist_ok, is_default=False)

    def update(  # type: ignore[override]
        self, store: Store, name: str, description: str | None = None
    ) -> tuple[LogicalEnvironmentView, bool]:
        return super().update(store, name, description)


environments = _Environments(
    Environment, "environment", "environment", Deployment.environment, _environment_view
)
logical_environments = _LogicalEnvironments(
    LogicalEnvironment,
    "logical environment",
    "logical-environment",
    Deployment.logical_environment,
    _logical_view,
)
