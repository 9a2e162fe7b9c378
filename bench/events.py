"""Build a database whose event log holds N events, most of them heartbeats.

    python bench/events.py DB --events 1000000

A few records are made through the services (evidence, an environment, RECORDS slots of
e0/production), so the log starts as a user's does; then heartbeats of those records are
appended with `store/eventlog.append` in large transactions (one tree head each), each
event the complete new image of the record whose `last_seen_at` it moves, and the rows
are left as the last event says: `log verify` accepts the result. This is what a CI job
heartbeating a few services for a couple of years leaves behind, built in a minute or two
instead of a million processes.

Prints one JSON line: events, seconds, bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from deploytrack.services import deployments, evidence
from deploytrack.services.catalog import environments
from deploytrack.store import eventlog, open_store

RECORDS = 5
SPARE = 50  # digests the evidence names beyond the records', for `record (new)`
TRANSACTION_EVENTS = 50_000


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def build(path: Path, events: int) -> dict[str, float]:
    started = time.monotonic()
    store = open_store(path)
    labels = [f"svc-{i}" for i in range(RECORDS)] + [f"spare-{i}" for i in range(SPARE)]
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": x, "digest": {"sha256": digest(x)[7:]}} for x in labels],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {},
    }
    evidence.import_sources(store, [evidence.Source("bench", json.dumps(statement).encode())])
    environments.create(store, "e0", type="kubernetes")
    ids = []
    for i in range(RECORDS):
        slot = deployments.Slot("e0", "production", f"svc-{i}", "CONTAINER_IMAGE")
        ids.append(deployments.record(store, slot, digest(f"svc-{i}")).deployment.id)
    store.close()

    # A new connection: no capture triggers (they are made by store.write()), so the
    # heartbeats below are logged exactly as written here, once.
    store = open_store(path)
    db = store.db
    table = eventlog.state_tables(db)["deployment"]
    seen = table.columns.index("last_seen_at")
    rows = {
        record_id: list(
            db.execute_sql("SELECT * FROM deployment WHERE id = ?", (record_id,)).fetchone()
        )
        for record_id in ids
    }
    written = eventlog.size(db)
    base = max(row[seen] for row in rows.values())
    while written < events:
        with db.atomic("IMMEDIATE"):
            for _ in range(min(TRANSACTION_EVENTS, events - written)):
                written += 1
                record_id = ids[written % RECORDS]
                row = rows[record_id]
                row[seen] = base + written  # one microsecond apart, in the past by the end
                change = {
                    "table": "deployment",
                    "op": "update",
                    "key": {"id": record_id},
                    "row": table.image(row),
                }
                eventlog.append(db, "deployment.heartbeat", [change], time=row[seen])
            for record_id, row in rows.items():
                db.execute_sql(
                    "UPDATE deployment SET last_seen_at = ? WHERE id = ?", (row[seen], record_id)
                )
            eventlog.seal(db)
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return {"events": written, "seconds": time.monotonic() - started, "bytes": path.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.db.exists():
        raise SystemExit(f"{args.db} exists: give a new path")
    print(json.dumps(build(args.db, args.events)))


if __name__ == "__main__":
    main()
