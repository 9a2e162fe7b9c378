"""The audit bundle's rows: what an export reads from the tables, and loading a verified
bundle into a fresh database (`audit import`).

Export reads the stored bytes an event's row image names only by hash: every blob
(`blob.content`), every secret's ciphertext, and each plain variable value still present
with its salt (what opens the log's commitment to it). They come sorted by name and one
at a time, so memory stays flat.

Import writes one transaction with the schema's triggers set aside (dropped and created
again inside it) and without the event log's capture: the bundle's events are the
history, stored byte for byte, and the import itself logs nothing. The final state is
staged in TEMP tables while the events stream (SQLite keeps them in a temporary file),
then decoded into the tables: blob columns from the bundle's blobs, salted values from
its values, decimal strings back to integers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Iterator
from contextlib import closing
from typing import Any, cast

import peewee

from deploytrack import timeutil
from deploytrack.store import eventlog
from deploytrack.store.errors import StoreError
from deploytrack.tlog import merkle

# Salts are 16 random bytes (32 hex digits, a trigger of m005 insists).
SALT_BYTES = 16


def _sha256_hex(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(bytes(data)).hexdigest()


def _commitment_hex(salt: str | None, value: str | None) -> str | None:
    found = eventlog.commitment(salt, value)
    return None if found is None else found["commitment"]


def _postgresql(db: peewee.Database) -> bool:
    return not isinstance(db, peewee.SqliteDatabase)


def _functions(db: peewee.Database) -> None:
    """SQLite's hash functions for the queries below (PostgreSQL has its own)."""
    if _postgresql(db):
        return
    connection = db.connection()
    connection.create_function("deploytrack_sha256", 1, _sha256_hex, deterministic=True)
    connection.create_function("deploytrack_commitment", 2, _commitment_hex, deterministic=True)


_BLOBS = """
    SELECT name, src, rid FROM (
        SELECT deploytrack_sha256(content) AS name, 'blob' AS src, rowid AS rid FROM blob
        UNION ALL
        SELECT deploytrack_sha256(ciphertext), 'variable_event', id FROM variable_event
        WHERE ciphertext IS NOT NULL
    ) AS b ORDER BY name
"""
_VALUES = """
    SELECT deploytrack_commitment(value_salt, value) AS name, id FROM variable_event
    WHERE value IS NOT NULL ORDER BY name
"""
# The same on PostgreSQL, with its own SHA-256 (eventlog.commitment's, in SQL: the salt's
# bytes, then the value's UTF-8), names compared bytewise as Python compares them, and
# blobs named by digest (there is no rowid).
_PG_BLOBS = """
    SELECT name, src, rid FROM (
        SELECT encode(sha256(content), 'hex') COLLATE "C" AS name, 'blob' AS src,
            digest AS rid FROM blob
        UNION ALL
        SELECT encode(sha256(ciphertext), 'hex') COLLATE "C", 'variable_event', id::text
        FROM variable_event WHERE ciphertext IS NOT NULL
    ) AS b ORDER BY name
"""
# ORDER BY the output column `name` (an expression there would mean the table's column
# of that name: the variable's).
_PG_VALUES = """
    SELECT encode(sha256(decode(coalesce(value_salt, ''), 'hex')
        || convert_to(value, 'UTF8')), 'hex') COLLATE "C" AS name, id
    FROM variable_event WHERE value IS NOT NULL ORDER BY name
"""


def _blobs_sql(db: peewee.Database) -> str:
    return _PG_BLOBS if _postgresql(db) else _BLOBS


def _values_sql(db: peewee.Database) -> str:
    return _PG_VALUES if _postgresql(db) else _VALUES


def counts(db: peewee.Database) -> tuple[dict[str, int], int, int]:
    """(rows per state table, blobs, values) as an export will write them."""
    _functions(db)
    rows = {
        name: int(db.execute_sql(f'SELECT count(*) FROM "{name}"').fetchone()[0])
        for name in eventlog.state_tables(db)
    }
    blobs = db.execute_sql(f"SELECT count(DISTINCT name) FROM ({_blobs_sql(db)}) AS n")
    values = db.execute_sql(f"SELECT count(DISTINCT name) FROM ({_values_sql(db)}) AS n")
    return rows, int(blobs.fetchone()[0]), int(values.fetchone()[0])


def events_size(db: peewee.Database) -> int:
    """The bytes of events.jsonl: every event's body and its newline."""
    row = db.execute_sql("SELECT coalesce(sum(length(body)), 0) + count(*) FROM log_event")
    return int(row.fetchone()[0])


def last_event_time(db: peewee.Database) -> int | None:
    row = db.execute_sql("SELECT time FROM log_event ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else int(row[0])


def blobs(db: peewee.Database) -> Iterator[tuple[str, bytes]]:
    """(sha256 hex, bytes) of every stored blob and ciphertext, by name, each once."""
    _functions(db)
    previous = None
    by_digest = _postgresql(db)
    for name, src, rid in db.execute_sql(_blobs_sql(db)).fetchall():
        if name == previous:
            continue
        previous = name
        if src == "blob":
            sql = f"SELECT content FROM blob WHERE {'digest' if by_digest else 'rowid'} = ?"
        else:
            sql, rid = "SELECT ciphertext FROM variable_event WHERE id = ?", int(rid)
        yield str(name), bytes(db.execute_sql(sql, (rid,)).fetchone()[0])


def values(db: peewee.Database) -> Iterator[tuple[str, bytes]]:
    """(commitment hex, salt || UTF-8 value) of every plain variable value still stored."""
    _functions(db)
    previous = None
    for name, rid in db.execute_sql(_values_sql(db)).fetchall():
        if name == previous:
            continue
        previous = name
        salt, value = db.execute_sql(
            "SELECT value_salt, value FROM variable_event WHERE id = ?", (rid,)
        ).fetchone()
        yield str(name), bytes.fromhex(salt or "") + str(value).encode("utf-8")


# -- importing ---------------------------------------------------------------------------


def setup_only(db: peewee.Database) -> str | None:
    """None when the database holds only what setting it up wrote (its origin, the default
    logical environments and their events); else what it holds beyond that."""
    row = db.execute_sql(
        "SELECT count(*) FROM log_event WHERE type NOT IN ('log.started', 'imported')"
    ).fetchone()
    if int(row[0]):
        return f"{int(row[0])} events were logged since it was set up"
    for name in eventlog.state_tables(db):
        where = " WHERE is_default = 0" if name == "logical_environment" else ""
        found = int(db.execute_sql(f'SELECT count(*) FROM "{name}"{where}').fetchone()[0])
        if found:
            return f"its table {name} has {found} row{'s' if found != 1 else ''}"
    return None


def _integer_columns(db: peewee.Database, tables: dict[str, eventlog.Table]) -> dict[str, set[str]]:
    """The integer columns of each table: their values may come as decimal strings (an
    integer beyond 2**53 in a row image)."""
    if _postgresql(db):
        found: dict[str, set[str]] = {name: set() for name in tables}
        for table, column in db.execute_sql(
            "SELECT c.relname, a.attname FROM pg_attribute AS a JOIN pg_class AS c"
            " ON c.oid = a.attrelid WHERE c.relnamespace = (SELECT oid FROM pg_namespace"
            " WHERE nspname = current_schema()) AND a.attnum > 0 AND NOT a.attisdropped"
            " AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)"
        ).fetchall():
            if table in found:
                found[str(table)].add(str(column))
        return found
    return {
        name: {
            row[1]
            for row in db.execute_sql(f'PRAGMA table_info("{name}")').fetchall()
            if "INT" in str(row[2]).upper()
        }
        for name in tables
    }


def _parents_first(db: peewee.Database, tables: dict[str, eventlog.Table]) -> list[str]:
    """The state tables in an order PostgreSQL's foreign keys (enforced while loading)
    allow: each after the tables it references, else in creation order (a table's
    references to itself are to earlier rows, or deferred to the commit)."""
    parents: dict[str, set[str]] = {name: set() for name in tables}
    for child, parent in db.execute_sql(
        "SELECT c.relname, p.relname FROM pg_constraint AS k"
        " JOIN pg_class AS c ON c.oid = k.conrelid JOIN pg_class AS p ON p.oid = k.confrelid"
        " WHERE k.contype = 'f' AND k.connamespace = (SELECT oid FROM pg_namespace"
        " WHERE nspname = current_schema())"
    ).fetchall():
        if child in parents and parent in parents and child != parent:
            parents[str(child)].add(str(parent))
    order: list[str] = []
    while len(order) < len(parents):
        ready = [n for n in tables if n not in order and parents[n] <= set(order)]
        # A cycle (none in the schema): creation order, and the constraint says no.
        order.append(ready[0] if ready else next(n for n in tables if n not in order))
    return order


class Loader:
    """Loads a bundle's events and final rows; used inside `loading()`'s transaction."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.postgresql = _postgresql(db)
        # SQLite's session tables are temp.*, PostgreSQL's pg_temp.*.
        self.temp = "pg_temp" if self.postgresql else "temp"
        self.tables = eventlog.state_tables(db)
        self.integers = _integer_columns(db, self.tables)
        self.order = _parents_first(db, self.tables) if self.postgresql else list(self.tables)
        self.frontier: list[tuple[int, bytes]] = []
        self.size = 0

    def event(self, seq: int, time: int, event: dict[str, Any], body: bytes, leaf: bytes) -> None:
        """Store one event as it is in the bundle (`time`: its time in microseconds);
        keep the rows it changed aside in TEMP tables."""
        self.db.execute_sql(
            "INSERT INTO log_event (seq, time, type, body, leaf_hash) VALUES (?, ?, ?, ?, ?)",
            (seq, time, event["type"], body, leaf),
        )
        index, level, current = seq - 1, 0, leaf
        while self.frontier and self.frontier[-1][0] == level:
            _, left = self.frontier.pop()
            current = merkle.node_hash(left, current)
            level, index = level + 1, index >> 1
            self.db.execute_sql(
                "INSERT INTO log_node (level, idx, hash) VALUES (?, ?, ?)", (level, index, current)
            )
        self.frontier.append((level, current))
        self.size = seq
        # A row keeps the place it was first inserted in on PostgreSQL (its id order, which
        # the references of a table to itself need); SQLite checks them after the load.
        upsert = (
            f"INSERT INTO {self.temp}.bundle_row (tbl, key, image) VALUES (?, ?, ?)"
            " ON CONFLICT (tbl, key) DO UPDATE SET image = excluded.image"
            if self.postgresql
            else "INSERT OR REPLACE INTO temp.bundle_row (tbl, key, image) VALUES (?, ?, ?)"
        )
        for change in event["changes"]:
            # Only equal keys must give equal text here: json is faster than RFC 8785.
            key = json.dumps(change["key"], sort_keys=True, separators=(",", ":"))
            if change["op"] == "delete":
                self.db.execute_sql(
                    f"DELETE FROM {self.temp}.bundle_row WHERE tbl = ? AND key = ?",
                    (change["table"], key),
                )
            else:
                self.db.execute_sql(upsert, (change["table"], key, json.dumps(change["row"])))

    def blob(self, name: str, data: bytes) -> None:
        self.db.execute_sql(
            f"INSERT INTO {self.temp}.bundle_blob (name, data) VALUES (?, ?)", (name, data)
        )

    def value(self, name: str, data: bytes) -> None:
        self.db.execute_sql(
            f"INSERT INTO {self.temp}.bundle_value (name, data) VALUES (?, ?)", (name, data)
        )

    def finish(self, origin: str) -> None:
        """The origin, one tree head at the bundle's size, and every table's final rows."""
        self.db.execute_sql("INSERT INTO log_origin (id, origin) VALUES (1, ?)", (origin,))
        root = merkle.root_from_frontier([h for _, h in self.frontier])
        self.db.execute_sql(
            "INSERT INTO log_tree_head (size, root, created_at) VALUES (?, ?, ?)",
            (self.size, root, timeutil.now_us()),
        )
        known = set(self.tables)
        for (name,) in self.db.execute_sql(
            f"SELECT DISTINCT tbl FROM {self.temp}.bundle_row"
        ).fetchall():
            if name not in known:
                raise StoreError(
                    f"the bundle has rows of a table this database has not ({name}): import "
                    "it with the deploytrack version that exported it, or a newer one"
                )
        for name in self.order:
            table = self.tables[name]
            columns = ", ".join(f'"{c}"' for c in table.columns)
            marks = ", ".join("?" * len(table.columns))
            insert = f'INSERT INTO "{name}" ({columns}) VALUES ({marks})'
            rows = cast(
                Generator[Any, None, None],
                eventlog.stream(
                    self.db,
                    f"SELECT image FROM {self.temp}.bundle_row WHERE tbl = ?"
                    f" ORDER BY {'n' if self.postgresql else 'rowid'}",
                    (name,),
                ),
            )
            # Closed on a refusal too: PostgreSQL's cursor is the server's.
            with closing(rows):
                self._insert(table, insert, rows)

    def _insert(self, table: eventlog.Table, insert: str, rows: Iterator[Any]) -> None:
        for (image,) in rows:
            values = self._decode(table, json.loads(image))
            try:
                self.db.execute_sql(insert, values)
            except peewee.IntegrityError as exc:
                # PostgreSQL enforces the references as rows arrive: its refusal in the
                # words SQLite's check after the load uses.
                parent = _missing_parent(exc)
                if parent is None:
                    raise
                row = values[table.columns.index(table.key[0])]
                raise StoreError(
                    f"the bundle's {table.name} row {row} names a row of {parent} that it "
                    "does not hold"
                ) from None

    def _decode(self, table: eventlog.Table, image: dict[str, Any]) -> list[Any]:
        """A row's values in column order, from its image."""
        salts = {salt: column for column, salt in table.salted.items()}
        columns = set(table.columns) - set(salts)
        if set(image) != columns:
            odd = sorted(set(image) ^ columns)
            raise StoreError(
                f"the bundle's rows of {table.name} do not have this database's columns "
                f"({', '.join(odd)}): import it with the deploytrack version that exported "
                "it, or a newer one"
            )
        out: list[Any] = []
        for column in table.columns:
            if column in salts:
                opened = self._opened(image.get(salts[column]), table.name)
                out.append(None if opened is None else opened[0])
                continue
            value = image.get(column)
            if column in table.salted:
                opened = self._opened(value, table.name)
                value = None if opened is None else opened[1]
            elif column in table.blobs and value is not None:
                value = self._stored("bundle_blob", value["sha256"], table.name)
            elif isinstance(value, str) and column in self.integers[table.name]:
                value = int(value)
            out.append(value)
        return out

    def _opened(self, value: Any, table: str) -> tuple[str, str] | None:
        if value is None:
            return None
        data = self._stored("bundle_value", value["commitment"], table)
        return data[:SALT_BYTES].hex(), data[SALT_BYTES:].decode("utf-8")

    def _stored(self, staged: str, name: str, table: str) -> bytes:
        row = self.db.execute_sql(
            f"SELECT data FROM {self.temp}.{staged} WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise StoreError(f"a row of {table} names {name}, which the bundle does not hold")
        return bytes(row[0])


def _missing_parent(exc: BaseException) -> str | None:
    """The referenced table of a PostgreSQL foreign key violation (SQLSTATE 23503)."""
    from deploytrack.store import postgres

    if postgres.sqlstate(exc) != "23503":
        return None
    original: Any = getattr(exc, "orig", None) or exc
    detail = str(getattr(getattr(original, "diag", None), "message_detail", "") or "")
    # 'Key (column)=(value) is not present in table "parent".'
    return detail.rpartition('table "')[2].rstrip('".') or "another table"


# The staging tables of an import: TEMP, so no other connection sees them (PostgreSQL
# drops them at the commit; SQLite's are dropped by `Loading`).
_STAGING = {
    "sqlite": (
        "CREATE TEMP TABLE bundle_row (tbl TEXT NOT NULL, key BLOB NOT NULL,"
        " image BLOB NOT NULL, PRIMARY KEY (tbl, key))",
        "CREATE TEMP TABLE bundle_blob (name TEXT PRIMARY KEY, data BLOB NOT NULL)",
        "CREATE TEMP TABLE bundle_value (name TEXT PRIMARY KEY, data BLOB NOT NULL)",
    ),
    "postgresql": (
        "CREATE TEMP TABLE bundle_row (n bigserial, tbl text NOT NULL, key text NOT NULL,"
        " image text NOT NULL, PRIMARY KEY (tbl, key)) ON COMMIT DROP",
        "CREATE TEMP TABLE bundle_blob (name text PRIMARY KEY, data bytea NOT NULL) ON COMMIT DROP",
        "CREATE TEMP TABLE bundle_value (name text PRIMARY KEY, data bytea NOT NULL)"
        " ON COMMIT DROP",
    ),
}


class Loading:
    """`with Loading(db) as loader:` one write transaction that empties a freshly set-up
    database and loads a bundle into it; any error rolls all of it back."""

    def __init__(self, db: peewee.Database, path: str) -> None:
        self.db = db
        self.path = path
        self.postgresql = _postgresql(db)
        self._atomic: Any = None
        self._triggers: list[str] = []
        self._disabled: list[str] = []

    def __enter__(self) -> Loader:
        if self.postgresql:
            return self._enter_postgresql()
        temp = self.db.execute_sql(
            "SELECT count(*) FROM temp.sqlite_master WHERE type = 'trigger'"
        ).fetchone()
        if int(temp[0]):
            # The capture would log the import as events of its own.
            raise StoreError("the event log's capture is installed on this connection")
        # Foreign keys are checked once, over the loaded tables, before the commit
        # (`finish`): enforced row by row, every deployment inserted while a reference
        # waits for a later row would scan the unindexed lineage columns (quadratic).
        # The pragma is a no-op inside a transaction, hence here.
        self.db.execute_sql("PRAGMA foreign_keys = OFF")
        self._atomic = self.db.atomic("IMMEDIATE")
        self._atomic.__enter__()
        try:
            self._refuse_content()
            triggers = self.db.execute_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY rowid"
            ).fetchall()
            self._triggers = [str(sql) for _, sql in triggers]
            for name, _ in triggers:
                self.db.execute_sql(f'DROP TRIGGER "{name}"')
            for name in [*eventlog.state_tables(self.db), *sorted(eventlog.LOG_TABLES)]:
                self.db.execute_sql(f'DELETE FROM "{name}"')
            for statement in _STAGING["sqlite"]:
                self.db.execute_sql(statement)
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            self.db.execute_sql("PRAGMA foreign_keys = ON")
            raise
        return Loader(self.db)

    def _refuse_content(self) -> None:
        held = setup_only(self.db)
        if held is not None:
            raise StoreError(
                f"database {self.path} is not empty ({held}): an audit bundle is imported "
                "into a new database only; give --db a path that does not exist yet"
                if not self.postgresql
                else f"database {self.path} is not empty ({held}): an audit bundle is "
                "imported into a new database only; create one and run db migrate on it "
                "(docs/postgresql.md)"
            )

    def _enter_postgresql(self) -> Loader:
        """PostgreSQL: the write lock (no writer runs meanwhile), then the schema's own
        triggers set aside with ALTER TABLE ... DISABLE TRIGGER USER, which is part of the
        transaction (DDL is transactional here) and enabled again before the commit. The
        capture triggers are among them, and the capture is never switched on: the
        bundle's events are the log. Foreign keys stay enforced (their triggers are the
        system's, not the user's): the loader inserts parents first."""
        from deploytrack.store.postgres import WRITE_LOCK

        self._atomic = self.db.atomic()
        self._atomic.__enter__()
        try:
            self.db.execute_sql("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            self._refuse_content()
            tables = eventlog.state_tables(self.db)
            order = _parents_first(self.db, tables)
            self._disabled = [*order, *sorted(eventlog.LOG_TABLES)]
            for name in self._disabled:
                self.db.execute_sql(f'ALTER TABLE "{name}" DISABLE TRIGGER USER')
            # Children before the rows they reference.
            for name in [*reversed(order), *sorted(eventlog.LOG_TABLES)]:
                self.db.execute_sql(f'DELETE FROM "{name}"')
            for statement in _STAGING["postgresql"]:
                self.db.execute_sql(statement)
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return Loader(self.db)

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        try:
            if kind is None:
                self._check_references()
                if self.postgresql:
                    # The deferred checks run now (they found nothing above): a table with
                    # pending trigger events cannot be altered.
                    self.db.execute_sql("SET CONSTRAINTS ALL IMMEDIATE")
                    for name in self._disabled:
                        self.db.execute_sql(f'ALTER TABLE "{name}" ENABLE TRIGGER USER')
                else:
                    for sql in self._triggers:
                        self.db.execute_sql(sql)
                    for name in ("bundle_row", "bundle_blob", "bundle_value"):
                        self.db.execute_sql(f"DROP TABLE temp.{name}")
        except BaseException as error:
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise
        else:
            self._atomic.__exit__(kind, exc, tb)
        finally:
            if not self.postgresql:
                self.db.execute_sql("PRAGMA foreign_keys = ON")

    def _check_references(self) -> None:
        """Every reference of the loaded rows points at a loaded row (on PostgreSQL, those
        it defers to the commit: a superseded record's successor)."""
        if self.postgresql:
            from deploytrack.store import health

            broken = health.pg_foreign_key_check(self.db)[:1]
            found = broken[0][:3] if broken else None
        else:
            row = self.db.execute_sql("PRAGMA foreign_key_check").fetchone()
            found = None if row is None else tuple(row[:3])
        if found is not None:
            table, rowid, parent = found
            raise StoreError(
                f"the bundle's {table} row {rowid} names a row of {parent} that it does not hold"
            )


__all__ = ["Loader", "Loading", "blobs", "counts", "events_size", "setup_only", "values"]
