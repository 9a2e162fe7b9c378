"""Generate docs/cli.md: the `--help` of every deploytrack command, from the click tree.

    python scripts/gen_cli_docs.py            # rewrite docs/cli.md (what `make docs` runs)
    python scripts/gen_cli_docs.py --check    # exit 1 if docs/cli.md is stale
    python scripts/gen_cli_docs.py --stdout   # print it instead

Every group and subcommand is walked recursively through `list_commands`/`get_command`,
so lazily loaded commands (deploytrack/cli/lazy.py) are included. The help is rendered at
a fixed width with no terminal and no environment involved, so the file is the same on
every machine: a test (tests/test_docs.py) regenerates it in memory and fails when the
committed file differs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "cli.md"
PROG = "deploytrack"
# Fixed, not the terminal's: the file must not depend on who generated it.
WIDTH = 100

HEADER = f"""\
# Command reference

The `--help` of every `{PROG}` command, group by group, as printed at a terminal
{WIDTH} columns wide. This page is generated from the code by `scripts/gen_cli_docs.py`:
run `make docs` after changing a command or its help, never edit it by hand (a test fails
when it is stale). What the commands do, with examples, is in the topic pages listed in
the [README](../README.md#where-each-topic-is-documented).
"""


def _walk(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[str, click.Command, click.Context]]:
    yield ctx.command_path, command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
            yield from _walk(sub, sub_ctx)


def commands(root: click.Command | None = None) -> list[tuple[str, str]]:
    """(command path, its --help text) for every visible command, depth first."""
    if root is None:
        # This checkout's code, even when the venv holds another install of deploytrack.
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        # Imported here, so that `--help` of this script does not load the CLI.
        from deploytrack.cli import cli as root
    # terminal_width fixes the wrapping: click otherwise asks the terminal (or $COLUMNS).
    settings = {**root.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    top = click.Context(root, info_name=PROG, **settings)
    with top:
        return [(path, cmd.get_help(ctx)) for path, cmd, ctx in _walk(root, top)]


def _anchor(path: str) -> str:
    # GitHub's heading anchors: lowercase, spaces to '-', punctuation other than '-' dropped.
    return "".join(c for c in path.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def render(root: click.Command | None = None) -> str:
    helps = commands(root)
    toc = []
    for path, _ in helps:
        depth = path.count(" ")
        toc.append(f"{'  ' * max(depth - 1, 0)}- [`{path}`](#{_anchor(path)})")
    sections = [f"## {path}\n\n```\n{text.rstrip()}\n```\n" for path, text in helps]
    return "\n".join([HEADER, "\n".join(toc) + "\n", *sections])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/cli.md from the click tree.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is stale")
    mode.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else None
    if args.check:
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        TARGET.write_text(text, encoding="utf-8")
        print(f"wrote {TARGET.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    else:
        print(f"{TARGET.relative_to(ROOT)} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
