"""Promote, rollback, lineage, and point-in-time queries (`deployment list --at`,
`--history --since/--until`), with the schema rules and query plans behind them."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import CHECK_FAILED, INTEGRITY_ERRORS, Invoke, assert_refused, query, raw, snapshot
from helpers import as_json, intoto_statement, slot_args

from deploytrack import timeutil
from deploytrack.store import open_store, queries

PREDICATE = "https://example.com/release/v1"
# Four releases of one service, attested by the statement written in `releases`.
V1, V2, V3, V4 = ("sha256:" + hashlib.sha256(f"release {n}".encode()).hexdigest() for n in "1234")
KIND = "CONTAINER_IMAGE"
LINEAGE_FIELDS = ["policy_id", "promoted_from", "rollback_of"]


def statement(path: Path, *digests: str, predicate: str = PREDICATE) -> Path:
    subjects = ((f"app-{i}", d) for i, d in enumerate(digests))
    path.write_text(json.dumps(intoto_statement(subjects, predicate, {"builder": "test"})))
    return path


@pytest.fixture(autouse=True)
def releases(ok: Invoke, tmp_path: Path) -> None:
    """V1..V4 attested; environments `stage-cluster` and `prod-cluster`."""
    ok("attestation", "import", str(statement(tmp_path / "releases.json", V1, V2, V3, V4)))
    ok("environment", "create", "--name", "stage-cluster")
    ok("environment", "create", "--name", "prod-cluster")


def rec(ok: Invoke, digest: str, env: str = "prod-cluster", stage: str = "production",
        name: str = "api", status: str = "deployed") -> dict[str, Any]:  # fmt: skip
    out = ok(*slot_args("record", env, stage, name, KIND), "--digest", digest,
             "--status", status, "-o", "json")  # fmt: skip
    return as_json(out)


def promote(run: Invoke, *extra: str, env: str = "stage-cluster") -> Any:
    return run(
        "deployment", "promote", "--env", env, "--deployment-name", "api", "--kind", KIND,
        "--from-logical-env", "staging", "--to-logical-env", "production", *extra,
    )  # fmt: skip


def rollback(run: Invoke, *extra: str, env: str = "prod-cluster", stage: str = "production") -> Any:
    return run(*slot_args("rollback", env, stage, "api", KIND), *extra)


def rows(db_path: Path) -> dict[int, dict[str, Any]]:
    return {r["id"]: r for r in query(db_path, "SELECT * FROM deployment ORDER BY id")}


def listed(ok: Invoke, *args: str) -> list[dict[str, Any]]:
    return as_json(ok("deployment", "list", *args, "-o", "json"))


def ids(ok: Invoke, *args: str) -> list[int]:
    return [d["id"] for d in listed(ok, *args)]


# --- promote ---------------------------------------------------------------------------


def test_promote_records_the_source_digest_with_promoted_from(
    ok: Invoke, run: Invoke, db_path: Path
) -> None:
    source = rec(ok, V1, env="stage-cluster", stage="staging")["deployment"]
    result = promote(ok, "--to-env", "prod-cluster", "-o", "json")
    body = as_json(result)
    assert list(body) == ["action", "deployment", "previous", "source"]
    assert body["action"] == "created"
    assert body["previous"] is None
    assert body["source"]["id"] == source["id"]
    made = body["deployment"]
    assert (made["environment"], made["logical_environment"]) == ("prod-cluster", "production")
    assert (made["deployment_name"], made["kind"], made["digest"]) == ("api", KIND, V1)
    assert (made["promoted_from"], made["rollback_of"]) == (source["id"], None)
    assert list(made)[-4:-1] == LINEAGE_FIELDS
    stored = rows(db_path)[made["id"]]
    assert (stored["promoted_from"], stored["rollback_of"]) == (source["id"], None)
    assert stored["artifact_ref"] == rows(db_path)[source["id"]]["artifact_ref"]
    # The source slot is untouched.
    assert rows(db_path)[source["id"]]["status"] == "deployed"
    described = as_json(ok("deployment", "describe", str(made["id"]), "-o", "json"))
    assert (described["promoted_from"], described["rollback_of"]) == (source["id"], None)
    table = ok("deployment", "describe", str(made["id"])).stdout
    assert f"Promoted from: {source['id']}" in table


def test_promote_table_output(ok: Invoke) -> None:
    source = rec(ok, V1, env="stage-cluster", stage="staging")["deployment"]
    out = promote(ok, "--to-env", "prod-cluster").stdout
    assert out.startswith(f"Promoted api ({KIND}) ")
    assert f"from stage-cluster/staging (deployment {source['id']}) to prod-cluster/production" in (
        out
    )


def test_promote_within_one_environment(ok: Invoke) -> None:
    """Without --to-env the target is the source environment."""
    rec(ok, V1, env="stage-cluster", stage="staging")
    made = as_json(promote(ok, "-o", "json"))["deployment"]
    assert (made["environment"], made["logical_environment"]) == ("stage-cluster", "production")


def test_promote_supersedes_the_target_and_copies_the_active_source(
    ok: Invoke, db_path: Path
) -> None:
    old_prod = rec(ok, V1)["deployment"]
    rec(ok, V1, env="stage-cluster", stage="staging")
    rec(ok, V2, env="stage-cluster", stage="staging")
    active = rec(ok, V3, env="stage-cluster", stage="staging")["deployment"]  # superseded twice
    body = as_json(promote(ok, "--to-env", "prod-cluster", "-o", "json"))
    assert body["action"] == "superseded"
    assert body["deployment"]["digest"] == V3
    assert body["deployment"]["promoted_from"] == active["id"]
    assert body["previous"]["id"] == old_prod["id"]
    stored = rows(db_path)
    assert stored[old_prod["id"]]["status"] == "superseded"
    assert stored[old_prod["id"]]["superseded_by"] == body["deployment"]["id"]


def test_promote_of_a_digest_the_target_runs_is_a_heartbeat(ok: Invoke, db_path: Path) -> None:
    target = rec(ok, V1)["deployment"]
    rec(ok, V1, env="stage-cluster", stage="staging")
    before = rows(db_path)
    result = promote(ok, "--to-env", "prod-cluster")
    assert "already runs" in result.stdout and "heartbeat" in result.stdout
    body = as_json(promote(ok, "--to-env", "prod-cluster", "-o", "json"))
    assert body["action"] == "heartbeat"
    assert body["deployment"]["id"] == target["id"]
    after = rows(db_path)
    assert list(after) == list(before)  # no new record
    assert after[target["id"]]["promoted_from"] is None  # lineage is set only on insert
    assert after[target["id"]]["last_seen_at"] > before[target["id"]]["last_seen_at"]


@pytest.mark.parametrize("history", ["never", "decommissioned"])
def test_promote_is_refused_without_an_active_source(
    ok: Invoke, run: Invoke, db_path: Path, history: str
) -> None:
    if history == "decommissioned":
        rec(ok, V1, env="stage-cluster", stage="staging")
        rec(ok, V1, env="stage-cluster", stage="staging", status="decommissioned")
    before = snapshot(db_path)
    result = promote(run, "--to-env", "prod-cluster")
    assert_refused(result, contains="nothing to promote")
    assert "has no active record" in result.stderr
    assert snapshot(db_path) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--to-env", "stage-cluster", "--to-logical-env", "staging"), "to itself"),
        (("--to-env", "nowhere", "--to-logical-env", "production"), "'nowhere' does not exist"),
        (("--to-env", "prod-cluster", "--to-logical-env", "nowhen"), "'nowhen' does not exist"),
    ],
)
def test_promote_refusals(refuse: Invoke, ok: Invoke, extra: tuple[str, ...], message: str) -> None:
    rec(ok, V1, env="stage-cluster", stage="staging")
    refuse(
        "deployment",
        "promote",
        "--env",
        "stage-cluster",
        "--deployment-name",
        "api",
        "--kind",
        KIND,
        "--from-logical-env",
        "staging",
        *extra,
        contains=message,
    )


def test_promote_is_refused_by_the_target_stage_policy(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path
) -> None:
    """Stage policies apply: promote goes through deployment record's gate."""
    rec(ok, V1, env="stage-cluster", stage="staging")
    ok("logical-environment", "policy", "set", "--name", "production",
       "--require-predicate", "https://example.com/security-review/v1")  # fmt: skip
    before = snapshot(db_path)
    assert_refused(promote(run, "--to-env", "prod-cluster"))
    assert snapshot(db_path) == before
    # Evidence of the required type makes the same promotion pass.
    review = statement(
        tmp_path / "review.json", V1, predicate="https://example.com/security-review/v1"
    )
    ok("attestation", "import", str(review))
    made = as_json(promote(ok, "--to-env", "prod-cluster", "-o", "json"))["deployment"]
    assert made["digest"] == V1
    assert made["policy_id"] is not None


# --- rollback --------------------------------------------------------------------------


def test_rollback_restores_the_previous_digest(ok: Invoke, db_path: Path) -> None:
    good = rec(ok, V1)["deployment"]
    bad = rec(ok, V2)["deployment"]
    body = as_json(rollback(ok, "-o", "json"))
    assert list(body) == ["action", "deployment", "previous", "restored"]
    assert body["action"] == "superseded"
    made = body["deployment"]
    assert (made["digest"], made["rollback_of"], made["promoted_from"]) == (V1, good["id"], None)
    assert made["id"] > bad["id"]
    assert body["previous"]["id"] == bad["id"]
    assert body["restored"]["id"] == good["id"]
    stored = rows(db_path)
    assert (stored[bad["id"]]["status"], stored[bad["id"]]["superseded_by"]) == (
        "superseded",
        made["id"],
    )
    assert stored[made["id"]]["rollback_of"] == good["id"]
    assert stored[made["id"]]["artifact_ref"] == stored[good["id"]]["artifact_ref"]
    assert [d["id"] for d in listed(ok)] == [made["id"]]
    table = ok("deployment", "describe", str(made["id"])).stdout
    assert f"Rollback of:   {good['id']}" in table


def test_rollback_table_output(ok: Invoke) -> None:
    good = rec(ok, V1)["deployment"]
    bad = rec(ok, V2)["deployment"]
    out = rollback(ok).stdout
    assert out.startswith(f"Rolled back api ({KIND}) in prod-cluster/production to ")
    assert f"(deployment {good['id']})" in out
    assert f"supersedes deployment {bad['id']}" in out


def test_rollback_skips_earlier_records_of_the_active_digest(ok: Invoke) -> None:
    """Superseded history: V1, V2, V1 (active): the newest earlier *other* digest is V2."""
    rec(ok, V1)
    second = rec(ok, V2)["deployment"]
    rec(ok, V1)
    made = as_json(rollback(ok, "-o", "json"))["deployment"]
    assert (made["digest"], made["rollback_of"]) == (V2, second["id"])


def test_rollback_through_decommissioned_history(ok: Invoke) -> None:
    """V1, V2 decommissioned, V2 again (active): V2 records are skipped, V1 comes back."""
    first = rec(ok, V1)["deployment"]
    rec(ok, V2)
    rec(ok, V2, status="decommissioned")
    rec(ok, V2)
    made = as_json(rollback(ok, "-o", "json"))["deployment"]
    assert (made["digest"], made["rollback_of"]) == (V1, first["id"])


def test_rollback_of_a_decommissioned_slot_restores_the_decommissioned_digest(
    ok: Invoke, db_path: Path
) -> None:
    rec(ok, V1)
    ended = rec(ok, V2)["deployment"]
    rec(ok, V2, status="decommissioned")
    body = as_json(rollback(ok, "-o", "json"))
    assert body["action"] == "created"
    assert body["previous"] is None
    made = body["deployment"]
    assert (made["digest"], made["rollback_of"], made["status"]) == (V2, ended["id"], "deployed")
    assert rows(db_path)[ended["id"]]["status"] == "decommissioned"


def test_a_second_rollback_undoes_the_first(ok: Invoke) -> None:
    """As `kubectl rollout undo`: the newest earlier other digest is the bad release."""
    rec(ok, V1)
    bad = rec(ok, V2)["deployment"]
    rollback(ok)
    made = as_json(rollback(ok, "-o", "json"))["deployment"]
    assert (made["digest"], made["rollback_of"]) == (V2, bad["id"])


def test_rollback_to_a_given_earlier_record(ok: Invoke) -> None:
    first = rec(ok, V1)["deployment"]
    rec(ok, V2)
    rec(ok, V3)
    made = as_json(rollback(ok, "--to", str(first["id"]), "-o", "json"))["deployment"]
    assert (made["digest"], made["rollback_of"]) == (V1, first["id"])


def test_rollback_to_a_record_of_a_decommissioned_slot(ok: Invoke) -> None:
    first = rec(ok, V1)["deployment"]
    rec(ok, V2)
    rec(ok, V2, status="decommissioned")
    made = as_json(rollback(ok, "--to", str(first["id"]), "-o", "json"))["deployment"]
    assert (made["digest"], made["rollback_of"]) == (V1, first["id"])


def test_rollback_refusals(ok: Invoke, run: Invoke, db_path: Path) -> None:
    other_slot = rec(ok, V1, env="stage-cluster", stage="staging")["deployment"]
    first = rec(ok, V1)["deployment"]
    rec(ok, V2)
    twin = rec(ok, V1)["deployment"]  # active, same digest as `first`
    before = snapshot(db_path)
    cases = [
        (("--to", str(other_slot["id"])), "belongs to another slot"),
        (("--to", str(twin["id"])), "is the active record"),
        (("--to", str(first["id"])), "already runs"),
        (("--to", "999"), "no deployment record 999"),
    ]
    for extra, message in cases:
        assert_refused(rollback(run, *extra), contains=message)
        assert snapshot(db_path) == before
    assert_refused(rollback(run, "--to", "0"), code=2)
    assert snapshot(db_path) == before


def test_rollback_with_nothing_to_roll_back_to(ok: Invoke, run: Invoke, db_path: Path) -> None:
    before = snapshot(db_path)
    assert_refused(rollback(run), contains="has no records")
    assert snapshot(db_path) == before
    rec(ok, V1)
    before = snapshot(db_path)
    assert_refused(rollback(run), contains="nothing to roll back to")
    assert snapshot(db_path) == before
    # Only the same digest in the history (through a decommissioning): still nothing.
    rec(ok, V1, status="decommissioned")
    rec(ok, V1)
    before = snapshot(db_path)
    result = rollback(run)
    assert_refused(result, contains="nothing to roll back to")
    assert snapshot(db_path) == before


def test_rollback_is_refused_by_the_stage_policy(ok: Invoke, run: Invoke, db_path: Path) -> None:
    rec(ok, V1)
    rec(ok, V2)
    ok("logical-environment", "policy", "set", "--name", "production",
       "--require-predicate", "https://example.com/security-review/v1")  # fmt: skip
    before = snapshot(db_path)
    assert_refused(rollback(run))
    assert snapshot(db_path) == before


def test_rollback_and_promote_through_the_installed_program(
    entry_point: str, tmp_path: Path
) -> None:
    db = tmp_path / "program.db"

    def program(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([entry_point, "--db", str(db), *args], capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    assert program("attestation", "import", str(tmp_path / "releases.json")).returncode == 0
    assert program("environment", "create", "--name", "k8s").returncode == 0
    for digest in (V1, V2):
        done = program("deployment", "record", "--env", "k8s", "--logical-env", "staging",
                       "--deployment-name", "web", "--kind", KIND, "--digest", digest)  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = program("deployment", "promote", "--env", "k8s", "--deployment-name", "web",
                   "--kind", KIND, "--from-logical-env", "staging", "--to-logical-env",
                   "production", "-o", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deployment"]["digest"] == V2
    done = program("deployment", "rollback", "--env", "k8s", "--logical-env", "staging",
                   "--deployment-name", "web", "--kind", KIND, "-o", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deployment"]["digest"] == V1
    refused = program("deployment", "rollback", "--env", "k8s", "--logical-env", "production",
                      "--deployment-name", "web", "--kind", KIND)  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: nothing to roll back to")
    assert len(refused.stderr.strip().splitlines()) == 1


# --- lineage in the schema -------------------------------------------------------------


def test_lineage_fields_end_the_deployment_json(ok: Invoke) -> None:
    rec(ok, V1, env="stage-cluster", stage="staging")
    promote(ok, "--to-env", "prod-cluster")
    for body in listed(ok, "--history"):
        assert list(body)[-4:-1] == LINEAGE_FIELDS


def test_lineage_is_immutable_even_on_an_active_record(ok: Invoke, db_path: Path) -> None:
    source = rec(ok, V1, env="stage-cluster", stage="staging")["deployment"]
    made = as_json(promote(ok, "--to-env", "prod-cluster", "-o", "json"))["deployment"]
    conn = raw(db_path)
    try:
        for sql in (
            f"UPDATE deployment SET promoted_from = NULL WHERE id = {made['id']}",
            f"UPDATE deployment SET rollback_of = {source['id']} WHERE id = {made['id']}",
        ):
            with pytest.raises(INTEGRITY_ERRORS, match="immutable history"):
                conn.execute(sql)
        # The other columns of an active record still heartbeat.
        conn.execute(
            f"UPDATE deployment SET last_seen_at = last_seen_at + 1 WHERE id = {made['id']}"
        )
        conn.rollback()
    finally:
        conn.close()


def test_lineage_must_point_at_the_same_artifact(ok: Invoke, db_path: Path) -> None:
    """The schema refuses a rollback_of in another slot or of another digest, and a
    promoted_from of another digest."""
    staged = rec(ok, V1, env="stage-cluster", stage="staging")["deployment"]
    prod = rec(ok, V2)["deployment"]
    row = rows(db_path)[prod["id"]]
    moment = row["created_at"] + 1
    conn = raw(db_path)

    def insert(column: str, digest: str, target: int) -> None:
        conn.execute(
            "INSERT INTO deployment (environment_id, logical_environment_id, deployment_name, "
            f"kind, digest, status, created_at, last_seen_at, ended_at, {column}) "
            "VALUES (?, ?, 'api', ?, ?, 'decommissioned', ?, ?, ?, ?)",
            (row["environment_id"], row["logical_environment_id"], KIND, digest, moment,
             moment, moment, target),
        )  # fmt: skip

    try:
        for column, digest, target in [
            ("rollback_of", V1, staged["id"]),  # a record of another slot
            ("rollback_of", V1, prod["id"]),  # same slot, another digest
            ("promoted_from", V3, staged["id"]),  # another digest
        ]:
            with pytest.raises(INTEGRITY_ERRORS, match="lineage"):
                insert(column, digest, target)
        insert("promoted_from", V1, staged["id"])  # the real thing is accepted
        with pytest.raises(INTEGRITY_ERRORS, match=CHECK_FAILED):
            # Lineage points back in time: a record cannot copy one with a larger id.
            conn.execute(
                "INSERT INTO deployment (id, environment_id, logical_environment_id, "
                "deployment_name, kind, digest, status, created_at, last_seen_at, ended_at, "
                "promoted_from) VALUES (0, ?, ?, 'api', ?, ?, 'decommissioned', ?, ?, ?, ?)",
                (row["environment_id"], row["logical_environment_id"], KIND, V1, moment,
                 moment, moment, staged["id"]),
            )  # fmt: skip
        conn.rollback()
    finally:
        conn.close()


# --- point in time ---------------------------------------------------------------------


def at(us: int) -> str:
    return timeutil.rfc3339(us) or ""


def test_at_exactly_at_a_record_start_and_end(ok: Invoke, db_path: Path) -> None:
    """Active at T: created at or before T, and not ended at or before T."""
    first = rec(ok, V1)["deployment"]
    second = rec(ok, V2)["deployment"]
    stored = rows(db_path)
    start, end = stored[first["id"]]["created_at"], stored[first["id"]]["ended_at"]
    assert end == stored[second["id"]]["created_at"]  # superseding: one ends as the next starts
    assert ids(ok, "--at", at(start - 1)) == []
    assert ids(ok, "--at", at(start)) == [first["id"]]
    assert ids(ok, "--at", at(end - 1)) == [first["id"]]
    assert ids(ok, "--at", at(end)) == [second["id"]]
    # Decommissioned: not active at its end instant, nor after.
    rec(ok, V2, status="decommissioned")
    ended = rows(db_path)[second["id"]]["ended_at"]
    assert ids(ok, "--at", at(ended - 1)) == [second["id"]]
    assert ids(ok, "--at", at(ended)) == []
    assert ids(ok, "--at", at(ended + 10**9)) == []


def test_at_shows_each_record_with_its_status_today(ok: Invoke) -> None:
    first = rec(ok, V1)["deployment"]
    rec(ok, V2)
    shown = listed(ok, "--at", first["created_at"])
    assert [(d["id"], d["status"], d["digest"]) for d in shown] == [(first["id"], "superseded", V1)]


def test_at_filters_and_many_slots(ok: Invoke, db_path: Path) -> None:
    a = rec(ok, V1, name="api")["deployment"]
    b = rec(ok, V2, name="web")["deployment"]
    c = rec(ok, V3, env="stage-cluster", stage="staging", name="api")["deployment"]
    moment = rows(db_path)[c["id"]]["created_at"]
    rec(ok, V4, name="api")  # after the moment
    assert ids(ok, "--at", at(moment)) == [c["id"], b["id"], a["id"]]  # newest first
    assert ids(ok, "--at", at(moment), "--env", "prod-cluster") == [b["id"], a["id"]]
    assert ids(ok, "--at", at(moment), "--logical-env", "staging") == [c["id"]]
    assert ids(ok, "--at", at(moment), "--deployment-name", "web") == [b["id"]]
    assert ids(ok, "--at", at(moment), "--digest", V1) == [a["id"]]
    assert ids(ok, "--at", at(moment), "--kind", "HELM_CHART") == []
    assert ids(ok, "--at", at(moment), "--limit", "2") == [c["id"], b["id"]]


def test_at_accepts_offsets_and_ages(ok: Invoke, clock: Any) -> None:
    first = rec(ok, V1)["deployment"]
    clock.advance(hours=3)
    second = rec(ok, V2)["deployment"]
    clock.advance(hours=2)
    assert ids(ok, "--at", "4h") == [first["id"]]  # four hours ago
    assert ids(ok, "--at", "1h30m") == [second["id"]]
    assert ids(ok, "--at", "now") == [second["id"]]
    assert ids(ok, "--at", "6h") == []
    # The same instants written with a zone offset.
    start = timeutil.from_us(timeutil.parse_time_span(first["created_at"])[0])
    paris = timezone(timedelta(hours=1))
    assert ids(ok, "--at", start.astimezone(paris).isoformat()) == [first["id"]]
    just_before = (start - timedelta(microseconds=1)).astimezone(paris).isoformat()
    assert "+01:00" in just_before
    assert ids(ok, "--at", just_before) == []


@pytest.mark.parametrize(
    "args",
    [
        ("--at", "yesterday"),
        ("--at", "2026-11-20T14:00:00"),  # no zone: refused, not guessed
        ("--at", "2026-11-20"),
        ("--at", "5"),
        ("--since", "2h", "--until", "soon"),
        ("--at", "1h", "--history"),
        ("--at", "1h", "--since", "2h"),
        ("--at", "1h", "--until", "2h"),
    ],
)
def test_time_options_usage_errors(run: Invoke, args: tuple[str, ...]) -> None:
    assert_refused(run("deployment", "list", *args), code=2)


def test_history_window_is_every_record_active_in_it(ok: Invoke, clock: Any) -> None:
    """--since S --until U: created at or before U and not ended at or before S."""
    t = {}
    made = {}
    for n, digest in enumerate((V1, V2, V3, V4), start=1):
        t[n] = clock.now
        made[n] = rec(ok, digest)["deployment"]["id"]
        clock.advance(hours=1)

    # Records: 1 [t1, t2), 2 [t2, t3), 3 [t3, t4), 4 [t4, -).
    def window(since: int | None, until: int | None) -> list[int]:
        args = ["--history"]
        if since is not None:
            args += ["--since", at(since)]
        if until is not None:
            args += ["--until", at(until)]
        return sorted(ids(ok, *args))

    assert window(t[2], t[3]) == [made[2], made[3]]  # 1 ended at t2; 3 started at t3
    assert window(t[2] + 1, t[3] - 1) == [made[2]]
    assert window(t[2] - 1, t[2] - 1) == [made[1]]
    assert window(t[1], None) == sorted(made.values())
    assert window(t[4], None) == [made[4]]
    assert window(None, t[1]) == [made[1]]
    assert window(None, t[1] - 1) == []
    assert window(None, None) == sorted(made.values())
    # A window of one instant is --at that instant.
    for n in (1, 2, 3, 4):
        for moment in (t[n] - 1, t[n], t[n] + 1):
            assert window(moment, moment) == sorted(ids(ok, "--at", at(moment)))
    # --since/--until imply --history; newest first; --limit applies.
    assert ids(ok, "--since", at(t[1])) == [made[4], made[3], made[2], made[1]]
    assert ids(ok, "--since", at(t[1]), "--limit", "2") == [made[4], made[3]]


def test_history_window_ending_before_it_starts_is_refused(refuse: Invoke, clock: Any) -> None:
    refuse("deployment", "list", "--since", "1h", "--until", "2h", contains="--since")


# --- time and duration parsing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T14:00:00Z", datetime(2026, 11, 20, 14, tzinfo=UTC)),
        ("2026-11-20t14:00:00z", datetime(2026, 11, 20, 14, tzinfo=UTC)),
        ("2026-11-20 16:00:00+02:00", datetime(2026, 11, 20, 14, tzinfo=UTC)),
        ("2026-11-20T14:00:00.000001Z", datetime(2026, 11, 20, 14, 0, 0, 1, tzinfo=UTC)),
        ("2026-11-20T09:00:00-05:00", datetime(2026, 11, 20, 14, tzinfo=UTC)),
    ],
)
def test_parse_time_rfc3339(text: str, expected: datetime) -> None:
    assert timeutil.parse_time_span(text)[0] == timeutil.to_us(expected)


@pytest.mark.parametrize(
    ("text", "ago_s"),
    [("90m", 5400), ("2h", 7200), ("3d", 259200), ("1h30m", 5400), ("45s", 45), ("1w", 604800),
     ("0s", 0), ("now", 0), ("NOW", 0)],
)  # fmt: skip
def test_parse_time_ages(text: str, ago_s: int) -> None:
    now = timeutil.to_us(datetime(2026, 11, 21, 12, tzinfo=UTC))
    assert timeutil.parse_time_span(text, now) == (now - ago_s * 1_000_000,) * 2


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2026-11-20T14:00:00", "2026-11-20", "2026-13-01T00:00:00Z",
     "2026-11-20T25:00:00Z", "-2h", "2 h", "1.5h", "h", "20261120T140000Z"],
)  # fmt: skip
def test_parse_time_refusals(text: str) -> None:
    with pytest.raises(ValueError, match="invalid time"):
        timeutil.parse_time_span(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("24h", 86400), ("7d", 604800), ("1h30m", 5400), ("90s", 90), ("2w", 1209600),
     ("1D", 86400), ("0s", 0)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: int) -> None:
    assert timeutil.parse_duration(text) == seconds * 1_000_000


@pytest.mark.parametrize("text", ["", "30", "m", "1.5h", "-1h", "1h 30m", "1y", "99999999999999d"])
def test_parse_duration_refusals(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        timeutil.parse_duration(text)


# --- query plans -----------------------------------------------------------------------


def plan(db_path: Path, condition: Any) -> str:
    store = open_store(db_path)
    try:
        with store.read():
            sql, params = queries.newest_first(queries.with_names().where(condition)).sql()
            cursor = store.db.execute_sql("EXPLAIN QUERY PLAN " + sql, params)
            return "\n".join(row[3] for row in cursor.fetchall())
    finally:
        store.close()


@pytest.mark.sqlite_only(reason="reads SQLite's query plans (EXPLAIN QUERY PLAN)")
def test_point_in_time_queries_are_index_driven(ok: Invoke, db_path: Path) -> None:
    """No plan reads the deployment table from end to end: history length must not matter."""
    rec(ok, V1)
    rec(ok, V2)
    flt = queries.SlotFilter
    cases = [
        (queries.active_now(flt()), "deployment_active_created"),
        (queries.active_now(flt(logical_environment_id=3)), "deployment_active_stage"),
        (queries.active_now(flt(environment_id=1)), "deployment_active_env"),
        (
            queries.active_now(flt(environment_id=1, logical_environment_id=3)),
            "deployment_active_env",
        ),
        (queries.active_at(10**15, flt()), "deployment_key_time"),
        (queries.active_at(10**15, flt(logical_environment_id=3)), "deployment_key_time"),
        (queries.started_between(10**15, 10**16, flt()), "deployment_created"),
    ]
    for condition, index in cases:
        shown = plan(db_path, condition)
        assert index in shown, shown
        for line in shown.splitlines():
            # The slot list may be scanned (one row per slot); the history never is.
            assert not (line.startswith("SCAN t1") and "INDEX" not in line), shown
            assert "SCAN x" not in line, shown


def test_listed_records_are_the_described_records(ok: Invoke, clock: Any) -> None:
    """`list` reads rows as dicts (fast path); `describe` through the models: same views."""
    rec(ok, V1, env="stage-cluster", stage="staging")
    promote(ok, "--to-env", "prod-cluster")
    rec(ok, V2)
    rollback(ok)
    rec(ok, V1, status="decommissioned")
    everything = listed(ok, "--history")
    assert len(everything) == 4  # the decommissioning ended the rollback's record
    for body in everything:
        described = as_json(ok("deployment", "describe", str(body["id"]), "-o", "json"))
        assert {k: described[k] for k in body} == body


def test_an_existing_database_gets_its_slots_on_upgrade(tmp_path: Path) -> None:
    """m003 on a database with history: the slots are backfilled, so --at sees old records."""
    from click.testing import CliRunner

    from deploytrack.cli import cli
    from deploytrack.store import migrations

    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    migrations.m001_core(_Raw(conn))
    content = b"{}"
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    for sql, params in [
        ("CREATE TABLE deploytrack_migration (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
         ()),
        ("INSERT INTO deploytrack_migration VALUES ('m001_core', 1)", ()),
        ("INSERT INTO blob VALUES (?, 2, ?, 1)", (digest, content)),
        ("INSERT INTO attestation (digest, format, statement_type, predicate_type, imported_at) "
         "VALUES (?, 'statement', 's', 'p', 1)", (digest,)),
        ("INSERT INTO attestation_subject (attestation_id, name, digest) VALUES (1, 'a', ?)",
         (V1,)),
        ("INSERT INTO environment (name, type, created_at, updated_at) "
         "VALUES ('legacy', 'custom', 1, 1)", ()),
        ("INSERT INTO deployment (environment_id, logical_environment_id, deployment_name, kind, "
         "digest, status, created_at, last_seen_at, ended_at) "
         "VALUES (1, 3, 'api', ?, ?, 'decommissioned', 1000, 1500, 2000)", (KIND, V1)),
    ]:  # fmt: skip
        conn.execute(sql, params)
    conn.commit()
    conn.close()

    def list_at(moment: int) -> list[dict[str, Any]]:
        result = CliRunner().invoke(
            cli, ["--db", str(old), "deployment", "list", "--at", at(moment), "-o", "json"]
        )
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    assert [(d["environment"], d["deployment_name"], d["status"]) for d in list_at(1000)] == [
        ("legacy", "api", "decommissioned")
    ]
    assert list_at(2000) == []
    assert query(old, "SELECT deployment_name FROM deployment_slot") == [{"deployment_name": "api"}]


class _Raw:
    """Just enough of peewee.Database for a migration function on a sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute_sql(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql, params)


def test_a_new_record_never_starts_before_the_previous_one_ended(
    ok: Invoke, db_path: Path, clock: Any
) -> None:
    """Records of a slot never overlap, even when the clock steps back after a
    decommissioning (what --at relies on)."""
    first = rec(ok, V1)["deployment"]
    clock.advance(hours=2)
    rec(ok, V1, status="decommissioned")
    ended = rows(db_path)[first["id"]]["ended_at"]
    clock.advance(hours=-1)  # the clock steps back an hour
    second = rec(ok, V2)["deployment"]
    assert rows(db_path)[second["id"]]["created_at"] == ended
    assert ids(ok, "--at", at(ended)) == [second["id"]]
    assert ids(ok, "--at", at(ended - 1)) == [first["id"]]
