"""The store code that speaks each backend's own SQL, on PostgreSQL: `doctor`'s checks,
`audit export` / `audit import` across backends, a redaction's VACUUM, and the progress
totals. Each test runs the CLI on a real server (the `pg_empty` fixture's database,
migrated by `db migrate`); the problems doctor must find are planted with raw SQL as a
superuser, as a damaged or hand-edited database would have them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import NGINX_FULL, NGINX_GIT, ROUND_TRIP_QUESTIONS, assert_refused, attestation
from helpers import record_args

from deploytrack.cli import cli


def dt(db: str | Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args], input=input)


def ok_on(db: str | Path, *args: str, input: str | None = None) -> Result:
    result = dt(db, *args, input=input)
    assert result.exit_code == 0, (args, result.output, result.stderr)
    return result


def connect(url: str) -> Any:
    from deploytrack.store.postgres import psycopg_module

    return psycopg_module().connect(url, autocommit=True)


def sql(url: str, *statements: str) -> None:
    """Raw SQL as the server's superuser, with the triggers (foreign keys included) off:
    what a hand edit that goes around the schema does."""
    with connect(url) as conn:
        conn.execute("SET session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)


def pg_snapshot(url: str) -> list[Any]:
    """Every row of every table, and every trigger's state: a refused command changes
    neither."""
    with connect(url) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
            )
        ]
        rows = [(n, conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall()) for n in names]
        triggers = conn.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
        ).fetchall()
    return [rows, triggers]


@pytest.fixture
def pg(pg_empty: str) -> str:
    """A migrated, empty PostgreSQL database."""
    ok_on(pg_empty, "db", "migrate")
    return pg_empty


def seed(db: str | Path) -> None:
    """`seeded` and two records in one slot (the second supersedes the first)."""
    ok_on(
        db,
        "attestation",
        "import",
        str(attestation("chainloop-full.json")),
        str(attestation("chainloop-with-git-subject.json")),
    )
    ok_on(db, "environment", "create", "--name", "cluster", "--type", "kubernetes")
    ok_on(db, *record_args("cluster", "production", "api"), "--digest", NGINX_FULL)
    ok_on(db, *record_args("cluster", "production", "api"), "--digest", NGINX_GIT)


def report(db: str | Path) -> tuple[int, dict[str, Any]]:
    result = dt(db, "doctor", "-o", "json")
    return result.exit_code, json.loads(result.stdout)


def failing(data: dict[str, Any]) -> dict[str, list[str]]:
    """The failing checks but log_state (every hand edit fails it: tests/test_log.py)."""
    failed = {c["name"]: c["problems"] for c in data["checks"] if not c["ok"]}
    return {name: problems for name, problems in failed.items() if name != "log_state"}


# -- doctor ---------------------------------------------------------------------------------


def test_doctor_names_the_backend_and_runs_every_check(pg: str) -> None:
    seed(pg)
    code, data = report(pg)
    assert code == 0 and data["healthy"] is True, data
    with connect(pg) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    assert (data["database"], data["backend"], data["backend_version"], data["tls"]) == (
        pg,
        "postgresql",
        version,
        False,
    )
    names = [c["name"] for c in data["checks"]]
    assert names == [
        "integrity", "schema", "foreign_keys", "one_active_per_slot", "superseded_successors",
        "timeline", "digests_in_evidence", "blobs", "log_tree", "log_state", "tls",
        "permissions",
    ]  # fmt: skip
    text = ok_on(pg, "doctor").stdout
    assert f"Database: {pg}\nBackend: PostgreSQL {version}\n" in text
    assert "ok    tls: the connection is not encrypted, but local (127.0.0.1)" in text


def test_doctor_on_a_database_db_migrate_has_not_set_up(pg_empty: str) -> None:
    """Changes nothing, and says what to run; the triggers of a schema not there yet are
    the schema check's to report, not listed one by one."""
    code, data = report(pg_empty)
    assert code == 1
    problems = failing(data)
    assert problems["schema"] == [
        "schema: no migration table: run 'deploytrack --db URL db migrate' to set the database up"
    ]
    assert problems["log_tree"] == [
        "the database has no event log yet: run 'deploytrack --db URL db migrate' to set it up"
    ]
    assert "integrity" not in problems
    with connect(pg_empty) as conn:
        assert (
            conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
            == 0
        )


def test_doctor_on_sqlite_names_its_library_version(tmp_path: Path) -> None:
    db = tmp_path / "dt.db"
    ok_on(db, "environment", "list")
    code, data = report(db)
    assert code == 0
    assert (data["backend"], data["backend_version"], data["tls"]) == (
        "sqlite",
        sqlite3.sqlite_version,
        None,
    )
    assert "tls" not in [c["name"] for c in data["checks"]]
    assert f"Backend: SQLite {sqlite3.sqlite_version}\n" in ok_on(db, "doctor").stdout


def test_the_expected_triggers_are_those_db_migrate_makes(pg: str) -> None:
    """health.PG_TRIGGERS (and the capture's) is what a new database has: no more, no less."""
    from deploytrack.store import health, open_store

    store = open_store(pg)
    try:
        expected = health.pg_expected_triggers(store.db)
    finally:
        store.close()
    with connect(pg) as conn:
        present = dict(
            conn.execute(
                "SELECT t.tgname, c.relname FROM pg_trigger AS t JOIN pg_class AS c"
                " ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
            ).fetchall()
        )
    assert present == expected


def test_a_disabled_or_dropped_trigger_and_an_unvalidated_constraint(pg: str) -> None:
    seed(pg)
    sql(
        pg,
        "ALTER TABLE deployment DISABLE TRIGGER deployment_immutable",
        "DROP TRIGGER blob_no_update ON blob",
        "ALTER TABLE deployment DROP CONSTRAINT deployment_digest_check",
        "ALTER TABLE deployment ADD CONSTRAINT deployment_digest_check"
        " CHECK (digest LIKE 'sha256:%') NOT VALID",
    )
    code, data = report(pg)
    assert code == 1
    assert failing(data) == {
        "integrity": [
            "integrity check: constraint deployment_digest_check of deployment is not "
            "validated, so rows may break it: run ALTER TABLE deployment VALIDATE "
            "CONSTRAINT deployment_digest_check",
            "integrity check: trigger blob_no_update on blob is missing, so the rule it "
            "enforces is not enforced: restore the database from a backup, or rebuild it "
            "with audit export and audit import",
            "integrity check: trigger deployment_immutable on deployment is disabled, so the "
            "rule it enforces is not enforced: run ALTER TABLE deployment ENABLE TRIGGER "
            "deployment_immutable",
        ]
    }


def test_a_disabled_capture_trigger_and_an_invalid_index(pg: str) -> None:
    seed(pg)
    sql(
        pg,
        "ALTER TABLE environment DISABLE TRIGGER _dt_capture_environment_update",
        "UPDATE pg_index SET indisvalid = false"
        " WHERE indexrelid = 'deployment_one_active'::regclass",
    )
    assert failing(report(pg)[1])["integrity"] == [
        "integrity check: index deployment_one_active of deployment is not valid, so it "
        "enforces and finds nothing: run REINDEX INDEX deployment_one_active",
        "integrity check: trigger _dt_capture_environment_update on environment is disabled, "
        "so the rule it enforces is not enforced: run ALTER TABLE environment ENABLE TRIGGER "
        "_dt_capture_environment_update",
    ]


def test_tls_is_a_problem_only_off_the_host() -> None:
    from deploytrack.services.doctor import tls_check

    assert tls_check("db.example", True, "TLSv1.3").detail == (
        "the connection to db.example is TLSv1.3"
    )
    for local in ("127.0.0.1", "::1", "localhost", "/run/postgresql", ""):
        assert tls_check(local, False, None).ok, local
    remote = tls_check("db.example", False, None)
    assert not remote.ok
    assert remote.problems == (
        "tls: the connection to db.example is not encrypted: passwords and records cross the "
        "network in clear; add sslmode=verify-full and sslrootcert=FILE to the URL "
        "(docs/postgresql.md)",
    )


# -- audit export / import across backends ----------------------------------------------------


@pytest.fixture
def secrets_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "secrets.key"
    monkeypatch.setenv("DEPLOYTRACK_SECRETS_KEY_FILE", str(path))
    return path


def history(db: str | Path) -> None:
    """A little of everything: supersedes, a heartbeat, a decommission, a policy, plain,
    secret and redacted variables."""
    seed(db)
    ok_on(db, "environment", "create", "--name", "edge", "--type", "server")
    ok_on(db, "logical-environment", "create", "--name", "canary")
    ok_on(db, *record_args("cluster", "production", "api"), "--digest", NGINX_FULL)
    ok_on(db, *record_args("cluster", "production", "api"), "--digest", NGINX_FULL)
    ok_on(db, *record_args("edge", "canary", "web"), "--digest", NGINX_GIT)
    ok_on(db, *record_args("edge", "canary", "web"), "--digest", NGINX_GIT,
          "--status", "decommissioned")  # fmt: skip
    ok_on(db, "logical-environment", "policy", "set", "--name", "production",
          "--require-predicate", "https://slsa.dev/provenance/v1")  # fmt: skip
    ok_on(db, "variable", "set", "URL", "postgres://db/100%", "--logical-env", "production")
    ok_on(db, "variable", "set", "GONE", "redact me", "--logical-env", "production")
    ok_on(db, "variable", "set", "PASSWORD", "--secret", "--stdin", "--logical-env",
          "production", "--env", "cluster", input="s3cret-value\n")  # fmt: skip
    entries = json.loads(
        ok_on(db, "variable", "history", "--logical-env", "production", "-o", "json").stdout
    )
    gone = next(e["id"] for e in entries if e["name"] == "GONE")
    ok_on(db, "variable", "redact", "--id", str(gone))


def export(db: str | Path, path: Path) -> Path:
    ok_on(db, "audit", "export", "--output", str(path))
    return path


def same_answers(a: str | Path, b: str | Path) -> None:
    for question in ROUND_TRIP_QUESTIONS:
        assert ok_on(a, *question).stdout == ok_on(b, *question).stdout, question


def fresh_pg(pg_server: Any, name: str) -> Iterator[str]:
    with connect(pg_server.url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = pg_server.url_for(name)
        ok_on(url, "db", "migrate")
        yield url
    finally:
        with connect(pg_server.url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg2(pg_server: Any, pg_empty: str) -> Iterator[str]:
    """A second migrated PostgreSQL database."""
    yield from fresh_pg(pg_server, pg_empty.rsplit("/", 1)[1] + "_b")


def test_sqlite_to_postgresql_to_sqlite(
    tmp_path: Path, pg: str, secrets_key: Path, pg_server: Any
) -> None:
    source = tmp_path / "source.db"
    history(source)
    first = export(source, tmp_path / "1.tgz")
    imported = json.loads(ok_on(pg, "audit", "import", str(first), "-o", "json").stdout)
    assert imported["database"] == pg
    same_answers(source, pg)
    second = export(pg, tmp_path / "2.tgz")
    assert second.read_bytes() == first.read_bytes()
    back = tmp_path / "back.db"
    ok_on(back, "audit", "import", str(second))
    same_answers(source, back)
    assert export(back, tmp_path / "3.tgz").read_bytes() == first.read_bytes()
    # The copy on PostgreSQL is whole, its triggers back, and it goes on.
    assert report(pg)[1]["healthy"] is True
    ok_on(pg, *record_args("edge", "canary", "web"), "--digest", NGINX_FULL)
    ok_on(pg, "log", "verify")
    # A write bypassing deploytrack is refused again.
    with connect(pg) as conn, pytest.raises(Exception, match="stored evidence is never deleted"):
        conn.execute("DELETE FROM blob")


def test_postgresql_to_sqlite_to_postgresql(
    tmp_path: Path, pg: str, pg2: str, secrets_key: Path
) -> None:
    history(pg)
    first = export(pg, tmp_path / "1.tgz")
    middle = tmp_path / "middle.db"
    ok_on(middle, "audit", "import", str(first))
    same_answers(pg, middle)
    second = export(middle, tmp_path / "2.tgz")
    assert second.read_bytes() == first.read_bytes()
    ok_on(pg2, "audit", "import", str(second))
    same_answers(pg, pg2)
    assert export(pg2, tmp_path / "3.tgz").read_bytes() == first.read_bytes()
    roots = {json.loads(ok_on(db, "log", "verify", "-o", "json").stdout)["root"]
             for db in (pg, middle, pg2)}  # fmt: skip
    assert len(roots) == 1


def test_import_refuses_a_database_that_holds_anything(
    tmp_path: Path, pg: str, secrets_key: Path
) -> None:
    source = tmp_path / "source.db"
    history(source)
    bundle = export(source, tmp_path / "b.tgz")
    ok_on(pg, "environment", "create", "--name", "mine", "--type", "server")
    before = pg_snapshot(pg)
    assert_refused(dt(pg, "audit", "import", str(bundle)), 1, "is not empty")
    assert pg_snapshot(pg) == before


def test_import_refuses_a_database_without_the_schema(
    tmp_path: Path, pg_empty: str, secrets_key: Path
) -> None:
    source = tmp_path / "source.db"
    seed(source)
    bundle = export(source, tmp_path / "b.tgz")
    assert_refused(dt(pg_empty, "audit", "import", str(bundle)), 1, "db migrate")


def test_import_refuses_rows_that_name_rows_the_bundle_does_not_hold(
    tmp_path: Path, pg: str, secrets_key: Path
) -> None:
    """PostgreSQL enforces the references while loading: the refusal is SQLite's line, the
    database is as it was (its triggers enabled), and the good bundle loads after."""
    from test_audit import members, rehashed, write

    source = tmp_path / "source.db"
    history(source)
    bundle = export(source, tmp_path / "b.tgz")
    items = dict(members(bundle))
    lines = items["events.jsonl"].split(b"\n")
    at = next(i for i, line in enumerate(lines) if b'"type":"deployment.recorded"' in line)
    lines[at] = lines[at].replace(b'"environment_id":1', b'"environment_id":99')
    items["events.jsonl"] = b"\n".join(lines)
    bad = write(tmp_path / "dangling.tgz", rehashed(items))
    before = pg_snapshot(pg)
    result = dt(pg, "audit", "import", str(bad))
    assert_refused(result, 1, "row 1 names a row of environment that it does not hold")
    assert pg_snapshot(pg) == before
    ok_on(pg, "audit", "import", str(bundle))
    ok_on(pg, "log", "verify")


def test_import_refuses_a_successor_the_bundle_does_not_hold(
    tmp_path: Path, pg: str, secrets_key: Path
) -> None:
    """superseded_by is checked at the commit (a deferred key): found before it."""
    from test_audit import members, rehashed, write

    source = tmp_path / "source.db"
    seed(source)
    bundle = export(source, tmp_path / "b.tgz")
    items = dict(members(bundle))
    assert b'"superseded_by":2' in items["events.jsonl"]
    items["events.jsonl"] = items["events.jsonl"].replace(
        b'"superseded_by":2', b'"superseded_by":7'
    )
    bad = write(tmp_path / "successor.tgz", rehashed(items))
    before = pg_snapshot(pg)
    result = dt(pg, "audit", "import", str(bad))
    assert_refused(result, 1, "the bundle's deployment row 1 names a row of deployment")
    assert pg_snapshot(pg) == before


def test_progress_totals_on_postgresql(tmp_path: Path, pg: str, secrets_key: Path) -> None:
    from deploytrack.services import audit, log
    from deploytrack.store import bundle, open_store

    history(pg)
    bundle_file = export(pg, tmp_path / "b.tgz")
    verified = ok_on(pg, "audit", "verify", str(bundle_file), "-o", "json")
    counts = json.loads(verified.stdout)["counts"]
    store = open_store(pg)
    try:
        assert audit.export_units(store) == counts["events"] + counts["blobs"] + counts["values"]
        with store.read():
            rows, _, _ = bundle.counts(store.db)
        assert {k: v for k, v in rows.items() if v} == counts["rows"]
        assert log.verify_units(store) == 2 * counts["events"] + sum(counts["rows"].values())
    finally:
        store.close()
