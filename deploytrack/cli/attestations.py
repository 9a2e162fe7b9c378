"""`attestation` and `artifact` commands: the evidence store."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.output import (
    Column,
    Table,
    output_option,
    print_fields,
    render,
    safe,
    when,
)
from deploytrack.cli.registry_options import registry_options
from deploytrack.digests import normalize_lookup, short

if TYPE_CHECKING:
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.services.views.evidence import AttestationView, ImportResult, PullResult


def read_input(path: str, limit: int) -> bytes:
    """Read at most `limit`+1 bytes: enough to tell that an input is over the limit."""
    if path == "-":
        return sys.stdin.buffer.read(limit + 1)
    from deploytrack.files import read_at_most

    try:
        return read_at_most(path, limit)
    except IsADirectoryError:
        raise click.ClickException(f"{path} is a directory: give attestation files") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None


def is_text(value: str) -> bool:
    """False for arguments that were not UTF-8 (Python keeps such bytes as surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@click.group(
    "attestation",
    cls=LazyGroup,
    lazy={
        "create": "deploytrack.cli.signing:attestation_create",
        "push": "deploytrack.cli.push:attestation_push",
        "sign": "deploytrack.cli.signing:attestation_sign",
        "verify": "deploytrack.cli.signing:attestation_verify",
    },
)
def attestation() -> None:
    """The evidence store: in-toto statements, DSSE envelopes, Sigstore bundles."""


@attestation.command("import")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--project", default=None, help="Project (overrides the predicate's).")
@click.option("--version", "version", default=None, help="Project version.")
@click.option("--workflow", default=None, help="Workflow that produced it.")
@output_option
@pass_app
def attestation_import(
    app: App,
    paths: tuple[str, ...],
    project: str | None,
    version: str | None,
    workflow: str | None,
    output: str,
) -> None:
    """Store attestation files (`-` reads stdin). All are checked before any is stored."""
    from deploytrack.evidence import MAX_INPUT_BYTES
    from deploytrack.services import evidence

    if paths.count("-") > 1:
        raise click.UsageError("stdin ('-') can be read only once")
    for flag, value in (("--project", project), ("--version", version), ("--workflow", workflow)):
        if value is not None and not is_text(value):
            raise click.UsageError(f"{flag} is not valid UTF-8 text")
    from deploytrack.cli.progress import progress

    # Read as parsed (a generator): the bar moves file by file, and one file's bytes at a
    # time are held before they are parsed.
    sources = (
        evidence.Source(
            name="stdin" if path == "-" else path,
            data=read_input(path, MAX_INPUT_BYTES),
            jsonl=path.lower().endswith(".jsonl"),
        )
        for path in paths
    )
    # Parse everything before the database is opened: a refused import leaves no trace,
    # not even a new, empty database file.
    with progress("Reading attestations", len(paths)) as advance:
        parsed = evidence.parse_sources(sources, progress=advance)
    overrides = evidence.Overrides(project, version, workflow)
    with progress("Storing attestations", 2 * len(parsed)) as advance:
        results = evidence.store_parsed(app.store, parsed, overrides, progress=advance)
    render(results, output, text=lambda done: _tell_imported(done, project, version, workflow))


def _tell_imported(
    results: list[ImportResult], project: str | None, version: str | None, workflow: str | None
) -> None:
    for result in results:
        att = result.attestation
        if result.created:
            click.echo(
                f"Imported {safe(att.digest)} from {safe(result.source)}: {safe(att.format)}, "
                f"{safe(att.predicate_type)}, {len(att.subjects)} subject(s), "
                f"{len(att.materials)} material(s)."
            )
        else:
            ignored = [
                flag
                for flag, given, stored in (
                    ("--project", project, att.project),
                    ("--version", version, att.version),
                    ("--workflow", workflow, att.workflow),
                )
                if given is not None and given != stored
            ]
            note = (
                f" ({', '.join(ignored)} not applied: stored attestations never change)"
                if ignored
                else ""
            )
            click.echo(
                f"Already imported {safe(att.digest)} from {safe(result.source)}: "
                f"nothing added{note}."
            )


@attestation.command("pull")
@click.option(
    "--oci-ref",
    required=True,
    metavar="REF",
    help="The image: REGISTRY/REPO:TAG, NAME@sha256:..., oci:DIR[:TAG] or "
    "oci-archive:FILE[:TAG], resolved as 'deployment record --oci-ref' does.",
)
@click.option("--project", default=None, help="Project (overrides the predicate's).")
@click.option("--version", "version", default=None, help="Project version.")
@click.option("--workflow", default=None, help="Workflow that produced it.")
@registry_options
@output_option
@pass_app
def attestation_pull(
    app: App,
    oci_ref: str,
    project: str | None,
    version: str | None,
    workflow: str | None,
    output: str,
    registry: RegistryOptions | None,
) -> None:
    """Store the attestations attached to an image in its registry or OCI layout.

    Looks at the OCI 1.1 referrers API (or, where the registry has none, the referrers
    tag sha256-<hex>), cosign's sha256-<hex>.att tag, or the layout's manifests whose
    subject is the digest. Sigstore bundles, DSSE envelopes and in-toto statements naming
    the digest are imported with every rule of 'attestation import'; other types are
    listed as skipped. Everything is checked before anything is stored.
    """
    from deploytrack.services import evidence, pull

    for flag, value in (("--project", project), ("--version", version), ("--workflow", workflow)):
        if value is not None and not is_text(value):
            raise click.UsageError(f"{flag} is not valid UTF-8 text")
    fetched = pull.fetch(oci_ref, registry)
    result = pull.store_pulled(app.store, fetched, evidence.Overrides(project, version, workflow))
    render(result, output, text=lambda done: tell_pulled(done, oci_ref))


PULLED = Table(
    (
        Column("OUTCOME", lambda r: r.outcome),
        Column("SOURCE", lambda r: r.source),
        Column("ARTIFACT TYPE", lambda r: r.artifact_type, 48),
        Column("REFERRER", lambda r: short(r.digest)),
        Column(
            "ATTESTATION / REASON",
            lambda r: short(r.attestation) if r.attestation else r.reason,
            60,
        ),
    ),
    empty="",
)


def tell_pulled(result: PullResult, ref: str, *, err: bool = False) -> None:
    """What a pull found: one sentence, and a row per referrer (on stderr for a command
    whose own answer is something else)."""
    counts = {o: sum(r.outcome == o for r in result.referrers) for o in ("imported", "present")}
    skipped = len(result.referrers) - counts["imported"] - counts["present"]
    if not result.referrers:
        click.echo(f"Nothing is attached to {result.digest} ({safe(ref)}).", err=err)
        return
    click.echo(
        f"Pulled from {safe(ref)} ({result.digest}): {counts['imported']} imported, "
        f"{counts['present']} already present, {skipped} skipped.",
        err=err,
    )
    if not err:
        PULLED.show(result.referrers, on_stdout=True)


@attestation.command("list")
@click.option("--project", default=None, help="Only this project.")
@click.option("--version", "version", default=None, help="Only this project version.")
@click.option(
    "--digest",
    type=normalize_lookup,
    metavar="DIGEST",
    default=None,
    help="Only attestations naming this digest (or a unique prefix of 8+ hex digits).",
)
@output_option(wide=True)
@pass_app
def attestation_list(
    app: App, project: str | None, version: str | None, digest: str | None, output: str
) -> None:
    """List stored attestations, newest first."""
    from deploytrack.services import evidence

    render(evidence.list_attestations(app.store, project, version, digest), output, ATTESTATIONS)


_NO_ATTESTATIONS = "No attestations: import one with 'deploytrack attestation import FILE'."
# sha512:<128 hex>, the longest digest in-toto names, shows whole.
_DIGEST_CAP = 135
_VERIFIED_BY = {
    "verify": "attestation verify",
    "create": "attestation create",
    "admission": "deployment record",
}
# 120 columns in the table for ordinary names: the format and full values are in -o wide.
ATTESTATIONS = Table(
    (
        Column("DIGEST", lambda v: short(v.digest), full=lambda v: v.digest),
        Column("FORMAT", lambda v: v.format, wide=True),
        Column("PREDICATE TYPE", lambda v: v.predicate_type, 34, wide_cap=100),
        Column("PROJECT", lambda v: v.project, 16, wide_cap=64),
        Column("VERSION", lambda v: v.version, 12, wide_cap=32),
        Column("WORKFLOW", lambda v: v.workflow, 12, wide_cap=64),
        Column("SUBJECTS", lambda v: str(len(v.subjects))),
        Column("IMPORTED", lambda v: when(v.imported_at)),
    ),
    empty=_NO_ATTESTATIONS,
)
SUBJECTS = Table(
    (Column("NAME", lambda s: s.name, 80), Column("DIGEST", lambda s: s.digest, _DIGEST_CAP)),
    empty="  none",
)
MATERIALS = Table(
    (
        Column("KIND", lambda m: m.kind, 24),
        Column("NAME", lambda m: m.name, 80),
        Column("DIGEST", lambda m: m.digest, _DIGEST_CAP),
    ),
    empty="  none",
)
VERIFICATIONS = Table(
    (
        Column("KEY FINGERPRINT", lambda v: v.fingerprint),
        Column("ALGORITHM", lambda v: v.algorithm),
        Column("BY", lambda v: _VERIFIED_BY.get(v.source, v.source)),
        Column("VERIFIED AT", lambda v: when(v.verified_at)),
    ),
    empty="  no key yet ('deploytrack attestation verify DIGEST --key PUB_PEM')",
)
IDENTITY_VERIFICATIONS = Table(
    (
        Column("IDENTITY", lambda v: v.identity, 100),
        Column("ISSUER", lambda v: v.issuer, 60),
        Column("TRUSTED ROOT", lambda v: short(v.trusted_root)),
        Column("BY", lambda v: _VERIFIED_BY.get(v.source, v.source)),
        Column("VERIFIED AT", lambda v: when(v.verified_at)),
    ),
    empty="  no identity yet ('deploytrack attestation verify DIGEST --certificate-identity ID "
    "--certificate-oidc-issuer URL')",
)


def show_attestation(view: AttestationView) -> None:
    print_fields(
        [
            ("Digest", view.digest),
            ("Format", view.format),
            ("Statement type", view.statement_type),
            ("Predicate type", view.predicate_type),
            ("Project", view.project),
            ("Version", view.version),
            ("Workflow", view.workflow),
            ("Imported", when(view.imported_at)),
        ]
    )
    # A describe prints every section on stdout, empty ones included.
    click.echo("\nSubjects:")
    SUBJECTS.show(view.subjects, on_stdout=True)
    click.echo("\nMaterials:")
    MATERIALS.show(view.materials, on_stdout=True)
    click.echo("\nSignature verified with (newest per key; key-based DSSE):")
    VERIFICATIONS.show(view.verifications, on_stdout=True)
    if view.format == "sigstore-bundle":
        click.echo("\nSigned by (keyless, newest per identity, issuer and trusted root):")
        IDENTITY_VERIFICATIONS.show(view.identity_verifications, on_stdout=True)


@attestation.command("describe")
@click.argument("digest", type=normalize_lookup)
@output_option
@pass_app
def attestation_describe(app: App, digest: str, output: str) -> None:
    """Show one attestation: types, subjects, materials, project (a unique prefix will do)."""
    from deploytrack.services import evidence

    render(evidence.describe_attestation(app.store, digest), output, text=show_attestation)


@click.group("artifact", cls=LazyGroup)
def artifact() -> None:
    """Bytes kept in the evidence store."""


@artifact.command("download")
@click.option(
    "--digest",
    required=True,
    type=normalize_lookup,
    metavar="DIGEST",
    help="sha256 digest of the stored bytes (or a unique prefix of 8+ hex digits).",
)
@click.option(
    "--output",
    "destination",
    default="-",
    show_default=True,
    metavar="FILE|-",
    help="Where to write the bytes; '-' is stdout. An existing file is not overwritten.",
)
@pass_app
def artifact_download(app: App, digest: str, destination: str) -> None:
    """Write stored bytes exactly as they were imported."""
    from deploytrack.services import evidence

    data = evidence.download(app.store, digest)
    if destination == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    from deploytrack.files import create_output

    with os.fdopen(create_output(destination), "wb") as handle:
        handle.write(data)
    click.echo(f"Wrote {len(data)} bytes to {safe(destination)}.", err=True)
