"""Removing stored bytes for good (`variable redact`).

Deleting or blanking a value in SQLite leaves its bytes behind in two places: the free
space of the page that held it (zeroed only with `secure_delete`), and the copies of that
page the WAL still holds (until a checkpoint copies the newest page into the database
file and the WAL is truncated). A scrubbing write closes the first; `checkpoint_truncate`
the second.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import peewee

from deploytrack.store.connection import Store
from deploytrack.store.errors import BUSY_TIMEOUT_S, translate
from deploytrack.store.eventlog import EventLog

# How long a checkpoint waits for readers of older snapshots to finish: the writers' wait.
CHECKPOINT_TIMEOUT_S: float = BUSY_TIMEOUT_S


@contextmanager
def scrubbing_write(store: Store) -> Iterator[EventLog]:
    """`store.write()` with SQLite's secure_delete on: the space a change frees is
    overwritten with zeros in the page it writes. The connection's setting is restored
    afterwards (secure_delete costs writes nothing else needs)."""
    db = store.db
    try:
        previous = db.execute_sql("PRAGMA secure_delete").fetchone()[0]
        db.execute_sql("PRAGMA secure_delete = ON")
    except peewee.PeeweeException as exc:
        raise translate(exc, store.path) from None
    try:
        with store.write() as log:
            yield log
    finally:
        with suppress(peewee.PeeweeException):
            db.execute_sql(f"PRAGMA secure_delete = {int(previous)}")


def checkpoint_truncate(store: Store) -> bool:
    """Copy every page of the WAL into the database file and truncate the WAL to zero
    bytes, so no older copy of a page survives in it. Outside any transaction.

    False when a reader of an older snapshot kept it from completing within
    CHECKPOINT_TIMEOUT_S (the WAL then keeps its old frames until the last connection to
    the database closes, when SQLite checkpoints and removes it).
    """
    db = store.db
    try:
        normal = db.execute_sql("PRAGMA busy_timeout").fetchone()[0]
        db.execute_sql(f"PRAGMA busy_timeout = {int(CHECKPOINT_TIMEOUT_S * 1000)}")
        try:
            row = db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            db.execute_sql(f"PRAGMA busy_timeout = {int(normal)}")
    except peewee.PeeweeException as exc:
        raise translate(exc, store.path) from None
    return row is not None and row[0] == 0
