"""The audit bundle at scale: export, verify and import of a log of N events.

    python bench/audit.py WORK --events 100000 [--events 10000 ...]

For each N, builds a database whose log has N events through the service layer in one
process (`deployment record` on 20 slots, a supersede every fourth record and heartbeats
between, the heartbeats written as `record` writes them but in plain SQL, a few thousand
records per write transaction), then runs `audit export`,
`audit verify` and `audit import` as the CLI, each in its own process, and prints one
JSON line per N: seconds and peak RSS (os.wait4's rusage of that process) for each.
Memory that stays flat from 10,000 events to 100,000 is what streaming buys.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from deploytrack import timeutil
from deploytrack.services import deployments, evidence
from deploytrack.store import open_store

EXE = str(Path(sys.executable).parent / "deploytrack")
SLOTS = 20
VERSIONS = 200
BATCH = 5_000  # records per write transaction


def digest(version: int) -> str:
    return "sha256:" + hashlib.sha256(f"bench-audit@{version}".encode()).hexdigest()


def build(path: Path, events: int) -> float:
    """A database whose log has at least `events` events; the seconds it took."""
    started = time.monotonic()
    store = open_store(path)
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "svc", "digest": {"sha256": digest(v)[7:]}} for v in range(VERSIONS)],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {},
    }
    source = evidence.Source("bench", json.dumps(statement).encode())
    evidence.import_sources(store, [source], evidence.Overrides(project="bench"))
    with store.write() as log:
        store.db.execute_sql(
            "INSERT INTO environment (name, description, type, created_at, updated_at)"
            " VALUES ('bench', '', 'kubernetes', 0, 0)"
        )
        log.log("environment.created")
    slots = [deployments.Slot("bench", "production", f"svc-{i}", "CONTAINER_IMAGE") for i in
             range(SLOTS)]  # fmt: skip
    version = [0] * SLOTS
    active = [0] * SLOTS
    step = 0
    while (size := _size(store)) < events:
        with store.write() as log:
            for _ in range(min(BATCH, events - size)):
                i = step % SLOTS
                if (step // SLOTS) % 4 == 0:
                    version[i] = (version[i] + 1) % VERSIONS
                    result = deployments.record(store, slots[i], digest(version[i]))
                    active[i] = result.deployment.id
                else:
                    # A heartbeat as `record` makes it (last_seen_at moves, the capture
                    # logs the row), without peewee building its queries: 10x faster.
                    store.db.execute_sql(
                        "UPDATE deployment SET last_seen_at = ? WHERE id = ?",
                        (timeutil.now_us(), active[i]),
                    )
                    log.log("deployment.heartbeat")
                step += 1
    store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return time.monotonic() - started


def _size(store: object) -> int:
    from deploytrack.store import eventlog

    with store.read():  # type: ignore[attr-defined]
        return eventlog.size(store.db)  # type: ignore[attr-defined]


def measured(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one process."""
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"{argv} failed: {process.stderr.read().decode()}")  # type: ignore[union-attr]
    return seconds, usage.ru_maxrss / 1024


def run(work: Path, events: int) -> dict[str, object]:
    source, copy = work / f"audit-{events}.db", work / f"audit-{events}-copy.db"
    bundle = work / f"audit-{events}.tar.gz"
    built = build(source, events)
    export = measured([EXE, "--db", str(source), "audit", "export", "--output", str(bundle)])
    verify = measured([EXE, "audit", "verify", str(bundle)])
    load = measured([EXE, "--db", str(copy), "audit", "import", str(bundle)])
    return {
        "events": events,
        "build_s": round(built, 1),
        "bundle_mib": round(bundle.stat().st_size / 2**20, 1),
        "export": export,
        "verify": verify,
        "import": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--events", type=int, action="append")
    args = parser.parse_args()
    for events in args.events or [100_000]:
        print(json.dumps(run(args.work, events)), flush=True)


if __name__ == "__main__":
    main()
