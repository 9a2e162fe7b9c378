"""`deploytrack doctor`: each check finds the problem it is for.

The schema refuses every one of these problems, so each test first removes the guard a
damaged or hand-edited database would lack, with raw SQL on the file, then plants it.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from conftest import NGINX_FULL, NGINX_GIT, Invoke, Record, assert_refused, is_pg, query

from deploytrack.timeutil import rfc3339


def sql(db: Path | str, *statements: str) -> None:
    """A hand edit past the schema's guard. On SQLite the statements drop the triggers and
    turn the foreign keys off themselves; on PostgreSQL the edit runs as the server's
    superuser with session_replication_role = replica, which sets every trigger aside,
    foreign keys included, for this session (DROP TRIGGER and PRAGMA are SQLite's: skipped
    there). tests/test_postgres_store.py plants what only PostgreSQL's integrity check
    sees: a trigger dropped or disabled for good, a constraint not validated."""
    if is_pg(db):
        from deploytrack.store.postgres import psycopg_module

        with psycopg_module().connect(str(db), autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            for statement in statements:
                if not statement.startswith(("DROP TRIGGER", "PRAGMA")):
                    conn.execute(statement)
        return
    with closing(sqlite3.connect(db)) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.commit()


def report(run: Invoke) -> tuple[int, dict]:
    result = run("doctor", "-o", "json")
    return result.exit_code, json.loads(result.stdout)


def failing(data: dict) -> dict[str, list[str]]:
    """The failing checks but the event log's state check, which fails on every edit these
    tests make to the tables by hand (tests/test_log.py holds its messages)."""
    failed = {c["name"]: c["problems"] for c in data["checks"] if not c["ok"]}
    return {name: problems for name, problems in failed.items() if name != "log_state"}


@pytest.fixture
def history(seeded: None, record: Record) -> None:
    record(NGINX_FULL)
    record(NGINX_GIT)  # supersedes the first


def test_a_healthy_database(ok: Invoke, history: None) -> None:
    result = ok("doctor")
    assert "Healthy." in result.stdout
    data = json.loads(ok("doctor", "-o", "json").stdout)
    assert data["healthy"] is True
    assert {c["name"] for c in data["checks"]} >= {
        "integrity", "schema", "foreign_keys", "one_active_per_slot", "superseded_successors",
        "timeline", "digests_in_evidence", "blobs", "permissions",
    }  # fmt: skip


def test_two_active_records_in_one_slot(run: Invoke, db_path: Path, history: None) -> None:
    sql(
        db_path,
        "DROP INDEX deployment_one_active",
        "DROP TRIGGER deployment_immutable",
        "UPDATE deployment SET status = 'deployed', ended_at = NULL, superseded_by = NULL",
    )
    code, data = report(run)
    assert code == 1 and data["healthy"] is False
    # Both open: the older one no longer ends before the newer starts, either.
    assert list(failing(data)) == ["one_active_per_slot", "timeline"]
    assert failing(data)["one_active_per_slot"] == [
        "invariant: 2 deployed records for api (CONTAINER_IMAGE) in environment cluster, "
        "logical environment production: records 1, 2"
    ]


def test_superseded_record_without_a_successor(run: Invoke, db_path: Path, history: None) -> None:
    sql(
        db_path,
        "DROP TRIGGER deployment_immutable",
        "PRAGMA foreign_keys = OFF",
        "UPDATE deployment SET superseded_by = 99 WHERE status = 'superseded'",
    )
    code, data = report(run)
    assert code == 1
    problems = failing(data)
    assert problems["superseded_successors"] == [
        "invariant: superseded record 1 has no later successor in its slot (superseded_by 99): "
        "api (CONTAINER_IMAGE) in environment cluster, logical environment production"
    ]


def test_a_record_pointing_at_a_missing_stage(run: Invoke, db_path: Path, history: None) -> None:
    sql(
        db_path,
        "DROP TRIGGER deployment_immutable",
        "PRAGMA foreign_keys = OFF",
        "UPDATE deployment SET logical_environment_id = 99 WHERE id = 2",
    )
    code, data = report(run)
    assert code == 1
    assert failing(data)["foreign_keys"] == [
        "foreign key: deployment record 2 points at a missing logical_environment "
        "(logical_environment_id 99)"
    ]


def test_recorded_digest_without_evidence(run: Invoke, db_path: Path, history: None) -> None:
    sql(
        db_path,
        "DROP TRIGGER attestation_subject_no_delete",
        "DROP TRIGGER attestation_material_no_delete",
        f"DELETE FROM attestation_subject WHERE digest = '{NGINX_GIT}'",
        f"DELETE FROM attestation_material WHERE digest = '{NGINX_GIT}'",
    )
    code, data = report(run)
    assert code == 1
    assert failing(data)["digests_in_evidence"] == [
        f"invariant: recorded digest {NGINX_GIT} is in no stored attestation: record 2, "
        "api (CONTAINER_IMAGE) in environment cluster, logical environment production"
    ]


def test_a_blob_that_does_not_hash_to_its_digest(run: Invoke, db_path: Path, history: None) -> None:
    byte = "'\\x00'::bytea" if is_pg(db_path) else "X'00'"
    sql(
        db_path,
        "DROP TRIGGER blob_no_update",
        f"UPDATE blob SET content = {byte} WHERE digest = (SELECT min(digest) FROM blob)",
    )
    code, data = report(run)
    assert code == 1
    assert (
        "hashes to sha256:6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        in (failing(data)["blobs"][0])
    )


def test_a_migration_not_applied_is_reported_not_applied(
    run: Invoke, db_path: Path, history: None
) -> None:
    last = [query(db_path, "SELECT max(name) AS name FROM deploytrack_migration")[0]["name"]]
    sql(db_path, f"DELETE FROM deploytrack_migration WHERE name = '{last[0]}'")
    code, data = report(run)
    assert code == 1
    assert failing(data)["schema"] == [f"schema: migration {last[0]} is not applied"]
    code, _ = report(run)  # doctor changed nothing: still reported
    assert code == 1


@pytest.mark.sqlite_only(reason="the database file's mode; PostgreSQL's files are the server's")
def test_permissions_wider_than_0600(run: Invoke, ok: Invoke, db_path: Path, history: None) -> None:
    ok("environment", "list")
    db_path.chmod(0o644)
    code, data = report(run)
    assert code == 1
    problems = failing(data)["permissions"]
    # SQLite gives the -wal and -shm it creates the database file's mode: all are reported.
    assert problems[0] == f"permissions: database {db_path} is 0644; run chmod 600 {db_path}"
    for problem in problems[1:]:
        assert problem.startswith(f"permissions: database file {db_path}-")
        assert problem.endswith(" is 0644; run chmod 600 " + problem.split(" ")[3])


def test_secrets_key_permissions(
    run: Invoke, tmp_path: Path, history: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "secrets.key"
    key.write_text("not checked for content here\n")
    key.chmod(0o640)
    monkeypatch.setenv("DEPLOYTRACK_SECRETS_KEY_FILE", str(key))
    code, data = report(run)
    assert code == 1
    assert failing(data)["permissions"] == [
        f"permissions: secrets key {key} is 0640; run chmod 600 {key}"
    ]


@pytest.mark.sqlite_only(
    reason="a damaged page of the SQLite file; PostgreSQL's integrity check (triggers, "
    "constraints, indexes): tests/test_postgres_store.py"
)
def test_integrity_damage_is_reported(run: Invoke, db_path: Path, seeded: None) -> None:
    # Damage an index page's b-tree header: the tables stay readable, the index does not.
    with closing(sqlite3.connect(db_path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'attestation_subject_digest'"
        ).fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    with open(db_path, "r+b") as handle:
        handle.seek((page - 1) * size)
        handle.write(b"\xff" * 8)
    code, data = report(run)
    assert code == 1
    assert failing(data)["integrity"]


def test_problems_end_with_one_error_line(
    run: Invoke, db_path: Path, history: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "secrets.key"
    key.write_text("x\n")
    key.chmod(0o644)
    monkeypatch.setenv("DEPLOYTRACK_SECRETS_KEY_FILE", str(key))
    result = run("doctor")
    assert_refused(result, contains="doctor found 1 problem(s)")
    assert "FAIL  permissions" in result.stdout


@pytest.mark.sqlite_only(
    reason="a path with no file; a PostgreSQL database that does not exist is refused by "
    "every command alike (tests/test_postgres.py)"
)
def test_no_database_is_not_created(run: Invoke, db_path: Path) -> None:
    assert_refused(run("doctor"), contains="no database at")
    assert not db_path.exists()


# --- timeline: the records of a slot follow one another ----------------------------------

HOUR = 3_600_000_000
SLOT = "api (CONTAINER_IMAGE) in environment cluster, logical environment production"


def times(db: Path) -> dict[int, tuple[int, int | None]]:
    rows = query(db, "SELECT id, created_at, ended_at FROM deployment")
    return {r["id"]: (r["created_at"], r["ended_at"]) for r in rows}


def forge(db: Path, *updates: str) -> None:
    """A hand edit as a forger would make it: without the trigger that forbids it."""
    sql(db, "DROP TRIGGER deployment_immutable", *updates)


@pytest.fixture
def three(seeded: None, record: Record, ok: Invoke) -> None:
    """Records 1 -> 2 -> 3 of one slot, each superseding the one before."""
    record(NGINX_FULL)
    record(NGINX_GIT)
    record(NGINX_FULL)


def test_a_record_that_ends_after_the_next_one_started_is_an_overlap(
    run: Invoke, ok: Invoke, db_path: Path, seeded: None, record: Record
) -> None:
    record(NGINX_FULL)
    ok("deployment", "record", "--env", "cluster", "--logical-env", "production",
       "--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--digest", NGINX_FULL,
       "--status", "decommissioned")  # fmt: skip
    record(NGINX_GIT)
    # Decommissioned record 1 now ends an hour after record 2 started: both ran at once.
    start_2 = times(db_path)[2][0]
    forge(db_path, f"UPDATE deployment SET ended_at = {start_2 + HOUR} WHERE id = 1")
    code, data = report(run)
    assert code == 1 and data["healthy"] is False
    # No other check sees it: a decommissioned record names no successor.
    assert failing(data) == {
        "timeline": [
            f"timeline: records 1 and 2 of {SLOT} overlap: record 1 ends at "
            f"{rfc3339(start_2 + HOUR)}, after record 2 starts at {rfc3339(start_2)}"
        ]
    }
    result = run("doctor")
    assert_refused(result, contains="doctor found 2 problem(s)")  # timeline and log_state
    assert "FAIL  timeline" in result.stdout and "Healthy." not in result.stdout


def test_a_superseded_record_that_overlaps_its_successor(
    run: Invoke, db_path: Path, history: None
) -> None:
    start_2 = times(db_path)[2][0]
    forge(db_path, f"UPDATE deployment SET ended_at = {start_2 + HOUR} WHERE id = 1")
    code, data = report(run)
    assert code == 1
    assert failing(data)["timeline"] == [
        f"timeline: records 1 and 2 of {SLOT} overlap: record 1 ends at "
        f"{rfc3339(start_2 + HOUR)}, after record 2 starts at {rfc3339(start_2)}"
    ]


def test_a_superseded_record_must_end_where_its_successor_starts(
    run: Invoke, db_path: Path, history: None
) -> None:
    # A gap: record 1 ends an hour before record 2 starts (superseding leaves none).
    start_1, start_2 = times(db_path)[1][0], times(db_path)[2][0]
    forge(
        db_path,
        f"UPDATE deployment SET created_at = {start_1 - 2 * HOUR}, "
        f"last_seen_at = {start_1 - 2 * HOUR}, ended_at = {start_2 - HOUR} WHERE id = 1",
    )
    code, data = report(run)
    assert code == 1
    assert failing(data) == {
        "timeline": [
            f"timeline: superseded record 1 of {SLOT} ends at {rfc3339(start_2 - HOUR)}, "
            f"not where its successor, record 2, starts ({rfc3339(start_2)})"
        ]
    }


def test_only_the_last_record_of_a_slot_may_be_open(
    run: Invoke, db_path: Path, history: None
) -> None:
    # Record 2, still deployed, moved before record 1: an open record with a successor.
    start_1 = times(db_path)[1][0]
    forge(
        db_path,
        f"UPDATE deployment SET created_at = {start_1 - HOUR}, last_seen_at = {start_1 - HOUR}"
        " WHERE id = 2",
    )
    code, data = report(run)
    assert code == 1
    problems = failing(data)
    assert problems["timeline"] == [
        f"timeline: record 2 of {SLOT} is still deployed, but record 1 starts after it at "
        f"{rfc3339(start_1)}: only the last record of a slot may be open"
    ]


def test_a_superseded_record_must_name_the_record_that_follows_it(
    run: Invoke, db_path: Path, three: None
) -> None:
    # 1 -> 3 skips record 2, though 3 is later in the slot: only the timeline sees it.
    forge(db_path, "UPDATE deployment SET superseded_by = 3 WHERE id = 1")
    code, data = report(run)
    assert code == 1
    assert failing(data) == {
        "timeline": [
            f"timeline: superseded record 1 of {SLOT} names record 3 as its successor, but "
            "record 2 follows it"
        ]
    }


def test_slots_are_checked_apart(run: Invoke, ok: Invoke, record: Record, three: None) -> None:
    # The same name in another stage and another kind of record: separate timelines.
    record(NGINX_GIT, stage="staging")
    record(NGINX_FULL, stage="staging")
    record(NGINX_GIT, name="web")
    ok("deployment", "record", "--env", "cluster", "--logical-env", "production",
       "--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--digest", NGINX_FULL,
       "--status", "decommissioned")  # fmt: skip
    record(NGINX_GIT)
    code, data = report(run)
    assert code == 0, failing(data)


def test_problem_lines_name_environments_and_stages_not_ids(
    run: Invoke, db_path: Path, history: None
) -> None:
    forge(
        db_path,
        "DROP INDEX deployment_one_active",
        "UPDATE deployment SET status = 'deployed', ended_at = NULL, superseded_by = NULL",
    )
    code, data = report(run)
    assert code == 1
    lines = [line for problems in failing(data).values() for line in problems]
    assert lines and all(
        "environment cluster, logical environment production" in line for line in lines
    )
    assert not any("id " in line for line in lines), lines
