"""The PostgreSQL backend itself: choosing it, `db migrate`, bad URLs and servers, logins,
and the SQLite path left as it was. (Every other test runs on both backends.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import SCRIPTS, assert_refused

from deploytrack.cli import cli
from deploytrack.store import migrations
from deploytrack.store.postgres import convert, mask


def invoke(db: str, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["--db", db, *args], env=env)


def tables(url: str) -> list[str]:
    from deploytrack.store.postgres import psycopg_module

    with psycopg_module().connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


# -- pure rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ?", "SELECT %s"),
        (
            "SELECT a FROM t WHERE a = ? AND b LIKE '%'",
            "SELECT a FROM t WHERE a = %s AND b LIKE '%%'",
        ),
        ("SELECT '?' || ?", "SELECT '?' || %s"),
        ('SELECT "odd?name" FROM t WHERE x = ?', 'SELECT "odd?name" FROM t WHERE x = %s'),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
        ("SELECT 100 % 7", "SELECT 100 %% 7"),
    ],
)
def test_placeholders_become_psycopgs(sql: str, expected: str) -> None:
    assert convert(sql) == expected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:s3cret@db:5432/dt", "postgresql://alice:***@db:5432/dt"),
        ("postgresql://alice@db/dt", "postgresql://alice@db/dt"),
        ("postgres://a:p%40ss@h/d?sslmode=require", "postgres://a:***@h/d?sslmode=require"),
        ("postgresql://h/d?user=a&password=s3cret", "postgresql://h/d?user=a&password=***"),
        ("postgresql://a:b:c@h/d", "postgresql://a:***@h/d"),
    ],
)
def test_a_url_shown_back_has_its_password_masked(url: str, shown: str) -> None:
    assert mask(url) == shown


# -- db migrate ---------------------------------------------------------------------------


def test_commands_refuse_a_database_without_the_schema_and_say_to_migrate(pg_empty: str) -> None:
    result = invoke(pg_empty, "environment", "list")
    assert_refused(result, contains="db migrate")
    assert tables(pg_empty) == []


def test_db_migrate_applies_every_step_once_then_is_up_to_date(pg_empty: str) -> None:
    first = invoke(pg_empty, "db", "migrate", "-o", "json")
    assert first.exit_code == 0, first.output + first.stderr
    done = json.loads(first.stdout)
    assert done["backend"] == "postgresql"
    assert done["applied"] == migrations.names()
    again = invoke(pg_empty, "db", "migrate")
    assert again.exit_code == 0
    assert "is up to date" in again.stdout
    listed = invoke(pg_empty, "logical-environment", "list", "-o", "json")
    names = [e["name"] for e in json.loads(listed.stdout)]
    assert names == ["development", "production", "staging"]


def test_commands_refuse_an_older_schema(pg_empty: str) -> None:
    assert invoke(pg_empty, "db", "migrate").exit_code == 0
    with pg_admin_for(pg_empty) as conn:
        conn.execute("DELETE FROM deploytrack_migration WHERE name = %s", (migrations.names()[-1],))
    result = invoke(pg_empty, "environment", "list")
    assert_refused(result, contains="older deploytrack schema (1 migration(s) to apply)")


def test_a_database_of_another_application_is_refused_and_left_alone(pg_empty: str) -> None:
    with pg_admin_for(pg_empty) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    for args in (("environment", "list"), ("db", "migrate")):
        result = invoke(pg_empty, *args)
        assert_refused(result, contains="another application")
    assert tables(pg_empty) == ["invoices"]


def test_a_database_migrated_by_a_newer_deploytrack_is_refused(pg_empty: str) -> None:
    assert invoke(pg_empty, "db", "migrate").exit_code == 0
    with pg_admin_for(pg_empty) as conn:
        conn.execute("INSERT INTO deploytrack_migration VALUES ('m999_future', 0)")
    for args in (("environment", "list"), ("db", "migrate")):
        assert_refused(invoke(pg_empty, *args), contains="newer deploytrack")


def test_db_migrate_on_sqlite_sets_up_a_file_and_then_is_up_to_date(tmp_path: Path) -> None:
    path = str(tmp_path / "d.db")
    first = invoke(path, "db", "migrate", "-o", "json")
    assert json.loads(first.stdout)["applied"] == migrations.names()
    assert "is up to date" in invoke(path, "db", "migrate").stdout


def test_eight_hosts_migrating_a_new_database_at_once_apply_each_step_once(
    pg_empty: str, entry_point: str
) -> None:
    procs = [
        subprocess.Popen(
            [entry_point, "--db", pg_empty, "db", "migrate", "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outcomes
    applied = [json.loads(out)["applied"] for out, _ in outcomes]
    assert sorted(applied, key=len) == [[]] * 7 + [migrations.names()]
    with pg_admin_for(pg_empty) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM deploytrack_migration").fetchall()]
        events = conn.execute("SELECT count(*) FROM log_event WHERE type = 'log.started'")
        assert events.fetchone()[0] == 1
    assert sorted(names) == sorted(migrations.names())


# -- URLs, servers and logins -------------------------------------------------------------


def pg_admin_for(url: str) -> Any:
    from deploytrack.store.postgres import psycopg_module

    return psycopg_module().connect(url, autocommit=True)


def test_a_url_that_does_not_parse_is_one_error_line() -> None:
    result = invoke("postgresql://[::1", "environment", "list")
    assert_refused(result, contains="is not a PostgreSQL URL")


def test_a_server_that_refuses_connections_is_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = invoke(f"postgresql://u:pw123secret@127.0.0.1:{port}/dt", "environment", "list")
    assert_refused(result, contains="cannot reach PostgreSQL at postgresql://u:***@127.0.0.1")
    assert "pw123secret" not in result.stderr


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def test_a_server_that_does_not_answer_is_given_up_on_after_the_connect_timeout(
    silent_server: int,
) -> None:
    url = f"postgresql://u@127.0.0.1:{silent_server}/dt?connect_timeout=1"
    started = time.monotonic()
    result = invoke(url, "environment", "list")
    assert time.monotonic() - started < 8
    assert_refused(result, contains="did not answer within the connect timeout")


def test_the_default_connect_timeout_is_ten_seconds() -> None:
    from deploytrack.store import postgres

    assert postgres.CONNECT_TIMEOUT_S == 10


@pytest.fixture(scope="module")
def password_server() -> Iterator[Any]:
    sys.path.insert(0, str(SCRIPTS))
    try:
        import pgtemp
    finally:
        sys.path.remove(str(SCRIPTS))
    server = pgtemp.start(password="right-horse-battery")
    try:
        with pg_admin_for(server.url.replace("@", ":right-horse-battery@")) as conn:
            conn.execute("CREATE DATABASE dt")
        yield server
    finally:
        server.stop()


def test_a_refused_login_says_where_to_put_the_password_and_never_shows_it(
    password_server: Any,
) -> None:
    url = password_server.url_for("dt")
    for env in ({"PGPASSWORD": "wrong-pass-123"}, {}):
        result = invoke(url, "environment", "list", env=env)
        assert_refused(result, contains="refused the login")
        assert "PGPASSWORD or ~/.pgpass" in result.stderr
        assert "wrong-pass-123" not in result.output + result.stderr
    wrong = url.replace("deploytrack@", "deploytrack:wrong-pass-456@")
    result = invoke(wrong, "environment", "list")
    assert_refused(result, contains="postgresql://deploytrack:***@127.0.0.1")
    assert "wrong-pass-456" not in result.output + result.stderr


def test_a_user_without_a_role_is_a_refused_login_not_an_unreachable_server(
    pg_empty: str,
) -> None:
    url = pg_empty.replace("deploytrack@", "nobody-here:s3cret-pw@")
    result = invoke(url, "environment", "list")
    assert_refused(result, contains="refused the login to postgresql://nobody-here:***@")
    assert "has no role on the server" in result.stderr
    assert "s3cret-pw" not in result.output + result.stderr


def test_pgpassword_pgpass_and_the_url_all_log_in(password_server: Any, tmp_path: Path) -> None:
    url = password_server.url_for("dt")
    with_password = url.replace("deploytrack@", "deploytrack:right-horse-battery@")
    migrated = invoke(with_password, "db", "migrate")
    assert migrated.exit_code == 0, migrated.stderr
    assert "right-horse-battery" not in migrated.output
    assert "deploytrack:***@" in migrated.stdout
    by_env = invoke(url, "environment", "list", env={"PGPASSWORD": "right-horse-battery"})
    assert by_env.exit_code == 0, by_env.stderr
    pgpass = Path(os.environ["HOME"]) / ".pgpass"
    pgpass.parent.mkdir(parents=True, exist_ok=True)
    pgpass.write_text(f"127.0.0.1:{password_server.port}:dt:deploytrack:right-horse-battery\n")
    pgpass.chmod(0o600)
    by_file = invoke(url, "environment", "list")
    assert by_file.exit_code == 0, by_file.stderr


# -- the SQLite path does not change ------------------------------------------------------


def test_an_sqlite_command_never_imports_psycopg_even_when_it_is_installed(
    entry_point: str, tmp_path: Path
) -> None:
    import importlib.util

    assert importlib.util.find_spec("psycopg") is not None  # the extra is installed here
    db = str(tmp_path / "d.db")
    for args in (("deployment", "list"), ("environment", "list")):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", entry_point, "--db", db, *args],
            capture_output=True,
            text=True,
            check=True,
        )
        imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
        assert "peewee" in imported
        # peewee's `import psycopg` is still tried (and fails at once, listed with a few
        # microseconds): none of psycopg's modules is loaded.
        loaded = {m for m in imported if m.startswith(("psycopg.", "psycopg_", "psycopg2."))}
        assert not loaded


def test_a_postgresql_command_in_a_process_that_imported_peewee_first(pg_empty: str) -> None:
    """peewee found no psycopg when it was imported (cli.main hides it): opening a URL
    afterwards still works."""
    code = (
        "import sys; sys.modules['psycopg'] = None; import peewee; del sys.modules['psycopg'];"
        "from deploytrack.services import database;"
        f"print(database.migrate({pg_empty!r}).applied[-1])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == migrations.names()[-1]


# -- a role that is not the owner ---------------------------------------------------------


def test_a_role_that_may_not_vacuum_is_warned_after_a_redaction_not_told_the_value_is_gone(
    pg_empty: str, pg_server: Any
) -> None:
    """The CI role of docs/postgresql.md (SELECT, INSERT, UPDATE) can redact, but the
    server skips its VACUUM with a mere WARNING: the old row version, value included,
    stays in the table, and the command must say so, as it does for an older reader."""
    mistake = "postgres://admin:Hunter2-mistake-7c1d@db/api"
    assert invoke(pg_empty, "db", "migrate").exit_code == 0
    set_ = invoke(pg_empty, "variable", "set", "URL", mistake, "--logical-env", "production")
    assert set_.exit_code == 0, set_.output
    role = f"ci_{os.getpid()}"
    with pg_admin_for(pg_server.url) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        with pg_admin_for(pg_empty) as conn:
            conn.execute(f'GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO "{role}"')
        as_ci = pg_empty.replace("deploytrack@", f"{role}@")
        result = invoke(as_ci, "variable", "redact", "--id", "1")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Redacted entry 1 (URL at production, set ")
        assert "gone" not in result.stdout
        assert result.stderr.startswith(f"Warning: {as_ci} keeps the old row version")
        # The warning is true: the value is still in the table's files.
        from test_variable_redaction import pg_files

        assert mistake.encode() in pg_files(pg_empty)
    finally:
        with pg_admin_for(pg_empty) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
        with pg_admin_for(pg_server.url) as admin:
            admin.execute(f'DROP ROLE "{role}"')


# -- deadlocks and serialization failures are retried ---------------------------------------


@pytest.mark.parametrize(
    "error", ["DeadlockDetected", "SerializationFailure"], ids=["40P01", "40001"]
)
def test_a_deadlock_or_serialization_failure_is_a_retry(error: str) -> None:
    from deploytrack.store import postgres

    psycopg = postgres.psycopg_module()
    found = postgres.translate(getattr(psycopg.errors, error)("conflict"), "postgresql://a:pw9@h/d")
    assert isinstance(found, postgres.Retry) and found.retryable
    assert "retry the command" in str(found) and "pw9" not in str(found)
    other = postgres.translate(psycopg.errors.UndefinedTable("no such table"), "postgresql://h/d")
    assert not getattr(other, "retryable", False)


def _flaky_cli(failures: int) -> tuple[Any, list[int]]:
    """A group of deploytrack's class with one command that is refused by a retryable
    conflict `failures` times, then succeeds."""
    import click

    from deploytrack.cli import DeploytrackGroup
    from deploytrack.store.postgres import Retry

    attempts: list[int] = []

    @click.group(cls=DeploytrackGroup)
    def group() -> None:
        pass

    @group.command("write")
    def write() -> None:
        attempts.append(1)
        if len(attempts) <= failures:
            raise Retry("database is busy: a concurrent transaction conflicted; retry")
        click.echo("written")

    return group, attempts


def test_the_cli_runs_a_command_again_after_a_retryable_conflict() -> None:
    group, attempts = _flaky_cli(failures=2)
    result = CliRunner().invoke(group, ["write"], standalone_mode=True)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "written\n" and result.stderr == ""
    assert len(attempts) == 3


def test_retries_are_bounded_and_end_in_one_error_line() -> None:
    from deploytrack.cli import RETRIES

    group, attempts = _flaky_cli(failures=100)
    result = CliRunner().invoke(group, ["write"])
    assert_refused(result, contains="retry")
    assert len(attempts) == RETRIES
