"""Deployment records: recording, heartbeats, superseding, decommissioning, listing,
describing, and the refusals around them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import (
    NGINX_FULL,
    NGINX_GIT,
    Invoke,
    Record,
    assert_refused,
    attestation,
    execute,
    fail_writes,
    query,
    snapshot,
)
from helpers import as_json, record_args

from deploytrack.cli import cli

RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
DEPLOYMENT_FIELDS = [
    "id",
    "environment",
    "logical_environment",
    "deployment_name",
    "kind",
    "digest",
    "artifact_ref",
    "status",
    "created_at",
    "last_seen_at",
    "ended_at",
    "superseded_by",
    "policy_id",  # admission by a stage policy
    "promoted_from",  # lineage
    "rollback_of",  # lineage
    "source",  # declared (record, promote, rollback) or observed (sync)
]
TABLE_COLUMNS = ["ID", "ENVIRONMENT", "LOGICAL ENV", "NAME", "ARTIFACT", "STATUS", "DEPLOYED AT"]
WIDE_COLUMNS = [
    "ID",
    "ENVIRONMENT",
    "LOGICAL ENV",
    "NAME",
    "KIND",
    "ARTIFACT",
    "DIGEST",
    "STATUS",
    "DEPLOYED AT",
    "LAST SEEN",
    "ENDED AT",
    "SOURCE",
]
MUTABLE = {"status", "ended_at", "superseded_by", "last_seen_at"}
NOT_IN_STORE = "is not in the evidence store: import an attestation that names it first"
# A well-formed digest no fixture names.
UNKNOWN_DIGEST = "sha256:" + hashlib.sha256(b"an artifact nobody attested").hexdigest()
# The slot most tests record into: `deployment record` up to --kind, then the artifact.
API = record_args("cluster", "production", "api")


def file_digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(attestation(name).read_bytes()).hexdigest()


def rows(db_path: Path) -> dict[int, dict[str, Any]]:
    return {r["id"]: r for r in query(db_path, "SELECT * FROM deployment ORDER BY id")}


def assert_deployment_json(obj: dict[str, Any]) -> None:
    assert list(obj) == DEPLOYMENT_FIELDS
    for field in ("created_at", "last_seen_at"):
        assert RFC3339_US.match(obj[field]), (field, obj[field])
    assert obj["ended_at"] is None or RFC3339_US.match(obj["ended_at"]), obj["ended_at"]


def assert_history_preserved(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]):
    """No record vanished; ended records are frozen; active ones changed only mutable columns."""
    assert set(before) <= set(after), "a deployment record was deleted"
    for ident, old in before.items():
        new = after[ident]
        if old["status"] != "deployed":
            assert new == old, (old, new)
            continue
        for column in old.keys() - MUTABLE:
            assert new[column] == old[column], (column, old, new)
        assert new["last_seen_at"] >= old["last_seen_at"]


@pytest.fixture(autouse=True)
def _evidence_and_cluster(seeded: None) -> None:
    """Every test here starts with NGINX_FULL and NGINX_GIT attested and 'cluster' created."""


# --- recording -------------------------------------------------------------------------------


def test_first_record_creates_an_active_record(record: Record, db_path: Path) -> None:
    result = record(NGINX_FULL)
    assert list(result) == ["action", "deployment", "previous"]
    assert result["action"] == "created"
    assert result["previous"] is None
    made = result["deployment"]
    assert_deployment_json(made)
    assert (made["environment"], made["logical_environment"]) == ("cluster", "production")
    assert (made["deployment_name"], made["kind"]) == ("api", "CONTAINER_IMAGE")
    assert (made["digest"], made["artifact_ref"], made["status"]) == (NGINX_FULL, None, "deployed")
    assert (made["ended_at"], made["superseded_by"]) == (None, None)
    assert made["created_at"] == made["last_seen_at"]
    assert [r["id"] for r in rows(db_path).values()] == [made["id"]]


def test_table_output_of_a_new_record(ok: Invoke) -> None:
    out = ok(*API, "--digest", NGINX_FULL).stdout
    assert out.startswith("Recorded deployment 1: api (CONTAINER_IMAGE)")
    assert "cluster/production" in out


def test_same_digest_is_a_heartbeat(record: Record, db_path: Path) -> None:
    first = record(NGINX_FULL)["deployment"]
    before = rows(db_path)
    again = record(NGINX_FULL)
    assert again["action"] == "heartbeat"
    beat = again["deployment"]
    assert beat["id"] == first["id"]
    assert beat["created_at"] == first["created_at"]
    assert beat["last_seen_at"] > first["last_seen_at"]
    after = rows(db_path)
    assert list(after) == [first["id"]]
    assert after[first["id"]]["last_seen_at"] > before[first["id"]]["last_seen_at"]
    assert {k: v for k, v in after[first["id"]].items() if k != "last_seen_at"} == {
        k: v for k, v in before[first["id"]].items() if k != "last_seen_at"
    }


def test_another_digest_supersedes_the_active_record(record: Record, db_path: Path) -> None:
    first = record(NGINX_FULL)["deployment"]
    record(NGINX_FULL)  # a heartbeat first: the end must not precede the last sighting
    result = record(NGINX_GIT)
    assert result["action"] == "superseded"
    new, old = result["deployment"], result["previous"]
    assert_deployment_json(new)
    assert_deployment_json(old)
    assert old["id"] == first["id"]
    assert new["id"] > old["id"]
    assert (old["status"], old["superseded_by"]) == ("superseded", new["id"])
    assert (new["status"], new["digest"], new["superseded_by"]) == ("deployed", NGINX_GIT, None)
    assert new["ended_at"] is None

    stored = rows(db_path)
    assert stored[old["id"]]["status"] == "superseded"
    assert stored[old["id"]]["superseded_by"] == new["id"]
    ended = stored[old["id"]]["ended_at"]
    assert ended is not None
    assert stored[old["id"]]["last_seen_at"] <= ended <= stored[new["id"]]["created_at"]
    assert [r["status"] for r in stored.values()].count("deployed") == 1


def test_superseding_is_one_transaction(refuse: Invoke, record: Record, db_path: Path) -> None:
    """If the new record cannot be written, the old one must stay active."""
    first = record(NGINX_FULL)["deployment"]
    fail_writes(db_path, "deployment")
    refuse(*API, "--digest", NGINX_GIT, contains="injected failure")
    assert rows(db_path)[first["id"]]["status"] == "deployed"


def test_keys_are_independent(ok: Invoke, record: Record, db_path: Path) -> None:
    ok("environment", "create", "--name", "other")
    base = record(NGINX_FULL)["deployment"]
    variants = [
        {"env": "other"},
        {"stage": "staging"},
        {"name": "api-2"},
        {"kind": "HELM_CHART"},
    ]
    for variant in variants:
        result = record(NGINX_GIT, **variant)
        assert result["action"] == "created", variant
        assert result["previous"] is None
    stored = rows(db_path)
    assert stored[base["id"]]["status"] == "deployed"
    assert [r["status"] for r in stored.values()] == ["deployed"] * (1 + len(variants))


def test_deployment_names_are_case_sensitive_keys(record: Record) -> None:
    record(NGINX_FULL, name="api")
    assert record(NGINX_GIT, name="API")["action"] == "created"


@pytest.mark.parametrize("spelling", ["container_image", "Container_Image", "CONTAINER_IMAGE"])
def test_kind_is_case_insensitive(record: Record, db_path: Path, spelling: str) -> None:
    record(NGINX_FULL, kind="CONTAINER_IMAGE")
    result = record(NGINX_FULL, kind=spelling)
    assert result["action"] == "heartbeat"  # the same slot, whatever the spelling
    assert result["deployment"]["kind"] == "CONTAINER_IMAGE"
    assert {r["kind"] for r in rows(db_path).values()} == {"CONTAINER_IMAGE"}


def test_helm_chart_kind(record: Record) -> None:
    assert record(NGINX_FULL, kind="helm_chart")["deployment"]["kind"] == "HELM_CHART"


@pytest.mark.parametrize("kind", ["jar", "IMAGE", "", "CONTAINER-IMAGE"])
def test_unknown_kind_is_a_usage_error(refuse: Invoke, kind: str) -> None:
    refuse(
        *record_args("cluster", "production", "api", kind),
        "--digest",
        NGINX_FULL,
        code=2,
        contains="--kind",
    )


def test_uppercase_hex_is_normalised(record: Record, db_path: Path) -> None:
    upper = "sha256:" + NGINX_FULL.removeprefix("sha256:").upper()
    made = record(upper)["deployment"]
    assert made["digest"] == NGINX_FULL
    assert record(NGINX_FULL)["action"] == "heartbeat"
    assert [r["digest"] for r in rows(db_path).values()] == [NGINX_FULL]


HEX = NGINX_FULL.removeprefix("sha256:")
BAD_DIGESTS = {
    "sha512": "sha512:" + HEX + HEX,
    "sha1": "sha1:" + HEX[:40],
    "63 hex": "sha256:" + HEX[:63],
    "65 hex": "sha256:" + HEX + "0",
    "non-hex": "sha256:" + "g" * 64,
    "no algorithm": HEX,
    "empty": "",
    "algorithm only": "sha256:",
}


@pytest.mark.parametrize("digest", BAD_DIGESTS.values(), ids=BAD_DIGESTS.keys())
def test_malformed_digests_are_refused(refuse: Invoke, digest: str) -> None:
    refuse(*API, "--digest", digest, code=2, contains="sha256:<64 hex digits>")


@pytest.mark.parametrize(
    "source",
    [
        (),
        ("--digest", NGINX_FULL, "--oci-ref", f"ghcr.io/acme/api@{NGINX_FULL}"),
    ],
    ids=["neither", "both"],
)
def test_exactly_one_of_digest_and_oci_ref(refuse: Invoke, source: tuple[str, ...]) -> None:
    refuse(*API, *source, code=2, contains="exactly one of --digest and --oci-ref")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize(
    ("reference", "digest", "artifact_ref"),
    [
        (
            f"index.docker.io/bitnami/nginx:1.2@{NGINX_FULL}",
            NGINX_FULL,
            "docker.io/bitnami/nginx:1.2",
        ),
        (f"ghcr.io/acme/api@{NGINX_GIT}", NGINX_GIT, "ghcr.io/acme/api"),
        (f"nginx@{NGINX_FULL}", NGINX_FULL, "docker.io/library/nginx"),
        (
            f"localhost:5000/team/app:v1@sha256:{NGINX_GIT.removeprefix('sha256:').upper()}",
            NGINX_GIT,
            "localhost:5000/team/app:v1",
        ),
    ],
)
def test_pinned_oci_reference_needs_no_network(
    ok: Invoke,
    db_path: Path,
    no_network: None,
    reference: str,
    digest: str,
    artifact_ref: str,
) -> None:
    result = ok(
        *API,
        "--oci-ref",
        reference,
        "-o",
        "json",
    )
    made = json.loads(result.stdout)["deployment"]
    assert (made["digest"], made["artifact_ref"]) == (digest, artifact_ref)
    assert [(r["digest"], r["artifact_ref"]) for r in rows(db_path).values()] == [
        (digest, artifact_ref)
    ]
    table = ok("deployment", "list").stdout
    # ARTIFACT: the reference without its registry (and Docker Hub's library/), short digest
    short_form = artifact_ref.split("/", 1)[1].removeprefix("library/")
    assert f"{short_form}@{digest[:19]}" in table
    wide = ok("deployment", "list", "-o", "wide").stdout
    assert artifact_ref in wide and digest in wide


def test_oci_reference_of_an_unattested_digest_is_refused(refuse: Invoke, no_network: None) -> None:
    refuse(*API, "--oci-ref", f"ghcr.io/acme/api:1.0@{UNKNOWN_DIGEST}", contains=NOT_IN_STORE)


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("api.v2_x-1", True),
        ("A" * 253, True),
        ("A" * 254, False),
        ("-api", False),
        ("api-", False),
        ("a b", False),
        ("api\n", False),
        ("", False),
    ],
)
def test_deployment_names(run: Invoke, db_path: Path, name: str, accepted: bool) -> None:
    before = snapshot(db_path)
    result = run(
        *record_args("cluster", "production", name),
        "--digest",
        NGINX_FULL,
    )
    if accepted:
        assert result.exit_code == 0, result.stderr
        assert [r["deployment_name"] for r in rows(db_path).values()] == [name]
    else:
        assert_refused(result, code=2, contains="invalid deployment name")
        assert snapshot(db_path) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--env", "nowhere", "--logical-env", "production"),
            "environment 'nowhere' does not exist",
        ),
        (
            ("--env", "cluster", "--logical-env", "nowhen"),
            "logical environment 'nowhen' does not exist",
        ),
    ],
)
def test_environment_and_stage_must_exist(
    refuse: Invoke, args: tuple[str, ...], message: str
) -> None:
    refuse(
        "deployment",
        "record",
        *args,
        "--deployment-name",
        "api",
        "--kind",
        "CONTAINER_IMAGE",
        "--digest",
        NGINX_FULL,
        contains=message,
    )


@pytest.mark.parametrize("status", ["deployed", "decommissioned"])
def test_digest_must_be_in_the_evidence_store(refuse: Invoke, record: Record, status: str) -> None:
    record(NGINX_FULL)
    refuse(
        *API,
        "--digest",
        UNKNOWN_DIGEST,
        "--status",
        status,
        contains=f"{UNKNOWN_DIGEST} {NOT_IN_STORE}",
    )


def test_a_digest_named_only_as_a_subject_becomes_recordable_once_attested(
    run: Invoke, ok: Invoke, record: Record, db_path: Path, tmp_path: Path
) -> None:
    provenance = str(attestation("chainloop-slsa_provenance.sigstore.json"))
    # Learn the file's subjects from a scratch database, so this one stays without it.
    scratch = CliRunner().invoke(
        cli,
        ["--db", str(tmp_path / "scratch.db"), "attestation", "import", provenance, "-o", "json"],
    )
    assert scratch.exit_code == 0, scratch.stderr
    parsed = json.loads(scratch.stdout)[0]["attestation"]
    materials = {m["digest"] for m in parsed["materials"]}
    subject = next(
        s["digest"]
        for s in parsed["subjects"]
        if s["digest"].startswith("sha256:") and s["digest"] not in materials
    )
    refused = run(*API, "--digest", subject)
    assert_refused(refused, contains=NOT_IN_STORE)
    ok("attestation", "import", provenance)
    assert record(subject)["action"] == "created"


def test_times_never_run_backwards_when_the_clock_does(
    record: Record, run: Invoke, db_path: Path
) -> None:
    """A record last seen "in the future" (another host's clock, a clock step back)."""
    first = record(NGINX_FULL)["deployment"]["id"]
    future = rows(db_path)[first]["last_seen_at"] + 3_600_000_000  # one hour ahead
    execute(db_path, "UPDATE deployment SET last_seen_at = ? WHERE id = ?", (future, first))

    record(NGINX_FULL)  # heartbeat: last_seen_at must not move back
    assert rows(db_path)[first]["last_seen_at"] == future
    second = record(NGINX_GIT)["deployment"]["id"]
    stored = rows(db_path)
    assert stored[first]["ended_at"] >= stored[first]["last_seen_at"]
    assert stored[second]["created_at"] >= stored[first]["ended_at"]

    execute(db_path, "UPDATE deployment SET last_seen_at = ? WHERE id = ?", (future * 2, second))
    assert decommission(run, NGINX_GIT).exit_code == 0
    ended = rows(db_path)[second]
    assert ended["ended_at"] >= ended["last_seen_at"]


# --- decommissioning -----------------------------------------------------------------------


def decommission(run: Invoke, digest: str, *extra: str) -> Any:
    return run(
        *API,
        "--digest",
        digest,
        "--status",
        "decommissioned",
        *extra,
    )


def test_decommission_ends_the_active_record(record: Record, run: Invoke, db_path: Path) -> None:
    made = record(NGINX_FULL)["deployment"]
    result = decommission(run, NGINX_FULL, "-o", "json")
    assert result.exit_code == 0, result.stderr
    body = as_json(result)
    assert body["action"] == "decommissioned"
    ended = body["deployment"]
    assert_deployment_json(ended)
    assert ended["id"] == made["id"]
    assert (ended["status"], ended["superseded_by"]) == ("decommissioned", None)
    assert ended["ended_at"] is not None
    stored = rows(db_path)[made["id"]]
    assert stored["status"] == "decommissioned"
    assert stored["ended_at"] >= stored["last_seen_at"]
    assert len(rows(db_path)) == 1


def test_decommissioning_again_changes_nothing(record: Record, run: Invoke, db_path: Path) -> None:
    record(NGINX_FULL)
    assert decommission(run, NGINX_FULL).exit_code == 0
    before = snapshot(db_path)
    again = decommission(run, NGINX_FULL)
    assert again.exit_code == 0, again.stderr
    assert again.stderr == ""
    assert "already decommissioned: nothing changed" in again.stdout
    assert snapshot(db_path) == before
    body = as_json(decommission(run, NGINX_FULL, "-o", "json"))
    assert body["action"] == "unchanged"
    assert snapshot(db_path) == before


def test_decommission_is_refused_when_another_digest_is_active(
    record: Record, run: Invoke, db_path: Path
) -> None:
    record(NGINX_FULL)
    before = snapshot(db_path)
    result = decommission(run, NGINX_GIT)
    assert_refused(result, contains=f"the active record carries {NGINX_FULL}")
    assert snapshot(db_path) == before


def test_decommission_of_a_superseded_digest_is_refused(
    record: Record, run: Invoke, db_path: Path
) -> None:
    record(NGINX_FULL)
    record(NGINX_GIT)
    before = snapshot(db_path)
    assert_refused(decommission(run, NGINX_FULL), contains=f"active record carries {NGINX_GIT}")
    assert snapshot(db_path) == before


def test_decommission_is_refused_when_nothing_is_deployed(run: Invoke, db_path: Path) -> None:
    before = snapshot(db_path)
    assert_refused(decommission(run, NGINX_FULL), contains="nothing is deployed there")
    assert snapshot(db_path) == before


def test_decommission_of_another_digest_after_a_decommission_is_refused(
    record: Record, run: Invoke, db_path: Path
) -> None:
    record(NGINX_FULL)
    assert decommission(run, NGINX_FULL).exit_code == 0
    before = snapshot(db_path)
    assert_refused(decommission(run, NGINX_GIT), contains="nothing is deployed there")
    assert snapshot(db_path) == before


# --- decommission without the digest ------------------------------------------------------------


def decommission_slot(run: Invoke, *extra: str, name: str = "api") -> Any:
    return run("deployment", "decommission", "--env", "cluster", "--logical-env", "production",
               "--deployment-name", name, "--kind", "CONTAINER_IMAGE", *extra)  # fmt: skip


def test_decommission_command_ends_what_the_slot_runs(
    ok: Invoke, record: Record, run: Invoke, db_path: Path
) -> None:
    record(NGINX_FULL)
    made = record(NGINX_GIT)["deployment"]  # the slot runs NGINX_GIT now
    result = decommission_slot(run, "-o", "json")
    assert result.exit_code == 0, result.stderr
    body = as_json(result)
    # The shape of record's decommission, through the same rule.
    record(NGINX_FULL, name="web")
    same_rule = as_json(
        ok(
            *record_args("cluster", "production", "web"),
            "--digest",
            NGINX_FULL,
            "--status",
            "decommissioned",
            "-o",
            "json",
        )
    )
    assert list(body) == list(same_rule) == ["action", "deployment", "previous"]
    assert (body["action"], body["previous"]) == ("decommissioned", None)
    assert_deployment_json(body["deployment"])
    assert (body["deployment"]["id"], body["deployment"]["digest"]) == (made["id"], NGINX_GIT)
    stored = rows(db_path)[made["id"]]
    assert (stored["status"], stored["superseded_by"]) == ("decommissioned", None)
    assert stored["ended_at"] >= stored["last_seen_at"]
    table = decommission_slot(run, name="web")
    assert table.stdout.startswith("Deployment ")  # web was decommissioned by record above
    record(NGINX_FULL, name="web")
    table = decommission_slot(run, name="web")
    assert table.exit_code == 0, table.stderr
    assert table.stdout.startswith("Decommissioned deployment ")
    assert "web (CONTAINER_IMAGE) sha256:264f55a6ff9c in cluster/production." in table.stdout


def test_decommission_command_on_a_decommissioned_slot_changes_nothing(
    record: Record, run: Invoke, db_path: Path
) -> None:
    made = record(NGINX_FULL)["deployment"]
    assert decommission_slot(run).exit_code == 0
    before = snapshot(db_path)
    again = decommission_slot(run)
    assert again.exit_code == 0, again.stderr
    assert again.stdout == f"Deployment {made['id']} was already decommissioned: nothing changed.\n"
    assert again.stderr == ""
    body = as_json(decommission_slot(run, "-o", "json"))
    assert (body["action"], body["deployment"]["id"]) == ("unchanged", made["id"])
    assert snapshot(db_path) == before


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            (),
            1,
            "nothing to decommission: api (CONTAINER_IMAGE) in cluster/production has no records",
        ),
        (("--env", "nowhere"), 1, "environment 'nowhere' does not exist"),
        (("--logical-env", "nowhen"), 1, "logical environment 'nowhen' does not exist"),
        (("--kind", "jar"), 2, "--kind"),
        (("--digest", NGINX_FULL), 2, "--digest"),
    ],
)
def test_decommission_command_refusals(
    record: Record, run: Invoke, db_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    record(NGINX_FULL, name="web")  # another slot of the same environment and stage
    before = snapshot(db_path)
    assert_refused(decommission_slot(run, *args), code=code, contains=message)
    assert snapshot(db_path) == before


@pytest.mark.parametrize("digest", [NGINX_FULL, NGINX_GIT])
def test_recording_after_a_decommission_opens_a_new_record(
    record: Record, run: Invoke, db_path: Path, digest: str
) -> None:
    first = record(NGINX_FULL)["deployment"]
    assert decommission(run, NGINX_FULL).exit_code == 0
    result = record(digest)
    assert result["action"] == "created"
    assert result["previous"] is None
    assert result["deployment"]["id"] != first["id"]
    stored = rows(db_path)
    assert stored[first["id"]]["status"] == "decommissioned"
    assert stored[first["id"]]["superseded_by"] is None
    assert stored[result["deployment"]["id"]]["status"] == "deployed"


def test_history_is_never_deleted_and_only_mutable_columns_change(
    ok: Invoke, record: Record, run: Invoke, db_path: Path
) -> None:
    ok("environment", "create", "--name", "other")
    steps = [
        lambda: record(NGINX_FULL),
        lambda: record(NGINX_FULL),  # heartbeat
        lambda: record(NGINX_GIT, env="other"),
        lambda: record(NGINX_GIT),  # supersedes
        lambda: record(NGINX_GIT),  # heartbeat
        lambda: decommission(run, NGINX_GIT),
        lambda: decommission(run, NGINX_GIT),  # unchanged
        lambda: record(NGINX_FULL),  # a new record after the decommission
        lambda: record(NGINX_GIT),  # supersedes again
        lambda: record(NGINX_FULL, env="other"),  # supersedes in the other slot
        lambda: decommission(run, NGINX_FULL),  # refused: NGINX_GIT is active
    ]
    before = rows(db_path)
    for step in steps:
        step()
        after = rows(db_path)
        assert_history_preserved(before, after)
        before = after
    assert len(before) == 6
    assert [r["status"] for r in before.values()].count("deployed") == 2


# --- listing ---------------------------------------------------------------------------------


@pytest.fixture
def dataset(ok: Invoke, record: Record, run: Invoke) -> dict[str, int]:
    """d1 superseded by d2; d3 in staging; d4 a helm chart elsewhere; d5 decommissioned."""
    ok("environment", "create", "--name", "other")
    ids = {
        "d1": record(NGINX_FULL)["deployment"]["id"],
        "d2": record(NGINX_GIT)["deployment"]["id"],
        "d3": record(NGINX_FULL, stage="staging")["deployment"]["id"],
        "d4": record(NGINX_GIT, env="other", name="web", kind="HELM_CHART")["deployment"]["id"],
        "d5": record(NGINX_FULL, env="other", name="worker")["deployment"]["id"],
    }
    record(NGINX_FULL, "--status", "decommissioned", env="other", name="worker")
    return ids


def listed(ok: Invoke, *args: str) -> list[int]:
    return [d["id"] for d in as_json(ok("deployment", "list", *args, "-o", "json"))]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["d4", "d3", "d2"]),
        (("--history",), ["d5", "d4", "d3", "d2", "d1"]),
        (("--env", "cluster"), ["d3", "d2"]),
        (("--env", "other", "--history"), ["d5", "d4"]),
        (("--logical-env", "staging"), ["d3"]),
        (("--logical-env", "production", "--history"), ["d5", "d4", "d2", "d1"]),
        (("--deployment-name", "api", "--history"), ["d3", "d2", "d1"]),
        (("--deployment-name", "worker"), []),
        (("--kind", "HELM_CHART"), ["d4"]),
        (("--kind", "helm_chart"), ["d4"]),
        (("--kind", "container_image", "--history"), ["d5", "d3", "d2", "d1"]),
        (("--digest", NGINX_FULL), ["d3"]),
        (("--digest", NGINX_FULL, "--history"), ["d5", "d3", "d1"]),
        (("--digest", NGINX_GIT.upper().replace("SHA256", "sha256")), ["d4", "d2"]),
        (("--env", "cluster", "--logical-env", "production", "--history"), ["d2", "d1"]),
        (("--limit", "2"), ["d4", "d3"]),
        (("--history", "--limit", "1"), ["d5"]),
        (("--history", "--limit", "100"), ["d5", "d4", "d3", "d2", "d1"]),
    ],
)
def test_list_filters(
    ok: Invoke, dataset: dict[str, int], args: tuple[str, ...], expected: list[str]
) -> None:
    assert listed(ok, *args) == [dataset[name] for name in expected]


def test_list_is_newest_first(ok: Invoke, dataset: dict[str, int]) -> None:
    everything = as_json(ok("deployment", "list", "--history", "-o", "json"))
    stamps = [d["created_at"] for d in everything]
    assert stamps == sorted(stamps, reverse=True)
    assert len(set(stamps)) == len(stamps)


def test_list_json_fields(ok: Invoke, dataset: dict[str, int]) -> None:
    everything = as_json(ok("deployment", "list", "--history", "-o", "json"))
    for item in everything:
        assert_deployment_json(item)
    by_id = {d["id"]: d for d in everything}
    assert by_id[dataset["d1"]]["superseded_by"] == dataset["d2"]
    assert by_id[dataset["d5"]]["status"] == "decommissioned"
    assert by_id[dataset["d4"]]["kind"] == "HELM_CHART"


def test_list_table_columns(ok: Invoke, dataset: dict[str, int]) -> None:
    lines = ok("deployment", "list", "--history").stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == TABLE_COLUMNS
    assert set(lines[1].replace(" ", "")) == {"-"}
    body = lines[2:]
    assert len(body) == 5
    first = re.split(r"\s{2,}", body[0].strip())
    assert first[:4] == [str(dataset["d5"]), "other", "production", "worker"]
    assert first[4] == NGINX_FULL[:19]  # no artifact_ref: the short digest
    assert first[5] == "decommissioned"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", first[6])
    wide = ok("deployment", "list", "--history", "-o", "wide").stdout.splitlines()
    assert re.split(r"\s{2,}", wide[0].strip()) == WIDE_COLUMNS
    first = re.split(r"\s{2,}", wide[2].strip())
    assert first[4:8] == ["CONTAINER_IMAGE", "-", NGINX_FULL, "decommissioned"]


@pytest.mark.parametrize(
    "args",
    [(), ("--history",), ("--env", "cluster", "--deployment-name", "nothing-here")],
)
def test_empty_list(ok: Invoke, args: tuple[str, ...]) -> None:
    assert ok("deployment", "list", *args, "-o", "json").stdout.strip() == "[]"
    table = ok("deployment", "list", *args)
    assert table.stdout == ""
    assert table.stderr.strip() == "No deployments match."


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--env", "nowhere"), 1, "environment 'nowhere' does not exist"),
        (("--logical-env", "nowhen"), 1, "logical environment 'nowhen' does not exist"),
        (("--digest", "sha256:abc"), 2, "at least 8 hex digits"),
        (("--digest", "abc1234"), 2, "at least 8 hex digits"),
        (("--digest", "sha256:xyz12345"), 2, "invalid digest"),
        (("--digest", "sha256:" + "a" * 65), 2, "invalid digest"),
        (("--kind", "jar"), 2, "--kind"),
        (("--limit", "0"), 2, "--limit"),
        (("--limit", "many"), 2, "--limit"),
    ],
)
def test_list_refusals(
    run: Invoke,
    dataset: dict[str, int],
    db_path: Path,
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    before = snapshot(db_path)
    result = run("deployment", "list", *args)
    assert_refused(result, code=code, contains=message)
    assert result.stdout == ""
    assert snapshot(db_path) == before


# --- describe --------------------------------------------------------------------------------


def test_describe_lists_every_attestation_naming_the_digest(ok: Invoke, record: Record) -> None:
    other = "chainloop-with-duplicated-sha.json"  # also names NGINX_FULL
    ok(
        "attestation",
        "import",
        str(attestation(other)),
        "--project",
        "shop",
        "--version",
        "1.2.3",
        "--workflow",
        "release",
    )
    made = record(NGINX_FULL)["deployment"]
    body = as_json(ok("deployment", "describe", str(made["id"]), "-o", "json"))
    assert list(body)[: len(DEPLOYMENT_FIELDS) + 2] == [
        *DEPLOYMENT_FIELDS,
        "supersedes",
        "attestations",
    ]
    assert {"policy", "admission"} <= set(body)  # the admission by a stage policy
    assert body["id"] == made["id"]
    assert body["digest"] == NGINX_FULL
    found = {a["digest"]: a for a in body["attestations"]}
    # The two files that name NGINX_FULL, and not the one that names only NGINX_GIT.
    assert set(found) == {file_digest("chainloop-full.json"), file_digest(other)}
    ours = found[file_digest(other)]
    assert (ours["project"], ours["version"], ours["workflow"]) == ("shop", "1.2.3", "release")
    for att in body["attestations"]:
        assert {"project", "version", "workflow"} <= set(att)
        named = {s["digest"] for s in att["subjects"]} | {m["digest"] for m in att["materials"]}
        assert NGINX_FULL in named

    table = ok("deployment", "describe", str(made["id"])).stdout
    assert "Evidence (2 attestation(s) name this digest)" in table
    for text in ("shop", "1.2.3", "release", NGINX_FULL):
        assert text in table


def test_describe_links_predecessor_and_successor(ok: Invoke, record: Record) -> None:
    first = record(NGINX_FULL)["deployment"]["id"]
    second = record(NGINX_GIT)["deployment"]["id"]
    old = as_json(ok("deployment", "describe", str(first), "-o", "json"))
    new = as_json(ok("deployment", "describe", str(second), "-o", "json"))
    assert (old["supersedes"], old["superseded_by"], old["status"]) == (None, second, "superseded")
    assert (new["supersedes"], new["superseded_by"], new["status"]) == (first, None, "deployed")
    assert RFC3339_US.match(old["ended_at"])
    assert [a["digest"] for a in new["attestations"]] == [
        file_digest("chainloop-with-git-subject.json")
    ]


@pytest.mark.parametrize(
    ("ident", "code", "message"),
    [("999", 1, "no deployment record 999"), ("0", 2, "ID"), ("abc", 2, "ID")],
)
def test_describe_unknown_id_is_refused(
    refuse: Invoke, record: Record, ident: str, code: int, message: str
) -> None:
    record(NGINX_FULL)
    refuse("deployment", "describe", ident, code=code, contains=message)


# --- the installed program -------------------------------------------------------------------


def program(entry_point: str, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the console script with the database given by $DEPLOYTRACK_DB, not --db."""
    env = {**os.environ, "DEPLOYTRACK_DB": str(db)}
    return subprocess.run([entry_point, *args], capture_output=True, text=True, env=env, timeout=60)


def test_program_records_and_supersedes(entry_point: str, tmp_path: Path) -> None:
    db = tmp_path / "own.db"
    steps = [
        (
            "attestation",
            "import",
            str(attestation("chainloop-full.json")),
            str(attestation("chainloop-with-git-subject.json")),
        ),
        ("environment", "create", "--name", "edge", "--type", "server"),
    ]
    for args in steps:
        done = program(entry_point, db, *args)
        assert done.returncode == 0, done.stderr
    slot = record_args("edge", "staging", "proxy", kind="container_image")

    created = program(entry_point, db, *slot, "--digest", NGINX_FULL)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("Recorded deployment 1:")
    beat = program(entry_point, db, *slot, "--digest", NGINX_FULL)
    assert beat.returncode == 0, beat.stderr
    assert beat.stdout.startswith("Heartbeat for deployment 1:")
    superseding = program(entry_point, db, *slot, "--digest", NGINX_GIT)
    assert superseding.returncode == 0, superseding.stderr
    assert "supersedes deployment 1" in superseding.stdout
    assert superseding.stderr == ""

    history = program(entry_point, db, "deployment", "list", "--history", "-o", "json")
    assert history.returncode == 0, history.stderr
    body = json.loads(history.stdout)
    assert [(d["id"], d["status"], d["digest"], d["superseded_by"]) for d in body] == [
        (2, "deployed", NGINX_GIT, None),
        (1, "superseded", NGINX_FULL, 2),
    ]


def test_program_refusals_are_one_error_line(entry_point: str, tmp_path: Path) -> None:
    db = tmp_path / "own.db"
    assert program(entry_point, db, "environment", "create", "--name", "edge").returncode == 0
    before = snapshot(db)
    cases = [
        (
            (*record_args("edge", "production", "proxy"), "--digest", NGINX_FULL),
            1,
            f"Error: {NGINX_FULL} {NOT_IN_STORE}",
        ),
        (
            ("environment", "create", "--name", "Edge"),
            2,
            "Error: Invalid value for '--name': invalid environment name",
        ),
        (
            record_args("edge", "production", "proxy"),
            2,
            "Error: give exactly one of --digest and --oci-ref",
        ),
    ]
    for args, code, start in cases:
        done = program(entry_point, db, *args)
        assert done.returncode == code, (args, done.returncode, done.stderr)
        assert done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(start), lines[0]
        assert "Traceback" not in done.stderr
    assert snapshot(db) == before
