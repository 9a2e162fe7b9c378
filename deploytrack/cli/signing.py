"""`attestation create`, `sign` and `verify`: evidence built, signed and checked locally.

Attached to the `attestation` group lazily, in cli/attestations.py. cryptography is
imported only when a key is given (inside the services these commands call).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import Command
from deploytrack.cli.output import output_option, render, safe, when
from deploytrack.cli.push import referrers_mode_option
from deploytrack.cli.registry_options import registry_options
from deploytrack.digests import normalize_lookup

if TYPE_CHECKING:
    from typing import Protocol

    from deploytrack.crypto.keys import SigningKey
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.registry.push import ReferrersMode
    from deploytrack.services.views.evidence import (
        CreatedAttestation,
        SignedAttestation,
        VerifyResult,
    )

    class _Enveloped(Protocol):
        @property
        def envelope(self) -> bytes: ...


R = TypeVar("R", bound="_Enveloped")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def read_password() -> bytes:
    """The key password: the next line of stdin (after the registry password, when
    --registry-password-stdin is given too), or a hidden prompt on a terminal."""
    try:
        if sys.stdin.isatty():
            value = click.prompt(
                "Key password", hide_input=True, err=True, default="", show_default=False
            )
        else:
            value = sys.stdin.readline().rstrip("\r\n")
    except UnicodeDecodeError:
        raise click.UsageError("--key-password-stdin read a password that is not UTF-8") from None
    if not value:
        raise click.UsageError("--key-password-stdin read an empty password")
    return value.encode("utf-8", "surrogateescape")


def key_options(key_help: str, password_help: str, *, required: bool) -> Decorator:
    """--key PRIVATE_KEY_PEM, a private key to sign with, and --key-password-stdin, which
    `_signing_key` reads; the commands word the help their own way."""
    key = click.option(
        "--key",
        "key_file",
        type=click.Path(dir_okay=False),
        default=None,
        required=required,
        metavar="PRIVATE_KEY_PEM",
        help=key_help,
    )
    password = click.option("--key-password-stdin", is_flag=True, help=password_help)
    return lambda func: key(password(func))


def _signing_key(key_file: str, key_password_stdin: bool) -> SigningKey:
    """The key of --key, decrypted with the password read when --key-password-stdin asks."""
    from deploytrack.services import attest

    password = read_password() if key_password_stdin else None
    key = attest.load_signing_key(key_file, password)
    del password
    return key


def _output_file_option(help: str) -> Decorator:
    """--output-file FILE, where `_with_output_file` writes the envelope."""
    return click.option(
        "--output-file",
        default=None,
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help=help,
    )


def _reserve(path: str) -> int:
    """Create the output file now (0600, never over an existing file)."""
    from deploytrack.files import create_output

    return create_output(path)


def _with_output_file(output_file: str | None, produce: Callable[[], R]) -> R:
    """Run `produce` and write its envelope to `output_file`, if one is given.

    The file is created before the work, so a path that exists is refused before anything
    is stored; if the work is refused, the empty file is removed again.
    """
    fd = _reserve(output_file) if output_file is not None else None
    try:
        result = produce()
    except BaseException:
        if fd is not None:
            os.close(fd)
            os.unlink(output_file)  # type: ignore[arg-type]  # fd is set only with a path
        raise
    if fd is not None:
        with os.fdopen(fd, "wb") as handle:
            handle.write(result.envelope)
    return result


@click.command("create", cls=Command)
@click.option("--workflow", required=True, help="The workflow that built it, e.g. release.")
@click.option("--project", required=True, help="The project, e.g. api-server.")
@click.option("--version", "version", default=None, help="The project version, e.g. 1.1.0.")
@click.option(
    "--material",
    "materials",
    multiple=True,
    required=True,
    metavar="KIND[:NAME]=VALUE",
    help="CONTAINER_IMAGE=REF, HELM_CHART=oci://...|CHART.tgz, ARTIFACT=FILE, "
    "SBOM_CYCLONEDX_JSON=FILE, SBOM_SPDX_JSON=FILE or STRING=TEXT (repeatable; :NAME "
    "names the material).",
)
@click.option("--annotation", "annotations", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@key_options(
    "Sign with this private key (PKCS#8 or traditional EC/RSA PEM; ECDSA, Ed25519, RSA).",
    "The key is encrypted: read its password from stdin (the second line when "
    "--registry-password-stdin reads the first).",
    required=False,
)
@_output_file_option(
    "Also write the DSSE envelope here (mode 0600; an existing file is not overwritten)."
)
@click.option(
    "--push",
    "push_to",
    default=None,
    metavar="REF",
    help="Also push it to this image's registry as an OCI referrer (as 'attestation push'; "
    "REF must be one of its subjects). Pushed before it is stored: a refused push stores "
    "nothing.",
)
@referrers_mode_option
@registry_options
@output_option
@pass_app
def attestation_create(
    app: App,
    workflow: str,
    project: str,
    version: str | None,
    materials: tuple[str, ...],
    annotations: tuple[str, ...],
    key_file: str | None,
    key_password_stdin: bool,
    output_file: str | None,
    push_to: str | None,
    referrers_mode: ReferrersMode,
    output: str,
    registry: RegistryOptions | None,
) -> None:
    """Create an in-toto attestation of this project's predicate, sign it, and store it.

    Subjects are the CONTAINER_IMAGE, HELM_CHART and ARTIFACT materials. Prints the
    attestation's digest (the sha256 of the envelope bytes).
    """
    from deploytrack.evidence import predicate
    from deploytrack.services import attest
    from deploytrack.services.views.evidence import CreatedAttestation

    if key_password_stdin and key_file is None:
        raise click.UsageError("--key-password-stdin needs --key")
    mode_source = click.get_current_context().get_parameter_source("referrers_mode")
    if push_to is None and mode_source == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--referrers-mode needs --push")
    specs = tuple(predicate.parse_material_spec(m) for m in materials)
    pairs = tuple(predicate.parse_annotation(a) for a in annotations)
    key = _signing_key(key_file, key_password_stdin) if key_file is not None else None
    request = attest.CreateRequest(workflow, project, version, specs, pairs)
    pushed = None
    if push_to is None:
        result = _with_output_file(
            output_file, lambda: attest.create_attestation(app.store, request, registry, key)
        )
    else:
        from deploytrack.services import push

        to = push_to
        both = _with_output_file(
            output_file,
            lambda: push.create_and_push(app.store, request, registry, key, to, referrers_mode),
        )
        result, pushed = both.created, both.pushed
    view = CreatedAttestation(
        result.attestation, result.signed_by, output_file, result.stored_files, pushed
    )
    render(view, output, text=_tell_attestation_created)


def _tell_attestation_created(view: CreatedAttestation) -> None:
    att = view.attestation
    click.echo(safe(att.digest))
    signed = f"signed with {safe(view.signed_by)}" if view.signed_by else "unsigned"
    click.echo(
        f"Created attestation {safe(att.digest)}: {safe(att.predicate_type)}, {signed}, "
        f"{len(att.subjects)} subject(s), {len(att.materials)} material(s), "
        f"{len(view.stored_files)} file(s) kept in the evidence store.",
        err=True,
    )
    _tell_output_file(view.output_file)
    if view.pushed is not None:
        from deploytrack.cli.push import tell_pushed

        tell_pushed(view.pushed, err=True)


def _tell_output_file(output_file: str | None) -> None:
    if output_file is not None:
        click.echo(f"Wrote the DSSE envelope to {safe(output_file)}.", err=True)


@click.command("verify", cls=Command)
@click.argument("digest", type=normalize_lookup)
@click.option(
    "--key",
    "key_files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    metavar="PUBLIC_KEY_PEM",
    help="A public key (PEM) that may have signed it (repeatable).",
)
@output_option
@pass_app
def attestation_verify(app: App, digest: str, key_files: tuple[str, ...], output: str) -> None:
    """Verify the DSSE signature of a stored attestation with public keys; remember success.

    Exit 0 when a signature on the envelope (bare, or inside a Sigstore bundle) verifies
    over the DSSE pre-authentication encoding with one of the keys, 1 otherwise. This is
    key-based verification, not Sigstore keyless identity verification (no certificate
    chain, no transparency log).
    """
    from deploytrack.services import trust

    keys = trust.load_public_keys(key_files)
    render(trust.verify_attestation(app.store, digest, keys), output, text=_tell_verified)


def _tell_verified(result: VerifyResult) -> None:
    for item in result.verified:
        keyid = f" (keyid {safe(item.keyid)})" if item.keyid else ""
        click.echo(
            f"Verified {safe(result.attestation)}: signature {item.signature} of "
            f"{result.signatures}{keyid} verifies with {safe(item.fingerprint)} "
            f"({safe(item.algorithm)}, {safe(item.key_file)}); remembered at "
            f"{when(result.verified_at)}."
        )


@click.command("sign", cls=Command)
@click.argument("path", metavar="PATH|-")
@key_options(
    "The private key (PKCS#8 or traditional EC/RSA PEM; ECDSA, Ed25519, RSA).",
    "The key is encrypted: read its password from stdin.",
    required=True,
)
@click.option("--project", default=None, help="Project (overrides the predicate's).")
@click.option("--version", "version", default=None, help="Project version.")
@click.option("--workflow", default=None, help="Workflow that produced it.")
@_output_file_option("Also write the signed DSSE envelope here (0600; never overwrites).")
@output_option
@pass_app
def attestation_sign(
    app: App,
    path: str,
    key_file: str,
    key_password_stdin: bool,
    project: str | None,
    version: str | None,
    workflow: str | None,
    output_file: str | None,
    output: str,
) -> None:
    """Sign an attestation file (an SLSA provenance from your build...) and store the result.

    A bare in-toto statement is wrapped in a DSSE envelope signed with --key; a DSSE
    envelope or Sigstore bundle gets one more signature. Prints the new attestation's digest.
    """
    from deploytrack.cli.attestations import is_text, read_input
    from deploytrack.evidence import MAX_DOCUMENT_BYTES
    from deploytrack.services import attest, evidence
    from deploytrack.services.views.evidence import SignedAttestation

    if path == "-" and key_password_stdin:
        raise click.UsageError("stdin cannot hold both the attestation and the key password")
    for flag, value in (("--project", project), ("--version", version), ("--workflow", workflow)):
        if value is not None and not is_text(value):
            raise click.UsageError(f"{flag} is not valid UTF-8 text")
    data = read_input(path, MAX_DOCUMENT_BYTES)
    key = _signing_key(key_file, key_password_stdin)
    overrides = evidence.Overrides(project, version, workflow)
    source = "stdin" if path == "-" else path
    result = _with_output_file(
        output_file, lambda: attest.sign_document(app.store, data, source, key, overrides)
    )
    view = SignedAttestation(result.attestation, result.signed_by, output_file)
    render(view, output, text=lambda signed: _tell_signed(signed, source))


def _tell_signed(view: SignedAttestation, source: str) -> None:
    att = view.attestation
    click.echo(safe(att.digest))
    click.echo(
        f"Signed {safe(source)} with {safe(view.signed_by)}: stored as "
        f"{safe(att.digest)} ({safe(att.predicate_type)}, {len(att.subjects)} subject(s)).",
        err=True,
    )
    _tell_output_file(view.output_file)
