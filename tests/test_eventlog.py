"""The event log's mechanics (store/eventlog.py): how a row becomes its image, how the
changes of a transaction become one event, and the tree the events are stored in.

End-to-end checks of the log (every command, tampering, concurrency, migration) are in
tests/test_log.py; the formats of tlog/ in tests/test_merkle.py and tests/test_note.py.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from conftest import INTEGRITY_ERRORS, Invoke, execute, is_pg, query, raw

from deploytrack.services.catalog import environments
from deploytrack.store import Store, eventlog, open_store
from deploytrack.store.binding import TransactionMisuse
from deploytrack.store.models import Environment
from deploytrack.tlog import merkle


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    opened = open_store(db_path)
    try:
        yield opened
    finally:
        opened.close()


def events(path: Path) -> list[dict[str, Any]]:
    rows = query(path, "SELECT body FROM log_event ORDER BY seq")
    return [json.loads(bytes(r["body"])) for r in rows]


# --- row images -------------------------------------------------------------------------


def test_a_blob_column_is_its_hash_and_size() -> None:
    table = eventlog.Table("t", [(0, "id", "INTEGER", 1, None, 1), (1, "data", "BLOB", 0, None, 0)])
    assert table.image((1, b"abc")) == {
        "id": 1,
        "data": {"sha256": hashlib.sha256(b"abc").hexdigest(), "size": 3},
    }
    assert table.image((2, None)) == {"id": 2, "data": None}


def test_a_salted_column_is_a_commitment_and_its_salt_stays_out() -> None:
    info = [
        (0, "id", "INTEGER", 1, None, 1),
        (1, "value", "TEXT", 0, None, 0),
        (2, "value_salt", "TEXT", 0, None, 0),
    ]
    table = eventlog.Table("v", info)
    salt = "00112233445566778899aabbccddeeff"
    image = table.image((1, "true", salt))
    expected = hashlib.sha256(bytes.fromhex(salt) + b"true").hexdigest()
    assert image == {"id": 1, "value": {"commitment": expected}}
    # Another salt, another commitment: a short value cannot be looked up in a table.
    other = table.image((1, "true", "ff" * 16))
    assert other["value"] != image["value"]
    # Redacted: value and salt gone, the image says null.
    assert table.image((1, None, None)) == {"id": 1, "value": None}


def test_an_integer_beyond_what_json_holds_exactly_is_a_string() -> None:
    table = eventlog.Table("n", [(0, "id", "INTEGER", 1, None, 1), (1, "n", "INTEGER", 0, None, 0)])
    assert table.image((1, 2**53 - 1))["n"] == 2**53 - 1
    assert table.image((1, 2**53))["n"] == str(2**53)
    assert table.image((1, -(2**60)))["n"] == str(-(2**60))
    assert eventlog.canonical(table.image((1, 2**62)))  # rfc8785 would refuse the integer


def test_a_composite_key_names_every_key_column() -> None:
    info = [(0, "policy_id", "INTEGER", 1, None, 1), (1, "public_key_id", "INTEGER", 1, None, 2)]
    table = eventlog.Table("stage_policy_key", info)
    assert table.key == ["policy_id", "public_key_id"]
    assert table.key_of(table.image((3, 4))) == {"policy_id": 3, "public_key_id": 4}


def test_the_state_tables_are_every_table_but_the_logs_own(store: Store) -> None:
    tables = eventlog.state_tables(store.db)
    assert "deployment" in tables and "variable_event" in tables and "blob" in tables
    assert not set(tables) & eventlog.NOT_STATE
    assert tables["blob"].key == ["digest"] and tables["variable_event"].salted == {
        "value": "value_salt"
    }


# --- one event per named change ---------------------------------------------------------


def test_a_row_inserted_and_deleted_in_one_event_is_no_change(store: Store, db_path: Path) -> None:
    before = len(events(db_path))
    with store.write() as log:
        Environment.create(name="gone", type="custom", created_at=1, updated_at=1)
        Environment.delete().where(Environment.name == "gone").execute()
        Environment.create(name="kept", type="custom", created_at=1, updated_at=1)
        assert log.log("environment.created") is not None
    new = events(db_path)[before:]
    assert [[c["row"]["name"] for c in e["changes"]] for e in new] == [["kept"]]


def test_a_row_of_a_rolled_back_savepoint_is_no_change(store: Store, db_path: Path) -> None:
    with store.write() as log:
        with pytest.raises(RuntimeError), store.write():
            Environment.create(name="undone", type="custom", created_at=1, updated_at=1)
            raise RuntimeError("undo")
        Environment.create(name="done", type="custom", created_at=1, updated_at=1)
        log.log("environment.created")
    last = events(db_path)[-1]
    assert [c["row"]["name"] for c in last["changes"]] == ["done"]


def test_an_update_carries_the_whole_new_row_and_a_delete_its_key(
    store: Store, db_path: Path
) -> None:
    environments.create(store, "e1", "first")
    environments.update(store, "e1", description="second")
    environments.delete(store, "e1")
    created, updated, deleted = events(db_path)[-3:]
    assert [e["type"] for e in (created, updated, deleted)] == [
        "environment.created",
        "environment.updated",
        "environment.deleted",
    ]
    assert updated["changes"][0]["op"] == "update"
    assert updated["changes"][0]["row"]["description"] == "second"
    assert set(updated["changes"][0]["row"]) == {
        "id", "name", "description", "type", "created_at", "updated_at"
    }  # fmt: skip
    assert deleted["changes"] == [{"table": "environment", "op": "delete", "key": {"id": 1}}]


def test_nothing_changed_appends_nothing(store: Store, db_path: Path) -> None:
    before = len(events(db_path))
    with store.write() as log:
        assert log.log("environment.updated") is None
    assert len(events(db_path)) == before


def test_changes_without_an_event_are_refused_and_rolled_back(store: Store, db_path: Path) -> None:
    refused = pytest.raises(TransactionMisuse, match="environment changed with no event logged")
    with refused, store.write():
        Environment.create(name="sneaky", type="custom", created_at=1, updated_at=1)
    assert query(db_path, "SELECT count(*) AS n FROM environment") == [{"n": 0}]


def test_a_connection_of_another_program_captures_nothing(store: Store, db_path: Path) -> None:
    """The capture triggers are TEMP on SQLite: in deploytrack's connection only, in no file.
    On PostgreSQL they are in the schema, and report only while deploytrack's session has
    `deploytrack.capture` on."""
    environments.create(store, "e1")
    size = len(events(db_path))
    if not is_pg(db_path):
        with closing(sqlite3.connect(db_path)) as conn:
            triggers = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name GLOB 'deploytrack_capture_*'"
            ).fetchone()[0]
        assert triggers == 0
    # Nothing of deploytrack's capture runs here (on SQLite it would call a function this
    # connection does not have): the edit goes through, and only log verify sees it.
    execute(db_path, "UPDATE environment SET description = 'by hand'")
    assert query(db_path, "SELECT description FROM environment") == [{"description": "by hand"}]
    assert len(events(db_path)) == size


# --- the tree -------------------------------------------------------------------------


def test_leaves_hash_the_stored_bytes_and_the_root_is_rfc6962s(store: Store, db_path: Path) -> None:
    for i in range(13):  # 13 = 8 + 4 + 1: a frontier of three subtrees
        environments.create(store, f"e{i}")
    with raw(db_path) as conn:
        rows = conn.execute("SELECT body, leaf_hash FROM log_event ORDER BY seq").fetchall()
        heads = conn.execute("SELECT size, root FROM log_tree_head ORDER BY size").fetchall()
        nodes = conn.execute("SELECT count(*) FROM log_node").fetchone()[0]
    assert all(merkle.leaf_hash(bytes(body)) == bytes(leaf) for body, leaf in rows)
    hashes = [bytes(leaf) for _, leaf in rows]
    whole = merkle.subtree_of(hashes)
    # One tree head per write transaction, each the RFC 6962 root of the log at that size.
    assert [size for size, _ in heads][-13:] == list(range(len(rows) - 12, len(rows) + 1))
    assert all(bytes(root) == whole(0, size) for size, root in heads)
    with store.read():
        assert eventlog.root(store.db) == (len(rows), whole(0, len(rows)))
        stored = eventlog.subtree(store.db)
        for lo, hi in [(0, len(rows)), (0, 8), (8, 12), (16, len(rows)), (4, 6)]:
            assert stored(lo, hi) == whole(lo, hi)
    # A complete perfect subtree of every size above 1 is stored once: n - popcount(n).
    assert nodes == len(rows) - bin(len(rows)).count("1")


def test_the_first_event_names_the_origin_and_the_setup_rows_follow(
    store: Store, db_path: Path, tmp_path: Path
) -> None:
    first, *setup = events(db_path)
    with store.read():
        origin = eventlog.origin(store.db)
    assert first == {"changes": [], "origin": origin, "seq": 1, "time": first["time"],
                     "type": "log.started"}  # fmt: skip
    assert origin.startswith("deploytrack.local/") and len(origin) == len("deploytrack.local/") + 36
    assert [(e["type"], e["imported"], e["changes"][0]["row"]["name"]) for e in setup] == [
        ("imported", True, "development"),
        ("imported", True, "staging"),
        ("imported", True, "production"),
    ]
    other = open_store(tmp_path / "other.db")
    try:
        with other.read():
            assert eventlog.origin(other.db) != origin
    finally:
        other.close()


def test_the_logs_tables_are_append_only(store: Store, db_path: Path) -> None:
    environments.create(store, "e1")
    zeros = bytes(32)
    with raw(db_path) as conn:
        for sql, params, message in [
            ("UPDATE log_event SET type = 'x'", (), "logged events never change"),
            ("DELETE FROM log_event", (), "logged events are never deleted"),
            ("UPDATE log_node SET hash = ?", (zeros,), "the log tree never changes"),
            ("DELETE FROM log_tree_head", (), "tree heads are never deleted"),
            ("UPDATE log_origin SET origin = 'deploytrack.local/x'", (), "the log origin never"),
            (
                "INSERT INTO log_event (seq, time, type, body, leaf_hash)"
                " VALUES (99, 0, 'x', ?, ?)",
                (b"\x00", zeros),
                "events are appended in sequence",
            ),
        ]:
            with pytest.raises(INTEGRITY_ERRORS, match=message):
                conn.execute(sql, params)


def test_log_list_prints_each_event_as_hashed(ok: Invoke) -> None:
    """`event` in `log list -o json` is the event itself: re-encoded canonically it hashes to
    its leaf (the row images keep their integer times, no `_at` field is rewritten)."""
    ok("environment", "create", "--name", "e1")
    rows = json.loads(ok("log", "list", "-o", "json").stdout)
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert merkle.leaf_hash(eventlog.canonical(row["event"])).hex() == row["leaf_hash"]
        assert row["event"]["seq"] == row["seq"] and row["event"]["type"] == row["type"]
    assert isinstance(rows[-1]["event"]["changes"][0]["row"]["created_at"], int)


def test_the_capture_survives_a_first_write_that_rolled_back(store: Store, db_path: Path) -> None:
    """The triggers are created inside the first write's transaction: rolled back with it,
    they are created again by the next write, which is captured like any other."""
    with pytest.raises(RuntimeError), store.write():
        raise RuntimeError("the first write of this connection fails")
    refused = pytest.raises(TransactionMisuse, match="environment changed with no event logged")
    with refused, store.write():
        Environment.create(name="sneaky", type="custom", created_at=1, updated_at=1)
    environments.create(store, "after")
    assert events(db_path)[-1]["changes"][0]["row"]["name"] == "after"


def test_only_what_the_schema_allows_is_captured(store: Store) -> None:
    """An append-only table refuses every update and delete by trigger: no capture trigger
    waits for what cannot happen; every other change of every state table has one."""
    tables = eventlog.state_tables(store.db)
    assert tables["blob"].captured == ("insert",)
    assert tables["deployment"].captured == ("insert", "update")
    assert tables["environment"].captured == ("insert", "update", "delete")
    environments.create(store, "e1")
    if store.postgresql:
        names = {
            str(row[0])
            for row in store.db.execute_sql(
                "SELECT tgname FROM pg_trigger WHERE tgname LIKE '\\_dt\\_capture\\_%'"
            )
        }
        prefix = "_dt_capture_"
    else:
        names = {
            row[0]
            for row in store.db.connection().execute(
                "SELECT name FROM sqlite_temp_master WHERE type = 'trigger'"
            )
        }
        prefix = "deploytrack_capture_"
    expected = {f"{prefix}{t.name}_{op}" for t in tables.values() for op in t.captured}
    assert names == expected


def test_a_migration_that_adds_a_column_logs_each_row_again(store: Store, db_path: Path) -> None:
    """What m009 and m010 do for the rows they give a new column: without the events,
    the log no longer replays to the table; with them (one `schema.migrated` per row), it
    does."""
    from deploytrack.store import logcheck

    for name in ("e1", "e2"):
        environments.create(store, name)
    with store.write():  # as a migration would: the column, its default on every row
        store.db.execute_sql("ALTER TABLE environment ADD COLUMN region TEXT DEFAULT 'eu'")
    store.log._tables = None  # the schema changed under this store (a migration's own)
    with store.read():
        assert logcheck.check_state(store.db) == (
            'environment 1: region is "eu" in the table but absent in event 5'
        )
    with store.write():
        eventlog.log_rows_again(store.db, "environment", "m999_example")
    added = events(db_path)[-2:]
    assert [(e["type"], e["migration"], e["changes"][0]["row"]["region"]) for e in added] == [
        ("schema.migrated", "m999_example", "eu"),
        ("schema.migrated", "m999_example", "eu"),
    ]
    with store.read():
        assert logcheck.check_state(store.db) is None
