"""Printing: tables for people, JSON for machines.

JSON field names are the views' field names (documented in the README); every field
ending in `_at` is a time and is printed as RFC 3339 UTC with microseconds.
tabulate is imported only when a table is printed (~75 ms).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from deploytrack import timeutil

F = TypeVar("F", bound=Callable[..., Any])


def output_option(func: F) -> F:
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Table for people, JSON for machines.",
    )(func)


def jsonable(value: Any) -> Any:
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple view
        return jsonable(dict(zip(value._fields, value, strict=True)))
    if hasattr(type(value), "__dataclass_fields__"):
        import dataclasses  # ~0.5 ms: not on the paths whose views are NamedTuples

        return {
            field.name: (
                timeutil.rfc3339(item)
                if field.name.endswith("_at") and isinstance(item, int)
                else jsonable(item)
            )
            for field in dataclasses.fields(value)
            for item in [getattr(value, field.name)]
        }
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {
            k: timeutil.rfc3339(v)
            if isinstance(k, str) and k.endswith("_at") and isinstance(v, int)
            else jsonable(v)
            for k, v in value.items()
        }
    return value


def emit(text: str, *, newline: bool = True) -> None:
    """Write `text` to stdout exactly as given, whatever stdout is.

    click.echo strips ANSI escape sequences when stdout is not a terminal: output that
    carries stored data (JSON, `variable resolve`) would then differ between a pipe and
    a terminal. Everything that prints stored values for machines goes through here.
    """
    stream = click.get_binary_stream("stdout")
    stream.write(text.encode("utf-8") + (b"\n" if newline else b""))
    stream.flush()


def print_json(value: Any) -> None:
    import json  # only on -o json paths

    emit(json.dumps(jsonable(value), indent=2, ensure_ascii=False))


def safe(value: Any) -> str:
    """A cell for a terminal: names from attestations may hold escape sequences or newlines."""
    if value is None or value == "":
        return "-"
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> None:
    if not rows:
        click.echo(empty, err=True)
        return
    from tabulate import tabulate

    click.echo(
        tabulate(
            [[safe(cell) for cell in row] for row in rows],
            headers=list(headers),
            tablefmt="simple",
            disable_numparse=True,
        )
    )


def print_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key + ':':<{width + 1}} {safe(value)}")


def when(us: int | None) -> str:
    return timeutil.short(us)
