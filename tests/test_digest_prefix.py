"""A unique prefix of 8+ hex digits finds a digest wherever one is looked up
(`deployment list --digest`, `deployment describe --digest`, `attestation list --digest`,
`attestation describe`, `artifact download --digest`, `discover`), through one function,
by an index range scan. Writes keep requiring the whole digest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Invoke, assert_refused, snapshot
from helpers import intoto_statement, record_args

from deploytrack.services import evidence
from deploytrack.store import open_store
from deploytrack.store.models import (
    Attestation,
    AttestationMaterial,
    AttestationSubject,
    Blob,
    Deployment,
)

SHARED = "abcd1234"  # the first 8 hex digits of SIBLINGS
SIBLINGS = [f"sha256:{SHARED}{n:056x}" for n in range(1, 8)]  # seven digests, one prefix
LONE = "sha256:" + "5678ef90" * 8  # the only digest starting with 5678ef90
KIND = "CONTAINER_IMAGE"


def statement(path: Path, digests: list[str]) -> Path:
    subjects = ((f"app-{i}", d) for i, d in enumerate(digests))
    path.write_text(json.dumps(intoto_statement(subjects, "https://example.com/build/v1")))
    return path


@pytest.fixture(autouse=True)
def estate(ok: Invoke, tmp_path: Path) -> str:
    """Every digest attested by one statement; returns the statement's own digest."""
    imported = ok(
        "attestation", "import", str(statement(tmp_path / "s.json", [*SIBLINGS, LONE])), "-o",
        "json",
    )  # fmt: skip
    ok("environment", "create", "--name", "cluster")
    return json.loads(imported.stdout)[0]["attestation"]["digest"]


def rec(ok: Invoke, digest: str, name: str = "api", stage: str = "production", *extra: str) -> Any:
    out = ok(*record_args("cluster", stage, name, KIND), "--digest", digest, *extra, "-o", "json")
    return json.loads(out.stdout)["deployment"]


def listed(ok: Invoke, *args: str) -> list[dict[str, Any]]:
    return json.loads(ok("deployment", "list", *args, "-o", "json").stdout)


# --- deployment list / describe --------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    ["5678ef90", "sha256:5678ef90", "SHA256:5678EF90", "5678ef90" * 3, LONE, LONE.upper()],
)
def test_deployment_list_by_prefix(ok: Invoke, form: str) -> None:
    made = rec(ok, LONE)
    rec(ok, SIBLINGS[0], "web")
    assert [r["id"] for r in listed(ok, "--digest", form)] == [made["id"]]
    assert [r["id"] for r in listed(ok, "--digest", form, "--history")] == [made["id"]]


def test_a_prefix_is_unique_among_the_digests_the_command_looks_at(ok: Invoke) -> None:
    # Seven attested digests start with SHARED, but only one was ever deployed.
    made = rec(ok, SIBLINGS[3])
    assert [r["digest"] for r in listed(ok, "--digest", SHARED)] == [made["digest"]]
    # A prefix no record has lists nothing, as a whole digest no record has does.
    assert listed(ok, "--digest", "00000000") == []
    assert listed(ok, "--digest", "sha256:" + "0" * 64) == []


def test_an_ambiguous_prefix_is_refused_with_its_candidates(
    ok: Invoke, run: Invoke, db_path: Path
) -> None:
    rec(ok, SIBLINGS[0], "api")
    rec(ok, SIBLINGS[1], "web")
    before = snapshot(db_path)
    for args in (("deployment", "list", "--digest", SHARED),
                 ("deployment", "describe", "--digest", SHARED)):  # fmt: skip
        result = run(*args)
        assert_refused(result, contains=f"'sha256:{SHARED}' matches 2 deployed digests")
        assert SIBLINGS[0] in result.stderr and SIBLINGS[1] in result.stderr
        assert "give more digits" in result.stderr
        assert result.stdout == ""
    assert snapshot(db_path) == before


def test_the_candidates_are_bounded(ok: Invoke, run: Invoke) -> None:
    for n, digest in enumerate(SIBLINGS):
        rec(ok, digest, f"app-{n}")
    result = run("deployment", "list", "--digest", "sha256:" + SHARED)
    assert_refused(result, contains="matches 7 deployed digests")
    shown = [d for d in SIBLINGS if d in result.stderr]
    assert shown == SIBLINGS[:5]  # the first five, sorted, and a count of the rest
    assert "and 2 more; give more digits" in result.stderr


def test_describe_by_digest_is_the_active_record_running_it(ok: Invoke) -> None:
    first = rec(ok, LONE)
    rec(ok, SIBLINGS[0])  # supersedes: LONE runs nowhere now
    second = rec(ok, LONE, "api", "staging")
    by_id = json.loads(ok("deployment", "describe", str(second["id"]), "-o", "json").stdout)
    for form in ("5678ef90", LONE):
        found = ok("deployment", "describe", "--digest", form, "-o", "json").stdout
        assert json.loads(found) == by_id
    table = ok("deployment", "describe", "--digest", "5678ef90").stdout
    assert table == ok("deployment", "describe", str(second["id"])).stdout
    assert first["id"] != second["id"]


def test_describe_by_digest_refuses_several_or_no_active_records(
    ok: Invoke, run: Invoke, db_path: Path
) -> None:
    a = rec(ok, LONE, "api", "staging")
    b = rec(ok, LONE, "api", "production")
    before = snapshot(db_path)
    result = run("deployment", "describe", "--digest", "5678ef90")
    assert_refused(result, contains=f"{LONE} runs in 2 slots: {b['id']} (api ({KIND}) in "
                   f"cluster/production, deployed), {a['id']} (api")  # fmt: skip
    assert "deploytrack deployment describe ID" in result.stderr
    assert snapshot(db_path) == before
    for stage in ("staging", "production"):
        rec(ok, LONE, "api", stage, "--status", "decommissioned")
    before = snapshot(db_path)
    result = run("deployment", "describe", "--digest", LONE)
    assert_refused(result, contains=f"{LONE} runs nowhere now; its 2 earlier record(s): {b['id']}")
    assert_refused(
        run("deployment", "describe", "--digest", SIBLINGS[2]), contains="no deployment record"
    )
    nothing = "no deployment record carries a digest starting with 'sha256:00000000'"
    assert_refused(run("deployment", "describe", "--digest", "00000000"), contains=nothing)
    assert snapshot(db_path) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give exactly one of ID and --digest"),
        (("1", "--digest", LONE), "give exactly one of ID and --digest"),
    ],
)
def test_describe_takes_an_id_or_a_digest(
    refuse: Invoke, ok: Invoke, args: tuple[str, ...], message: str
) -> None:
    rec(ok, LONE)
    refuse("deployment", "describe", *args, code=2, contains=message)


# --- the evidence store and discover ---------------------------------------------------------


def test_attestation_list_and_describe_by_prefix(ok: Invoke, estate: str) -> None:
    names = json.loads(ok("attestation", "list", "--digest", "5678ef90", "-o", "json").stdout)
    assert [a["digest"] for a in names] == [estate]
    own = estate.removeprefix("sha256:")[:10]
    described = json.loads(ok("attestation", "describe", own, "-o", "json").stdout)
    assert described["digest"] == estate


def test_attestation_list_refuses_an_ambiguous_prefix(run: Invoke) -> None:
    result = run("attestation", "list", "--digest", SHARED)
    assert_refused(result, contains="matches 7 named digests")


def test_artifact_download_by_prefix(ok: Invoke, tmp_path: Path, estate: str) -> None:
    data = ok("artifact", "download", "--digest", estate[:15]).stdout_bytes
    assert data == (tmp_path / "s.json").read_bytes()


def test_discover_by_prefix(ok: Invoke, run: Invoke, estate: str) -> None:
    rec(ok, LONE)
    found = json.loads(ok("discover", "5678ef90", "-o", "json").stdout)
    assert found["digest"] == LONE and len(found["deployments"]) == 1
    itself = json.loads(ok("discover", estate[:16], "-o", "json").stdout)
    assert itself["digest"] == estate and itself["attestation"] is not None
    assert_refused(run("discover", SHARED), contains="matches 7 digests")
    assert_refused(run("discover", "00000000"), contains="starting with 'sha256:00000000'")


SHORT = ["1234567", "sha256:abcd123", "abc"]
LOOKUPS = [
    ("deployment", "list", "--digest"),
    ("deployment", "describe", "--digest"),
    ("attestation", "list", "--digest"),
    ("attestation", "describe"),
    ("artifact", "download", "--digest"),
    ("discover",),
]


@pytest.mark.parametrize("command", LOOKUPS, ids=[" ".join(c) for c in LOOKUPS])
@pytest.mark.parametrize("value", SHORT)
def test_fewer_than_8_hex_digits_is_a_usage_error(
    refuse: Invoke, command: tuple[str, ...], value: str
) -> None:
    refuse(*command, value, code=2, contains="at least 8 hex digits")


@pytest.mark.parametrize("value", SHORT)
def test_attestation_verify_checks_its_prefix_before_anything(
    refuse: Invoke, tmp_path: Path, value: str
) -> None:
    key = tmp_path / "key.pub"
    key.write_text("not read: the digest is refused first\n")
    refuse(
        "attestation", "verify", value, "--key", str(key), code=2, contains="at least 8 hex digits"
    )


def test_writes_keep_requiring_the_whole_digest(ok: Invoke, run: Invoke, db_path: Path) -> None:
    """A prefix is a usage error on a write: what is recorded is never a guess."""
    rec(ok, LONE)
    before = snapshot(db_path)
    where = ("--env", "cluster", "--logical-env", "production", "--kind", KIND)
    for status in ("deployed", "decommissioned"):
        result = run("deployment", "record", *where, "--deployment-name", "api",
                     "--digest", LONE[:15], "--status", status)  # fmt: skip
        assert_refused(result, code=2, contains="sha256:<64 hex digits>")
    result = run("policy", "check", "--logical-env", "production", "--digest", LONE[:15])
    assert_refused(result, code=2, contains="sha256:<64 hex digits>")
    assert snapshot(db_path) == before


# --- one function, index range scans ---------------------------------------------------------

COLUMNS = {
    "deployment": [Deployment.digest],
    "named": [AttestationSubject.digest, AttestationMaterial.digest],
    "everything": [
        AttestationSubject.digest,
        AttestationMaterial.digest,
        Deployment.digest,
        Attestation.digest,
        Blob.digest,
    ],
}


@pytest.mark.sqlite_only(reason="reads SQLite's query plans (EXPLAIN QUERY PLAN)")
@pytest.mark.parametrize("columns", COLUMNS.values(), ids=COLUMNS.keys())
def test_prefix_lookups_are_index_range_scans(ok: Invoke, db_path: Path, columns: list) -> None:
    """Every statement a lookup runs, ambiguous (the count too) or not, reads an index
    range: no plan scans a table, however long the history."""
    for n, digest in enumerate(SIBLINGS):
        rec(ok, digest, f"app-{n}")
    store = open_store(db_path)
    statements: list[str] = []
    store.db.connection().set_trace_callback(statements.append)
    try:
        with store.read():
            assert evidence.resolve_digest("5678ef90", columns) in (LONE, None)
            with pytest.raises(evidence.ServiceError, match="matches 7"):
                evidence.resolve_digest(SHARED, columns)
        store.db.connection().set_trace_callback(None)
        lookups = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(lookups) >= 2 * len(columns) + 1  # each column twice, and the count
        for sql in lookups:
            plan = [row[3] for row in store.db.execute_sql("EXPLAIN QUERY PLAN " + sql)]
            # Only the count's union of those ranges (a co-routine) is scanned, never a table.
            unions = {step.removeprefix("CO-ROUTINE ") for step in plan if "CO-ROUTINE" in step}
            scans = {step.removeprefix("SCAN ") for step in plan if step.startswith("SCAN")}
            assert scans <= unions, plan
            assert any("(digest>? AND digest<?)" in step for step in plan), (sql, plan)
    finally:
        store.db.connection().set_trace_callback(None)
        store.close()
