"""`environment` and `logical-environment` commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.output import Column, Table, output_option, print_fields, render, when
from deploytrack.cli.params import ENVIRONMENT, ENVIRONMENT_TYPE, STAGE
from deploytrack.services.views.catalog import (
    Created,
    EnvironmentView,
    LogicalEnvironmentView,
    Updated,
)

if TYPE_CHECKING:
    from deploytrack.services.catalog import Catalog

# Which catalogue of services/catalog.py a command works on.
CatalogName = Literal["environments", "logical_environments"]
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

_NAME = click.option(
    "--name", type=ENVIRONMENT, required=True, help="DNS-1123 label, e.g. prod-eu-1."
)
_STAGE_NAME = click.option("--name", type=STAGE, required=True, help="DNS-1123 label, e.g. canary.")
_DESCRIPTION = click.option("--description", default=None, help="Free text.  [default: empty]")
_IF_NOT_EXISTS = click.option(
    "--if-not-exists",
    is_flag=True,
    help="Succeed, changing nothing, when the name exists already (idempotent set-up).",
)


def _warn_if_different(
    label: str,
    view: EnvironmentView | LogicalEnvironmentView,
    description: str | None,
    **given: str | None,
) -> None:
    """--if-not-exists on a name that exists with other values: say so, change nothing."""
    differ = [
        f"{k} {getattr(view, k)}"
        for k, v in given.items()
        if v is not None and v != getattr(view, k)
    ]
    if description is not None and description != view.description:
        differ.append(f"description {view.description!r}")
    if differ:
        click.echo(
            f"Warning: {label} {view.name} exists with {' and '.join(differ)}; nothing changed",
            err=True,
        )


def _tell_entry(view: EnvironmentView | LogicalEnvironmentView) -> None:
    pairs = [("Name", view.name), ("Description", view.description)]
    if isinstance(view, EnvironmentView):
        pairs.append(("Type", view.type))
    else:
        pairs.append(("Default", "yes" if view.is_default else "no"))
    pairs += [("Created", when(view.created_at)), ("Updated", when(view.updated_at))]
    print_fields(pairs)


def _label(view: EnvironmentView | LogicalEnvironmentView) -> str:
    return "environment" if isinstance(view, EnvironmentView) else "logical environment"


def _tell_created(result: Created) -> None:
    view, label = result.entry, _label(result.entry)
    if not result.created:
        click.echo(f"{label.capitalize()} {view.name} already exists: unchanged.")
    elif isinstance(view, EnvironmentView):
        click.echo(f"Created {label} {view.name} ({view.type}).")
    else:
        click.echo(f"Created {label} {view.name}.")


def _tell_updated(result: Updated) -> None:
    view, label = result.entry, _label(result.entry)
    if result.changed:
        click.echo(f"Updated {label} {view.name}.")
    else:
        values = "these values" if isinstance(view, EnvironmentView) else "this description"
        click.echo(f"{label.capitalize()} {view.name} already has {values}: unchanged.")


def _catalog(name: CatalogName) -> Catalog[Any]:
    """A catalogue of services/catalog.py, imported when a command runs."""
    from deploytrack.services import catalog

    return catalog.environments if name == "environments" else catalog.logical_environments


def _alike_commands(
    group: click.Group,
    name_option: Decorator,
    catalog: CatalogName,
    table: Table,
    label: str,
    *,
    type_option: Decorator | None = None,
) -> None:
    """`create`, `list`, `describe` and `delete`, the same for both catalogues but for an
    environment's --type (`update` differs more: see each group)."""
    article = "an" if label[0] in "aeiou" else "a"

    def create(
        app: App,
        name: str,
        description: str | None,
        if_not_exists: bool,
        output: str,
        type_: str | None = None,
    ) -> None:
        service = _catalog(catalog)
        view, created = service.create(
            app.store, name, description or "", type_, exist_ok=if_not_exists
        )
        if not created:
            _warn_if_different(service.label, view, description, type=type_)
        render(Created(view, created), output, text=_tell_created)

    # Applied last to first, as decorators are: --help lists the options in this order.
    typed = (type_option,) if type_option else ()
    command: Callable[..., Any] = pass_app(create)
    for option in reversed((name_option, _DESCRIPTION, *typed, _IF_NOT_EXISTS, output_option)):
        command = option(command)
    group.command("create", help=f"Create {article} {label}.")(command)

    @group.command("list", help=f"List {label}s.")
    @output_option(wide=True)
    @pass_app
    def list_(app: App, output: str) -> None:
        render(_catalog(catalog).list(app.store), output, table)

    @group.command("describe", help=f"Show one {label}.")
    @name_option
    @output_option
    @pass_app
    def describe(app: App, name: str, output: str) -> None:
        render(_catalog(catalog).describe(app.store, name), output, text=_tell_entry)

    @group.command("delete", help=f"Delete {article} {label} no deployment record references.")
    @name_option
    @pass_app
    def delete(app: App, name: str) -> None:
        _catalog(catalog).delete(app.store, name)
        click.echo(f"Deleted {label} {name}.")


ENVIRONMENTS = Table(
    (
        Column("NAME", lambda v: v.name, 63),
        Column("TYPE", lambda v: v.type),
        Column("DESCRIPTION", lambda v: v.description, 60, wide_cap=200),
        Column("CREATED", lambda v: when(v.created_at)),
    ),
    empty="No environments: create one with 'deploytrack environment create'.",
)

LOGICAL_ENVIRONMENTS = Table(
    (
        Column("NAME", lambda v: v.name, 63),
        Column("DEFAULT", lambda v: "yes" if v.is_default else "no"),
        Column("DESCRIPTION", lambda v: v.description, 60, wide_cap=200),
        Column("CREATED", lambda v: when(v.created_at)),
    ),
    empty="No logical environments.",
)


@click.group("environment", cls=LazyGroup)
def environment() -> None:
    """Infrastructure targets: a Kubernetes cluster, an ECS service, a server."""


_alike_commands(
    environment,
    _NAME,
    "environments",
    ENVIRONMENTS,
    "environment",
    type_option=click.option(
        "--type",
        "type_",
        type=ENVIRONMENT_TYPE,
        default=None,
        help="Infrastructure type.  [default: custom]",
    ),
)


@environment.command("update")
@_NAME
@click.option("--description", default=None, help="New description.")
@click.option("--type", "type_", type=ENVIRONMENT_TYPE, default=None)
@output_option
@pass_app
def environment_update(
    app: App, name: str, description: str | None, type_: str | None, output: str
) -> None:
    """Change an environment's description or type."""
    if description is None and type_ is None:
        raise click.UsageError("give --description or --type (or both)")
    view, changed = _catalog("environments").update(app.store, name, description, type_)
    render(Updated(view, changed), output, text=_tell_updated)


@click.group(
    "logical-environment",
    cls=LazyGroup,
    lazy={"policy": "deploytrack.cli.policies:stage_policy"},
)
def logical_environment() -> None:
    """Steps of the lifecycle: development, staging, production, or your own (canary...)."""


_alike_commands(
    logical_environment,
    _STAGE_NAME,
    "logical_environments",
    LOGICAL_ENVIRONMENTS,
    "logical environment",
)


@logical_environment.command("update")
@_STAGE_NAME
@click.option("--description", required=True, help="New description.")
@output_option
@pass_app
def logical_update(app: App, name: str, description: str, output: str) -> None:
    """Change a logical environment's description."""
    view, changed = _catalog("logical_environments").update(app.store, name, description)
    render(Updated(view, changed), output, text=_tell_updated)
