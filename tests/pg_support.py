"""A throwaway PostgreSQL server for the tests, and databases on it.

`pg_server` (session) starts scripts/pgtemp.py's server once; `pg_url` is a fresh, empty
database per test (CREATE DATABASE), dropped afterwards; `pg_migrated_url` is a fresh
database with the whole PostgreSQL schema (store/pgschema.py), cloned from a template
migrated once per session (CREATE DATABASE ... TEMPLATE: ~20 ms instead of migrating).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import peewee
import pytest

from deploytrack.store import eventlog, pgschema

PGTEMP = Path(__file__).parents[1] / "scripts" / "pgtemp.py"

_names = itertools.count()


def pgtemp() -> ModuleType:
    module = sys.modules.get("pgtemp")
    if module is None:
        spec = importlib.util.spec_from_file_location("pgtemp", PGTEMP)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["pgtemp"] = module
        spec.loader.exec_module(module)
    return module


class PgShim(peewee.PostgresqlDatabase):
    """SQLite's `?` placeholders on PostgreSQL, as the store's database class takes them
    (store/postgres.py): the schema's steps are written with `?`."""

    param = "?"

    def __init__(self, url: str) -> None:
        super().__init__(url, prefer_psycopg3=True)

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        return self._execute_cursor(sql.replace("%", "%%").replace("?", "%s"), params)


def pg_database(url: str) -> peewee.Database:
    return PgShim(url)


def _admin(server: Any, sql: str) -> None:
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql)


def create_database(server: Any, template: str | None = None) -> str:
    """A new database on `server` (a copy of `template`), by name."""
    name = f"t{os.getpid()}_{next(_names)}"
    _admin(
        server,
        f"CREATE DATABASE {name}"
        + (f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""),
    )
    return name


def drop_database(server: Any, name: str) -> None:
    _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def _pg_eventlog() -> Iterator[None]:
    """The event log's setup calls on PostgreSQL, until store/eventlog.py speaks it: the
    origin row (what the schema holds after `eventlog.start`), and nothing to log again on
    a new database."""

    def start(db: peewee.Database, origin: str) -> None:
        db.execute_sql("INSERT INTO log_origin (id, origin) VALUES (1, ?)", (origin,))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(eventlog, "start", start)
        patch.setattr(eventlog, "log_rows_again", lambda db, table, migration: None)
        yield


def migrate(url: str) -> None:
    """Every PostgreSQL step, in order, in one transaction (as `db migrate` runs them)."""
    db = pg_database(url)
    db.connect()
    try:
        with _pg_eventlog(), db.atomic():
            for step in pgschema.PG_MIGRATIONS:
                step(db)
    finally:
        db.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    server = pgtemp().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: Any) -> Iterator[str]:
    """A fresh, empty database."""
    name = create_database(pg_server)
    yield pg_server.url_for(name)
    drop_database(pg_server, name)


@pytest.fixture(scope="session")
def pg_migrated_template(pg_server: Any) -> str:
    name = create_database(pg_server)
    migrate(pg_server.url_for(name))
    return name


@pytest.fixture
def pg_migrated_url(pg_server: Any, pg_migrated_template: str) -> Iterator[str]:
    """A fresh database with the whole PostgreSQL schema."""
    name = create_database(pg_server, template=pg_migrated_template)
    yield pg_server.url_for(name)
    drop_database(pg_server, name)
