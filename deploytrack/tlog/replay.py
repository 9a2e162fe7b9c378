"""Replaying events: the state the log says the tables hold, and its contradictions.

Each event's changes give the complete new image of every row it changed (store/
eventlog.py), so replaying needs no knowledge of what the rows mean: a row is what its
newest change says, or absent after a delete. The state keeps, per row, only the event
that last changed it and the SHA-256 of the image's canonical JSON: memory grows with
the number of rows, not with the length of the log, and a row read from a table (or a
bundle) is compared by hashing its image the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from deploytrack.tlog import LogFormatError

ORIGIN_PREFIX = "deploytrack.local/"
_OPS = ("insert", "update", "delete")


def canonical(value: Any) -> bytes:
    import rfc8785

    return rfc8785.dumps(value)


def image_digest(row: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical(row)).digest()


def row_label(table: str, key: dict[str, Any]) -> str:
    """How a message names a row: `deployment 1`, `blob sha256:…`,
    `stage_policy_key (policy_id 2, public_key_id 1)`."""
    if len(key) == 1:
        return f"{table} {next(iter(key.values()))}"
    return f"{table} ({', '.join(f'{k} {v}' for k, v in key.items())})"


def key_id(table: str, key: dict[str, Any]) -> bytes:
    """A row's identity in the replay state: its table, a NUL, its key's canonical JSON
    (one bytes object: a third of the memory of a tuple of two)."""
    return table.encode() + b"\0" + canonical(key)


def _split(ident: bytes) -> tuple[str, dict[str, Any]]:
    table, _, key = ident.partition(b"\0")
    return table.decode(), json.loads(key)


def _entry(seq: int, digest: bytes) -> bytes:
    return seq.to_bytes(8, "big") + digest


def _seq(entry: bytes) -> int:
    return int.from_bytes(entry[:8], "big")


def parse_event(body: bytes, seq: int) -> dict[str, Any]:
    """An event's JSON object, checked for the shape every event has."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise LogFormatError(f"event {seq} is not JSON") from None
    if not isinstance(event, dict):
        raise LogFormatError(f"event {seq} is not a JSON object")
    if event.get("seq") != seq:
        raise LogFormatError(
            f"event {seq} says it is event {event.get('seq')!r}: events were reordered, "
            "inserted or removed"
        )
    if not isinstance(event.get("type"), str) or not isinstance(event.get("time"), str):
        raise LogFormatError(f"event {seq} has no type or no time")
    changes = event.get("changes")
    if not isinstance(changes, list):
        raise LogFormatError(f"event {seq} has no list of changes")
    for change in changes:
        if (
            not isinstance(change, dict)
            or not isinstance(change.get("table"), str)
            or change.get("op") not in _OPS
            or not isinstance(change.get("key"), dict)
            or (change["op"] != "delete" and not isinstance(change.get("row"), dict))
        ):
            raise LogFormatError(f"event {seq} has a malformed change: {change!r:.120}")
    return event


class Replay:
    """The state the events replayed so far describe."""

    def __init__(self) -> None:
        # key_id -> seq of the last change (8 bytes) + sha256 of the image (32): ~200
        # bytes a row with the dict's own, where tuples took twice that.
        self._rows: dict[bytes, bytes] = {}
        self.origin: str | None = None
        self.size = 0

    def apply(self, event: dict[str, Any]) -> None:
        """Apply the next event (already checked by `parse_event`); a contradiction
        raises LogFormatError naming the event."""
        seq = event["seq"]
        if seq != self.size + 1:
            raise LogFormatError(f"event {seq} follows event {self.size}: the log has a gap")
        if seq == 1:
            origin = event.get("origin")
            if event["type"] != "log.started" or not isinstance(origin, str):
                raise LogFormatError("event 1 does not start the log with its origin")
            if not origin.startswith(ORIGIN_PREFIX) or len(origin) == len(ORIGIN_PREFIX):
                raise LogFormatError(f"event 1 names an origin of another kind: {origin!r:.80}")
            self.origin = origin
        elif event["type"] == "log.started":
            raise LogFormatError(f"event {seq} starts the log again")
        for change in event["changes"]:
            table, key, op = change["table"], change["key"], change["op"]
            ident = key_id(table, key)
            present = ident in self._rows
            label = row_label(table, key)
            if op == "insert" and present:
                raise LogFormatError(
                    f"event {seq} inserts {label}, which event {_seq(self._rows[ident])} "
                    "inserted already"
                )
            if op != "insert" and not present:
                raise LogFormatError(f"event {seq} changes {label}, which no event inserted")
            if op == "delete":
                del self._rows[ident]
                continue
            row = change["row"]
            if any(row.get(k) != v for k, v in key.items()):
                raise LogFormatError(f"event {seq}: the image of {label} has another key")
            self._rows[ident] = _entry(seq, image_digest(row))
        self.size = seq

    def take(self, table: str, key: dict[str, Any]) -> tuple[int, bytes] | None:
        """(seq of its last change, sha256 of its image) of a row, removed from the state
        (what is left at the end is what no table holds any more); None if absent."""
        entry = self._rows.pop(key_id(table, key), None)
        return None if entry is None else (_seq(entry), entry[8:])

    def first_left(self) -> tuple[str, dict[str, Any], int] | None:
        """The row left in the state whose last change is oldest: (table, key, seq)."""
        if not self._rows:
            return None
        ident, entry = min(self._rows.items(), key=lambda item: item[1][:8])
        return (*_split(ident), _seq(entry))

    def counts(self) -> dict[str, int]:
        """The number of rows per table in the state, by table name."""
        out: dict[str, int] = {}
        for ident in self._rows:
            table = ident.partition(b"\0")[0].decode()
            out[table] = out.get(table, 0) + 1
        return out


def differences(
    table: str, key: dict[str, Any], in_table: dict[str, Any], in_event: dict[str, Any]
) -> Iterator[tuple[str, Any, Any]]:
    """(column, value in the table, value in the event) for each column that differs."""
    for column in sorted(set(in_table) | set(in_event)):
        if in_table.get(column, _MISSING) != in_event.get(column, _MISSING):
            yield column, in_table.get(column, _MISSING), in_event.get(column, _MISSING)


class _Missing:
    def __repr__(self) -> str:
        return "no such column"


_MISSING = _Missing()


def shown(column: str, value: Any) -> str:
    """A value in a message: times (`*_at`, integer microseconds) as RFC 3339."""
    if value is _MISSING:
        return "absent"
    if column.endswith("_at") and isinstance(value, int) and not isinstance(value, bool):
        from deploytrack import timeutil

        return timeutil.short(value)
    return json.dumps(value, ensure_ascii=False)[:120]


def find_change(event: dict[str, Any], table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """The image of a row in an event (its last change there), or None."""
    found = None
    for change in event["changes"]:
        if change["table"] == table and change["key"] == key:
            found = change.get("row")
    return found
