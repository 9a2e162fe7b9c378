"""Concurrency and crashes on PostgreSQL, with a real server and real processes.

The shapes of tests/test_robustness.py (8 writers × 50 records, a writer killed with
SIGKILL), run against a throwaway PostgreSQL (conftest's `pg_server`), each process with
its own connection, as hosts sharing one server run. What PostgreSQL adds to check: the
server itself must let go of a killed client's transaction and its advisory lock, or
every later write would wait on it. (8 processes migrating a new database at once is
tests/test_postgres.py's.)
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from test_robustness import (
    ENTRY,
    RECORDS_PER_WRITER,
    SHARED,
    WRITERS,
    _labels,
    _plans,
    _run_writers,
    evidence,
)

from deploytrack.store.postgres import WRITE_LOCK, psycopg_module

# How long the server may take to notice a killed client (its socket is closed by the
# kernel when the process dies, so in practice at once).
NOTICE_S = 10


def dt(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ENTRY, "--db", url, *args], capture_output=True, text=True, timeout=120, check=False
    )


def ok(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = dt(url, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def rows(url: str, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    with psycopg_module().connect(url, autocommit=True, row_factory=dict_row) as conn:
        return list(conn.execute(sql, tuple(params)).fetchall())


@pytest.fixture
def migrated(pg_empty: str) -> str:
    ok(pg_empty, "db", "migrate")
    return pg_empty


def assert_invariants(url: str) -> None:
    """What must hold after any sequence of commands on PostgreSQL, crashes included."""
    doubled = rows(
        url,
        "SELECT environment_id, logical_environment_id, deployment_name, kind, count(*) AS n"
        " FROM deployment WHERE status = 'deployed' GROUP BY 1, 2, 3, 4 HAVING count(*) > 1",
    )
    assert doubled == []
    seqs = [r["seq"] for r in rows(url, "SELECT seq FROM log_event ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))  # dense: no gap, no two writers' same seq
    heads = rows(url, "SELECT size, count(*) AS n FROM log_tree_head GROUP BY size")
    assert all(h["n"] == 1 for h in heads)
    assert max(h["size"] for h in heads) == len(seqs)
    verified = dt(url, "log", "verify")
    assert verified.returncode == 0, (verified.stdout, verified.stderr)


def leftovers(url: str) -> dict[str, list[dict[str, Any]]]:
    """Advisory locks held on this database and its backends idle inside a transaction:
    what a killed client must not leave behind."""
    database = "(SELECT oid FROM pg_database WHERE datname = current_database())"
    return {
        "locks": rows(
            url,
            "SELECT pid, classid, objid FROM pg_locks WHERE locktype = 'advisory'"
            f" AND database = {database} AND granted AND pid <> pg_backend_pid()",
        ),
        "idle_in_transaction": rows(
            url,
            "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database()"
            " AND state IN ('idle in transaction', 'idle in transaction (aborted)')"
            " AND pid <> pg_backend_pid()",
        ),
    }


def assert_no_leftovers(url: str) -> None:
    deadline = time.monotonic() + NOTICE_S
    found = leftovers(url)
    while any(found.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
        found = leftovers(url)
    assert found == {"locks": [], "idle_in_transaction": []}


# --- 8 concurrent writers --------------------------------------------------------------------


def test_eight_writers_on_postgresql_lose_nothing(migrated: str, tmp_path: Path) -> None:
    url = migrated
    ok(url, "attestation", "import", str(evidence(tmp_path / "evidence.json", _labels())))
    ok(url, "environment", "create", "--name", "shared")
    events_before = len(rows(url, "SELECT seq FROM log_event"))
    plans, expected_own = _plans(Path(url), tmp_path / "unused", setup=False)
    # _plans writes --db as str(Path(url)), which folds the URL's "//": give it back.
    plans = [[[url if arg == str(Path(url)) else arg for arg in argv] for argv in plan]
             for plan in plans]  # fmt: skip
    results = _run_writers(tmp_path, plans)

    failed = [r for r in results if r["rc"] != 0]
    assert failed == [], failed[:3]
    assert not any(r["stderr"] for r in results)
    # 8 separate connections: the server saw every writer as its own backend.
    assert len(results) == WRITERS * RECORDS_PER_WRITER

    shared = rows(
        url,
        "SELECT d.* FROM deployment d JOIN environment e ON e.id = d.environment_id"
        " JOIN logical_environment l ON l.id = d.logical_environment_id"
        " WHERE e.name = %s AND l.name = %s AND d.deployment_name = %s AND d.kind = %s"
        " ORDER BY d.id",
        SHARED,
    )
    assert len(shared) == WRITERS * RECORDS_PER_WRITER // 2
    assert Counter(r["status"] for r in shared) == {"deployed": 1, "superseded": len(shared) - 1}
    for old, new in itertools.pairwise(shared):
        assert old["superseded_by"] == new["id"]
        assert old["ended_at"] <= new["created_at"]
    for name, (transitions, last_digest) in expected_own.items():
        own = rows(url, "SELECT * FROM deployment WHERE deployment_name = %s ORDER BY id", (name,))
        assert len(own) == transitions, name
        assert [r["status"] for r in own].count("deployed") == 1
        assert own[-1]["digest"] == last_digest and own[-1]["status"] == "deployed"
    total = len(rows(url, "SELECT id FROM deployment"))
    assert total == len(shared) + sum(t for t, _ in expected_own.values())
    # Ids as SQLite's rowids: 1..n, no gap left by a writer that waited.
    assert [r["id"] for r in rows(url, "SELECT id FROM deployment ORDER BY id")] == list(
        range(1, total + 1)
    )
    # One event per transition; heartbeats of an own slot log one too.
    new_events = rows(url, "SELECT type FROM log_event WHERE seq > %s", (events_before,))
    assert len(new_events) == WRITERS * RECORDS_PER_WRITER
    assert_invariants(url)
    assert_no_leftovers(url)


# --- SIGKILL in the middle of writes -----------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import hashlib, json, sys
    from deploytrack.services import deployments, evidence
    from deploytrack.services.catalog import environments
    from deploytrack.store import open_store

    store = open_store(sys.argv[1])
    environments.create(store, "crash", exist_ok=True)
    slot = deployments.Slot("crash", "production", "api", "CONTAINER_IMAGE")
    i = int(sys.argv[2])
    while True:
        digest = hashlib.sha256(f"crash-{i}".encode()).hexdigest()
        doc = {"_type": "https://in-toto.io/Statement/v1", "predicateType": "x",
               "subject": [{"name": f"n{i}", "digest": {"sha256": digest}}]}
        [imported] = evidence.import_sources(
            store, [evidence.Source(f"s{i}", json.dumps(doc).encode())])
        print("imported", imported.attestation.digest, flush=True)
        result = deployments.record(store, slot, "sha256:" + digest)
        print("recorded", result.deployment.id, "sha256:" + digest, flush=True)
        i += 1
    """
)

# A writer that stops inside its write transaction: the write lock taken, a row written,
# nothing committed; it is killed there.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from deploytrack.services.catalog import environments
    from deploytrack.store import open_store

    store = open_store(sys.argv[1])
    with store.write():
        environments.create(store, "never-committed")
        print("holding", flush=True)
        time.sleep(600)
    """
)


def test_sigkill_mid_write_on_postgresql_loses_no_reported_success_and_leaves_no_lock(
    migrated: str, tmp_path: Path
) -> None:
    url = migrated
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    reported: list[list[str]] = []
    for round_ in range(5):
        proc = subprocess.Popen(
            [sys.executable, str(script), url, str(round_ * 10_000)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + 0.6 + 0.2 * round_
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            reported.append(line.split())
        os.kill(proc.pid, signal.SIGKILL)  # mid-loop: very likely mid-transaction
        reported += [line.split() for line in proc.stdout.read().splitlines()]
        proc.wait()
    assert len([r for r in reported if r[0] == "recorded"]) > 10
    assert_no_leftovers(url)
    assert_invariants(url)
    stored_attestations = {r["digest"] for r in rows(url, "SELECT digest FROM attestation")}
    stored_records = {
        (r["id"], r["digest"]) for r in rows(url, "SELECT id, digest FROM deployment")
    }
    for kind, *fields in reported:
        if kind == "imported":
            assert fields[0] in stored_attestations
        else:
            assert (int(fields[0]), fields[1]) in stored_records


def test_a_writer_killed_holding_the_write_lock_leaves_no_lock_and_nothing_written(
    migrated: str, tmp_path: Path
) -> None:
    url = migrated
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    before = rows(url, "SELECT seq, body FROM log_event ORDER BY seq")
    proc = subprocess.Popen([sys.executable, str(script), url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "holding\n"
        # The check sees what a live writer holds: the write lock, its transaction open.
        held = leftovers(url)
        key = WRITE_LOCK.to_bytes(8, "big")
        assert [(int(h["classid"]), int(h["objid"])) for h in held["locks"]] == [
            (int.from_bytes(key[:4], "big"), int.from_bytes(key[4:], "big"))
        ]
        assert len(held["idle_in_transaction"]) == 1
        # ...so another writer waits for it, and gets in once it is gone.
        waiting = subprocess.Popen(
            [ENTRY, "--db", url, "environment", "create", "--name", "after"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)
        assert waiting.poll() is None
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    _, err = waiting.communicate(timeout=NOTICE_S + 30)
    assert waiting.returncode == 0, err
    assert_no_leftovers(url)
    names = [r["name"] for r in rows(url, "SELECT name FROM environment ORDER BY id")]
    assert names == ["after"]
    after = rows(url, "SELECT seq, body FROM log_event ORDER BY seq")
    assert after[: len(before)] == before and len(after) == len(before) + 1
    assert json.loads(bytes(after[-1]["body"]))["type"] == "environment.created"
    assert_invariants(url)
