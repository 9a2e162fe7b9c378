"""The PostgreSQL schema (store/pgschema.py) against the SQLite one, on a real server.

Catalogue parity: the same tables, columns in the same order, keys, foreign keys, index
names (uniqueness, partial WHERE) and trigger names. Rule parity: one table of raw
statements, each run on a fresh SQLite database and on a fresh PostgreSQL one; a
statement breaking a trigger's rule gets the same message on both, one breaking a CHECK,
a key or a foreign key is refused on both by that constraint, and a valid one is
accepted on both.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peewee
import pytest

from deploytrack.store import (
    errors,
    eventlog,
    migrations,
    open_store,
    pgrefusal,
    pgschema,
    postgres,
)
from deploytrack.store.postgres import open_database as pg_database

# -- catalogue parity -----------------------------------------------------------------


def test_the_postgresql_steps_are_the_sqlite_migrations() -> None:
    assert pgschema.names() == migrations.names()


def test_a_second_step_of_a_taken_name_is_refused() -> None:
    def m001_core(db: peewee.Database) -> None:
        pass

    with pytest.raises(ValueError, match="m001_core"):
        pgschema.migration(m001_core)
    assert pgschema.names() == migrations.names()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    open_store(path).close()
    return path


@pytest.fixture
def sqlite_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "fresh.db"
    shutil.copyfile(sqlite_template, path)
    return path


# SQLite's declared types, as PostgreSQL's.
PG_TYPES = {"INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea"}


def _normal(sql: str | None) -> str | None:
    """An expression with casts, parentheses, quotes of identifiers and spaces taken out:
    how each catalogue prints a partial index's WHERE differs only in those."""
    if sql is None:
        return None
    return re.sub(r"::\w+|[()\s\"]", "", sql).lower()


def sqlite_catalogue(path: Path) -> dict[str, Any]:
    with closing(sqlite3.connect(path)) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        columns, keys, foreign = {}, set(), set()
        for table in tables:
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            columns[table] = [
                (name, PG_TYPES[type_], bool(notnull) or pk > 0, _normal(dflt))
                for _, name, type_, notnull, dflt, pk in info
            ]
            pk = [name for _, name, *_, position in sorted(info, key=lambda r: r[5]) if position]
            keys.add((table, "primary", tuple(pk)))
            for _, index, _unique, origin, _ in conn.execute(f"PRAGMA index_list({table})"):
                if origin == "u":
                    cols = [r[2] for r in conn.execute(f"PRAGMA index_info({index})")]
                    keys.add((table, "unique", tuple(cols)))
            for row in conn.execute(f"PRAGMA foreign_key_list({table})"):
                foreign.add((table, row[3], row[2], row[4]))
        indexes = {}
        for name, table, sql in conn.execute(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ):
            cols = [r[2] for r in conn.execute(f"PRAGMA index_info({name})")]
            where = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else None
            indexes[name] = (table, sql.startswith("CREATE UNIQUE"), tuple(cols), _normal(where))
        triggers = {}
        for name, table, sql in conn.execute(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"
        ):
            match = re.match(rf"CREATE TRIGGER {name} (BEFORE|AFTER) (\w+) ON {table}\b", sql)
            assert match, sql
            triggers[name] = (table, match[1], match[2])
    return {
        "columns": columns,
        "keys": keys,
        "foreign": foreign,
        "indexes": indexes,
        "triggers": triggers,
    }


def pg_catalogue(url: str) -> dict[str, Any]:
    db = pg_database(url)
    with db.connection_context():
        sql = db.execute_sql
        columns: dict[str, list[tuple[Any, ...]]] = {}
        collations = set()
        for table, name, type_, nullable, default, collation in sql(
            "SELECT table_name, column_name, data_type, is_nullable, column_default,"
            " collation_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ):
            columns.setdefault(table, []).append((name, type_, nullable == "NO", _normal(default)))
            if type_ == "text":
                collations.add(collation)
        keys, foreign = set(), set()
        for table, kind, cols, ref_table, ref_cols in sql(
            "SELECT c.conrelid::regclass::text, c.contype,"
            " (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY"
            "  AS k(att, n) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att),"
            " c.confrelid::regclass::text,"
            " (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY"
            "  AS k(att, n) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.att)"
            " FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
            " WHERE n.nspname = current_schema() AND c.contype IN ('p', 'u', 'f')"
        ):
            if kind == "f":
                assert len(cols) == len(ref_cols) == 1
                foreign.add((table, cols[0], ref_table, ref_cols[0]))
            else:
                keys.add((table, "primary" if kind == "p" else "unique", tuple(cols)))
        indexes = {}
        for name, table, unique, cols, where in sql(
            "SELECT i.relname, t.relname, x.indisunique,"
            " (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(x.indkey) WITH ORDINALITY"
            "  AS k(att, n) JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.att),"
            " pg_get_expr(x.indpred, x.indrelid)"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = current_schema()"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        ):
            indexes[name] = (table, unique, tuple(cols), _normal(where))
        triggers, functions = {}, {}
        for name, table, timing, event, function, per_row in sql(
            "SELECT t.tgname, c.relname,"
            " CASE WHEN t.tgtype & 2 = 2 THEN 'BEFORE' ELSE 'AFTER' END,"
            " CASE WHEN t.tgtype & 4 = 4 THEN 'INSERT' WHEN t.tgtype & 8 = 8 THEN 'DELETE'"
            "  WHEN t.tgtype & 16 = 16 THEN 'UPDATE' END,"
            " t.tgfoid::regproc::text, t.tgtype & 1 = 1"
            " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND NOT t.tgisinternal"
        ):
            assert per_row, name
            if name.startswith(eventlog.PG_CAPTURE_PREFIX):
                # The event log's capture (store/eventlog.py), which `db migrate` adds
                # after the steps: SQLite's is TEMP triggers, in no file.
                continue
            triggers[name] = (table, timing, event)
            functions[name] = function
        definitions = [
            row[0]
            for row in sql(
                "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c"
                " JOIN pg_namespace n ON n.oid = c.connamespace"
                " WHERE n.nspname = current_schema() AND c.contype = 'c'"
                " UNION ALL SELECT p.prosrc FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = current_schema()"
            )
        ]
    return {
        "columns": columns,
        "collations": collations,
        "keys": keys,
        "foreign": foreign,
        "indexes": indexes,
        "triggers": triggers,
        "functions": functions,
        "definitions": definitions,
    }


@pytest.fixture
def catalogues(sqlite_template: Path, pg_migrated: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh database's catalogue on each backend (PostgreSQL's set up by `db migrate`)."""
    return sqlite_catalogue(sqlite_template), pg_catalogue(pg_migrated)


def test_same_tables_and_columns_in_the_same_order(catalogues: Any) -> None:
    lite, pg = catalogues
    assert pg["columns"] == lite["columns"]


def test_every_text_column_sorts_by_bytes(catalogues: Any) -> None:
    _, pg = catalogues
    assert pg["collations"] == {"C"}


def test_same_keys_and_foreign_keys(catalogues: Any) -> None:
    lite, pg = catalogues
    assert pg["keys"] == lite["keys"]
    assert pg["foreign"] == lite["foreign"]


def test_same_indexes_with_their_uniqueness_and_where(catalogues: Any) -> None:
    lite, pg = catalogues
    assert pg["indexes"] == lite["indexes"]
    assert any(where for *_, where in lite["indexes"].values())


def test_same_triggers_plus_the_id_assigning_ones(catalogues: Any) -> None:
    lite, pg = catalogues
    assigning = {name: t for name, t in pg["triggers"].items() if name.endswith("_assign_id")}
    assert {n: t for n, t in pg["triggers"].items() if n not in assigning} == lite["triggers"]
    # One per table whose key is SQLite's rowid `id`, before insert, all one function.
    rowid_tables = {table for table, kind, cols in lite["keys"] if cols == ("id",)}
    assert assigning == {f"{t}_assign_id": (t, "BEFORE", "INSERT") for t in rowid_tables}
    assert {pg["functions"][n] for n in assigning} == {pgschema.ASSIGN_ID}
    # Every other trigger runs the function of its own name.
    assert all(pg["functions"][n] == n for n in lite["triggers"])


def test_no_doubled_percent_reached_the_server(catalogues: Any) -> None:
    """The `?` conversion doubles `%`: psycopg must have undone it in every definition."""
    _, pg = catalogues
    assert not [d for d in pg["definitions"] if "%%" in d]
    assert any("'sha256:%'" in d for d in pg["definitions"])


# -- rule parity ------------------------------------------------------------------------

BLOB = "sha256:" + "a" * 64
D = "sha256:" + "b" * 64  # an attestation's subject
D2 = "sha256:" + "c" * 64  # another subject of the same attestation
DM = "sha256:" + "d" * 64  # a material only
DX = "sha256:" + "e" * 64  # named by nothing
PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
SALT = "0123456789abcdef" * 2
HASH = b"\x01" * 32

DEPLOYMENT = (
    "INSERT INTO deployment (environment_id, logical_environment_id, deployment_name, kind,"
    " digest, status, created_at, last_seen_at, ended_at, policy_id, promoted_from,"
    " rollback_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
VARIABLE = (
    "INSERT INTO variable_event (logical_environment_id, environment_id, deployment_name,"
    " name, action, is_secret, value, value_salt, ciphertext, key_id, created_at, redacts)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def record(
    *,
    env: int = 1,
    stage: int = 1,
    name: str = "api",
    kind: str = "CONTAINER_IMAGE",
    digest: str = D,
    status: str = "deployed",
    created: int = 20,
    seen: int | None = None,
    ended: int | None = None,
    policy: int | None = None,
    promoted_from: int | None = None,
    rollback_of: int | None = None,
) -> tuple[str, tuple[Any, ...]]:
    seen = created if seen is None else seen
    values = (env, stage, name, kind, digest, status, created, seen, ended, policy)
    return DEPLOYMENT, (*values, promoted_from, rollback_of)


def variable(
    *,
    name: str = "FOO",
    action: str = "set",
    secret: int = 0,
    value: str | None = "v",
    salt: str | None = SALT,
    ciphertext: bytes | None = None,
    key_id: str | None = None,
    created: int = 6,
    redacts: int | None = None,
    stage: int = 1,
    env: int | None = None,
    deployment: str | None = None,
) -> tuple[str, tuple[Any, ...]]:
    values = (stage, env, deployment, name, action, secret, value, salt, ciphertext, key_id)
    return VARIABLE, (*values, created, redacts)


def redaction(**kwargs: Any) -> tuple[str, tuple[Any, ...]]:
    return variable(**{"action": "redacted", "value": None, "salt": None, "redacts": 1, **kwargs})


# One row in every table (a row trigger fires only on a row), all ids 1: environments 1
# and 2, logical environments 1-3 (the defaults), a policy in force in 3 (production).
BASE: list[tuple[str, tuple[Any, ...]]] = [
    (
        "INSERT INTO environment (name, description, type, created_at, updated_at)"
        " VALUES ('cluster', '', 'kubernetes', 1, 1), ('other', '', 'server', 1, 1)",
        (),
    ),
    ("INSERT INTO blob (digest, size, content, created_at) VALUES (?, 2, ?, 1)", (BLOB, b"hi")),
    (
        "INSERT INTO attestation (digest, format, statement_type, predicate_type, imported_at)"
        " VALUES (?, 'statement', 'st', 'pt', 1)",
        (BLOB,),
    ),
    (
        "INSERT INTO attestation_subject (attestation_id, name, digest)"
        " VALUES (1, 'app', ?), (1, 'app', ?)",
        (D, D2),
    ),
    (
        "INSERT INTO attestation_material (attestation_id, name, kind, digest)"
        " VALUES (1, 'src', 'git', ?)",
        (DM,),
    ),
    (
        "INSERT INTO public_key (fingerprint, algorithm, pem, created_at)"
        " VALUES ('SHA256:abc', 'ed25519', ?, 1)",
        (PEM,),
    ),
    (
        "INSERT INTO attestation_verification (attestation_id, public_key_id, source,"
        " verified_at) VALUES (1, 1, 'verify', 1)",
        (),
    ),
    (
        "INSERT INTO stage_policy (logical_environment_id, action, required_predicates,"
        " created_at) VALUES (3, 'set', '[\"pt\"]', 1)",
        (),
    ),
    ("INSERT INTO stage_policy_key (policy_id, public_key_id) VALUES (1, 1)", ()),
    (
        "INSERT INTO stage_policy_identity (policy_id, match, identity, issuer,"
        " trusted_root_digest) VALUES (1, 'exact', 'me@example.com', 'https://issuer', ?)",
        (BLOB,),
    ),
    (
        "INSERT INTO attestation_identity_verification (attestation_id, identity, issuer,"
        " trusted_root_digest, source, verified_at)"
        " VALUES (1, 'me@example.com', 'https://issuer', ?, 'verify', 1)",
        (BLOB,),
    ),
    record(created=10),
    record(stage=3, created=10, policy=1),
    (
        "INSERT INTO deployment_admission (deployment_id, requirement, attestation_id,"
        " public_key_id) VALUES (2, 'pt', 1, 1)",
        (),
    ),
    variable(created=5),
    # After whatever the log holds already (SQLite's log has the default stages' events).
    (
        "INSERT INTO log_event (seq, time, type, body, leaf_hash)"
        " SELECT coalesce(max(seq), 0) + 1, 1, 'test', ?, ? FROM log_event",
        (b"{}", HASH),
    ),
    ("INSERT INTO log_node (level, idx, hash) VALUES (60, 0, ?)", (HASH,)),
    (
        "INSERT INTO log_tree_head (size, root, created_at)"
        " SELECT coalesce(max(size), 0) + 1000, ?, 1 FROM log_tree_head",
        (HASH,),
    ),
]

Statement = tuple[str, tuple[Any, ...]]


@dataclass
class Case:
    """Statements run in one transaction after BASE (and `setup`, committed).

    `rule` is what refuses them (None: they are accepted): on PostgreSQL the trigger
    whose function raised, or the constraint or index named by the error. `message` is
    what the user reads on both: SQLite's, whitespace collapsed (SQLite names a CHECK by
    its text, a key by its columns), and on PostgreSQL the same, in a trigger's own
    words or as `pgrefusal.sqlite_message` words a constraint."""

    id: str
    statements: list[Statement]
    rule: str | None = None
    message: str | None = None
    setup: list[Statement] = field(default_factory=list)
    # After an accepted case: a query, and the rows it returns on both backends.
    then: tuple[str, list[tuple[Any, ...]]] | None = None


IMMUTABLE = "deployment records are immutable history"
REDACTION = "a redaction must name an earlier plain value of the same variable and scope"
SALTED = "a plain variable value needs its salt: 32 lowercase hex digits"
POLICY = "a deployment record must name the stage policy in force that admitted it"
EVIDENCE = "digest is not in the evidence store"
LINEAGE = "lineage must name a record of the same artifact"
ENDED_1 = [("UPDATE deployment SET status = 'decommissioned', ended_at = 15 WHERE id = 1", ())]
PROMOTED_3 = [record(stage=2, promoted_from=1)]
SLOTS = "SELECT id, environment_id, logical_environment_id, deployment_name, kind FROM deployment_slot ORDER BY id"  # noqa: E501


def check(id: str, rule: str, *statements: Statement, **kw: Any) -> Case:
    """A statement breaking the CHECK `rule`: SQLite names it by its text."""
    message = f"CHECK constraint failed: {pgrefusal.SQLITE_CHECKS[rule]}"
    return Case(id, list(statements), rule=rule, message=message, **kw)


def trigger(id: str, rule: str, message: str, *statements: Statement, **kw: Any) -> Case:
    return Case(id, list(statements), rule=rule, message=message, **kw)


def accepted(id: str, *statements: Statement, **kw: Any) -> Case:
    return Case(id, list(statements), **kw)


def sql(text: str, *params: Any) -> Statement:
    return text, params


CASES = [
    # One deployed record per slot.
    Case(
        "second-deployed-record-in-a-slot",
        [record()],
        rule="deployment_one_active",
        message="UNIQUE constraint failed: deployment.environment_id, "
        "deployment.logical_environment_id, deployment.deployment_name, deployment.kind",
    ),
    accepted(
        "ended-record-beside-the-deployed-one",
        record(status="decommissioned", created=2, ended=5),
    ),
    # Records are immutable history.
    trigger(
        "delete-record",
        "deployment_no_delete",
        "deployment records are never deleted",
        sql("DELETE FROM deployment WHERE id = 1"),
    ),
    trigger(
        "change-digest",
        "deployment_immutable",
        IMMUTABLE,
        sql("UPDATE deployment SET digest = ? WHERE id = 1", D2),
    ),
    trigger(
        "change-ended-record",
        "deployment_immutable",
        IMMUTABLE,
        sql("UPDATE deployment SET last_seen_at = 30 WHERE id = 1"),
        setup=ENDED_1,
    ),
    accepted("heartbeat", sql("UPDATE deployment SET last_seen_at = 30 WHERE id = 1")),
    accepted("decommission", *ENDED_1),
    trigger(
        "change-policy",
        "deployment_policy_immutable",
        IMMUTABLE,
        sql("UPDATE deployment SET policy_id = 1 WHERE id = 1"),
    ),
    trigger(
        "change-lineage",
        "deployment_lineage_immutable",
        IMMUTABLE,
        sql("UPDATE deployment SET promoted_from = NULL WHERE id = 3"),
        setup=PROMOTED_3,
    ),
    trigger(
        "change-source",
        "deployment_source_immutable",
        IMMUTABLE,
        sql("UPDATE deployment SET source = 'observed' WHERE id = 1"),
    ),
    # Needs evidence.
    trigger("no-evidence", "deployment_needs_evidence", EVIDENCE, record(name="web", digest=DX)),
    accepted("evidence-by-material", record(name="web", digest=DM)),
    # Policy in force.
    trigger("policy-not-named", "deployment_policy_in_force", POLICY, record(name="web", stage=3)),
    trigger(
        "policy-named-where-none",
        "deployment_policy_in_force",
        POLICY,
        record(name="web", policy=1),
    ),
    accepted("policy-in-force", record(name="web", stage=3, policy=1)),
    trigger(
        "policy-cleared",
        "deployment_policy_in_force",
        POLICY,
        record(name="web", stage=3, policy=1),
        setup=[
            sql(
                "INSERT INTO stage_policy (logical_environment_id, action, created_at)"
                " VALUES (3, 'clear', 2)"
            )
        ],
    ),
    # SQLite fires the newer trigger first: its message, on both.
    trigger(
        "no-evidence-and-no-policy",
        "deployment_policy_in_force",
        POLICY,
        record(name="web", stage=3, digest=DX),
    ),
    trigger(
        "policy-history-kept",
        "logical_environment_policy_history",
        "this logical environment has stage policy history, which is never deleted",
        sql("DELETE FROM logical_environment WHERE id = 3"),
    ),
    accepted("stage-without-history-deleted", sql("DELETE FROM logical_environment WHERE id = 2")),
    # Lineage.
    accepted("promotion", *PROMOTED_3),
    trigger(
        "promotion-of-another-digest",
        "deployment_lineage_valid",
        LINEAGE,
        record(stage=2, digest=D2, promoted_from=1),
    ),
    trigger(
        "promotion-within-the-slot",
        "deployment_lineage_valid",
        LINEAGE,
        record(status="decommissioned", ended=30, promoted_from=1),
    ),
    accepted("rollback", record(created=30, rollback_of=1), setup=ENDED_1),
    trigger(
        "rollback-from-another-slot",
        "deployment_lineage_valid",
        LINEAGE,
        record(env=2, rollback_of=1),
    ),
    check(
        "promotion-forward-in-time",
        "deployment_promoted_from_check",
        sql(
            DEPLOYMENT.replace("(environment_id", "(id, environment_id").replace(
                "VALUES (?", "VALUES (0, ?"
            ),
            *record(stage=2, promoted_from=1)[1],
        ),
    ),
    check(
        "promotion-and-rollback",
        "deployment_rollback_of_check",
        record(stage=2, created=30, promoted_from=1, rollback_of=3),
        setup=[record(stage=2, status="decommissioned", ended=25, promoted_from=1)],
    ),
    # Deployment CHECKs and foreign keys.
    check(
        "record-digest",
        "deployment_digest_check",
        record(name="web", digest="md5:abc"),
        setup=[
            sql(
                "INSERT INTO attestation_subject (attestation_id, name, digest)"
                " VALUES (1, 'old', 'md5:abc')"
            )
        ],
    ),
    check(
        "status",
        "deployment_status_check",
        record(name="web", status="running", ended=30),
    ),
    check("kind", "deployment_kind_check", record(name="web", kind="VM")),
    check(
        "empty-name",
        "deployment_deployment_name_check",
        record(name=""),
    ),
    check(
        "seen-before-created",
        "deployment_last_seen_at_check",
        record(name="web", seen=1),
    ),
    check(
        "ended-before-created",
        "deployment_ended_at_check",
        record(name="web", status="decommissioned", ended=1),
    ),
    check(
        "ended-but-deployed",
        "deployment_ended_unless_deployed",
        sql("UPDATE deployment SET status = 'decommissioned' WHERE id = 1"),
    ),
    check(
        "superseded-without-successor",
        "deployment_superseded_names_successor",
        sql("UPDATE deployment SET status = 'superseded', ended_at = 20 WHERE id = 1"),
    ),
    check(
        "superseded-by-earlier",
        "deployment_superseded_by_later",
        sql(
            "UPDATE deployment SET status = 'superseded', ended_at = 20, superseded_by = 1"
            " WHERE id = 1"
        ),
    ),
    check(
        "source",
        "deployment_source_check",
        sql(
            "INSERT INTO deployment (environment_id, logical_environment_id, deployment_name,"
            " kind, digest, status, created_at, last_seen_at, source)"
            " VALUES (1, 1, 'web', 'HELM_CHART', ?, 'deployed', 1, 1, 'guessed')",
            D,
        ),
    ),
    Case(
        "unknown-environment",
        [record(env=99)],
        rule="deployment_environment_id_fkey",
        message="FOREIGN KEY constraint failed",
    ),
    # The successor is written after the old record names it: checked at commit.
    accepted(
        "supersede",
        sql(
            "UPDATE deployment SET status = 'superseded', ended_at = 20, superseded_by = 3"
            " WHERE id = 1"
        ),
        record(created=20, digest=D2),
    ),
    Case(
        "superseded-by-nothing",
        [
            sql(
                "UPDATE deployment SET status = 'superseded', ended_at = 20, superseded_by = 9"
                " WHERE id = 1"
            )
        ],
        rule="deployment_superseded_by_fkey",
        message="FOREIGN KEY constraint failed",
    ),
    # Slot tracking.
    accepted(
        "slot-tracked",
        record(name="web", kind="HELM_CHART"),
        record(name="web", kind="HELM_CHART", status="decommissioned", created=1, ended=2),
        then=(
            SLOTS,
            [
                (1, 1, 1, "api", "CONTAINER_IMAGE"),
                (2, 1, 3, "api", "CONTAINER_IMAGE"),
                (3, 1, 1, "web", "HELM_CHART"),
            ],
        ),
    ),
    # NOT NULL (on PostgreSQL the rule is table.column).
    Case(
        "environment-without-name",
        [sql("INSERT INTO environment (type, created_at, updated_at) VALUES ('ecs', 1, 1)")],
        rule="environment.name",
        message="NOT NULL constraint failed: environment.name",
    ),
    Case(
        "blob-without-content",
        [sql("INSERT INTO blob (digest, size, created_at) VALUES (?, 0, 1)", "sha256:" + "f" * 64)],
        rule="blob.content",
        message="NOT NULL constraint failed: blob.content",
    ),
    # Evidence and trust CHECKs.
    check(
        "blob-digest",
        "blob_digest_check",
        sql("INSERT INTO blob (digest, size, content, created_at) VALUES ('md5:x', 1, ?, 1)", b"x"),
    ),
    # SQLite's LIKE ignores ASCII case: so does the CHECK on PostgreSQL.
    accepted(
        "blob-digest-in-capitals",
        sql(
            "INSERT INTO blob (digest, size, content, created_at) VALUES (?, 1, ?, 1)",
            "SHA256:" + "f" * 64,
            b"x",
        ),
    ),
    check(
        "blob-size",
        "blob_size_check",
        sql(
            "INSERT INTO blob (digest, size, content, created_at) VALUES (?, -1, ?, 1)",
            "sha256:" + "f" * 64,
            b"x",
        ),
    ),
    check(
        "attestation-format",
        "attestation_format_check",
        sql(
            "INSERT INTO attestation (digest, format, statement_type, predicate_type,"
            " imported_at) VALUES (?, 'pdf', 'st', 'pt', 1)",
            BLOB,
        ),
    ),
    check(
        "subject-digest",
        "attestation_subject_digest_check",
        sql(
            "INSERT INTO attestation_subject (attestation_id, name, digest)"
            " VALUES (1, 'x', 'nodigest')"
        ),
    ),
    check(
        "material-digest",
        "attestation_material_digest_check",
        sql("INSERT INTO attestation_material (attestation_id, digest) VALUES (1, ':x')"),
    ),
    check(
        "fingerprint",
        "public_key_fingerprint_check",
        sql(
            "INSERT INTO public_key (fingerprint, algorithm, pem, created_at)"
            " VALUES ('MD5:x', 'rsa', ?, 1)",
            PEM,
        ),
    ),
    check(
        "private-key",
        "public_key_pem_check",
        sql(
            "INSERT INTO public_key (fingerprint, algorithm, pem, created_at)"
            " VALUES ('SHA256:x', 'rsa', ?, 1)",
            PEM + "Private",
        ),
    ),
    check(
        "verification-source",
        "attestation_verification_source_check",
        sql(
            "INSERT INTO attestation_verification (attestation_id, public_key_id, source,"
            " verified_at) VALUES (1, 1, 'hearsay', 1)"
        ),
    ),
    check(
        "identity-verification-source",
        "attestation_identity_verification_source_check",
        sql(
            "INSERT INTO attestation_identity_verification (attestation_id, identity, issuer,"
            " trusted_root_digest, source, verified_at) VALUES (1, 'a', 'b', ?, 'x', 1)",
            BLOB,
        ),
    ),
    check(
        "identity-length",
        "attestation_identity_verification_identity_check",
        sql(
            "INSERT INTO attestation_identity_verification (attestation_id, identity, issuer,"
            " trusted_root_digest, source, verified_at) VALUES (1, '', 'b', ?, 'verify', 1)",
            BLOB,
        ),
    ),
    check(
        "issuer-length",
        "attestation_identity_verification_issuer_check",
        sql(
            "INSERT INTO attestation_identity_verification (attestation_id, identity, issuer,"
            " trusted_root_digest, source, verified_at) VALUES (1, 'a', ?, ?, 'verify', 1)",
            "i" * 4097,
            BLOB,
        ),
    ),
    check(
        "policy-action",
        "stage_policy_action_check",
        sql(
            "INSERT INTO stage_policy (logical_environment_id, action, created_at)"
            " VALUES (1, 'maybe', 1)"
        ),
    ),
    check(
        "policy-predicates",
        "stage_policy_required_predicates_check",
        sql(
            "INSERT INTO stage_policy (logical_environment_id, action, required_predicates,"
            " created_at) VALUES (1, 'set', 'pt', 1)"
        ),
    ),
    check(
        "cleared-policy-requires-nothing",
        "stage_policy_clear_requires_nothing",
        sql(
            "INSERT INTO stage_policy (logical_environment_id, action, required_predicates,"
            " created_at) VALUES (1, 'clear', '[\"pt\"]', 1)"
        ),
    ),
    check(
        "identity-match",
        "stage_policy_identity_match_check",
        sql(
            "INSERT INTO stage_policy_identity (policy_id, match, identity, issuer,"
            " trusted_root_digest) VALUES (1, 'glob', 'a', 'b', ?)",
            BLOB,
        ),
    ),
    check(
        "policy-identity-length",
        "stage_policy_identity_identity_check",
        sql(
            "INSERT INTO stage_policy_identity (policy_id, match, identity, issuer,"
            " trusted_root_digest) VALUES (1, 'exact', '', 'b', ?)",
            BLOB,
        ),
    ),
    check(
        "policy-issuer-length",
        "stage_policy_identity_issuer_check",
        sql(
            "INSERT INTO stage_policy_identity (policy_id, match, identity, issuer,"
            " trusted_root_digest) VALUES (1, 'exact', 'a', '', ?)",
            BLOB,
        ),
    ),
    check(
        "admission-key-and-identity",
        "deployment_admission_identity_verification_id_check",
        sql(
            "INSERT INTO deployment_admission (deployment_id, requirement, attestation_id,"
            " public_key_id, identity_verification_id) VALUES (2, 'pt', 1, 1, 1)"
        ),
    ),
    check(
        "environment-type",
        "environment_type_check",
        sql(
            "INSERT INTO environment (name, type, created_at, updated_at)"
            " VALUES ('x', 'mainframe', 1, 1)"
        ),
    ),
    check(
        "is-default",
        "logical_environment_is_default_check",
        sql(
            "INSERT INTO logical_environment (name, is_default, created_at, updated_at)"
            " VALUES ('x', 2, 1, 1)"
        ),
    ),
    # Variables.
    check(
        "variable-name-characters",
        "variable_event_name_check",
        variable(name="BAD-NAME"),
    ),
    check(
        "variable-name-digit",
        "variable_event_name_check",
        variable(name="9LIVES"),
    ),
    check(
        "variable-name-reserved",
        "variable_event_name_check",
        variable(name="deploytrack_x"),
    ),
    accepted("variable-name", variable(name="Good_1")),
    check(
        "variable-deployment-name",
        "variable_event_deployment_name_check",
        variable(deployment=""),
    ),
    check(
        "variable-action",
        "variable_event_action_check",
        variable(action="erase", value=None, salt=None),
    ),
    check(
        "variable-is-secret",
        "variable_event_is_secret_check",
        variable(secret=2),
    ),
    check(
        "secret-in-plaintext",
        "variable_event_secret_only_encrypted",
        variable(secret=1, ciphertext=b"x", key_id="k"),
    ),
    accepted("secret", variable(secret=1, value=None, salt=None, ciphertext=b"x", key_id="k")),
    check(
        "plain-value-with-ciphertext",
        "variable_event_plain_value_unless_redacted",
        variable(ciphertext=b"x"),
    ),
    check(
        "unset-with-value",
        "variable_event_only_set_carries_value",
        variable(action="unset"),
    ),
    check(
        "redacted-flag-on-unset",
        "variable_event_redacted_plain_set",
        sql(
            "INSERT INTO variable_event (logical_environment_id, name, action, created_at,"
            " redacted) VALUES (1, 'FOO', 'unset', 6, 1)"
        ),
    ),
    check(
        "redacted-flag",
        "variable_event_redacted_check",
        sql(
            "INSERT INTO variable_event (logical_environment_id, name, action, value,"
            " value_salt, created_at, redacted) VALUES (1, 'FOO', 'set', 'v', ?, 6, 2)",
            SALT,
        ),
    ),
    check(
        "set-naming-an-entry",
        "variable_event_redaction_names_entry",
        variable(redacts=1),
    ),
    check(
        "redaction-forward-in-time",
        "variable_event_redacts_earlier",
        sql(
            VARIABLE.replace("(logical_environment_id", "(id, logical_environment_id").replace(
                "VALUES (?", "VALUES (0, ?"
            ),
            *redaction()[1],
        ),
    ),
    trigger("value-without-salt", "variable_event_salted", SALTED, variable(salt=None)),
    trigger("salt-in-capitals", "variable_event_salted", SALTED, variable(salt=SALT.upper())),
    trigger("short-salt", "variable_event_salted", SALTED, variable(salt=SALT[:-1])),
    trigger("salt-without-value", "variable_event_salted", SALTED, variable(value=None)),
    accepted(
        "redaction",
        redaction(),
        then=(
            "SELECT id, action, value, value_salt, redacted, redacts FROM variable_event"
            " ORDER BY id",
            [(1, "set", None, None, 1, None), (2, "redacted", None, None, 0, 1)],
        ),
    ),
    trigger(
        "redaction-of-another-variable",
        "variable_event_redaction_valid",
        REDACTION,
        redaction(name="BAR"),
    ),
    trigger(
        "redaction-at-another-scope", "variable_event_redaction_valid", REDACTION, redaction(env=1)
    ),
    trigger(
        "redaction-before-the-value",
        "variable_event_redaction_valid",
        REDACTION,
        redaction(created=4),
    ),
    trigger(
        "second-redaction",
        "variable_event_redaction_valid",
        REDACTION,
        redaction(),
        setup=[redaction()],
    ),
    trigger(
        "redaction-of-a-secret",
        "variable_event_redaction_valid",
        REDACTION,
        redaction(redacts=2),
        setup=[variable(secret=1, value=None, salt=None, ciphertext=b"x", key_id="k")],
    ),
    # SQLite fires the newer trigger first: its message, on both.
    trigger(
        "bad-redaction-with-a-salt",
        "variable_event_salted",
        SALTED,
        redaction(name="BAR", salt=SALT),
    ),
    trigger(
        "change-a-value",
        "variable_event_only_redaction",
        "variable history never changes, but for the redaction of a plain value",
        sql("UPDATE variable_event SET value = 'w' WHERE id = 1"),
    ),
    trigger(
        "blank-a-value-without-its-line",
        "variable_event_only_redaction",
        "variable history never changes, but for the redaction of a plain value",
        sql("UPDATE variable_event SET value = NULL, value_salt = NULL, redacted = 1"),
    ),
    trigger(
        "delete-a-variable",
        "variable_event_no_delete",
        "variable history is never deleted",
        sql("DELETE FROM variable_event"),
    ),
    # The event log.
    trigger(
        "event-out-of-sequence",
        "log_event_dense",
        "events are appended in sequence",
        sql(
            "INSERT INTO log_event (seq, time, type, body, leaf_hash)"
            " SELECT max(seq) + 2, 1, 'x', ?, ? FROM log_event",
            b"{}",
            HASH,
        ),
    ),
    trigger(
        "event-without-sequence",
        "log_event_dense",
        "events are appended in sequence",
        sql(
            "INSERT INTO log_event (time, type, body, leaf_hash) VALUES (1, 'x', ?, ?)", b"{}", HASH
        ),
    ),
    accepted(
        "event-in-sequence",
        sql(
            "INSERT INTO log_event (seq, time, type, body, leaf_hash)"
            " SELECT max(seq) + 1, 1, 'x', ?, ? FROM log_event",
            b"{}",
            HASH,
        ),
    ),
    check(
        "event-type",
        "log_event_type_check",
        sql(
            "INSERT INTO log_event (seq, time, type, body, leaf_hash)"
            " SELECT max(seq) + 1, 1, '', ?, ? FROM log_event",
            b"{}",
            HASH,
        ),
    ),
    check(
        "event-leaf",
        "log_event_leaf_hash_check",
        sql(
            "INSERT INTO log_event (seq, time, type, body, leaf_hash)"
            " SELECT max(seq) + 1, 1, 'x', ?, ? FROM log_event",
            b"{}",
            HASH[:31],
        ),
    ),
    check(
        "node-level",
        "log_node_level_check",
        sql("INSERT INTO log_node (level, idx, hash) VALUES (0, 0, ?)", HASH),
    ),
    check(
        "node-index",
        "log_node_idx_check",
        sql("INSERT INTO log_node (level, idx, hash) VALUES (1, -1, ?)", HASH),
    ),
    check(
        "node-hash",
        "log_node_hash_check",
        sql("INSERT INTO log_node (level, idx, hash) VALUES (61, 0, ?)", b"x"),
    ),
    check(
        "tree-head-size",
        "log_tree_head_size_check",
        sql("INSERT INTO log_tree_head (size, root, created_at) VALUES (0, ?, 1)", HASH),
    ),
    check(
        "tree-head-root",
        "log_tree_head_root_check",
        sql("INSERT INTO log_tree_head (size, root, created_at) VALUES (5000, ?, 1)", b"x"),
    ),
    check(
        "second-origin",
        "log_origin_id_check",
        sql("INSERT INTO log_origin (id, origin) VALUES (2, 'deploytrack.local/x')"),
    ),
    check(
        "origin-with-a-space",
        "log_origin_origin_check",
        sql("INSERT INTO log_origin (id, origin) VALUES (1, 'deploytrack.local/a b')"),
    ),
    check(
        "origin-elsewhere",
        "log_origin_origin_check",
        sql("INSERT INTO log_origin (id, origin) VALUES (1, 'example.com/x')"),
    ),
    # The prefix in capitals passes the CHECK (LIKE ignores case) and meets the key.
    Case(
        "origin-in-capitals",
        [sql("INSERT INTO log_origin (id, origin) VALUES (1, 'DEPLOYTRACK.LOCAL/x')")],
        rule="log_origin_pkey",
        message="UNIQUE constraint failed: log_origin.id",
    ),
]

APPEND_ONLY = {
    "blob": ("stored evidence never changes", "stored evidence is never deleted"),
    "attestation": ("stored evidence never changes", "stored evidence is never deleted"),
    "attestation_subject": ("stored evidence never changes", "stored evidence is never deleted"),
    "attestation_material": ("stored evidence never changes", "stored evidence is never deleted"),
    "public_key": ("trust history never changes", "trust history is never deleted"),
    "attestation_verification": ("trust history never changes", "trust history is never deleted"),
    "stage_policy": ("trust history never changes", "trust history is never deleted"),
    "stage_policy_key": ("trust history never changes", "trust history is never deleted"),
    "deployment_admission": ("trust history never changes", "trust history is never deleted"),
    "attestation_identity_verification": (
        "trust history never changes",
        "trust history is never deleted",
    ),
    "stage_policy_identity": ("trust history never changes", "trust history is never deleted"),
    "deployment_slot": ("deployment slots follow the history",) * 2,
    "log_origin": ("the log origin never changes", "the log origin is never deleted"),
    "log_event": ("logged events never change", "logged events are never deleted"),
    "log_node": ("the log tree never changes", "the log tree is never deleted"),
    "log_tree_head": ("tree heads never change", "tree heads are never deleted"),
}
# Each table's first column: setting it to itself changes nothing, and is refused anyway.
FIRST_COLUMN = {
    "blob": "digest",
    "stage_policy_key": "policy_id",
    "stage_policy_identity": "policy_id",
}
FIRST_COLUMN |= {"log_event": "seq", "log_node": "level", "log_tree_head": "size"}
for _table, (_changes, _deletes) in APPEND_ONLY.items():
    _column = FIRST_COLUMN.get(_table, "id")
    CASES += [
        trigger(
            f"update-{_table}",
            f"{_table}_no_update",
            _changes,
            sql(f"UPDATE {_table} SET {_column} = {_column}"),
        ),
        trigger(f"delete-{_table}", f"{_table}_no_delete", _deletes, sql(f"DELETE FROM {_table}")),
    ]


def refusal(db: peewee.Database, exc: peewee.IntegrityError) -> tuple[str, str | None]:
    """The line the user reads (the store's translation of the error), and on PostgreSQL
    the rule that refused: the constraint named by the error, or the trigger function
    that raised."""
    if isinstance(db, peewee.SqliteDatabase):
        return str(errors.translate(exc, str(db.database))), None
    line = str(postgres.translate(exc, str(db.database)))
    diag = exc.orig.diag  # type: ignore[attr-defined]
    if diag.sqlstate == "23502":  # NOT NULL is no named constraint before PostgreSQL 18
        return line, f"{diag.table_name}.{diag.column_name}"
    if diag.constraint_name:
        return line, str(diag.constraint_name)
    raised = re.search(r"PL/pgSQL function (\w+)\(\) line \d+ at RAISE", diag.context or "")
    return line, raised[1] if raised else None


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest) -> Iterator[peewee.Database]:
    """A fresh database with the whole schema, of the test's backend, connected (raw:
    peewee's database only, none of the store's transactions or event log)."""
    if backend == "sqlite":
        path = request.getfixturevalue("sqlite_path")
        db: peewee.Database = peewee.SqliteDatabase(str(path), pragmas={"foreign_keys": 1})
    else:
        db = pg_database(request.getfixturevalue("pg_migrated"))
    db.connect()
    yield db
    db.close()


def run(db: peewee.Database, statements: list[Statement]) -> None:
    with db.atomic():
        for text, params in statements:
            db.execute_sql(text, params)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule(database: peewee.Database, case: Case) -> None:
    run(database, BASE + case.setup)
    if case.rule is None:
        run(database, case.statements)
        if case.then is not None:
            query, rows = case.then
            assert [tuple(r) for r in database.execute_sql(query).fetchall()] == rows
        return
    with pytest.raises(peewee.IntegrityError) as refused:
        run(database, case.statements)
    line, rule = refusal(database, refused.value)
    assert line == f"the database refused the change: {case.message}"
    if isinstance(database, peewee.PostgresqlDatabase):
        assert rule == case.rule


def test_every_rule_has_a_case(catalogues: Any, pg_migrated: str) -> None:
    """Every CHECK, key, foreign key and refusing trigger of the PostgreSQL schema is the
    rule of a case above (so each has a statement it refuses, on both backends)."""
    _, pg = catalogues
    db = pg_database(pg_migrated)
    with db.connection_context():
        checks = {
            row[0]
            for row in db.execute_sql(
                "SELECT conname FROM pg_constraint c JOIN pg_namespace n"
                " ON n.oid = c.connamespace WHERE n.nspname = current_schema() AND contype = 'c'"
            )
        }
    refusing = {
        name
        for name in pg["triggers"]
        if not name.endswith("_assign_id")
        and name not in ("deployment_slot_track", "variable_event_redact")
    }
    # No statement can break seq >= 1 without breaking log_event_dense first (it wants
    # max + 1, never below 1): the CHECK is there for a log whose trigger was dropped.
    covered = {case.rule for case in CASES} | {"log_event_seq_check"}
    assert checks - covered == set()
    # ...and every CHECK has SQLite's text, for its refusal in SQLite's words.
    assert set(pgrefusal.SQLITE_CHECKS) == checks
    assert refusing - covered == set()


# -- ids ---------------------------------------------------------------------------------


ENVIRONMENT = (
    "INSERT INTO environment (name, type, created_at, updated_at) VALUES (?, 'custom', 1, 1)"
)


def ids(db: peewee.Database) -> list[int]:
    return [int(r[0]) for r in db.execute_sql("SELECT id FROM environment ORDER BY id")]


def test_ids_are_max_plus_one_without_gaps(database: peewee.Database) -> None:
    """SQLite's rowids on both: no id is spent by a rolled-back or refused insert, an id
    given is kept, and the next one follows the largest."""
    with pytest.raises(ZeroDivisionError), database.atomic():
        database.execute_sql(ENVIRONMENT, ("rolled-back",))
        assert ids(database) == [1]
        raise ZeroDivisionError
    with pytest.raises(peewee.IntegrityError):
        database.execute_sql(ENVIRONMENT.replace("'custom'", "'nope'"), ("refused",))
    database.execute_sql(ENVIRONMENT, ("a",))
    assert ids(database) == [1]
    database.execute_sql(
        "INSERT INTO environment (id, name, type, created_at, updated_at)"
        " VALUES (10, 'b', 'custom', 1, 1)"
    )
    # Several rows of one statement: each follows the one before.
    database.execute_sql(
        "INSERT INTO environment (name, type, created_at, updated_at)"
        " VALUES ('c', 'custom', 1, 1), ('d', 'custom', 1, 1)"
    )
    assert ids(database) == [1, 10, 11, 12]
    # A NULL id is no id: assigned too.
    database.execute_sql(
        "INSERT INTO environment (id, name, type, created_at, updated_at)"
        " VALUES (NULL, 'e', 'custom', 1, 1)"
    )
    assert ids(database) == [1, 10, 11, 12, 13]


def test_two_redactions_of_one_value_in_one_statement(database: peewee.Database) -> None:
    """Refused on both, by a different rule: SQLite runs an AFTER trigger after each row
    (the first redaction blanks the value, so the second names no plain value), PostgreSQL
    at the end of the statement (both rows pass the BEFORE trigger and the unique index
    refuses the second). docs/database.md lists this difference."""
    run(database, BASE)
    text, params = redaction()
    two = text.replace("?)", "?), (" + ", ".join("?" * len(params)) + ")")
    with pytest.raises(peewee.IntegrityError) as refused:
        run(database, [(two, params + params)])
    line, rule = refusal(database, refused.value)
    if isinstance(database, peewee.SqliteDatabase):
        assert line == f"the database refused the change: {REDACTION}"
    else:
        assert rule == "variable_event_one_redaction"
        assert (
            line
            == "the database refused the change: UNIQUE constraint failed: variable_event.redacts"
        )
    assert database.execute_sql("SELECT count(*) FROM variable_event").fetchone()[0] == 1


def test_a_blob_without_digest_is_refused_on_postgresql_only(database: peewee.Database) -> None:
    """SQLite lets a TEXT PRIMARY KEY be NULL (a quirk it keeps for compatibility), and the
    digest CHECK passes NULL; a PostgreSQL key never is. deploytrack always writes the
    digest; docs/database.md lists this difference."""
    statement = sql(
        "INSERT INTO blob (digest, size, content, created_at) VALUES (NULL, 1, ?, 1)", b"x"
    )
    if isinstance(database, peewee.SqliteDatabase):
        run(database, [statement])
        return
    with pytest.raises(peewee.IntegrityError) as refused:
        run(database, [statement])
    assert refusal(database, refused.value)[0] == (
        "the database refused the change: NOT NULL constraint failed: blob.digest"
    )
