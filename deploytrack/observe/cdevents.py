"""CDEvents JSON Lines (pure): what Argo CD, Keptn, Tekton or deploytrack's own
`log export --format cdevents` say was deployed, upgraded, rolled back or removed.

One Observed per non-blank line, sorted by `context.timestamp` (stable: lines of the same
time keep their order). `service.deployed`, `upgraded` and `rolledback` ask to record the
artifact their `artifactId` purl names (its version is the digest); `service.removed`
asks to decommission. A line that is not a CDEvent, or an event of another type, is
skipped with the reason; only an input where no line is a CDEvent at all (binary, a
pretty-printed document, another tool's JSON Lines) is refused, as the wrong document.

Spec versions 0.4.x and 0.5.x are read: the fields used here (context id, source, type,
timestamp; subject id, content.environment.id, content.artifactId) are the same in both,
but for the spec version's own field (0.4 `context.version`, 0.5 `context.specversion`).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from deploytrack import jsondoc
from deploytrack.digests import normalize_sha256
from deploytrack.observe import MAX_INPUT_BYTES, Action, Observed, ObserveError
from deploytrack.timeutil import parse_time_span

# Real events are a few KiB; a longer line is skipped unread, so memory stays bounded by
# the line, not the input.
MAX_LINE_BYTES = 1024 * 1024
SPEC_VERSIONS = ("0.4.", "0.5.")
_TYPE = re.compile(r"dev\.cdevents\.([a-z]+)\.([a-z]+)\.(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)")
_ACTIONS: dict[str, Action] = {
    "deployed": "record",
    "upgraded": "record",
    "rolledback": "record",
    "removed": "decommission",
}
# An RFC 3339 date-time as CDEvents requires it: seconds and a zone (Go writes up to 9
# fraction digits; microseconds are kept).
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
Kind = Literal["CONTAINER_IMAGE", "HELM_CHART"]
_KINDS: tuple[Kind, ...] = ("CONTAINER_IMAGE", "HELM_CHART")
# purl types whose artifact is a container image or a chart (deploytrack's export writes
# `generic` for a chart file, with the kind in customData).
_PURL_KINDS: dict[str, Kind] = {
    "oci": "CONTAINER_IMAGE",
    "docker": "CONTAINER_IMAGE",
    "helm": "HELM_CHART",
}


class _Skip(Exception):
    """This line becomes a skipped Observed with this reason."""


def parse(
    data: bytes, *, env_from_event: bool = False, logical_environment: str | None = None
) -> list[Observed]:
    """The events of `data`, oldest first. With `env_from_event`, each event's
    `subject.content.environment.id` is its Observed's environment (an event without one
    is skipped). With `logical_environment`, an event deploytrack exported for another
    logical environment (its customData says which) is skipped: an export holds them all,
    a sync applies to one."""
    if len(data) > MAX_INPUT_BYTES:
        raise ObserveError(f"the CDEvents input is larger than {MAX_INPUT_BYTES >> 20} MiB")
    out: list[Observed] = []
    events = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.removesuffix(b"\r")
        if not line.strip():
            continue
        try:
            found = _observe(number, _event(number, line), env_from_event, logical_environment)
            out.append(found)
            events += 1
        except _Skip as exc:
            out.append(
                Observed(None, "CONTAINER_IMAGE", None, None, {"line": number}, skip=str(exc))
            )
    if out and not events:
        raise ObserveError(
            "the input is not CDEvents JSON Lines: no line is a CDEvent (one event per line, "
            "as `jq -c .` writes it; a pretty-printed event spans several lines)"
        )
    # Undated (skipped) lines go last; sorted() is stable, so equal times keep line order.
    out.sort(key=lambda seen: (seen.time is None, seen.time or 0))
    return out


def _event(number: int, line: bytes) -> dict[str, Any]:
    """The line as a CDEvent's JSON object, or _Skip (not a line that counts as one)."""
    if len(line) > MAX_LINE_BYTES:
        raise _Skip(f"line {number} is not a CDEvent: longer than {MAX_LINE_BYTES >> 20} MiB")
    try:
        event = jsondoc.loads(line, max_bytes=MAX_LINE_BYTES)
    except jsondoc.JSONError as exc:
        # One line: its column says where, "line 1" would only mislead.
        reason = str(exc).replace(" at line 1 column ", " at column ")
        raise _Skip(f"line {number} is not a CDEvent: {reason}") from None
    context = event.get("context") if isinstance(event, dict) else None
    if not isinstance(context, dict) or not isinstance(context.get("type"), str):
        raise _Skip(f"line {number} is not a CDEvent: it has no context.type")
    if not context["type"].startswith("dev.cdevents."):
        raise _Skip(f"line {number} is not a CDEvent: its type is {_shown(context['type'])}")
    assert isinstance(event, dict)
    return event


def _shown(value: Any) -> str:
    if value is None:
        return "(missing)"
    if not isinstance(value, str):
        text = json.dumps(value)
        return text if len(text) <= 80 else text[:80] + "..."
    return repr(value if len(value) <= 80 else value[:80] + "...")


def _observe(
    number: int, event: dict[str, Any], env_from_event: bool, logical_environment: str | None
) -> Observed:
    context: dict[str, Any] = event["context"]
    source: dict[str, Any] = {
        "line": number,
        "id": context.get("id"),
        "type": context["type"],
        "source": context.get("source"),
        "timestamp": context.get("timestamp"),
    }
    subject = event.get("subject")
    subject = subject if isinstance(subject, dict) else {}
    content = subject.get("content")
    content = content if isinstance(content, dict) else {}
    ours = _deploytrack_data(event)
    kind: Kind = ours.get("kind", "CONTAINER_IMAGE")
    name = subject.get("id") if isinstance(subject.get("id"), str) else None
    time: int | None = None

    def skipped(reason: str) -> Observed:
        return Observed(name, kind, None, None, source, skip=reason, time=time)

    # Spec 0.4 names its version `version`; 0.5 renamed it `specversion`.
    spec = context.get("specversion") if "specversion" in context else context.get("version")
    if not isinstance(spec, str) or not spec.startswith(SPEC_VERSIONS):
        return skipped(f"CDEvents spec version {_shown(spec)} is not read: 0.4.x and 0.5.x are")
    timestamp = context.get("timestamp")
    if not isinstance(timestamp, str) or not _TIMESTAMP.fullmatch(timestamp):
        return skipped(f"context.timestamp {_shown(timestamp)} is not an RFC 3339 date-time")
    try:
        time = parse_time_span(timestamp)[0]
    except ValueError:
        return skipped(f"context.timestamp {_shown(timestamp)} is not an RFC 3339 date-time")
    matched = _TYPE.fullmatch(context["type"])
    if matched is None or matched[1] != "service":
        name = None  # the subject of another kind of event is no deployment
    if matched is None or matched[1] != "service" or matched[2] not in _ACTIONS:
        return skipped(
            f"event type {_shown(context['type'])} is not a deployment: only service.deployed, "
            "upgraded, rolledback and removed are"
        )
    if name is None or not name:
        return skipped("the event has no subject.id to name the deployment")
    environment = None
    if env_from_event:
        env = content.get("environment")
        environment = env.get("id") if isinstance(env, dict) else None
        if not isinstance(environment, str) or not environment:
            return skipped("the event names no environment (subject.content.environment.id)")
    stage = ours.get("logical_environment")
    if logical_environment is not None and stage is not None and stage != logical_environment:
        return skipped(f"the event is of logical environment {_shown(stage)} (its customData)")
    action = _ACTIONS[matched[2]]
    if action == "decommission":
        return Observed(
            name, kind, None, None, source, action=action, time=time, environment=environment
        )
    try:
        digest, purl_kind, artifact_ref = _artifact(content.get("artifactId"))
    except _Skip as exc:
        return skipped(str(exc))
    if ours and ours.get("digest") == digest:
        # deploytrack's own export: customData says the kind and the reference as stored.
        purl_kind, artifact_ref = kind, ours.get("artifact_ref", artifact_ref)
    if purl_kind is None:
        return skipped(
            f"artifactId {_shown(content.get('artifactId'))} does not say whether it is a "
            "container image or a Helm chart (purl type oci, docker or helm)"
        )
    return Observed(
        name, purl_kind, digest, artifact_ref, source, time=time, environment=environment
    )


def _deploytrack_data(event: dict[str, Any]) -> dict[str, Any]:
    """kind, digest, artifact_ref and logical_environment from the customData deploytrack's
    export writes (only those well-formed), or nothing."""
    data = event.get("customData")
    if not isinstance(data, dict):
        return {}
    found: dict[str, Any] = {}
    if data.get("kind") in _KINDS:
        found["kind"] = data["kind"]
    if isinstance(data.get("digest"), str):
        found["digest"] = data["digest"]
    for key in ("artifact_ref", "logical_environment"):
        if isinstance(data.get(key), str) and data[key]:
            found[key] = data[key]
    return found


def _artifact(artifact_id: Any) -> tuple[str, Kind | None, str | None]:
    """The digest a purl's version holds, the kind its type says, and the reference its
    repository_url names; _Skip when it is no purl or its version is no sha256 digest."""
    from packageurl import PackageURL

    if not isinstance(artifact_id, str) or not artifact_id:
        raise _Skip("the event has no subject.content.artifactId")
    try:
        purl = PackageURL.from_string(artifact_id)
    except ValueError as exc:
        raise _Skip(f"artifactId {_shown(artifact_id)} is not a purl: {exc}") from None
    digest = normalize_sha256(purl.version or "")
    if digest is None:
        raise _Skip(
            f"artifactId {_shown(artifact_id)} names no digest: its version must be "
            "sha256:<64 hex digits> (written sha256%3A...)"
        )
    qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
    repository = qualifiers.get("repository_url") or None
    return digest, _PURL_KINDS.get(purl.type or ""), repository


__all__ = ["MAX_LINE_BYTES", "SPEC_VERSIONS", "parse"]
