"""The command line: thin click commands that parse, call a service, and print.

Imports here are kept to click: services (peewee) and the registry client (oras) are
imported inside the commands that use them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from typing import Any

import click

from deploytrack import __version__
from deploytrack.cli.lazy import LazyGroup
from deploytrack.cli.params import DB_PATH
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
    # One line, always: a refusal must be readable in a CI log and easy to grep. Messages
    # carry file names, names from attestations and registry answers: control characters
    # (newline and tab included) are shown escaped, by the tables' own rules, so none can
    # move the cursor, recolour the terminal or forge a second line.
    from deploytrack.cli.output import safe

    line = " ".join(safe(str(message)).split())
    with contextlib.suppress(OSError):  # stderr may be a closed pipe too
        click.echo(f"Error: {line}", err=True)
    sys.exit(code)


# What a shell reports for a process killed by SIGPIPE (128 + 13), as git exits when its
# reader goes away. Never 1: 1 means "refused, nothing changed", and a write whose output
# found no reader did change the database.
EXIT_CLOSED_PIPE = 141

# Attempts of a command refused by a deadlock or serialization failure (PostgreSQL).
RETRIES = 5

# click >= 8.2 raises this for a group called without a subcommand; 8.1 prints the help.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _ClosedPipe(Exception):
    """A BrokenPipeError carried past click, which would turn it into exit 1."""


class _Interrupted(Exception):
    """A KeyboardInterrupt carried past click, which would turn it into "Aborted!" exit 1."""


def _stdout_closed() -> bool:
    """True when nobody reads stdout any more (a pipe or socket whose reader is gone)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def _exit_closed_pipe() -> None:
    # Point stdout at /dev/null and flush there: what is still buffered must not fail
    # again at interpreter shutdown ("Exception ignored ... BrokenPipeError", exit 120).
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    sys.exit(EXIT_CLOSED_PIPE)


class DeploytrackGroup(LazyGroup):
    """Turns every refusal into one `Error: ...` line on stderr: 1 refused, 2 usage."""

    # click's main() catches a closed pipe and Ctrl-C itself and exits 1 for both; these
    # two methods run everything main() runs (parsing, --help, the command), so they carry
    # both past it to our handlers.
    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError as exc:
            raise _ClosedPipe() from exc
        except KeyboardInterrupt as exc:
            raise _Interrupted() from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            raise _ClosedPipe() from exc
        except KeyboardInterrupt as exc:
            raise _Interrupted() from exc

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
            try:
                code = self._main_retrying(args, prog_name, complete_var, **extra)
            except _NO_ARGS_IS_HELP as exc:
                # A bare group (`deploytrack`, `deploytrack deployment`) shows its help, as
                # kubectl does: on stdout, exit 0, with its usual line breaks.
                click.echo(exc.ctx.get_help(), color=exc.ctx.color)
                code = 0
            # Inside the try: a reader that left after the last write is noticed here, not
            # at interpreter shutdown.
            sys.stdout.flush()
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _fail(exc.format_message() + hint, exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        except DeploytrackError as exc:
            _fail(str(exc), exc.exit_code)
        except (_Interrupted, KeyboardInterrupt):
            _fail("interrupted", 130)
        except (_ClosedPipe, BrokenPipeError) as exc:
            if isinstance(exc, BrokenPipeError) or _stdout_closed():
                _exit_closed_pipe()
            self._internal_error(exc.__cause__ or exc)
        except Exception as exc:  # a bug: still one line, with a way to get the traceback
            self._internal_error(exc)
        sys.exit(code if isinstance(code, int) else 0)

    def _main_retrying(self, args: Any, prog_name: Any, complete_var: Any, **extra: Any) -> Any:
        """Run the command; again, a few times, after a deadlock or serialization failure
        on PostgreSQL (store/postgres.py's `Retry`: the transaction wrote nothing).

        Such a refusal comes from inside a transaction, before the command printed its
        result, so running the whole command again is safe."""
        import time

        for attempt in range(RETRIES):
            try:
                return super().main(args, prog_name, complete_var, False, **extra)
            except DeploytrackError as exc:
                if not getattr(exc, "retryable", False) or attempt == RETRIES - 1:
                    raise
            time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    @staticmethod
    def _internal_error(exc: BaseException) -> None:
        if os.environ.get(DEBUG_ENV):
            raise exc
        _fail(
            f"internal error ({type(exc).__name__}: {exc}); set {DEBUG_ENV}=1 to see the "
            "traceback and please report it",
            1,
        )


@click.group(cls=DeploytrackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db",
    type=DB_PATH,
    metavar="PATH|URL",
    help="Database file, or a postgresql://USER@HOST:PORT/DBNAME URL. Default: "
    "$DEPLOYTRACK_DB (when set and not empty), else deploytrack.db in the user data folder.",
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
    "log": "deploytrack.cli.log:log",
    "audit": "deploytrack.cli.audit:audit",
    "db": "deploytrack.cli.db:db",
    "metrics": "deploytrack.cli.metrics:metrics",
    "report": "deploytrack.cli.report:report",
}
cli.lazy.update(COMMANDS)


def _buffer_stdout() -> None:
    """Under PYTHONUNBUFFERED, put a buffered writer between stdout's text layer and the file.

    The text layer then writes to the raw file directly and drops what a partial write left
    (a reader that leaves half-way through a table): the command would exit 0 with the
    output cut, where it should fail with 141. A BufferedWriter writes the rest or fails;
    click.echo flushes after every call, so nothing waits in the buffer.
    """
    import io

    raw = getattr(sys.stdout, "buffer", None)
    if isinstance(raw, io.RawIOBase):
        sys.stdout = io.TextIOWrapper(
            io.BufferedWriter(raw),
            encoding=sys.stdout.encoding,
            errors=sys.stdout.errors,
            write_through=True,
        )


def _hide_postgres_driver() -> None:
    """peewee imports psycopg (~115 ms) at its own import when it is installed; an SQLite
    command must not pay for it. Hidden from peewee here, in the process's entry point;
    store/postgres.py brings it back when a PostgreSQL URL is opened."""
    for name in ("psycopg", "psycopg2"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def main() -> None:
    _buffer_stdout()
    _hide_postgres_driver()
    try:
        cli.main(prog_name="deploytrack")
    finally:
        # Interpreter shutdown runs the cyclic GC over every object click, peewee and
        # deploytrack created, ~5 ms of a ~55 ms command; frozen objects are skipped. The
        # command is over by now (store closed, output flushed at exit as usual), and the
        # memory goes back to the system with the process either way.
        gc.freeze()
