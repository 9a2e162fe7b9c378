"""`doctor`: is this database whole, current, consistent and private?"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

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


def diagnose(store: Store, secrets_key: Path | None) -> Report:
    """Run every check; `secrets_key` is the secrets key file to check, if any."""
    db = store.db
    checks: list[Check] = []

    def run(name: str, detail: str, check: Callable[[], list[str]]) -> None:
        problems, errors = health.guarded(name, check, list[str]())
        checks.append(_check(name, detail, problems + errors))

    run("integrity", "PRAGMA integrity_check", lambda: health.integrity(db))
    (applied, problems), errors = health.guarded(
        "schema", lambda: health.schema(db), (list[str](), list[str]())
    )
    checks.append(_check("schema", f"{len(applied)} migrations applied", problems + errors))
    run("foreign_keys", "PRAGMA foreign_key_check", lambda: health.foreign_keys(db))
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
    path = Path(store.path)
    permissions = _private(path, 0o600, "database")
    for suffix in ("-wal", "-shm"):
        permissions += _private(path.with_name(path.name + suffix), 0o600, "database file")
    detail = f"{path} and its -wal/-shm are 0600"
    if secrets_key is not None:
        permissions += _private(secrets_key, 0o600, "secrets key")
        detail += f"; secrets key {secrets_key} is 0600"
    checks.append(_check("permissions", detail, permissions))
    return Report(str(path), origin, all(c.ok for c in checks), tuple(checks))


def secrets_key_path() -> Path | None:
    """The secrets key file, if one exists, without importing cryptography."""
    from deploytrack.locations import SECRETS_KEY_ENV, secrets_key_path

    path = Path(secrets_key_path())
    # A key the variable names is reported even before it exists, as the variable says.
    return path if os.environ.get(SECRETS_KEY_ENV) or path.exists() else None
