"""`report`: the self-contained HTML report (docs/report.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import Command
from deploytrack.cli.output import render, safe
from deploytrack.cli.params import ENVIRONMENT, STAGE
from deploytrack.cli.times import TIME, TIME_END
from deploytrack.timeutil import short

if TYPE_CHECKING:
    from deploytrack.services.views.report import ReportResult


@click.command("report", cls=Command)
@click.option(
    "--output",
    "output_file",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE.html",
    help="The report to write (a new file, 0600).",
)
@click.option(
    "--logical-env",
    "logical_environments",
    type=STAGE,
    multiple=True,
    help="Only this logical environment (repeat for several; default: all). The metrics are "
    "computed for each one given (production when none is).",
)
@click.option(
    "--env",
    "environments",
    type=ENVIRONMENT,
    multiple=True,
    help="Only this environment (repeat for several; default: all).",
)
@click.option(
    "--since", type=TIME, default=None, help="Start of the window (default: --until minus 90 days)."
)
@click.option("--until", type=TIME_END, default=None, help="End of the window (default: now).")
@pass_app
def report(
    app: App,
    output_file: str,
    logical_environments: tuple[str, ...],
    environments: tuple[str, ...],
    since: int | None,
    until: int | None,
) -> None:
    """Write one self-contained HTML file: what runs where now, a timeline per slot, the
    delivery metrics with their charts, and the event log's state (verified as `log verify`
    does). Nothing in it is fetched from anywhere: it opens offline."""
    from deploytrack.cli.progress import progress
    from deploytrack.services import log
    from deploytrack.services import report as service

    store = app.store
    # The long part is `log verify`: the bar counts its units.
    with progress("Writing the report", lambda: log.verify_units(store)) as advance:
        result = service.write(
            store, output_file, logical_environments, environments, since, until, progress=advance
        )
    # --output names the file here, so there is no -o: what was written is told in words.
    render(result, "table", text=_tell_written)


def _tell_written(result: ReportResult) -> None:
    verified = "passed" if result.log_verified else "FAILED"
    click.echo(
        f"Wrote {safe(result.path)} ({result.bytes} bytes): {result.records} record(s) in "
        f"{result.slots} slot(s) from {short(result.since_at)} to {short(result.until_at)}; "
        f"log verify {verified} at {result.log_size} events."
    )
