"""`db migrate`: the schema, brought up to date explicitly."""

from __future__ import annotations

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.output import output_option, render, safe
from deploytrack.services.views.database import Migrated


@click.group("db", cls=LazyGroup)
def db() -> None:
    """The database itself: its schema."""


@db.command("migrate")
@output_option
@pass_app
def migrate(app: App, output: str) -> None:
    """Apply the pending schema migrations (required on PostgreSQL; SQLite migrates on open).

    Safe to run from several hosts at once: each migration is applied exactly once.
    """
    from deploytrack.services import database as service
    from deploytrack.store import resolve_path

    result = service.migrate(resolve_path(app.db_option))
    render(result, output, text=_tell)


def _tell(result: Migrated) -> None:
    if result.applied:
        click.echo(
            f"Applied {len(result.applied)} migration(s) to {safe(result.database)}: "
            + ", ".join(result.applied)
        )
    else:
        click.echo(f"{safe(result.database)} is up to date ({result.current}).")
