"""`doctor`: is this database whole, current, consistent and private?"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploytrack.services import log
from deploytrack.services.views.doctor import Check, Report
from deploytrack.store import Store, health


def _private(path: Path, mode: int, what: str) -> list[str]:
    if not path.exists():
        return []
    actual = stat.S_IMODE(path.stat().st_mode)
    if actual & ~mode:
        return [f"permissions: {what} {path} is {actual:04o}; run chmod {mode:o} {path}"]
    return []


def _check(name: str, detail: str, problems: list[str]) -> Check:
    return Check(name, not problems, detail, tuple(problems))


# Where an unencrypted connection crosses no network: a Unix socket, or loopback.
_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})


def tls_check(host: str, tls: bool, tls_version: str | None) -> Check:
    """On PostgreSQL: is the connection encrypted? Unencrypted is a problem only when it
    leaves the host (`host`: a name or address, or a socket's folder, starting with /):
    passwords and records would cross the network in clear."""
    if tls:
        return _check("tls", f"the connection to {host or 'the server'} is {tls_version}", [])
    if host.startswith("/") or host in _LOCAL_HOSTS:
        shown = host or "a socket"
        return _check("tls", f"the connection is not encrypted, but local ({shown})", [])
    return _check(
        "tls",
        f"the connection to {host} is encrypted",
        [
            f"tls: the connection to {host} is not encrypted: passwords and records cross "
            "the network in clear; add sslmode=verify-full and sslrootcert=FILE to the URL "
            "(docs/postgresql.md)"
        ],
    )


def _host(store: Store) -> str:
    """The host libpq connected to (a socket's folder starts with /)."""
    connection = store.db.connection()
    return str(getattr(connection.info, "host", "") or "")


def diagnose(store: Store, secrets_key: Path | None) -> Report:
    """Run every check; `secrets_key` is the secrets key file to check, if any."""
    db = store.db
    checks: list[Check] = []
    info: dict[str, Any] = {"version": sqlite3.sqlite_version, "tls": None, "tls_version": None}
    if store.postgresql:
        from deploytrack.store import postgres

        # Cannot fail on a connection that just opened; if it does, the driver's error is
        # the store's to translate, like any other.
        info = postgres.describe(db)

    def run(name: str, detail: str, check: Callable[[], list[str]]) -> None:
        problems, errors = health.guarded(name, check, list[str]())
        checks.append(_check(name, detail, problems + errors))

    run(
        "integrity",
        (
            "every constraint and index is valid, every trigger of the schema present and enabled"
            if store.postgresql
            else "PRAGMA integrity_check"
        ),
        lambda: health.integrity(db),
    )
    (applied, problems), errors = health.guarded(
        "schema", lambda: health.schema(db), (list[str](), list[str]())
    )
    checks.append(_check("schema", f"{len(applied)} migrations applied", problems + errors))
    run(
        "foreign_keys",
        "every foreign key points at a row" if store.postgresql else "PRAGMA foreign_key_check",
        lambda: health.foreign_keys(db),
    )
    run(
        "one_active_per_slot",
        "at most one deployed record per slot",
        lambda: health.one_active_per_slot(db),
    )
    run(
        "superseded_successors",
        "every superseded record has a later successor",
        lambda: health.superseded_have_successors(db),
    )
    run(
        "timeline",
        "the records of each slot follow one another in time, without overlap",
        lambda: health.timeline(db),
    )
    run(
        "digests_in_evidence",
        "every recorded digest is named by an attestation",
        lambda: health.digests_have_evidence(db),
    )
    (count, problems), errors = health.guarded(
        "blobs", lambda: health.blobs_match_digests(db), (0, list[str]())
    )
    checks.append(_check("blobs", f"{count} stored blobs hash to their digests", problems + errors))
    # The log's checks (log verify's, without checkpoints): the tree, then the state.
    found, errors = health.guarded("log", lambda: log.verify(store), None)
    if found is None:
        checks.append(_check("log_tree", "the event log", errors))
    else:
        origin = found.origin
        for check in found.checks:
            problems = [check.problem] if check.problem else []
            checks.append(_check(f"log_{check.name}", check.detail, problems))
    permissions: list[str] = []
    if store.postgresql:
        checks.append(tls_check(_host(store), bool(info["tls"]), info["tls_version"]))
        # The database is the server's: its files are the DBA's, not ours to check.
        detail = "the database is on a server: no database file"
    else:
        path = Path(store.path)
        permissions = _private(path, 0o600, "database")
        for suffix in ("-wal", "-shm"):
            permissions += _private(path.with_name(path.name + suffix), 0o600, "database file")
        detail = f"{path} and its -wal/-shm are 0600"
    if secrets_key is not None:
        permissions += _private(secrets_key, 0o600, "secrets key")
        detail += f"; secrets key {secrets_key} is 0600"
    checks.append(_check("permissions", detail, permissions))
    return Report(
        database=store.path if store.postgresql else str(Path(store.path)),
        backend=store.backend,
        backend_version=str(info["version"]),
        tls=info["tls"],
        origin=origin,
        healthy=all(c.ok for c in checks),
        checks=tuple(checks),
    )


def secrets_key_path() -> Path | None:
    """The secrets key file, if one exists, without importing cryptography."""
    from deploytrack.locations import SECRETS_KEY_ENV, secrets_key_path

    path = Path(secrets_key_path())
    # A key the variable names is reported even before it exists, as the variable says.
    return path if os.environ.get(SECRETS_KEY_ENV) or path.exists() else None
