"""`deploytrack log`: the event log — list its events, verify it, its checkpoints and
proofs (inclusion of a record's events, consistency with a kept checkpoint)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.output import Column, Table, emit, output_option, render, safe
from deploytrack.cli.params import ID, LIMIT, Choice
from deploytrack.cli.signing import key_options, read_password
from deploytrack.cli.times import TIME, TIME_END
from deploytrack.services.log import EVENT_TYPES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from deploytrack.services.views.log import (
        ConsistencyView,
        EventView,
        LogReport,
        ProvenView,
        ProveResult,
        VerifierKeyView,
    )


F = TypeVar("F", bound=Callable[..., Any])


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


_CHECKPOINT_FILE = click.Path(dir_okay=False)


def _public_keys(help: str, *, required: bool = False) -> Callable[[F], F]:
    return click.option(
        "--key",
        "key_files",
        required=required,
        multiple=True,
        type=click.Path(dir_okay=False),
        metavar="PUBLIC_KEY_PEM",
        help=help,
    )


@log.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=_CHECKPOINT_FILE,
    metavar="FILE",
    help="A checkpoint kept elsewhere (signed note, or bare text without --key) the log "
    "must extend (repeatable).",
)
@_public_keys("Each --checkpoint must be signed by one of these Ed25519 keys (repeatable).")
@output_option
@pass_app
def log_verify(
    app: App, checkpoint_files: tuple[str, ...], key_files: tuple[str, ...], output: str
) -> None:
    """Check the log: every event hashes into the tree, replaying the events reproduces
    every row of the tables, and each --checkpoint is this log's, signed by a --key, and
    extended by the log (RFC 9162 consistency). Exit 1 naming the first problem."""
    from deploytrack.services import log as service

    if key_files and not checkpoint_files:
        raise click.UsageError("--key checks the signatures of --checkpoint files: give some")
    from deploytrack.cli.progress import progress

    store = app.store
    with progress("Verifying the log", lambda: service.verify_units(store)) as advance:
        report = service.verify(store, checkpoint_files, key_files, progress=advance)
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


def _signer(key_file: str | None, key_password_stdin: bool) -> Ed25519PrivateKey | None:
    """The Ed25519 key of --key, decrypted with the password --key-password-stdin reads."""
    from deploytrack.services import checkpoints

    if key_file is None:
        if key_password_stdin:
            raise click.UsageError("--key-password-stdin needs --key")
        return None
    password = read_password() if key_password_stdin else None
    key = checkpoints.signer(key_file, password)
    del password
    return key


_SIGN_PASSWORD = "The key is encrypted: read its password from stdin."


@log.command("checkpoint")
@key_options(
    "Sign the checkpoint with this Ed25519 private key (PEM), as a signed note under the "
    "log's origin. Without it, the bare checkpoint, which proves nothing by itself.",
    _SIGN_PASSWORD,
    required=False,
)
@click.option(
    "--output",
    "output_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write it to FILE instead of stdout (mode 0600; an existing file is not overwritten).",
)
@pass_app
def log_checkpoint(
    app: App, key_file: str | None, key_password_stdin: bool, output_file: str | None
) -> None:
    """Print the log's checkpoint now (c2sp.org/tlog-checkpoint): origin, size, root.

    Keep it somewhere the database's holder cannot rewrite (a CI artifact, a git
    repository, a ticket): 'log verify --checkpoint FILE' then shows the log only grew.
    """
    import os

    from deploytrack.services import log as service

    key = _signer(key_file, key_password_stdin)
    view = service.checkpoint(app.store, key)
    if output_file is None:
        emit(view.note, newline=False)
        return
    from deploytrack.files import create_output

    with os.fdopen(create_output(output_file), "wb") as handle:
        handle.write(view.note.encode())
    signed = "signed" if view.signed else "unsigned"
    click.echo(
        f"Wrote the {signed} checkpoint of {view.size} events to {safe(output_file)}.", err=True
    )


@log.command("verifier-key")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="PUBLIC_KEY_PEM",
    help="The Ed25519 public key (PEM) that signs the checkpoints.",
)
@output_option
@pass_app
def log_verifier_key(app: App, key_file: str, output: str) -> None:
    """Print the note verifier key (name+key ID+key) of a public key for this log's origin:
    the one line other tools (and witnesses) take to check its checkpoints."""
    from deploytrack.services import log as service

    view = service.verifier_key(app.store, key_file)
    render(view, output, text=_tell_verifier_key)


def _tell_verifier_key(view: VerifierKeyView) -> None:
    click.echo(safe(view.verifier_key))


@log.command("prove")
@click.option(
    "--deployment",
    "deployment",
    required=True,
    type=ID,
    metavar="ID",
    help="The deployment record whose events to prove.",
)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=_CHECKPOINT_FILE,
    metavar="FILE",
    help="Prove against this kept, signed checkpoint (the log must extend it).",
)
@key_options(
    "Prove against the log's checkpoint now, signed with this Ed25519 private key (PEM).",
    _SIGN_PASSWORD,
    required=False,
)
@click.option(
    "--output-dir",
    "output_dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Write each proof to DIR/deployment-ID-event-SEQ.tlog-proof (0600, never over an "
    "existing file; DIR is created 0700 if missing).",
)
@output_option
@pass_app
def log_prove(
    app: App,
    deployment: int,
    checkpoint_file: str | None,
    key_file: str | None,
    key_password_stdin: bool,
    output_dir: str | None,
    output: str,
) -> None:
    """Print a c2sp.org/tlog-proof for each event of a deployment record: its index, the
    inclusion proof, the signed checkpoint, and the event's bytes in its extra line.

    'log verify-proof FILE --key PUBLIC_KEY_PEM' checks one offline. Give --checkpoint (a
    signed checkpoint kept earlier) or --key (a fresh one): a proof needs a signature.
    """
    from deploytrack.services import log as service

    if (checkpoint_file is None) == (key_file is None):
        raise click.UsageError(
            "give --key PRIVATE_KEY_PEM (prove against the log now, signed) or --checkpoint "
            "FILE (a signed checkpoint kept earlier), one of them"
        )
    key = _signer(key_file, key_password_stdin)
    result = service.prove(app.store, deployment, checkpoint_file=checkpoint_file, key=key)
    if output_dir is not None:
        result = _write_proofs(result, output_dir)
    render(result, output, text=_tell_proofs)
    if result.later:
        later = ", ".join(str(seq) for seq in result.later)
        click.echo(
            f"Not proven: event(s) {later} of deployment record {deployment} came after the "
            f"checkpoint (size {result.tree_size}): prove them against a newer one.",
            err=True,
        )


def _write_proofs(result: ProveResult, folder: str) -> ProveResult:
    """Each proof in its own new file: all of them created before any is written, so an
    existing one refuses the lot and leaves nothing behind."""
    import dataclasses
    import os

    from deploytrack.files import FileError, create_output, make_private_folders

    try:
        # Absolute: make_private_folders walks up to a folder that exists, and a relative
        # path's walk ends at "", which is no folder.
        make_private_folders(os.path.abspath(folder))
    except OSError as exc:
        raise FileError(f"cannot create {folder}: {exc.strerror}") from None
    made: list[tuple[str, int]] = []
    try:
        for proof in result.proofs:
            path = os.path.join(
                folder, f"deployment-{result.deployment}-event-{proof.seq}.tlog-proof"
            )
            made.append((path, create_output(path)))
    except BaseException:
        for path, fd in made:
            os.close(fd)
            os.unlink(path)
        raise
    proofs = []
    for proof, (path, fd) in zip(result.proofs, made, strict=True):
        with os.fdopen(fd, "wb") as handle:
            handle.write(proof.proof.encode())
        proofs.append(dataclasses.replace(proof, file=path))
    return dataclasses.replace(result, proofs=tuple(proofs))


def _tell_proofs(result: ProveResult) -> None:
    for number, proof in enumerate(result.proofs):
        head = f"event {proof.seq} {safe(proof.type)} {proof.time}: {safe(proof.changed)}"
        if proof.file is not None:
            click.echo(f"{head} -> {safe(proof.file)}")
            continue
        if number:
            click.echo()
        click.echo(f"# {head}")
        # Text for a terminal: the exact bytes are in --output-dir's files and -o json.
        for line in proof.proof.splitlines():
            click.echo(safe(line) if line else "")


@log.command("verify-proof")
@click.argument("proof_file", metavar="FILE", type=click.Path(dir_okay=False))
@_public_keys(
    "An Ed25519 public key (PEM) that may have signed the proof's checkpoint (repeatable).",
    required=True,
)
@click.option(
    "--event",
    "event_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="The event's exact bytes (default: those the proof's extra line carries).",
)
@output_option
@pass_app
def log_verify_proof(
    app: App, proof_file: str, key_files: tuple[str, ...], event_file: str | None, output: str
) -> None:
    """Check a c2sp.org/tlog-proof offline, without a database: its checkpoint is signed by
    a --key under the checkpoint's origin, and the event is the entry at its index. Exit 0
    printing what was proven, 1 naming what does not hold."""
    from deploytrack.services import log as service

    # No store is opened: the proof and the keys are all it takes (--db is ignored).
    render(service.verify_proof(proof_file, key_files, event_file), output, text=_tell_proven)


def _tell_proven(view: ProvenView) -> None:
    click.echo(
        f"Proven: event {view.seq} ({safe(view.type)}, {safe(view.time)}) is in the log "
        f"{safe(view.origin)} of {view.tree_size} events, whose checkpoint is signed by "
        f"{safe(view.signed_by)}."
    )
    click.echo(f"Changed: {safe(view.changed)}")
    click.echo(f"Leaf hash: {view.leaf_hash}")


@log.command("consistency")
@click.option(
    "--from",
    "from_file",
    required=True,
    type=_CHECKPOINT_FILE,
    metavar="FILE",
    help="The checkpoint kept earlier (signed note or bare text).",
)
@key_options(
    "Sign the new checkpoint with this Ed25519 private key (PEM).",
    _SIGN_PASSWORD,
    required=False,
)
@output_option
@pass_app
def log_consistency(
    app: App, from_file: str, key_file: str | None, key_password_stdin: bool, output: str
) -> None:
    """Print the RFC 9162 consistency proof from a kept checkpoint to the log now: the
    hashes that show the log only grew since. Exit 1 when it did not (no proof exists).

    Text: a line 'from SIZE ROOT', the proof's hashes in base64 one per line, a blank
    line, then the new checkpoint (docs/log.md).
    """
    from deploytrack.services import log as service

    key = _signer(key_file, key_password_stdin)
    render(service.consistency(app.store, from_file, key), output, text=_tell_consistency)


def _tell_consistency(view: ConsistencyView) -> None:
    lines = [f"from {view.old_size} {view.old_root}", *view.proof]
    emit("".join(line + "\n" for line in lines) + "\n" + view.checkpoint, newline=False)


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
