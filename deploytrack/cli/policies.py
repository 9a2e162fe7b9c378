"""Stage policies: `logical-environment policy set|show|clear` and `policy check`.

The `logical-environment policy` subgroup is attached to its parent in cli/catalog.py;
the top-level `policy` group (for CI gates) in cli/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.output import Column, Table, output_option, render, safe, when
from deploytrack.cli.params import DIGEST, KIND, STAGE
from deploytrack.cli.registry_options import registry_options
from deploytrack.digests import short

if TYPE_CHECKING:
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.services.views.detail import DeploymentDetail
    from deploytrack.services.views.policies import (
        AdmissionView,
        Decision,
        PolicyChange,
        PolicyIdentityView,
        PolicyReport,
        PolicyView,
    )

_NAME = click.option("--name", type=STAGE, required=True, help="The logical environment.")


def _identity_text(identity: PolicyIdentityView) -> str:
    shown = f"matching {identity.identity}" if identity.match == "regexp" else identity.identity
    return f"{shown} (issuer {identity.issuer}, trusted root {short(identity.trusted_root)})"


def _rules(view: PolicyView) -> list[str]:
    lines = [f"requires predicate type {p}" for p in view.required_predicates]
    trusted = [f"key {k.fingerprint} ({k.algorithm})" for k in view.trusted_keys]
    trusted += [f"identity {_identity_text(i)}" for i in view.trusted_identities]
    if trusted:
        what = "each" if view.required_predicates else "an attestation naming the digest"
        lines.append(f"{what} verified with a trusted key or identity: {', '.join(trusted)}")
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
        if item.identity:
            key = f", signed by {item.identity} (issuer {item.issuer}, keyless)"
        click.echo(f"  {safe(rule)}: attestation {item.attestation}{safe(key)}")


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
    "or by a trusted identity (repeatable). Only the public key is stored.",
)
@click.option(
    "--trusted-identity",
    "identities",
    multiple=True,
    metavar="ID",
    help="Keyless: a signer identity (a Sigstore certificate's), e.g. "
    "https://github.com/ORG/REPO/.github/workflows/release.yml@refs/heads/main (repeatable).",
)
@click.option(
    "--trusted-identity-regexp",
    "identity_regexps",
    multiple=True,
    metavar="RE",
    help="Keyless: a regular expression the whole signer identity must match (repeatable).",
)
@click.option(
    "--trusted-issuer",
    "issuers",
    multiple=True,
    metavar="URL",
    help="The OIDC issuer of the identities: once for all of them, or once per identity in "
    "order (the --trusted-identity values first, then the --trusted-identity-regexp ones).",
)
@click.option(
    "--trusted-root",
    "root_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="The trusted_root.json the identities' certificates must chain to (stored in the "
    "database): none for the Sigstore public-good root, once for all, or once per identity "
    "in the order of --trusted-issuer.",
)
@output_option
@pass_app
def policy_set(
    app: App,
    name: str,
    predicates: tuple[str, ...],
    key_files: tuple[str, ...],
    identities: tuple[str, ...],
    identity_regexps: tuple[str, ...],
    issuers: tuple[str, ...],
    root_files: tuple[str, ...],
    output: str,
) -> None:
    """Write the whole policy of a logical environment (a new version; the old one stays in
    the history).

    Identities pair with issuers and trusted roots by position: a single --trusted-issuer
    (or --trusted-root) applies to every identity; otherwise give one per identity, the
    --trusted-identity values first, then the --trusted-identity-regexp ones, each in the
    order given.
    """
    from deploytrack.services import policies, trust

    signers = [(i, "exact") for i in identities] + [(r, "regexp") for r in identity_regexps]
    if not predicates and not key_files and not signers:
        raise click.UsageError(
            "give --require-predicate URI, --trusted-key PUB_PEM or --trusted-identity ID "
            "(or several)"
        )
    issuer_of = _pair("--trusted-issuer", issuers, len(signers), required=True)
    root_of = _pair("--trusted-root", root_files, len(signers), required=False)
    keys = trust.load_public_keys(key_files)
    rules = []
    if signers:
        from deploytrack.services import keyless

        loaded = {path: keyless.read_root(path) for path in dict.fromkeys(root_files)}
        default = keyless.public_good_root() if not root_files else None
        for n, (identity, match) in enumerate(signers):
            path = root_of(n)
            root = loaded[path] if path is not None else default
            assert root is not None
            rules.append((keyless.identity_rule(identity, issuer_of(n) or "", match), root))
    render(policies.set_policy(app.store, name, predicates, keys, rules), output, text=_tell_set)


def _pair(
    flag: str, values: tuple[str, ...], count: int, *, required: bool
) -> Callable[[int], str | None]:
    """Which value of a flag goes with identity n: one for all, or one each, by position."""
    if count == 0 and values:
        raise click.UsageError(f"{flag} needs --trusted-identity or --trusted-identity-regexp")
    if count and not values and required:
        raise click.UsageError(f"each trusted identity needs its OIDC issuer: give {flag} URL")
    if len(values) not in (0, 1, count):
        raise click.UsageError(
            f"{len(values)} {flag} for {count} identities: give one for all of them, or one "
            "per identity (--trusted-identity values first, then --trusted-identity-regexp)"
        )
    return lambda n: values[0] if len(values) == 1 else (values[n] if values else None)


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
        Column(
            "TRUSTED IDENTITIES",
            lambda v: ", ".join(_identity_text(i) for i in v.trusted_identities),
            160,
        ),
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
