"""The command line: thin click commands that parse, call a service, and print.

Imports here are kept to click: services (peewee), tables (tabulate) and the registry
client (oras) are imported inside the commands that use them.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

import click

from deploytrack import __version__
from deploytrack.cli.lazy import LazyGroup
from deploytrack.errors import DeploytrackError

DEBUG_ENV = "DEPLOYTRACK_DEBUG"


class App:
    """Per-invocation state: the --db option and the store, opened on first use."""

    def __init__(self, db_option: str | None) -> None:
        self.db_option = db_option
        self._store: Any = None

    @property
    def store(self) -> Any:
        return self.open_store()

    def open_store(self, *, migrate: bool = True) -> Any:
        """The store; `migrate=False` leaves the schema as found (for `doctor`)."""
        if self._store is None:
            from deploytrack.store import open_store, resolve_path

            self._store = open_store(resolve_path(self.db_option), migrate=migrate)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(App)


def _fail(message: str, code: int) -> None:
    # One line, always: a refusal must be readable in a CI log and easy to grep.
    line = " ".join(str(message).split())
    click.echo(f"Error: {line}", err=True)
    sys.exit(code)


class DeploytrackGroup(LazyGroup):
    """Turns every refusal into one `Error: ...` line on stderr: 1 refused, 2 usage."""

    def main(
        self,
        args: Any = None,
        prog_name: Any = None,
        complete_var: Any = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _fail(exc.format_message() + hint, exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        except DeploytrackError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except BrokenPipeError:
            # The reader went away (| head): stop quietly, as other CLI tools do.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except Exception as exc:  # a bug: still one line, with a way to get the traceback
            if os.environ.get(DEBUG_ENV):
                raise
            _fail(
                f"internal error ({type(exc).__name__}: {exc}); set {DEBUG_ENV}=1 to see the "
                "traceback and please report it",
                1,
            )
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=DeploytrackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db",
    metavar="PATH",
    help="Database file. Default: $DEPLOYTRACK_DB, else deploytrack.db in the user data folder.",
)
@click.version_option(__version__, prog_name="deploytrack")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Record which artifacts run where, linked to the evidence that names them."""
    app = App(db)
    ctx.obj = app
    ctx.call_on_close(app.close)


# Every command, by name: its module is imported only when it runs (cli/lazy.py).
COMMANDS = {
    "environment": "deploytrack.cli.catalog:environment",
    "logical-environment": "deploytrack.cli.catalog:logical_environment",
    "attestation": "deploytrack.cli.attestations:attestation",
    "artifact": "deploytrack.cli.attestations:artifact",
    "deployment": "deploytrack.cli.deployments:deployment",
    "status": "deploytrack.cli.lifecycle:status",
    "variable": "deploytrack.cli.variables:variable",
    "discover": "deploytrack.cli.discover:discover",
    "project": "deploytrack.cli.discover:project",
    "policy": "deploytrack.cli.policies:policy",
    "doctor": "deploytrack.cli.doctor:doctor",
}
cli.lazy.update(COMMANDS)


def main() -> None:
    try:
        cli.main(prog_name="deploytrack")
    finally:
        # Interpreter shutdown runs the cyclic GC over every object click, peewee and
        # deploytrack created, ~5 ms of a ~55 ms command; frozen objects are skipped. The
        # command is over by now (store closed, output flushed at exit as usual), and the
        # memory goes back to the system with the process either way.
        gc.freeze()
