"""Environment lifecycle commands: `status`, and `deployment promote`,
`deployment rollback` and `deployment diff` (added to the `deployment` group)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import Command
from deploytrack.cli.output import (
    Column,
    Table,
    output_option,
    ref_at_digest,
    render,
    safe,
    when,
)
from deploytrack.cli.params import (
    DEPLOYMENT_NAME,
    ENVIRONMENT,
    ID,
    KIND,
    STAGE,
    filter_options,
    slot_options,
)
from deploytrack.cli.times import DURATION, TIME_END
from deploytrack.digests import short
from deploytrack.timeutil import age

if TYPE_CHECKING:
    from deploytrack.services.views.deployments import DeploymentView
    from deploytrack.services.views.lifecycle import (
        DiffReport,
        PromoteResult,
        RollbackResult,
        StatusReport,
        StatusRow,
    )


def _where(view: DeploymentView) -> str:
    return f"{safe(view.environment)}/{safe(view.logical_environment)}"


def _what(view: DeploymentView) -> str:
    return f"{safe(view.deployment_name)} ({view.kind}) {ref_at_digest(view)}"


def _outcome(result: PromoteResult | RollbackResult) -> str:
    """What record() did, as the end of a sentence."""
    view = result.deployment
    if result.action == "superseded":
        assert result.previous is not None
        return (
            f"recorded deployment {view.id}; it supersedes deployment {result.previous.id} "
            f"({short(result.previous.digest)})"
        )
    return f"recorded deployment {view.id}"


@click.command("promote", cls=Command)
@click.option(
    "--env", "environment", type=ENVIRONMENT, required=True, help="Environment of the source slot."
)
@click.option(
    "--deployment-name",
    type=DEPLOYMENT_NAME,
    required=True,
    help="What to promote, e.g. api-server.",
)
@click.option("--kind", required=True, type=KIND, help="Artifact kind.")
@click.option(
    "--from-logical-env",
    "from_stage",
    type=STAGE,
    required=True,
    help="Source logical environment.",
)
@click.option(
    "--to-logical-env", "to_stage", type=STAGE, required=True, help="Target logical environment."
)
@click.option(
    "--to-env",
    "to_environment",
    type=ENVIRONMENT,
    default=None,
    help="Target environment (default: --env).",
)
@output_option
@pass_app
def deployment_promote(
    app: App,
    environment: str,
    deployment_name: str,
    kind: str,
    from_stage: str,
    to_stage: str,
    to_environment: str | None,
    output: str,
) -> None:
    """Record in the target slot exactly the digest active in the source slot.

    Every rule of 'deployment record' applies (superseding, heartbeat, stage policy). The
    new record keeps the source record's id in promoted_from.
    """
    from deploytrack.services import lifecycle

    result = lifecycle.promote(
        app.store,
        environment,
        deployment_name,
        kind,
        from_stage,
        to_stage,
        to_environment,
    )
    render(result, output, text=_tell_promote)


def _tell_promote(result: PromoteResult) -> None:
    view, source = result.deployment, result.source
    if result.action == "heartbeat":
        click.echo(
            f"{_where(view)} already runs {_what(source)} (deployment {view.id}): recorded a "
            f"heartbeat, nothing to promote."
        )
        return
    click.echo(
        f"Promoted {_what(source)} from {_where(source)} (deployment {source.id}) to "
        f"{_where(view)}: {_outcome(result)}."
    )


@click.command("rollback", cls=Command)
@slot_options("What to roll back.")
@click.option(
    "--to",
    "to_id",
    type=ID,
    default=None,
    metavar="ID",
    help="Restore this earlier record of the slot (default: the newest earlier record with "
    "another digest, or the decommissioned one).",
)
@output_option
@pass_app
def deployment_rollback(
    app: App,
    environment: str,
    logical_environment: str,
    deployment_name: str,
    kind: str,
    to_id: int | None,
    output: str,
) -> None:
    """Record again the digest of an earlier record of the slot.

    Without --to: the newest earlier record whose digest differs from the active one (a
    second rollback therefore undoes the first, as 'kubectl rollout undo' does), or, for a
    decommissioned slot, the digest that was decommissioned. The new record keeps the
    restored record's id in rollback_of; stage policies apply.
    """
    from deploytrack.services import deployments, lifecycle

    slot = deployments.Slot(environment, logical_environment, deployment_name, kind)
    render(lifecycle.rollback(app.store, slot, to_id), output, text=_tell_rollback)


def _tell_rollback(result: RollbackResult) -> None:
    restored = result.restored
    click.echo(
        f"Rolled back {safe(result.deployment.deployment_name)} ({result.deployment.kind}) in "
        f"{_where(result.deployment)} to {ref_at_digest(restored)} (deployment {restored.id}): "
        f"{_outcome(result)}."
    )


@click.command("diff", cls=Command)
@click.option(
    "--from-env",
    type=ENVIRONMENT,
    default=None,
    help="Environment of the first side (default: all).",
)
@click.option(
    "--from-logical-env",
    "from_stage",
    type=STAGE,
    default=None,
    help="Logical environment of the first side (default: all).",
)
@click.option(
    "--from-at", type=TIME_END, default=None, help="Time of the first side (default: now)."
)
@click.option(
    "--to-env",
    type=ENVIRONMENT,
    default=None,
    help="Environment of the second side (default: --from-env).",
)
@click.option(
    "--to-logical-env",
    "to_stage",
    type=STAGE,
    default=None,
    help="Logical environment of the second side (default: --from-logical-env).",
)
@click.option(
    "--to-at", type=TIME_END, default=None, help="Time of the second side (default: now)."
)
@click.option("--exit-code", is_flag=True, help="Exit 1 when anything differs (as git diff).")
@output_option(wide=True)
@pass_app
def deployment_diff(
    app: App,
    from_env: str | None,
    from_stage: str | None,
    from_at: int | None,
    to_env: str | None,
    to_stage: str | None,
    to_at: int | None,
    exit_code: bool,
    output: str,
) -> None:
    """Compare the active deployments of two selections (environment, logical environment, time).

    Rows are matched on deployment name and kind, plus the environment when --from-env is
    not given and the logical environment when --from-logical-env is not given. change:
    added, removed, changed, same.
    Each side's time is now unless given: --from-at 1d shows what changed since yesterday.
    """
    from deploytrack.services import lifecycle

    report = lifecycle.diff(
        app.store,
        lifecycle.Selection(from_env, from_stage, from_at),
        lifecycle.Selection(to_env, to_stage, to_at),
    )
    render(report, output, text=_tell_diff)
    if exit_code and report.differs:
        sys.exit(1)


def _short(value: str | None) -> str | None:
    return None if value is None else short(value)


DIFF = Table(
    (
        Column("NAME", lambda r: r.deployment_name, 24, wide_cap=64),
        Column("KIND", lambda r: r.kind),
        Column("ENVIRONMENT", lambda r: r.environment, 20, wide_cap=128),
        Column("LOGICAL ENV", lambda r: r.logical_environment, 16, wide_cap=128),
        Column("FROM", lambda r: _short(r.from_digest), full=lambda r: r.from_digest),
        Column("TO", lambda r: _short(r.to_digest), full=lambda r: r.to_digest),
        Column("CHANGE", lambda r: r.change),
    ),
    empty="No deployments on either side.",
)


def _tell_diff(report: DiffReport, *, wide: bool = False) -> None:
    click.echo(f"From {safe(report.source)} to {safe(report.target)}:")
    # An environment fixed by --from-env (a logical environment by --from-logical-env) is in
    # the line above, so its column, `FROM->TO` on every row, shows only in -o wide.
    fixed = {
        "ENVIRONMENT": report.source.environment is not None,
        "LOGICAL ENV": report.source.logical_environment is not None,
    }
    columns = [c.only_wide() if fixed.get(c.header) else c for c in DIFF.columns]
    Table(columns, DIFF.empty).show(report.rows, wide=wide)


@click.command("status", cls=Command)
@filter_options
@click.option(
    "--stale-after",
    type=DURATION,
    default="24h",
    show_default=True,
    help="STALE when the last heartbeat is older (30m, 24h, 7d, 1h30m).",
)
@click.option(
    "--exit-code", is_flag=True, help="Exit 1 when any row is STALE (for cron and CI alerts)."
)
@output_option(wide=True)
@pass_app
def status(
    app: App,
    environment: str | None,
    logical_environment: str | None,
    stale_after: int,
    exit_code: bool,
    output: str,
) -> None:
    """Every active deployment by environment and logical environment, with the age of its
    last heartbeat.

    --exit-code: exit 1 when any row is stale, 0 otherwise, with the same output (as
    'git diff --exit-code').
    """
    from deploytrack.services import lifecycle

    report = lifecycle.status(app.store, environment, logical_environment, stale_after)
    render(report, output, text=_tell_status)
    if exit_code and any(row.stale for row in report.rows):
        sys.exit(1)


def _tell_status(report: StatusReport, *, wide: bool = False) -> None:
    if not report.rows:
        click.echo("No active deployments.", err=True)
        return
    table = Table(
        (
            Column("NAME", lambda r: r.deployment_name, 32, wide_cap=64),
            Column("KIND", lambda r: r.kind),
            Column("DIGEST", lambda r: short(r.digest), full=lambda r: r.digest),
            Column("DEPLOYED AT", lambda r: when(r.deployed_at)),
            # The age at the report's own instant, so every group says the same "now".
            Column("LAST SEEN", lambda r: f"{age(report.now - r.last_seen_at)} ago"),
            Column("STATE", lambda r: "STALE" if r.stale else "ok"),
        ),
        empty="",
    )
    groups: dict[tuple[str, str], list[StatusRow]] = {}
    for row in report.rows:
        groups.setdefault((row.environment, row.logical_environment), []).append(row)
    stale = sum(r.stale for r in report.rows)
    for index, ((env, stage), rows) in enumerate(groups.items()):
        if index:
            click.echo("")
        click.echo(f"{safe(env)} / {safe(stage)}")
        table.show(rows, wide=wide)
    click.echo(
        f"\n{len(report.rows)} active deployment(s), {stale} stale (no heartbeat for more than "
        f"{age(report.stale_after)})."
    )
