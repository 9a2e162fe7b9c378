"""`doctor`: check the database and the files around it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import Command
from deploytrack.cli.output import output_option, render, safe

if TYPE_CHECKING:
    from deploytrack.services.views.doctor import Report


@click.command("doctor", cls=Command)
@output_option
@pass_app
def doctor(app: App, output: str) -> None:
    """Check integrity, schema, every invariant and file permissions (on PostgreSQL: TLS);
    exit 1 on problems."""
    from deploytrack.services import doctor as service
    from deploytrack.store import resolve_path

    path = resolve_path(app.db_option)
    if not path.startswith(("postgresql://", "postgres://")) and not os.path.isfile(path):
        raise click.ClickException(f"no database at {path}: nothing to check")
    # As found: a missing migration is reported, not applied behind the user's back.
    report = service.diagnose(app.open_store(migrate=False), service.secrets_key_path())
    render(report, output, text=_tell_report)
    if not report.healthy:
        count = sum(len(c.problems) for c in report.checks)
        raise click.ClickException(f"doctor found {count} problem(s), listed above")


def _tell_report(report: Report) -> None:
    click.echo(f"Database: {safe(report.database)}")
    name = "PostgreSQL" if report.backend == "postgresql" else "SQLite"
    click.echo(f"Backend: {name} {safe(report.backend_version)}")
    click.echo(f"Log origin: {safe(report.origin)}")
    for check in report.checks:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {safe(check.detail)}")
        for problem in check.problems:
            click.echo(f"      - {safe(problem)}")
    click.echo("Healthy." if report.healthy else "Problems found.")
