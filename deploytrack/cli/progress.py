"""Progress bars on stderr for the long commands, drawn only when stderr is a terminal.

A command wraps its service call in `progress(label, total)` and passes the callable it
yields to the service as `progress=`: the service calls it with the number of units done
(events, rows, files, observed artifacts, bytes) as it goes, and never knows whether a bar
is drawn. When stderr is not a terminal (a CI log, a pipe, a file) nothing at all is
written and `total` is never asked for. The bar is click's (`click.progressbar`), already
loaded by every command; rich (which sigstore pulls in) would add its import to each of
these commands for the same bar (docs/output.md).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

Advance = Callable[[int], None]

# The bar is redrawn at most this often: a log of a million events would otherwise write
# a million lines of escapes to the terminal, and cost more than the work it reports.
REDRAW_SECONDS = 0.1

# Back to the start of the line, erase it, show the cursor again (click hides it while
# drawing): what is left on the screen is what the command prints, an Error: line alone
# on its line included.
CLEAR = "\r\033[K\033[?25h"


def _nothing(n: int) -> None:
    """The progress callable when no bar is drawn."""


def _terminal(stream: TextIO) -> bool:
    """A terminal that understands the escapes a bar is redrawn with."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False
    return tty and os.environ.get("TERM") != "dumb"


def _bar_width(stream: TextIO, label: str) -> int:
    """Room for the bar beside the label, percentage and ETA on one line: a line that wraps
    cannot be redrawn in place."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    columns = columns or 80  # a terminal that reports no size (a fresh pseudo-terminal)
    return max(10, min(40, columns - len(label) - 24))


class _Throttled:
    """Advances the bar, redrawing it at most every REDRAW_SECONDS."""

    def __init__(self, bar: ProgressBar[int]) -> None:
        self.bar = bar
        self.pending = 0
        self.drawn = time.monotonic()

    def __call__(self, n: int) -> None:
        self.pending += n
        now = time.monotonic()
        if now - self.drawn >= REDRAW_SECONDS:
            self.flush()
            self.drawn = now

    def flush(self) -> None:
        if self.pending:
            self.bar.update(self.pending)
            self.pending = 0


@contextlib.contextmanager
def progress(label: str, total: int | Callable[[], int]) -> Iterator[Advance]:
    """Yield `advance(n)`; draw a bar of `total` units on stderr while the block runs.

    `total` may be a function, called only when a bar is drawn (a count the command would
    otherwise query for nothing). The bar is drawn at once, then as units are done, and
    once more full when the block succeeds; it is erased when the block ends, by success
    or by an exception, before anything else is printed.
    """
    stream = sys.stderr
    if not _terminal(stream):
        yield _nothing
        return
    length = total() if callable(total) else total
    bar: ProgressBar[int] = click.progressbar(
        length=max(length, 0),
        label=label,
        file=stream,
        width=_bar_width(stream, label),
    )
    advance = _Throttled(bar)
    bar.render_progress()  # drawn before the first unit: a slow first one still shows a bar
    try:
        yield advance
        advance.flush()
    finally:
        # Not the bar's own __exit__: it ends the line with a newline, leaving the bar on the
        # screen above the output (or above the Error: line of a refusal).
        with contextlib.suppress(OSError, ValueError):
            stream.write(CLEAR)
            stream.flush()
