"""The `--registry-*` flags, shared by every command that resolves artifact references.

    @registry_options
    def command(..., registry: RegistryOptions) -> None: ...

adds the flags and hands the command one frozen `RegistryOptions` as `registry`. Flags
win over their environment variables (DEPLOYTRACK_REGISTRY_SERVER, _USERNAME, _PASSWORD).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click
from click.core import ParameterSource

from deploytrack.cli.params import PASSWORD
from deploytrack.registry import DEFAULT_TIMEOUT, RegistryError

F = TypeVar("F", bound=Callable[..., Any])

SERVER_ENV = "DEPLOYTRACK_REGISTRY_SERVER"
USERNAME_ENV = "DEPLOYTRACK_REGISTRY_USERNAME"
PASSWORD_ENV = "DEPLOYTRACK_REGISTRY_PASSWORD"

_OPTIONS = (
    click.option(
        "--registry-server",
        envvar=SERVER_ENV,
        show_envvar=True,
        metavar="HOST[:PORT]",
        help="Registry the explicit credentials are for; they are sent to no other.",
    ),
    click.option(
        "--registry-username",
        envvar=USERNAME_ENV,
        show_envvar=True,
        metavar="USER",
        help="Username on --registry-server.",
    ),
    click.option(
        "--registry-password",
        type=PASSWORD,
        envvar=PASSWORD_ENV,
        show_envvar=True,
        metavar="PASSWORD",
        help="Password or token on --registry-server (prefer --registry-password-stdin).",
    ),
    click.option(
        "--registry-password-stdin",
        is_flag=True,
        help="Read the password from the first line of stdin.",
    ),
    click.option(
        "--registry-timeout",
        type=click.FloatRange(min=0, min_open=True, max=3600),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        metavar="SECONDS",
        help="Time to connect, and to wait for each answer, per registry request.",
    ),
    click.option(
        "--ca-file",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        metavar="PEM",
        help="Trust the CA certificates in this PEM file (instead of the system's).",
    ),
    click.option(
        "--plain-http",
        is_flag=True,
        help="Talk plain HTTP to registries (no TLS).",
    ),
)


def _source(ctx: click.Context) -> str:
    """Where the explicit login came from, for messages (never the password itself)."""
    if ctx.get_parameter_source("registry_username") == ParameterSource.ENVIRONMENT:
        return f"{USERNAME_ENV}/{PASSWORD_ENV}"
    return "--registry-username/--registry-password"


_PARAMETERS = (
    "registry_server",
    "registry_username",
    "registry_password",
    "registry_timeout",
    "ca_file",
    "plain_http",
)


def registry_options(func: F) -> F:
    """Add the registry flags to a click command; it receives `registry: RegistryOptions`,
    or None when no flag or environment variable set anything (the defaults)."""

    @functools.wraps(func)
    def wrapper(
        *args: Any,
        registry_server: str | None,
        registry_username: str | None,
        registry_password: str | None,
        registry_password_stdin: bool,
        registry_timeout: float,
        ca_file: str | None,
        plain_http: bool,
        **kwargs: Any,
    ) -> Any:
        ctx = click.get_current_context()
        if registry_password_stdin:
            if ctx.get_parameter_source("registry_password") == ParameterSource.COMMANDLINE:
                raise click.UsageError(
                    "give --registry-password or --registry-password-stdin, not both"
                )
            registry_password = sys.stdin.readline().rstrip("\r\n")
            if not registry_password:
                raise click.UsageError("--registry-password-stdin read an empty password")
        given = [
            name
            for name in _PARAMETERS
            if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)
        ]
        if not given and not registry_password_stdin:
            # Nothing to say to a registry: the defaults, built where a reference is
            # resolved (most commands resolve none, and skip defining the options class).
            return func(*args, registry=None, **kwargs)
        from deploytrack.registry.options import RegistryOptions

        try:
            options = RegistryOptions(
                server=registry_server,
                username=registry_username,
                password=registry_password,
                timeout=registry_timeout,
                ca_file=ca_file,
                plain_http=plain_http,
                credentials_source=_source(ctx),
            )
        except RegistryError as exc:
            raise click.UsageError(str(exc)) from None
        return func(*args, registry=options, **kwargs)

    # Ignored: click keeps a command's options in an attribute that functions do not declare.
    wrapper.__click_params__ = list(getattr(func, "__click_params__", []))  # type: ignore[attr-defined]
    # The options below take the registry flags off wrapper's signature: what remains is F's.
    decorated = cast(F, wrapper)
    for option in reversed(_OPTIONS):
        decorated = option(decorated)
    return decorated
