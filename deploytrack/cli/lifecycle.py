"""Environment lifecycle commands (issue 5): `status`, and `deployment promote`,
`deployment rollback` and `deployment diff` (added to the `deployment` group)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import Command
from deploytrack.cli.output import output_option, print_json, print_table, safe, when
from deploytrack.cli.params import DEPLOYMENT_NAME, ENVIRONMENT, ID, KIND, STAGE, slot_options
from deploytrack.cli.times import DURATION, TIME_END, age
from deploytrack.digests import short

_KIND = KIND


def _where(view: Any) -> str:
    return f"{safe(view.environment)}/{safe(view.logical_environment)}"


def _artifact(view: Any) -> str:
    digest = short(view.digest)
    return f"{safe(view.artifact_ref)}@{digest}" if view.artifact_ref else digest


def _what(view: Any) -> str:
    return f"{safe(view.deployment_name)} ({view.kind}) {_artifact(view)}"


def _outcome(result: Any) -> str:
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
@click.option("--kind", required=True, type=_KIND, help="Artifact kind.")
@click.option("--from-logical-env", "from_stage", type=STAGE, required=True, help="Source stage.")
@click.option("--to-logical-env", "to_stage", type=STAGE, required=True, help="Target stage.")
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
        kind.upper(),
        from_stage,
        to_stage,
        to_environment,
    )
    if output == "json":
        print_json(result)
        return
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

    key = deployments.Key(environment, logical_environment, deployment_name, kind.upper())
    result = lifecycle.rollback(app.store, key, to_id)
    if output == "json":
        print_json(result)
        return
    restored = result.restored
    click.echo(
        f"Rolled back {safe(result.deployment.deployment_name)} ({result.deployment.kind}) in "
        f"{_where(result.deployment)} to {_artifact(restored)} (deployment {restored.id}): "
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
    help="Stage of the first side (default: all).",
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
    help="Stage of the second side (default: --from-logical-env).",
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
    """Compare the active deployments of two selections (environment, stage, time).

    Rows are matched on deployment name and kind, plus environment (stage) when
    --from-env (--from-logical-env) is not given. change: added, removed, changed, same.
    Each side's time is now unless given: --from-at 1d shows what changed since yesterday.
    """
    from deploytrack.services import lifecycle

    report = lifecycle.diff(
        app.store,
        lifecycle.Selection(from_env, from_stage, from_at),
        lifecycle.Selection(to_env, to_stage, to_at),
    )
    if output == "json":
        print_json(report.rows)
    else:
        click.echo(f"From {safe(report.source)} to {safe(report.target)}:")
        full = output == "wide"

        def digest(value: str | None) -> str | None:
            return value if value is None or full else short(value)

        # An environment (stage) fixed by --from-env (--from-logical-env) is in the line
        # above, so its column, `FROM->TO` on every row, shows only in -o wide.
        fixed = {
            "ENVIRONMENT": report.source.environment is not None,
            "LOGICAL ENV": report.source.logical_environment is not None,
        }
        columns: list[tuple[str, int | None, Callable[[Any], str | None]]] = [
            ("NAME", 64 if full else 24, lambda r: r.deployment_name),
            ("KIND", None, lambda r: r.kind),
            ("ENVIRONMENT", 128 if full else 20, lambda r: r.environment),
            ("LOGICAL ENV", 128 if full else 16, lambda r: r.logical_environment),
            ("FROM", None, lambda r: digest(r.from_digest)),
            ("TO", None, lambda r: digest(r.to_digest)),
            ("CHANGE", None, lambda r: r.change),
        ]
        columns = [c for c in columns if full or not fixed.get(c[0], False)]
        print_table(
            [header for header, _, _ in columns],
            [[cell(r) for _, _, cell in columns] for r in report.rows],
            empty="No deployments on either side.",
            caps=[cap for _, cap, _ in columns],
        )
    if exit_code and report.differs:
        sys.exit(1)


@click.command("status", cls=Command)
@click.option("--env", "environment", type=ENVIRONMENT, default=None, help="Only this environment.")
@click.option(
    "--logical-env", "logical_environment", type=STAGE, default=None, help="Only this stage."
)
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
    """Every active deployment by environment and stage, with the age of its last heartbeat.

    --exit-code: exit 1 when any row is stale, 0 otherwise, with the same output (as
    'git diff --exit-code').
    """
    from deploytrack.services import lifecycle

    report = lifecycle.status(app.store, environment, logical_environment, stale_after)
    if output == "json":
        print_json(report.rows)
        _exit_if_stale(report, exit_code)
        return
    if not report.rows:
        click.echo("No active deployments.", err=True)
        return
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in report.rows:
        groups.setdefault((row.environment, row.logical_environment), []).append(row)
    stale = sum(r.stale for r in report.rows)
    for index, ((env, stage), rows) in enumerate(groups.items()):
        if index:
            click.echo("")
        click.echo(f"{safe(env)} / {safe(stage)}")
        print_table(
            ["NAME", "KIND", "DIGEST", "DEPLOYED AT", "LAST SEEN", "STATE"],
            [
                [
                    r.deployment_name,
                    r.kind,
                    r.digest if output == "wide" else short(r.digest),
                    when(r.deployed_at),
                    f"{age(report.now - r.last_seen_at)} ago",
                    "STALE" if r.stale else "ok",
                ]
                for r in rows
            ],
            empty="",
            caps=[64] if output == "wide" else [32],
        )
    click.echo(
        f"\n{len(report.rows)} active deployment(s), {stale} stale (no heartbeat for more than "
        f"{age(report.stale_after)})."
    )
    _exit_if_stale(report, exit_code)


def _exit_if_stale(report: Any, exit_code: bool) -> None:
    if exit_code and any(row.stale for row in report.rows):
        sys.exit(1)
