"""Opening the database: where it lives, how it is created, and how writes are serialised."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import peewee

from deploytrack import locations
from deploytrack.errors import DeploytrackError
from deploytrack.store.binding import DATABASE, TransactionMisuse, bound, require
from deploytrack.store.errors import BUSY_TIMEOUT_S, StoreError, translate

if TYPE_CHECKING:
    from deploytrack.store.eventlog import EventLog

__all__ = ["BUSY_TIMEOUT_S", "Store", "StoreError", "open_store", "resolve_path", "translate"]


# Paths are plain strings here, handled with os.path: this module is on every command's
# path, and pathlib (with the urllib.parse it imports) costs ~4 ms of start-up.
StrPath = str | os.PathLike[str]


def resolve_path(explicit: str | None) -> str:
    """--db, else $DEPLOYTRACK_DB, else the per-user data folder."""
    return locations.database_path(explicit)


def display(target: str) -> str:
    """The database as messages show it: a path, or a URL with its password masked."""
    if target.startswith(("postgresql://", "postgres://")):
        from deploytrack.store.postgres import mask

        return mask(target)
    return target


def _ensure_file(path: str) -> None:
    """Create parent folders (0700) and an empty file (0600) if there is none yet.

    SQLite gives its -wal and -shm files the database file's mode, so creating the
    file ourselves first is what keeps all three private.
    """
    if os.path.exists(path):
        if not os.path.isfile(path):
            raise StoreError(f"{path} is not a file: give --db the path of a database file")
        return
    from deploytrack.files import make_private_folders  # only when a database is created

    try:
        make_private_folders(os.path.dirname(os.path.abspath(path)))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(
            f"cannot create database {path}: {exc.strerror}; choose another path with --db"
        ) from None
    os.close(fd)


def _adopt_empty(path: str) -> None:
    """Make an existing empty file private before a database is set up in it.

    SQLite gives -wal and -shm the database file's mode, so a file left 0644 by `touch` or
    a provisioning script would make all three readable by everyone. Only an empty file is
    ours to set up; a database with content was set up by someone who chose its mode
    (doctor reports it when wider than 0600), so it is left alone.
    """
    try:
        info = os.stat(path)
    except OSError:
        return  # SQLite says what is wrong with it, in translate()'s words
    mode = stat.S_IMODE(info.st_mode)
    if info.st_size or not mode & 0o077:
        return
    try:
        # & 0o600, not = 0o600: a read-only file must not become writable.
        os.chmod(path, mode & 0o600)
    except OSError as exc:
        raise StoreError(
            f"cannot make the empty file {path} private for a new database (chmod 600: "
            f"{exc.strerror}): run chmod 600 on it as its owner, or choose another path "
            "with --db"
        ) from None


class Store:
    """An open database. Every write goes through `write()`: one BEGIN IMMEDIATE transaction.

    The models reach this store's database only inside `read()` or `write()` (see
    `binding`): a transaction is the way in, for reads as for writes.
    """

    def __init__(self, db: peewee.Database, path: str, backend: str = "sqlite") -> None:
        self.db = db
        # The file's path, or the server's URL with its password masked: what messages show.
        self.path = path
        self.backend = backend
        self._log: EventLog | None = None
        self._depth = threading.local()
        if backend == "postgresql":
            from deploytrack.store import postgres

            self._errors: tuple[type[BaseException], ...] = (
                peewee.PeeweeException,
                postgres.psycopg_module().Error,
            )
            self._translate: Any = postgres.translate
            self._url = getattr(db, "database", path)
        else:
            self._errors = (peewee.PeeweeException, sqlite3.Error)
            self._translate = translate
            self._url = path

    @property
    def postgresql(self) -> bool:
        return self.backend == "postgresql"

    def _begin_write(self) -> Any:
        """The outermost write transaction: BEGIN IMMEDIATE on SQLite (the write lock up
        front: a deferred transaction that reads and then writes fails with "database is
        locked" when another writer got in between); on PostgreSQL a transaction whose
        first statement takes the write lock (store/postgres.py)."""
        if self.postgresql:
            return self.db.atomic()
        return self.db.atomic("IMMEDIATE")

    @property
    def log(self) -> EventLog:
        """The event log, loaded on the first write: a read command never imports it
        (~0.6 ms, with the log's formats)."""
        if self._log is None:
            from deploytrack.store.eventlog import EventLog

            self._log = EventLog(self.db)
        return self._log

    @contextmanager
    def write(self) -> Iterator[EventLog]:
        """A write transaction, yielding the event log: the service names what happened
        with `log.log(type)` once its changes are made (see store/eventlog.py). Committing
        changes no event names is refused (TransactionMisuse: a bug in the service).

        Nested, it is a savepoint of the outer transaction, which logs and seals."""
        depth = getattr(self._depth, "n", 0)
        try:
            with bound(self.db), self._begin_write() if depth == 0 else self.db.atomic():
                self._depth.n = depth + 1
                try:
                    if depth == 0:
                        self.log.begin()
                    yield self.log
                    if depth == 0:
                        unlogged = self.log.unlogged()
                        if unlogged:
                            raise TransactionMisuse(
                                f"rows of {', '.join(unlogged)} changed with no event "
                                "logged: call log(type) on the transaction store.write() "
                                "yields, after the changes"
                            )
                        self.log.finish()
                except BaseException:
                    if depth == 0:
                        self.log.abort()
                    raise
                finally:
                    self._depth.n = depth
        except self._errors as exc:
            raise self._translate(exc, self._url) from None

    @contextmanager
    def read(self) -> Iterator[None]:
        """A read transaction: several queries see one consistent snapshot (on
        PostgreSQL: REPEATABLE READ, which never waits for a writer)."""
        try:
            if self.postgresql and DATABASE.obj is not self.db:
                transaction = self.db.atomic(isolation_level="REPEATABLE READ")
            else:
                transaction = self.db.atomic()
            with bound(self.db), transaction:
                yield
        except self._errors as exc:
            raise self._translate(exc, self._url) from None

    @contextmanager
    def translated(self) -> Iterator[None]:
        """Driver errors raised inside as the store's one line (StoreError), for work
        that runs its own transaction (audit import)."""
        try:
            yield
        except self._errors as exc:
            raise self._translate(exc, self._url) from None

    def require_transaction(self) -> None:
        """Raise TransactionMisuse unless a transaction of this store is open (models
        would otherwise reach no database, or another store's)."""
        require(self.db)

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()


def _read_only_uri(path: str) -> str | None:
    """An SQLite URI opening `path` read-only when we cannot write it, else None.

    An auditor may get the database on read-only media: reading must still work. With a
    writable folder, mode=ro lets SQLite keep its -shm there. On a read-only folder the
    file is opened immutable (no -shm needed), which is only right when no -wal holds
    changes SQLite would then ignore.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if os.access(path, os.W_OK) and os.access(folder, os.W_OK):
        return None
    from urllib.parse import quote

    uri = f"file:{quote(os.path.realpath(path))}?mode=ro"
    if not os.access(folder, os.W_OK):
        wal = path + "-wal"
        if os.path.exists(wal) and os.path.getsize(wal) > 0:
            raise StoreError(
                f"database {path} is on a read-only path with unsaved changes in "
                f"{os.path.basename(wal)}: "
                "copy both files to a writable folder to read it"
            )
        uri += "&immutable=1"
    return uri


def open_store(path: StrPath, *, migrate: bool = True) -> Store:
    """Open (creating if needed) the database at `path` and bring its schema up to date.

    A `postgresql://` URL opens a PostgreSQL database instead, whose schema is never
    changed on open: `migrate` there only means "refuse an old schema" (`db migrate`
    brings it up to date, see `migrate_store`)."""
    from deploytrack.store import migrations

    path = os.fspath(path)
    if path.startswith(("postgresql://", "postgres://")):
        return _open_postgresql(path, check=migrate)
    _ensure_file(path)
    uri = _read_only_uri(path)
    if migrate and uri is None:  # setting up; doctor (migrate=False) changes nothing
        _adopt_empty(path)
    db = peewee.SqliteDatabase(
        uri or path,
        uri=uri is not None,
        timeout=BUSY_TIMEOUT_S,
        # busy_timeout first: the others may already need the lock.
        pragmas=[
            ("busy_timeout", BUSY_TIMEOUT_S * 1000),
            ("foreign_keys", 1),
            ("synchronous", "NORMAL"),
        ],
        autoconnect=False,
    )
    store = Store(db, path)
    try:
        db.connect()
        if migrate:
            migrations.ensure_current(db, path)
            migrations.ensure_wal(db)
    except (peewee.PeeweeException, sqlite3.Error) as exc:
        store.close()
        raise translate(exc, path) from None
    except DeploytrackError:
        store.close()
        raise
    return store


def _open_postgresql(url: str, *, check: bool) -> Store:
    from deploytrack.store import pgmigrate, postgres

    db = postgres.open_database(url)
    store = Store(db, postgres.mask(url), backend="postgresql")
    try:
        db.connect()
        if check:
            pgmigrate.ensure_current(db, store.path)
    except store._errors as exc:
        store.close()
        raise postgres.translate(exc, url) from None
    except DeploytrackError:
        store.close()
        raise
    return store


def migrate_store(path: StrPath) -> list[str]:
    """Bring the schema of the database at `path` up to date; the names of the migrations
    applied (none when it was current). `db migrate` runs this: on PostgreSQL it is the
    only way a schema changes, under an advisory lock, so hosts migrating at once apply
    each step once; on SQLite every command does it on open (this is the same step)."""
    from deploytrack.store import migrations

    path = os.fspath(path)
    if path.startswith(("postgresql://", "postgres://")):
        from deploytrack.store import pgmigrate, postgres

        store = _open_postgresql(path, check=False)
        try:
            return pgmigrate.migrate(store.db)
        except store._errors as exc:
            raise postgres.translate(exc, path) from None
        finally:
            store.close()
    store = open_store(path, migrate=False)
    try:
        _adopt_empty(path)
        before = migrations.applied(store.db) or []
        migrations.ensure_current(store.db, path)
        migrations.ensure_wal(store.db)
        return migrations.pending(before)
    except (peewee.PeeweeException, sqlite3.Error) as exc:
        raise translate(exc, path) from None
    finally:
        store.close()
