"""`deploytrack audit`: the audit bundle — export the log, verify a bundle offline, build a
database from one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.output import output_option, render, safe

if TYPE_CHECKING:
    from deploytrack.services.views.audit import (
        BundleCounts,
        BundleReport,
        ExportResult,
        ImportResult,
    )


@click.group("audit", cls=LazyGroup)
def audit() -> None:
    """The audit bundle: the whole event log in one file, verified offline."""


@audit.command("export")
@click.option(
    "--output",
    "output_file",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="The bundle to write (a gzipped tar; a new file, 0600).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False),
    metavar="PRIVATE_PEM",
    help="Sign the bundle's checkpoint with this Ed25519 private key.",
)
@click.option(
    "--key-password-stdin",
    is_flag=True,
    help="The --key file is encrypted: read its password from stdin.",
)
@pass_app
def audit_export(
    app: App, output_file: str, key_file: str | None, key_password_stdin: bool
) -> None:
    """Write the audit bundle: every event as stored, a checkpoint of the whole log, every
    stored blob, and a manifest (docs/audit.md). Never a secret's plaintext or the secrets
    key."""
    from deploytrack.services import audit as service

    key = None
    if key_file is not None:
        from deploytrack.cli.signing import read_password
        from deploytrack.services import checkpoints

        password = read_password() if key_password_stdin else None
        key = checkpoints.signer(key_file, password)
    elif key_password_stdin:
        raise click.UsageError("--key-password-stdin needs --key")
    from deploytrack.cli.progress import progress

    store = app.store
    with progress("Exporting the log", lambda: service.export_units(store)) as advance:
        result = service.export(store, output_file, key, progress=advance)
    # --output names the bundle here, so there is no -o: what was written is told in words.
    render(result, "table", text=_tell_exported)


def _counts(counts: BundleCounts) -> str:
    rows = sum(counts.rows.values())
    return (
        f"{_n(counts.events, 'event')}, {_n(rows, 'row')} in {_n(len(counts.rows), 'table')}, "
        f"{_n(counts.blobs, 'blob')}, {_n(counts.values, 'variable value')}"
    )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _tell_exported(result: ExportResult) -> None:
    signed = "signed checkpoint" if result.signed else "unsigned checkpoint"
    click.echo(f"Wrote {safe(result.file)}: {_counts(result.counts)}, {signed}.")
    click.echo(f"Origin: {safe(result.origin)}")
    click.echo(f"Size: {result.size}")
    click.echo(f"Root: {result.root}")


@audit.command("verify")
@click.argument("bundle_file", metavar="FILE", type=click.Path(dir_okay=False))
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="PUBLIC_PEM",
    help="The bundle's checkpoint must be signed by this Ed25519 public key (repeatable: "
    "any of them).",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="A checkpoint kept earlier (by CI): the bundle's log must extend it (repeatable).",
)
@output_option
def audit_verify(
    bundle_file: str, keys: tuple[str, ...], checkpoints: tuple[str, ...], output: str
) -> None:
    """Verify an audit bundle offline, with no database: its events hash into its
    checkpoint, each blob hashes to its name, every blob the rows name is there, the
    events replay without contradiction. Then print what ran where at its end. Exit 1
    naming the first problem."""
    from deploytrack.cli.progress import progress
    from deploytrack.services import audit as service

    with progress("Verifying the bundle", lambda: service.bundle_units(bundle_file)) as advance:
        report = service.verify(bundle_file, keys, checkpoints, progress=advance)
    render(report, output, text=_tell_bundle)


def _tell_bundle(report: BundleReport) -> None:
    from deploytrack import timeutil
    from deploytrack.cli.output import Column, Table

    click.echo(f"Bundle: {safe(report.file)}")
    click.echo(f"Origin: {safe(report.origin)}")
    click.echo(f"Size: {report.size}")
    click.echo(f"Root: {report.root}")
    signed = ", ".join(safe(s) for s in report.signed_by) or "not checked (no --key)"
    click.echo(f"Signed by: {signed}")
    for kept in report.checkpoints:
        click.echo(f"Extends: {safe(kept.file)} (size {kept.size})")
    click.echo(f"Holds: {_counts(report.counts)}")
    click.echo("")
    Table(
        [
            Column("ENVIRONMENT", lambda r: safe(r.environment)),
            Column("LOGICAL ENVIRONMENT", lambda r: safe(r.logical_environment)),
            Column("NAME", lambda r: safe(r.deployment_name)),
            Column("KIND", lambda r: safe(r.kind)),
            Column("DIGEST", lambda r: safe(r.digest)),
            Column("RECORD", lambda r: str(r.record)),
            Column("SINCE", lambda r: timeutil.short(r.created_at)),
        ],
        empty="Nothing ran anywhere at the end of the log.",
    ).show(list(report.running))
    click.echo("")
    click.echo("The bundle verifies.")


@audit.command("import")
@click.argument("bundle_file", metavar="FILE", type=click.Path(dir_okay=False))
@output_option
@pass_app
def audit_import(app: App, bundle_file: str, output: str) -> None:
    """Build a new database (--db) from an audit bundle, verified first: the same events,
    root and rows. Refused into a database that holds anything; a bad bundle writes
    nothing."""
    from deploytrack.cli.progress import progress
    from deploytrack.services import audit as service

    # Read twice: verified before the database is touched, then loaded.
    with progress("Importing the bundle", lambda: 2 * service.bundle_units(bundle_file)) as advance:
        result = service.import_bundle(app.open_store, bundle_file, progress=advance)
    render(result, output, text=_tell_loaded)


def _tell_loaded(result: ImportResult) -> None:
    click.echo(f"Imported into {safe(result.database)}: {_counts(result.counts)}.")
    click.echo(f"Origin: {safe(result.origin)}")
    click.echo(f"Size: {result.size}")
    click.echo(f"Root: {result.root}")
