"""`metrics`: the four DORA metrics of a logical environment over a window."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import Command
from deploytrack.cli.output import output_option, print_table, render, safe, when
from deploytrack.cli.params import ENVIRONMENT, STAGE, Choice
from deploytrack.cli.times import DURATION, TIME
from deploytrack.timeutil import age

if TYPE_CHECKING:
    from deploytrack.services.views.metrics import Metrics


@click.command("metrics", cls=Command)
@click.option(
    "--logical-env",
    "logical_environment",
    type=STAGE,
    default="production",
    show_default=True,
    help="Logical environment measured.",
)
@click.option(
    "--env", "environment", type=ENVIRONMENT, help="Only this environment (default: all)."
)
@click.option(
    "--since", type=TIME, help="Start of the window, included (default: 90 days before --until)."
)
# The window is half-open, [since, until): --until takes the first microsecond of the time
# given, so consecutive windows (--until T, then --since T) count each deployment once.
@click.option("--until", type=TIME, help="End of the window, excluded (default: now).")
@click.option(
    "--interval",
    type=Choice(("week", "month")),
    default="week",
    show_default=True,
    help="Intervals of deployment frequency: ISO weeks (Monday) or calendar months, UTC.",
)
@click.option(
    "--failure-window",
    "failure_window",
    type=DURATION,
    default="24h",
    show_default=True,
    help="A deployment ended by a rollback or a decommissioning within this long of its "
    "start is a failure.",
)
@output_option
@pass_app
def metrics(
    app: App,
    logical_environment: str,
    environment: str | None,
    since: int | None,
    until: int | None,
    interval: str,
    failure_window: int,
    output: str,
) -> None:
    """DORA metrics from the records: deployment frequency, lead time for changes, change
    failure rate and failed deployment recovery time (docs/metrics.md defines each).

    Deployments are the records of the logical environment (and --env) created in the
    window [--since, --until): a new digest in a slot, by record, promote or rollback;
    heartbeats and decommissionings are not deployments.
    """
    from deploytrack.services import metrics as service

    query = service.MetricsQuery(
        logical_environment=logical_environment,
        environment=environment,
        since=since,
        until=until,
        interval="month" if interval == "month" else "week",
        failure_window_us=failure_window,
    )
    render(service.compute(app.store, query), output, text=_tell_metrics)


def _tell_metrics(view: Metrics) -> None:
    selection = view.selection
    where = selection.environment or "all environments"
    click.echo(
        f"{safe(selection.logical_environment)} ({safe(where)}), "
        f"{when(view.since)} to {when(view.until)} (end excluded), "
        f"per {selection.interval}, failure window "
        f"{age(selection.failure_window_seconds * 1_000_000)}"
    )
    frequency = view.deployment_frequency
    lead = view.lead_time
    failures = view.change_failure_rate
    recovery = view.recovery_time
    measured = f"{lead.count} first deployment{'s' * (lead.count != 1)} of a digest"
    if lead.from_import_time:
        measured += f", {lead.from_import_time} from import time"
    rows = [
        ("deployment frequency", frequency.band or "-", f"{frequency.count} deployments"),
        ("lead time (median)", _duration(lead.median_seconds), measured),
        ("lead time (p90)", _duration(lead.p90_seconds), "the same"),
        (
            "change failure rate",
            "-" if failures.rate is None else f"{failures.rate * 100:.2f}%",
            f"{failures.failed} of {failures.total} deployments failed",
        ),
        (
            "recovery time (median)",
            _duration(recovery.median_seconds),
            f"{recovery.count} of {failures.failed} failures recovered",
        ),
    ]
    print_table(("METRIC", "VALUE", "MEASURED OVER"), rows, empty="")


def _duration(seconds: int | None) -> str:
    return "-" if seconds is None else age(seconds * 1_000_000)
