"""`deploytrack log`: the event log — list its events, verify it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.output import Column, Table, output_option, render, safe
from deploytrack.cli.params import LIMIT, Choice
from deploytrack.cli.times import TIME, TIME_END
from deploytrack.services.log import EVENT_TYPES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from deploytrack.services.views.log import EventView, LogReport


@click.group("log", cls=LazyGroup)
def log() -> None:
    """The event log: every change of state, in a Merkle tree an auditor can verify."""


EVENTS = Table(
    [
        Column("SEQ", lambda e: str(e.seq)),
        Column("TIME", lambda e: e.time[:19] + "Z"),
        Column("TYPE", lambda e: safe(e.type)),
        Column("CHANGED", lambda e: safe(e.changed), cap=80),
        Column("LEAF HASH", lambda e: e.leaf_hash[:16]),
    ],
    empty="No events.",
)


@log.command("list")
@click.option("--since", type=TIME, help="Only events at or after TIME.")
@click.option("--until", type=TIME_END, help="Only events at or before TIME.")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=Choice(EVENT_TYPES),
    metavar="TYPE",
    help="Only events of TYPE (repeatable; the types are listed in docs/log.md).",
)
@click.option("--limit", type=LIMIT, help="At most N events (the oldest first).")
@output_option
@pass_app
def log_list(
    app: App,
    since: int | None,
    until: int | None,
    types: tuple[str, ...],
    limit: int | None,
    output: str,
) -> None:
    """List the events of the log, oldest first."""
    from deploytrack.services import log as service

    events: list[EventView] = service.list_events(
        app.store, since=since, until=until, types=types, limit=limit
    )
    render(events, output, EVENTS)


@log.command("verify")
@output_option
@pass_app
def log_verify(app: App, output: str) -> None:
    """Check the log: every event hashes into the tree, and replaying the events
    reproduces every row of the tables. Exit 1 naming the first problem."""
    from deploytrack.services import log as service

    report = service.verify(app.store)
    render(report, output, text=_tell_verify)
    if not report.ok:
        problem = next(c.problem for c in report.checks if c.problem)
        raise click.ClickException(f"the log does not verify: {problem}")


def _tell_verify(report: LogReport) -> None:
    click.echo(f"Origin: {safe(report.origin)}")
    click.echo(f"Events: {report.size}")
    click.echo(f"Root: {report.root}")
    for check in report.checks:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {safe(check.detail)}")
        if check.problem:
            click.echo(f"      - {safe(check.problem)}")
    click.echo("The log verifies." if report.ok else "The log does not verify.")


@log.command("export")
@click.option(
    "--format",
    "format_",
    type=Choice(("cdevents",)),
    required=True,
    help="cdevents: CDEvents 0.5.1, one JSON event a line (docs/log.md, CDEvents).",
)
@click.option("--since", type=TIME, help="Only events at or after TIME.")
@click.option("--until", type=TIME_END, help="Only events at or before TIME.")
@click.option(
    "--output",
    "output_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write to FILE (created 0600, never over an existing file) instead of stdout.",
)
@pass_app
def log_export(
    app: App, format_: str, since: int | None, until: int | None, output_file: str | None
) -> None:
    """Export the deployment and environment events of the log as CDEvents (JSON Lines):
    service deployed, upgraded, rolled back and removed; environment created, modified
    and deleted. The same log exports the same bytes."""
    from contextlib import closing

    from deploytrack.cli.output import emit
    from deploytrack.services import cdevents

    # closing(): the export reads inside one read transaction; a reader that leaves early
    # (`| head`) must end it before the store closes.
    with closing(cdevents.export(app.store, since=since, until=until)) as lines:
        if output_file is None:
            for line in lines:
                emit(line)
            return
        count = _write_lines(lines, output_file)
    click.echo(f"Exported {count} CDEvents to {safe(output_file)}.")


def _write_lines(lines: Iterable[str], path: str) -> int:
    """Write JSON Lines to a new 0600 file; how many. A partial export is no export: the
    file is removed when writing fails, so nothing is left behind for a reader to trust."""
    import os

    from deploytrack.files import create_output

    fd = create_output(path)
    count = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for line in lines:
                handle.write(line.encode("utf-8") + b"\n")
                count += 1
    except BaseException:
        os.unlink(path)
        raise
    return count
