"""Click parameter types for times and durations (issue 5). Pure: no store, no peewee.

TIME is RFC 3339 with a zone (`2026-11-20T14:00:00Z`, `...+02:00`), `now`, or an age
(`90m`, `2h`, `3d`, `1h30m`) meaning that long before the command started. DURATION is
an age. Both become integer microseconds; a bad value is a usage error (exit 2).
"""

from __future__ import annotations

from typing import Any

import click

from deploytrack import timeutil


class TimeType(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        try:
            return timeutil.parse_time(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class DurationType(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        try:
            return timeutil.parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TIME = TimeType()
DURATION = DurationType()


def age(us: int) -> str:
    """A duration for people: `45s`, `12m`, `3h 5m`, `2d 4h`."""
    seconds = max(us, 0) // 1_000_000
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"
