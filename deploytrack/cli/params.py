"""Click parameter types: a malformed value is a usage error (exit 2), caught while parsing.

Each type calls the pure rule of deploytrack/services/validate.py (one rule, one place);
the services call the same rules again, so a value that reaches them from elsewhere is
checked too. A refusal because of what the database holds (an unknown name) stays a
refusal of the service (exit 1). Cheap on purpose: this module is imported by every
command, so it imports only click and validate.py (re and the error classes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from deploytrack.errors import DeploytrackError
from deploytrack.services import validate

# SQLite integers are signed 64-bit: a larger id is not an id, and handing one to the
# database is an OverflowError, not a refusal.
MAX_ID = 2**63 - 1
# A limit beyond any table deploytrack will hold, far below what overflows.
MAX_LIMIT = 1_000_000_000


class NameType(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.4 on; we support 8.1
    """A name checked by a validate.py rule; `table` names what shell completion reads."""

    def __init__(self, metavar: str, rule: Callable[[str], str], table: str) -> None:
        self.name = metavar
        self._rule = rule
        self.table = table

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        try:
            return self._rule(str(value))
        except DeploytrackError as exc:
            self.fail(str(exc), param, ctx)

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[Any]:
        from click.shell_completion import CompletionItem

        from deploytrack.cli.completion import names

        return [CompletionItem(name) for name in names(ctx, self.table, incomplete)]


ENVIRONMENT = NameType("ENV", lambda v: validate.name(v, "environment"), "environment")
STAGE = NameType(
    "LOGICAL_ENV", lambda v: validate.name(v, "logical environment"), "logical_environment"
)
DEPLOYMENT_NAME = NameType("NAME", validate.deployment_name, "deployment_slot")


class DigestType(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.4 on; we support 8.1
    """A full sha256 digest, for options that write (lookups may take a prefix)."""

    name = "DIGEST"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        try:
            return validate.sha256(str(value))
        except DeploytrackError as exc:
            self.fail(str(exc), param, ctx)


DIGEST = DigestType()


class Choice(click.Choice):  # type: ignore[type-arg]  # generic from click 8.2 on; we support 8.1
    """One spelling per value: any case is accepted, the canonical spelling is what the
    command receives and what --help, errors and completion show.

    click's own case-insensitive Choice shows the casefolded spelling (container_image).
    """

    def __init__(self, choices: Iterable[str]) -> None:
        super().__init__(tuple(choices), case_sensitive=True)

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        folded = str(value).casefold()
        choice: str  # the base is not parameterized (see above): its choices are Any
        for choice in self.choices:
            if choice.casefold() == folded:
                return choice
        refused: str = super().convert(value, param, ctx)  # fails, naming the canonical choices
        return refused

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[Any]:
        from click.shell_completion import CompletionItem

        folded = incomplete.casefold()
        return [CompletionItem(c) for c in self.choices if c.casefold().startswith(folded)]


ENVIRONMENT_TYPE = Choice(validate.ENVIRONMENT_TYPES)
KIND = Choice(validate.KINDS)
STATUS = Choice(validate.STATUSES)

ID = click.IntRange(1, MAX_ID)
LIMIT = click.IntRange(1, MAX_LIMIT)


class SecretText(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.4 on; we support 8.1
    """Text that may be a secret (a variable's value, a password).

    It never fails to convert, and marks its parameter: usage errors of a command that
    takes one never repeat what was typed (see cli/lazy.py).
    """

    def __init__(self, metavar: str) -> None:
        self.name = metavar

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        return str(value)


SECRET_VALUE = SecretText("VALUE")
PASSWORD = SecretText("PASSWORD")


class DatabasePath(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.4 on; we support 8.1
    """--db: a path; an empty one is a mistake (an unset variable in a script), not a
    request for the default database."""

    name = "PATH"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value)
        if not text:
            self.fail(
                "the path is empty: give a file, or leave --db out to use $DEPLOYTRACK_DB "
                "or the default database",
                param,
                ctx,
            )
        return text


DB_PATH = DatabasePath()


def slot_options(name_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The four required options that name one slot: --env, --logical-env,
    --deployment-name (described by `name_help`) and --kind, in that order in --help."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(
            (
                click.option(
                    "--env", "environment", type=ENVIRONMENT, required=True, help="Environment."
                ),
                click.option(
                    "--logical-env",
                    "logical_environment",
                    type=STAGE,
                    required=True,
                    help="Logical environment.",
                ),
                click.option(
                    "--deployment-name", type=DEPLOYMENT_NAME, required=True, help=name_help
                ),
                click.option("--kind", required=True, type=KIND, help="Artifact kind."),
            )
        ):
            func = option(func)
        return func

    return decorate


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--env and --logical-env as optional filters: only the records of that environment
    or logical environment."""
    func = click.option(
        "--logical-env",
        "logical_environment",
        type=STAGE,
        default=None,
        help="Only this logical environment.",
    )(func)
    return click.option(
        "--env", "environment", type=ENVIRONMENT, default=None, help="Only this environment."
    )(func)
