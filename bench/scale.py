"""Build a database of deployment history through deploytrack's store layer, in batches.

    python bench/scale.py DB --envs 100 --stages 10 --names 10 --depth 100

Slots are (environment e<i>, logical environment, deployment svc-<j>, CONTAINER_IMAGE):
envs x stages x names slots (`--stages`: logical environments), each with `depth` records
that supersede one another an hour apart (version v of every slot at the same hour), the
newest one deployed. One attestation per deployment
name names every version's digest, so each record passes the evidence trigger.

The records are written in bulk, each with the `imported` event the migration that set up
the log gives a row that existed before it (and so do the slots the schema's trigger
adds): the database is what a user's of that size looks like after upgrading, and its
log, of as many events as records, passes `log verify`.

The slice (e0, staging|production, svc-0..svc-9) exists in every database this builds,
so a command limited to it returns the same rows on 1,000 records as on 1,000,000: what
differs is only how much history lies around it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from deploytrack.services import evidence
from deploytrack.store import eventlog, open_store
from deploytrack.store.models import Deployment, Environment, LogicalEnvironment

START_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
STEP_US = 3_600_000_000  # one hour between versions
BATCH_ROWS = 2_000  # rows per INSERT (SQLite allows 32766 parameters)
TRANSACTION_ROWS = 50_000


def digest(name: str, version: int) -> str:
    return "sha256:" + hashlib.sha256(f"{name}@{version}".encode()).hexdigest()


def stage_names(count: int) -> list[str]:
    # The defaults first; staging and production are in every slice.
    base = ["staging", "production", "development"]
    return (base + [f"stage-{i}" for i in range(3, count)])[:count]


def build(path: Path, envs: int, stages: int, names: int, depth: int) -> dict[str, float]:
    started = time.monotonic()
    store = open_store(path)
    services = [f"svc-{j}" for j in range(names)]
    sources = []
    for name in services:
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [
                {"name": name, "digest": {"sha256": digest(name, v).split(":")[1]}}
                for v in range(depth + 2)  # two spare versions for "record new"
            ],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {},
        }
        sources.append(evidence.Source(name, json.dumps(statement).encode()))
    evidence.import_sources(store, sources, evidence.Overrides(project="bench"))

    stage_ids = []
    for name in stage_names(stages):
        with store.write() as log:
            row = LogicalEnvironment.get_or_none(LogicalEnvironment.name == name)
            if row is None:
                row = LogicalEnvironment.create(
                    name=name, description="", created_at=START_US, updated_at=START_US
                )
                log.log("logical_environment.created")
            stage_ids.append(row.id)
    env_ids = []
    for i in range(envs):
        with store.write() as log:
            env = Environment.create(
                name=f"e{i}", type="kubernetes", created_at=START_US, updated_at=START_US
            )
            log.log("environment.created")
            env_ids.append(env.id)
    with store.read():
        last = Deployment.select().order_by(Deployment.id.desc()).first()
    first_id = last.id if last is not None else 0
    store.close()
    # A new connection, without the capture triggers store.write() made on the first:
    # the bulk rows are logged below, one `imported` event each.
    store = open_store(path)
    db = store.db
    tables = eventlog.state_tables(db)
    deployment, slot = tables["deployment"], tables["deployment_slot"]
    columns = ", ".join(deployment.columns)
    insert = (
        f"INSERT INTO deployment ({columns}) VALUES ({', '.join('?' * len(deployment.columns))})"
    )
    keys = [(e, s, n) for e in env_ids for s in stage_ids for n in services]
    rows: list[dict[str, object]] = []
    written = 0
    slots_seen = int(
        db.execute_sql("SELECT coalesce(max(id), 0) FROM deployment_slot").fetchone()[0]
    )

    def imported(table: eventlog.Table, values: list[object] | tuple[object, ...]) -> None:
        # Logged now, as the migration logs the rows it finds: event times never go back.
        image = table.image(values)
        change = {"table": table.name, "op": "insert", "key": table.key_of(image), "row": image}
        eventlog.append(db, "imported", [change], imported=True)

    def flush() -> None:
        nonlocal slots_seen
        with db.atomic("IMMEDIATE"):
            values = [[row.get(c) for c in deployment.columns] for row in rows]
            for start in range(0, len(values), BATCH_ROWS):
                db.cursor().executemany(insert, values[start : start + BATCH_ROWS])
            for row_values in values:
                imported(deployment, row_values)
            for slot_values in db.execute_sql(
                "SELECT * FROM deployment_slot WHERE id > ? ORDER BY id", (slots_seen,)
            ).fetchall():
                imported(slot, slot_values)
                slots_seen = slot_values[0]
            eventlog.seal(db)
        rows.clear()

    # Newest versions first: each superseded_by then points at a row already stored, so
    # the foreign key holds at every commit, whatever the batch boundaries.
    for version in reversed(range(depth)):
        at = START_US + version * STEP_US
        last = version == depth - 1
        for k, (env_id, stage_id, name) in enumerate(keys):
            record_id = first_id + version * len(keys) + k + 1
            rows.append(
                {
                    "id": record_id,
                    "environment_id": env_id,
                    "logical_environment_id": stage_id,
                    "deployment_name": name,
                    "kind": "CONTAINER_IMAGE",
                    "digest": digest(name, version),
                    "artifact_ref": f"registry.example.com/acme/{name}:{version}",
                    "status": "deployed" if last else "superseded",
                    "created_at": at,
                    "last_seen_at": at,
                    "ended_at": None if last else at + STEP_US,
                    "superseded_by": None if last else record_id + len(keys),
                    "source": "declared",
                }
            )
            written += 1
            if len(rows) >= TRANSACTION_ROWS:
                flush()
    flush()
    # No ANALYZE: a user's database has no statistics either; plans must not need them.
    store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return {
        "records": written,
        "keys": len(keys),
        "seconds": time.monotonic() - started,
        "bytes": path.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--envs", type=int, default=100)
    parser.add_argument("--stages", type=int, default=10)
    parser.add_argument("--names", type=int, default=10)
    parser.add_argument("--depth", type=int, default=100)
    args = parser.parse_args()
    if args.db.exists():
        raise SystemExit(f"{args.db} exists: give a new path")
    print(json.dumps(build(args.db, args.envs, args.stages, args.names, args.depth)))


if __name__ == "__main__":
    main()
