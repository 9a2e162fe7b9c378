"""Shared test helpers: a fresh database per test, a CLI runner, and a database snapshot.

CLI tests go through click's CliRunner against a real SQLite file; a few run the
installed `deploytrack` entry point as a subprocess.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import record_args

from deploytrack.cli import cli

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


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "deploytrack.db"


@pytest.fixture
def run(db_path: Path) -> Invoke:
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


def snapshot(path: Path) -> list[str]:
    """Every row of every table, to assert that a refused command changed nothing."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def assert_refused(result: Result, code: int = 1, contains: str = "") -> None:
    """A refusal: the exit code, and exactly one stderr line that starts with Error:."""
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert contains in lines[0], (contains, lines[0])


@pytest.fixture
def refuse(run: Invoke, db_path: Path) -> Invoke:
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


def query(path: Path, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
    """Rows of a raw SQL query on the database file, as dicts."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, tuple(params))]
    finally:
        conn.close()


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


@pytest.fixture
def pg_empty(pg_server: Any) -> Iterator[str]:
    """The URL of a new, empty database (no schema: `db migrate` has not run), dropped
    after the test."""
    name = f"t{os.getpid()}_{next(_pg_databases)}"
    with pg_admin(pg_server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.url_for(name)
    finally:
        with pg_admin(pg_server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
