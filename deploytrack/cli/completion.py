"""Shell completion of environment, logical environment and deployment names.

Runs on every <TAB>, so it stays cheap: the standard sqlite3 module on a read-only URI, no
peewee, no models, no migrations. A completion never creates, migrates or changes a
database: a missing or unreadable one completes nothing.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from deploytrack.locations import database_path

# table -> the column holding the names; deployment names are read from the slots (one
# row per environment, logical environment, name and kind) rather than from every record of history.
_COLUMNS = {
    "environment": "name",
    "logical_environment": "name",
    "deployment_slot": "deployment_name",
}


def _read_only_uri(path: str) -> str:
    # A URI path: '%', '?' and '#' would otherwise end the path or start an escape.
    quoted = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    if os.path.exists(path + "-wal"):
        # Someone has it open (or unsaved changes wait in the WAL): read through the WAL,
        # whose -shm exists already.
        return f"file:{quoted}?mode=ro"
    # A closed database: even a read-only connection would leave an empty -wal and -shm
    # beside it. Nothing writes the main file while no WAL exists (writes go to the WAL
    # first), so reading it as immutable is safe and creates nothing.
    return f"file:{quoted}?mode=ro&immutable=1"


def names(ctx: Any, table: str, incomplete: str) -> list[str]:
    """The names in `table` that start with `incomplete`, sorted."""
    column = _COLUMNS[table]
    root = ctx.find_root() if ctx is not None else None
    explicit = root.params.get("db") if root is not None else None
    path = database_path(explicit)
    if not os.path.isfile(path):
        return []
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True, timeout=0.1)
    except sqlite3.Error:
        return []
    try:
        rows = conn.execute(
            f"SELECT DISTINCT {column} FROM {table} WHERE substr({column}, 1, ?) = ? "
            f"ORDER BY {column}",
            (len(incomplete), incomplete),
        ).fetchall()
    except sqlite3.Error:  # not a deploytrack database, or one being rebuilt
        return []
    finally:
        conn.close()
    return [row[0] for row in rows if isinstance(row[0], str)]
