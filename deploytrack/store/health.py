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

from deploytrack.store.migrations import MIGRATION_TABLE, MIGRATIONS

_BLOB_BATCH = 200
T = TypeVar("T")


def guarded(name: str, check: Callable[[], T], failed: T) -> tuple[T, list[str]]:
    """Run one check; a database error while checking is itself a problem to report."""
    try:
        return check(), []
    # peewee wraps errors of execute(), not of fetching rows: catch the driver's too.
    except (peewee.DatabaseError, sqlite3.DatabaseError) as exc:
        return failed, [f"{name}: the check could not run: {exc}"]


def integrity(db: peewee.Database) -> list[str]:
    rows = [r[0] for r in db.execute_sql("PRAGMA integrity_check").fetchall()]
    if rows == ["ok"]:
        return []
    return [f"integrity check: {row}" for row in rows[:20]]


def foreign_keys(db: peewee.Database) -> list[str]:
    rows = db.execute_sql("PRAGMA foreign_key_check").fetchall()
    return [f"foreign key: row {r[1]} of {r[0]} points at a missing {r[2]}" for r in rows[:20]]


def schema(db: peewee.Database) -> tuple[list[str], list[str]]:
    """(applied migrations, problems)."""
    try:
        cursor = db.execute_sql(f"SELECT name FROM {MIGRATION_TABLE}")
    except peewee.OperationalError:
        return [], ["schema: no migration table: this is not a deploytrack database"]
    applied = [r[0] for r in cursor.fetchall()]
    known = [m.__name__ for m in MIGRATIONS]
    problems = [f"schema: migration {n} is not applied" for n in known if n not in applied]
    problems += [
        f"schema: unknown migration {n} (a newer deploytrack)" for n in applied if n not in known
    ]
    return applied, problems


def one_active_per_key(db: peewee.Database) -> list[str]:
    rows = db.execute_sql(
        "SELECT environment_id, logical_environment_id, deployment_name, kind, COUNT(*)"
        " FROM deployment WHERE status = 'deployed' GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1"
    ).fetchall()
    return [
        f"invariant: {r[4]} deployed records for {r[2]} ({r[3]}) in environment id {r[0]}, "
        f"stage id {r[1]}"
        for r in rows
    ]


def superseded_have_successors(db: peewee.Database) -> list[str]:
    rows = db.execute_sql(
        "SELECT old.id, old.superseded_by FROM deployment AS old"
        " LEFT JOIN deployment AS new ON new.id = old.superseded_by"
        " WHERE old.status = 'superseded' AND (new.id IS NULL OR new.id <= old.id"
        "  OR new.environment_id <> old.environment_id"
        "  OR new.logical_environment_id <> old.logical_environment_id"
        "  OR new.deployment_name <> old.deployment_name OR new.kind <> old.kind"
        "  OR new.created_at < old.ended_at)"
    ).fetchall()
    return [
        f"invariant: superseded record {r[0]} has no later successor in its key "
        f"(superseded_by {r[1]})"
        for r in rows[:50]
    ]


def digests_have_evidence(db: peewee.Database) -> list[str]:
    rows = db.execute_sql(
        "SELECT DISTINCT d.digest FROM deployment AS d WHERE NOT EXISTS"
        " (SELECT 1 FROM attestation_subject AS s WHERE s.digest = d.digest)"
        " AND NOT EXISTS (SELECT 1 FROM attestation_material AS m WHERE m.digest = d.digest)"
    ).fetchall()
    return [f"invariant: recorded digest {r[0]} is in no stored attestation" for r in rows[:50]]


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
