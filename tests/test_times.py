"""Times as shown are times that work. A time written to the second (as every
table prints it) names that whole second: `--at` and `--until` take its end, `--since` its
start; a fraction, `now` and an age are instants."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import NGINX_FULL, NGINX_GIT, Clock, Invoke, untouched

from deploytrack import timeutil

WHERE = ("--env", "cluster", "--logical-env", "production", "--kind", "CONTAINER_IMAGE")
SECOND = 1_000_000


def rec(ok: Invoke, digest: str, name: str = "api") -> dict[str, Any]:
    out = ok("deployment", "record", *WHERE, "--deployment-name", name, "--digest", digest,
             "-o", "json")  # fmt: skip
    return json.loads(out.stdout)["deployment"]


def ids(ok: Invoke, *args: str) -> list[int]:
    return [r["id"] for r in json.loads(ok("deployment", "list", *args, "-o", "json").stdout)]


def test_the_deployed_at_a_table_shows_finds_the_record(seeded: None, ok: Invoke) -> None:
    """The bug report: `--at <DEPLOYED AT as shown>` missed the record it showed."""
    made = rec(ok, NGINX_FULL)
    table = ok("deployment", "list").stdout
    shown = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", table)[0]
    assert shown == timeutil.short(timeutil.parse_time_span(made["created_at"])[0])
    assert ids(ok, "--at", shown) == [made["id"]]
    assert ids(ok, "--until", shown) == [made["id"]]
    assert ids(ok, "--since", shown) == [made["id"]]
    assert ids(ok, "--since", shown, "--until", shown) == [made["id"]]
    # The instant just before it, written with its fraction, is exactly that instant.
    before = timeutil.rfc3339(timeutil.parse_time_span(made["created_at"])[0] - 1) or ""
    assert ids(ok, "--at", before) == []


@pytest.fixture
def history(seeded: None, ok: Invoke, clock: Clock) -> tuple[int, int]:
    """api: NGINX_FULL at 09:00:00.400000, superseded by NGINX_GIT at 09:00:02.700000."""
    clock.advance(us=400_000)
    first = rec(ok, NGINX_FULL)["id"]
    clock.advance(seconds=2.3)
    second = rec(ok, NGINX_GIT)["id"]
    return first, second


@pytest.mark.parametrize(
    ("args", "want"),
    [
        # To the second: --at and --until are the end of that second, --since its start.
        (("--at", "2026-11-20T09:00:00Z"), [0]),
        (("--at", "2026-11-20T09:00:02Z"), [1]),  # superseded at .7 of that second
        (("--at", "2026-11-20 11:00:00+02:00"), [0]),  # any zone, the same second
        (("--until", "2026-11-20T09:00:00Z"), [0]),
        (("--since", "2026-11-20T09:00:02Z"), [1, 0]),  # 0 still ran at 09:00:02.000000
        (("--since", "2026-11-20T09:00:03Z"), [1]),
        # To the minute: that whole minute.
        (("--at", "2026-11-20T09:00Z"), [1]),
        # A fraction is exactly that instant.
        (("--at", "2026-11-20T09:00:00.399999Z"), []),
        (("--at", "2026-11-20T09:00:00.4Z"), [0]),
        (("--at", "2026-11-20T09:00:02.699999Z"), [0]),
        (("--until", "2026-11-20T09:00:00.0Z"), []),
        (("--since", "2026-11-20T09:00:02.700000Z"), [1]),
    ],
)
def test_precision_of_the_time_given(
    ok: Invoke, history: tuple[int, int], args: tuple[str, ...], want: list[int]
) -> None:
    assert ids(ok, *args) == [history[n] for n in want]


def test_ages_and_now_are_instants(ok: Invoke, history: tuple[int, int], clock: Clock) -> None:
    clock.advance(us=-200_000)  # now is 09:00:02.500000: the first record still runs
    assert ids(ok, "--at", "now") == [history[0]]
    assert ids(ok, "--at", "1s") == [history[0]]  # 09:00:01.500000
    assert ids(ok, "--at", "3s") == []  # 08:59:59.500000


def test_diff_at_a_time_shown_to_the_second(ok: Invoke, history: tuple[int, int]) -> None:
    rows = json.loads(
        ok(
            "deployment",
            "diff",
            "--from-at",
            "2026-11-20T09:00:00Z",
            "--to-at",
            "2026-11-20T09:00:02Z",
            "-o",
            "json",
        ).stdout
    )
    assert [(r["from_digest"], r["to_digest"], r["change"]) for r in rows] == [
        (NGINX_FULL, NGINX_GIT, "changed")
    ]


@pytest.mark.parametrize(
    ("text", "first", "length"),
    [
        ("2026-11-20T14:00:00Z", "2026-11-20T14:00:00.000000Z", SECOND - 1),
        ("2026-11-20t14:00:00z", "2026-11-20T14:00:00.000000Z", SECOND - 1),
        ("2026-11-20T16:00:00+02:00", "2026-11-20T14:00:00.000000Z", SECOND - 1),
        ("2026-11-20T14:00Z", "2026-11-20T14:00:00.000000Z", 60 * SECOND - 1),
        ("2026-11-20T14:00:00.5Z", "2026-11-20T14:00:00.500000Z", 0),
        ("2026-11-20T14:00:00.000000Z", "2026-11-20T14:00:00.000000Z", 0),
    ],
)
def test_parse_time_span(text: str, first: str, length: int) -> None:
    start, end = timeutil.parse_time_span(text)
    assert timeutil.rfc3339(start) == first
    assert end - start == length


def test_parse_time_span_of_ages_and_now() -> None:
    now = 1_800_000_000 * SECOND + 123
    assert timeutil.parse_time_span("now", now) == (now, now)
    assert timeutil.parse_time_span("1h30m", now) == (now - 5_400 * SECOND,) * 2


def test_the_readme_example_works_once_something_ran_then(
    seeded: None, ok: Invoke, clock: Clock, db_path: Path
) -> None:
    """`deployment list --logical-env production --at 2026-11-20T14:00:00Z` lists what ran
    at 14:00, including a record made during that very second."""
    clock.advance(hours=5, us=900_000)  # 14:00:00.900000
    made = rec(ok, NGINX_FULL)
    at = ("deployment", "list", "--logical-env", "production", "--at", "2026-11-20T14:00:00Z")
    assert f"{made['id']} " in ok(*at).stdout
    assert not untouched(db_path)
