"""Stage policies: `logical-environment policy set|show|clear` and `policy check`.

The `logical-environment policy` subgroup is attached to its parent in cli/catalog.py;
the top-level `policy` group (for CI gates) in cli/__init__.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.output import Column, Table, output_option, render, safe, when
from deploytrack.cli.params import DIGEST, KIND, STAGE
from deploytrack.cli.registry_options import registry_options

if TYPE_CHECKING:
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.services.views.detail import DeploymentDetail
    from deploytrack.services.views.policies import (
        AdmissionView,
        Decision,
        PolicyChange,
        PolicyReport,
        PolicyView,
    )

_NAME = click.option("--name", type=STAGE, required=True, help="The logical environment.")


def _rules(view: PolicyView) -> list[str]:
    lines = [f"requires predicate type {p}" for p in view.required_predicates]
    if view.trusted_keys:
        keys = ", ".join(f"{k.fingerprint} ({k.algorithm})" for k in view.trusted_keys)
        if view.required_predicates:
            lines.append(f"each verified with a trusted key: {keys}")
        else:
            lines.append(f"an attestation naming the digest verified with a trusted key: {keys}")
    return lines


def show_policy(view: PolicyView) -> None:
    click.echo(
        f"Stage policy {view.id} of {view.logical_environment}, set {when(view.created_at)}:"
    )
    for line in _rules(view):
        click.echo(f"  {safe(line)}")


def show_admission(detail: DeploymentDetail) -> None:
    """The `deployment describe` lines saying which policy admitted the record."""
    view = detail.deployment
    if detail.policy is None:
        click.echo(
            f"\nAdmitted by: no stage policy (none was in force at {view.logical_environment} "
            "when it was recorded)"
        )
        return
    policy = detail.policy
    click.echo(
        f"\nAdmitted by: stage policy {policy.id} of {policy.logical_environment}, set "
        f"{when(policy.created_at)}"
    )
    for line in _rules(policy):
        click.echo(f"  {safe(line)}")
    show_evidence(detail.admission)


def show_evidence(admission: Sequence[AdmissionView]) -> None:
    """The evidence that satisfied each rule: `deployment describe` and `policy check`."""
    for item in admission:
        rule = item.requirement or "an attestation naming the digest"
        key = f", verified with {item.fingerprint}" if item.fingerprint else ""
        click.echo(f"  {safe(rule)}: attestation {item.attestation}{key}")


@click.group("policy", cls=LazyGroup)
def stage_policy() -> None:
    """The stage policy of a logical environment: evidence a digest needs to be deployed."""


@stage_policy.command("set")
@_NAME
@click.option(
    "--require-predicate",
    "predicates",
    multiple=True,
    metavar="URI",
    help="An attestation of this predicate type must name the digest (repeatable), e.g. "
    "https://slsa.dev/provenance/v1.",
)
@click.option(
    "--trusted-key",
    "key_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="PUB_PEM",
    help="Public key (PEM); the required attestations must be signed by one of these "
    "(repeatable). Only the public key is stored.",
)
@output_option
@pass_app
def policy_set(
    app: App, name: str, predicates: tuple[str, ...], key_files: tuple[str, ...], output: str
) -> None:
    """Write the whole policy of a logical environment (a new version; the old one stays in
    the history)."""
    from deploytrack.services import policies, trust

    if not predicates and not key_files:
        raise click.UsageError("give --require-predicate URI or --trusted-key PUB_PEM (or both)")
    keys = trust.load_public_keys(key_files)
    render(policies.set_policy(app.store, name, predicates, keys), output, text=_tell_set)


def _tell_set(change: PolicyChange) -> None:
    view = change.policy
    assert view is not None
    if change.changed:
        click.echo(f"Set stage policy {view.id} of {view.logical_environment}:")
    else:
        click.echo(
            f"Stage policy {view.id} of {view.logical_environment} is already this policy: "
            "unchanged."
        )
    for line in _rules(view):
        click.echo(f"  {safe(line)}")


@stage_policy.command("show")
@_NAME
@output_option
@pass_app
def policy_show(app: App, name: str, output: str) -> None:
    """Show the policy in force in a logical environment and every change to it."""
    from deploytrack.services import policies

    render(policies.show_policy(app.store, name), output, text=_tell_show)


def _tell_show(report: PolicyReport) -> None:
    name, current, history = report.logical_environment, report.policy, report.history
    if current is None:
        click.echo(
            f"No stage policy on {name}: deployment record admits any digest the evidence "
            "store knows."
        )
    else:
        show_policy(current)
    if history:
        click.echo("\nHistory:")
        HISTORY.show(history)


HISTORY = Table(
    (
        Column("VERSION", lambda v: str(v.id)),
        Column("ACTION", lambda v: v.action),
        Column("REQUIRED PREDICATES", lambda v: ", ".join(v.required_predicates), 120),
        Column("TRUSTED KEYS", lambda v: ", ".join(k.fingerprint for k in v.trusted_keys), 160),
        Column("AT", lambda v: when(v.created_at)),
    ),
    empty="",
)


@stage_policy.command("clear")
@_NAME
@output_option
@pass_app
def policy_clear(app: App, name: str, output: str) -> None:
    """Remove the policy of a logical environment (kept in the history as a `clear` version)."""
    from deploytrack.services import policies

    render(
        policies.clear_policy(app.store, name),
        output,
        text=lambda change: _tell_clear(name, change),
    )


def _tell_clear(name: str, change: PolicyChange) -> None:
    if change.changed:
        assert change.policy is not None
        click.echo(f"Cleared the stage policy of {name} (version {change.policy.id}).")
    else:
        click.echo(f"No stage policy on {name}: nothing to clear.")


@click.group("policy", cls=LazyGroup)
def policy() -> None:
    """Ask a stage policy without recording anything (for CI gates)."""


@policy.command("check")
@click.option(
    "--logical-env",
    "logical_environment",
    type=STAGE,
    required=True,
    help="The logical environment.",
)
@click.option("--digest", type=DIGEST, default=None, help="sha256:<64 hex> of the artifact.")
@click.option(
    "--oci-ref",
    default=None,
    metavar="REF",
    help="Resolve the digest first, as 'deployment record --oci-ref' does.",
)
@click.option(
    "--kind",
    type=KIND,
    default="CONTAINER_IMAGE",
    show_default=True,
    help="How --oci-ref is resolved.",
)
@click.option(
    "--pull-evidence",
    is_flag=True,
    help="First pull and store the attestations attached to --oci-ref (as 'attestation "
    "pull'); they stay stored whatever the answer.",
)
@registry_options
@output_option
@pass_app
def policy_check(
    app: App,
    logical_environment: str,
    digest: str | None,
    oci_ref: str | None,
    kind: str,
    pull_evidence: bool,
    output: str,
    registry: RegistryOptions | None,
) -> None:
    """Would 'deployment record' admit this artifact in this logical environment now?
    Exit 0 yes, 1 no.

    Signatures are verified from the stored evidence, exactly as the gate of 'deployment
    record' does; nothing is written, but for what --pull-evidence pulls.
    """
    from deploytrack.services import policies

    if (digest is None) == (oci_ref is None):
        raise click.UsageError("give exactly one of --digest and --oci-ref")
    pulled = None
    if pull_evidence:
        if oci_ref is None:
            raise click.UsageError("--pull-evidence needs --oci-ref: it pulls from there")
        from deploytrack.services import pull

        fetched = pull.fetch(oci_ref, registry, kind)
        pulled = pull.store_pulled(app.store, fetched)
        digest = fetched.digest
    elif oci_ref is not None:
        from deploytrack.services.artifacts import resolve_artifact

        digest = resolve_artifact(kind, oci_ref, registry).digest
    assert digest is not None
    decision = policies.check(app.store, logical_environment, digest)
    render(decision, output, text=_tell_check)
    if not decision.passed:
        from deploytrack.services import ServiceError

        raise ServiceError(decision.refusal())  # the one stderr line of a refusal
    if pulled is not None:
        from deploytrack.cli.attestations import tell_pulled

        tell_pulled(pulled, oci_ref or "", err=True)


def _tell_check(decision: Decision) -> None:
    """A pass in sentences; a refusal is the command's one Error line, nothing here."""
    if decision.passed:
        if decision.policy is None:
            click.echo(
                f"PASS: {decision.logical_environment} has no stage policy; {decision.digest} "
                "is in the evidence store, so deployment record admits it."
            )
        else:
            click.echo(
                f"PASS: stage policy {decision.policy.id} of {decision.logical_environment} "
                f"admits {decision.digest}:"
            )
            show_evidence(decision.admission)
