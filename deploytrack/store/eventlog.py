"""The event log: every change of state, appended in the transaction that makes it.

Capture. On the first write of a connection, TEMP triggers are created on every state
table (every table but the log's own and the migration bookkeeping): after each INSERT,
UPDATE or DELETE they call `deploytrack_change(table, op, key...)`, a function that
exists only in deploytrack's own connections. The triggers are temporary, so they exist
in no other program's connection and in no file; the changes they report are complete by
construction, including those the schema's own triggers make (a deployment slot, a
redacted value). A service names what happened (`Transaction.log(type)`); the rows
changed since the last event become its changes, each with its complete new image read
back from the table. A write transaction that changed rows and logged no event is
refused, as a programming error.

Events are canonical JSON (RFC 8785) and the leaves of an RFC 6962 Merkle tree. Appending
stores the interior nodes each leaf completes (level >= 1 in `log_node`; the leaves are
`log_event.leaf_hash`), so the right frontier — and any subtree a proof needs — is a few
primary-key lookups, whatever the length of the log. Each write transaction ends with a
tree head (size, root).

Row images. Columns are stored as they are, with three exceptions that keep the log
verifiable while it holds no secret and outlives a redaction: a BLOB column is
`{"sha256", "size"}` of its bytes; a column `X` with a sibling `X_salt` (a plain variable
value) is `{"commitment": hex SHA-256(salt bytes || X as UTF-8)}` and the salt itself is
left out; an integer beyond 2**53 (what an RFC 8785 number holds exactly) is a decimal
string.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import peewee

from deploytrack import timeutil
from deploytrack.tlog import merkle
from deploytrack.tlog.replay import ORIGIN_PREFIX, canonical

# The tables of the log itself and the migrations' bookkeeping: every other table is
# state, captured and replayed.
LOG_TABLES = frozenset({"log_event", "log_node", "log_tree_head", "log_origin"})
NOT_STATE = LOG_TABLES | {"deploytrack_migration"}

__all__ = ["ORIGIN_PREFIX", "EventLog", "EventType", "canonical"]

Op = Literal["insert", "update", "delete"]

# What a service says happened. One home for the names: docs/log.md lists them.
EventType = Literal[
    "log.started",
    "imported",
    "schema.migrated",
    "environment.created",
    "environment.updated",
    "environment.deleted",
    "logical_environment.created",
    "logical_environment.updated",
    "logical_environment.deleted",
    "attestation.imported",
    "attestation.pulled",
    "attestation.verified",
    "deployment.recorded",
    "deployment.superseded",
    "deployment.heartbeat",
    "deployment.decommissioned",
    "deployment.promoted",
    "deployment.rolled_back",
    "policy.set",
    "policy.cleared",
    "variable.set",
    "variable.unset",
    "variable.redacted",
]

_SAFE_INTEGER = 2**53 - 1


class Table:
    """A state table's columns, as the image encoding needs them."""

    __slots__ = ("blobs", "captured", "columns", "key", "name", "salted")

    def __init__(
        self, name: str, info: Sequence[tuple[Any, ...]], refused: frozenset[str] = frozenset()
    ) -> None:
        self.name = name
        # The changes to capture: all three, but for those the schema refuses outright
        # (an append-only table's no_update / no_delete trigger): none ever happens.
        self.captured = tuple(op for op in ("insert", "update", "delete") if op not in refused)
        # PRAGMA table_info: (cid, name, type, notnull, default, pk)
        self.columns = [row[1] for row in info]
        pk = sorted((row[5], row[1]) for row in info if row[5])
        self.key = [name for _, name in pk] or ["rowid"]
        self.blobs = frozenset(row[1] for row in info if str(row[2]).upper() == "BLOB")
        names = set(self.columns)
        self.salted = {c[: -len("_salt")]: c for c in self.columns if c.endswith("_salt")}
        self.salted = {c: s for c, s in self.salted.items() if c in names}

    def image(self, values: Sequence[Any]) -> dict[str, Any]:
        """The row's image in an event, from its values in column order."""
        row = dict(zip(self.columns, values, strict=True))
        out: dict[str, Any] = {}
        for column, value in row.items():
            if column in self.salted.values():
                continue
            if column in self.salted:
                value = commitment(row[self.salted[column]], value)
            elif column in self.blobs and value is not None:
                data = bytes(value)
                value = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            elif isinstance(value, int) and not -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
                value = str(value)
            out[column] = value
        return out

    def key_of(self, image: dict[str, Any]) -> dict[str, Any]:
        return {k: image[k] for k in self.key}


def commitment(salt: str | None, value: str | None) -> dict[str, str] | None:
    """A salted SHA-256 commitment to a plain value: the log proves what the value was to
    whoever holds value and salt, and tells nobody else (a low-entropy value cannot be
    guessed from it); a redaction removes both, and the commitment stays verifiable."""
    if value is None:
        return None
    salt_bytes = bytes.fromhex(salt) if salt else b""
    digest = hashlib.sha256(salt_bytes + value.encode("utf-8")).hexdigest()
    return {"commitment": digest}


def state_tables(db: peewee.Database) -> dict[str, Table]:
    """Every state table of the database, by name, in the order they were created (which
    is an order their foreign keys allow). One query: this runs on every write command."""
    if not isinstance(db, peewee.SqliteDatabase):
        return _pg_state_tables(db)
    rows = (
        db.connection()
        .execute(
            'SELECT m.name, p.cid, p.name, p.type, p."notnull", p.dflt_value, p.pk'
            " FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p"
            " WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.rowid, p.cid"
        )
        .fetchall()
    )
    # The triggers `migrations.no_update` / `no_delete` make: they refuse every UPDATE or
    # DELETE of their table, unconditionally (no WHEN).
    refusing = db.connection().execute(
        "SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'"
        " AND (name GLOB '*_no_update' OR name GLOB '*_no_delete') AND sql NOT LIKE '%WHEN%'"
    )
    return _tables(rows, refusing.fetchall())


def _tables(rows: Sequence[Sequence[Any]], refusing: Sequence[Sequence[Any]]) -> dict[str, Table]:
    columns: dict[str, list[tuple[Any, ...]]] = {}
    for name, *info in rows:
        if name not in NOT_STATE:
            columns.setdefault(name, []).append(tuple(info))
    refused: dict[str, set[str]] = {}
    for table, trigger in refusing:
        if trigger in (f"{table}_no_update", f"{table}_no_delete"):
            refused.setdefault(table, set()).add(trigger.rsplit("_", 1)[1])
    return {
        name: Table(name, info, frozenset(refused.get(name, ()))) for name, info in columns.items()
    }


def _pg_state_tables(db: peewee.Database) -> dict[str, Table]:
    """`state_tables` on PostgreSQL, from its catalogue, in the PRAGMA table_info shape:
    tables in creation (oid) order, columns in order, bytea as BLOB, the position of each
    column in the primary key. PostgreSQL's append-only triggers (store/pgschema.py) have
    the same names as SQLite's and refuse unconditionally too."""
    rows = db.execute_sql(
        "SELECT c.relname, a.attnum, a.attname,"
        " CASE WHEN a.atttypid = 'bytea'::regtype THEN 'BLOB' ELSE 'INTEGER' END,"
        " a.attnotnull, NULL, coalesce((SELECT k.n FROM unnest(i.indkey) WITH ORDINALITY"
        " AS k(att, n) WHERE k.att = a.attnum), 0)"
        " FROM pg_class AS c"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = current_schema()"
        " JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " LEFT JOIN pg_index AS i ON i.indrelid = c.oid AND i.indisprimary"
        " WHERE c.relkind = 'r' ORDER BY c.oid, a.attnum"
    ).fetchall()
    refusing = db.execute_sql(
        "SELECT c.relname, t.tgname FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = current_schema()"
        " WHERE NOT t.tgisinternal"
        " AND (t.tgname LIKE '%\\_no\\_update' OR t.tgname LIKE '%\\_no\\_delete')"
    ).fetchall()
    return _tables(rows, refusing)


Change = tuple[str, str, tuple[Any, ...]]


class Capture:
    """The changes of the current write transaction, per thread (each thread has its own
    connection), reported by the TEMP triggers."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def changes(self) -> list[Change]:
        changes: list[Change] | None = getattr(self._local, "changes", None)
        if changes is None:
            changes = self._local.changes = []
        return changes

    def __call__(self, table: str, op: str, *key: Any) -> None:
        self.changes.append((table, op, key))

    def begin(self, db: peewee.Database, tables: dict[str, Table]) -> None:
        self.install(db, tables)
        self.changes.clear()

    def take(self, db: peewee.Database) -> list[Change]:
        """The changes reported since the last call, in the order they happened."""
        taken = list(self.changes)
        self.changes.clear()
        return taken

    def pending(self, db: peewee.Database) -> list[str]:
        return sorted({table for table, _, _ in self.changes})

    def clear(self) -> None:
        self.changes.clear()

    def install(self, db: peewee.Database, tables: dict[str, Table]) -> None:
        """Create the TEMP triggers on this thread's connection, unless they are there.

        Inside the write transaction, through the sqlite3 connection itself (peewee's
        execute_sql would add ~20 us to each of the ~20 statements). Whether they are
        there is asked of the temp schema, not remembered: DDL is transactional, and
        triggers created in a transaction that rolled back are gone with it.
        """
        connection = db.connection()
        if getattr(self._local, "function_on", None) is not connection:
            connection.create_function("deploytrack_change", -1, self)
            self._local.function_on = connection
        present = connection.execute(
            "SELECT count(*) FROM sqlite_temp_master WHERE type = 'trigger'"
            " AND name GLOB 'deploytrack_capture_*'"
        ).fetchone()[0]
        if present == sum(len(table.captured) for table in tables.values()):
            return
        for table in tables.values():
            for op in table.captured:
                row = "OLD" if op == "delete" else "NEW"
                key = ", ".join(f'{row}."{k}"' for k in table.key)
                connection.execute(
                    f'CREATE TEMP TRIGGER IF NOT EXISTS "deploytrack_capture_{table.name}_{op}"'
                    f' AFTER {op.upper()} ON main."{table.name}"'
                    f" BEGIN SELECT deploytrack_change('{table.name}', '{op}', {key}); END"
                )


# PostgreSQL has no TEMP triggers: its capture triggers are part of the schema (installed
# by `db migrate`, `install_pg_capture`) and report only where a session asked for it,
# into that session's TEMP table, in the order rows changed. Another program's writes are
# not captured, as on SQLite: `log verify` finds them.
_PG_CAPTURE_FUNCTION = """CREATE OR REPLACE FUNCTION deploytrack_capture() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    image jsonb;
    k jsonb;
BEGIN
    IF coalesce(current_setting('deploytrack.capture', true), '') <> 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN image := to_jsonb(OLD); ELSE image := to_jsonb(NEW); END IF;
    SELECT jsonb_agg(image -> a.col ORDER BY a.n) INTO k
        FROM unnest(TG_ARGV) WITH ORDINALITY AS a(col, n);
    INSERT INTO deploytrack_change (tbl, op, key) VALUES (TG_TABLE_NAME, lower(TG_OP), k);
    RETURN NULL;
END $$"""

# `_dt_capture_...`: PostgreSQL fires a table's AFTER triggers in name order, and the
# capture must come first (the row, then what the schema's own triggers did with it: a
# deployment slot, a redaction), as SQLite's TEMP triggers do.
PG_CAPTURE_PREFIX = "_dt_capture_"


def install_pg_capture(db: peewee.Database) -> None:
    """Create (or replace) the capture triggers of every state table: after migrations."""
    db.execute_sql(_PG_CAPTURE_FUNCTION)
    for table in _pg_state_tables(db).values():
        for op in table.captured:
            args = ", ".join(f"'{k}'" for k in table.key)
            db.execute_sql(
                f'CREATE OR REPLACE TRIGGER "{PG_CAPTURE_PREFIX}{table.name}_{op}"'
                f' AFTER {op.upper()} ON "{table.name}" FOR EACH ROW'
                f" EXECUTE FUNCTION deploytrack_capture({args})"
            )


class PgCapture:
    """The capture on PostgreSQL: the schema's triggers write this session's changes into
    a TEMP table while `deploytrack.capture` is on (set for the transaction only)."""

    def begin(self, db: peewee.Database, tables: dict[str, Table]) -> None:
        from deploytrack.store.postgres import WRITE_LOCK

        # One round trip: the write lock first (writes are serialised: store/postgres.py),
        # then the session's change table (gone if an earlier transaction that created it
        # rolled back) and the switch, both for this transaction.
        db.connection().execute(
            f"SELECT pg_advisory_xact_lock({WRITE_LOCK});"
            " CREATE TEMP TABLE IF NOT EXISTS deploytrack_change"
            " (n bigserial PRIMARY KEY, tbl text NOT NULL, op text NOT NULL, key jsonb)"
            " ON COMMIT DELETE ROWS;"
            " SELECT set_config('deploytrack.capture', 'on', true)"
        )

    def take(self, db: peewee.Database) -> list[Change]:
        rows = db.execute_sql("DELETE FROM deploytrack_change RETURNING n, tbl, op, key")
        return [(str(t), str(o), tuple(k)) for _, t, o, k in sorted(rows.fetchall())]

    def pending(self, db: peewee.Database) -> list[str]:
        rows = db.execute_sql("SELECT DISTINCT tbl FROM deploytrack_change").fetchall()
        return sorted(str(r[0]) for r in rows)

    def clear(self) -> None:
        """Nothing to do: the rows go with the transaction."""


class EventLog:
    """The log of one store: capture and append (inside the store's write transaction)."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.capture: Capture | PgCapture = (
            Capture() if isinstance(db, peewee.SqliteDatabase) else PgCapture()
        )
        self._tables: dict[str, Table] | None = None
        self._local = threading.local()

    @property
    def tables(self) -> dict[str, Table]:
        if self._tables is None:
            self._tables = state_tables(self.db)
        return self._tables

    # -- the write transaction -------------------------------------------------------

    def begin(self) -> None:
        """At the start of an outermost write transaction (inside it): the capture
        triggers, created if they are not there."""
        self.capture.begin(self.db, self.tables)
        self._local.appended = False

    def abort(self) -> None:
        self.capture.clear()
        self._local.appended = False

    def unlogged(self) -> list[str]:
        """The tables changed since the last event (empty when every change is logged)."""
        return self.capture.pending(self.db)

    def finish(self) -> None:
        """Before the outermost write transaction commits: seal the events it appended
        with a tree head."""
        if getattr(self._local, "appended", False):
            seal(self.db)
        self._local.appended = False

    def log(self, type: EventType, **fields: Any) -> int | None:
        """Append the changes captured since the last event as one event of `type`; the
        new event's sequence number, or None when nothing changed."""
        changes = self._coalesce(self.capture.take(self.db))
        if not changes:
            return None
        seq = append(self.db, type, changes, **fields)
        self._local.appended = True
        return seq

    def _coalesce(self, raw: list[Change]) -> list[dict[str, Any]]:
        """One change per row, in the order rows were first touched, with the row's image
        as it is now (a row inserted and deleted again, or inserted in a savepoint that
        rolled back, is no change)."""
        first: dict[tuple[str, tuple[Any, ...]], str] = {}
        for name, op, key in raw:
            first.setdefault((name, key), op)
        out: list[dict[str, Any]] = []
        for (name, key), op in first.items():
            table = self.tables[name]
            where = " AND ".join(f'"{k}" = ?' for k in table.key)
            values = _sql(self.db, f'SELECT * FROM "{name}" WHERE {where}', key).fetchone()
            key_dict = dict(zip(table.key, key, strict=True))
            if values is None:
                if op != "insert":
                    out.append({"table": name, "op": "delete", "key": key_dict})
                continue
            image = table.image(values)
            out.append(
                {
                    "table": name,
                    "op": "insert" if op == "insert" else "update",
                    "key": table.key_of(image),
                    "row": image,
                }
            )
        return out


# -- appending ---------------------------------------------------------------------


def _sql(db: peewee.Database, sql: str, params: Sequence[Any] = ()) -> Any:
    """A statement on the connection itself: these run on every write command, and
    peewee's execute_sql adds ~20 us to each. The store translates sqlite3's errors.
    (PostgreSQL's goes through execute_sql, which turns `?` into psycopg's `%s`.)"""
    if isinstance(db, peewee.SqliteDatabase):
        return db.connection().execute(sql, params)
    return db.execute_sql(sql, params)


_cursor_names = itertools.count(1)


def stream(db: peewee.Database, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
    """The rows of a query as they are read, for passes over a whole table or log:
    sqlite3's cursors already do; psycopg's plain cursors fetch every row at once, so on
    PostgreSQL this is a server-side cursor (inside the transaction that reads), closed
    when the rows run out or the iterator is dropped (DDL waits for no open cursor)."""
    if isinstance(db, peewee.SqliteDatabase):
        yield from db.connection().execute(sql, params)
        return
    from deploytrack.store.postgres import convert

    with db.connection().cursor(name=f"deploytrack_stream_{next(_cursor_names)}") as cursor:
        cursor.itersize = 2000
        cursor.execute(convert(sql), params)
        yield from cursor


def size(db: peewee.Database) -> int:
    return int(_sql(db, "SELECT coalesce(max(seq), 0) FROM log_event").fetchone()[0])


def append(
    db: peewee.Database,
    type: str,
    changes: list[dict[str, Any]],
    *,
    time: int | None = None,
    **fields: Any,
) -> int:
    """Append one event; its sequence number (1-based)."""
    seq = size(db) + 1
    now = timeutil.now_us() if time is None else time
    event = {"seq": seq, "time": timeutil.rfc3339(now), "type": type, "changes": changes}
    event.update(fields)
    body = canonical(event)
    leaf = merkle.leaf_hash(body)
    _sql(
        db,
        "INSERT INTO log_event (seq, time, type, body, leaf_hash) VALUES (?, ?, ?, ?, ?)",
        (seq, now, type, body, leaf),
    )
    _complete_nodes(db, seq - 1, leaf)
    return seq


def _complete_nodes(db: peewee.Database, index: int, leaf: bytes) -> None:
    """Store the interior nodes the leaf at `index` completes: while the node is a right
    child, its left sibling is stored and their parent is complete. Amortised one insert
    per leaf; at most log2(n)."""
    level, current = 0, leaf
    while index & 1:
        left = node(db, level, index - 1)
        current = merkle.node_hash(left, current)
        level, index = level + 1, index >> 1
        _sql(
            db, "INSERT INTO log_node (level, idx, hash) VALUES (?, ?, ?)", (level, index, current)
        )


def node(db: peewee.Database, level: int, index: int) -> bytes:
    """The root of the perfect subtree at (level, index): a leaf hash at level 0."""
    if level == 0:
        row = _sql(db, "SELECT leaf_hash FROM log_event WHERE seq = ?", (index + 1,)).fetchone()
    else:
        row = _sql(
            db, "SELECT hash FROM log_node WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
    if row is None:
        raise LookupError(f"the log has no node at level {level}, index {index}")
    return bytes(row[0])


def root(db: peewee.Database, tree_size: int | None = None) -> tuple[int, bytes]:
    """The (size, root) of the log's first `tree_size` events (default: all of them)."""
    n = size(db) if tree_size is None else tree_size
    return n, merkle.root_from_frontier(
        [node(db, level, index) for level, index in merkle.frontier_sizes(n)]
    )


def subtree(db: peewee.Database) -> merkle.Subtree:
    """The root of leaves [lo, hi) from stored nodes, for proofs."""

    def mth(lo: int, hi: int) -> bytes:
        width = hi - lo
        if width & (width - 1) == 0 and lo % width == 0:
            return node(db, width.bit_length() - 1, lo // width)
        split = 1 << ((width - 1).bit_length() - 1)
        return merkle.node_hash(mth(lo, lo + split), mth(lo + split, hi))

    return mth


def seal(db: peewee.Database) -> tuple[int, bytes]:
    """Record the tree head of the log as it is now."""
    n, head = root(db)
    _sql(
        db,
        "INSERT INTO log_tree_head (size, root, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (size) DO NOTHING",
        (n, head, timeutil.now_us()),
    )
    return n, head


def origin(db: peewee.Database) -> str:
    row = _sql(db, "SELECT origin FROM log_origin").fetchone()
    if row is None:
        raise LookupError("the log has no origin")
    return str(row[0])


# -- reading -------------------------------------------------------------------------


def events(
    db: peewee.Database, *, start: int = 1, batch: int = 2000
) -> Iterator[tuple[int, int, str, bytes, bytes]]:
    """(seq, time, type, body, leaf_hash) from `start` on, in order, a batch at a time:
    memory stays flat however long the log."""
    while True:
        rows = _sql(
            db,
            "SELECT seq, time, type, body, leaf_hash FROM log_event WHERE seq >= ?"
            " ORDER BY seq LIMIT ?",
            (start, batch),
        ).fetchall()
        for seq, time, type_, body, leaf in rows:
            yield int(seq), int(time), str(type_), bytes(body), bytes(leaf)
        if len(rows) < batch:
            return
        start = int(rows[-1][0]) + 1


# -- setting up ----------------------------------------------------------------------


def log_rows_again(db: peewee.Database, table_name: str, migration: str) -> None:
    """For a migration that changed every row's image of a table (a column added): one
    `schema.migrated` event per existing row with its new image, so that the log still
    replays to the table. Row by row from the cursor: a large history is never held in
    memory whole."""
    table = state_tables(db)[table_name]
    order = ", ".join(f'"{k}"' for k in table.key)
    appended = False
    for values in stream(db, f'SELECT * FROM "{table_name}" ORDER BY {order}'):
        image = table.image(values)
        change = {"table": table_name, "op": "update", "key": table.key_of(image)}
        change["row"] = image
        append(db, "schema.migrated", [change], migration=migration)
        appended = True
    if appended:
        seal(db)


def start(db: peewee.Database, new_origin: str) -> None:
    """The log's first event: its origin, which every checkpoint names. Then one
    `imported` event per row that existed before the log (a new database's default
    logical environments; an older database's whole content), table by table in creation
    order and by key within a table: their earlier history was never logged."""
    now = timeutil.now_us()
    _sql(db, "INSERT INTO log_origin (id, origin) VALUES (1, ?)", (new_origin,))
    append(db, "log.started", [], time=now, origin=new_origin)
    for table in state_tables(db).values():
        order = ", ".join(f'"{k}"' for k in table.key)
        cursor = stream(db, f'SELECT * FROM "{table.name}" ORDER BY {order}')
        # Row by row from the cursor, not fetchall(): an old database's largest table
        # would otherwise be held in memory whole while its events are written.
        for values in cursor:
            image = table.image(values)
            change = {"table": table.name, "op": "insert", "key": table.key_of(image)}
            change["row"] = image
            append(db, "imported", [change], time=now, imported=True)
    seal(db)
