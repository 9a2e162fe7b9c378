"""The store: where the database lives, how it is opened, migrated and locked, and the
invariants its schema enforces on its own (proved with raw SQL, bypassing the code)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from click.testing import CliRunner
from conftest import (
    CHECK_FAILED,
    INTEGRITY_ERRORS,
    NGINX_FULL,
    NGINX_GIT,
    UNIQUE_FAILED,
    Invoke,
    Record,
    assert_refused,
    is_pg,
    query,
    snapshot,
)

from deploytrack.cli import cli
from deploytrack.services import deployments
from deploytrack.services.catalog import environments, logical_environments
from deploytrack.store import StoreError, open_store
from deploytrack.store.migrations import MIGRATION_TABLE, MIGRATIONS

MIGRATION_NAMES = [m.__name__ for m in MIGRATIONS]
DEFAULT_STAGES = {"development", "staging", "production"}

# Why a test runs on SQLite only (the sqlite_only marker of conftest.py).
FILE = "about the SQLite file itself (its mode, its content, what is beside it)"
WAL = "SQLite's write-ahead log"
LOCKING = "SQLite's locking: BEGIN IMMEDIATE and the busy timeout"
ON_OPEN = "SQLite migrates on open; PostgreSQL's db migrate is tested in test_postgres.py"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """With umask 0, every restrictive mode must come from the code itself."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def invoke_plain(*args: str, env: dict[str, str] | None = None) -> Any:
    """The CLI without the --db the `run` fixture adds."""
    return CliRunner().invoke(cli, list(args), env=env)


def python_proc(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def run_together(script: str, arg_lists: list[list[str]], start: Path) -> list[str]:
    """Start one process per argument list, release them at once, return their stdout."""
    procs = [python_proc(script, *args, str(start)) for args in arg_lists]
    # Give every process time to import and reach the start line before releasing them.
    deadline = time.monotonic() + 20
    ready = [Path(f"{start}.ready.{i}") for i in range(len(procs))]
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    start.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert err == "", err
        outputs.append(out)
    return outputs


# --- where the database lives ---------------------------------------------------------


def test_db_option_wins_over_environment_variable(tmp_path: Path) -> None:
    from_option = tmp_path / "option" / "a.db"
    from_env = tmp_path / "env" / "b.db"
    result = invoke_plain(
        "--db",
        str(from_option),
        "environment",
        "create",
        "--name",
        "x",
        env={"DEPLOYTRACK_DB": str(from_env)},
    )
    assert result.exit_code == 0, result.output
    assert from_option.is_file()
    assert not from_env.exists()
    assert [r["name"] for r in query(from_option, "SELECT name FROM environment")] == ["x"]


def test_environment_variable_used_without_option(tmp_path: Path) -> None:
    from_env = tmp_path / "env" / "b.db"
    result = invoke_plain(
        "environment", "create", "--name", "x", env={"DEPLOYTRACK_DB": str(from_env)}
    )
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in query(from_env, "SELECT name FROM environment")] == ["x"]
    assert not (Path(os.environ["XDG_DATA_HOME"]) / "deploytrack").exists()


def test_default_is_the_user_data_folder(tmp_path: Path) -> None:
    expected = Path(os.environ["XDG_DATA_HOME"]) / "deploytrack" / "deploytrack.db"
    assert expected == Path(platformdirs.user_data_dir("deploytrack")) / "deploytrack.db"
    assert str(expected).startswith(str(tmp_path))  # conftest isolates the data folder
    result = invoke_plain("environment", "create", "--name", "x")
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in query(expected, "SELECT name FROM environment")] == ["x"]


def test_db_option_belongs_before_the_subcommand(tmp_path: Path) -> None:
    result = invoke_plain("environment", "list", "--db", str(tmp_path / "x.db"))
    assert_refused(result, code=2, contains="--db")
    assert not (tmp_path / "x.db").exists()


def test_created_folders_are_0700_and_file_0600(tmp_path: Path, umask_zero: None) -> None:
    path = tmp_path / "a" / "b" / "c" / "deploytrack.db"
    result = invoke_plain("--db", str(path), "environment", "list")
    assert result.exit_code == 0, result.output
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert mode(folder) == 0o700, (folder, oct(mode(folder)))
    assert mode(path) == 0o600


def test_default_folder_is_private(umask_zero: None) -> None:
    result = invoke_plain("environment", "list")
    assert result.exit_code == 0, result.output
    folder = Path(os.environ["XDG_DATA_HOME"]) / "deploytrack"
    assert mode(folder) == 0o700
    assert mode(folder / "deploytrack.db") == 0o600


@pytest.mark.sqlite_only(reason=FILE)
def test_wal_and_shm_are_no_more_permissive_than_the_db(db_path: Path, umask_zero: None) -> None:
    store = open_store(db_path)
    try:
        environments.create(store, "cluster")  # a write: the -wal now holds content
        wal = Path(f"{db_path}-wal")
        shm = Path(f"{db_path}-shm")
        assert wal.exists() and wal.stat().st_size > 0
        assert shm.exists()
        for path in (db_path, wal, shm):
            assert mode(path) & 0o077 == 0, (path, oct(mode(path)))
    finally:
        store.close()


def test_a_folder_given_as_the_database_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "folder.db"
    folder.mkdir()
    result = invoke_plain("--db", str(folder), "environment", "list")
    assert_refused(result, contains="is not a file")
    assert list(folder.iterdir()) == []


# --- journal mode, busy timeout, write locking -----------------------------------------


@pytest.mark.sqlite_only(reason=WAL)
def test_new_database_uses_wal(ok: Invoke, db_path: Path) -> None:
    ok("environment", "list")
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.sqlite_only(reason=WAL)
def test_a_database_left_out_of_wal_is_switched_on_the_next_open(ok: Invoke, db_path: Path) -> None:
    # As if the process that created the schema died before switching the journal mode.
    ok("environment", "list")
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    ok("environment", "list")
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.sqlite_only(reason=LOCKING)
def test_busy_timeout_is_set(db_path: Path) -> None:
    store = open_store(db_path)
    try:
        timeout_ms = store.db.execute_sql("PRAGMA busy_timeout").fetchone()[0]
        assert timeout_ms >= 5000
    finally:
        store.close()


def _traced(db_path: Path) -> Any:
    store = open_store(db_path)
    statements: list[str] = []
    store.db.connection().set_trace_callback(statements.append)
    return store, statements


def _assert_one_immediate_transaction(statements: list[str]) -> None:
    """Every statement of the operation ran inside one BEGIN IMMEDIATE ... COMMIT."""
    assert statements, "no SQL was traced"
    assert statements[0] == "BEGIN IMMEDIATE", statements[:2]
    assert statements[-1] == "COMMIT", statements[-2:]
    inner = [s.split()[0].upper() for s in statements[1:-1]]
    assert not {"BEGIN", "COMMIT", "ROLLBACK", "END"} & set(inner), statements
    assert {"INSERT", "UPDATE", "DELETE"} & set(inner), statements


@pytest.mark.sqlite_only(reason=LOCKING)
def test_every_write_is_one_begin_immediate_transaction(ok: Invoke, db_path: Path) -> None:
    from conftest import attestation

    ok("attestation", "import", str(attestation("chainloop-full.json")))
    ok("attestation", "import", str(attestation("chainloop-with-git-subject.json")))
    store, statements = _traced(db_path)
    slot = deployments.Slot("cluster", "production", "api", "CONTAINER_IMAGE")
    try:
        operations = [
            lambda: environments.create(store, "cluster"),
            lambda: environments.update(store, "cluster", description="eu"),
            lambda: logical_environments.create(store, "canary"),
            lambda: logical_environments.update(store, "canary", description="1%"),
            lambda: logical_environments.delete(store, "canary"),
            lambda: deployments.record(store, slot, NGINX_FULL),  # created
            lambda: deployments.record(store, slot, NGINX_FULL),  # heartbeat
            lambda: deployments.record(store, slot, NGINX_GIT),  # superseded
            lambda: deployments.record(store, slot, NGINX_GIT, status="decommissioned"),
        ]
        for operation in operations:
            statements.clear()
            operation()
            _assert_one_immediate_transaction(statements)
    finally:
        store.close()


CONCURRENT_RECORD = """
import sys, time
from pathlib import Path
from deploytrack.services import deployments
from deploytrack.store import StoreError, open_store

db, worker, rounds, first, second, start = sys.argv[1:]
Path(f"{start}.ready.{worker}").touch()
while not Path(start).exists():
    time.sleep(0.001)
store = open_store(Path(db))
slot = deployments.Slot("cluster", "production", "api", "CONTAINER_IMAGE")
for i in range(int(rounds)):
    digest = first if (i + int(worker)) % 2 else second
    deployments.record(store, slot, digest)
store.close()
print("done")
"""


@pytest.mark.sqlite_only(reason=LOCKING)
def test_concurrent_read_then_write_never_hits_a_locked_database(
    seeded: None, db_path: Path, tmp_path: Path
) -> None:
    """Each record reads the active row, then writes: with a deferred transaction, a
    writer whose snapshot went stale fails at once with "database is locked"."""
    workers, rounds = 5, 12
    outputs = run_together(
        CONCURRENT_RECORD,
        [[str(db_path), str(w), str(rounds), NGINX_FULL, NGINX_GIT] for w in range(workers)],
        tmp_path / "start",
    )
    assert outputs == ["done\n"] * workers
    rows = query(db_path, "SELECT * FROM deployment ORDER BY id")
    assert [r["status"] for r in rows] == ["superseded"] * (len(rows) - 1) + ["deployed"]
    for before, after in itertools.pairwise(rows):
        # A same-digest record is a heartbeat, so the history alternates digests, and
        # each record points at the very next one.
        assert before["digest"] != after["digest"]
        assert before["superseded_by"] == after["id"]
        assert before["ended_at"] <= after["created_at"]


# --- migrations -------------------------------------------------------------------------


@pytest.mark.sqlite_only(reason=ON_OPEN)
def test_migrations_are_recorded_in_order_and_applied_once(db_path: Path) -> None:
    for _ in range(3):
        open_store(db_path).close()
    rows = query(db_path, f"SELECT name, applied_at FROM {MIGRATION_TABLE} ORDER BY rowid")
    assert [r["name"] for r in rows] == MIGRATION_NAMES
    assert all(isinstance(r["applied_at"], int) and r["applied_at"] > 0 for r in rows)
    stages = query(db_path, "SELECT name FROM logical_environment")
    assert sorted(r["name"] for r in stages) == sorted(DEFAULT_STAGES)


CONCURRENT_OPEN = """
import sys, time
from pathlib import Path
from deploytrack.store import StoreError, open_store

db, worker, start = sys.argv[1:]
Path(f"{start}.ready.{worker}").touch()
while not Path(start).exists():
    pass
open_store(Path(db)).close()
print("opened")
"""


@pytest.mark.parametrize("round_", range(2))
def test_processes_opening_a_new_database_together_migrate_it_once(
    tmp_path: Path, round_: int
) -> None:
    db = tmp_path / "fresh" / "deploytrack.db"
    workers = 6
    outputs = run_together(
        CONCURRENT_OPEN, [[str(db), str(w)] for w in range(workers)], tmp_path / "start"
    )
    assert outputs == ["opened\n"] * workers
    counts = query(db, f"SELECT name, count(*) AS n FROM {MIGRATION_TABLE} GROUP BY name")
    assert {r["name"]: r["n"] for r in counts} == dict.fromkeys(MIGRATION_NAMES, 1)
    stages = query(db, "SELECT name, is_default FROM logical_environment")
    assert sorted(r["name"] for r in stages) == sorted(DEFAULT_STAGES)
    assert all(r["is_default"] == 1 for r in stages)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def _assert_untouched(path: Path, digest: str, listing: set[str]) -> None:
    assert file_sha256(path) == digest
    wal = Path(f"{path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    sqlite_side_files = {f"{path.name}-wal", f"{path.name}-shm"}
    assert {p.name for p in path.parent.iterdir()} - sqlite_side_files == listing


@pytest.mark.sqlite_only(reason=FILE)
@pytest.mark.parametrize(
    "tamper",
    [
        # Same number of migrations as this version knows, but one it does not.
        f"UPDATE {MIGRATION_TABLE} SET name = name || '_reworked'",
        # One more migration than this version knows.
        f"INSERT INTO {MIGRATION_TABLE} (name, applied_at) VALUES ('m999_from_the_future', 1)",
    ],
    ids=["renamed", "appended"],
)
def test_database_of_a_newer_deploytrack_is_refused_untouched(
    run: Invoke, db_path: Path, tamper: str
) -> None:
    open_store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(tamper)
    conn.commit()
    conn.close()
    unknown = [
        r["name"]
        for r in query(db_path, f"SELECT name FROM {MIGRATION_TABLE}")
        if r["name"] not in MIGRATION_NAMES
    ]
    assert unknown
    digest = file_sha256(db_path)
    listing = {p.name for p in db_path.parent.iterdir()}

    for args in (("environment", "list"), ("environment", "create", "--name", "x")):
        result = run(*args)
        assert_refused(result, contains="newer deploytrack")
        assert unknown[0] in result.stderr
        _assert_untouched(db_path, digest, listing)


@pytest.mark.sqlite_only(reason=FILE)
def test_a_file_that_is_not_sqlite_is_refused_untouched(run: Invoke, db_path: Path) -> None:
    db_path.write_bytes(b"this is a shopping list, not a database\n" * 200)
    digest = file_sha256(db_path)
    listing = {p.name for p in db_path.parent.iterdir()}
    result = run("environment", "create", "--name", "x")
    assert_refused(result, contains="not an SQLite file")
    _assert_untouched(db_path, digest, listing)


@pytest.mark.sqlite_only(reason=FILE)
def test_an_sqlite_database_of_another_program_is_refused_untouched(
    run: Invoke, db_path: Path
) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE recipe (id INTEGER PRIMARY KEY, title TEXT)")
    conn.execute("INSERT INTO recipe (title) VALUES ('bread')")
    conn.commit()
    conn.close()
    digest = file_sha256(db_path)
    listing = {p.name for p in db_path.parent.iterdir()}
    result = run("environment", "create", "--name", "x")
    assert_refused(result, contains="another program")
    assert "recipe" in result.stderr
    _assert_untouched(db_path, digest, listing)
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()


@pytest.mark.sqlite_only(reason=FILE)
def test_an_empty_file_becomes_a_new_database(ok: Invoke, db_path: Path) -> None:
    db_path.touch()
    ok("environment", "create", "--name", "x")
    assert [r["name"] for r in query(db_path, f"SELECT name FROM {MIGRATION_TABLE}")] == (
        MIGRATION_NAMES
    )


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask: a file made with open() is 0644, readable by everyone."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.sqlite_only(reason=FILE)
def test_an_empty_0644_file_is_made_0600_with_its_wal_and_shm(
    db_path: Path, umask_022: None
) -> None:
    db_path.write_bytes(b"")  # as `touch` or a provisioning script would leave it
    assert mode(db_path) == 0o644
    store = open_store(db_path)
    try:
        environments.create(store, "cluster")  # a write: the -wal and -shm exist now
        wal, shm = Path(f"{db_path}-wal"), Path(f"{db_path}-shm")
        assert wal.stat().st_size > 0
        assert [mode(p) for p in (db_path, wal, shm)] == [0o600] * 3
    finally:
        store.close()


@pytest.mark.sqlite_only(reason=FILE)
def test_the_cli_adopts_an_empty_file_as_a_private_database(
    ok: Invoke, db_path: Path, umask_022: None
) -> None:
    db_path.write_bytes(b"")
    ok("environment", "create", "--name", "x")
    assert mode(db_path) == 0o600
    assert json.loads(ok("doctor", "-o", "json").stdout)["healthy"] is True


@pytest.mark.sqlite_only(reason=FILE)
def test_an_empty_read_only_file_stays_read_only(db_path: Path, umask_022: None) -> None:
    # Making it private must not make it writable: 0444 becomes 0400, never 0600.
    db_path.write_bytes(b"")
    db_path.chmod(0o444)
    with suppress(StoreError):  # refused as read-only, unless the tests run as root
        open_store(db_path).close()
    assert mode(db_path) & 0o222 == 0, oct(mode(db_path))


@pytest.mark.sqlite_only(reason=FILE)
def test_an_existing_database_keeps_the_mode_its_owner_gave_it(
    ok: Invoke, run: Invoke, db_path: Path, umask_022: None
) -> None:
    # Not ours to change: whoever set up a 0644 database chose it; doctor reports it.
    ok("environment", "create", "--name", "x")
    db_path.chmod(0o644)
    ok("environment", "create", "--name", "y")
    assert mode(db_path) == 0o644
    assert run("doctor").exit_code == 1


@pytest.mark.sqlite_only(reason=FILE)
def test_doctor_does_not_change_the_mode_of_an_empty_file(
    run: Invoke, db_path: Path, umask_022: None
) -> None:
    db_path.write_bytes(b"")
    assert run("doctor").exit_code == 1  # no migration table: not a deploytrack database
    assert mode(db_path) == 0o644 and db_path.stat().st_size == 0


@pytest.mark.sqlite_only(reason=FILE)
def test_an_empty_file_that_cannot_be_made_private_is_refused(
    run: Invoke, db_path: Path, umask_022: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone else's group-writable empty file: chmod fails (EPERM) for anyone but its
    # owner. Tests run as root, who may chmod anything, so the refusal is simulated.
    db_path.write_bytes(b"")
    db_path.chmod(0o664)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    assert_refused(run("environment", "create", "--name", "x"), contains="chmod 600")
    assert db_path.stat().st_size == 0 and mode(db_path) == 0o664


# --- invariants the schema enforces without the code ------------------------------------


class Raw:
    """A plain connection on the database (sqlite3, or psycopg on PostgreSQL): no deploytrack
    code involved. SQL is written once, with SQLite's `?` placeholders."""

    def __init__(self, target: Path | str) -> None:
        self.postgresql = is_pg(target)
        if self.postgresql:
            from deploytrack.store.postgres import psycopg_module

            self.conn: Any = psycopg_module().connect(str(target), autocommit=True)
        else:
            self.conn = sqlite3.connect(target, isolation_level=None)

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> Any:
        if self.postgresql:
            from deploytrack.store.postgres import convert

            return self.conn.execute(convert(sql), params)
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: tuple[object, ...] = ()) -> Any:
        return self.execute(sql, params).fetchone()[0]

    def row(self, sql: str) -> dict[str, Any]:
        cursor = self.execute(sql)
        values = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], values, strict=True))

    def attempt(self, sql: str, params: tuple[object, ...] = ()) -> None:
        """Run a statement in a transaction that is always rolled back."""
        if self.postgresql:
            with self.conn.transaction(force_rollback=True):
                self.execute(sql, params)
            return
        self.conn.execute("BEGIN")
        try:
            self.conn.execute(sql, params)
        finally:
            self.conn.execute("ROLLBACK")

    def insert_deployment(self, row: dict[str, object]) -> None:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.attempt(f"INSERT INTO deployment ({columns}) VALUES ({marks})", tuple(row.values()))

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def history(seeded: None, record: Record, ok: Invoke, db_path: Path) -> dict[str, int]:
    """One superseded, one deployed and one decommissioned record."""
    first = record(NGINX_FULL)["deployment"]["id"]
    second = record(NGINX_GIT)["deployment"]["id"]
    third = record(NGINX_FULL, name="web")["deployment"]["id"]
    record(NGINX_FULL, "--status", "decommissioned", name="web")
    return {"superseded": first, "deployed": second, "decommissioned": third}


@pytest.fixture
def raw(history: dict[str, int], db_path: Path) -> Iterator[Raw]:
    conn = Raw(db_path)
    yield conn
    conn.close()


def _base_row(raw: Raw) -> dict[str, object]:
    """A row every constraint accepts (a slot of its own, a digest the evidence names)."""
    return {
        "environment_id": raw.one("SELECT id FROM environment WHERE name = 'cluster'"),
        "logical_environment_id": raw.one(
            "SELECT id FROM logical_environment WHERE name = 'staging'"
        ),
        "deployment_name": "raw",
        "kind": "CONTAINER_IMAGE",
        "digest": NGINX_FULL,
        "artifact_ref": None,
        "status": "deployed",
        "created_at": 1000,
        "last_seen_at": 1000,
        "ended_at": None,
        "superseded_by": None,
    }


def test_history_fixture_has_the_expected_statuses(raw: Raw, history: dict[str, int]) -> None:
    for status, ident in history.items():
        assert raw.one("SELECT status FROM deployment WHERE id = ?", (ident,)) == status


def test_partial_unique_index_allows_one_deployed_record_per_slot(
    raw: Raw, history: dict[str, int]
) -> None:
    active = raw.row("SELECT * FROM deployment WHERE status = 'deployed'")
    twin = {k: v for k, v in active.items() if k != "id"}
    twin["digest"] = NGINX_FULL
    with pytest.raises(INTEGRITY_ERRORS, match=UNIQUE_FAILED):
        raw.insert_deployment(twin)
    # The index is partial: ended records of the same slot are allowed beside the active one.
    ended = {**twin, "status": "decommissioned", "ended_at": twin["created_at"]}
    raw.insert_deployment(ended)
    # ...and the same active record under another slot is allowed too.
    raw.insert_deployment({**twin, "deployment_name": "api-2"})
    raw.insert_deployment({**twin, "kind": "HELM_CHART"})


@pytest.mark.parametrize("status", ["deployed", "superseded", "decommissioned"])
def test_deployment_rows_cannot_be_deleted(raw: Raw, history: dict[str, int], status: str) -> None:
    with pytest.raises(INTEGRITY_ERRORS, match="never deleted"):
        raw.attempt("DELETE FROM deployment WHERE id = ?", (history[status],))
    with pytest.raises(INTEGRITY_ERRORS, match="never deleted"):
        raw.attempt("DELETE FROM deployment")


@pytest.mark.parametrize("status", ["superseded", "decommissioned"])
@pytest.mark.parametrize(
    "assignment",
    [
        "last_seen_at = last_seen_at + 1",
        "ended_at = ended_at + 1",
        "status = 'deployed', ended_at = NULL, superseded_by = NULL",
        "status = 'decommissioned', superseded_by = NULL",
        "deployment_name = 'renamed'",
    ],
)
def test_ended_rows_cannot_be_updated(
    raw: Raw, history: dict[str, int], status: str, assignment: str
) -> None:
    with pytest.raises(INTEGRITY_ERRORS, match="immutable history"):
        raw.attempt(f"UPDATE deployment SET {assignment} WHERE id = ?", (history[status],))


@pytest.mark.parametrize(
    "assignment",
    [
        "id = id + 100",
        "environment_id = (SELECT max(id) FROM environment)",
        "logical_environment_id = (SELECT id FROM logical_environment WHERE name = 'staging')",
        "deployment_name = 'renamed'",
        "kind = 'HELM_CHART'",
        f"digest = '{NGINX_FULL}'",
        "artifact_ref = 'docker.io/library/nginx:1'",
        "created_at = created_at - 1",
    ],
)
def test_immutable_columns_of_an_active_row_cannot_be_updated(
    raw: Raw, history: dict[str, int], assignment: str
) -> None:
    if assignment.startswith("environment_id"):
        raw.execute(
            "INSERT INTO environment (name, type, created_at, updated_at)"
            " VALUES ('other', 'custom', 1, 1)"
        )
    with pytest.raises(INTEGRITY_ERRORS, match="immutable history"):
        raw.attempt(f"UPDATE deployment SET {assignment} WHERE id = ?", (history["deployed"],))


@pytest.mark.parametrize(
    "assignment",
    [
        "last_seen_at = last_seen_at + 5",
        "status = 'decommissioned', ended_at = last_seen_at",
    ],
)
def test_an_active_row_may_heartbeat_or_end(
    raw: Raw, history: dict[str, int], assignment: str
) -> None:
    raw.attempt(f"UPDATE deployment SET {assignment} WHERE id = ?", (history["deployed"],))


def test_insert_of_a_digest_no_attestation_names_is_refused(raw: Raw) -> None:
    unknown = "sha256:" + hashlib.sha256(b"never attested").hexdigest()
    with pytest.raises(INTEGRITY_ERRORS, match="not in the evidence store"):
        raw.insert_deployment({**_base_row(raw), "digest": unknown})
    raw.insert_deployment({**_base_row(raw), "digest": NGINX_GIT})


ENDED = {"ended_at": 2000, "last_seen_at": 2000}
VALID_ROWS = {
    "deployed": {},
    "decommissioned": {"status": "decommissioned", **ENDED},
    "superseded": {"id": 50, "status": "superseded", "superseded_by": 51, **ENDED},
    "with artifact_ref": {"artifact_ref": "ghcr.io/acme/api:1.0"},
    "helm chart": {"kind": "HELM_CHART"},
}


@pytest.mark.parametrize("overrides", VALID_ROWS.values(), ids=VALID_ROWS.keys())
def test_valid_rows_pass_every_check(raw: Raw, overrides: dict[str, object]) -> None:
    raw.insert_deployment({**_base_row(raw), **overrides})


INVALID_ROWS = {
    "unknown status": {"status": "running"},
    "unknown kind": {"kind": "JAR"},
    "lowercase kind": {"kind": "container_image"},
    "empty deployment name": {"deployment_name": ""},
    "deployed with ended_at": {"ended_at": 2000, "last_seen_at": 2000},
    "decommissioned without ended_at": {"status": "decommissioned"},
    "superseded without superseded_by": {"status": "superseded", **ENDED},
    "deployed with superseded_by": {"id": 50, "superseded_by": 51},
    "decommissioned with superseded_by": {
        "id": 50,
        "status": "decommissioned",
        "superseded_by": 51,
        **ENDED,
    },
    "superseded by an older id": {"id": 50, "status": "superseded", "superseded_by": 49, **ENDED},
    "superseded by itself": {"id": 50, "status": "superseded", "superseded_by": 50, **ENDED},
    "last seen before created": {"last_seen_at": 999},
    "ended before created": {"status": "decommissioned", "ended_at": 999},
}


@pytest.mark.parametrize("overrides", INVALID_ROWS.values(), ids=INVALID_ROWS.keys())
def test_check_constraints_refuse_invalid_rows(raw: Raw, overrides: dict[str, object]) -> None:
    with pytest.raises(INTEGRITY_ERRORS, match=CHECK_FAILED):
        raw.insert_deployment({**_base_row(raw), **overrides})


def test_digest_check_refuses_a_non_sha256_digest_the_evidence_names(raw: Raw) -> None:
    # The git subject's sha1 passes the evidence trigger; only the CHECK can refuse it.
    sha1 = raw.one("SELECT digest FROM attestation_subject WHERE digest LIKE 'sha1:%' LIMIT 1")
    with pytest.raises(INTEGRITY_ERRORS, match=CHECK_FAILED):
        raw.insert_deployment({**_base_row(raw), "digest": sha1})


@pytest.mark.parametrize(
    ("table", "assignment"),
    [
        ("blob", "size = size + 1"),
        ("blob", "content = content || content"),
        ("attestation", "project = 'forged'"),
        # Re-point the evidence at an artifact nobody attested.
        ("attestation_subject", f"digest = 'sha256:{'f' * 64}'"),
        ("attestation_material", "name = 'forged'"),
    ],
)
def test_evidence_rows_cannot_be_updated(raw: Raw, table: str, assignment: str) -> None:
    assert raw.one(f"SELECT count(*) FROM {table}") > 0
    # The update would change every row: one that writes a value back as it was (a digest
    # for itself) would be refused by the trigger too, and prove nothing about forgery.
    column, _, value = assignment.partition(" = ")
    assert raw.one(f"SELECT count(*) FROM {table} WHERE {column} IS NOT DISTINCT FROM {value}") == 0
    with pytest.raises(INTEGRITY_ERRORS, match="never changes"):
        raw.attempt(f"UPDATE {table} SET {assignment}")


@pytest.mark.parametrize(
    "table", ["blob", "attestation", "attestation_subject", "attestation_material"]
)
def test_evidence_rows_cannot_be_deleted(raw: Raw, table: str) -> None:
    assert raw.one(f"SELECT count(*) FROM {table}") > 0
    with pytest.raises(INTEGRITY_ERRORS, match="never deleted"):
        raw.attempt(f"DELETE FROM {table}")


def test_raw_refusals_left_the_database_unchanged(
    raw: Raw, db_path: Path, history: dict[str, int]
) -> None:
    before = snapshot(db_path)
    for sql in (
        "DELETE FROM deployment",
        "UPDATE deployment SET created_at = created_at - 1",
        "DELETE FROM blob",
    ):
        with pytest.raises(INTEGRITY_ERRORS):
            raw.attempt(sql)
    assert snapshot(db_path) == before
