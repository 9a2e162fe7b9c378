"""Schema migrations: an ordered list of named functions, each applied once and recorded.

To change the schema, append a function; never edit one that has shipped. A database
that records a migration this list does not know was written by a newer deploytrack and
is refused before anything is written to it.

All pending migrations run in one BEGIN IMMEDIATE transaction, and the list of applied
ones is read again once the lock is held, so several processes opening a brand-new
database at the same moment apply each migration exactly once.

The DDL is SQLite's. A PostgreSQL backend would bring the same named steps in its own
dialect (identity columns instead of INTEGER PRIMARY KEY, trigger functions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import peewee

from deploytrack import timeutil
from deploytrack.store.connection import BUSY_TIMEOUT_S, StoreError

MIGRATION_TABLE = "deploytrack_migration"

Migration = Callable[[peewee.Database], None]


def m001_core(db: peewee.Database) -> None:
    """Environments, logical environments, the evidence store and deployment records."""
    statements = [
        """CREATE TABLE environment (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            type TEXT NOT NULL
                CHECK (type IN ('kubernetes', 'ecs', 'server', 'lambda', 'custom')),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE logical_environment (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        # Content-addressed bytes: the key is the sha256 of the content.
        """CREATE TABLE blob (
            digest TEXT PRIMARY KEY CHECK (digest LIKE 'sha256:%' AND length(digest) = 71),
            size INTEGER NOT NULL CHECK (size >= 0),
            content BLOB NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        """CREATE TABLE attestation (
            id INTEGER PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE REFERENCES blob (digest),
            format TEXT NOT NULL CHECK (format IN ('statement', 'dsse', 'sigstore-bundle')),
            statement_type TEXT NOT NULL,
            predicate_type TEXT NOT NULL,
            project TEXT,
            version TEXT,
            workflow TEXT,
            imported_at INTEGER NOT NULL
        )""",
        "CREATE INDEX attestation_project ON attestation (project, version)",
        """CREATE TABLE attestation_subject (
            id INTEGER PRIMARY KEY,
            attestation_id INTEGER NOT NULL REFERENCES attestation (id),
            name TEXT NOT NULL,
            digest TEXT NOT NULL CHECK (digest LIKE '%_:_%')
        )""",
        "CREATE INDEX attestation_subject_digest ON attestation_subject (digest)",
        "CREATE INDEX attestation_subject_owner ON attestation_subject (attestation_id)",
        """CREATE TABLE attestation_material (
            id INTEGER PRIMARY KEY,
            attestation_id INTEGER NOT NULL REFERENCES attestation (id),
            name TEXT,
            kind TEXT,
            digest TEXT CHECK (digest IS NULL OR digest LIKE '%_:_%')
        )""",
        "CREATE INDEX attestation_material_digest ON attestation_material (digest)",
        "CREATE INDEX attestation_material_owner ON attestation_material (attestation_id)",
        """CREATE TABLE deployment (
            id INTEGER PRIMARY KEY,
            environment_id INTEGER NOT NULL REFERENCES environment (id),
            logical_environment_id INTEGER NOT NULL REFERENCES logical_environment (id),
            deployment_name TEXT NOT NULL CHECK (length(deployment_name) > 0),
            kind TEXT NOT NULL CHECK (kind IN ('CONTAINER_IMAGE', 'HELM_CHART')),
            digest TEXT NOT NULL CHECK (digest LIKE 'sha256:%' AND length(digest) = 71),
            artifact_ref TEXT,
            status TEXT NOT NULL CHECK (status IN ('deployed', 'superseded', 'decommissioned')),
            created_at INTEGER NOT NULL,
            last_seen_at INTEGER NOT NULL CHECK (last_seen_at >= created_at),
            ended_at INTEGER CHECK (ended_at IS NULL OR ended_at >= created_at),
            superseded_by INTEGER
                REFERENCES deployment (id) DEFERRABLE INITIALLY DEFERRED,
            CHECK ((status = 'deployed') = (ended_at IS NULL)),
            CHECK ((status = 'superseded') = (superseded_by IS NOT NULL)),
            CHECK (superseded_by IS NULL OR superseded_by > id)
        )""",
        # The invariant: at most one active record per key.
        """CREATE UNIQUE INDEX deployment_one_active
            ON deployment (environment_id, logical_environment_id, deployment_name, kind)
            WHERE status = 'deployed'""",
        """CREATE INDEX deployment_key_history
            ON deployment (environment_id, logical_environment_id, deployment_name, kind, id)""",
        "CREATE INDEX deployment_logical ON deployment (logical_environment_id)",
        "CREATE INDEX deployment_digest ON deployment (digest)",
        "CREATE INDEX deployment_superseded_by ON deployment (superseded_by)",
        # History is immutable: records are never deleted, and an update may only
        # heartbeat an active record or end it. Evidence never changes once stored.
        """CREATE TRIGGER deployment_no_delete BEFORE DELETE ON deployment
            BEGIN SELECT RAISE(ABORT, 'deployment records are never deleted'); END""",
        """CREATE TRIGGER deployment_immutable BEFORE UPDATE ON deployment
            WHEN OLD.status <> 'deployed'
              OR NEW.id IS NOT OLD.id
              OR NEW.environment_id IS NOT OLD.environment_id
              OR NEW.logical_environment_id IS NOT OLD.logical_environment_id
              OR NEW.deployment_name IS NOT OLD.deployment_name
              OR NEW.kind IS NOT OLD.kind
              OR NEW.digest IS NOT OLD.digest
              OR NEW.artifact_ref IS NOT OLD.artifact_ref
              OR NEW.created_at IS NOT OLD.created_at
            BEGIN SELECT RAISE(ABORT, 'deployment records are immutable history'); END""",
        """CREATE TRIGGER deployment_needs_evidence BEFORE INSERT ON deployment
            WHEN NOT EXISTS (SELECT 1 FROM attestation_subject WHERE digest = NEW.digest)
             AND NOT EXISTS (SELECT 1 FROM attestation_material WHERE digest = NEW.digest)
            BEGIN SELECT RAISE(ABORT, 'digest is not in the evidence store'); END""",
    ]
    for table in ("blob", "attestation", "attestation_subject", "attestation_material"):
        statements.append(
            f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
                BEGIN SELECT RAISE(ABORT, 'stored evidence never changes'); END"""
        )
        statements.append(
            f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
                BEGIN SELECT RAISE(ABORT, 'stored evidence is never deleted'); END"""
        )
    for sql in statements:
        db.execute_sql(sql)

    now = timeutil.now_us()
    for name, description in (
        ("development", "For development and testing"),
        ("staging", "Pre-production validation"),
        ("production", "Live production workloads"),
    ):
        db.execute_sql(
            "INSERT INTO logical_environment"
            " (name, description, is_default, created_at, updated_at) VALUES (?, ?, 1, ?, ?)",
            (name, description, now, now),
        )


MIGRATIONS: list[Migration] = [m001_core]


def _applied(db: peewee.Database) -> list[str] | None:
    """Names of applied migrations, or None when the database has no migration table."""
    try:
        cursor = db.execute_sql(f"SELECT name FROM {MIGRATION_TABLE}")
    except peewee.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return [row[0] for row in cursor.fetchall()]


def _refuse_newer(names: list[str], path: Path) -> None:
    known = {m.__name__ for m in MIGRATIONS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StoreError(
            f"database {path} was written by a newer deploytrack (unknown schema migration "
            f"{unknown[0]!r}); upgrade deploytrack to use it"
        )


def ensure_current(db: peewee.Database, path: Path) -> None:
    names = _applied(db)
    if names is not None and len(names) == len(MIGRATIONS):
        # The hot path: one SELECT, no lock.
        _refuse_newer(names, path)
        return
    if names is not None:
        _refuse_newer(names, path)

    with db.atomic("IMMEDIATE"):
        # Re-read under the write lock: another process may have migrated meanwhile.
        names = _applied(db)
        if names is None:
            tables = db.get_tables()
            if tables:
                raise StoreError(
                    f"{path} is an SQLite database of another program (it has tables such as "
                    f"{tables[0]!r}); give --db the path of a deploytrack database"
                )
            db.execute_sql(
                f"CREATE TABLE {MIGRATION_TABLE} "
                "(name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
            names = []
        _refuse_newer(names, path)
        for migration in MIGRATIONS:
            if migration.__name__ in names:
                continue
            migration(db)
            db.execute_sql(
                f"INSERT INTO {MIGRATION_TABLE} (name, applied_at) VALUES (?, ?)",
                (migration.__name__, timeutil.now_us()),
            )


def ensure_wal(db: peewee.Database) -> None:
    """WAL lets readers run beside the one writer. It is a property of the file: set it
    when it is missing (a new database, or one whose creator died before switching).

    Call only on a database `ensure_current` accepted: a foreign file is never changed.
    On a read-only copy (an auditor's) the switch fails and the file keeps its mode.
    """
    mode = db.execute_sql("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() == "wal":
        return
    try:
        _enable_wal(db)
    except peewee.OperationalError as exc:
        if "readonly" not in str(exc).lower() and "read-only" not in str(exc).lower():
            raise


def _enable_wal(db: peewee.Database) -> None:
    """Switch the file to WAL, waiting for other openers as the busy timeout would.

    The switch upgrades a shared lock to an exclusive one, and SQLite answers "database is
    locked" at once, without its busy handler, when another process holds a lock on the
    file: one that opened the brand-new database at the same moment, say.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute_sql("PRAGMA journal_mode=WAL")
            return
        except peewee.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)
