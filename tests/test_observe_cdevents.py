"""CDEvents JSON Lines read into Observed items (deploytrack/observe/cdevents.py): pure, on
the spec's own conformance examples of v0.5.1 and v0.4.1 (tests/fixtures/cdevents), on
what deploytrack's `log export --format cdevents` writes, and on broken lines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, Invoke
from helpers import as_json, record_args
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cdevents import CHART_DIGEST, V1, history, import_evidence

from deploytrack.observe import Observed, ObserveError, cdevents

CDEVENTS = FIXTURES / "cdevents"
MYAPP = "sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427"
T = 1679322425315384  # 2023-03-20T14:27:05.315384Z, the examples' timestamp


def example(name: str, version: str = "0.5.1") -> dict[str, Any]:
    folder = "conformance" if version == "0.5.1" else f"conformance-{version}"
    event: dict[str, Any] = json.loads((CDEVENTS / folder / f"{name}.json").read_bytes())
    return event


def lines(*events: Any) -> bytes:
    """JSON Lines of `events` (bytes as they are, anything else as compact JSON)."""
    return b"".join((e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n" for e in events)


def event(
    kind: str = "deployed",
    *,
    at: str = "2026-01-02T03:04:05Z",
    name: str = "api",
    artifact: str | None = None,
    env: str | None = "prod",
    spec: str = "0.5.1",
) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if env is not None:
        content["environment"] = {"id": env}
    if artifact is not None:
        content["artifactId"] = artifact
    return {
        "context": {
            "specversion": spec,
            "id": f"{name}-{kind}-{at}",
            "source": "/argocd",
            "type": f"dev.cdevents.service.{kind}.0.3.0",
            "timestamp": at,
        },
        "subject": {"id": name, "content": content},
    }


def purl(digest: str, name: str = "api", repository: str | None = None) -> str:
    text = f"pkg:oci/{name}@{digest.replace(':', '%3A')}"
    return text if repository is None else f"{text}?repository_url={repository}"


def source(line: int, spec_type: str) -> dict[str, Any]:
    return {
        "line": line,
        "id": "271069a8-fc18-44f1-b38f-9d70a1695819",
        "type": spec_type,
        "source": "/event/source/123",
        "timestamp": "2023-03-20T14:27:05.315384Z",
    }


@pytest.mark.parametrize(("version", "type_version"), [("0.5.1", "0.3.0"), ("0.4.1", "0.2.0")])
def test_the_conformance_examples_of_the_four_service_events(
    version: str, type_version: str
) -> None:
    names = ["service_deployed", "service_upgraded", "service_rolledback", "service_removed"]
    seen = cdevents.parse(lines(*(example(n, version) for n in names)), env_from_event=True)

    def expected(line: int, predicate: str) -> Observed:
        removed = predicate == "removed"
        return Observed(
            deployment_name="mySubject123",
            kind="CONTAINER_IMAGE",
            digest=None if removed else MYAPP,
            artifact_ref=None,  # the examples' purl has no repository_url
            source=source(line, f"dev.cdevents.service.{predicate}.{type_version}"),
            action="decommission" if removed else "record",
            time=T,
            environment="test123",
        )

    assert seen == [
        expected(1, "deployed"),
        expected(2, "upgraded"),
        expected(3, "rolledback"),
        expected(4, "removed"),
    ]


def test_without_env_from_event_no_environment_is_taken() -> None:
    (seen,) = cdevents.parse(lines(example("service_deployed")))
    assert seen.environment is None and seen.skip is None and seen.digest == MYAPP


@pytest.mark.parametrize("version", ["0.5.1", "0.4.1"])
def test_other_event_types_are_skipped_with_the_reason(version: str) -> None:
    others = [example("service_published", version), example("service_deployed", version)]
    if version == "0.5.1":
        others += [example("environment_created"), example("incident_detected")]
    seen = sorted(cdevents.parse(lines(*others)), key=lambda o: o.source["line"])
    assert [o.skip is None for o in seen] == [False, True] + [False] * (len(others) - 2)
    assert seen[0].skip == (
        f"event type 'dev.cdevents.service.published.{'0.3.0' if version == '0.5.1' else '0.2.0'}'"
        " is not a deployment: only service.deployed, upgraded, rolledback and removed are"
    )
    assert seen[0].deployment_name == "mySubject123"  # a service event names its service
    assert all(o.deployment_name is None for o in seen[2:])  # an environment, an incident


def test_events_apply_in_timestamp_order_equal_times_in_line_order() -> None:
    data = lines(
        event(at="2026-01-02T03:00:00Z", name="c"),
        event(at="2026-01-02T01:00:00.5+00:00", name="a"),
        b"not json",
        event(at="2026-01-02T03:00:00.000000Z", name="d"),
        event(at="2026-01-02T02:30:00+01:00", name="b"),  # 01:30Z
    )
    seen = cdevents.parse(data)
    assert [o.deployment_name for o in seen] == ["a", "b", "c", "d", None]
    assert seen[-1].skip is not None and seen[-1].source == {"line": 3}
    assert [o.time for o in seen[:2]] == [1767315600500000, 1767317400000000]


def test_the_purl_gives_digest_kind_and_repository() -> None:
    v1_hex = V1.removeprefix("sha256:")
    seen = cdevents.parse(
        lines(
            event(artifact=purl(V1, repository="ghcr.io/acme/api")),
            event(artifact=f"pkg:oci/api@SHA256%3A{v1_hex.upper()}"),
            event(artifact=f"pkg:docker/acme/api@sha256:{v1_hex}"),  # ":" unencoded is read too
            event(artifact=f"pkg:helm/mychart@{CHART_DIGEST.replace(':', '%3A')}"),
        )
    )
    assert [(o.kind, o.digest, o.artifact_ref, o.skip) for o in seen] == [
        ("CONTAINER_IMAGE", V1, "ghcr.io/acme/api", None),
        ("CONTAINER_IMAGE", V1, None, None),
        ("CONTAINER_IMAGE", V1, None, None),
        ("HELM_CHART", CHART_DIGEST, None, None),
    ]


@pytest.mark.parametrize(
    ("artifact", "reason"),
    [
        (None, "the event has no subject.content.artifactId"),
        ("", "the event has no subject.content.artifactId"),
        ("nginx:1.0", "artifactId 'nginx:1.0' is not a purl: purl is missing"),
        ("pkg:oci/@sha256%3Aab", "is not a purl: purl is missing the required name"),
        ("pkg:oci/api@v1.2.3", "artifactId 'pkg:oci/api@v1.2.3' names no digest: its version"),
        ("pkg:oci/api", "names no digest"),
        ("pkg:oci/api@sha256%3Aabc", "names no digest"),
        ("pkg:oci/api@sha512%3A" + "a" * 128, "names no digest"),
        ("pkg:oci/api@sha256%3A" + "g" * 64, "names no digest"),
        ("pkg:oci/api@sha256%3A" + "a" * 64 + "?x", "is not a purl: Invalid qualifier"),
        (
            "pkg:generic/api@sha256%3A" + "a" * 64,
            "does not say whether it is a container image or a Helm chart",
        ),
        (42, "the event has no subject.content.artifactId"),
    ],
)
def test_an_artifact_id_that_is_no_digest_purl_is_skipped(artifact: Any, reason: str) -> None:
    broken = event()
    broken["subject"]["content"]["artifactId"] = artifact
    if artifact is None:
        del broken["subject"]["content"]["artifactId"]
    (seen,) = cdevents.parse(lines(broken, event(artifact=purl(V1))))[:1]
    assert seen.skip is not None and reason in seen.skip, seen.skip
    assert seen.digest is None and seen.deployment_name == "api" and seen.time is not None


def test_a_removed_event_needs_no_artifact() -> None:
    (seen,) = cdevents.parse(lines(event("removed")), env_from_event=True)
    assert (seen.action, seen.digest, seen.skip, seen.environment) == (
        "decommission",
        None,
        None,
        "prod",
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e["context"].update(specversion="0.3.0"), "spec version '0.3.0' is not read"),
        (lambda e: e["context"].pop("specversion"), "spec version (missing) is not read"),
        (lambda e: e["context"].update(timestamp="yesterday"), "'yesterday' is not an RFC 3339"),
        (lambda e: e["context"].update(timestamp="90m"), "'90m' is not an RFC 3339"),
        (lambda e: e["context"].update(timestamp="2026-01-02T03:04:05"), "is not an RFC 3339"),
        (lambda e: e["context"].update(timestamp="2026-13-02T03:04:05Z"), "is not an RFC 3339"),
        (lambda e: e["context"].update(type="dev.cdevents.service.exploded.0.3.0"), "not a dep"),
        (lambda e: e["subject"].update(id=""), "the event has no subject.id"),
        (lambda e: e.pop("subject"), "the event has no subject.id"),
        (lambda e: e["subject"]["content"].pop("environment"), "names no environment"),
        (lambda e: e["subject"]["content"].update(environment="prod"), "names no environment"),
    ],
)
def test_a_cdevent_that_cannot_be_applied_is_skipped(change: Any, reason: str) -> None:
    broken = event(artifact=purl(V1))
    change(broken)
    seen = cdevents.parse(lines(broken, event(artifact=purl(V1))), env_from_event=True)
    skipped = [o for o in seen if o.skip is not None]
    assert len(skipped) == 1 and reason in str(skipped[0].skip), skipped
    assert skipped[0].source["line"] == 1


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{", "line 1 is not a CDEvent: not valid JSON: Expecting property name"),
        (b"[1]", "line 1 is not a CDEvent: it has no context.type"),
        (b'{"context": {"type": 5}}', "line 1 is not a CDEvent: it has no context.type"),
        (b'{"context": {"type": "PodList"}}', "line 1 is not a CDEvent: its type is 'PodList'"),
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b"\xff\xfe", "invalid UTF-8"),
        (b"x" * (1024 * 1024 + 1), "line 1 is not a CDEvent: longer than 1 MiB"),
    ],
)
def test_a_line_that_is_no_cdevent_is_skipped_and_the_others_kept(line: bytes, reason: str) -> None:
    seen = cdevents.parse(line + b"\r\n\n  \n" + lines(event(artifact=purl(V1))))
    assert len(seen) == 2  # blank lines are no entries; CRLF line ends are read
    assert seen[0].skip is None and seen[0].source["line"] == 4
    assert seen[1].skip is not None and reason in seen[1].skip, seen[1].skip


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x02binary\xff",
        json.dumps(example("service_deployed"), indent=2).encode(),  # pretty-printed
        (CDEVENTS / "conformance" / "service_deployed.json").read_bytes(),
        b'{"kind": "PodList", "items": []}\n',
        b"[]\n",
    ],
)
def test_an_input_where_no_line_is_a_cdevent_is_refused(data: bytes) -> None:
    with pytest.raises(ObserveError, match="not CDEvents JSON Lines: no line is a CDEvent"):
        cdevents.parse(data)


def test_an_empty_input_is_no_events() -> None:
    assert cdevents.parse(b"") == [] and cdevents.parse(b"\n\n") == []


def test_a_100_mb_input_is_read_quickly_and_bounded() -> None:
    one_line = b"x" * (100 * 1024 * 1024)
    started = time.perf_counter()
    with pytest.raises(ObserveError):
        cdevents.parse(one_line)
    assert time.perf_counter() - started < 2
    many = lines(event(artifact=purl(V1))) * 100_000  # ~30 MB of events
    started = time.perf_counter()
    assert len(cdevents.parse(many)) == 100_000
    assert time.perf_counter() - started < 10


def test_an_input_over_the_limit_is_refused_before_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cdevents, "MAX_INPUT_BYTES", 1000)
    with pytest.raises(ObserveError, match="larger than"):
        cdevents.parse(lines(event(artifact=purl(V1))) * 10)


# --- deploytrack's own export, read back ----------------------------------------------


def test_a_deploytrack_export_reads_back_as_its_records(ok: Invoke, tmp_path: Path) -> None:
    import_evidence(ok, tmp_path)
    history(ok)
    ok("environment", "create", "--name", "charts")
    chart_ref = f"oci://localhost:5000/charts/mychart:0.1.0@{CHART_DIGEST}"
    ok(*record_args("charts", "production", "oci-chart", "HELM_CHART"), "--oci-ref", chart_ref)
    chart_file = str(tmp_path / "mychart-0.1.0.tgz")
    ok(*record_args("charts", "production", "file-chart", "HELM_CHART"), "--oci-ref", chart_file)
    exported = ok("log", "export", "--format", "cdevents").stdout_bytes
    seen = cdevents.parse(exported, env_from_event=True)

    records = sorted(
        as_json(ok("deployment", "list", "--history", "-o", "json")), key=lambda r: r["id"]
    )
    recorded = [o for o in seen if o.action == "record" and o.skip is None]
    assert [
        (o.deployment_name, o.kind, o.digest, o.artifact_ref, o.environment) for o in recorded
    ] == [
        (r["deployment_name"], r["kind"], r["digest"], r["artifact_ref"], r["environment"])
        for r in records
    ]
    decommissioned = [r for r in records if r["status"] == "decommissioned"]
    removed = [o for o in seen if o.action == "decommission"]
    assert [(o.deployment_name, o.kind, o.environment) for o in removed] == [
        (r["deployment_name"], r["kind"], r["environment"]) for r in decommissioned
    ]
    # The environment events are skipped, named; nothing else is.
    skipped = [o for o in seen if o.skip is not None]
    assert {o.source["type"].split(".")[2:4][1] for o in skipped} == {
        "created",
        "modified",
        "deleted",
    }
    assert len(seen) == len(exported.splitlines())
    times = [o.time for o in seen]
    assert times == sorted(times)  # type: ignore[type-var]

    # One logical environment at a time, as a sync applies them.
    staging = cdevents.parse(exported, env_from_event=True, logical_environment="staging")
    assert [o.digest for o in staging if o.action == "record" and o.skip is None] == [
        r["digest"] for r in records if r["logical_environment"] == "staging"
    ]
    other = [o.skip for o in staging if o.source["type"].startswith("dev.cdevents.service.")]
    assert "the event is of logical environment 'production' (its customData)" in other


def test_export_custom_data_is_taken_only_when_it_agrees_with_the_purl() -> None:
    ours = event(artifact=purl(V1))
    ours["customData"] = {"kind": "HELM_CHART", "digest": V1, "artifact_ref": "oci://r/c:1.0"}
    other = json.loads(json.dumps(ours))
    other["customData"]["digest"] = CHART_DIGEST  # not what the purl says: ignored
    seen = cdevents.parse(lines(ours, other))
    assert [(o.kind, o.digest, o.artifact_ref) for o in seen] == [
        ("HELM_CHART", V1, "oci://r/c:1.0"),
        ("CONTAINER_IMAGE", V1, None),
    ]


def test_only_deploytrack_events_of_another_logical_environment_are_skipped() -> None:
    ours = event(artifact=purl(V1))
    ours["customData"] = {"logical_environment": "staging", "digest": V1}
    theirs = event(artifact=purl(V1))  # Argo CD says nothing of logical environments
    seen = cdevents.parse(lines(ours, theirs), logical_environment="production")
    assert [o.skip for o in seen] == [
        "the event is of logical environment 'staging' (its customData)",
        None,
    ]
    assert all(o.skip is None for o in cdevents.parse(lines(ours), logical_environment="staging"))
    assert all(o.skip is None for o in cdevents.parse(lines(ours)))


# --- garbage ----------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=15,
)
_CONTEXT = st.fixed_dictionaries(
    {},
    optional={
        "specversion": st.sampled_from(["0.5.1", "0.4.1", "1.0"]) | _JSON,
        "version": st.sampled_from(["0.4.1"]) | _JSON,
        "type": st.sampled_from(["dev.cdevents.service.deployed.0.3.0",
                                 "dev.cdevents.service.removed.0.2.0"]) | _JSON,
        "timestamp": st.sampled_from(["2026-01-02T03:04:05Z", "9999-12-31T23:59:59Z"]) | _JSON,
        "id": _JSON,
    },
)  # fmt: skip
_SUBJECT = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=8) | _JSON,
        "content": st.fixed_dictionaries(
            {},
            optional={
                "artifactId": st.sampled_from([purl(V1), "pkg:oci/x@y", "pkg:"]) | _JSON,
                "environment": st.fixed_dictionaries({}, optional={"id": _JSON}) | _JSON,
            },
        )
        | _JSON,
    },
)
_EVENT = st.fixed_dictionaries(
    {"context": _CONTEXT}, optional={"subject": _SUBJECT, "customData": _JSON}
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_EVENT.map(lambda e: json.dumps(e).encode()) | st.binary(max_size=40), max_size=5))
def test_garbage_is_refused_or_skipped_never_another_exception(parts: list[bytes]) -> None:
    try:
        seen = cdevents.parse(b"\n".join(parts), env_from_event=True)
    except ObserveError:
        return
    for item in seen:
        assert item.skip is not None or item.deployment_name
        if item.skip is None and item.action == "record":
            assert item.digest is not None and item.digest.startswith("sha256:")
