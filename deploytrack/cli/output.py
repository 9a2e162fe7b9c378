"""Printing: tables for people, JSON for machines.

JSON field names are the views' field names (docs/json.md); every field ending in `_at`
is a time and is printed as RFC 3339 UTC with microseconds. Tables are laid out by
tabulate, imported only when a table is printed; their width rules (caps, `…`, the row
limit) are applied here first (docs/output.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import click

from deploytrack import timeutil

if TYPE_CHECKING:
    from deploytrack.services.views.deployments import DeploymentView

F = TypeVar("F", bound=Callable[..., Any])

# A cell wider than its column's cap is cut and ends with this.
ELLIPSIS = "…"
# The cap of a column that names none: wide enough for a sha256 digest (71 characters).
DEFAULT_CAP = 72
# No row of any table is longer than this, whatever the data: the widest columns give way.
MAX_ROW = 300
# tabulate's "simple" format puts two spaces between columns.
_GAP = "  "


@overload
def output_option(func: F, *, wide: bool = False) -> F: ...
@overload
def output_option(func: None = None, *, wide: bool = False) -> Callable[[F], F]: ...
def output_option(func: F | None = None, *, wide: bool = False) -> F | Callable[[F], F]:
    """`-o/--output table|json`; `wide=True` adds `wide` (more columns, longer cells)."""
    choices = ["table", "wide", "json"] if wide else ["table", "json"]
    helptext = (
        "Table for people (wide: more columns, full values), JSON for machines."
        if wide
        else "Table for people, JSON for machines."
    )
    decorator = click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(choices),
        default="table",
        show_default=True,
        help=helptext,
    )
    return decorator if func is None else decorator(func)


def jsonable(value: Any) -> Any:
    """The JSON shape of a view: its fields by name, or what its `__json__()` returns.

    A view whose documented shape is not its fields (a describe that flattens its record,
    a map keyed by name) defines `__json__` beside its fields, in services/views/.
    """
    if value is None or isinstance(value, (str, int, float)):
        return value
    verbatim = getattr(value, "__verbatim__", None)
    if verbatim is not None:  # data printed as it is: no `_at` field becomes a time
        return verbatim()
    shape = getattr(value, "__json__", None)
    if shape is not None:
        return jsonable(shape())
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
    import sys

    # sys.stdout.buffer, not click.get_binary_stream (deprecated in click 8.5, gone in 9).
    stream = getattr(sys.stdout, "buffer", None)
    if stream is None:  # a text-only stdout (an embedding application): no bytes to keep
        sys.stdout.write(text + ("\n" if newline else ""))
        sys.stdout.flush()
        return
    stream.write(text.encode("utf-8") + (b"\n" if newline else b""))
    stream.flush()


def print_json(value: Any) -> None:
    import json  # only on -o json paths

    emit(json.dumps(jsonable(value), indent=2, ensure_ascii=False))


def safe(value: Any) -> str:
    """Text for a terminal: the one escaping function of every human-readable line.

    Anything from a file, a file name, a registry or the database may hold escape
    sequences, carriage returns or newlines that would rewrite the terminal or forge a
    line. Every character str.isprintable() rejects is shown as its Python escape (ESC
    as \\x1b, CR as \\r, newline as \\n, C1 0x9b as \\x9b, U+202E as \\u202e): C0, DEL,
    C1, the bidi and other format controls, separators other than the space. None and
    "" show as "-" (an empty cell).
    """
    if value is None or value == "":
        return "-"
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def short_ref(ref: str) -> str:
    """The short form of an artifact_ref for tables (the full one is in -o wide and JSON).

    Registry references are stored as REGISTRY/REPOSITORY[:TAG] and show as
    REPOSITORY[:TAG] (Docker Hub's library/ dropped, as docker does); OCI layouts and
    archives (`oci:/abs/dir:tag`) and chart files show their last path component.
    """
    import os.path  # already loaded by the interpreter: costs nothing

    if ref.startswith(("oci:", "oci-archive:")) and not ref.startswith("oci://"):
        return ref.rsplit("/", 1)[-1]
    if os.path.isabs(ref):
        return os.path.basename(ref) or ref
    ref = ref.removeprefix("oci://")
    host, sep, rest = ref.partition("/")
    if not sep:
        return ref
    if host == "docker.io" and rest.startswith("library/"):
        return rest.removeprefix("library/")
    return rest


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters: a longer one ends with `…`."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    empty: str,
    *,
    caps: Sequence[int | None] | None = None,
    empty_on_stdout: bool = False,
) -> None:
    """A table: a header line, a rule, one line per row, columns two spaces apart.

    Every cell goes through safe(). A cell longer than its column's cap (`caps`, by
    position; DEFAULT_CAP where none is given) is cut with `…`; if the row is still
    longer than MAX_ROW the widest columns give way. `empty` is printed instead when
    there are no rows: on stderr for lists, whose stdout must stay empty for scripts,
    on stdout (`empty_on_stdout`) for a section of a describe.
    """
    if not rows:
        if empty_on_stdout:
            click.echo(empty)
        elif empty:
            click.echo(empty, err=True)
        return
    cells = [[safe(cell) for cell in row] for row in rows]
    limits = [
        max(len(header), (caps[i] if caps is not None and i < len(caps) else None) or DEFAULT_CAP)
        for i, header in enumerate(headers)
    ]
    widths = [
        min(limit, max(len(header), *(len(row[i]) for row in cells)))
        for i, (header, limit) in enumerate(zip(headers, limits, strict=True))
    ]
    # The gaps count: a row is exactly sum(widths) + 2 * (columns - 1) characters.
    while sum(widths) + len(_GAP) * (len(widths) - 1) > MAX_ROW:
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= 1:
            break
        widths[widest] -= 1

    import tabulate

    # tabulate pads every header by two more characters; the widths above already hold
    # the whole layout (MAX_ROW counts exactly the cells and the gaps).
    tabulate.MIN_PADDING = 0
    cut_rows = [
        [cut(value, width) for value, width in zip(row, widths, strict=True)] for row in cells
    ]
    click.echo(
        tabulate.tabulate(
            cut_rows,
            headers=[cut(header, width) for header, width in zip(headers, widths, strict=True)],
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


class Column:
    """One column of a view's table, defined once for `-o table` and `-o wide`.

    wide: None shows the column in both, True only in -o wide, False only in the table.
    `full` is the cell in -o wide when it differs from `cell` (the full digest, the full
    reference); `wide_cap` the cap in -o wide when it differs from `cap`. A plain class,
    not a NamedTuple: every command imports this module, and defining a NamedTuple costs
    ~70 us where this costs ~5.
    """

    __slots__ = ("cap", "cell", "full", "header", "wide", "wide_cap")

    def __init__(
        self,
        header: str,
        cell: Callable[[Any], Any],
        cap: int | None = None,
        *,
        wide: bool | None = None,
        full: Callable[[Any], Any] | None = None,
        wide_cap: int | None = None,
    ) -> None:
        self.header = header
        self.cell = cell
        self.cap = cap
        self.wide = wide
        self.full = full
        self.wide_cap = wide_cap

    def only_wide(self) -> Column:
        """This column, shown in -o wide only."""
        return Column(
            self.header, self.cell, self.cap, wide=True, full=self.full, wide_cap=self.wide_cap
        )


class Table:
    """The table of a view: its columns, and the line printed when there are no rows."""

    __slots__ = ("columns", "empty")

    def __init__(self, columns: Sequence[Column], empty: str) -> None:
        self.columns = tuple(columns)
        self.empty = empty

    def show(self, rows: Iterable[Any], *, wide: bool = False, on_stdout: bool = False) -> None:
        """Print `rows` (views) under this table's columns, the -o wide ones if `wide`."""
        shown = [c for c in self.columns if c.wide is None or c.wide == wide]
        cells = [[(c.full or c.cell)(row) if wide else c.cell(row) for c in shown] for row in rows]
        print_table(
            [c.header for c in shown],
            cells,
            empty=self.empty,
            caps=[c.wide_cap if wide and c.wide_cap is not None else c.cap for c in shown],
            empty_on_stdout=on_stdout,
        )


def render(
    value: Any,
    output: str,
    table: Table | None = None,
    *,
    text: Callable[..., None] | None = None,
) -> None:
    """Print a view (or a list of views) the way -o asked: the one place the choice is made.

    json: the view's JSON shape (jsonable); table and wide: `table`'s columns over the
    rows, or `text(value)` for a result told in sentences or fields. Only a command with
    `-o wide` can ask for it, and its text function takes `wide` (`text(value, wide=True)`).
    """
    if output == "json":
        print_json(value)
    elif table is not None:
        table.show(value, wide=output == "wide")
    else:
        assert text is not None, "a view printed as text needs its text function"
        if output == "wide":
            text(value, wide=True)
        else:
            text(value)


def ref_at_digest(view: DeploymentView) -> str:
    """REF@sha256:<12 hex> of a record, or its short digest when it has no reference."""
    from deploytrack.digests import short

    if view.artifact_ref:
        return f"{safe(view.artifact_ref)}@{short(view.digest)}"
    return short(view.digest)
