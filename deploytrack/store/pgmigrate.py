"""Migrations on PostgreSQL: applied by `db migrate` only, under an advisory lock.

The steps are `pgschema.PG_MIGRATIONS`, twins of `migrations.MIGRATIONS` by name (the
bookkeeping table records the same names on both backends). Unlike SQLite's, a server
database is never migrated by opening it: every command checks the schema is current and
refuses otherwise, naming `db migrate` — a team decides when its shared database changes.
All pending steps run in one transaction holding `MIGRATE_LOCK` and the write lock, and
the list of applied steps is read again once the locks are held, so hosts migrating at the
same moment apply each step exactly once, and no write runs under a half-made schema.
"""

from __future__ import annotations

import peewee

from deploytrack import timeutil
from deploytrack.store import migrations
from deploytrack.store.errors import StoreError

TABLE = migrations.MIGRATION_TABLE


def applied(db: peewee.Database) -> list[str] | None:
    """Names of applied migrations, or None when the database has no migration table."""
    exists = db.execute_sql("SELECT to_regclass(?)", (TABLE,)).fetchone()[0]
    if exists is None:
        return None
    return [str(row[0]) for row in db.execute_sql(f"SELECT name FROM {TABLE}").fetchall()]


def _refuse_foreign(db: peewee.Database, shown: str) -> None:
    tables = db.get_tables()
    if tables:
        raise StoreError(
            f"{shown} is a PostgreSQL database of another application (it has tables such as "
            f"{tables[0]!r}); give --db the URL of a deploytrack database"
        )


def ensure_current(db: peewee.Database, shown: str) -> None:
    """Refuse a database whose schema is not this deploytrack's: one query when it is."""
    done = applied(db)
    if done is None:
        _refuse_foreign(db, shown)
        raise StoreError(
            f"database {shown} has no deploytrack schema yet: run "
            "'deploytrack --db URL db migrate' once to set it up"
        )
    migrations.refuse_newer(done, shown)
    waiting = migrations.pending(done)
    if waiting:
        raise StoreError(
            f"database {shown} has an older deploytrack schema ({len(waiting)} migration(s) "
            "to apply): run 'deploytrack --db URL db migrate'"
        )


def migrate(db: peewee.Database) -> list[str]:
    """Apply the pending steps; their names (empty when the schema was current)."""
    from deploytrack.store import eventlog, postgres
    from deploytrack.store.pgschema import PG_MIGRATIONS

    shown = postgres.mask(str(db.database))
    with db.atomic():
        db.execute_sql("SELECT pg_advisory_xact_lock(?)", (postgres.MIGRATE_LOCK,))
        db.execute_sql("SELECT pg_advisory_xact_lock(?)", (postgres.WRITE_LOCK,))
        done = applied(db)
        if done is None:
            _refuse_foreign(db, shown)
            db.execute_sql(
                f'CREATE TABLE {TABLE} (name TEXT COLLATE "C" PRIMARY KEY,'
                " applied_at BIGINT NOT NULL)"
            )
            done = []
        migrations.refuse_newer(done, shown)
        steps = [step for step in PG_MIGRATIONS if step.__name__ not in done]
        for step in steps:
            step(db)
            db.execute_sql(
                f"INSERT INTO {TABLE} (name, applied_at) VALUES (?, ?)",
                (step.__name__, timeutil.now_us()),
            )
        if steps:
            eventlog.install_pg_capture(db)
    return [step.__name__ for step in steps]
