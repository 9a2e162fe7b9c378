"""The store's error, its lock patience, and the translation of driver errors into it.

A module of its own so that `connection` and `migrations` both use it without importing
each other: migrations is a leaf of the store.
"""

from __future__ import annotations

import sqlite3

import peewee

from deploytrack.errors import DeploytrackError

# Concurrent CI jobs on one host queue on the write lock; each write holds it for
# milliseconds, so 30 s of patience means "something is wrong", not "busy".
BUSY_TIMEOUT_S = 30


class StoreError(DeploytrackError):
    """The database could not be opened, read or written."""


def translate(exc: peewee.PeeweeException | sqlite3.Error, path: str) -> StoreError:
    """Turn a driver error into one line that says what to do."""
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return StoreError(
            f"database {path} is busy: another process holds its lock (deploytrack waits up "
            f"to {BUSY_TIMEOUT_S} s for a writer); retry when it has finished"
        )
    if "file is not a database" in low:
        return StoreError(f"{path} is not a deploytrack database (not an SQLite file)")
    if "malformed" in low or "corrupt" in low:
        return StoreError(f"database {path} is damaged ({text}); restore it from a backup")
    if "readonly" in low or "read-only" in low:
        return StoreError(
            f"database {path} is read-only: deploytrack needs write access to the file and "
            "its folder"
        )
    if "unable to open" in low or "disk i/o" in low:
        return StoreError(f"cannot open database {path}: check that it exists and is readable")
    if isinstance(exc, (peewee.IntegrityError, sqlite3.IntegrityError)):
        # One line: SQLite quotes a CHECK as written, across lines.
        return StoreError(f"the database refused the change: {' '.join(text.split())}")
    return StoreError(f"database error on {path}: {text}")
