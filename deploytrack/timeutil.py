"""Times are stored as integer microseconds since the Unix epoch, UTC.

Integers sort, compare and index cheaply, and are the same in SQLite and PostgreSQL.
At the edges they become RFC 3339 strings in UTC with microsecond precision.
"""

from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return to_us(datetime.now(UTC))


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a time zone is required")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    # Integer arithmetic: fromtimestamp(us / 1e6) would lose microseconds to float rounding.
    from datetime import timedelta

    return _EPOCH + timedelta(microseconds=us)


def rfc3339(us: int | None) -> str | None:
    """Full precision, for machines: 2026-11-21T21:25:49.123456Z."""
    if us is None:
        return None
    d = from_us(us)
    # Formatted by hand: strftime("%Y") does not pad years below 1000 on every platform.
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        f".{d.microsecond:06d}Z"
    )


def short(us: int | None) -> str:
    """Second precision, for tables: 2026-11-21T21:25:49Z."""
    if us is None:
        return "-"
    text = rfc3339(us)
    assert text is not None
    return text[:19] + "Z"


_UNITS_US = {
    "s": 1_000_000,
    "m": 60 * 1_000_000,
    "h": 3_600 * 1_000_000,
    "d": 86_400 * 1_000_000,
    "w": 7 * 86_400 * 1_000_000,
}
# Far enough for any audit, small enough that arithmetic on it never overflows SQLite's
# 64-bit integers or datetime's year 9999.
MAX_DURATION_US = 100 * 365 * 86_400 * 1_000_000


def parse_duration(text: str) -> int:
    """`90s`, `30m`, `24h`, `7d`, `2w`, or combinations such as `1h30m`, in microseconds.

    Raises ValueError with a message fit for the user.
    """
    import re

    value = text.strip().lower()
    parts = re.findall(r"(\d+)([smhdw])", value)
    if not value or not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(
            f"invalid duration {text[:40]!r}: use a number and a unit (s, m, h, d, w), "
            "e.g. 30m, 24h, 7d or 1h30m"
        )
    total = 0
    for number, unit in parts:
        if len(number) > 12:
            raise ValueError(f"invalid duration {text[:40]!r}: too large")
        total += int(number) * _UNITS_US[unit]
    if total > MAX_DURATION_US:
        raise ValueError(f"invalid duration {text[:40]!r}: longer than 100 years")
    return total


# How long the last unit written lasts, less one microsecond: a time to the minute is that
# whole minute, to the second that whole second; a fraction is an instant.
_TO_MINUTE_US = 60 * 1_000_000 - 1
_TO_SECOND_US = 1_000_000 - 1


def parse_time_span(text: str, now: int | None = None) -> tuple[int, int]:
    """The first and last microsecond `text` names: an RFC 3339 time with a zone
    (`2026-11-20T14:00:00Z`, `2026-11-20 16:00:00+02:00`, fractions allowed), `now`, or an
    age such as `90m`, `2h`, `3d`, `1h30m` meaning that long before `now`. A time without
    a zone is refused: on a server in UTC and a laptop in Paris it would mean two instants.

    Tables print whole seconds, so a time written to the second (`14:00:00Z`) names that
    whole second, [14:00:00.000000, 14:00:00.999999], and to the minute the whole minute;
    `--at` and `--until` then take the last microsecond, `--since` the first, and the time
    copied from a table finds the record created in it. With a fraction, `now` or an age
    the first and last are the same instant.

    Raises ValueError with a message fit for the user.
    """
    import re

    value = text.strip()
    current = now_us() if now is None else now
    if value.lower() == "now":
        return current, current
    if re.fullmatch(r"(\d+[smhdwSMHDW])+", value):
        moment_us = current - parse_duration(value)
        return moment_us, moment_us
    moment = None
    # RFC 3339 allows "t" and "z" in lower case; Python reads "T", " " and "Z".
    written = re.fullmatch(
        r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?([Zz]|[+-]\d\d:?\d\d)", value
    )
    if written:
        try:
            moment = datetime.fromisoformat(value.upper())
        except ValueError:
            moment = None
    if written is None or moment is None or moment.tzinfo is None:
        raise ValueError(
            f"invalid time {text[:40]!r}: use RFC 3339 with a zone (2026-11-20T14:00:00Z, "
            "2026-11-20T16:00:00+02:00), now, or an age such as 90m, 2h or 3d"
        )
    if written.group(2):
        length = 0
    elif written.group(1):
        length = _TO_SECOND_US
    else:
        length = _TO_MINUTE_US
    try:
        first = to_us(moment.astimezone(UTC))
    except OverflowError:
        raise ValueError(f"invalid time {text[:40]!r}: out of range") from None
    return first, first + length


def age(us: int) -> str:
    """A duration for people (tables, the report): `45s`, `12m`, `3h 5m`, `2d 4h`."""
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
