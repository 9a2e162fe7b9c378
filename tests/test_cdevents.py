"""`log export --format cdevents`: CDEvents v0.5.1 from the event log.

Every exported line is read by `read_cdevent`, which validates it against the official
schemas (tests/fixtures/cdevents, with attribution): Draft 2020-12, the links `$ref`s
resolved from the copied files through a `referencing` registry (no network), formats
checked. The spec's own conformance examples pass through the same reader, and broken
copies of them do not: the validator is proven set up before it judges the export.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, Clock, Invoke, assert_refused, raw, snapshot
from helpers import intoto_statement, record_args, sha256_digest, slot_args
from jsonschema import Draft202012Validator, FormatChecker
from packageurl import PackageURL
from referencing import Registry, Resource
from registry.registry_support import chart_tgz

from deploytrack.services.cdevents import artifact_id

CDEVENTS = FIXTURES / "cdevents"
DEMO_LAYOUT = Path(__file__).parent.parent / "demo" / "oci-layout"
LAYOUT_1_0_0 = "sha256:47b52ebc612b8b554bab29d067bf302bb1b07407fe0d0a053b9023e93eb62ba0"

# Digests the tests record, each named by an attestation they import first.
V1, V2, V3 = (sha256_digest(f"api {n}".encode()) for n in (1, 2, 3))
CHART = chart_tgz("mychart", "0.1.0")
CHART_DIGEST = sha256_digest(CHART)


# --- the reader: the official schemas, and proof that they are really applied -----------


def _schemas() -> tuple[Registry, dict[str, dict[str, Any]]]:
    """Every schema under its `$id`, and the event schemas by the context.type they allow."""
    registry: Registry = Registry()
    by_type: dict[str, dict[str, Any]] = {}
    for path in sorted((CDEVENTS / "schemas").rglob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
        context = schema.get("properties", {}).get("context")
        if context is not None:
            (event_type,) = context["properties"]["type"]["enum"]
            by_type[event_type] = schema
    return registry.crawl(), by_type


REGISTRY, SCHEMA_OF = _schemas()


def cdevent_errors(event: Any) -> list[str]:
    """Why `event` is not a valid CDEvent of the type it names ([] when it is one)."""
    event_type = event.get("context", {}).get("type") if isinstance(event, dict) else None
    if event_type not in SCHEMA_OF:
        return [f"no schema for context.type {event_type!r}"]
    validator = Draft202012Validator(
        SCHEMA_OF[event_type], registry=REGISTRY, format_checker=FormatChecker()
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(event)]


def read_cdevent(text: str) -> dict[str, Any]:
    """One CDEvent from its JSON text, which must validate against its schema."""
    event = json.loads(text)
    errors = cdevent_errors(event)
    assert not errors, (text, errors)
    assert isinstance(event, dict)
    return event


def conformance(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CDEVENTS / "conformance" / name).read_text())
    return loaded


CONFORMANCE = sorted(p.name for p in (CDEVENTS / "conformance").glob("*.json"))
EMITTED = [
    "service.deployed",
    "service.upgraded",
    "service.rolledback",
    "service.removed",
    "environment.created",
    "environment.modified",
    "environment.deleted",
]


def test_there_is_a_schema_and_an_example_of_every_type_the_export_writes() -> None:
    for name in EMITTED:
        assert f"dev.cdevents.{name}.0.3.0" in SCHEMA_OF, name
        assert f"{name.replace('.', '_')}.json" in CONFORMANCE, name
    assert len(CONFORMANCE) == 11


@pytest.mark.parametrize("name", CONFORMANCE)
def test_every_official_conformance_example_loads_through_the_reader(name: str) -> None:
    event = read_cdevent((CDEVENTS / "conformance" / name).read_text(encoding="utf-8"))
    assert event["context"]["specversion"] == "0.5.1"


def test_the_formats_the_schemas_name_are_really_checked() -> None:
    # jsonschema checks a format only when its checker's library is installed (the test
    # extra): without them a timestamp of "yesterday" would pass.
    checkers = FormatChecker().checkers
    assert {"date-time", "uri", "uri-reference"} <= set(checkers)


@pytest.mark.parametrize(
    ("what", "path", "value"),
    [
        ("a link of an unknown type", ("context", "links", 0, "linkType"), "BOGUS"),
        ("a time that is not RFC 3339", ("context", "timestamp"), "2023-03-20 14:27"),
        ("a source that is no URI-reference", ("context", "source"), "http://[bad"),
        ("a schemaUri that is no URI", ("context", "schemaUri"), "no scheme"),
        ("another spec's type", ("context", "type"), "dev.cdevents.service.deployed.0.2.0"),
        ("a property CDEvents does not define", ("subject", "content", "extra"), "x"),
        ("an empty artifactId", ("subject", "content", "artifactId"), ""),
    ],
)
def test_the_reader_refuses_a_broken_copy_of_an_example(
    what: str, path: tuple[Any, ...], value: str
) -> None:
    event = conformance("service_deployed.json")
    assert not cdevent_errors(event)
    target: Any = event
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert cdevent_errors(event), what


# --- histories built with the CLI -------------------------------------------------------


@pytest.fixture
def evidence(ok: Invoke, tmp_path: Path) -> None:
    import_evidence(ok, tmp_path)


def import_evidence(ok: Invoke, tmp_path: Path) -> None:
    """An attestation naming V1, V2, V3, the demo layout's 1.0.0 image and a chart file."""
    statement = intoto_statement(
        [("api", V1), ("api", V2), ("api", V3), ("layout", LAYOUT_1_0_0),
         ("mychart-0.1.0.tgz", CHART_DIGEST)],
        "https://example.com/test/v1",
    )  # fmt: skip
    path = tmp_path / "statement.json"
    path.write_text(json.dumps(statement))
    ok("attestation", "import", str(path))
    (tmp_path / "mychart-0.1.0.tgz").write_bytes(CHART)


def export(run: Invoke, *extra: str) -> list[dict[str, Any]]:
    result = run("log", "export", "--format", "cdevents", *extra)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stdout == "" or result.stdout.endswith("\n")
    return [read_cdevent(line) for line in result.stdout.splitlines()]


def summary(event: dict[str, Any]) -> tuple[Any, ...]:
    """What a line says, in short: (type, subject, environment, logical environment,
    record, the record it supersedes, artifact)."""
    kind = event["context"]["type"].removeprefix("dev.cdevents.").removesuffix(".0.3.0")
    content = event["subject"]["content"]
    custom = event["customData"]
    if kind.startswith("environment."):
        return (kind, event["subject"]["id"], content.get("name"))
    return (
        kind,
        event["subject"]["id"],
        content["environment"]["id"],
        custom["logical_environment"],
        custom["deployment_id"],
        custom["supersedes"],
        content.get("artifactId"),
    )


def oci(name: str, digest: str, repository: str | None = None) -> str:
    version = digest.replace(":", "%3A")
    if repository is None:
        return f"pkg:oci/{name}@{version}"
    return f"pkg:oci/{name}@{version}?repository_url={repository}"


def record_ref(
    ok: Invoke, env: str, stage: str, name: str, ref: str, kind: str = "CONTAINER_IMAGE"
) -> None:
    ok(*record_args(env, stage, name, kind), "--oci-ref", ref)


def record_digest(ok: Invoke, env: str, stage: str, name: str, digest: str) -> None:
    ok(*record_args(env, stage, name), "--digest", digest)


def history(ok: Invoke) -> None:
    """Every kind of change the export tells, and some it does not."""
    ok("environment", "create", "--name", "k8s-staging", "--type", "kubernetes")
    ok("environment", "create", "--name", "k8s-prod", "--type", "kubernetes")
    ok("environment", "update", "--name", "k8s-prod", "--description", "the EU cluster")
    ok("logical-environment", "create", "--name", "canary")  # not a CDEvents environment
    record_ref(ok, "k8s-staging", "staging", "api", f"ghcr.io/acme/api:1.0@{V1}")  # 1
    record_digest(ok, "k8s-staging", "staging", "api", V1)  # heartbeat: not exported
    record_digest(ok, "k8s-staging", "staging", "api", V2)  # 2 supersedes 1
    ok(*slot_args("rollback", "k8s-staging", "staging", "api"))  # 3: back to V1
    promote = ("deployment", "promote", "--env", "k8s-staging", "--to-env", "k8s-prod",
               "--deployment-name", "api", "--kind", "CONTAINER_IMAGE",
               "--from-logical-env", "staging", "--to-logical-env", "production")  # fmt: skip
    ok(*promote)  # 4: the production slot's first record
    record_digest(ok, "k8s-staging", "staging", "api", V3)  # 5 supersedes 3
    ok(*promote)  # 6: supersedes 4 in production
    ok(*slot_args("decommission", "k8s-staging", "staging", "api"))  # 5 ends
    record_digest(ok, "k8s-staging", "staging", "api", V2)  # 7: after a decommission
    ok("environment", "create", "--name", "gone")
    ok("environment", "delete", "--name", "gone")
    ok("variable", "set", "K", "v", "--logical-env", "production")  # not exported


def test_a_history_exports_in_order_every_line_valid(
    ok: Invoke, run: Invoke, evidence: None
) -> None:
    history(ok)
    events = export(run)
    ghcr = oci("api", V1, "ghcr.io/acme/api")
    assert [summary(e) for e in events] == [
        ("environment.created", "k8s-staging", "k8s-staging"),
        ("environment.created", "k8s-prod", "k8s-prod"),
        ("environment.modified", "k8s-prod", "k8s-prod"),
        ("service.deployed", "api", "k8s-staging", "staging", 1, None, ghcr),
        ("service.upgraded", "api", "k8s-staging", "staging", 2, 1, oci("api", V2)),
        ("service.rolledback", "api", "k8s-staging", "staging", 3, 2, ghcr),
        ("service.deployed", "api", "k8s-prod", "production", 4, None, ghcr),
        ("service.upgraded", "api", "k8s-staging", "staging", 5, 3, oci("api", V3)),
        ("service.upgraded", "api", "k8s-prod", "production", 6, 4, oci("api", V3)),
        ("service.removed", "api", "k8s-staging", "staging", 5, None, None),
        ("service.deployed", "api", "k8s-staging", "staging", 7, None, oci("api", V2)),
        ("environment.created", "gone", "gone"),
        ("environment.deleted", "gone", "gone"),
    ]
    custom = [e["customData"] for e in events]
    assert [c["log_event_type"] for c in custom] == [
        "environment.created", "environment.created", "environment.updated",
        "deployment.recorded", "deployment.superseded", "deployment.rolled_back",
        "deployment.promoted", "deployment.superseded", "deployment.promoted",
        "deployment.decommissioned", "deployment.recorded",
        "environment.created", "environment.deleted",
    ]  # fmt: skip
    assert (custom[5]["rollback_of"], custom[6]["promoted_from"], custom[8]["promoted_from"]) == (
        1, 3, 5,
    )  # fmt: skip
    assert custom[1]["environment_type"] == "kubernetes"
    assert custom[2]["description"] == "the EU cluster"
    assert custom[3]["artifact_ref"] == "ghcr.io/acme/api:1.0"
    assert custom[3]["digest"] == V1 and custom[3]["kind"] == "CONTAINER_IMAGE"
    assert all(e["customDataContentType"] == "application/json" for e in events)


def test_each_line_names_its_log_event(
    ok: Invoke, run: Invoke, evidence: None, db_path: Path
) -> None:
    history(ok)
    events = export(run)
    logged = json.loads(ok("log", "list", "-o", "json").stdout)
    by_seq = {e["seq"]: e for e in logged}
    origin = logged[0]["event"]["origin"]
    for event in events:
        seq = event["customData"]["seq"]
        assert event["customData"]["leaf_hash"] == by_seq[seq]["leaf_hash"]
        assert event["context"]["timestamp"] == by_seq[seq]["time"]
        assert event["context"]["source"] == origin
        assert event["context"]["specversion"] == "0.5.1"
    ids = [e["context"]["id"] for e in events]
    assert len(set(ids)) == len(ids)


def test_the_export_is_the_same_bytes_twice_and_after_more_history(
    ok: Invoke, run: Invoke, evidence: None
) -> None:
    history(ok)
    first = ok("log", "export", "--format", "cdevents").stdout_bytes
    assert ok("log", "export", "--format", "cdevents").stdout_bytes == first
    record_digest(ok, "k8s-staging", "staging", "api", V3)
    ok("environment", "update", "--name", "k8s-staging", "--description", "later")
    later = ok("log", "export", "--format", "cdevents").stdout_bytes
    assert later.startswith(first) and len(later.splitlines()) == len(first.splitlines()) + 2


@pytest.mark.sqlite_only(
    reason="an SQLite file of the release before the log, upgraded as it is opened"
)
def test_rows_from_before_the_log_are_not_exported_but_named(
    ok: Invoke, run: Invoke, tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploytrack.store import migrations, open_store

    # A database of the release before the log, with an environment and a record in it.
    every = list(migrations.MIGRATIONS)
    monkeypatch.setattr(migrations, "MIGRATIONS", every[:5])
    open_store(db_path).close()
    with raw(db_path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        # The least evidence the schema asks of a record: an attestation naming V1.
        body = b"{}"
        conn.execute(
            "INSERT INTO blob (digest, size, content, created_at) VALUES (?, 2, ?, 1)",
            (sha256_digest(body), body),
        )
        conn.execute(
            "INSERT INTO attestation (id, digest, format, statement_type, predicate_type,"
            " imported_at) VALUES (1, ?, 'statement', 's', 'p', 1)",
            (sha256_digest(body),),
        )
        conn.execute(
            "INSERT INTO attestation_subject (attestation_id, name, digest) VALUES (1, 'api', ?)",
            (V1,),
        )
        conn.execute(
            "INSERT INTO environment (id, name, type, created_at, updated_at)"
            " VALUES (1, 'old', 'server', 1, 1)"
        )
        conn.execute(
            "INSERT INTO deployment (id, environment_id, logical_environment_id,"
            " deployment_name, kind, digest, status, created_at, last_seen_at)"
            " SELECT 1, 1, id, 'api', 'CONTAINER_IMAGE', ?, 'deployed', 1, 1"
            " FROM logical_environment WHERE name = 'production'",
            (V1,),
        )
    monkeypatch.setattr(migrations, "MIGRATIONS", every)
    import_evidence(ok, tmp_path)
    # Their genesis events are `imported`: when they happened the log never knew.
    record_digest(ok, "old", "production", "api", V2)
    assert [summary(e) for e in export(run)] == [
        ("service.upgraded", "api", "old", "production", 2, 1, oci("api", V2)),
    ]


def test_context_id_and_source_differ_between_databases(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from deploytrack.cli import cli

    runner = CliRunner()
    lines = []
    for name in ("a.db", "b.db"):
        db = str(tmp_path / name)
        for args in (("environment", "create", "--name", "prod"),
                     ("log", "export", "--format", "cdevents")):  # fmt: skip
            result = runner.invoke(cli, ["--db", db, *args])
            assert result.exit_code == 0, result.stderr
        (line,) = result.stdout.splitlines()
        lines.append(read_cdevent(line))
    a, b = lines
    assert a["context"]["id"] != b["context"]["id"]
    assert a["context"]["source"] != b["context"]["source"]
    assert a["subject"] == b["subject"]


def test_the_export_comes_from_the_log_not_from_the_tables(
    ok: Invoke, run: Invoke, evidence: None, db_path: Path
) -> None:
    history(ok)
    before = ok("log", "export", "--format", "cdevents").stdout_bytes
    # An edit that bypasses deploytrack changes the tables, not the log: log verify finds
    # it; the export still tells what the log holds.
    with raw(db_path) as conn:
        conn.execute("UPDATE environment SET name = 'renamed' WHERE name = 'k8s-prod'")
    assert run("log", "verify").exit_code == 1
    assert ok("log", "export", "--format", "cdevents").stdout_bytes == before


def test_since_and_until_filter_by_event_time_with_names_from_earlier_events(
    ok: Invoke, run: Invoke, evidence: None, clock: Clock
) -> None:
    ok("environment", "create", "--name", "prod")  # 09:00
    clock.advance(hours=1)
    record_digest(ok, "prod", "production", "api", V1)  # 10:00
    clock.advance(hours=1)
    record_digest(ok, "prod", "production", "api", V2)  # 11:00
    clock.advance(hours=1)
    ok(*slot_args("decommission", "prod", "production", "api"))  # 12:00

    def kinds(*window: str) -> list[str]:
        return [summary(e)[0] for e in export(run, *window)]

    everything = kinds()
    assert everything == ["environment.created", "service.deployed", "service.upgraded",
                          "service.removed"]  # fmt: skip
    # Inclusive at both ends, to the microsecond.
    assert kinds("--since", "2026-11-20T10:00:00Z") == everything[1:]
    assert kinds("--since", "2026-11-20T10:00:00.000001Z") == everything[2:]
    assert kinds("--until", "2026-11-20T11:00:00Z") == everything[:3]
    assert kinds("--since", "2026-11-20T10:30:00Z", "--until", "2026-11-20T11:30:00Z") == [
        "service.upgraded"
    ]
    assert kinds("--since", "2026-11-21T00:00:00Z") == []
    # The environment was created before --since: its name still comes from the log.
    (upgraded,) = export(run, "--since", "2026-11-20T11:00:00Z", "--until", "2026-11-20T11:00:00Z")
    assert upgraded["subject"]["content"]["environment"]["id"] == "prod"
    full = ok("log", "export", "--format", "cdevents").stdout.splitlines()
    window = ok("log", "export", "--format", "cdevents", "--since", "2026-11-20T11:00:00Z")
    assert window.stdout.splitlines() == full[2:]  # the same bytes, whatever the window


def test_a_line_is_one_line_for_every_reader_and_keeps_the_value(ok: Invoke, run: Invoke) -> None:
    # JSON leaves these raw in a string; Python's splitlines (and older JavaScript) end a
    # line there. The export escapes them: same value, one line.
    description = "a\x85b\u2028c\u2029d"
    ok("environment", "create", "--name", "prod", "--description", description)
    raw = ok("log", "export", "--format", "cdevents").stdout_bytes
    assert raw.count(b"\n") == 1 and b"\\u0085" in raw and b"\\u2028" in raw
    (event,) = export(run)
    assert event["customData"]["description"] == description


# --- artifact ids ------------------------------------------------------------------------


def test_artifact_ids_of_charts_layouts_and_registries(
    ok: Invoke, run: Invoke, evidence: None, tmp_path: Path
) -> None:
    ok("environment", "create", "--name", "prod")
    chart_ref = f"oci://localhost:5000/charts/mychart:0.1.0@{CHART_DIGEST}"
    record_ref(ok, "prod", "production", "oci-chart", chart_ref, "HELM_CHART")
    record_ref(ok, "prod", "production", "file-chart", str(tmp_path / "mychart-0.1.0.tgz"),
               "HELM_CHART")  # fmt: skip
    record_ref(ok, "prod", "production", "Layout", f"oci:{DEMO_LAYOUT}:1.0.0")
    record_ref(ok, "prod", "production", "hub", f"nginx@{V1}")
    ids = [e["subject"]["content"]["artifactId"] for e in export(run)[1:]]
    assert ids == [
        oci("mychart", CHART_DIGEST, "localhost:5000/charts/mychart"),
        f"pkg:generic/file-chart@{CHART_DIGEST.replace(':', '%3A')}",
        oci("layout", LAYOUT_1_0_0),
        oci("nginx", V1, "docker.io/library/nginx"),
    ]
    # An independent purl parser reads back the type, name, digest and repository.
    parsed = [PackageURL.from_string(i) for i in ids]
    assert [(p.type, p.name, p.version) for p in parsed] == [
        ("oci", "mychart", CHART_DIGEST),
        ("generic", "file-chart", CHART_DIGEST),
        ("oci", "layout", LAYOUT_1_0_0),
        ("oci", "nginx", V1),
    ]
    assert [p.qualifiers for p in parsed] == [
        {"repository_url": "localhost:5000/charts/mychart"},
        {},
        {},
        {"repository_url": "docker.io/library/nginx"},
    ]


@pytest.mark.parametrize(
    ("kind", "ref", "name", "purl"),
    [
        ("CONTAINER_IMAGE", None, "api", "pkg:oci/api@sha256%3AD"),
        ("CONTAINER_IMAGE", None, "API.v2", "pkg:oci/api.v2@sha256%3AD"),
        ("HELM_CHART", None, "Api", "pkg:generic/Api@sha256%3AD"),
        ("HELM_CHART", "/srv/charts/api-1.0.0.tgz", "api", "pkg:generic/api@sha256%3AD"),
        ("CONTAINER_IMAGE", "oci-archive:/tmp/a.tar:1.0", "api", "pkg:oci/api@sha256%3AD"),
        ("CONTAINER_IMAGE", "[::1]:5000/team/app:1", "api",
         "pkg:oci/app@sha256%3AD?repository_url=%5B::1%5D:5000/team/app"),
        ("HELM_CHART", "oci://ghcr.io/acme/charts/api:1.2.0", "x",
         "pkg:oci/api@sha256%3AD?repository_url=ghcr.io/acme/charts/api"),
        ("CONTAINER_IMAGE", "not a reference", "api", "pkg:oci/api@sha256%3AD"),
    ],
)  # fmt: skip
def test_artifact_id(kind: str, ref: str | None, name: str, purl: str) -> None:
    digest = "sha256:" + "d" * 64
    assert artifact_id(kind, digest, ref, name) == purl.replace("%3AD", "%3A" + "d" * 64)


def test_a_source_is_a_uri_reference_whatever_the_origin() -> None:
    from deploytrack.services.cdevents import Exporter

    assert Exporter("deploytrack.local/5f0c").source == "deploytrack.local/5f0c"
    assert Exporter("example.com/a log%").source == "example.com/a%20log%25"


# --- refusals, the output file, start-up -------------------------------------------------


def test_the_format_is_required_and_checked(refuse: Invoke) -> None:
    refuse("log", "export", code=2, contains="--format")
    refuse("log", "export", "--format", "json", code=2, contains="cdevents")


def test_output_file_is_new_private_and_holds_what_stdout_shows(
    ok: Invoke, refuse: Invoke, evidence: None, tmp_path: Path
) -> None:
    history(ok)
    path = tmp_path / "events.jsonl"
    result = ok("log", "export", "--format", "cdevents", "--output", str(path))
    assert result.stdout == f"Exported 13 CDEvents to {path}.\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == ok("log", "export", "--format", "cdevents").stdout_bytes
    refuse("log", "export", "--format", "cdevents", "--output", str(path), contains="exists")
    assert path.read_bytes().count(b"\n") == 13


def _row(**row: Any) -> bytes:
    change = {"table": "deployment", "op": "insert", "key": {"id": 9}, "row": row}
    event = {"seq": 0, "time": "2026-11-20T09:00:00.000000Z", "changes": [change]}
    return json.dumps(event).encode()


FULL_ROW = {"id": 9, "environment_id": 99, "logical_environment_id": 1, "kind": "HELM_CHART",
            "digest": V1, "deployment_name": "api"}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "is not a well-formed event"),
        (b'{"time": "2026-11-20T09:00:00.000000Z"}', "is not a well-formed event"),
        (_row(id=9), "is not a well-formed event"),
        (_row(**FULL_ROW), "refers to an environment no earlier event created"),
    ],
    ids=["not JSON", "no changes", "a row without its columns", "an unknown environment"],
)
def test_an_event_deploytrack_did_not_write_is_refused_and_leaves_no_file(
    run: Invoke, ok: Invoke, evidence: None, tmp_path: Path, db_path: Path, body: bytes,
    problem: str,
) -> None:  # fmt: skip
    ok("environment", "create", "--name", "prod")
    record_digest(ok, "prod", "production", "api", V1)
    # Appended behind deploytrack's back (the schema keeps the log append-only, nothing
    # more): the export names the event and removes the partial file.
    with raw(db_path) as conn:
        (seq,) = conn.execute("SELECT max(seq) + 1 FROM log_event").fetchone()
        conn.execute(
            "INSERT INTO log_event (seq, time, type, body, leaf_hash) VALUES (?, 0, ?, ?, ?)",
            (seq, "deployment.recorded", body, b"\0" * 32),
        )
    path = tmp_path / "out.jsonl"
    result = run("log", "export", "--format", "cdevents", "--output", str(path))
    assert_refused(result, contains=f"event {seq} {problem}")
    assert "deploytrack log verify" in result.stderr
    assert not path.exists()
    before = snapshot(db_path)
    assert_refused(run("log", "export", "--format", "cdevents"), contains=f"event {seq}")
    assert snapshot(db_path) == before


def test_export_imports_neither_jsonschema_nor_oras(
    ok: Invoke, evidence: None, entry_point: str, db_path: Path
) -> None:
    ok("environment", "create", "--name", "prod")
    record_ref(ok, "prod", "production", "api", f"ghcr.io/acme/api:1.0@{V1}")
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(
        [entry_point, "--db", str(db_path), "log", "export", "--format", "cdevents"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert len(done.stdout.splitlines()) == 2
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "deploytrack.services.cdevents" in imported  # the profile is really there
    assert not {m for m in imported if m.split(".")[0] in ("jsonschema", "oras", "referencing")}


def test_a_reader_that_leaves_ends_the_export_quietly(
    ok: Invoke, entry_point: str, db_path: Path
) -> None:
    # The export streams inside a read transaction: it must end before the store closes
    # (exit 141 and nothing on stderr, as every command whose reader is gone).
    for name in ("a", "b"):
        ok("environment", "create", "--name", name)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [entry_point, "--db", str(db_path), "log", "export", "--format", "cdevents"],
            stdout=write_end, stderr=subprocess.PIPE, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, b"")
