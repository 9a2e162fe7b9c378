"""What runs, read from what other tools print (`deployment sync`): pure parsers.

Each source — `kubectl get pods -A -o json` (kubectl.py), `helm list -A -o json`
(helm.py), CDEvents JSON Lines (cdevents.py) — turns its input into `Observed` items, one
per observed artifact, and never touches the database or a registry: the rules of what
an observation does (record, heartbeat, supersede, refuse, prune) are the sync service's
(services/sync.py), the same for every source.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from deploytrack.errors import DeploytrackError

# What an observation asks of its slot: to hold the artifact, or (CDEvents
# service.removed) to hold nothing any more.
Action = Literal["record", "decommission"]

# An input larger than this is refused before it is parsed (a cluster's pod list of
# 10,000 pods is ~60 MB of JSON).
MAX_INPUT_BYTES = 256 * 1024 * 1024


class ObserveError(DeploytrackError):
    """The input itself cannot be read (not JSON, the wrong kind of document, too large):
    the sync fails with one line and writes nothing. A bad entry inside a good input is
    never this: it becomes an Observed with a skip reason."""


class Observed(NamedTuple):
    """One artifact seen running (or, with action decommission, seen removed).

    `digest` is the registry digest (`sha256:<64 hex>`) when the source gives one; None
    with `skip` set when the entry cannot be recorded (not running, no digest, excluded
    namespace: the reason in words), or None with `chart` set when the digest is found
    later by the chart's name and version (helm). `source` is the JSON object the output
    shows for it (kubectl: namespace, workload, workload_kind, container; helm: namespace,
    release, chart, revision; CDEvents: the event's id, type, source and timestamp).
    `deployment_name` is the name the source's template gave (None only when skipped
    before a name could be formed). `warning` is said beside the outcome (a rollout in
    progress: the other digests seen). `time` (microseconds) orders CDEvents; `environment`
    is the event's environment when `--env-from-event` asks for it.
    """

    deployment_name: str | None
    kind: Literal["CONTAINER_IMAGE", "HELM_CHART"]
    digest: str | None
    artifact_ref: str | None
    source: dict[str, Any]
    action: Action = "record"
    skip: str | None = None
    chart: tuple[str, str] | None = None  # (name, version) to find in the evidence store
    warning: str | None = None
    time: int | None = None
    environment: str | None = None


__all__ = ["MAX_INPUT_BYTES", "Action", "ObserveError", "Observed"]
