"""Shared test helpers: a fresh database per test, a CLI runner, and a database snapshot.

CLI tests go through click's CliRunner against a real SQLite file; a few run the
installed `deploytrack` entry point as a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import record_args

from deploytrack.cli import cli

pytest_plugins = ["pytester"]  # tests/test_backends.py checks this conftest's rules

FIXTURES = Path(__file__).parent / "fixtures"
ATTESTATIONS = FIXTURES / "attestations"
# The real files that must be refused (see fixtures/attestations/README.md).
MUST_REJECT = {
    "chainloop-invalid.json",
    "chainloop-attestation-dsse-invalidtype.json",
    "chainloop-attestation-invalid-intoto.json",
    "chainloop-attestation-invalid-payload.json",
}
# A container image digest that chainloop-full.json names as a CONTAINER_IMAGE material.
NGINX_FULL = "sha256:264f55a6ff9cec2f4742a9faacc033b29f65c04dd4480e71e23579d484288d61"
# ...and the one chainloop-with-git-subject.json names as subject and material.
NGINX_GIT = "sha256:fbd9335f55d83d8aaf9ab1a539b0f2a87b444e8c54f34c9a1ca9d7df15605db4"

Invoke = Callable[..., Result]


# What a database answers, asked of two databases that must agree (an audit bundle's source
# and the database imported from it, whatever their backends): the fixture history's rows,
# evidence, variables (the secret revealed), policy and log.
RESOLVE_API = ("variable", "resolve", "--logical-env", "production", "--env", "cluster",
               "--deployment-name", "api", "--reveal")  # fmt: skip
ROUND_TRIP_QUESTIONS = [
    ("deployment", "list", "--history", "-o", "json"),
    ("deployment", "describe", "3", "-o", "json"),
    ("attestation", "list", "-o", "json"),
    ("discover", NGINX_GIT, "-o", "json"),
    ("variable", "history", "--logical-env", "production", "-o", "json"),
    ("environment", "list", "-o", "json"),
    ("logical-environment", "list", "-o", "json"),
    ("logical-environment", "policy", "show", "--name", "production", "-o", "json"),
    ("log", "list", "-o", "json"),
    ("log", "verify", "-o", "json"),
    (*RESOLVE_API, "-o", "json"),
]


def attestation(name: str) -> Path:
    return ATTESTATIONS / name


def good_attestations() -> list[Path]:
    return sorted(p for p in ATTESTATIONS.glob("*.json") if p.name not in MUST_REJECT)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may touch the user's real database, docker config or data folders."""
    for name in list(os.environ):
        if name.startswith("DEPLOYTRACK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / "config"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)


BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    # A run stopped with SIGTERM (a CI timeout, `kill`) tears down like Ctrl-C: pytest then
    # runs the session's finalizers, which stop the throwaway PostgreSQL servers and remove
    # their folders. By default SIGTERM ends the process at once and leaves them running.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    # libpq reads PG* variables (PGSSLMODE, PGOPTIONS, PGSERVICE...) for every connection:
    # the developer's own would point the throwaway server's connections elsewhere.
    for name in [n for n in os.environ if n.startswith("PG")]:
        del os.environ[name]
    config.addinivalue_line(
        "markers",
        "sqlite_only(reason): the test is about SQLite itself (the file, its locking, "
        "completion's reads); it runs on SQLite only, and the reason is required",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the database (through `backend`: db_path, run, ok, refuse,
    record, seeded...) runs once on SQLite and once on PostgreSQL, unless it is marked
    `sqlite_only(reason=...)`."""
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("sqlite_only")
    backends: tuple[str, ...] = BACKENDS
    if marker is not None:
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
        if not isinstance(reason, str) or not reason.strip():
            raise pytest.UsageError(
                f"{metafunc.definition.nodeid}: sqlite_only needs a reason "
                "(why the test cannot run on PostgreSQL)"
            )
        backends = ("sqlite",)
    metafunc.parametrize("backend", backends, indirect=True, ids=list(backends))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which backend this variant of the test runs on: "sqlite" or "postgresql"."""
    return str(request.param)


@pytest.fixture
def db_path(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """The test's database: on SQLite a file path (not created yet); on PostgreSQL the URL
    (a str) of a database as `db migrate` leaves a new one (pg_migrated)."""
    if backend == "sqlite":
        return tmp_path / "deploytrack.db"
    return request.getfixturevalue("pg_migrated")


@pytest.fixture
def run(db_path: Path | str) -> Invoke:
    """Invoke the CLI with --db pointing at this test's database."""
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None, env: dict | None = None) -> Result:
        return runner.invoke(cli, ["--db", str(db_path), *args], input=input, env=env)

    return invoke


@pytest.fixture
def ok(run: Invoke) -> Invoke:
    """Like `run`, but the command must succeed."""

    def invoke(*args: str, **kwargs: object) -> Result:
        result = run(*args, **kwargs)
        assert result.exit_code == 0, (args, result.output, result.stderr, result.exception)
        return result

    return invoke


def is_pg(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def _pg_connect(url: str) -> Any:
    from deploytrack.store.postgres import psycopg_module

    return psycopg_module().connect(url, autocommit=True)


def snapshot(target: Path | str) -> list[str]:
    """Every row of every table (and the schema), to assert that a refused command changed
    nothing. On PostgreSQL: the tables, columns, indexes and triggers, then every row of
    every table in a total order."""
    if not is_pg(target):
        conn = sqlite3.connect(target)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()
    out: list[str] = []
    with _pg_connect(str(target)) as conn:
        schema = [
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = current_schema()"
            " ORDER BY 1, ordinal_position",
            "SELECT tablename, indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema() ORDER BY 1, 2",
            "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal ORDER BY 1, 2",
        ]
        for sql in schema:
            out.extend(repr(row) for row in conn.execute(sql))
        tables = [
            (str(r[0]), int(r[1]))
            for r in conn.execute(
                "SELECT c.relname, c.relnatts FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind = 'r' AND n.nspname = current_schema() ORDER BY 1"
            )
        ]
        for table, width in tables:
            order = ", ".join(str(i) for i in range(1, width + 1))
            rows = conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}')
            out.extend(f"{table}: {row!r}" for row in rows)
    return out


def assert_refused(result: Result, code: int = 1, contains: str = "") -> None:
    """A refusal: the exit code, and exactly one stderr line that starts with Error:."""
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert contains in lines[0], (contains, lines[0])


@pytest.fixture
def refuse(run: Invoke, db_path: Path | str) -> Invoke:
    """Like `run`, but the command must be refused (see assert_refused, whose `code` and
    `contains` it takes) and leave every row of the database as it was."""

    def invoke(*args: str, code: int = 1, contains: str = "", **kwargs: Any) -> Result:
        before = snapshot(db_path)
        result = run(*args, **kwargs)
        assert_refused(result, code, contains)
        assert snapshot(db_path) == before
        return result

    return invoke


@pytest.fixture
def entry_point() -> str:
    """The installed console script, for tests that run it as a real process."""
    path = Path(sys.executable).parent / "deploytrack"
    assert path.exists(), f"install the package first (make test does): {path}"
    return str(path)


def query(target: Path | str, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
    """Rows of a raw SQL query (SQLite's `?` placeholders) on either backend, as dicts."""
    if is_pg(target):
        from psycopg.rows import dict_row

        from deploytrack.store.postgres import convert

        with _pg_connect(str(target)) as conn:
            cursor = conn.cursor(row_factory=dict_row)
            cursor.execute(convert(sql), tuple(params))
            return list(cursor.fetchall()) if cursor.description else []
    conn = sqlite3.connect(target)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, tuple(params))]
    finally:
        conn.close()


def execute(target: Path | str, sql: str, params: Sequence[object] = ()) -> None:
    """Run SQL past deploytrack's code (as a user with the database's credentials could),
    committed, on either backend: for tests that prove the schema itself, or `log verify`,
    catches what it changes. The database's own refusal is raised as is (sqlite3.Error or
    psycopg.Error: catch `DB_ERRORS`)."""
    if is_pg(target):
        from deploytrack.store.postgres import convert

        with _pg_connect(str(target)) as conn:
            conn.execute(convert(sql), tuple(params))
        return
    conn = sqlite3.connect(target)
    try:
        with conn:
            conn.execute(sql, tuple(params))
    finally:
        conn.close()


class Raw:
    """A connection past deploytrack's code, as someone holding the database's credentials
    would open one (`raw(db_path)`), with the sqlite3 calls the tests use on both backends:
    `execute` (SQLite's `?` placeholders; returns a cursor), `commit`, `rollback`, `close`.

    On PostgreSQL a failed statement would abort the whole transaction; each statement runs
    under a savepoint instead, so a test can try a refused write and carry on, as on SQLite.
    """

    def __init__(self, target: Path | str) -> None:
        self.postgresql = is_pg(target)
        if self.postgresql:
            from deploytrack.store.postgres import psycopg_module

            self._pg: Any = psycopg_module().connect(str(target))
        else:
            self._lite = sqlite3.connect(target)

    def execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        if not self.postgresql:
            return self._lite.execute(sql, tuple(params))
        from deploytrack.store.postgres import convert

        self._pg.execute("SAVEPOINT raw")
        try:
            cursor = self._pg.execute(convert(sql), tuple(params))
        except BaseException:
            self._pg.execute("ROLLBACK TO SAVEPOINT raw")
            raise
        self._pg.execute("RELEASE SAVEPOINT raw")
        return cursor

    def commit(self) -> None:
        (self._pg if self.postgresql else self._lite).commit()

    def rollback(self) -> None:
        (self._pg if self.postgresql else self._lite).rollback()

    def close(self) -> None:
        (self._pg if self.postgresql else self._lite).close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        """Like `with sqlite3.connect(...)`, commit unless the block raised; and close."""
        try:
            if kind is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()


def raw(target: Path | str) -> Raw:
    return Raw(target)


def _errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    from deploytrack.store.postgres import psycopg_module

    psycopg = psycopg_module()
    return (sqlite3.Error, psycopg.Error), (sqlite3.IntegrityError, psycopg.IntegrityError)


# What the database itself raises, on either backend: any error, and a refused write (a
# CHECK, a trigger's RAISE, a foreign key, a unique index).
DB_ERRORS, INTEGRITY_ERRORS = _errors()
# How each backend words a failed CHECK constraint (match= of pytest.raises).
CHECK_FAILED = "CHECK constraint failed|violates check constraint"
UNIQUE_FAILED = "UNIQUE constraint failed|violates unique constraint"
FOREIGN_KEY_FAILED = "FOREIGN KEY constraint failed|violates foreign key constraint"


def fail_writes(target: Path | str, table: str, message: str = "injected failure") -> None:
    """Make every INSERT into `table` fail with `message` (a trigger a test adds, to prove
    a command's write is one transaction), on either backend."""
    if is_pg(target):
        execute(
            target,
            "CREATE FUNCTION test_fail_writes() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN RAISE EXCEPTION '{message}'"
            " USING ERRCODE = 'integrity_constraint_violation'; END $$",
        )
        execute(
            target,
            f"CREATE TRIGGER test_fail_writes BEFORE INSERT ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION test_fail_writes()",
        )
    else:
        execute(
            target,
            f"CREATE TRIGGER test_fail_writes BEFORE INSERT ON {table}"
            f" BEGIN SELECT RAISE(ABORT, '{message}'); END",
        )


_PG_FRESH: list[list[str]] = []  # the snapshot of a freshly migrated database (pg_template)


def untouched(target: Path | str) -> bool:
    """Whether the command left the database as the test got it: on SQLite no file at all
    (it is created on first use); on PostgreSQL, as freshly migrated."""
    if is_pg(target):
        return snapshot(target) == _PG_FRESH[0]
    return not Path(target).exists()


def stored_bytes(target: Path | str) -> bytes:
    """Everything the database holds, as bytes, to prove a secret never reaches it: on SQLite
    the file with its -wal and -shm; on PostgreSQL every value of every row (text as UTF-8,
    bytea as is)."""
    if not is_pg(target):
        path = Path(target)
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        return b"".join(p.read_bytes() for p in files if p.exists())
    out: list[bytes] = []
    with _pg_connect(str(target)) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        ).fetchall()
        for (table,) in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        out.append(bytes(value))
                    elif value is not None:
                        out.append(str(value).encode())
    return b"\n".join(out)


@contextlib.contextmanager
def keep_wal(target: Path | str) -> Iterator[None]:
    """On SQLite, an open reader for the block keeps the -wal file from being checkpointed
    away (so stored_bytes sees what a write left there); PostgreSQL has no such file."""
    if is_pg(target):
        yield
        return
    holder = sqlite3.connect(target)
    try:
        holder.execute("SELECT count(*) FROM sqlite_master").fetchall()
        yield
    finally:
        holder.close()


@pytest.fixture
def seeded(ok: Invoke) -> None:
    """Evidence for NGINX_FULL and NGINX_GIT (two real attestations) and environment 'cluster'."""
    ok(
        "attestation",
        "import",
        str(attestation("chainloop-full.json")),
        str(attestation("chainloop-with-git-subject.json")),
    )
    ok("environment", "create", "--name", "cluster", "--type", "kubernetes")


Record = Callable[..., dict[str, Any]]


@pytest.fixture
def record(ok: Invoke) -> Record:
    """`deployment record -o json` that must succeed; returns the parsed result."""

    def invoke(
        digest: str = NGINX_FULL,
        *extra: str,
        env: str = "cluster",
        stage: str = "production",
        name: str = "api",
        kind: str = "CONTAINER_IMAGE",
    ) -> dict[str, Any]:
        result = ok(
            *record_args(env, stage, name, kind),
            "--digest",
            digest,
            *extra,
            "-o",
            "json",
        )
        return json.loads(result.stdout)

    return invoke


class Clock:
    """A controllable `timeutil.now_us` (the `clock` fixture), for history at known times."""

    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, *, hours: float = 0, seconds: float = 0, us: int = 0) -> int:
        self.now += int(hours * 3_600_000_000) + int(seconds * 1_000_000) + us
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Freeze the services' clock at 2026-11-20T09:00:00Z; tests move it with advance().

    Shared by the lifecycle tests (promote, rollback, status and diff): records inserted through the
    real services at known times. The clock is read inside record()'s write transaction via
    `timeutil.now_us`, which is what this replaces; nothing else is faked.
    """
    from datetime import UTC, datetime

    from deploytrack import timeutil

    fake = Clock(timeutil.to_us(datetime(2026, 11, 20, 9, 0, tzinfo=UTC)))
    monkeypatch.setattr(timeutil, "now_us", fake)
    return fake


# -- PostgreSQL ---------------------------------------------------------------------------

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One throwaway PostgreSQL for the session (scripts/pgtemp.py: Debian's postgresql,
    installed by `make test`), started on first use. Never skipped: a missing server is a
    failure, as a missing registry is."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        import pgtemp
    finally:
        sys.path.remove(str(SCRIPTS))
    server = pgtemp.start()
    try:
        yield server
    finally:
        server.stop()


_pg_databases = iter(range(1, 1_000_000))


def pg_admin(server: Any) -> Any:
    """An autocommit connection to the server's maintenance database."""
    from deploytrack.store.postgres import psycopg_module

    return psycopg_module().connect(server.url, autocommit=True)


def _new_database(server: Any, template: str | None = None) -> str:
    name = f"t{os.getpid()}_{next(_pg_databases)}"
    with pg_admin(server) as admin:
        if template is None:
            admin.execute(f'CREATE DATABASE "{name}"')
        else:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return name


def _drop_database(server: Any, name: str) -> None:
    with pg_admin(server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_empty(pg_server: Any) -> Iterator[str]:
    """The URL of a new, empty database (no schema: `db migrate` has not run), dropped
    after the test."""
    name = _new_database(pg_server)
    try:
        yield pg_server.url_for(name)
    finally:
        _drop_database(pg_server, name)


@pytest.fixture(scope="session")
def pg_template(pg_server: Any) -> str:
    """A database migrated once per session with `deploytrack db migrate`, then closed to
    connections: the first databases of the session are copies of it."""
    name = "deploytrack_template"
    with pg_admin(pg_server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    result = CliRunner().invoke(cli, ["--db", pg_server.url_for(name), "db", "migrate"])
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    with pg_admin(pg_server) as admin:
        # CREATE DATABASE ... TEMPLATE needs the template to have no session at all.
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
    return name


# Databases a test has used, put back as freshly migrated: copying the template costs 0.1 to
# 1 s on a busy machine (CREATE DATABASE waits for checkpoints), putting one back ~0.03 s.
_PG_POOL: list[str] = []
# What a fresh database holds: its schema (what a reset cannot restore: a database whose
# schema a test changed is dropped instead), and the rows of each table, in storage order.
_PG_SCHEMA: list[list[Any]] = []
_PG_SEED: dict[str, list[tuple[Any, ...]]] = {}


def _schema_of(conn: Any) -> list[Any]:
    queries = [
        "SELECT table_name, column_name, data_type, is_nullable, column_default, collation_name"
        " FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2",
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2",
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index ORDER BY 1",
        "SELECT tgrelid::regclass::text, tgname, tgenabled, tgfoid::regprocedure::text"
        " FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2",
        "SELECT oid::regprocedure::text, md5(prosrc) FROM pg_proc"
        " WHERE pronamespace = current_schema()::regnamespace ORDER BY 1",
        "SELECT setconfig FROM pg_db_role_setting s JOIN pg_database d"
        " ON d.oid = s.setdatabase WHERE d.datname = current_database()",
    ]
    return [conn.execute(sql).fetchall() for sql in queries]


def _learn_fresh(url: str) -> None:
    with _pg_connect(url) as conn:
        _PG_SCHEMA.append(_schema_of(conn))
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        ).fetchall()
        for (table,) in tables:
            _PG_SEED[table] = conn.execute(f'SELECT * FROM "{table}" ORDER BY ctid').fetchall()
    _PG_FRESH.append(snapshot(url))


def _reset(server: Any, name: str) -> bool:
    """Put a used database back as freshly migrated; False when it cannot be (its schema
    changed): the caller drops it."""
    from deploytrack.store.postgres import psycopg_module

    psycopg = psycopg_module()
    with pg_admin(server) as admin:
        # A connection the test left open may hold locks, or a transaction.
        admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
    try:
        with psycopg.connect(server.url_for(name)) as conn:
            conn.execute("SET LOCAL lock_timeout = '5s'")
            if _schema_of(conn) != _PG_SCHEMA[0]:
                return False
            # No trigger may refuse the deletes (append-only tables), nor number the rows.
            conn.execute("SET LOCAL session_replication_role = replica")
            for table in _PG_SEED:
                conn.execute(f'DELETE FROM "{table}"')
            with conn.cursor() as cursor:
                for table, rows in _PG_SEED.items():
                    if rows:
                        marks = ", ".join(["%s"] * len(rows[0]))
                        cursor.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
        return True
    except psycopg.Error:
        return False


@pytest.fixture
def pg_migrated(pg_server: Any, pg_template: str) -> Iterator[str]:
    """The URL of a database with deploytrack's schema, as `db migrate` leaves a new one:
    a copy of the template, or one an earlier test used, put back. After the test it is
    put back in the pool, or dropped (WITH FORCE) when its schema changed."""
    name = _PG_POOL.pop() if _PG_POOL else _new_database(pg_server, pg_template)
    url = pg_server.url_for(name)
    if not _PG_FRESH:
        _learn_fresh(url)
    try:
        yield url
    finally:
        if _reset(pg_server, name):
            _PG_POOL.append(name)
        else:
            _drop_database(pg_server, name)
