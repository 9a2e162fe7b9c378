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

