"""Removing stored bytes for good (`variable redact`).

SQLite. Deleting or blanking a value leaves its bytes behind in two places: the free
space of the page that held it (zeroed only with `secure_delete`), and the copies of that
page the WAL still holds (until a checkpoint copies the newest page into the database
file and the WAL is truncated). A scrubbing write closes the first; `checkpoint_truncate`
the second.

PostgreSQL. An UPDATE writes a new row version and leaves the old one, value included, in
the table's heap (and a long value's chunks in its TOAST table) until VACUUM removes it,
which it can only do once no transaction that began before the change is still open (such
a transaction may still read the old version). A plain VACUUM marks the space free but
leaves the bytes of a page it empties; `VACUUM (FULL)` writes the table and its TOAST
table anew and drops the old files. So `checkpoint_truncate` runs `VACUUM (FULL)
variable_event` once the redaction has committed (VACUUM cannot run inside a transaction
block), after checking that no other session's snapshot is older than the redaction. It
holds the table's ACCESS EXCLUSIVE lock while it rewrites it: variable commands wait for
it, and it waits for them no longer than the connection's lock_timeout. The server's WAL,
its archive, replicas and backups keep their own copies under PostgreSQL's retention,
which is the DBA's to manage (docs/variables.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import peewee

from deploytrack.store.connection import Store
from deploytrack.store.errors import BUSY_TIMEOUT_S, StoreError, translate
from deploytrack.store.eventlog import EventLog

# How long a checkpoint waits for readers of older snapshots to finish: the writers' wait.
CHECKPOINT_TIMEOUT_S: float = BUSY_TIMEOUT_S

# The table whose old row versions hold a redacted value (PostgreSQL).
_SCRUBBED_TABLE = "variable_event"

# The transaction id of this thread's last scrubbing write on PostgreSQL: what the other
# sessions' snapshots are compared with.
_last = threading.local()


@contextmanager
def scrubbing_write(store: Store) -> Iterator[EventLog]:
    """`store.write()` with SQLite's secure_delete on: the space a change frees is
    overwritten with zeros in the page it writes. The connection's setting is restored
    afterwards (secure_delete costs writes nothing else needs). On PostgreSQL a plain
    write, whose transaction id `checkpoint_truncate` needs."""
    if store.postgresql:
        with store.write() as log:
            _last.xid = str(store.db.execute_sql("SELECT pg_current_xact_id()").fetchone()[0])
            yield log
        return
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

    On PostgreSQL: VACUUM (FULL) the table the redaction changed, so the old row version
    leaves its files; False when another session's snapshot began before the redaction
    committed (VACUUM must keep the old version for it), or VACUUM could not run.
    """
    if store.postgresql:
        return _vacuum(store)
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


def _vacuum(store: Store) -> bool:
    db = store.db
    xid = getattr(_last, "xid", None)
    try:
        with store.translated():
            # A snapshot whose xmin is at or before the redaction's transaction may not
            # see it committed, so it may still read the old version, which VACUUM then
            # keeps (any database's session counts: VACUUM's horizon is the server's).
            older = db.execute_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                " AND backend_xmin IS NOT NULL AND age(backend_xmin) >= age(?::xid8::xid)",
                (xid,),
            ).fetchone()
            # VACUUM is the table owner's, the database owner's or a superuser's: anyone
            # else's is skipped with a mere WARNING, and the old version stays. (A role
            # given PostgreSQL 17's MAINTAIN is told it could not run: a false alarm,
            # never a false "gone".)
            allowed = db.execute_sql(
                "SELECT pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE')"
                " OR r.rolsuper FROM pg_class AS c, pg_database AS d, pg_roles AS r"
                " WHERE c.oid = ?::regclass AND d.datname = current_database()"
                " AND r.rolname = current_user",
                (_SCRUBBED_TABLE,),
            ).fetchone()
            if not (allowed and allowed[0]):
                return False
            db.execute_sql(f"VACUUM (FULL) {_SCRUBBED_TABLE}")
    except StoreError:
        # The redaction stands (it committed); the warning says what is left to do. A
        # VACUUM waits for a lock no longer than a writer does (lock_timeout).
        return False
    return xid is not None and not int(older[0])
