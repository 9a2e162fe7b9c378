"""Migrations: registered in definition order, names unique, the append-only trigger
helper, and a database upgraded release by release equal to a fresh one."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import peewee
import pytest
from conftest import FIXTURES

from deploytrack.store import migrations, open_store

# sqlite_master of a fresh database as the code before `@migration` and `append_only()`
# set it up (captured from main at m004): those must not change one byte of old SQL.
SCHEMA_AT_M004 = FIXTURES / "schema-m004.json"
# The same after m001-m003 alone, captured before m003 and m004 shared the head of
# variable_event's CREATE TABLE: m004 drops m003's table, so only this shows its text.
SCHEMA_AT_M003 = FIXTURES / "schema-m003.json"
# After m005 (value salts) and m006 (the event log), as they shipped.
SCHEMA_AT_M006 = FIXTURES / "schema-m006.json"
# After m007-m009: keyless verifications, trusted identities of stage policies, and which
# keyless verification admitted a record.
SCHEMA_AT_M009 = FIXTURES / "schema-m009.json"
# After m010: where a record came from (declared or observed), immutable.
SCHEMA_AT_M010 = FIXTURES / "schema-m010.json"


def schema(path: Path) -> list[list[Any]]:
    """sqlite_master without rootpage (where a table's pages start is not its schema)."""
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    return [list(r) for r in rows]


def bookkeeping(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            f"SELECT name FROM {migrations.MIGRATION_TABLE} ORDER BY rowid"
        ).fetchall()
    return [r[0] for r in rows]


def stages(path: Path) -> list[tuple[Any, ...]]:
    """The seeded stages, times left out (each database set them when it was made)."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT id, name, description, is_default FROM logical_environment ORDER BY id"
        ).fetchall()


def fresh(tmp_path: Path) -> Path:
    path = tmp_path / "fresh.db"
    open_store(path).close()
    return path


def test_migrations_are_registered_in_definition_order() -> None:
    assert migrations.names() == [
        "m001_core",
        "m002_evidence_trust",
        "m003_lifecycle",
        "m004_variable_redaction",
        "m005_variable_value_salt",
        "m006_event_log",
        "m007_identity_verification",
        "m008_stage_policy_identity",
        "m009_admission_identity",
        "m010_deployment_source",
    ]
    assert [m.__name__ for m in migrations.MIGRATIONS] == migrations.names()


def test_a_second_migration_of_a_taken_name_is_refused() -> None:
    before = list(migrations.MIGRATIONS)

    def m003_lifecycle(db: peewee.Database) -> None:
        db.execute_sql("CREATE TABLE never (id INTEGER)")

    with pytest.raises(ValueError, match="two schema migrations are named 'm003_lifecycle'"):
        migrations.migration(m003_lifecycle)
    assert before == migrations.MIGRATIONS


def test_a_duplicate_name_is_refused_when_the_module_is_imported(tmp_path: Path) -> None:
    """The check runs at import: a module defining two migrations of one name fails to
    load, before any database is opened."""
    module = tmp_path / "twice.py"
    module.write_text(
        "from deploytrack.store.migrations import migration\n"
        "@migration\n"
        "def m900_example(db):\n"
        "    pass\n"
        "@migration\n"
        "def m900_example(db):  # noqa: F811\n"
        "    pass\n",
        encoding="utf-8",
    )
    import importlib.util

    spec = importlib.util.spec_from_file_location("twice", module)
    assert spec is not None and spec.loader is not None
    before = list(migrations.MIGRATIONS)
    try:
        with pytest.raises(ValueError, match="m900_example"):
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    finally:
        migrations.MIGRATIONS[:] = before


@pytest.mark.parametrize(
    ("applied", "fixture"),
    [
        # m001-m004 as the code before `@migration` and `append_only()` set them up.
        (4, SCHEMA_AT_M004),
        # m005 and m006: value salts and the event log.
        (6, SCHEMA_AT_M006),
        # m007-m009: keyless verification and identity policies.
        (9, SCHEMA_AT_M009),
        # m010: a record's source.
        (10, SCHEMA_AT_M010),
    ],
    ids=["m004", "m006", "m009", "m010"],
)
def test_each_shipped_schema_is_byte_identical_to_the_one_it_shipped_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, applied: int, fixture: Path
) -> None:
    """A change to a shipped migration's SQL would leave the databases that applied it
    with another schema than new ones: each fixture was captured when its migrations
    shipped."""
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:applied])
    assert schema(fresh(tmp_path)) == json.loads(fixture.read_text(encoding="utf-8"))


def test_the_schema_m003_made_is_byte_identical_to_the_one_it_shipped_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:3])
    path = tmp_path / "m003.db"
    open_store(path).close()
    assert bookkeeping(path) == ["m001_core", "m002_evidence_trust", "m003_lifecycle"]
    assert schema(path) == json.loads(SCHEMA_AT_M003.read_text(encoding="utf-8"))


def test_the_append_only_pair_refuses_updates_and_deletes() -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, note TEXT)")
        for sql in migrations.append_only("ledger", "ledger never changes", "ledger stays"):
            conn.execute(sql)
        conn.execute("INSERT INTO ledger (note) VALUES ('first')")  # appending is fine
        with pytest.raises(sqlite3.IntegrityError, match="ledger never changes"):
            conn.execute("UPDATE ledger SET note = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="ledger stays"):
            conn.execute("DELETE FROM ledger")
        names = [
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        ]
    assert sorted(names) == ["ledger_no_delete", "ledger_no_update"]


def test_a_trigger_message_with_a_quote_is_refused() -> None:
    with pytest.raises(ValueError, match="quote"):
        migrations.no_delete("ledger", "it's gone")


def test_a_database_upgraded_release_by_release_equals_a_fresh_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each release shipped one more migration: a database opened by every release in
    turn (open, close, next release) ends with the schema and bookkeeping of a new one."""
    every = list(migrations.MIGRATIONS)
    upgraded = tmp_path / "upgraded.db"
    for release in range(1, len(every) + 1):
        monkeypatch.setattr(migrations, "MIGRATIONS", every[:release])
        open_store(upgraded).close()
        assert bookkeeping(upgraded) == [m.__name__ for m in every[:release]]
    monkeypatch.setattr(migrations, "MIGRATIONS", every)
    open_store(upgraded).close()  # the current release: nothing left to apply
    new = fresh(tmp_path)
    assert schema(upgraded) == schema(new)
    assert bookkeeping(upgraded) == bookkeeping(new) == migrations.names()
    assert stages(upgraded) == stages(new)


def test_every_model_describes_the_columns_its_table_has(tmp_path: Path) -> None:
    """The models share column specs (a slot's four columns, a catalogue entry's four): each
    model still names exactly its table's columns, NOT NULL where the schema says so."""
    from deploytrack.store.models import ALL_MODELS

    path = fresh(tmp_path)
    with closing(sqlite3.connect(path)) as conn:
        for model in ALL_MODELS:
            table = model._meta.table_name
            # table_info rows: (cid, name, type, notnull, default, pk)
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            columns = {row[1]: bool(row[3]) or bool(row[5]) for row in info}
            fields = {f.column_name: not f.null for f in model._meta.sorted_fields}
            assert fields == columns, table
