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
        return failed, [f"{name}: the check could not run: {exc}"]


def integrity(db: peewee.Database) -> list[str]:
    rows = [r[0] for r in db.execute_sql("PRAGMA integrity_check").fetchall()]
    if rows == ["ok"]:
        return []
    return [f"integrity check: {row}" for row in rows[:20]]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def foreign_keys(db: peewee.Database) -> list[str]:
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
        what = f"deployment record {rowid}" if table == "deployment" else f"row {rowid} of {table}"
        pointer = f" ({column} {value})" if column is not None else ""
        problems.append(f"foreign key: {what} points at a missing {parent}{pointer}")
    return problems


def schema(db: peewee.Database) -> tuple[list[str], list[str]]:
    """(applied migrations, problems), by the migrations' own bookkeeping."""
    applied = migrations.applied(db)
    if applied is None:
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
    rows = db.execute_sql(
        _select_with_slot(
            "COUNT(*), group_concat(d.id, ', ')",
            # Ordered in a subquery: SQLite concatenates in the order rows arrive.
            "(SELECT * FROM deployment WHERE status = 'deployed' ORDER BY id) AS d",
            "d",
        )
        + " GROUP BY d.environment_id, d.logical_environment_id, d.deployment_name, d.kind"
        " HAVING COUNT(*) > 1"
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
    rows = db.execute_sql(
        "WITH ordered AS (SELECT id, environment_id, logical_environment_id,"
        "  deployment_name, kind, status, ended_at, superseded_by,"
        "  LEAD(id) OVER slot AS next_id, LEAD(created_at) OVER slot AS next_start"
        " FROM deployment WINDOW slot AS (PARTITION BY environment_id,"
        "  logical_environment_id, deployment_name, kind ORDER BY created_at, id)),"
        # Names are joined to the few problem rows only, not to every record.
        " bad AS (SELECT * FROM ordered WHERE next_id IS NOT NULL"
        "  AND (ended_at IS NULL OR ended_at > next_start OR (status = 'superseded'"
        "   AND (ended_at <> next_start OR superseded_by IS NOT next_id)))"
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
