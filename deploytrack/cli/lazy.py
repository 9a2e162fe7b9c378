"""The click classes every deploytrack command and group is made of.

LazyGroup imports a subcommand's module only when that subcommand runs. Start-up is what a
CLI is judged by: `deployment record` should not pay for importing the modules of twenty
other commands. `--help` and shell completion of command names still list every command
(they import them all, which is fine: nobody times `--help` in a loop).

Command keeps what the user typed out of usage errors: a stray argument may be a secret
(`variable set TOKEN s3cret s3cret`), and click's own message repeats it.
"""

from __future__ import annotations

import importlib
from typing import Any

import click


def _takes_secret(command: click.Command) -> bool:
    from deploytrack.cli.params import SecretText

    return any(
        isinstance(p, click.Argument) and isinstance(p.type, SecretText) for p in command.params
    )


class Command(click.Command):
    """A click command whose usage errors say how many and where, never what was typed."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.allow_extra_args or ctx.resilient_parsing:
            return super().parse_args(ctx, args)
        # Let click collect the extra arguments instead of failing with them in the text.
        ctx.allow_extra_args = True
        try:
            rest = super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            if not _takes_secret(self):
                raise
            # A value that starts with '-' reads as an option: the name may be the value.
            raise click.UsageError(
                "an argument that starts with '-' is not an option of this command (not "
                "shown: it may be a value); for a value that starts with '-', give the "
                "options first, then '--', then the arguments",
                ctx,
            ) from exc
        finally:
            ctx.allow_extra_args = False
        if rest:
            count = len(rest)
            plural = "s" if count > 1 else ""
            takes = [p.human_readable_name for p in self.params if isinstance(p, click.Argument)]
            what = (
                f"{count} unexpected extra argument{plural} after {' '.join(takes)}"
                if takes
                else f"{count} unexpected argument{plural}: this command takes options only"
            )
            raise click.UsageError(
                f"{what} (not repeated here: an argument may be a secret); quote a value "
                "that contains spaces",
                ctx,
            )
        return rest


class LazyGroup(click.Group):
    # `@group.command()` makes a deploytrack Command.
    command_class = Command

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # name -> "package.module:attribute"
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)
