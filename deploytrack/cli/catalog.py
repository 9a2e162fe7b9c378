"""`environment` and `logical-environment` commands."""

from __future__ import annotations

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

_NAME = click.option(
    "--name", type=ENVIRONMENT, required=True, help="DNS-1123 label, e.g. prod-eu-1."
)
_STAGE_NAME = click.option("--name", type=STAGE, required=True, help="DNS-1123 label, e.g. canary.")
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


def _show(view: EnvironmentView | LogicalEnvironmentView, output: str) -> None:
    render(view, output, text=_tell_entry)


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


@click.group("environment", cls=LazyGroup)
def environment() -> None:
    """Infrastructure targets: a Kubernetes cluster, an ECS service, a server."""


@environment.command("create")
@_NAME
@click.option("--description", default=None, help="Free text.  [default: empty]")
@click.option(
    "--type",
    "type_",
    type=ENVIRONMENT_TYPE,
    default=None,
    help="Infrastructure type.  [default: custom]",
)
@_IF_NOT_EXISTS
@output_option
@pass_app
def environment_create(
    app: App,
    name: str,
    description: str | None,
    type_: str | None,
    if_not_exists: bool,
    output: str,
) -> None:
    """Create an environment."""
    from deploytrack.services.catalog import environments

    view, created = environments.create(
        app.store, name, description or "", type_ or "custom", exist_ok=if_not_exists
    )
    if not created:
        _warn_if_different("environment", view, description, type=type_)
    render(Created(view, created), output, text=_tell_created)


@environment.command("list")
@output_option(wide=True)
@pass_app
def environment_list(app: App, output: str) -> None:
    """List environments."""
    from deploytrack.services.catalog import environments

    render(environments.list(app.store), output, ENVIRONMENTS)


ENVIRONMENTS = Table(
    (
        Column("NAME", lambda v: v.name, 63),
        Column("TYPE", lambda v: v.type),
        Column("DESCRIPTION", lambda v: v.description, 60, wide_cap=200),
        Column("CREATED", lambda v: when(v.created_at)),
    ),
    empty="No environments: create one with 'deploytrack environment create'.",
)


@environment.command("describe")
@_NAME
@output_option
@pass_app
def environment_describe(app: App, name: str, output: str) -> None:
    """Show one environment."""
    from deploytrack.services.catalog import environments

    _show(environments.describe(app.store, name), output)


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
    from deploytrack.services.catalog import environments

    if description is None and type_ is None:
        raise click.UsageError("give --description or --type (or both)")
    view, changed = environments.update(app.store, name, description, type_)
    render(Updated(view, changed), output, text=_tell_updated)


@environment.command("delete")
@_NAME
@pass_app
def environment_delete(app: App, name: str) -> None:
    """Delete an environment no deployment record references."""
    from deploytrack.services.catalog import environments

    environments.delete(app.store, name)
    click.echo(f"Deleted environment {name}.")


@click.group(
    "logical-environment",
    cls=LazyGroup,
    lazy={"policy": "deploytrack.cli.policies:stage_policy"},
)
def logical_environment() -> None:
    """Steps of the lifecycle: development, staging, production, or your own (canary...)."""


@logical_environment.command("create")
@_STAGE_NAME
@click.option("--description", default=None, help="Free text.  [default: empty]")
@_IF_NOT_EXISTS
@output_option
@pass_app
def logical_create(
    app: App, name: str, description: str | None, if_not_exists: bool, output: str
) -> None:
    """Create a logical environment."""
    from deploytrack.services.catalog import logical_environments

    view, created = logical_environments.create(
        app.store, name, description or "", exist_ok=if_not_exists
    )
    if not created:
        _warn_if_different("logical environment", view, description)
    render(Created(view, created), output, text=_tell_created)


@logical_environment.command("list")
@output_option(wide=True)
@pass_app
def logical_list(app: App, output: str) -> None:
    """List logical environments."""
    from deploytrack.services.catalog import logical_environments

    render(logical_environments.list(app.store), output, LOGICAL_ENVIRONMENTS)


LOGICAL_ENVIRONMENTS = Table(
    (
        Column("NAME", lambda v: v.name, 63),
        Column("DEFAULT", lambda v: "yes" if v.is_default else "no"),
        Column("DESCRIPTION", lambda v: v.description, 60, wide_cap=200),
        Column("CREATED", lambda v: when(v.created_at)),
    ),
    empty="No logical environments.",
)


@logical_environment.command("describe")
@_STAGE_NAME
@output_option
@pass_app
def logical_describe(app: App, name: str, output: str) -> None:
    """Show one logical environment."""
    from deploytrack.services.catalog import logical_environments

    _show(logical_environments.describe(app.store, name), output)


@logical_environment.command("update")
@_STAGE_NAME
@click.option("--description", required=True, help="New description.")
@output_option
@pass_app
def logical_update(app: App, name: str, description: str, output: str) -> None:
    """Change a logical environment's description."""
    from deploytrack.services.catalog import logical_environments

    view, changed = logical_environments.update(app.store, name, description)
    render(Updated(view, changed), output, text=_tell_updated)


@logical_environment.command("delete")
@_STAGE_NAME
@pass_app
def logical_delete(app: App, name: str) -> None:
    """Delete a logical environment no deployment record references."""
    from deploytrack.services.catalog import logical_environments

    logical_environments.delete(app.store, name)
    click.echo(f"Deleted logical environment {name}.")
