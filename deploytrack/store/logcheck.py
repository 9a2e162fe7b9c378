"""Checking the event log against itself and against the tables (`log verify`, `doctor`).

Two checks, each answering with the first problem it finds, in words that name it
precisely:

- the tree: every stored event hashes to its leaf, the interior nodes and every tree
  head are what the leaves give, and the origin is the one the first event names;
- the state: replaying the events reproduces every row of every state table, so an edit
  that bypassed deploytrack (a changed column, a row inserted or deleted, a trigger
  dropped and restored around it) is found.

Both stream the log: memory grows with the number of rows, not with the log's length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import peewee

from deploytrack.store import eventlog
from deploytrack.tlog import LogFormatError, merkle, replay


class TreeCheck(NamedTuple):
    size: int
    root: bytes
    origin: str | None
    problem: str | None


class _Nodes:
    """The stored interior nodes, read level by level in index order beside the leaves:
    one cursor per level, so checking them is one pass."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.cursors: dict[int, Any] = {}
        self.count = 0

    def next(self, level: int) -> tuple[int, bytes] | None:
        cursor = self.cursors.get(level)
        if cursor is None:
            cursor = self.cursors[level] = eventlog.stream(
                self.db, "SELECT idx, hash FROM log_node WHERE level = ? ORDER BY idx", (level,)
            )
        row = next(cursor, None)
        if row is None:
            return None
        self.count += 1
        return int(row[0]), bytes(row[1])


def has_log(db: peewee.Database) -> bool:
    """False on a database opened as found (doctor) before m006 set the log up."""
    if not isinstance(db, peewee.SqliteDatabase):
        return db.execute_sql("SELECT to_regclass('log_event')").fetchone()[0] is not None
    row = db.execute_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_event'"
    ).fetchone()
    return row is not None


def units(db: peewee.Database) -> int:
    """The progress `check_tree` then `check_state` report in all: each event in the tree,
    each event replayed, each row of the tables compared with the replay (as long as the
    replay itself on a big log)."""
    rows = sum(_count(db, name) for name in eventlog.state_tables(db))
    return 2 * eventlog.size(db) + rows


def check_tree(db: peewee.Database, progress: Callable[[int], None] | None = None) -> TreeCheck:
    """The tree against its events; `progress(1)` after each event checked."""
    heads = db.execute_sql("SELECT size, root FROM log_tree_head ORDER BY size").fetchall()
    head_at = {int(size): bytes(root) for size, root in heads}
    stored_origin = db.execute_sql("SELECT origin FROM log_origin").fetchone()
    nodes = _Nodes(db)
    frontier: list[tuple[int, bytes]] = []  # (level, hash), left to right
    size = 0
    origin: str | None = None

    def result(problem: str | None) -> TreeCheck:
        root = merkle.root_from_frontier([h for _, h in frontier])
        return TreeCheck(size, root, origin, problem)

    for seq, _time, _type, body, leaf in eventlog.events(db):
        if seq != size + 1:
            return result(f"event {size + 1} is missing: the log goes on at event {seq}")
        if merkle.leaf_hash(body) != leaf:
            return result(f"event {seq} does not hash to its leaf: the event was changed")
        if seq == 1:
            try:
                origin = replay.parse_event(body, 1).get("origin")
            except LogFormatError as exc:
                return result(str(exc))
        size = seq
        index, level, current = seq - 1, 0, leaf
        while frontier and frontier[-1][0] == level:
            _, left = frontier.pop()
            current = merkle.node_hash(left, current)
            level, index = level + 1, index >> 1
            stored = nodes.next(level)
            if stored != (index, current):
                return result(
                    f"the log's tree node at level {level}, index {index} is not what events "
                    f"{(index << level) + 1}-{(index + 1) << level} hash to"
                )
        frontier.append((level, current))
        if progress is not None:
            progress(1)
        expected = head_at.pop(size, None)
        if expected is not None and expected != result(None).root:
            return result(f"the tree head of size {size} does not match the events")
    if head_at:
        extra = min(head_at)
        return result(f"there is a tree head of size {extra}, but the log has {size} events")
    if nodes.count != _count(db, "log_node"):
        return result("the log's tree has nodes no event accounts for")
    if stored_origin is None or size == 0:
        return result("the log has no origin: the database was set up without its log")
    if stored_origin[0] != origin:
        return result(f"the log's origin is {stored_origin[0]}, but event 1 names {origin}")
    return result(None)


def _count(db: peewee.Database, table: str) -> int:
    return int(db.execute_sql(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def check_state(db: peewee.Database, progress: Callable[[int], None] | None = None) -> str | None:
    """Replay the log and compare with the tables; the first difference, or None.
    `progress(1)` after each event replayed and each row compared."""
    state = replay.Replay()
    try:
        for seq, _time, _type, body, _leaf in eventlog.events(db):
            state.apply(replay.parse_event(body, seq))
            if progress is not None:
                progress(1)
    except LogFormatError as exc:
        return str(exc)
    for table in eventlog.state_tables(db).values():
        order = ", ".join(f'"{k}"' for k in table.key)
        for values in eventlog.stream(db, f'SELECT * FROM "{table.name}" ORDER BY {order}'):
            if progress is not None:
                progress(1)
            image = table.image(values)
            key = table.key_of(image)
            label = replay.row_label(table.name, key)
            found = state.take(table.name, key)
            if found is None:
                return f"{label} is in the table, but no event inserted it"
            seq, digest = found
            if replay.image_digest(image) != digest:
                return _difference(db, table.name, key, image, seq, label)
    left = state.first_left()
    if left is not None:
        name, key, seq = left
        label = replay.row_label(name, key)
        return f"{label} is missing from the table: event {seq} wrote it last, none deleted it"
    return None


def _difference(
    db: peewee.Database,
    table: str,
    key: dict[str, object],
    image: dict[str, object],
    seq: int,
    label: str,
) -> str:
    row = db.execute_sql("SELECT body FROM log_event WHERE seq = ?", (seq,)).fetchone()
    logged = replay.find_change(replay.parse_event(bytes(row[0]), seq), table, key) or {}
    for column, ours, theirs in replay.differences(table, key, image, logged):
        return (
            f"{label}: {column} is {replay.shown(column, ours)} in the table but "
            f"{replay.shown(column, theirs)} in event {seq}"
        )
    return f"{label} differs from event {seq}"
