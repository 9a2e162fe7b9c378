"""`attestation push`: attach a stored attestation to its image in a registry.

Attached to the `attestation` group lazily, in cli/attestations.py; `attestation create
--push` (cli/signing.py) shares `referrers_mode_option` and `tell_pushed`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import Command
from deploytrack.cli.output import output_option, render, safe
from deploytrack.cli.registry_options import registry_options
from deploytrack.digests import normalize_lookup

if TYPE_CHECKING:
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.registry.push import ReferrersMode
    from deploytrack.services.views.push import PushResult


def referrers_mode_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--referrers-mode auto|api|tag: how the registry is told of the new referrer."""
    return click.option(
        "--referrers-mode",
        type=click.Choice(["auto", "api", "tag"]),
        default="auto",
        show_default=True,
        help="api: the registry's referrers API lists it; tag: add it to the referrers tag "
        "sha256-<hex>; auto: the API when the registry answers it, else the tag.",
    )(func)


@click.command("push", cls=Command)
@click.argument("digest", type=normalize_lookup)
@click.option(
    "--to",
    "to",
    required=True,
    metavar="REF",
    help="The image (or oci:// chart) to attach it to: REGISTRY/REPOSITORY:TAG or @sha256:...; "
    "the attestation must name its digest.",
)
@referrers_mode_option
@registry_options
@output_option
@pass_app
def attestation_push(
    app: App,
    digest: str,
    to: str,
    referrers_mode: ReferrersMode,
    output: str,
    registry: RegistryOptions | None,
) -> None:
    """Push a stored attestation to a registry as an OCI referrer of the image it names.

    The attestation's exact bytes become the one layer of a manifest whose subject is the
    image REF points to. Pushing again sends nothing new. The database is not changed.
    Prints the referrer's reference, REGISTRY/REPOSITORY@sha256:....
    """
    from deploytrack.services import push

    result = push.push_attestation(app.store, digest, to, registry, referrers_mode)
    render(result, output, text=tell_pushed)


def tell_pushed(result: PushResult, err: bool = False) -> None:
    """The referrer's reference (on stdout unless `err`: create prints its digest there),
    then what was done."""
    click.echo(f"{safe(result.repository)}@{result.referrer.digest}", err=err)
    if result.pushed:
        done = f"Pushed attestation {result.attestation} to {safe(result.repository)}"
    else:
        done = f"Attestation {result.attestation} was in {safe(result.repository)} already"
    how = (
        "the registry's referrers API lists it"
        if result.referrers == "api"
        else f"referrers tag {result.tag} "
        + ("updated" if result.tag_updated else "lists it already")
    )
    click.echo(
        f"{done}: referrer {result.referrer.digest} of {result.subject.digest} "
        f"({safe(result.artifact_type)}); {how}.",
        err=True,
    )
