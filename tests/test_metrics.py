"""`deploytrack metrics`: histories with known answers, written through the real commands at
known times (the `clock` fixture), and the rules of docs/metrics.md one by one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock, Invoke, attestation
from helpers import as_json, intoto_statement, sha256_digest, slot_args

from deploytrack import timeutil
from deploytrack.evidence.buildtime import parse_time
from deploytrack.services.metrics import _percentile, _percentile_seconds, band, per_interval

HOUR = 3600
DAY = 24 * HOUR
US = 1_000_000
KIND = "CONTAINER_IMAGE"
SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
V1, V2, V3, V4 = (sha256_digest(f"metrics release {n}".encode()) for n in "1234")
# Subjects of real attestations (tests/fixtures/attestations/), with their Chainloop
# finish times: a DSSE envelope whose time has nanoseconds and an offset, a Sigstore bundle.
CHAINLOOP_DSSE = "sha256:3036f2e5d709a23808eaa05570f1718afff92d4ad35e232c138738372ac93dfb"
CHAINLOOP_DSSE_FINISHED = datetime(2023, 6, 23, 13, 0, 43, 709970, tzinfo=UTC)
CHAINLOOP_BUNDLE = "sha256:b825e4cc79f70472dce1d4235893a987d7c07cfe79f7db3f1b7045a65070f3f9"
CHAINLOOP_BUNDLE_FINISHED = datetime(2025, 4, 30, 14, 4, 31, 905901, tzinfo=UTC)
# chainloop-full.json names this image as a material only (its subject is the workflow).
NGINX_MATERIAL = "sha256:264f55a6ff9cec2f4742a9faacc033b29f65c04dd4480e71e23579d484288d61"


# --- helpers ----------------------------------------------------------------------------


class History:
    """Records and attestations written through the CLI at the clock's time."""

    def __init__(self, ok: Invoke, run: Invoke, clock: Clock, folder: Path) -> None:
        self.ok, self.run, self.clock, self.folder = ok, run, clock, folder
        self.files = 0

    def attest(
        self, digest: str, predicate_type: str = SLSA_V1, predicate: dict[str, Any] | None = None
    ) -> None:
        self.files += 1
        path = self.folder / f"statement-{self.files}.json"
        statement = intoto_statement([(f"app-{self.files}", digest)], predicate_type, predicate)
        path.write_text(json.dumps(statement))
        self.ok("attestation", "import", str(path))

    def record(
        self, digest: str, env: str = "prod", stage: str = "production", name: str = "api"
    ) -> int:
        result = self.ok(*slot_args("record", env, stage, name, KIND), "--digest", digest, "-o",
                         "json")  # fmt: skip
        return int(as_json(result)["deployment"]["id"])

    def rollback(self, env: str = "prod", stage: str = "production", name: str = "api") -> int:
        result = self.ok(*slot_args("rollback", env, stage, name, KIND), "-o", "json")
        return int(as_json(result)["deployment"]["id"])

    def decommission(self, env: str = "prod", stage: str = "production", name: str = "api") -> None:
        self.ok(*slot_args("decommission", env, stage, name, KIND))

    def promote(self, name: str = "api") -> None:
        self.ok("deployment", "promote", "--env", "stage", "--to-env", "prod", "--deployment-name",
                name, "--kind", KIND, "--from-logical-env", "staging", "--to-logical-env",
                "production")  # fmt: skip

    def at(self, *, hours: float = 0, days: float = 0) -> int:
        """Move the clock forward; returns the new time."""
        return self.clock.advance(hours=hours + 24 * days)

    def metrics(self, *args: str) -> dict[str, Any]:
        return dict(as_json(self.ok("metrics", *args, "-o", "json")))


@pytest.fixture
def history(ok: Invoke, run: Invoke, clock: Clock, tmp_path: Path) -> History:
    """Releases V1..V4 attested (SLSA v1, no build time), environments prod and stage."""
    made = History(ok, run, clock, tmp_path)
    for digest in (V1, V2, V3, V4):
        made.attest(digest)
    ok("environment", "create", "--name", "prod")
    ok("environment", "create", "--name", "stage")
    return made


def rfc(us: int) -> str:
    text = timeutil.rfc3339(us)
    assert text is not None
    return text


def seconds(moment: datetime) -> int:
    """A wall-clock time as the microseconds the clock fixture uses."""
    return timeutil.to_us(moment)


# --- shape, empty selection, one deployment ----------------------------------------------


def test_an_empty_selection_measures_nothing(history: History, clock: Clock) -> None:
    body = history.metrics()
    assert list(body) == [
        "since", "until", "selection", "deployment_frequency", "lead_time",
        "change_failure_rate", "recovery_time",
    ]  # fmt: skip
    # Defaults: production, all environments, the 90 days before now, weeks, 24 hours.
    assert body["until"] == rfc(clock.now)
    assert body["since"] == rfc(clock.now - 90 * DAY * US)
    assert body["selection"] == {
        "logical_environment": "production",
        "environment": None,
        "interval": "week",
        "failure_window_seconds": DAY,
    }
    frequency = body["deployment_frequency"]
    assert (frequency["count"], frequency["band"]) == (0, None)
    # Every week that overlaps the window, from the Monday before it starts, counted 0.
    starts = [row["start"] for row in frequency["per_interval"]]
    assert starts[0] == "2026-08-17T00:00:00.000000Z"  # since = Fri 2026-08-22 09:00
    assert starts[-1] == "2026-11-16T00:00:00.000000Z"  # until = Fri 2026-11-20 09:00
    assert len(starts) == 14 and {row["count"] for row in frequency["per_interval"]} == {0}
    assert body["lead_time"] == {
        "count": 0, "median_seconds": None, "p90_seconds": None, "from_import_time": 0,
    }  # fmt: skip
    assert body["change_failure_rate"] == {"failed": 0, "total": 0, "rate": None}
    assert body["recovery_time"] == {"count": 0, "median_seconds": None}


def test_one_deployment(history: History) -> None:
    history.attest(V1, SLSA_V1, {"runDetails": {"metadata": {"finishedOn": rfc(
        history.clock.now - 2 * HOUR * US)}}})  # fmt: skip
    history.record(V1)
    history.at(hours=1)
    body = history.metrics()
    assert body["deployment_frequency"]["count"] == 1
    # The data starts on the day of the first record: one (partial) week, one day deployed.
    assert body["deployment_frequency"]["band"] == "weekly"
    assert body["deployment_frequency"]["per_interval"][-1] == {
        "start": "2026-11-16T00:00:00.000000Z",
        "count": 1,
    }
    assert body["lead_time"] == {
        "count": 1, "median_seconds": 2 * HOUR, "p90_seconds": 2 * HOUR, "from_import_time": 0,
    }  # fmt: skip
    assert body["change_failure_rate"] == {"failed": 0, "total": 1, "rate": 0.0}
    assert body["recovery_time"] == {"count": 0, "median_seconds": None}


def test_heartbeats_and_decommissionings_are_not_deployments(history: History) -> None:
    history.record(V1)
    history.at(hours=1)
    history.record(V1)  # heartbeat
    history.at(days=2)
    history.decommission()
    history.at(hours=1)
    body = history.metrics()
    assert body["deployment_frequency"]["count"] == 1
    # Decommissioned 2 days after its start: outside the failure window, no failure.
    assert body["change_failure_rate"] == {"failed": 0, "total": 1, "rate": 0.0}


def test_every_new_digest_in_a_slot_is_a_deployment(history: History) -> None:
    history.record(V1, env="stage", stage="staging")
    history.at(hours=1)
    history.record(V1)  # first record of the slot
    history.at(hours=1)
    history.record(V2)  # supersedes with another digest
    history.at(hours=1)
    history.rollback()  # back to V1
    history.at(days=3)
    history.decommission()
    history.at(hours=1)
    history.record(V1)  # the same digest again, in a slot a decommissioning emptied
    history.at(hours=1)
    history.record(V3, env="stage", stage="staging")
    history.at(hours=1)
    history.promote()  # V3 promoted into production
    history.at(hours=1)
    assert history.metrics()["deployment_frequency"]["count"] == 5
    # Staging is its own selection: its two records.
    assert history.metrics("--logical-env", "staging")["deployment_frequency"]["count"] == 2


# --- the window --------------------------------------------------------------------------


def test_a_window_that_cuts_records_in_half(history: History) -> None:
    start = history.clock.now
    history.record(V1)  # T0
    history.at(days=1)
    history.record(V2)  # T0 + 1d, rolled back 2 hours later: the failure
    history.at(hours=2)
    history.rollback()  # T0 + 1d 2h: V1 again
    history.at(days=1)

    # From T0 + 12h: V1's first record started before the window (not counted, and its
    # digest was deployed before: the rollback has no lead time); V2 and the rollback are in.
    inside = history.metrics("--since", rfc(start + 12 * HOUR * US))
    assert inside["deployment_frequency"]["count"] == 2
    assert inside["lead_time"]["count"] == 1
    assert inside["change_failure_rate"] == {"failed": 1, "total": 2, "rate": 0.5}
    assert inside["recovery_time"] == {"count": 1, "median_seconds": 2 * HOUR}

    # Until T0 + 1d 1h: V1 and V2 are in, the rollback is not; V2 still failed, judged on
    # the whole history (its record was ended by the rollback within the failure window).
    cut = history.metrics("--since", rfc(start), "--until", rfc(start + 25 * HOUR * US))
    assert cut["deployment_frequency"]["count"] == 2
    assert cut["lead_time"]["count"] == 2
    assert cut["change_failure_rate"] == {"failed": 1, "total": 2, "rate": 0.5}
    assert cut["recovery_time"] == {"count": 1, "median_seconds": 2 * HOUR}


def test_the_window_includes_since_and_excludes_until(history: History) -> None:
    first = history.clock.now
    history.record(V1)
    second = history.at(hours=1)
    history.record(V2)
    history.at(hours=1)
    # [first, second): the record made at `second` is left to the next window.
    before = history.metrics("--since", rfc(first), "--until", rfc(second))
    after = history.metrics("--since", rfc(second))
    assert before["deployment_frequency"]["count"] == 1
    assert after["deployment_frequency"]["count"] == 1
    # An RFC 3339 time to the second is that second's first microsecond, for both ends.
    whole = history.metrics("--since", "2026-11-20T09:00:00Z", "--until", "2026-11-20T10:00:00Z")
    assert whole["until"] == "2026-11-20T10:00:00.000000Z"
    assert whole["deployment_frequency"]["count"] == 1


def test_months_and_weeks_count_what_falls_in_them(history: History, clock: Clock) -> None:
    clock.now = seconds(datetime(2026, 9, 30, 23, 0, tzinfo=UTC))
    history.record(V1)
    clock.now = seconds(datetime(2026, 10, 1, 1, 0, tzinfo=UTC))
    history.record(V2)
    clock.now = seconds(datetime(2026, 11, 2, 0, 0, tzinfo=UTC))
    history.record(V3)
    clock.now = seconds(datetime(2026, 11, 20, 0, 0, tzinfo=UTC))
    window = ("--since", "2026-09-15T00:00:00Z", "--until", "2026-11-20T00:00:00Z")
    months = history.metrics(*window, "--interval", "month")
    assert months["selection"]["interval"] == "month"
    assert months["deployment_frequency"]["per_interval"] == [
        {"start": "2026-09-01T00:00:00.000000Z", "count": 1},
        {"start": "2026-10-01T00:00:00.000000Z", "count": 1},
        {"start": "2026-11-01T00:00:00.000000Z", "count": 1},
    ]
    weeks = {
        row["start"][:10]: row["count"]
        for row in history.metrics(*window)["deployment_frequency"]["per_interval"]
    }
    assert min(weeks) == "2026-09-14" and max(weeks) == "2026-11-16"
    # Wednesday 30 September and Thursday 1 October share the week of Monday 28 September.
    assert weeks["2026-09-28"] == 2 and weeks["2026-11-02"] == 1
    assert sum(weeks.values()) == 3


def test_windows_at_the_ends_of_time(history: History) -> None:
    # The default start is 90 days before --until, but never before year 1.
    early = history.metrics("--until", "0001-02-01T00:00:00Z")
    assert early["since"] == "0001-01-01T00:00:00.000000Z"
    assert early["deployment_frequency"]["per_interval"][0]["start"] == early["since"]
    # December 9999 is a whole month, though no month follows it.
    late = history.metrics("--since", "9999-12-01T00:00:00Z", "--until", "9999-12-31T23:59:59Z",
                           "--interval", "month")  # fmt: skip
    assert late["deployment_frequency"]["per_interval"] == [
        {"start": "9999-12-01T00:00:00.000000Z", "count": 0}
    ]
    # 100 years of 365 days, as for durations, is the longest window.
    history.metrics("--since", "1926-12-15T09:00:00Z", "--until", "2026-11-20T09:00:00Z")


def test_an_environment_narrows_the_selection(history: History) -> None:
    history.record(V1, env="prod")
    history.at(hours=1)
    history.record(V2, env="stage")  # production too, in another environment
    history.at(hours=1)
    assert history.metrics()["deployment_frequency"]["count"] == 2
    only = history.metrics("--env", "stage")
    assert only["selection"]["environment"] == "stage"
    assert only["deployment_frequency"]["count"] == 1


# --- change failure rate and recovery time ------------------------------------------------


def test_the_release_rolled_back_is_the_failure_not_the_ones_before_it(history: History) -> None:
    history.record(V1)
    history.at(hours=1)
    history.record(V2)
    history.at(hours=1)
    history.record(V3)
    history.at(hours=3)
    history.rollback()  # restores V2: V3 failed
    history.at(hours=1)
    body = history.metrics()
    assert body["change_failure_rate"] == {"failed": 1, "total": 4, "rate": 0.25}
    assert body["recovery_time"] == {"count": 1, "median_seconds": 3 * HOUR}


def test_a_rollback_outside_the_failure_window_is_no_failure(history: History) -> None:
    history.record(V1)
    history.at(hours=1)
    history.record(V2)
    history.at(hours=25)
    history.rollback()
    history.at(hours=1)
    assert history.metrics()["change_failure_rate"]["failed"] == 0
    wider = history.metrics("--failure-window", "2d")
    assert wider["selection"]["failure_window_seconds"] == 2 * DAY
    assert wider["change_failure_rate"] == {"failed": 1, "total": 3, "rate": 0.3333}
    assert wider["recovery_time"] == {"count": 1, "median_seconds": 25 * HOUR}
    # The window's end is included: ended exactly 25 hours after its start.
    exact = history.metrics("--failure-window", "25h")
    assert exact["change_failure_rate"]["failed"] == 1


def test_a_decommissioning_in_the_failure_window_is_a_failure(history: History) -> None:
    history.record(V1)
    history.at(hours=2)
    history.decommission()
    history.at(hours=1)
    # Nothing replaced it yet: failed, not recovered.
    body = history.metrics()
    assert body["change_failure_rate"] == {"failed": 1, "total": 1, "rate": 1.0}
    assert body["recovery_time"] == {"count": 0, "median_seconds": None}
    history.at(hours=3)
    history.record(V2)  # replaces it, 6 hours after the failed deployment started
    history.at(hours=1)
    body = history.metrics()
    assert body["change_failure_rate"] == {"failed": 1, "total": 2, "rate": 0.5}
    assert body["recovery_time"] == {"count": 1, "median_seconds": 6 * HOUR}


def test_a_decommissioning_after_the_failure_window_is_no_failure(history: History) -> None:
    history.record(V1)
    history.at(hours=30)
    history.decommission()
    history.at(hours=1)
    assert history.metrics()["change_failure_rate"] == {"failed": 0, "total": 1, "rate": 0.0}
    assert history.metrics("--failure-window", "2d")["change_failure_rate"]["failed"] == 1


def test_recovery_time_is_the_median_of_the_recoveries(history: History) -> None:
    history.record(V1)
    history.at(hours=1)
    for hours in (1, 2, 6):  # V2 released three times, rolled back after 1, 2 and 6 hours
        history.record(V2)
        history.at(hours=hours)
        history.rollback()
        history.at(hours=1)
    body = history.metrics()
    assert body["change_failure_rate"] == {"failed": 3, "total": 7, "rate": 0.4286}
    assert body["recovery_time"] == {"count": 3, "median_seconds": 2 * HOUR}


# --- lead time ----------------------------------------------------------------------------


def built(moment: int, field: str = "finishedOn") -> dict[str, Any]:
    return {"runDetails": {"metadata": {field: rfc(moment)}}}


def test_lead_time_from_each_kind_of_evidence(history: History, ok: Invoke) -> None:
    now = history.clock.now
    # SLSA v1: finishedOn, else startedOn; v0.2: buildFinishedOn, else buildStartedOn.
    a, b, c, d, e, f = (sha256_digest(f"lead {n}".encode()) for n in range(6))
    history.attest(a, SLSA_V1, built(now - 1 * HOUR * US))
    history.attest(b, SLSA_V1, built(now - 6 * HOUR * US, "startedOn"))
    finished, started = rfc(now - 3 * HOUR * US), rfc(now - 9 * HOUR * US)
    history.attest(
        c, SLSA_V02, {"metadata": {"buildFinishedOn": finished, "buildStartedOn": started}}
    )
    history.attest(d, SLSA_V02, {"metadata": {"buildStartedOn": rfc(now - 4 * HOUR * US)}})
    # deploytrack's own predicate: createdAt.
    created = {"workflow": "w", "project": "p", "createdAt": rfc(now - 5 * HOUR * US)}
    history.attest(e, "https://deploytrack.dev/attestation/v1", created)
    # Chainloop: finishedAt (the real files below), else initializedAt.
    initialized = {"metadata": {"initializedAt": rfc(now - 2 * HOUR * US)}}
    history.attest(f, "chainloop.dev/attestation/v0.2", initialized)
    for name, digest in zip("abcdef", (a, b, c, d, e, f), strict=True):
        history.record(digest, name=name)
    history.at(hours=1)
    body = history.metrics()
    # Deployed at `now`: 1, 6, 3, 4, 5 and 2 hours after the build times above.
    assert body["lead_time"] == {"count": 6, "median_seconds": int(3.5 * HOUR),
                                 "p90_seconds": int(5.5 * HOUR), "from_import_time": 0}  # fmt: skip
    assert "from import time" not in ok("metrics").stdout


def test_lead_time_from_real_chainloop_attestations(history: History, ok: Invoke) -> None:
    # A DSSE envelope (finishedAt with nanoseconds and +02:00) and a Sigstore bundle.
    ok("attestation", "import", str(attestation("chainloop-full.json")),
       str(attestation("chainloop-attestation-bundle.json")))  # fmt: skip
    history.record(CHAINLOOP_DSSE, name="dsse")
    history.record(CHAINLOOP_BUNDLE, name="bundle")
    deployed = history.clock.now
    history.at(hours=1)
    samples = sorted(
        (deployed - seconds(moment)) // US
        for moment in (CHAINLOOP_DSSE_FINISHED, CHAINLOOP_BUNDLE_FINISHED)
    )
    lead = history.metrics()["lead_time"]
    assert lead["count"] == 2
    assert lead["median_seconds"] == round(Fraction(sum(samples), 2))
    assert lead["p90_seconds"] == round(samples[0] + Fraction(9, 10) * (samples[1] - samples[0]))


def test_lead_time_falls_back_to_the_import_time_and_says_so(
    history: History, ok: Invoke, clock: Clock
) -> None:
    # V1 was imported by the fixture at the clock's start, with no build time in it; the
    # earliest import counts, not this later one.
    history.at(hours=5)
    history.attest(V1, "https://example.com/scan/v1")
    history.record(V1)
    history.at(hours=1)
    assert history.metrics()["lead_time"]["median_seconds"] == 5 * HOUR
    table = ok("metrics").stdout
    assert "1 first deployment of a digest, 1 from import time" in table


def test_a_material_is_no_build_time(history: History, ok: Invoke, clock: Clock) -> None:
    # chainloop-full.json states when its workflow finished, but names this image as a
    # material (an input): the lead time starts at the import instead.
    imported = clock.now
    ok("attestation", "import", str(attestation("chainloop-full.json")))
    history.at(hours=2)
    history.record(NGINX_MATERIAL)
    history.at(hours=1)
    assert (
        history.metrics()["lead_time"]["median_seconds"] == (clock.now - HOUR * US - imported) // US
    )


def test_the_earliest_build_time_wins(history: History) -> None:
    now = history.clock.now
    history.attest(V1, SLSA_V1, built(now - 2 * HOUR * US))
    history.attest(V1, SLSA_V1, built(now - 7 * HOUR * US))  # rebuilt, attested again
    history.attest(V1, SLSA_V1, {"runDetails": {"metadata": {"finishedOn": "yesterday"}}})
    history.record(V1)
    history.at(hours=1)
    assert history.metrics()["lead_time"]["median_seconds"] == 7 * HOUR


def test_a_build_time_after_the_deployment_counts_as_no_wait(history: History) -> None:
    history.attest(V1, SLSA_V1, built(history.clock.now + 3 * HOUR * US))
    history.record(V1)
    history.at(hours=1)
    assert history.metrics()["lead_time"]["median_seconds"] == 0


def test_lead_time_is_measured_once_per_digest_at_its_first_deployment(history: History) -> None:
    now = history.clock.now
    history.attest(V1, SLSA_V1, built(now - HOUR * US))
    history.record(V1, env="stage", stage="staging")  # another selection: not counted
    history.at(hours=1)
    history.promote()  # V1's first deployment in production, 2 hours after its build
    history.at(hours=1)
    history.record(V1, name="worker")  # the same digest again in production
    history.at(hours=1)
    body = history.metrics()
    assert body["deployment_frequency"]["count"] == 2
    assert body["lead_time"] == {
        "count": 1, "median_seconds": 2 * HOUR, "p90_seconds": 2 * HOUR, "from_import_time": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-20T09:00:00Z", datetime(2026, 11, 20, 9, 0, tzinfo=UTC)),
        (
            "2023-06-23T15:00:43.70997067+02:00",
            datetime(2023, 6, 23, 13, 0, 43, 709970, tzinfo=UTC),
        ),
        ("2026-01-01t00:30:00.5-01:30", datetime(2026, 1, 1, 2, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-20T09:00:00", None),  # no zone
        ("2026-11-20", None),
        ("2026-13-01T00:00:00Z", None),
        ("0001-01-01T00:00:00+01:00", None),  # before year 1 in UTC
        (1700000000, None),
    ],
)
def test_evidence_times_are_rfc3339_with_a_zone(text: Any, moment: datetime | None) -> None:
    assert parse_time(text) == (None if moment is None else timeutil.to_us(moment))


# --- percentiles and the Four Keys band ---------------------------------------------------


def test_percentiles_interpolate_between_ranks_and_round_halves_up() -> None:
    assert _percentile([1, 2, 3, 4], Fraction(1, 2)) == Fraction(5, 2)
    assert _percentile_seconds([1, 2, 3, 4], Fraction(1, 2)) == 3
    assert _percentile_seconds([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], Fraction(9, 10)) == 91
    assert _percentile_seconds([7], Fraction(9, 10)) == 7
    assert _percentile_seconds([], Fraction(1, 2)) is None


MONDAY = timeutil.to_us(datetime(2026, 11, 2, tzinfo=UTC))


def days_of(*days: int, hour: int = 12) -> list[int]:
    """Times on the given days after Monday 2 November 2026."""
    return [MONDAY + (day * DAY + hour * HOUR) * US for day in days]


def test_band_daily_needs_a_median_of_three_days_a_week() -> None:
    until = MONDAY + 28 * DAY * US  # four whole weeks
    three = days_of(0, 2, 4, 7, 9, 11, 14, 15, 16, 21, 22, 23)
    assert band(three, MONDAY, MONDAY, until) == "daily"
    # Two weeks of three days, two of two: the median is 2.5.
    fewer = days_of(0, 2, 4, 7, 9, 11, 14, 15, 21, 22)
    assert band(fewer, MONDAY, MONDAY, until) == "weekly"
    # Many deployments on one day a week are still one day.
    many = days_of(*[day for day in (0, 7, 14, 21) for _ in range(10)])
    assert band(many, MONDAY, MONDAY, until) == "weekly"


def test_band_weekly_monthly_and_yearly() -> None:
    until = MONDAY + 28 * DAY * US
    # Half the weeks with a deployment: the median of 0, 0, 1, 1 is 0.5, not weekly.
    assert band(days_of(0, 7), MONDAY, MONDAY, until) == "monthly"
    assert band(days_of(0, 7, 14), MONDAY, MONDAY, until) == "weekly"
    # One week out of eight: its month has one week with a deployment, the other month none.
    eight = MONDAY + 56 * DAY * US
    assert band(days_of(0), MONDAY, MONDAY, eight) == "monthly"
    assert band([], MONDAY, MONDAY, eight) == "yearly"
    assert band(days_of(0), MONDAY - 365 * DAY * US, MONDAY - 365 * DAY * US, eight) == "yearly"


def test_band_counts_from_the_start_of_the_data() -> None:
    until = MONDAY + 28 * DAY * US
    # Recording began in the last week: the weeks before it are not weeks without deployments.
    late = days_of(21, 22, 23)
    assert band(late, late[0], MONDAY - 60 * DAY * US, until) == "daily"
    assert band(late, MONDAY - 60 * DAY * US, MONDAY - 60 * DAY * US, until) == "yearly"
    # No record before the window's end: nothing to judge.
    assert band([], None, MONDAY, until) is None
    assert band([], until, MONDAY, until) is None


def test_per_interval_starts_at_calendar_boundaries() -> None:
    since = timeutil.to_us(datetime(2026, 12, 15, tzinfo=UTC))
    until = timeutil.to_us(datetime(2027, 2, 1, tzinfo=UTC))
    months = per_interval([since, until - 1], since, until, "month")
    assert [(rfc(row.start), row.count) for row in months] == [
        ("2026-12-01T00:00:00.000000Z", 1),
        ("2027-01-01T00:00:00.000000Z", 1),
    ]
    weeks = per_interval([], since, since + 1, "week")
    assert [rfc(row.start) for row in weeks] == ["2026-12-14T00:00:00.000000Z"]


def test_a_daily_history_end_to_end(history: History, clock: Clock) -> None:
    """Four weeks, deployments on Monday, Wednesday and Friday: daily."""
    clock.now = MONDAY + 9 * HOUR * US
    days = [week * 7 + day for week in range(4) for day in (0, 2, 4)]
    for n, day in enumerate(days):
        clock.now = MONDAY + (day * DAY + 9 * HOUR) * US
        history.record((V1, V2)[n % 2])
    clock.now = MONDAY + 28 * DAY * US
    body = history.metrics()
    assert body["deployment_frequency"]["count"] == 12
    assert body["deployment_frequency"]["band"] == "daily"
    assert [row["count"] for row in body["deployment_frequency"]["per_interval"][-4:]] == [3] * 4


# --- the command --------------------------------------------------------------------------


def test_the_table_tells_each_metric(history: History, ok: Invoke) -> None:
    history.record(V1)
    history.at(hours=1)
    history.record(V2)
    history.at(hours=2)
    history.rollback()
    history.at(hours=1)
    lines = ok("metrics", "--env", "prod").stdout.splitlines()
    assert lines[0] == (
        "production (prod), 2026-08-22T13:00:00Z to 2026-11-20T13:00:00Z (end excluded), "
        "per week, failure window 1d"
    )
    table = "\n".join(lines[1:])
    assert "deployment frequency    weekly  3 deployments" in table
    assert "change failure rate     33.33%  1 of 3 deployments failed" in table
    assert "recovery time (median)  2h      1 of 1 failures recovered" in table
    assert "lead time (median)" in table and "lead time (p90)" in table


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--since", "2026-11-20T00:00:00Z", "--until", "2026-11-20T00:00:00Z"), 1,
         "--since is not before --until"),
        (("--since", "1d", "--until", "2d"), 1, "--since is not before --until"),
        (("--since", "1900-01-01T00:00:00Z"), 1, "the window is longer than 100 years"),
        (("--logical-env", "nowhere"), 1, "logical environment 'nowhere' does not exist"),
        (("--env", "nowhere"), 1, "environment 'nowhere' does not exist"),
        (("--interval", "day"), 2, "'day' is not one of 'week', 'month'"),
        (("--failure-window", "soon"), 2, "invalid duration 'soon'"),
        (("--since", "2026-11-20"), 2, "invalid time '2026-11-20'"),
    ],
)  # fmt: skip
def test_refusals(
    history: History, refuse: Invoke, args: tuple[str, ...], code: int, message: str
) -> None:
    refuse("metrics", *args, code=code, contains=message)


# --- from Python, as the report calls it ---------------------------------------------------


def test_compute_gives_the_report_its_samples(history: History, db_path: Path) -> None:
    from deploytrack.services import ServiceError
    from deploytrack.services.metrics import MetricsQuery, compute
    from deploytrack.store import open_store

    now = history.clock.now
    history.attest(V2, SLSA_V1, built(now - 3 * HOUR * US))
    history.record(V2)  # 3 hours after its build
    history.at(hours=2)
    history.record(V1)  # 2 hours after its import (the fixture's, no build time)
    history.at(hours=1)
    store = open_store(str(db_path))
    try:
        found = compute(store, MetricsQuery())
        assert found.lead_time_samples == (3 * HOUR, 2 * HOUR)
        assert found.lead_time.from_import_time == 1
        assert found.lead_time.__json__()["from_import_time"] == 1
        assert (found.until, found.since) == (now + 3 * HOUR * US, now - (90 * DAY - 3 * HOUR) * US)
        with pytest.raises(ServiceError, match="the failure window is negative"):
            compute(store, MetricsQuery(failure_window_us=-1))
    finally:
        store.close()
