"""`variable redact --id N` erases a plain value set by mistake — its bytes leave
the database file, its WAL and its shm — and is the only change the history accepts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
from conftest import Invoke, assert_refused, execute, is_pg, query, snapshot

STAGE = ("--logical-env", "production")
ENV = (*STAGE, "--env", "prod-cluster")
SCOPE = (*ENV, "--deployment-name", "api")
MISTAKE = "postgres://admin:Hunter2-mistake-5b7e@db/api"
CONTROL = "a-plain-value-that-stays-4d1c"


@pytest.fixture(autouse=True)
def _environments(ok: Invoke) -> None:
    ok("environment", "create", "--name", "prod-cluster")


SALT = "0" * 32  # a well-formed value salt (m005)


def raw(db_path: Path) -> bytes:
    """Every byte of the database, its -wal and its -shm."""
    return b"".join(
        p.read_bytes() for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"))
        if p.exists()
    )  # fmt: skip


def leftovers(data: bytes, value: str, width: int = 8) -> set[bytes]:
    """Every piece of `value` (`width` bytes) still in `data`: blanking a value without
    secure_delete leaves the front of it in the page's free space, so searching for the
    whole value would miss it."""
    encoded = value.encode()
    pieces = {encoded[i : i + width] for i in range(len(encoded) - width + 1)}
    return {piece for piece in pieces if piece in data}


@pytest.fixture
def holder(db_path: Path, ok: Invoke) -> Iterator[sqlite3.Connection]:
    """A second connection, idle: while it is open, a CLI that exits does not checkpoint
    and remove the WAL, so what the WAL holds can be searched."""
    ok("variable", "list", *STAGE)  # the database exists, migrated
    conn = sqlite3.connect(db_path)
    conn.execute("SELECT count(*) FROM variable_event").fetchall()
    try:
        yield conn
    finally:
        conn.close()


def history(ok: Invoke, *args: str) -> list[dict[str, Any]]:
    return json.loads(ok("variable", "history", *STAGE, *args, "-o", "json").stdout)


def entry_id(ok: Invoke, value: str) -> int:
    return next(c["id"] for c in history(ok) if c["value"] == value)


def resolved(ok: Invoke) -> dict[str, str]:
    body = json.loads(ok("variable", "resolve", *SCOPE, "-o", "json").stdout)
    return {name: v["value"] for name, v in body.items()}


@pytest.mark.sqlite_only(
    reason="what SQLite's WAL holds while a connection keeps it; the files on both "
    "backends: test_redaction_leaves_no_piece_of_the_value_in_the_files"
)
@pytest.mark.parametrize("size", ["short", "overflow"])
def test_redaction_erases_the_bytes_from_db_wal_and_shm(
    ok: Invoke, db_path: Path, holder: sqlite3.Connection, size: str
) -> None:
    # A value larger than a page lives in overflow pages, which are freed, not rewritten.
    mistake = MISTAKE if size == "short" else MISTAKE + "OVERFLOW-PART-" * 4000
    ok("variable", "set", "CONTROL", CONTROL, *STAGE)
    ok("variable", "set", "DATABASE_URL", mistake, *ENV)
    ok("variable", "set", "LATER", "comes after", *ENV)
    assert MISTAKE.encode() in raw(db_path)  # the search finds what is there
    assert Path(f"{db_path}-wal").stat().st_size > 0  # ...in a WAL the holder keeps alive
    target = entry_id(ok, mistake)
    result = ok("variable", "redact", "--id", str(target))
    assert result.stdout.startswith(
        f"Redacted entry {target} (DATABASE_URL at production env=prod-cluster, set "
    )
    assert result.stderr == ""
    data = raw(db_path)
    assert leftovers(data, mistake) == set()
    assert CONTROL.encode() in data
    assert Path(f"{db_path}-wal").stat().st_size == 0  # checkpointed and truncated


def test_redaction_is_its_own_history_line(ok: Invoke, db_path: Path) -> None:
    ok("variable", "set", "DATABASE_URL", MISTAKE, *ENV)
    ok("variable", "set", "DATABASE_URL", "postgres://db/api", *ENV)
    target = entry_id(ok, MISTAKE)
    ok("variable", "redact", "--id", str(target))
    changes = history(ok)
    assert [(c["id"], c["action"], c["value"], c["redacted"], c["redacts"], c["change"])
            for c in changes] == [
        (target, "set", None, True, None, "set (value redacted)"),
        (target + 1, "set", "postgres://db/api", False, None, "set to 'postgres://db/api'"),
        (target + 2, "redacted", None, False, target,
         f"redacted the value set by entry {target}"),
    ]  # fmt: skip
    assert changes[0]["changed_at"] < changes[2]["changed_at"]  # the line has its own time
    assert changes[2]["scope"] == changes[0]["scope"]
    assert {c["name"] for c in changes} == {"DATABASE_URL"}
    table = ok("variable", "history", *STAGE).stdout
    assert "set (value redacted)" in table
    assert f"redacted the value set by entry {target}" in table
    assert MISTAKE not in table
    # The later value is untouched, and current.
    assert resolved(ok) == {"DATABASE_URL": "postgres://db/api"}


def test_a_redacted_current_value_leaves_no_value_at_its_scope(
    ok: Invoke, run: Invoke, db_path: Path
) -> None:
    """As after an unset: less specific scopes apply again; the older value at that scope
    does not come back behind the user's back."""
    ok("variable", "set", "DATABASE_URL", "postgres://stage-wide/api", *STAGE)
    ok("variable", "set", "DATABASE_URL", "postgres://old/api", *ENV)
    ok("variable", "set", "DATABASE_URL", MISTAKE, *ENV)
    result = ok("variable", "redact", "--id", str(entry_id(ok, MISTAKE)))
    assert "It was the current value: DATABASE_URL has no value at production " in result.stdout
    assert resolved(ok) == {"DATABASE_URL": "postgres://stage-wide/api"}
    listed = json.loads(ok("variable", "list", *STAGE, "-o", "json").stdout)
    assert [(v["value"], v["scope"]["environment"]) for v in listed] == [
        ("postgres://stage-wide/api", None)
    ]
    assert_refused(run("variable", "unset", "DATABASE_URL", *ENV), contains="not set")
    ok("variable", "set", "DATABASE_URL", "postgres://right/api", *ENV)
    assert resolved(ok) == {"DATABASE_URL": "postgres://right/api"}
    # An older entry is not the current value: redacting it changes no resolution.
    older = ok("variable", "redact", "--id", str(entry_id(ok, "postgres://old/api")))
    assert "current value" not in older.stdout
    assert resolved(ok) == {"DATABASE_URL": "postgres://right/api"}


def test_refused_redactions(ok: Invoke, run: Invoke, db_path: Path) -> None:
    ok("variable", "set", "TOKEN", "s3cret", *STAGE, "--secret")
    ok("variable", "set", "URL", "http://a", *STAGE)
    ok("variable", "unset", "URL", *STAGE)
    ok("variable", "set", "URL", MISTAKE, *STAGE)
    ok("variable", "redact", "--id", "4")
    ids = {c["change"]: c["id"] for c in history(ok)}
    assert ids == {"secret changed": 1, "set to 'http://a'": 2, "unset": 3,
                   "set (value redacted)": 4, "redacted the value set by entry 4": 5}  # fmt: skip
    before = snapshot(db_path)
    for entry, says in [
        (1, "entry 1 (TOKEN at production) is a secret"),
        (3, "entry 3 (URL at production) is an unset"),
        (4, "entry 4 (URL at production) was already redacted"),
        (5, "entry 5 (URL at production) is itself a redaction"),
        (6, "there is no variable history entry 6"),
        (2**63 - 1, f"there is no variable history entry {2**63 - 1}"),
    ]:
        assert_refused(run("variable", "redact", "--id", str(entry)), contains=says)
    # Past SQLite's integers: a usage error, as every id option (cli/params.ID).
    for entry in ("0", "-1", "two", "", str(2**63), str(10**30)):
        assert_refused(run("variable", "redact", "--id", entry), code=2, contains="--id")
    assert_refused(run("variable", "redact"), code=2, contains="--id")
    assert snapshot(db_path) == before


@pytest.mark.sqlite_only(
    reason="the schema's refusals through sqlite3; tests/test_pgschema.py proves the same "
    "rules on PostgreSQL"
)
def test_the_schema_accepts_the_redaction_and_no_other_change(ok: Invoke, db_path: Path) -> None:
    ok("variable", "set", "URL", "http://a", *STAGE)  # 1
    ok("variable", "set", "TOKEN", "s", *STAGE, "--secret")  # 2
    ok("variable", "set", "URL", "http://b", *ENV)  # 3
    ok("variable", "unset", "URL", *ENV)  # 4
    conn = sqlite3.connect(db_path, isolation_level=None)

    def refused(sql: str, match: str) -> None:
        with pytest.raises(sqlite3.IntegrityError, match=match):
            conn.execute(sql)

    def redaction(target: int | str, name: str = "URL", env: str = "NULL") -> str:
        return (
            "INSERT INTO variable_event (logical_environment_id, environment_id, name, action, "
            f"redacts, created_at) VALUES (3, {env}, '{name}', 'redacted', {target}, "
            "9999999999999999)"
        )

    try:
        never = "variable history never changes"
        refused("UPDATE variable_event SET value = 'x' WHERE id = 1", never)
        refused("UPDATE variable_event SET name = 'OTHER' WHERE id = 1", never)
        refused("UPDATE variable_event SET created_at = 0 WHERE id = 1", never)
        # Blanking by hand, without the redaction line, is refused too.
        refused("UPDATE variable_event SET value = NULL, redacted = 1 WHERE id = 1", never)
        refused("UPDATE variable_event SET ciphertext = NULL, redacted = 1 WHERE id = 2", never)
        refused("DELETE FROM variable_event WHERE id = 4", "never deleted")
        refused("DELETE FROM variable_event", "never deleted")
        # A redaction line must name a plain value of the same variable and scope.
        must_name = "a redaction must name"
        refused(redaction(2, name="TOKEN"), must_name)  # a secret
        refused(redaction(4, env="1"), must_name)  # an unset
        refused(redaction(3), must_name)  # another scope
        refused(redaction(1, name="TOKEN"), must_name)  # another name
        refused(redaction(99), must_name)  # nothing
        refused(redaction("NULL"), must_name)
        assert query(db_path, "SELECT value, redacted FROM variable_event WHERE id = 1") == [
            {"value": "http://a", "redacted": 0}
        ]
        # The one accepted change: the line, which blanks its entry in the same statement.
        conn.execute(redaction(1))
        assert query(db_path, "SELECT value, redacted FROM variable_event WHERE id = 1") == [
            {"value": None, "redacted": 1}
        ]
        refused(redaction(1), must_name)  # once only
        refused("UPDATE variable_event SET value = 'http://a', redacted = 0 WHERE id = 1", never)
        refused("UPDATE variable_event SET redacts = NULL WHERE action = 'redacted'", never)
        refused("DELETE FROM variable_event WHERE action = 'redacted'", "never deleted")
        # The CHECKs keep every row's shape, redacted or not.
        for columns, params in [
            ("action, value", ("set", None)),  # a plain value without its text
            ("action, value, value_salt, redacted", ("set", "v", SALT, 1)),  # redacted, with text
            ("action, is_secret, ciphertext, key_id, redacted", ("set", 1, b"x", "k", 1)),
            ("action, redacted", ("unset", 1)),
            # only a redaction names an entry
            ("action, value, value_salt, redacts", ("set", "v", SALT, 1)),
            ("action, value, value_salt", ("sideways", "v", SALT)),
        ]:
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                conn.execute(
                    f"INSERT INTO variable_event (logical_environment_id, name, {columns}, "
                    f"created_at) VALUES (3, 'OK', {', '.join('?' * len(params))}, 1)",
                    params,
                )
    finally:
        conn.close()


def test_doctor_is_healthy_after_a_redaction(ok: Invoke) -> None:
    ok("variable", "set", "URL", MISTAKE, *STAGE)
    ok("variable", "redact", "--id", "1")
    report = json.loads(ok("doctor", "-o", "json").stdout)
    assert ok("doctor").stdout.rstrip().endswith("Healthy.")
    assert report["healthy"] is True


def test_a_reader_older_than_the_redaction_is_reported_not_hidden(
    ok: Invoke, db_path: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader holding a snapshot older than the redaction keeps the old bytes where it
    can read them (SQLite: the WAL the checkpoint cannot finish; PostgreSQL: the old row
    version VACUUM must keep): the redaction stands, and a warning says where the old
    bytes still are and until when."""
    from deploytrack.store import scrub

    monkeypatch.setattr(scrub, "CHECKPOINT_TIMEOUT_S", 0.2)
    ok("variable", "set", "URL", MISTAKE, *STAGE)
    if is_pg(db_path):
        from conftest import _pg_connect

        reader = _pg_connect(str(db_path))
        reader.autocommit = False
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        warning = f"Warning: {db_path} keeps the old row version, value included, in its table"
        until = "run VACUUM (FULL) variable_event on the server once it has ended"
    else:
        reader = sqlite3.connect(db_path, isolation_level=None)
        reader.execute("BEGIN")
        warning = f"Warning: another process is reading {db_path}, "
        until = "stay in it and in its -wal until the last process"
    try:
        reader.execute("SELECT count(*) FROM variable_event").fetchall()  # holds a snapshot
        result = ok("variable", "redact", "--id", "1")
        assert result.stdout.startswith("Redacted entry 1 (URL at production, set ")
        assert "gone" not in result.stdout
        assert result.stderr.startswith(warning)
        assert until in result.stderr
        assert MISTAKE.encode() in stored(db_path)  # the warning is true
        reader.commit()
    finally:
        reader.close()
    assert [c["change"] for c in history(ok)] == [
        "set (value redacted)",
        "redacted the value set by entry 1",
    ]
    # Once the reader is gone: SQLite's last connection to close checkpoints and removes
    # the WAL; on PostgreSQL, what the warning says to run.
    if is_pg(db_path):
        execute(db_path, "VACUUM (FULL) variable_event")
    assert leftovers(stored(db_path), MISTAKE) == set()


def test_redaction_zeroes_the_freed_bytes_even_where_secure_delete_is_off(
    tmp_path: Path,
) -> None:
    """SQLite's default is secure_delete off (Debian builds it on): the redaction turns it on
    for its write, whatever the connection had."""
    from deploytrack.services import variables
    from deploytrack.store import open_store

    path = tmp_path / "off.db"
    store = open_store(path)
    try:
        store.db.execute_sql("PRAGMA secure_delete = OFF")
        scope = variables.Scope("production")
        variables.set_variable(store, scope, "URL", MISTAKE)
        variables.set_variable(store, scope, "CONTROL", CONTROL)
        assert MISTAKE.encode() in raw(path)
        done = variables.redact(store, 1)
        assert done.scrubbed and done.was_current
        assert store.db.execute_sql("PRAGMA secure_delete").fetchone()[0] == 0  # restored
        data = raw(path)
        assert leftovers(data, MISTAKE) == set()
        assert CONTROL.encode() in data
    finally:
        store.close()


def test_a_database_from_before_redaction_is_migrated_and_redactable(tmp_path: Path) -> None:
    """m004 rebuilds variable_event (same ids and rows); the old table's pages are zeroed
    when it is dropped, so no copy of a value survives in the free pages to defeat a later
    redaction — even on a connection whose secure_delete is off."""
    from deploytrack.services import variables
    from deploytrack.store import migrations, open_store

    path = tmp_path / "old.db"
    db = peewee.SqliteDatabase(str(path), pragmas=[("foreign_keys", 1)])
    db.connect()
    db.execute_sql("PRAGMA journal_mode = WAL")
    db.execute_sql("PRAGMA secure_delete = OFF")
    db.execute_sql(
        f"CREATE TABLE {migrations.MIGRATION_TABLE} (name TEXT PRIMARY KEY, "
        "applied_at INTEGER NOT NULL)"
    )
    for migration in migrations.MIGRATIONS[:3]:
        migration(db)
        db.execute_sql(
            f"INSERT INTO {migrations.MIGRATION_TABLE} VALUES (?, 1)", (migration.__name__,)
        )
    # Enough history around the value that the dropped table's page holding it is not
    # reused (and so overwritten) by the new table's indexes.
    filler = [(3, f"FILLER_{i}", "set", 0, "f" * 200, None, None, 1) for i in range(200)]
    rows = [
        *filler,
        (3, "URL", "set", 0, MISTAKE, None, None, 10),
        (3, "TOKEN", "set", 1, None, b"n" * 40, "k" * 16, 11),
        (3, "URL", "unset", 0, None, None, None, 12),
        (3, "CONTROL", "set", 0, CONTROL, None, None, 13),
        *filler,
    ]
    for row in rows:
        db.execute_sql(
            "INSERT INTO variable_event (logical_environment_id, name, action, is_secret, "
            "value, ciphertext, key_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
    before = query(path, "SELECT * FROM variable_event ORDER BY id")
    # Upgraded by a deploytrack with m004, on a connection without secure_delete.
    migrations.ensure_current(db, str(path))
    db.close()
    after = query(path, "SELECT * FROM variable_event ORDER BY id")
    # m005 gave each plain value a salt of its own (the log's commitment to it).
    salts = [row.pop("value_salt") for row in after]
    assert after == [{**row, "redacted": 0, "redacts": None} for row in before]
    assert [s is None for s in salts] == [row["value"] is None for row in before]
    plain = [s for s in salts if s is not None]
    assert len(set(plain)) == len(plain) and all(len(s) == 32 for s in plain)

    store = open_store(path)
    try:
        store.db.execute_sql("PRAGMA secure_delete = OFF")
        history = variables.history(store, variables.Scope("production"))
        assert [c.id for c in history] == list(range(1, len(rows) + 1))
        assert variables.redact(store, len(filler) + 1).scrubbed
    finally:
        store.close()
    data = raw(path)
    assert leftovers(data, MISTAKE) == set()
    assert CONTROL.encode() in data


# -- the database's files, on both backends -----------------------------------------------


def pg_files(url: str) -> bytes:
    """Every byte of variable_event's files and its TOAST table's on the server, once a
    CHECKPOINT has written the server's buffers out: what is left for whoever reads the
    data folder (the test's role is the server's superuser)."""
    from conftest import _pg_connect

    with _pg_connect(url) as conn:
        conn.execute("CHECKPOINT")
        paths = conn.execute(
            "SELECT pg_relation_filepath(oid) FROM pg_class WHERE oid = 'variable_event'::regclass"
            " OR oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'variable_event'::regclass)"
        ).fetchall()
        return b"".join(
            bytes(conn.execute("SELECT pg_read_binary_file(%s)", (p[0],)).fetchone()[0])
            for p in paths
        )


def stored(db_path: Path | str) -> bytes:
    """The database's bytes where a value can be left: SQLite's file, -wal and -shm, or
    PostgreSQL's table files."""
    return pg_files(str(db_path)) if is_pg(db_path) else raw(Path(db_path))


@pytest.mark.parametrize("size", ["short", "long"])
def test_redaction_leaves_no_piece_of_the_value_in_the_files(
    ok: Invoke, db_path: Path | str, size: str
) -> None:
    """With no other reader. A long value lives in overflow pages (SQLite) or TOAST chunks
    (PostgreSQL); a later long value keeps the pages it frees from being the file's last
    (a plain VACUUM would truncate those, and leave the bytes of the others)."""
    import secrets

    # The mistake's random tail is written in letters that are no hex digit: every
    # 8-character piece of it is searched for, and a hex tail (12,000 random digits) shared
    # one by chance with the later value or a hash in the log about one run in ten.
    tail = "".join(secrets.choice("ghijklmnopqrstuvwxyz") for _ in range(12_000))
    mistake = MISTAKE if size == "short" else MISTAKE + tail
    later = "later-" + secrets.token_hex(6000)
    ok("variable", "set", "CONTROL", CONTROL, *STAGE)
    ok("variable", "set", "DATABASE_URL", mistake, *STAGE)
    ok("variable", "set", "LATER", later, *STAGE)
    assert leftovers(stored(db_path), mistake)  # the search finds what is there
    result = ok("variable", "redact", "--id", "2")
    gone = (
        "its value is gone from the database's tables (VACUUM FULL)"
        if is_pg(db_path)
        else "its value is gone from the database file and its WAL"
    )
    assert gone in result.stdout
    assert result.stderr == ""
    data = stored(db_path)
    assert leftovers(data, mistake) == set()
    assert CONTROL.encode() in data and leftovers(data, later)
