"""`deployment` commands: record, decommission, list, describe, sync."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.output import (
    Column,
    Table,
    cut,
    output_option,
    print_fields,
    ref_at_digest,
    render,
    safe,
    short_ref,
    when,
)
from deploytrack.cli.params import (
    DEPLOYMENT_NAME,
    DIGEST,
    ENVIRONMENT,
    ID,
    KIND,
    LIMIT,
    STAGE,
    STATUS,
    filter_options,
    slot_options,
)
from deploytrack.cli.registry_options import registry_options
from deploytrack.cli.times import TIME, TIME_END
from deploytrack.digests import normalize_lookup, short

if TYPE_CHECKING:
    from deploytrack.observe import Observed
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.services.views.deployments import DeploymentView, RecordResult
    from deploytrack.services.views.detail import DeploymentDetail
    from deploytrack.services.views.sync import SyncResult, SyncRow


@click.group(
    "deployment",
    cls=LazyGroup,
    lazy={
        "promote": "deploytrack.cli.lifecycle:deployment_promote",
        "rollback": "deploytrack.cli.lifecycle:deployment_rollback",
        "diff": "deploytrack.cli.lifecycle:deployment_diff",
    },
)
def deployment() -> None:
    """Which artifact runs where: records, their history, and their evidence."""


def _summary(view: DeploymentView) -> str:
    return (
        f"{safe(view.deployment_name)} ({view.kind}) {ref_at_digest(view)} in "
        f"{safe(view.environment)}/{safe(view.logical_environment)}"
    )


def _short_artifact(view: DeploymentView) -> str:
    """REPOSITORY:TAG@sha256:<12 hex>, the layout's or chart file's name, or the digest.

    A long reference is cut before the digest, which always shows whole.
    """
    digest = short(view.digest)
    if not view.artifact_ref:
        return digest
    return f"{cut(safe(short_ref(view.artifact_ref)), 24)}@{digest}"


@deployment.command("record")
@slot_options("What runs there, e.g. api-server.")
@click.option("--digest", type=DIGEST, default=None, help="sha256:<64 hex> of the artifact.")
@click.option(
    "--oci-ref",
    default=None,
    metavar="REF",
    help="Resolve the digest from REGISTRY/REPO:TAG (what the tag points to now), "
    "NAME@sha256:..., oci:DIR[:TAG] or oci-archive:FILE[:TAG]; for HELM_CHART also "
    "oci://REGISTRY/REPO/CHART:VERSION or a chart .tgz.",
)
@click.option(
    "--status",
    type=STATUS,
    default="deployed",
    show_default=True,
)
@click.option(
    "--pull-evidence",
    is_flag=True,
    help="First pull the attestations attached to --oci-ref (as 'attestation pull'); "
    "they and the record are one transaction.",
)
@registry_options
@output_option
@pass_app
def deployment_record(
    app: App,
    environment: str,
    logical_environment: str,
    deployment_name: str,
    kind: str,
    digest: str | None,
    oci_ref: str | None,
    status: str,
    pull_evidence: bool,
    output: str,
    registry: RegistryOptions | None,
) -> None:
    """Record that an artifact runs in an environment and logical environment (or stopped).

    A new digest supersedes the active record; the same digest is a heartbeat. With
    --oci-ref the reference is resolved first (see the --registry-* flags); a refusal
    records nothing.
    """
    from deploytrack.services import deployments

    if (digest is None) == (oci_ref is None):
        raise click.UsageError("give exactly one of --digest and --oci-ref")
    slot = deployments.Slot(environment, logical_environment, deployment_name, kind)
    if pull_evidence:
        if oci_ref is None:
            raise click.UsageError("--pull-evidence needs --oci-ref: it pulls from there")
        from deploytrack.cli.attestations import tell_pulled
        from deploytrack.services import pull

        fetched = pull.fetch(oci_ref, registry, kind)
        pulled, result = pull.record_pulled(app.store, fetched, slot, status)
        tell_pulled(pulled, oci_ref, err=True)
        _show_result(result, output)
        return
    artifact_ref = None
    if oci_ref is not None:
        from deploytrack.services.artifacts import resolve_artifact

        resolved = resolve_artifact(kind, oci_ref, registry)
        digest, artifact_ref = resolved.digest, resolved.artifact_ref
    result = deployments.record(
        app.store, slot, digest or "", artifact_ref=artifact_ref, status=status
    )
    _show_result(result, output)


def _show_result(result: RecordResult, output: str) -> None:
    """What record() did: one sentence, or the RecordResult as JSON."""
    render(result, output, text=_tell_result)


def _tell_result(result: RecordResult) -> None:
    view = result.deployment
    if result.action == "created":
        click.echo(f"Recorded deployment {view.id}: {_summary(view)}.")
    elif result.action == "superseded":
        assert result.previous is not None
        click.echo(
            f"Recorded deployment {view.id}: {_summary(view)}; it supersedes deployment "
            f"{result.previous.id} ({short(result.previous.digest)})."
        )
    elif result.action == "heartbeat":
        click.echo(
            f"Heartbeat for deployment {view.id}: {_summary(view)} still runs "
            f"(last seen {when(view.last_seen_at)})."
        )
    elif result.action == "decommissioned":
        click.echo(f"Decommissioned deployment {view.id}: {_summary(view)}.")
    else:
        click.echo(f"Deployment {view.id} was already decommissioned: nothing changed.")


@deployment.command("decommission")
@slot_options("What stopped running, e.g. api-server.")
@output_option
@pass_app
def deployment_decommission(
    app: App,
    environment: str,
    logical_environment: str,
    deployment_name: str,
    kind: str,
    output: str,
) -> None:
    """Record that a slot stopped running whatever it ran (no digest needed).

    The same as 'deployment record --status decommissioned --digest D' with the digest the
    slot runs. A slot already decommissioned is left unchanged (exit 0); a slot that never
    ran anything is refused.
    """
    from deploytrack.services import deployments

    slot = deployments.Slot(environment, logical_environment, deployment_name, kind)
    _show_result(deployments.decommission(app.store, slot), output)


@deployment.command("list")
@filter_options
@click.option(
    "--deployment-name", type=DEPLOYMENT_NAME, default=None, help="Only this deployment name."
)
@click.option("--kind", default=None, type=KIND, help="Only this kind.")
@click.option(
    "--digest",
    type=normalize_lookup,
    metavar="DIGEST",
    default=None,
    help="Only records of this digest (or a unique prefix of 8+ hex digits).",
)
@click.option("--history", is_flag=True, help="Include superseded and decommissioned records.")
@click.option("--limit", type=LIMIT, default=None, metavar="N", help="At most N records.")
@click.option(
    "--at",
    type=TIME_END,
    default=None,
    help="What was active at TIME: RFC 3339 with a zone, or an age (90m, 2h, 3d ago).",
)
@click.option(
    "--since",
    type=TIME,
    default=None,
    help="History of the records still active at or after TIME (implies --history).",
)
@click.option(
    "--until",
    type=TIME_END,
    default=None,
    help="History of the records already active at or before TIME (implies --history).",
)
@output_option(wide=True)
@pass_app
def deployment_list(
    app: App,
    environment: str | None,
    logical_environment: str | None,
    deployment_name: str | None,
    kind: str | None,
    digest: str | None,
    history: bool,
    limit: int | None,
    at: int | None,
    since: int | None,
    until: int | None,
    output: str,
) -> None:
    """List active deployments, newest first (--history adds ended ones).

    --at TIME lists what was active at TIME: created at or before it and not ended at or
    before it. --since/--until list the history of every record active at some instant of
    the window.
    """
    if at is not None and (history or since is not None or until is not None):
        raise click.UsageError("--at does not combine with --history, --since or --until")
    from deploytrack.services import deployments

    views = deployments.list_deployments(
        app.store,
        deployments.ListFilter(
            environment=environment,
            logical_environment=logical_environment,
            deployment_name=deployment_name,
            kind=kind,
            digest=digest,
            history=history,
            limit=limit,
            at=at,
            since=since,
            until=until,
        ),
    )
    render(views, output, DEPLOYMENTS)


# 120 columns in the table for ordinary names: the artifact's short form and short digest;
# kind, full reference, full digest and heartbeat times are in -o wide.
DEPLOYMENTS = Table(
    (
        Column("ID", lambda v: str(v.id)),
        Column("ENVIRONMENT", lambda v: v.environment, 20, wide_cap=63),
        Column("LOGICAL ENV", lambda v: v.logical_environment, 16, wide_cap=63),
        Column("NAME", lambda v: v.deployment_name, 24, wide_cap=64),
        Column("KIND", lambda v: v.kind, wide=True),
        Column("ARTIFACT", _short_artifact, 44, full=lambda v: v.artifact_ref, wide_cap=120),
        Column("DIGEST", lambda v: v.digest, wide=True),
        Column("STATUS", lambda v: v.status),
        Column("DEPLOYED AT", lambda v: when(v.created_at)),
        Column("LAST SEEN", lambda v: when(v.last_seen_at), wide=True),
        Column("ENDED AT", lambda v: when(v.ended_at) if v.ended_at else None, wide=True),
        Column("SOURCE", lambda v: v.source, wide=True),
    ),
    empty="No deployments match.",
)


@deployment.command("describe")
@click.argument("deployment_id", metavar="[ID]", type=ID, required=False)
@click.option(
    "--digest",
    type=normalize_lookup,
    metavar="DIGEST",
    default=None,
    help="Instead of ID: the one active record of this digest (or a unique prefix of 8+ hex "
    "digits); refused, with the ids, when it runs in several slots or nowhere now.",
)
@output_option
@pass_app
def deployment_describe(
    app: App, deployment_id: int | None, digest: str | None, output: str
) -> None:
    """Show one record and every attestation that names its digest."""
    from deploytrack.services import deployments

    if (deployment_id is None) == (digest is None):
        raise click.UsageError("give exactly one of ID and --digest")
    if digest is not None:
        detail = deployments.describe_digest(app.store, digest)
    else:
        assert deployment_id is not None
        detail = deployments.describe(app.store, deployment_id)
    render(detail, output, text=_tell_detail)


def _tell_detail(detail: DeploymentDetail) -> None:
    from deploytrack.cli.attestations import show_attestation
    from deploytrack.cli.policies import show_admission

    view = detail.deployment
    print_fields(
        [
            ("ID", view.id),
            ("Environment", view.environment),
            ("Logical env", view.logical_environment),
            ("Name", view.deployment_name),
            ("Kind", view.kind),
            ("Digest", view.digest),
            ("Artifact ref", view.artifact_ref),
            ("Status", view.status),
            ("Deployed at", when(view.created_at)),
            ("Last seen", when(view.last_seen_at)),
            ("Ended at", when(view.ended_at) if view.ended_at else None),
            ("Supersedes", detail.supersedes),
            ("Superseded by", view.superseded_by),
            ("Promoted from", view.promoted_from),
            ("Rollback of", view.rollback_of),
            ("Source", view.source),
        ]
    )
    show_admission(detail)  # the stage policy that admitted the record
    click.echo(f"\nEvidence ({len(detail.attestations)} attestation(s) name this digest):")
    for att in detail.attestations:
        click.echo("")
        show_attestation(att)


@deployment.command("sync")
@click.option(
    "--env",
    "environment",
    type=ENVIRONMENT,
    default=None,
    help="Environment the input shows (required but with --env-from-event).",
)
@click.option(
    "--logical-env", "logical_environment", type=STAGE, required=True, help="Logical environment."
)
@click.option(
    "--from-kubectl",
    metavar="FILE|-",
    default=None,
    help="The JSON of 'kubectl get pods -A -o json' ('-': stdin).",
)
@click.option(
    "--from-helm", metavar="FILE|-", default=None, help="The JSON of 'helm list -A -o json'."
)
@click.option(
    "--from-cdevents",
    metavar="FILE|-",
    default=None,
    help="CDEvents, one JSON object a line (service.deployed, upgraded, rolledback, removed).",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="Only this namespace (repeatable; kubectl and helm): the others are skipped.",
)
@click.option(
    "--name-template",
    default=None,
    metavar="T",
    help="Deployment name of each artifact, e.g. '{namespace}-{workload}-{container}' "
    "(kubectl) or '{namespace}-{release}' (helm).",
)
@click.option(
    "--chart-repo",
    default=None,
    metavar="oci://REGISTRY/PATH",
    help="Helm: resolve each release's chart as oci://REGISTRY/PATH/NAME:VERSION through "
    "the registry instead of by the evidence store.",
)
@click.option(
    "--env-from-event",
    is_flag=True,
    help="CDEvents: the environment is each event's subject.content.environment.id.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Decommission the active records of the environment and logical environment "
    "that the input does not show (kubectl and helm).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when any outcome is not a heartbeat (drift), after printing.",
)
@registry_options
@output_option
@pass_app
def deployment_sync(
    app: App,
    environment: str | None,
    logical_environment: str,
    from_kubectl: str | None,
    from_helm: str | None,
    from_cdevents: str | None,
    namespaces: tuple[str, ...],
    name_template: str | None,
    chart_repo: str | None,
    env_from_event: bool,
    prune: bool,
    dry_run: bool,
    exit_code: bool,
    output: str,
    registry: RegistryOptions | None,
) -> None:
    """Record what actually runs, from kubectl, helm or CDEvents output.

    Each observed artifact becomes what 'deployment record' would do with it (evidence
    required, stage policy, heartbeat, supersede), with source 'observed', in one
    transaction; each ends in one outcome: heartbeat, created, superseded, unattested,
    refused, skipped or (--prune, CDEvents service.removed) decommissioned. Only input
    that cannot be read fails the run, and then nothing is written.
    """
    given = {
        name: path
        for name, path in (
            ("kubectl", from_kubectl),
            ("helm", from_helm),
            ("cdevents", from_cdevents),
        )
        if path is not None
    }
    if len(given) != 1:
        raise click.UsageError("give exactly one of --from-kubectl, --from-helm, --from-cdevents")
    ((source, path),) = given.items()
    if source == "cdevents":
        if namespaces or name_template is not None:
            raise click.UsageError(
                "--namespace and --name-template read kubectl and helm output: an event "
                "names its deployment itself"
            )
        if prune:
            raise click.UsageError(
                "--prune needs a snapshot of everything that runs (kubectl, helm): events "
                "say only what changed"
            )
    elif env_from_event:
        raise click.UsageError("--env-from-event reads CDEvents (--from-cdevents)")
    if chart_repo is not None and source != "helm":
        raise click.UsageError("--chart-repo resolves helm charts (--from-helm)")
    if environment is None and not env_from_event:
        raise click.UsageError("give --env (or, with --from-cdevents, --env-from-event)")
    from deploytrack.observe import MAX_INPUT_BYTES
    from deploytrack.services import sync

    data = _read_observed(path, MAX_INPUT_BYTES)
    observed = _parse(source, data, namespaces, name_template, env_from_event, logical_environment)
    from deploytrack.cli.progress import progress

    resolve = sync.chart_resolver(app.store, chart_repo, registry) if source == "helm" else None
    with progress("Syncing", len(observed)) as advance:
        result = sync.sync(
            app.store,
            environment,
            logical_environment,
            observed,
            prune=prune,
            dry_run=dry_run,
            resolve_chart=resolve,
            progress=advance,
        )
    render(result, output, text=_tell_sync)
    if exit_code and result.drift:
        click.get_current_context().exit(1)


def _parse(
    source: str,
    data: bytes,
    namespaces: tuple[str, ...],
    name_template: str | None,
    env_from_event: bool,
    logical_environment: str,
) -> list[Observed]:
    """The input read by its source's parser (each loaded only when its flag is given)."""
    if source == "kubectl":
        from deploytrack.observe import kubectl

        return kubectl.parse(data, namespaces=namespaces, name_template=name_template)
    if source == "helm":
        from deploytrack.observe import helm

        return helm.parse(data, namespaces=namespaces, name_template=name_template)
    from deploytrack.observe import cdevents

    # A deploytrack export holds every logical environment: only this one's events apply.
    return cdevents.parse(
        data, env_from_event=env_from_event, logical_environment=logical_environment
    )


def _read_observed(path: str, limit: int) -> bytes:
    """The input, bounded: stdin for '-', else a regular file (never waited on)."""
    if path == "-":
        import sys

        data: bytes = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise click.ClickException(
                f"stdin is larger than {limit // 2**20} MiB: give the output of one cluster"
            )
        return data
    from deploytrack.services import read_named_file

    return read_named_file(
        path, "input", limit, f"is larger than {limit // 2**20} MiB: give the output of one cluster"
    )


def _observed_at(row: SyncRow) -> str:
    """Where a row was seen, in one cell: the source's values joined by '/' (a record that
    --prune ended was seen nowhere: its record is named)."""
    if set(row.source) == {"deployment_id"}:
        return f"not seen (record {row.source['deployment_id']})"
    return "/".join(str(v) for v in row.source.values() if isinstance(v, (str, int)))


def _note(row: SyncRow) -> str | None:
    if row.warning is None:
        return row.reason
    return row.warning if row.reason is None else f"{row.reason}; {row.warning}"


SYNC_ROWS = Table(
    (
        Column("OUTCOME", lambda r: r.outcome),
        Column("NAME", lambda r: r.deployment_name, 32),
        Column("KIND", lambda r: r.kind),
        Column("DIGEST", lambda r: short(r.digest) if r.digest else None),
        Column("OBSERVED AT", _observed_at, 40),
        Column("REASON", _note, 60),
    ),
    empty="Nothing was observed.",
)


def _tell_sync(result: SyncResult) -> None:
    SYNC_ROWS.show(result.rows)
    counts = ", ".join(f"{n} {outcome}" for outcome, n in result.counts.items() if n)
    where = (
        f"{safe(result.environment)}/{safe(result.logical_environment)}"
        if result.environment is not None
        else f"the events' environments/{safe(result.logical_environment)}"
    )
    verb = "Dry run, nothing written: would sync" if result.dry_run else "Synced"
    click.echo(f"{verb} {len(result.rows)} row(s) into {where}: {counts or 'nothing'}.")
