"""CDEvents v0.5.1 from the event log: what was deployed, upgraded, rolled back and removed
where, and which environments were created, modified and deleted, for any tool that reads
CDEvents (docs/log.md, "CDEvents", says what maps to what and why).

Everything comes from the logged events, never from today's tables: each event's type and
the row images it carries decide what it was, and the names it needs (an environment's, a
logical environment's) come from a small map replayed from event 1 on, whatever `since`
says. So the export of a log is the same whatever happened after, and event N's lines
never change when the log grows. Each line is canonical JSON (RFC 8785): the same event of
the same database is the same bytes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Generator
from typing import Any
from urllib.parse import quote

from deploytrack.registry import RegistryError
from deploytrack.registry.reference import Reference, parse_reference
from deploytrack.services import ServiceError
from deploytrack.store import Store
from deploytrack.store.eventlog import canonical, events, origin

SPEC_VERSION = "0.5.1"
# The event types of CDEvents 0.5.1 this export writes, as its schemas spell them.
SERVICE_DEPLOYED = "dev.cdevents.service.deployed.0.3.0"
SERVICE_UPGRADED = "dev.cdevents.service.upgraded.0.3.0"
SERVICE_ROLLEDBACK = "dev.cdevents.service.rolledback.0.3.0"
SERVICE_REMOVED = "dev.cdevents.service.removed.0.3.0"
ENVIRONMENT_CREATED = "dev.cdevents.environment.created.0.3.0"
ENVIRONMENT_MODIFIED = "dev.cdevents.environment.modified.0.3.0"
ENVIRONMENT_DELETED = "dev.cdevents.environment.deleted.0.3.0"

# The log's event types that can become CDEvents. A heartbeat changes no deployment (the
# same digest still runs); `imported` rows existed before the log, at times it never knew;
# logical environments, attestations, policies and variables have no CDEvents subject.
_DEPLOYMENT_EVENTS = frozenset(
    {
        "deployment.recorded",
        "deployment.superseded",
        "deployment.promoted",
        "deployment.rolled_back",
        "deployment.decommissioned",
    }
)
_ENVIRONMENT_EVENTS = {
    "environment.created": ENVIRONMENT_CREATED,
    "environment.updated": ENVIRONMENT_MODIFIED,
    "environment.deleted": ENVIRONMENT_DELETED,
}

# context.id is a UUIDv5 of (origin, seq, change index) in this namespace: stable for an
# event of a database, distinct across databases. Changing it changes every exported id.
ID_NAMESPACE = uuid.UUID("5b0c1f0e-7d9a-4a57-9a43-2f3c1c6e0d11")

# What a URI-reference keeps as it is (RFC 3986 unreserved and reserved characters): an
# origin deploytrack made (`deploytrack.local/<uuid>`) is already one and stays unchanged.
_URI_SAFE = "/:@!$&'()*+,;=-._~"


def context_id(log_origin: str, seq: int, index: int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{log_origin}\n{seq}\n{index}"))


def artifact_id(kind: str, digest: str, artifact_ref: str | None, deployment_name: str) -> str:
    """The record's artifact as a purl (https://github.com/package-url/purl-spec).

    A registry reference (an image, or an `oci://` chart) names the repository:
    `pkg:oci/NAME@sha256%3A<hex>?repository_url=HOST/PATH`, NAME its last path component.
    Without one (a digest given alone, an OCI layout folder or archive, a chart file) the
    deployment name stands in for NAME and no repository is claimed: `pkg:oci/...` for an
    image, whose digest is always a manifest's, and `pkg:generic/...` for a chart, whose
    digest may be a packaged file's. A file's path names a place on the machine that
    recorded it and is not exported in the purl (customData keeps artifact_ref as stored).
    """
    version = quote(digest, safe="")
    ref = _registry_reference(artifact_ref)
    if ref is not None:
        name = ref.repository.rsplit("/", 1)[-1]
        repository = quote(f"{ref.registry}/{ref.repository}", safe="/:")
        return f"pkg:oci/{quote(name, safe='')}@{version}?repository_url={repository}"
    if kind == "HELM_CHART":
        return f"pkg:generic/{quote(deployment_name, safe='')}@{version}"
    # purl: an oci name is case-insensitive and written in lowercase.
    return f"pkg:oci/{quote(deployment_name.lower(), safe='')}@{version}"


def _registry_reference(artifact_ref: str | None) -> Reference | None:
    """The parsed registry reference a record keeps, or None (no reference, a layout, a
    chart file, or text that is no reference)."""
    if artifact_ref is None:
        return None
    text = artifact_ref
    if text.startswith("oci://"):
        text = text.removeprefix("oci://")
    elif text.startswith(("oci:", "oci-archive:")):
        return None
    try:
        return parse_reference(text)
    except RegistryError:
        return None


class Exporter:
    """Turns events, in order from event 1, into CDEvents; holds the names the deployment
    rows refer to by id, as the events left them."""

    def __init__(self, log_origin: str) -> None:
        self.origin = log_origin
        self.source = quote(log_origin, safe=_URI_SAFE)
        self.environments: dict[Any, dict[str, Any]] = {}
        self.logical_environments: dict[Any, str] = {}

    def feed(self, seq: int, type_: str, body: bytes, leaf: bytes) -> list[dict[str, Any]]:
        """The CDEvents of one event (none for most), after replaying its changes."""
        try:
            event = json.loads(body)
            changes: list[dict[str, Any]] = event["changes"]
            time = str(event["time"])
            deleted = self._replay(changes)
            if type_ in _DEPLOYMENT_EVENTS:
                return self._deployments(seq, type_, time, leaf, changes)
            if type_ in _ENVIRONMENT_EVENTS:
                return self._environments(seq, type_, time, leaf, changes, deleted)
            return []
        except (ValueError, LookupError, TypeError, AttributeError):
            # Only an event deploytrack did not write: `log verify` names what is wrong.
            raise ServiceError(
                f"event {seq} is not a well-formed event: run `deploytrack log verify`"
            ) from None

    def _replay(self, changes: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
        """Apply the event's changes to the maps; the environments it deleted, as they were."""
        deleted: dict[Any, dict[str, Any]] = {}
        for change in changes:
            table, key = change.get("table"), change.get("key", {}).get("id")
            if table == "environment":
                if change.get("op") == "delete":
                    deleted[key] = self.environments.pop(key, {})
                else:
                    self.environments[key] = change["row"]
            elif table == "logical_environment":
                if change.get("op") == "delete":
                    self.logical_environments.pop(key, None)
                else:
                    self.logical_environments[key] = change["row"]["name"]
        return deleted

    def _context(self, seq: int, index: int, type_: str, time: str) -> dict[str, Any]:
        return {
            "id": context_id(self.origin, seq, index),
            "source": self.source,
            "specversion": SPEC_VERSION,
            "timestamp": time,
            "type": type_,
        }

    def _deployments(
        self, seq: int, type_: str, time: str, leaf: bytes, changes: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        rows = [
            (index, change)
            for index, change in enumerate(changes)
            if change.get("table") == "deployment" and change.get("op") in ("insert", "update")
        ]
        # The record each new one ended in its slot, by the successor's id.
        ended = {
            change["row"]["superseded_by"]: change["row"]
            for _, change in rows
            if change["op"] == "update" and change["row"].get("superseded_by") is not None
        }
        out = []
        for index, change in rows:
            row = change["row"]
            previous = ended.get(row["id"])
            if change["op"] == "insert":
                if row.get("rollback_of") is not None:
                    cd_type = SERVICE_ROLLEDBACK
                elif previous is not None:
                    cd_type = SERVICE_UPGRADED
                else:
                    cd_type = SERVICE_DEPLOYED
            elif row.get("status") == "decommissioned":
                cd_type = SERVICE_REMOVED
            else:
                continue  # the record a new one superseded: told by the new one's event
            environment = {"id": _known(self.environments.get(row["environment_id"]), seq)}
            content: dict[str, Any] = {"environment": environment}
            if cd_type != SERVICE_REMOVED:
                content["artifactId"] = artifact_id(
                    row["kind"], row["digest"], row.get("artifact_ref"), row["deployment_name"]
                )
            out.append(
                {
                    "context": self._context(seq, index, cd_type, time),
                    "subject": {"id": row["deployment_name"], "content": content},
                    "customData": {
                        "seq": seq,
                        "leaf_hash": leaf.hex(),
                        "log_event_type": type_,
                        "deployment_id": row["id"],
                        "logical_environment": self.logical_environments.get(
                            row["logical_environment_id"]
                        ),
                        "kind": row["kind"],
                        "digest": row["digest"],
                        "artifact_ref": row.get("artifact_ref"),
                        "supersedes": previous["id"] if previous is not None else None,
                        "promoted_from": row.get("promoted_from"),
                        "rollback_of": row.get("rollback_of"),
                    },
                    "customDataContentType": "application/json",
                }
            )
        return out

    def _environments(
        self,
        seq: int,
        type_: str,
        time: str,
        leaf: bytes,
        changes: list[dict[str, Any]],
        deleted: dict[Any, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        out = []
        for index, change in enumerate(changes):
            if change.get("table") != "environment":
                continue
            key = change.get("key", {}).get("id")
            row = change.get("row") or deleted.get(key) or {}
            name = _known(row, seq)
            out.append(
                {
                    "context": self._context(seq, index, _ENVIRONMENT_EVENTS[type_], time),
                    "subject": {"id": name, "content": {"name": name}},
                    "customData": {
                        "seq": seq,
                        "leaf_hash": leaf.hex(),
                        "log_event_type": type_,
                        "environment_type": row.get("type"),
                        "description": row.get("description"),
                    },
                    "customDataContentType": "application/json",
                }
            )
        return out


def _known(environment: dict[str, Any] | None, seq: int) -> str:
    """The name of an environment an event refers to, which an earlier event (or the same
    one) created: always so in a log deploytrack wrote."""
    if not environment or not environment.get("name"):
        raise ServiceError(
            f"event {seq} refers to an environment no earlier event created: "
            "run `deploytrack log verify`"
        )
    return str(environment["name"])


def export(
    store: Store, *, since: int | None = None, until: int | None = None
) -> Generator[str, None, None]:
    """The CDEvents of the log, one canonical-JSON line each (no newline), oldest first;
    only those of events whose time is within [since, until] (both inclusive). Streams: the
    log is read a batch at a time and never held whole."""
    with store.read():
        exporter = Exporter(origin(store.db))
        for seq, time, type_, body, leaf in events(store.db):
            cd_events = exporter.feed(seq, type_, body, leaf)
            if (since is not None and time < since) or (until is not None and time > until):
                continue
            for cd_event in cd_events:
                yield line(cd_event)


# Characters JSON leaves raw in a string that some readers take for the end of a line
# (Python's str.splitlines, JavaScript before ES2019): escaped, the value is the same and
# a line of JSON Lines stays one line for every reader.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def line(cd_event: dict[str, Any]) -> str:
    """One event as a line: its RFC 8785 canonical JSON, with the escapes above."""
    return canonical(cd_event).decode("utf-8").translate(_LINE_BREAKS)


__all__ = ["SPEC_VERSION", "Exporter", "artifact_id", "context_id", "export", "line"]
