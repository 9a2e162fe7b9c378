"""Click parameter types for times and durations. Pure: no store, no peewee.

TIME is RFC 3339 with a zone (`2026-11-20T14:00:00Z`, `...+02:00`), `now`, or an age
(`90m`, `2h`, `3d`, `1h30m`) meaning that long before the command started; a time written
to the second means that whole second (TIME_END takes its end). DURATION is an age. Both
become integer microseconds; a bad value is a usage error (exit 2).
"""

from __future__ import annotations

from typing import Any

import click

from deploytrack import timeutil


class TimeType(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.4 on; we support 8.1
    """A TIME option's value: the first microsecond the text names, or with `last` the last
    one (a time written to the second is that whole second: timeutil.parse_time_span)."""

    name = "TIME"

    def __init__(self, *, last: bool = False) -> None:
        self.last = last

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        try:
            first, last = timeutil.parse_time_span(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return last if self.last else first


class DurationType(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.4 on; we support 8.1
    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        try:
            return timeutil.parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


# --since: from the start of the second given; --at, --until, diff's --from-at and --to-at:
# to its end, so a time copied from a table includes the records shown at that second.
TIME = TimeType()
TIME_END = TimeType(last=True)
DURATION = DurationType()
