"""Health checks of an open database, for `deploytrack doctor`.

Each check returns a list of problems (empty when healthy), each one line a user can act
on. The checks read only; they hold no lock longer than one statement.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import TypeVar

import peewee

from deploytrack.store import migrations
from deploytrack.timeutil import rfc3339

_BLOB_BATCH = 200
T = TypeVar("T")


def guarded(name: str, check: Callable[[], T], failed: T) -> tuple[T, list[str]]:
    """Run one check; a database error while checking is itself a problem to report."""
    try:
        return check(), []
    # peewee wraps errors of execute(), not of fetching rows: catch the driver's too.
    except (peewee.DatabaseError, sqlite3.DatabaseError) as exc:
        return failed, [f"{name}: the check could not run: {_first_line(exc)}"]
    except Exception as exc:
        from deploytrack.store import postgres

        if not postgres.is_error(exc):
            raise
        return failed, [f"{name}: the check could not run: {_first_line(exc)}"]


def _first_line(exc: BaseException) -> str:
    """A driver's message as one line (PostgreSQL's add LINE and HINT lines)."""
    return str(exc).strip().split("\n")[0]


def is_postgresql(db: peewee.Database) -> bool:
    return not isinstance(db, peewee.SqliteDatabase)


def integrity(db: peewee.Database) -> list[str]:
    if is_postgresql(db):
        return _pg_integrity(db)
    rows = [r[0] for r in db.execute_sql("PRAGMA integrity_check").fetchall()]
    if rows == ["ok"]:
        return []
    return [f"integrity check: {row}" for row in rows[:20]]


# The triggers the PostgreSQL schema's steps (store/pgschema.py) leave, by table: the
# rules they enforce are the schema's, so one dropped or disabled is a problem. The
# event log's capture triggers come on top (eventlog.install_pg_capture), one per state
# table and change it captures. tests/test_doctor.py compares this with a database
# `db migrate` made.
PG_TRIGGERS: dict[str, tuple[str, ...]] = {
    "attestation": ("assign_id", "no_delete", "no_update"),
    "attestation_identity_verification": ("assign_id", "no_delete", "no_update"),
    "attestation_material": ("assign_id", "no_delete", "no_update"),
    "attestation_subject": ("assign_id", "no_delete", "no_update"),
    "attestation_verification": ("assign_id", "no_delete", "no_update"),
    "blob": ("no_delete", "no_update"),
    "deployment": (
        "assign_id", "immutable", "lineage_immutable", "lineage_valid", "needs_evidence",
        "no_delete", "policy_immutable", "policy_in_force", "slot_track", "source_immutable",
    ),
    "deployment_admission": ("assign_id", "no_delete", "no_update"),
    "deployment_slot": ("assign_id", "no_delete", "no_update"),
    "environment": ("assign_id",),
    "log_event": ("dense", "no_delete", "no_update"),
    "log_node": ("no_delete", "no_update"),
    "log_origin": ("assign_id", "no_delete", "no_update"),
    "log_tree_head": ("no_delete", "no_update"),
    "logical_environment": ("assign_id", "policy_history"),
    "public_key": ("assign_id", "no_delete", "no_update"),
    "stage_policy": ("assign_id", "no_delete", "no_update"),
    "stage_policy_identity": ("no_delete", "no_update"),
    "stage_policy_key": ("no_delete", "no_update"),
    "variable_event": (
        "assign_id", "no_delete", "only_redaction", "redact", "redaction_valid", "salted",
    ),
}  # fmt: skip


def pg_expected_triggers(db: peewee.Database) -> dict[str, str]:
    """Every trigger the schema needs on PostgreSQL: name -> table."""
    from deploytrack.store import eventlog

    expected = {
        f"{table}_{suffix}": table for table, suffixes in PG_TRIGGERS.items() for suffix in suffixes
    }
    # Captured: every change but those an append-only trigger refuses (by the schema's
    # list, not the database's: a dropped no_update trigger is not a capture less).
    for name in eventlog.state_tables(db):
        refused = {s.removeprefix("no_") for s in PG_TRIGGERS.get(name, ()) if s.startswith("no_")}
        for op in ("insert", "update", "delete"):
            if op not in refused:
                expected[f"{eventlog.PG_CAPTURE_PREFIX}{name}_{op}"] = name
    return expected


_PG_SCHEMA = "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())"


def _pg_integrity(db: peewee.Database) -> list[str]:
    """PostgreSQL keeps its pages whole itself (checksums, WAL): what can be broken is the
    schema's guard. Every constraint is validated (a NOT VALID one holds for new rows
    only), every index is valid (a failed concurrent build leaves one that enforces and
    finds nothing), and every trigger the schema needs is there and enabled."""
    problems = []
    for table, name in db.execute_sql(
        "SELECT c.relname, k.conname FROM pg_constraint AS k JOIN pg_class AS c"
        f" ON c.oid = k.conrelid WHERE k.connamespace = {_PG_SCHEMA} AND NOT k.convalidated"
        " ORDER BY c.relname, k.conname"
    ).fetchall():
        problems.append(
            f"integrity check: constraint {name} of {table} is not validated, so rows may "
            f"break it: run ALTER TABLE {table} VALIDATE CONSTRAINT {name}"
        )
    for table, name in db.execute_sql(
        "SELECT t.relname, c.relname FROM pg_index AS i JOIN pg_class AS c ON c.oid ="
        " i.indexrelid JOIN pg_class AS t ON t.oid = i.indrelid WHERE c.relnamespace ="
        f" {_PG_SCHEMA} AND NOT (i.indisvalid AND i.indisready) ORDER BY t.relname, c.relname"
    ).fetchall():
        problems.append(
            f"integrity check: index {name} of {table} is not valid, so it enforces and "
            f"finds nothing: run REINDEX INDEX {name}"
        )
    from deploytrack.store import pgmigrate

    done = pgmigrate.applied(db)
    if done is None or migrations.pending(done):
        # The schema check names what is missing: the triggers of a step not applied are
        # not this check's to list one by one.
        return problems[:20]
    present = {
        str(name): (str(table), str(enabled))
        for name, table, enabled in db.execute_sql(
            "SELECT t.tgname, c.relname, t.tgenabled FROM pg_trigger AS t JOIN pg_class AS c"
            f" ON c.oid = t.tgrelid WHERE c.relnamespace = {_PG_SCHEMA} AND NOT t.tgisinternal"
        ).fetchall()
    }
    for name, table in sorted(pg_expected_triggers(db).items(), key=lambda t: (t[1], t[0])):
        found = present.get(name)
        if found is None or found[0] != table:
            problems.append(
                f"integrity check: trigger {name} on {table} is missing, so the rule it "
                "enforces is not enforced: restore the database from a backup, or rebuild "
                "it with audit export and audit import"
            )
        # 'O' fires in ordinary sessions, 'A' always; 'D' is disabled, 'R' replicas only.
        elif found[1] not in ("O", "A"):
            problems.append(
                f"integrity check: trigger {name} on {table} is disabled, so the rule it "
                f"enforces is not enforced: run ALTER TABLE {table} ENABLE TRIGGER {name}"
            )
    return problems[:20]


def pg_foreign_key_check(db: peewee.Database) -> list[tuple[str, object, str, str, object]]:
    """PRAGMA foreign_key_check on PostgreSQL: (table, row, parent, column, value) of
    at most 20 rows whose reference points nowhere, each foreign key checked with an
    anti-join (PostgreSQL enforces them, unless its triggers were set aside: a
    superuser's session_replication_role, or ALTER TABLE ... DISABLE TRIGGER ALL). The
    row is named by its primary key, as SQLite's rowid names it."""
    keys = db.execute_sql(
        "SELECT c.relname, p.relname, k.conkey, k.confkey,"
        " (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute AS a"
        "  WHERE a.attrelid = c.oid AND a.attnum = ANY (k.conkey)),"
        " (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute AS a"
        "  WHERE a.attrelid = p.oid AND a.attnum = ANY (k.confkey)),"
        " (SELECT array_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum))"
        "  FROM pg_index AS i JOIN pg_attribute AS a ON a.attrelid = i.indrelid"
        "  AND a.attnum = ANY (i.indkey) WHERE i.indrelid = c.oid AND i.indisprimary)"
        " FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid"
        " JOIN pg_class AS p ON p.oid = k.confrelid"
        f" WHERE k.contype = 'f' AND k.connamespace = {_PG_SCHEMA} ORDER BY c.oid, k.oid"
    ).fetchall()
    found: list[tuple[str, object, str, str, object]] = []
    for table, parent, conkey, confkey, columns, parent_columns, pk in keys:
        if len(found) >= 20:
            break
        # The columns in the constraint's order (conkey), matched with the parent's.
        by_num = dict(zip(sorted(conkey), columns, strict=True))
        parent_by_num = dict(zip(sorted(confkey), parent_columns, strict=True))
        child = [by_num[n] for n in conkey]
        referenced = [parent_by_num[n] for n in confkey]
        key = list(pk or ["ctid"])
        match = " AND ".join(
            f"p.{_quoted(r)} = c.{_quoted(k)}" for k, r in zip(child, referenced, strict=True)
        )
        rows = db.execute_sql(
            f"SELECT {', '.join('c.' + _quoted(k) for k in key)},"
            f" {', '.join('c.' + _quoted(k) for k in child)} FROM {_quoted(table)} AS c"
            f" WHERE {' AND '.join('c.' + _quoted(k) + ' IS NOT NULL' for k in child)}"
            f" AND NOT EXISTS (SELECT 1 FROM {_quoted(parent)} AS p WHERE {match})"
            f" ORDER BY {', '.join('c.' + _quoted(k) for k in key)} LIMIT ?",
            (20 - len(found),),
        ).fetchall()
        for row in rows:
            ident = row[: len(key)]
            values = row[len(key) :]
            found.append(
                (
                    str(table),
                    ident[0] if len(ident) == 1 else ", ".join(str(v) for v in ident),
                    str(parent),
                    ", ".join(child),
                    values[0] if len(values) == 1 else ", ".join(str(v) for v in values),
                )
            )
    return found


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def foreign_keys(db: peewee.Database) -> list[str]:
    if is_postgresql(db):
        return [
            _foreign_key_problem(table, row, parent, column, value)
            for table, row, parent, column, value in pg_foreign_key_check(db)
        ]
    rows = db.execute_sql("PRAGMA foreign_key_check").fetchall()[:20]
    problems = []
    for table, rowid, parent, fkid in rows:
        # Which column points nowhere, and at what: the parent is missing, so its id is
        # all there is to name it by.
        column = next(
            (
                f[3]
                for f in db.execute_sql(f"PRAGMA foreign_key_list({_quoted(table)})").fetchall()
                if f[0] == fkid
            ),
            None,
        )
        value = None
        if column is not None and rowid is not None:
            found = db.execute_sql(
                f"SELECT {_quoted(column)} FROM {_quoted(table)} WHERE rowid = ?", (rowid,)
            ).fetchone()
            value = found[0] if found else None
        problems.append(_foreign_key_problem(table, rowid, parent, column, value))
    return problems


def _foreign_key_problem(
    table: str, row: object, parent: str, column: str | None, value: object
) -> str:
    what = f"deployment record {row}" if table == "deployment" else f"row {row} of {table}"
    pointer = f" ({column} {value})" if column is not None else ""
    return f"foreign key: {what} points at a missing {parent}{pointer}"


def schema(db: peewee.Database) -> tuple[list[str], list[str]]:
    """(applied migrations, problems), by the migrations' own bookkeeping."""
    if is_postgresql(db):
        from deploytrack.store import pgmigrate

        applied = pgmigrate.applied(db)
    else:
        applied = migrations.applied(db)
    if applied is None:
        if is_postgresql(db):  # a new database: its schema is made by `db migrate` only
            return [], [
                "schema: no migration table: run 'deploytrack --db URL db migrate' to set "
                "the database up"
            ]
        return [], ["schema: no migration table: this is not a deploytrack database"]
    problems = [f"schema: migration {n} is not applied" for n in migrations.pending(applied)]
    problems += [
        f"schema: unknown migration {n} (a newer deploytrack)" for n in migrations.unknown(applied)
    ]
    return applied, problems


def _select_with_slot(columns: str, source: str, t: str) -> str:
    """`SELECT columns` from `source`, whose rows aliased `t` are records, each row ending
    with what `_slot` takes, in its order.

    A problem line names a slot as people know it: the names of its environment and
    logical environment, read with the problem rows (an id only when the row it names is
    itself missing).
    """
    return (
        f"SELECT {columns}, {t}.deployment_name, {t}.kind, e.name, {t}.environment_id,"
        f" l.name, {t}.logical_environment_id FROM {source}"
        f" LEFT JOIN environment AS e ON e.id = {t}.environment_id"
        f" LEFT JOIN logical_environment AS l ON l.id = {t}.logical_environment_id"
    )


def _named(name: str | None, row_id: int) -> str:
    return name if name is not None else f"id {row_id} (missing)"


def _slot(
    deployment_name: str, kind: str, env: str | None, env_id: int, stage: str | None, stage_id: int
) -> str:
    return (
        f"{deployment_name} ({kind}) in environment {_named(env, env_id)}, "
        f"logical environment {_named(stage, stage_id)}"
    )


def one_active_per_slot(db: peewee.Database) -> list[str]:
    ids = (
        "string_agg(d.id::text, ', ' ORDER BY d.id)"
        if is_postgresql(db)
        else "group_concat(d.id, ', ')"
    )
    rows = db.execute_sql(
        _select_with_slot(
            f"COUNT(*), {ids}",
            # Ordered in a subquery: SQLite concatenates in the order rows arrive.
            "(SELECT * FROM deployment WHERE status = 'deployed' ORDER BY id) AS d",
            "d",
        )
        # The names too: PostgreSQL selects no column a group does not fix (each group has
        # one of each anyway: it has one environment id and one logical environment id).
        + " GROUP BY d.environment_id, d.logical_environment_id, d.deployment_name, d.kind,"
        " e.name, l.name HAVING COUNT(*) > 1"
    ).fetchall()
    return [f"invariant: {r[0]} deployed records for {_slot(*r[2:])}: records {r[1]}" for r in rows]


def superseded_have_successors(db: peewee.Database) -> list[str]:
    rows = db.execute_sql(
        _select_with_slot(
            "old.id, old.superseded_by",
            "deployment AS old LEFT JOIN deployment AS new ON new.id = old.superseded_by",
            "old",
        )
        + " WHERE old.status = 'superseded' AND (new.id IS NULL OR new.id <= old.id"
        "  OR new.environment_id <> old.environment_id"
        "  OR new.logical_environment_id <> old.logical_environment_id"
        "  OR new.deployment_name <> old.deployment_name OR new.kind <> old.kind"
        "  OR new.created_at < old.ended_at)"
        " ORDER BY old.id LIMIT 50"
    ).fetchall()
    return [
        f"invariant: superseded record {r[0]} has no later successor in its slot "
        f"(superseded_by {r[1]}): {_slot(*r[2:])}"
        for r in rows
    ]


def timeline(db: peewee.Database) -> list[str]:
    """The records of each slot, ordered by start, follow one another without overlap.

    Each record ends at or before the next one starts, a superseded record ends exactly
    where the record it names as successor starts and that record is the next one, and
    only the last record may be open. One pass over the slot index (the window's
    partition and order are those of deployment_key_time, so SQLite sorts nothing).
    """
    # The null-safe comparison: SQLite's `IS NOT`, the standard's IS DISTINCT FROM.
    distinct = "IS DISTINCT FROM" if is_postgresql(db) else "IS NOT"
    rows = db.execute_sql(
        "WITH ordered AS (SELECT id, environment_id, logical_environment_id,"
        "  deployment_name, kind, status, ended_at, superseded_by,"
        "  LEAD(id) OVER slot AS next_id, LEAD(created_at) OVER slot AS next_start"
        " FROM deployment WINDOW slot AS (PARTITION BY environment_id,"
        "  logical_environment_id, deployment_name, kind ORDER BY created_at, id)),"
        # Names are joined to the few problem rows only, not to every record.
        " bad AS (SELECT * FROM ordered WHERE next_id IS NOT NULL"
        "  AND (ended_at IS NULL OR ended_at > next_start OR (status = 'superseded'"
        f"   AND (ended_at <> next_start OR superseded_by {distinct} next_id)))"
        "  ORDER BY id LIMIT 50)"
        " "
        + _select_with_slot(
            "o.id, o.ended_at, o.superseded_by, o.next_id, o.next_start", "bad AS o", "o"
        )
        + " ORDER BY o.id"
    ).fetchall()
    problems = []
    for record, ended, successor, next_id, next_start, *slot in rows:
        where = _slot(*slot)
        if ended is None:
            problems.append(
                f"timeline: record {record} of {where} is still deployed, but record "
                f"{next_id} starts after it at {rfc3339(next_start)}: only the last record "
                "of a slot may be open"
            )
        elif ended > next_start:
            problems.append(
                f"timeline: records {record} and {next_id} of {where} overlap: record "
                f"{record} ends at {rfc3339(ended)}, after record {next_id} starts at "
                f"{rfc3339(next_start)}"
            )
        elif ended != next_start:
            problems.append(
                f"timeline: superseded record {record} of {where} ends at {rfc3339(ended)}, "
                f"not where its successor, record {next_id}, starts ({rfc3339(next_start)})"
            )
        else:
            problems.append(
                f"timeline: superseded record {record} of {where} names record {successor} "
                f"as its successor, but record {next_id} follows it"
            )
    return problems


def digests_have_evidence(db: peewee.Database) -> list[str]:
    rows = db.execute_sql(
        _select_with_slot("d.digest, d.id", "deployment AS d", "d") + " WHERE NOT EXISTS"
        " (SELECT 1 FROM attestation_subject AS s WHERE s.digest = d.digest)"
        " AND NOT EXISTS (SELECT 1 FROM attestation_material AS m WHERE m.digest = d.digest)"
        " ORDER BY d.digest, d.id"
    ).fetchall()
    by_digest: dict[str, list[str]] = {}
    for digest, record, *slot in rows:
        by_digest.setdefault(digest, []).append(f"record {record}, {_slot(*slot)}")
    return [
        f"invariant: recorded digest {digest} is in no stored attestation: "
        + "; ".join(records[:5])
        + ("; ..." if len(records) > 5 else "")
        for digest, records in list(by_digest.items())[:50]
    ]


def _blobs(db: peewee.Database) -> Iterator[tuple[str, bytes]]:
    last = ""
    while True:
        batch = db.execute_sql(
            "SELECT digest, content FROM blob WHERE digest > ? ORDER BY digest LIMIT ?",
            (last, _BLOB_BATCH),
        ).fetchall()
        if not batch:
            return
        yield from ((digest, bytes(content)) for digest, content in batch)
        last = batch[-1][0]


def blobs_match_digests(db: peewee.Database) -> tuple[int, list[str]]:
    """(blobs checked, problems): every stored blob must hash to its digest."""
    checked, problems = 0, []
    for digest, content in _blobs(db):
        checked += 1
        actual = "sha256:" + hashlib.sha256(content).hexdigest()
        if actual != digest:
            problems.append(f"evidence: stored blob {digest} hashes to {actual}")
    return checked, problems
