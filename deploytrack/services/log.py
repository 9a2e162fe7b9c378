"""The event log's commands: list the events, verify the log against itself and the tables.

What an event is and how it is appended: store/eventlog.py. The checks: store/logcheck.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any, get_args

from deploytrack import timeutil
from deploytrack.services.views.log import EventView, LogCheck, LogReport
from deploytrack.store import Store, logcheck
from deploytrack.store.eventlog import EventType

# Every type an event can have, for `log list --type` (docs/log.md says what each means).
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


def _changed(event: dict[str, Any]) -> str:
    """`deployment 7 inserted, deployment 5 updated`, `origin deploytrack.local/…`."""
    if event.get("seq") == 1 and "origin" in event:
        return f"origin {event['origin']}"
    parts = []
    for change in event.get("changes", []):
        key = change.get("key", {})
        name = " ".join(str(v) for v in key.values())
        parts.append(f"{change.get('table')} {name} {_DONE.get(change.get('op'), '?')}")
    return ", ".join(parts)


_DONE = {"insert": "inserted", "update": "updated", "delete": "deleted"}


def list_events(
    store: Store,
    *,
    since: int | None = None,
    until: int | None = None,
    types: tuple[str, ...] = (),
    limit: int | None = None,
) -> list[EventView]:
    """The events in order, filtered by time (inclusive) and type."""
    conditions: list[str] = []
    params: list[object] = []
    if since is not None:
        conditions.append("time >= ?")
        params.append(since)
    if until is not None:
        conditions.append("time <= ?")
        params.append(until)
    if types:
        conditions.append(f"type IN ({', '.join('?' * len(types))})")
        params.extend(types)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT seq, time, type, body, leaf_hash FROM log_event {where} ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with store.read():
        rows = store.db.execute_sql(sql, params).fetchall()
    out = []
    for seq, time, type_, body, leaf in rows:
        event = json.loads(bytes(body))
        out.append(
            EventView(
                seq=int(seq),
                time=timeutil.rfc3339(int(time)) or "",
                type=str(type_),
                changed=_changed(event),
                leaf_hash=bytes(leaf).hex(),
                event=event,
            )
        )
    return out


def verify(store: Store) -> LogReport:
    """Check the tree (every event hashes to its leaf, nodes and tree heads match) and the
    state (replaying the events reproduces every row of the tables)."""
    checks: list[LogCheck] = []
    with store.read():
        if not logcheck.has_log(store.db):
            problem = (
                "the database has no event log yet: any deploytrack command but doctor "
                "sets it up (the schema is brought up to date when the database is opened)"
            )
            check = LogCheck("tree", False, "the event log", problem)
            return LogReport(None, 0, "", False, (check,))
        tree = logcheck.check_tree(store.db)
        checks.append(
            LogCheck(
                "tree",
                tree.problem is None,
                f"{tree.size} events hash to their leaves, nodes and tree heads",
                tree.problem,
            )
        )
        if tree.problem is None:
            state_problem = logcheck.check_state(store.db)
            checks.append(
                LogCheck(
                    "state",
                    state_problem is None,
                    "replaying the events reproduces every row of the tables",
                    state_problem,
                )
            )
    return LogReport(
        origin=tree.origin,
        size=tree.size,
        root=base64.b64encode(tree.root).decode(),
        ok=all(c.ok for c in checks),
        checks=tuple(checks),
    )


__all__ = ["EVENT_TYPES", "list_events", "verify"]
