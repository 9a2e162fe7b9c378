"""`deployment sync` of a cluster of N pods: a synthetic `kubectl get pods -A -o json`.

    python bench/sync.py WORK [--pods 10000] [--replicas 1]

Writes a PodList of N running pods (each Deployment's pods owned by its ReplicaSet, named
with the `pod-template-hash` label as kubectl shows them, one container each, the
containerd form of `imageID`), imports one attestation naming every image, then times
`deployment sync --from-kubectl FILE` as the CLI twice in its own process: the first sync
(every artifact `created`) and the next (every one a `heartbeat`, the steady state of a
cron job). Prints one JSON line: pods, observed artifacts, seconds of each run, the
input's size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EXE = str(Path(sys.executable).parent / "deploytrack")


def digest(workload: int) -> str:
    return "sha256:" + hashlib.sha256(f"bench-sync@{workload}".encode()).hexdigest()


def pod(index: int, workload: int) -> dict[str, Any]:
    name = f"svc-{workload}"
    template_hash = hashlib.sha256(name.encode()).hexdigest()[:10]
    image = f"registry.example.com/acme/{name}:1.0.0"
    started = "2026-11-30T10:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{template_hash}-{index:05d}",
            "namespace": f"team-{workload % 20}",
            "labels": {"app": name, "pod-template-hash": template_hash},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "controller": True,
                    "name": f"{name}-{template_hash}",
                    "uid": f"rs-{workload}",
                }
            ],
        },
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {
            "phase": "Running",
            "startTime": started,
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "started": True,
                    "image": image,
                    "imageID": f"registry.example.com/acme/{name}@{digest(workload)}",
                    "state": {"running": {"startedAt": started}},
                }
            ],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--replicas", type=int, default=1, help="pods per Deployment")
    args = parser.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    workloads = max(1, args.pods // args.replicas)
    pods = work / "pods.json"
    items = [pod(i, i % workloads) for i in range(args.pods)]
    pods.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    statement = work / "images.json"
    statement.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [
                    {"name": f"svc-{w}", "digest": {"sha256": digest(w)[7:]}}
                    for w in range(workloads)
                ],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {},
            }
        )
    )
    db = ["--db", str(work / "sync.db")]
    subprocess.run([EXE, *db, "attestation", "import", str(statement)], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run([EXE, *db, "environment", "create", "--name", "bench", "--type",
                    "kubernetes"], check=True, capture_output=True)  # fmt: skip
    sync = [EXE, *db, "deployment", "sync", "--env", "bench", "--logical-env", "production",
            "--from-kubectl", str(pods), "-o", "json"]  # fmt: skip
    seconds = []
    observed = 0
    for _ in ("created", "heartbeat"):
        started = time.monotonic()
        done = subprocess.run(sync, check=True, capture_output=True, text=True)
        seconds.append(time.monotonic() - started)
        observed = len(json.loads(done.stdout)["rows"])
    print(json.dumps({"pods": args.pods, "observed": observed, "first": seconds[0],
                      "again": seconds[1], "bytes": pods.stat().st_size}))  # fmt: skip


if __name__ == "__main__":
    main()
