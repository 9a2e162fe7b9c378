"""Concurrency, crash safety, hostile input and broken database files.

These run real processes of the installed entry point (and, for the crash test, a
writer process using the services directly) against real SQLite files.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from conftest import ATTESTATIONS, snapshot
from helpers import intoto_statement, sha256_digest

ENTRY = str(Path(sys.executable).parent / "deploytrack")
WRITERS = 8
RECORDS_PER_WRITER = 50
SHARED = ("shared", "production", "api", "CONTAINER_IMAGE")


def digest_of(label: str) -> str:
    return sha256_digest(label.encode())


def evidence(path: Path, labels: list[str]) -> Path:
    """One in-toto statement naming the digest of every label."""
    subjects = ((label, digest_of(label)) for label in labels)
    statement = intoto_statement(subjects, "https://slsa.dev/provenance/v1")
    path.write_text(json.dumps(statement))
    return path


def dt(db: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ENTRY, "--db", str(db), *args], capture_output=True, text=True, timeout=120, **kwargs
    )


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql, params))


def assert_invariants(db: Path) -> None:
    """What must hold after any sequence of commands, crashes included."""
    assert rows(db, "PRAGMA integrity_check")[0][0] == "ok"
    assert rows(db, "PRAGMA foreign_key_check") == []
    doubled = rows(
        db,
        "SELECT environment_id, logical_environment_id, deployment_name, kind, COUNT(*) AS n"
        " FROM deployment WHERE status = 'deployed' GROUP BY 1, 2, 3, 4 HAVING n > 1",
    )
    assert doubled == []
    orphans = rows(
        db,
        "SELECT old.id FROM deployment AS old LEFT JOIN deployment AS new"
        " ON new.id = old.superseded_by"
        " AND new.environment_id = old.environment_id"
        " AND new.logical_environment_id = old.logical_environment_id"
        " AND new.deployment_name = old.deployment_name AND new.kind = old.kind"
        " AND new.created_at >= old.ended_at"
        " WHERE old.status = 'superseded' AND new.id IS NULL",
    )
    assert orphans == []
    unevidenced = rows(
        db,
        "SELECT id FROM deployment AS d WHERE NOT EXISTS"
        " (SELECT 1 FROM attestation_subject AS s WHERE s.digest = d.digest)"
        " AND NOT EXISTS (SELECT 1 FROM attestation_material AS m WHERE m.digest = d.digest)",
    )
    assert unevidenced == []
    for blob in rows(db, "SELECT digest, content FROM blob"):
        assert "sha256:" + hashlib.sha256(blob["content"]).hexdigest() == blob["digest"]
    # The event log: every committed change is in it, and nothing else.
    verified = dt(db, "log", "verify")
    assert verified.returncode == 0, (verified.stdout, verified.stderr)


# --- 8 concurrent writers --------------------------------------------------------------------

DRIVER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    plan, go, out = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
    while not os.path.exists(go):
        time.sleep(0.001)
    results = []
    for argv in plan:
        start = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True)
        results.append({"argv": argv, "rc": done.returncode, "stderr": done.stderr,
                        "seconds": time.monotonic() - start})
    json.dump(results, open(out, "w"))
    """
)


def _plans(db: Path, evidence_file: Path, setup: bool) -> tuple[list[list[list[str]]], dict]:
    """Each writer: 50 records, every other one into the shared slot with a digest of its
    own (each a transition), the rest into its own slot, where repeats are heartbeats."""
    plans: list[list[list[str]]] = []
    expected_own: dict[str, tuple[int, str]] = {}
    base = [ENTRY, "--db", str(db)]
    for writer in range(WRITERS):
        plan: list[list[str]] = []
        if setup:  # a brand-new database: every writer sets up, idempotently
            plan.append([*base, "attestation", "import", str(evidence_file)])
            plan.append([*base, "environment", "create", "--name", "shared", "--if-not-exists"])
        own = [f"own-{writer}-{i // 3}" for i in range(RECORDS_PER_WRITER // 2)]
        for i in range(RECORDS_PER_WRITER):
            if i % 2 == 0:
                env, stage, name, kind = SHARED
                label = f"shared-{writer}-{i}"
            else:
                env, stage, name, kind = "shared", "staging", f"svc-{writer}", "CONTAINER_IMAGE"
                label = own[i // 2]
            plan.append(
                [*base, "deployment", "record", "--env", env, "--logical-env", stage,
                 "--deployment-name", name, "--kind", kind, "--digest", digest_of(label)]
            )  # fmt: skip
        transitions = sum(1 for k, label in enumerate(own) if k == 0 or own[k - 1] != label)
        expected_own[f"svc-{writer}"] = (transitions, digest_of(own[-1]))
        plans.append(plan)
    return plans, expected_own


def _labels() -> list[str]:
    labels = [f"shared-{w}-{i}" for w in range(WRITERS) for i in range(0, RECORDS_PER_WRITER, 2)]
    labels += [f"own-{w}-{k}" for w in range(WRITERS) for k in range(RECORDS_PER_WRITER // 2)]
    return labels


def _run_writers(tmp_path: Path, plans: list[list[list[str]]]) -> list[dict[str, Any]]:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    go = tmp_path / "go"
    procs = []
    for writer, plan in enumerate(plans):
        plan_file = tmp_path / f"plan-{writer}.json"
        plan_file.write_text(json.dumps(plan))
        out = tmp_path / f"out-{writer}.json"
        procs.append(
            (
                subprocess.Popen([sys.executable, str(driver), str(plan_file), str(go), str(out)]),
                out,
            )
        )
    time.sleep(0.3)  # every driver is waiting: start them at the same moment
    go.touch()
    results = []
    for proc, out in procs:
        assert proc.wait(timeout=600) == 0
        results += json.loads(out.read_text())
    return results


@pytest.mark.parametrize("brand_new", [False, True], ids=["existing-db", "brand-new-db"])
def test_eight_writers_lose_nothing(tmp_path: Path, brand_new: bool) -> None:
    db = tmp_path / "ci.db"
    evidence_file = evidence(tmp_path / "evidence.json", _labels())
    if not brand_new:
        assert dt(db, "attestation", "import", str(evidence_file)).returncode == 0
        assert dt(db, "environment", "create", "--name", "shared").returncode == 0
    plans, expected_own = _plans(db, evidence_file, setup=brand_new)
    results = _run_writers(tmp_path, plans)

    failed = [r for r in results if r["rc"] != 0]
    assert failed == [], failed[:3]
    assert not any("locked" in r["stderr"] for r in results)
    if brand_new:
        applied = rows(db, "SELECT name, COUNT(*) FROM deploytrack_migration GROUP BY name")
        assert all(count == 1 for _, count in applied)
        assert [r[0] for r in rows(db, "SELECT name FROM environment")] == ["shared"]
        assert len(rows(db, "SELECT id FROM attestation")) == 1

    shared = rows(
        db,
        "SELECT d.* FROM deployment d JOIN environment e ON e.id = d.environment_id"
        " JOIN logical_environment l ON l.id = d.logical_environment_id"
        " WHERE e.name = ? AND l.name = ? AND d.deployment_name = ? AND d.kind = ?"
        " ORDER BY d.id",
        SHARED,
    )
    # Every shared record had a digest of its own: every one is a transition.
    assert len(shared) == WRITERS * RECORDS_PER_WRITER // 2
    statuses = Counter(r["status"] for r in shared)
    assert statuses == {"deployed": 1, "superseded": len(shared) - 1}
    # The chain: each superseded record points at the next record of the slot.
    for old, new in itertools.pairwise(shared):
        assert old["superseded_by"] == new["id"]
        assert old["ended_at"] <= new["created_at"]

    for name, (transitions, last_digest) in expected_own.items():
        own = rows(db, "SELECT * FROM deployment WHERE deployment_name = ? ORDER BY id", (name,))
        assert len(own) == transitions, name
        assert [r["status"] for r in own].count("deployed") == 1
        assert own[-1]["digest"] == last_digest and own[-1]["status"] == "deployed"
    total = len(rows(db, "SELECT id FROM deployment"))
    assert total == len(shared) + sum(t for t, _ in expected_own.values())
    assert_invariants(db)


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962's Merkle tree hash, written out here to check the stored tree heads."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(leaves[:split]) + _mth(leaves[split:])).digest()


def test_concurrent_writers_append_one_dense_event_each(tmp_path: Path) -> None:
    """4 processes x 25 records at once: 100 events, sequence numbers dense, one tree head
    per write, each the root of the events before it."""
    db = tmp_path / "log.db"
    labels = [f"log-{w}-{i}" for w in range(4) for i in range(25)]
    assert (
        dt(db, "attestation", "import", str(evidence(tmp_path / "e.json", labels))).returncode == 0
    )
    assert dt(db, "environment", "create", "--name", "shared").returncode == 0
    before = rows(db, "SELECT max(seq) AS n FROM log_event")[0]["n"]
    base = [ENTRY, "--db", str(db), "deployment", "record", "--env", "shared", "--kind",
            "CONTAINER_IMAGE", "--logical-env", "production"]  # fmt: skip
    plans = [
        [[*base, "--deployment-name", "shared" if i % 2 else f"svc-{w}", "--digest",
          digest_of(f"log-{w}-{i}")] for i in range(25)]
        for w in range(4)
    ]  # fmt: skip
    results = _run_writers(tmp_path, plans)
    assert [r for r in results if r["rc"] != 0] == []

    events = rows(db, "SELECT seq, type, body FROM log_event ORDER BY seq")
    assert [e["seq"] for e in events] == list(range(1, before + 101))
    new = events[before:]
    assert Counter(e["type"] for e in new) == {
        "deployment.recorded": 4 + 1,  # each svc-w slot, and the shared slot's first
        "deployment.superseded": 100 - 5,
    }
    assert [json.loads(e["body"])["seq"] for e in new] == list(range(before + 1, before + 101))
    heads = {h["size"]: h["root"] for h in rows(db, "SELECT size, root FROM log_tree_head")}
    assert set(range(before + 1, before + 101)) <= set(heads)
    bodies = [bytes(e["body"]) for e in events]
    for size, root in heads.items():
        assert _mth(bodies[:size]) == root, size
    assert_invariants(db)


# --- SIGKILL in the middle of writes -----------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path
    from deploytrack.services import deployments, evidence
    from deploytrack.services.catalog import environments
    from deploytrack.store import open_store

    store = open_store(Path(sys.argv[1]))
    environments.create(store, "crash", exist_ok=True)
    slot = deployments.Slot("crash", "production", "api", "CONTAINER_IMAGE")
    i = 0
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


def test_sigkill_mid_write_loses_no_reported_success(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    reported: list[list[str]] = []
    for round_ in range(5):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + 0.4 + 0.2 * round_
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            reported.append(line.split())
        os.kill(proc.pid, signal.SIGKILL)  # mid-loop: very likely mid-transaction
        reported += [line.split() for line in proc.stdout.read().splitlines()]
        proc.wait()
    assert len([r for r in reported if r[0] == "recorded"]) > 20
    assert_invariants(db)
    stored_attestations = {r["digest"] for r in rows(db, "SELECT digest FROM attestation")}
    stored_records = {(r["id"], r["digest"]) for r in rows(db, "SELECT id, digest FROM deployment")}
    for kind, *fields in reported:
        if kind == "imported":
            assert fields[0] in stored_attestations
        else:
            assert (int(fields[0]), fields[1]) in stored_records
    # The survivor still works: one more record through the CLI succeeds.
    assert dt(db, "deployment", "list", "--history", "-o", "json").returncode == 0


def test_cli_killed_at_random_moments_leaves_a_consistent_database(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    labels = [f"k{i}" for i in range(40)]
    evidence_file = evidence(tmp_path / "e.json", labels)
    assert dt(db, "attestation", "import", str(evidence_file)).returncode == 0
    assert dt(db, "environment", "create", "--name", "k").returncode == 0
    succeeded: list[str] = []
    for i, label in enumerate(labels):
        proc = subprocess.Popen(
            [ENTRY, "--db", str(db), "deployment", "record", "--env", "k", "--logical-env",
             "staging", "--deployment-name", "svc", "--kind", "CONTAINER_IMAGE", "--digest",
             digest_of(label)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            rc = proc.wait(timeout=(i % 10) * 0.02)  # kill at 0 to 180 ms: before, in, after
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        if rc == 0:
            succeeded.append(digest_of(label))
    assert_invariants(db)
    stored = {r["digest"] for r in rows(db, "SELECT digest FROM deployment")}
    assert set(succeeded) <= stored


# --- hostile attestation files -----------------------------------------------------------------

TIME_LIMIT_S = 10
MEMORY_LIMIT_MB = 400


def _bundle_with_payload(size: int) -> bytes:
    payload = b"{" + b" " * (size - 2) + b"}"
    import base64

    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {},
            "dsseEnvelope": {
                "payloadType": "application/vnd.in-toto+json",
                "payload": base64.b64encode(payload).decode(),
                "signatures": [],
            },
        }
    ).encode()


def _hostile(name: str) -> bytes:
    real = (ATTESTATIONS / "chainloop-slsa_provenance.sigstore.json").read_bytes()
    if name == "empty":
        return b""
    if name == "truncated":
        return real[: len(real) // 2]
    if name == "50MB":
        return b'{"_type": "https://in-toto.io/Statement/v1", "x": "' + b"a" * 50_000_000 + b'"}'
    if name == "nested-10000":
        return b"[" * 10_000 + b"]" * 10_000
    if name == "invalid-utf8":
        broken = real.replace(b"application/vnd.in-toto+json", b"application/vnd.in-\xff\xfe", 1)
        assert broken != real
        return broken
    if name == "payload-20MB":
        return _bundle_with_payload(15_000_000)  # 20 MB of base64
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name", ["empty", "truncated", "50MB", "nested-10000", "invalid-utf8", "payload-20MB"]
)
def test_hostile_attestation_files_are_refused_in_bounded_time_and_memory(
    tmp_path: Path, name: str
) -> None:
    db = tmp_path / "h.db"
    assert dt(db, "environment", "list").returncode == 0
    before = snapshot(db)
    path = tmp_path / f"{name}.json"
    path.write_bytes(_hostile(name))
    if name == "payload-20MB":
        assert len(path.read_bytes()) > 20_000_000
    start = time.monotonic()
    proc = subprocess.Popen(
        [ENTRY, "--db", str(db), "attestation", "import", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = proc.communicate(timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, (stdout, stderr)
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(path) in lines[0]
    assert "Traceback" not in stderr.decode()
    assert elapsed < TIME_LIMIT_S
    assert snapshot(db) == before
    peak_mb = _peak_memory_mb([ENTRY, "--db", str(db), "attestation", "import", str(path)])
    assert peak_mb < MEMORY_LIMIT_MB, peak_mb


# Runs the command from a small process and prints its peak RSS (kilobytes): Linux starts
# a forked child's high-water mark at its parent's size, and pytest grows to hundreds of
# megabytes over the suite; a child of this launcher starts from ~10 MB.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.execv(sys.argv[1], sys.argv[1:])
_, _, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
"""


def _peak_memory_mb(argv: list[str]) -> float:
    """The command's peak resident memory, measured from a small launcher (above), so that
    what the test process itself holds does not count."""
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip()) / 1024  # kilobytes on Linux


# --- broken database files ---------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_error_line(result: subprocess.CompletedProcess[str], contains: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert contains in lines[0], lines[0]


def _populated(tmp_path: Path) -> Path:
    db = tmp_path / "full.db"
    assert (
        dt(db, "attestation", "import", str(ATTESTATIONS / "chainloop-full.json")).returncode == 0
    )
    assert dt(db, "environment", "create", "--name", "e1").returncode == 0
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


@pytest.mark.parametrize(
    "command", [["environment", "list"], ["environment", "create", "--name", "x"]]
)
def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "notes.db"
    db.write_bytes(b"These are my notes, not a database.\n" * 200)
    before = _sha(db)
    _one_error_line(dt(db, *command), "not a deploytrack database")
    assert _sha(db) == before
    assert not (tmp_path / "notes.db-wal").exists()


@pytest.mark.parametrize(
    "command", [["deployment", "list"], ["environment", "create", "--name", "x"]]
)
def test_a_truncated_database_is_refused_untouched(tmp_path: Path, command: list[str]) -> None:
    db = _populated(tmp_path)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    before = _sha(db)
    _one_error_line(dt(db, *command), str(db))
    assert _sha(db) == before


def test_a_database_of_a_newer_deploytrack_is_refused_untouched(tmp_path: Path) -> None:
    db = _populated(tmp_path)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("INSERT INTO deploytrack_migration VALUES ('m999_from_the_future', 0)")
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = _sha(db)
    _one_error_line(dt(db, "environment", "list"), "newer deploytrack")
    _one_error_line(dt(db, "environment", "create", "--name", "x"), "newer deploytrack")
    assert _sha(db) == before


@pytest.fixture
def read_only_copy(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A populated database on a read-only path: a read-only mount when we are root (root
    ignores permission bits), else a folder and file without write permission."""
    source = _populated(tmp_path)
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)])
        assert mounted.returncode == 0, "root without mount(8): cannot make a read-only path"
        shutil.copy(source, folder / "audit.db")
        assert subprocess.run(["mount", "-o", "remount,ro", str(folder)]).returncode == 0
        yield folder / "audit.db"
        subprocess.run(["umount", str(folder)], check=True)
    else:
        shutil.copy(source, folder / "audit.db")
        (folder / "audit.db").chmod(0o400)
        folder.chmod(0o500)
        yield folder / "audit.db"
        folder.chmod(0o700)


def test_a_database_on_a_read_only_path(read_only_copy: Path) -> None:
    db = read_only_copy
    before = _sha(db)
    # An auditor can read it...
    listed = dt(db, "environment", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [e["name"] for e in json.loads(listed.stdout)] == ["e1"]
    assert dt(db, "attestation", "list").returncode == 0
    # ...and any write is one clear refusal.
    _one_error_line(dt(db, "environment", "create", "--name", "x"), "read-only")
    assert _sha(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["audit.db"]
