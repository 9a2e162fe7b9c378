"""`variable` commands: scoped configuration with encrypted secrets."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.output import Column, Table, emit, output_option, render, when
from deploytrack.cli.params import DEPLOYMENT_NAME, ENVIRONMENT, ID, SECRET_VALUE, STAGE

if TYPE_CHECKING:
    from deploytrack.services.views.variables import ResolvedVariables, Scope


def _scope_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--deployment-name",
        type=DEPLOYMENT_NAME,
        default=None,
        help="Deployment scope (any environment).",
    )(func)
    func = click.option(
        "--env", "environment", type=ENVIRONMENT, default=None, help="Environment scope."
    )(func)
    return click.option(
        "--logical-env",
        "logical_environment",
        type=STAGE,
        required=True,
        help="Logical environment (required).",
    )(func)


def _scope(logical_environment: str, environment: str | None, deployment_name: str | None) -> Scope:
    from deploytrack.services.views.variables import Scope

    return Scope(logical_environment, environment, deployment_name)


@click.group("variable", cls=LazyGroup)
def variable() -> None:
    """Configuration per logical environment, environment and deployment; secrets
    encrypted at rest."""


def _read_stdin() -> str:
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise click.UsageError("the value on stdin is not UTF-8 text") from None
    # One trailing newline is how `echo` and files end a line, not part of the value.
    if data.endswith("\r\n"):
        return data[:-2]
    return data[:-1] if data.endswith("\n") else data


@variable.command("set")
@click.argument("key")
@click.argument("value", type=SECRET_VALUE, required=False)
@_scope_options
@click.option("--secret", is_flag=True, help="Encrypt the value; it is masked everywhere.")
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Read the value from stdin (one final newline dropped).",
)
@pass_app
def variable_set(
    app: App,
    key: str,
    value: str | None,
    logical_environment: str,
    environment: str | None,
    deployment_name: str | None,
    secret: bool,
    from_stdin: bool,
) -> None:
    """Set KEY at a scope. Without VALUE or --stdin, asks on a terminal (hidden input).

    Scopes, most specific first: --env and --deployment-name, --deployment-name, --env,
    the logical environment alone. KEY is [A-Za-z_][A-Za-z0-9_]*; the DEPLOYTRACK_ prefix
    is reserved.
    """
    from deploytrack.services import validate, variables

    # Before the value is asked for: nobody types a secret to learn the name was wrong.
    validate.variable_name(key)
    on_command_line = value is not None
    if value is not None and from_stdin:
        raise click.UsageError("give VALUE or --stdin, not both")
    if from_stdin:
        value = _read_stdin()
    elif value is None:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "give VALUE or --stdin: there is no terminal to ask for the value on"
            )
        # Refuse before asking: typing a secret twice to be told no is no way to learn it.
        variables.check_set(
            app.store,
            _scope(logical_environment, environment, deployment_name),
            key,
            secret=secret,
        )
        value = click.prompt(
            f"Value for {key}", hide_input=True, confirmation_prompt=True, err=True
        )
    assert value is not None
    scope = _scope(logical_environment, environment, deployment_name)
    view, changed = variables.set_variable(app.store, scope, key, value, secret=secret)
    if secret and on_command_line:
        # After the refusals: a refused command prints one Error line and nothing else.
        click.echo(
            "Warning: a secret given on the command line stays in the shell history and is "
            "visible to other users in ps; prefer --stdin or the prompt.",
            err=True,
        )
    if from_stdin and value == "":
        # `printf '%s\n' "$UNSET_VAR" | ... --stdin` sends an empty line: stored as asked
        # (an empty value is a value), but said out loud, since it is rarely meant.
        what = "secret" if secret else "value"
        click.echo(
            f"Warning: the {what} read from stdin for {key} is empty (was the shell variable "
            f"you piped unset?); stored an empty {what}: set it again if that is not what "
            "you meant.",
            err=True,
        )
    kind = "secret " if view.secret else ""
    if changed:
        click.echo(f"Set {kind}{key} at {scope}.")
    else:
        click.echo(f"{kind.capitalize()}{key} at {scope} already has that value: nothing changed.")


@variable.command("unset")
@click.argument("key")
@_scope_options
@pass_app
def variable_unset(
    app: App,
    key: str,
    logical_environment: str,
    environment: str | None,
    deployment_name: str | None,
) -> None:
    """Remove KEY from exactly this scope (less specific scopes still apply; history is kept)."""
    from deploytrack.services import variables

    scope = _scope(logical_environment, environment, deployment_name)
    variables.unset_variable(app.store, scope, key)
    click.echo(f"Unset {key} at {scope}.")


@variable.command("list")
@_scope_options
@output_option(wide=True)
@pass_app
def variable_list(
    app: App,
    logical_environment: str,
    environment: str | None,
    deployment_name: str | None,
    output: str,
) -> None:
    """Variables of a logical environment at every scope; --env/--deployment-name keep the
    scopes that apply to them. Secrets are masked."""
    from deploytrack.services import variables

    views = variables.list_variables(
        app.store, _scope(logical_environment, environment, deployment_name)
    )
    render(views, output, VARIABLES)


VARIABLES = Table(
    (
        Column("NAME", lambda v: v.name, 40),
        Column("VALUE", lambda v: v.value, 40, wide_cap=200),
        Column("SECRET", lambda v: "yes" if v.secret else "no"),
        Column("SCOPE", lambda v: str(v.scope), 64),
        Column("UPDATED", lambda v: when(v.updated_at)),
    ),
    empty="No variables at this scope.",
)


@variable.command("resolve")
@click.option(
    "--logical-env", "logical_environment", type=STAGE, required=True, help="Logical environment."
)
@click.option("--env", "environment", type=ENVIRONMENT, required=True, help="Environment.")
@click.option("--deployment-name", type=DEPLOYMENT_NAME, required=True, help="Deployment.")
@click.option(
    "--require", multiple=True, metavar="KEY", help="Fail unless KEY resolves (repeatable)."
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["env", "json"]),
    default=None,
    help="env: export lines for a POSIX shell (the default); json: for machines.",
)
# The spelling before -o/--output existed: scripts use it, so it keeps working (hidden:
# every other command spells the option -o/--output).
@click.option("--format", "fmt", type=click.Choice(["env", "json"]), default=None, hidden=True)
@click.option("--reveal", is_flag=True, help="Print secret values instead of a mask.")
@pass_app
def variable_resolve(
    app: App,
    logical_environment: str,
    environment: str,
    deployment_name: str,
    require: tuple[str, ...],
    output: str | None,
    fmt: str | None,
    reveal: bool,
) -> None:
    """The effective variables of one deployment, each with the scope it came from.

    -o env (the default) prints `export KEY='value'` lines, quoted for a POSIX shell, so
    `eval "$(deploytrack variable resolve ... --reveal)"` is safe; a masked secret is
    left out as a comment (add --reveal to export it). Values are written byte for byte.
    """
    from deploytrack.services import variables

    if output is not None and fmt is not None and output != fmt:
        raise click.UsageError(f"-o {output} and --format {fmt} disagree: give one of them")
    output = output or fmt or "env"
    views = variables.resolve(
        app.store,
        _scope(logical_environment, environment, deployment_name),
        require=require,
        reveal=reveal,
    )
    render(views, output, text=lambda found: _export_lines(found, reveal))


def _export_lines(views: ResolvedVariables, reveal: bool) -> None:
    """-o env: one comment and one `export` line per variable, for a POSIX shell."""
    lines = []
    for v in views:
        masked = v.secret and not reveal
        note = " (secret, masked: add --reveal to export it)" if masked else ""
        note = note or (" (secret)" if v.secret else "")
        lines.append(f"# {v.name} from {v.scope}{note}")
        lines.append(f"{'# ' if masked else ''}export {v.name}={shlex.quote(v.value)}")
    if lines:
        # emit, not click.echo: click strips escape sequences when stdout is a pipe, and
        # `eval "$(...)"` must get every value exactly as stored.
        emit("\n".join(lines))


@variable.command("redact")
@click.option(
    "--id",
    "entry",
    type=ID,
    required=True,
    metavar="N",
    help="The history entry: its id in 'variable history -o json'.",
)
@pass_app
def variable_redact(app: App, entry: int) -> None:
    """Erase the value of a plain history entry set by mistake (a password in a plain
    variable, say): its bytes leave the database file and its WAL for good.

    The entry stays in the history, marked redacted, and a 'redacted' line records when.
    If it was the variable's value at its scope, the variable has no value there any more,
    as after an unset. Secrets need no redaction: they are stored only encrypted.
    """
    from deploytrack.services import variables

    done = variables.redact(app.store, entry)
    gone = done.redacted
    postgresql = app.store.postgresql
    erased = ""
    if done.scrubbed:
        erased = (
            ": its value is gone from the database's tables (VACUUM FULL); the server's WAL "
            "and backups keep it until their retention ends"
            if postgresql
            else ": its value is gone from the database file and its WAL"
        )
    click.echo(
        f"Redacted entry {gone.id} ({gone.name} at {gone.scope}, set "
        f"{when(gone.changed_at)}){erased}."
    )
    if done.was_current:
        click.echo(
            f"It was the current value: {gone.name} has no value at {gone.scope} any more "
            "(less specific scopes apply); set the right one with 'deploytrack variable set'."
        )
    if not done.scrubbed and postgresql:
        click.echo(
            f"Warning: {app.store.path} keeps the old row version, value included, in its "
            "table for now (a transaction that began before the redaction is still open, "
            "or VACUUM could not run): run VACUUM (FULL) variable_event on the server once "
            "it has ended.",
            err=True,
        )
    elif not done.scrubbed:
        # The new page is only in the WAL until a checkpoint copies it over the old one.
        click.echo(
            f"Warning: another process is reading {app.store.path}, so old copies of the "
            f"value stay in it and in its -wal until the last process using the database "
            "closes it (SQLite then checkpoints the -wal and removes it).",
            err=True,
        )


@variable.command("history")
@_scope_options
@click.option("--key", "name", default=None, help="Only this variable.")
@output_option(wide=True)
@pass_app
def variable_history(
    app: App,
    logical_environment: str,
    environment: str | None,
    deployment_name: str | None,
    name: str | None,
    output: str,
) -> None:
    """Every change to the variables of a logical environment, oldest first; secret values
    are never shown."""
    from deploytrack.services import variables

    changes = variables.history(
        app.store, _scope(logical_environment, environment, deployment_name), name
    )
    render(changes, output, CHANGES)


CHANGES = Table(
    (
        Column("TIME", lambda c: when(c.changed_at)),
        Column("NAME", lambda c: c.name, 40),
        Column("SCOPE", lambda c: str(c.scope), 64),
        Column("CHANGE", lambda c: c.change, 60, wide_cap=200),
    ),
    empty="No changes.",
)
