"""`status` (staleness of heartbeats) and `deployment diff` (drift between two
selections of active deployments, now or at a time)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock, Invoke, assert_refused, snapshot
from helpers import as_json, intoto_statement, record_args

from deploytrack import timeutil
from deploytrack.services import lifecycle
from deploytrack.store import open_store

V1, V2, V3 = ("sha256:" + hashlib.sha256(f"build {n}".encode()).hexdigest() for n in "123")
STATUS_FIELDS = [
    "environment",
    "logical_environment",
    "deployment_name",
    "kind",
    "digest",
    "deployed_at",
    "last_seen_at",
    "stale",
]
DIFF_FIELDS = [
    "deployment_name",
    "kind",
    "environment",
    "logical_environment",
    "from_digest",
    "to_digest",
    "change",
]
HOUR = 3_600_000_000


@pytest.fixture(autouse=True)
def _estate(ok: Invoke, tmp_path: Path) -> None:
    subjects = ((f"b{i}", d) for i, d in enumerate((V1, V2, V3)))
    statement = intoto_statement(subjects, "https://example.com/build/v1")
    path = tmp_path / "builds.json"
    path.write_text(json.dumps(statement))
    ok("attestation", "import", str(path))
    ok("environment", "create", "--name", "stage-cluster")
    ok("environment", "create", "--name", "prod-cluster")


def rec(
    ok: Invoke,
    digest: str,
    env: str,
    stage: str,
    name: str,
    kind: str = "CONTAINER_IMAGE",
    status: str = "deployed",
) -> dict[str, Any]:
    args = record_args(env, stage, name, kind)
    out = ok(*args, "--digest", digest, "--status", status, "-o", "json")
    return json.loads(out.stdout)["deployment"]


# --- status ----------------------------------------------------------------------------


def test_status_rows_are_every_active_deployment_by_environment_and_stage(
    ok: Invoke, db_path: Path
) -> None:
    web = rec(ok, V1, "prod-cluster", "production", "web")
    api = rec(ok, V1, "prod-cluster", "production", "api")
    chart = rec(ok, V2, "prod-cluster", "production", "api", kind="HELM_CHART")
    staged = rec(ok, V2, "stage-cluster", "staging", "api")
    rec(ok, V1, "stage-cluster", "staging", "gone")
    rec(ok, V1, "stage-cluster", "staging", "gone", status="decommissioned")
    old = rec(ok, V1, "stage-cluster", "development", "api")
    new = rec(ok, V3, "stage-cluster", "development", "api")  # supersedes `old`
    body = as_json(ok("status", "-o", "json"))
    assert all(list(row) == STATUS_FIELDS for row in body)
    assert [(r["environment"], r["logical_environment"], r["deployment_name"], r["kind"])
            for r in body] == [
        ("prod-cluster", "production", "api", "CONTAINER_IMAGE"),
        ("prod-cluster", "production", "api", "HELM_CHART"),
        ("prod-cluster", "production", "web", "CONTAINER_IMAGE"),
        ("stage-cluster", "development", "api", "CONTAINER_IMAGE"),
        ("stage-cluster", "staging", "api", "CONTAINER_IMAGE"),
    ]  # fmt: skip
    by_digest = {(r["deployment_name"], r["kind"], r["logical_environment"]): r for r in body}
    for made in (web, api, chart, staged, new):
        row = by_digest[(made["deployment_name"], made["kind"], made["logical_environment"])]
        assert row["digest"] == made["digest"]
        assert row["deployed_at"] == made["created_at"]
        assert row["last_seen_at"] == made["last_seen_at"]
        assert row["stale"] is False
    assert old["digest"] not in [
        r["digest"] for r in body if r["logical_environment"] == "development"
    ]


def test_status_is_stale_when_the_last_heartbeat_is_older_than_the_threshold(
    ok: Invoke, clock: Clock
) -> None:
    rec(ok, V1, "prod-cluster", "production", "api")
    clock.advance(hours=1)
    rec(ok, V1, "prod-cluster", "production", "web")

    def stale(*args: str) -> dict[str, bool]:
        body = as_json(ok("status", *args, "-o", "json"))
        return {r["deployment_name"]: r["stale"] for r in body}

    clock.advance(hours=23)  # api last seen exactly 24 h ago: not more than the default
    assert stale() == {"api": False, "web": False}
    clock.advance(us=1)
    assert stale() == {"api": True, "web": False}
    assert stale("--stale-after", "23h") == {"api": True, "web": True}
    assert stale("--stale-after", "1d1s") == {"api": False, "web": False}
    assert stale("--stale-after", "1h30m") == {"api": True, "web": True}
    # A heartbeat makes it fresh again.
    rec(ok, V1, "prod-cluster", "production", "api")
    assert stale() == {"api": False, "web": False}
    assert stale("--stale-after", "0s") == {"api": False, "web": True}


def test_status_service_threshold_boundary(ok: Invoke, db_path: Path) -> None:
    made = rec(ok, V1, "prod-cluster", "production", "api")
    seen = timeutil.parse_time_span(made["last_seen_at"])[0]
    store = open_store(db_path)
    try:
        at_limit = lifecycle.status(store, stale_after=30 * 60_000_000, now=seen + 30 * 60_000_000)
        past = lifecycle.status(store, stale_after=30 * 60_000_000, now=seen + 30 * 60_000_000 + 1)
    finally:
        store.close()
    assert [r.stale for r in at_limit.rows] == [False]
    assert [r.stale for r in past.rows] == [True]


def test_status_table_groups_and_marks_stale(ok: Invoke, clock: Clock) -> None:
    rec(ok, V1, "prod-cluster", "production", "api")
    clock.advance(hours=30)
    rec(ok, V2, "stage-cluster", "staging", "api")
    out = ok("status").stdout
    prod, stage = out.index("prod-cluster / production"), out.index("stage-cluster / staging")
    assert prod < stage
    prod_part, stage_part = out[prod:stage], out[stage:]
    assert "STALE" in prod_part and "30h" not in prod_part  # ages read as days and hours
    assert "1d 6h ago" in prod_part
    assert "STALE" not in stage_part.split("\n\n")[0]
    assert "0s ago" in stage_part
    assert "2 active deployment(s), 1 stale (no heartbeat for more than 1d)." in out
    for header in ("NAME", "KIND", "DIGEST", "DEPLOYED AT", "LAST SEEN", "STATE"):
        assert header in out


def test_status_filters(ok: Invoke, run: Invoke, db_path: Path) -> None:
    rec(ok, V1, "prod-cluster", "production", "api")
    rec(ok, V2, "stage-cluster", "staging", "api")
    rec(ok, V3, "stage-cluster", "production", "api")

    def where(*args: str) -> list[tuple[str, str]]:
        body = as_json(ok("status", *args, "-o", "json"))
        return [(r["environment"], r["logical_environment"]) for r in body]

    assert where("--env", "stage-cluster") == [
        ("stage-cluster", "production"),
        ("stage-cluster", "staging"),
    ]
    assert where("--logical-env", "production") == [
        ("prod-cluster", "production"),
        ("stage-cluster", "production"),
    ]
    assert where("--env", "prod-cluster", "--logical-env", "staging") == []
    before = snapshot(db_path)
    assert_refused(run("status", "--env", "nowhere"), contains="'nowhere' does not exist")
    assert_refused(run("status", "--logical-env", "nowhen"), contains="'nowhen' does not exist")
    assert snapshot(db_path) == before


def test_status_exit_code_is_1_when_any_row_is_stale(
    ok: Invoke, run: Invoke, clock: Clock, db_path: Path
) -> None:
    """`status --exit-code` for cron and CI alerts, as `git diff --exit-code`."""
    assert run("status", "--exit-code").exit_code == 0  # nothing runs: nothing is stale
    rec(ok, V1, "prod-cluster", "production", "api")
    clock.advance(hours=2)
    rec(ok, V2, "stage-cluster", "staging", "api")
    before = snapshot(db_path)
    for output in ("table", "json"):
        plain = ok("status", "-o", output)
        fresh = run("status", "--exit-code", "-o", output)
        assert (fresh.exit_code, fresh.stdout, fresh.stderr) == (0, plain.stdout, plain.stderr)
        alert = run("status", "--exit-code", "--stale-after", "1h", "-o", output)
        same = ok("status", "--stale-after", "1h", "-o", output)
        assert (alert.exit_code, alert.stdout, alert.stderr) == (1, same.stdout, "")
        assert "STALE" in same.stdout or '"stale": true' in same.stdout
    # Only the rows shown count: the stale one filtered out is no alert.
    shown = run("status", "--exit-code", "--stale-after", "1h", "--env", "stage-cluster")
    assert shown.exit_code == 0
    # A refusal is still exit 1 with its Error line; a usage error exit 2.
    assert_refused(run("status", "--exit-code", "--env", "nowhere"), contains="'nowhere'")
    assert_refused(run("status", "--exit-code", "--stale-after", "soon"), code=2)
    assert snapshot(db_path) == before


def test_status_when_nothing_runs(ok: Invoke) -> None:
    result = ok("status")
    assert result.stdout == ""
    assert "No active deployments." in result.stderr
    assert as_json(ok("status", "-o", "json")) == []


@pytest.mark.parametrize("value", ["24", "1.5h", "-1h", "h", "1y", "soon", ""])
def test_status_refuses_bad_durations(run: Invoke, value: str) -> None:
    result = run("status", "--stale-after", value)
    assert_refused(result, code=2, contains="invalid duration")


# --- diff ------------------------------------------------------------------------------


@pytest.fixture
def estate(ok: Invoke) -> None:
    """staging (stage-cluster): api V2, web V1, worker V1; production (prod-cluster): api V1,
    web V1, cron V3."""
    rec(ok, V2, "stage-cluster", "staging", "api")
    rec(ok, V1, "stage-cluster", "staging", "web")
    rec(ok, V1, "stage-cluster", "staging", "worker")
    rec(ok, V1, "prod-cluster", "production", "api")
    rec(ok, V1, "prod-cluster", "production", "web")
    rec(ok, V3, "prod-cluster", "production", "cron")


STAGING = ("--from-env", "stage-cluster", "--from-logical-env", "staging")
PRODUCTION = ("--to-env", "prod-cluster", "--to-logical-env", "production")


def diff(ok: Invoke, *args: str) -> list[dict[str, Any]]:
    return as_json(ok("deployment", "diff", *args, "-o", "json"))


def summary(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (r["deployment_name"], r["environment"], r["logical_environment"], r["from_digest"],
         r["to_digest"], r["change"])
        for r in rows
    ]  # fmt: skip


def test_diff_staging_to_production(ok: Invoke, estate: None) -> None:
    rows = diff(ok, *STAGING, *PRODUCTION)
    assert all(list(r) == DIFF_FIELDS for r in rows)
    assert {r["kind"] for r in rows} == {"CONTAINER_IMAGE"}
    both = ("stage-cluster->prod-cluster", "staging->production")
    assert summary(rows) == [
        ("api", *both, V2, V1, "changed"),
        ("cron", "prod-cluster", "production", None, V3, "added"),
        ("web", *both, V1, V1, "same"),
        ("worker", "stage-cluster", "staging", V1, None, "removed"),
    ]


def test_diff_production_to_staging_is_the_mirror(ok: Invoke, estate: None) -> None:
    rows = diff(ok, "--from-env", "prod-cluster", "--from-logical-env", "production",
                "--to-env", "stage-cluster", "--to-logical-env", "staging")  # fmt: skip
    both = ("prod-cluster->stage-cluster", "production->staging")
    assert summary(rows) == [
        ("api", *both, V1, V2, "changed"),
        ("cron", "prod-cluster", "production", V3, None, "removed"),
        ("web", *both, V1, V1, "same"),
        ("worker", "stage-cluster", "staging", None, V1, "added"),
    ]


def test_diff_table(ok: Invoke, estate: None) -> None:
    out = ok("deployment", "diff", *STAGING, *PRODUCTION).stdout
    assert out.splitlines()[0] == "From stage-cluster/staging now to prod-cluster/production now:"
    # Both sides fix environment and stage (the first line): those columns are -o wide's.
    assert out.splitlines()[1].split() == ["NAME", "KIND", "FROM", "TO", "CHANGE"]
    wide = ok("deployment", "diff", *STAGING, *PRODUCTION, "-o", "wide").stdout
    for header in ("NAME", "KIND", "ENVIRONMENT", "LOGICAL ENV", "FROM", "TO", "CHANGE"):
        assert header in wide
    assert "stage-cluster->prod-cluster" in wide and "staging->production" in wide
    api = next(line for line in out.splitlines() if line.startswith("api "))
    assert V2[:19] in api and V1[:19] in api and api.endswith("changed")
    cron = next(line for line in out.splitlines() if line.startswith("cron "))
    assert " - " in cron and cron.endswith("added")


def test_diff_exit_code(run: Invoke, ok: Invoke, estate: None) -> None:
    assert run("deployment", "diff", *STAGING, *PRODUCTION, "--exit-code").exit_code == 1
    assert run("deployment", "diff", *STAGING, *PRODUCTION).exit_code == 0  # only when asked
    same = run("deployment", "diff", "--from-env", "prod-cluster", "--exit-code")
    assert same.exit_code == 0, same.stderr
    assert {r["change"] for r in diff(ok, "--from-env", "prod-cluster")} == {"same"}
    # Only `web` in both: the same digest, nothing differs.
    web = run("deployment", "diff", *STAGING, *PRODUCTION, "--exit-code", "-o", "json")
    assert web.exit_code == 1
    assert json.loads(web.stdout)  # the rows are still printed


def test_diff_matches_on_environment_when_the_side_does_not_fix_one(
    ok: Invoke, estate: None
) -> None:
    """No --from-env: rows are matched per environment too, so staging in stage-cluster
    is compared with production in stage-cluster (where nothing runs)."""
    rows = diff(ok, "--from-logical-env", "staging", "--to-logical-env", "production")
    assert summary(rows) == [
        ("api", "prod-cluster", "production", None, V1, "added"),
        ("api", "stage-cluster", "staging", V2, None, "removed"),
        ("cron", "prod-cluster", "production", None, V3, "added"),
        ("web", "prod-cluster", "production", None, V1, "added"),
        ("web", "stage-cluster", "staging", V1, None, "removed"),
        ("worker", "stage-cluster", "staging", V1, None, "removed"),
    ]


def test_diff_matches_on_stage_when_the_side_does_not_fix_one(ok: Invoke, estate: None) -> None:
    rec(ok, V3, "prod-cluster", "staging", "api")
    rows = diff(ok, "--from-env", "stage-cluster", "--to-env", "prod-cluster")
    assert summary(rows) == [
        ("api", "prod-cluster", "production", None, V1, "added"),
        ("api", "stage-cluster->prod-cluster", "staging", V2, V3, "changed"),
        ("cron", "prod-cluster", "production", None, V3, "added"),
        ("web", "prod-cluster", "production", None, V1, "added"),
        ("web", "stage-cluster", "staging", V1, None, "removed"),
        ("worker", "stage-cluster", "staging", V1, None, "removed"),
    ]


def test_diff_in_time_and_omitted_to_places_take_the_from_values(ok: Invoke, clock: Clock) -> None:
    rec(ok, V1, "prod-cluster", "production", "api")
    rec(ok, V1, "prod-cluster", "production", "web")
    rec(ok, V1, "prod-cluster", "staging", "api")  # another stage: never in this diff
    clock.advance(hours=2)
    yesterday = timeutil.rfc3339(clock.now) or ""
    clock.advance(hours=1)
    rec(ok, V2, "prod-cluster", "production", "api")
    rec(ok, V1, "prod-cluster", "production", "web", status="decommissioned")
    rec(ok, V3, "prod-cluster", "production", "cron")
    where = ("--from-env", "prod-cluster", "--from-logical-env", "production")
    rows = diff(ok, *where, "--from-at", yesterday, "--to-at", "now")
    assert summary(rows) == [
        ("api", "prod-cluster", "production", V1, V2, "changed"),
        ("cron", "prod-cluster", "production", None, V3, "added"),
        ("web", "prod-cluster", "production", V1, None, "removed"),
    ]
    # --to-at omitted is now (it used to take --from-at, and everything was same).
    assert diff(ok, *where, "--from-at", yesterday) == rows
    # --from-at omitted is now too: --to-at alone compares now with then.
    back_then = diff(ok, *where, "--to-at", yesterday)
    assert [(r["deployment_name"], r["change"]) for r in back_then] == [
        ("api", "changed"),
        ("cron", "removed"),
        ("web", "added"),
    ]
    # Relative ages work on both sides; to the past is the mirror image.
    back = diff(ok, *where, "--from-at", "0s", "--to-at", "1h30m")
    assert [(r["deployment_name"], r["change"]) for r in back] == [
        ("api", "changed"),
        ("cron", "removed"),
        ("web", "added"),
    ]


def test_diff_refusals(run: Invoke, db_path: Path) -> None:
    before = snapshot(db_path)
    assert_refused(run("deployment", "diff", "--from-env", "nowhere"), contains="'nowhere'")
    assert_refused(
        run("deployment", "diff", "--from-env", "prod-cluster", "--to-logical-env", "nowhen"),
        contains="'nowhen' does not exist",
    )
    assert_refused(run("deployment", "diff", "--from-at", "tomorrow"), code=2)
    assert snapshot(db_path) == before


def test_diff_of_nothing(ok: Invoke) -> None:
    result = ok("deployment", "diff", "--exit-code")
    assert "No deployments on either side." in result.stderr
    assert diff(ok) == []


def test_diff_exit_code_through_the_installed_program(
    entry_point: str, db_path: Path, ok: Invoke, estate: None
) -> None:
    def program(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([entry_point, "--db", str(db_path), "deployment", "diff", *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    drift = program(*STAGING, *PRODUCTION, "--exit-code")
    assert drift.returncode == 1, drift.stderr
    assert drift.stderr == ""
    assert "changed" in drift.stdout
    steady = program("--from-env", "prod-cluster", "--from-logical-env", "production",
                     "--exit-code")  # fmt: skip
    assert steady.returncode == 0, steady.stderr
