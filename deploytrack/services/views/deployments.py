"""Deployment records.

NamedTuples, not frozen dataclasses: every `deployment record`, `list` and `status`
defines these, and a NamedTuple takes ~0.1 ms to define where a frozen dataclass of 15
fields takes ~1 ms (dataclasses compile each generated method with exec). They are as
immutable and typed; `cli.output.jsonable` prints them by field name like the others.
No `from __future__ import annotations` here: NamedTuple turns string annotations into
ForwardRefs, compiling each one (~0.3 ms for these two classes).
"""

from typing import Literal, NamedTuple

# Literal types, not Enums: the JSON shows these strings, a type checker holds every
# comparison to them, and they cost nothing here (a StrEnum takes ~45 us to define, and
# this module is on the path of every `deployment record`, `list` and `status`).
Kind = Literal["CONTAINER_IMAGE", "HELM_CHART"]
# `deployment record --status` takes deployed or decommissioned; superseded is set by a
# newer record of the slot.
Status = Literal["deployed", "superseded", "decommissioned"]
Action = Literal["created", "superseded", "heartbeat", "decommissioned", "unchanged"]
# Where a record came from: declared (record, promote, rollback: what a pipeline said it
# deployed) or observed (`deployment sync`: what was seen running).
Source = Literal["declared", "observed"]


class DeploymentView(NamedTuple):
    id: int
    environment: str
    logical_environment: str
    deployment_name: str
    kind: Kind
    digest: str
    artifact_ref: str | None
    status: Status
    created_at: int
    last_seen_at: int
    ended_at: int | None
    superseded_by: int | None
    policy_id: int | None  # the stage policy version that admitted it
    # Lineage: the record a promotion copied / the earlier record a rollback restored.
    promoted_from: int | None
    rollback_of: int | None
    source: Source


class RecordResult(NamedTuple):
    action: Action
    deployment: DeploymentView
    previous: DeploymentView | None = None
