"""Stage policies: one test per rule of the gate in `deployment record`, `policy check`,
the history of policy changes, and what `deployment describe` says about admission.

Evidence is written and signed here (keyutil), never by deploytrack, so the gate is
checked against signatures it did not make.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import (
    INTEGRITY_ERRORS,
    NGINX_FULL,
    Invoke,
    assert_refused,
    attestation,
    query,
    raw,
    snapshot,
)
from helpers import sha256_digest
from keyutil import KeyPair, bundle, cryptography_keys, envelope, signed_envelope, statement

from deploytrack.crypto.keys import load_public_key_file

SLSA = "https://slsa.dev/provenance/v1"
SLSA_02 = "https://slsa.dev/provenance/v0.2"
OURS = "https://deploytrack.dev/attestation/v1"
SPDX = "https://spdx.dev/Document"


def digest_of(text: str) -> str:
    return sha256_digest(text.encode())


APP = digest_of("app 1")
APP2 = digest_of("app 2")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    return cryptography_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def trusted(keys: dict[str, KeyPair]) -> KeyPair:
    return keys["py-ec"]


@pytest.fixture
def other(keys: dict[str, KeyPair]) -> KeyPair:
    return keys["py-ed25519"]


@pytest.fixture
def stage(ok: Invoke) -> None:
    ok("environment", "create", "--name", "cluster")
    ok("environment", "create", "--name", "cluster-2")


class Evidence:
    def __init__(self, ok: Invoke, folder: Path) -> None:
        self.ok = ok
        self.folder = folder
        self.count = 0

    def add(
        self,
        digest: str,
        predicate: str = SLSA,
        signer: KeyPair | None = None,
        in_bundle: bool = False,
    ) -> str:
        payload = statement(digest, predicate_type=predicate)
        data = envelope(payload) if signer is None else signed_envelope(signer.loaded(), payload)
        if in_bundle:
            data = bundle(data)
        self.count += 1
        path = self.folder / f"evidence-{self.count}.json"
        path.write_bytes(data)
        self.ok("attestation", "import", str(path))
        return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def evidence(ok: Invoke, tmp_path: Path) -> Evidence:
    return Evidence(ok, tmp_path)


def record(
    run: Invoke,
    digest: str,
    stage: str = "production",
    env: str = "cluster",
    status: str = "deployed",
    name: str = "api",
) -> Result:
    return run(
        "deployment", "record", "--env", env, "--logical-env", stage, "--deployment-name",
        name, "--kind", "CONTAINER_IMAGE", "--digest", digest, "--status", status, "-o", "json",
    )  # fmt: skip


def recorded(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, (result.output, result.stderr)
    return json.loads(result.stdout)


def set_policy(ok: Invoke, *args: str, name: str = "production") -> dict[str, Any]:
    out = ok("logical-environment", "policy", "set", "--name", name, *args, "-o", "json")
    return json.loads(out.stdout)


def refused(run: Invoke, db_path: Path, digest: str, contains: str, **kw: Any) -> str:
    before = snapshot(db_path)
    result = record(run, digest, **kw)
    assert_refused(result, contains=contains)
    assert snapshot(db_path) == before
    return result.stderr


def describe(ok: Invoke, deployment_id: int) -> dict[str, Any]:
    return json.loads(ok("deployment", "describe", str(deployment_id), "-o", "json").stdout)


def fp(pair: KeyPair) -> str:
    return load_public_key_file(pair.public).fingerprint


# --- the rules ----------------------------------------------------------------------------


def test_without_a_policy_any_known_digest_is_admitted(
    ok: Invoke, run: Invoke, stage: None, evidence: Evidence
) -> None:
    evidence.add(APP)
    made = recorded(record(run, APP))["deployment"]
    assert made["policy_id"] is None
    body = describe(ok, made["id"])
    assert (body["policy"], body["admission"]) == (None, [])
    assert "Admitted by: no stage policy" in ok("deployment", "describe", str(made["id"])).stdout


def test_a_required_predicate_type_must_name_the_digest(
    ok: Invoke, run: Invoke, db_path: Path, stage: None, evidence: Evidence
) -> None:
    evidence.add(APP, predicate=OURS)  # the digest is known, but not by SLSA provenance
    policy = set_policy(ok, "--require-predicate", SLSA)["policy"]
    message = refused(run, db_path, APP, f"no attestation of predicate type {SLSA} names it")
    assert f"stage policy {policy['id']} of production" in message
    slsa = evidence.add(APP)
    made = recorded(record(run, APP))["deployment"]
    assert made["policy_id"] == policy["id"]
    body = describe(ok, made["id"])
    assert body["policy"]["id"] == policy["id"]
    assert body["policy"]["required_predicates"] == [SLSA]
    assert body["admission"] == [
        {
            "requirement": SLSA,
            "attestation": slsa,
            "fingerprint": None,
            "identity": None,
            "issuer": None,
        }
    ]


def test_predicate_types_match_exactly(
    ok: Invoke, run: Invoke, db_path: Path, stage: None, evidence: Evidence
) -> None:
    evidence.add(APP, predicate=SLSA_02)
    evidence.add(APP, predicate=SLSA + "/extra")
    evidence.add(APP, predicate=SLSA.upper())
    set_policy(ok, "--require-predicate", SLSA)
    refused(run, db_path, APP, f"no attestation of predicate type {SLSA} names it")


def test_every_missing_requirement_is_listed_in_one_refusal(
    ok: Invoke, run: Invoke, db_path: Path, stage: None, evidence: Evidence, trusted: KeyPair
) -> None:
    evidence.add(APP, predicate=OURS)  # present but unsigned
    set_policy(ok, "--require-predicate", SLSA, "--require-predicate", SPDX,
               "--require-predicate", OURS, "--trusted-key", str(trusted.public))  # fmt: skip
    message = refused(run, db_path, APP, "refuses " + APP)
    assert f"no attestation of predicate type {SLSA} names it" in message
    assert f"no attestation of predicate type {SPDX} names it" in message
    assert (
        f"none of the 1 attestation(s) of predicate type {OURS} naming it verifies with a "
        f"trusted key ({fp(trusted)})"
    ) in message


def test_a_material_naming_the_digest_counts(
    ok: Invoke, run: Invoke, db_path: Path, stage: None
) -> None:
    """chainloop-full.json names NGINX_FULL as a CONTAINER_IMAGE material, not a subject."""
    ok("attestation", "import", str(attestation("chainloop-full.json")))
    set_policy(ok, "--require-predicate", "chainloop.dev/attestation/v0.2")
    recorded(record(run, NGINX_FULL))
    set_policy(ok, "--require-predicate", SLSA)
    refused(run, db_path, NGINX_FULL, "no attestation of predicate type", env="cluster-2")


def test_with_trusted_keys_the_required_attestation_must_be_signed_by_one(
    ok: Invoke,
    run: Invoke,
    db_path: Path,
    stage: None,
    evidence: Evidence,
    trusted: KeyPair,
    other: KeyPair,
    keys: dict[str, KeyPair],
) -> None:
    set_policy(ok, "--require-predicate", SLSA, "--trusted-key", str(trusted.public),
               "--trusted-key", str(keys["py-rsa"].public))  # fmt: skip
    evidence.add(APP)  # unsigned
    refused(run, db_path, APP, "none of the 1 attestation(s) of predicate type")
    evidence.add(APP, signer=other)  # signed, by a key the policy does not trust
    refused(run, db_path, APP, "none of the 2 attestation(s) of predicate type")
    evidence.add(APP, predicate=OURS, signer=trusted)  # trusted, but not the required type
    refused(run, db_path, APP, "none of the 2 attestation(s) of predicate type")
    good = evidence.add(APP, signer=trusted, in_bundle=True)  # inside a Sigstore bundle
    made = recorded(record(run, APP))["deployment"]
    body = describe(ok, made["id"])
    assert body["admission"] == [
        {
            "requirement": SLSA,
            "attestation": good,
            "fingerprint": fp(trusted),
            "identity": None,
            "issuer": None,
        }
    ]
    assert {k["fingerprint"] for k in body["policy"]["trusted_keys"]} == {
        fp(trusted),
        fp(keys["py-rsa"]),
    }
    # The admission verified the signature: it is remembered on the attestation.
    [ours] = [a for a in body["attestations"] if a["digest"] == good]
    assert [(v["fingerprint"], v["source"]) for v in ours["verifications"]] == [
        (fp(trusted), "admission")
    ]
    text = ok("deployment", "describe", str(made["id"])).stdout
    assert f"Admitted by: stage policy {made['policy_id']} of production, set " in text
    assert f"{SLSA}: attestation {good}, verified with {fp(trusted)}" in text


def test_each_required_predicate_needs_its_own_signed_attestation(
    ok: Invoke, run: Invoke, db_path: Path, stage: None, evidence: Evidence, trusted: KeyPair
) -> None:
    set_policy(ok, "--require-predicate", SLSA, "--require-predicate", OURS,
               "--trusted-key", str(trusted.public))  # fmt: skip
    evidence.add(APP, signer=trusted)
    evidence.add(APP, predicate=OURS)
    message = refused(run, db_path, APP, f"of predicate type {OURS} naming it verifies")
    assert f"predicate type {SLSA}" not in message
    ours = evidence.add(APP, predicate=OURS, signer=trusted)
    made = recorded(record(run, APP))["deployment"]
    # Predicate types are kept sorted; one admission row per requirement.
    admitted = {a["requirement"]: a["attestation"] for a in describe(ok, made["id"])["admission"]}
    assert list(admitted) == sorted([SLSA, OURS])
    assert admitted[OURS] == ours


def test_trusted_keys_without_predicates_need_any_signed_attestation(
    ok: Invoke, run: Invoke, db_path: Path, stage: None, evidence: Evidence, trusted: KeyPair
) -> None:
    set_policy(ok, "--trusted-key", str(trusted.public))
    evidence.add(APP)
    evidence.add(APP, predicate=OURS)
    refused(run, db_path, APP, "none of the 2 attestation(s) naming it verifies with a trusted")
    good = evidence.add(APP, predicate="https://example.com/anything/v1", signer=trusted)
    made = recorded(record(run, APP))["deployment"]
    assert describe(ok, made["id"])["admission"] == [
        {
            "requirement": "",
            "attestation": good,
            "fingerprint": fp(trusted),
            "identity": None,
            "issuer": None,
        }
    ]


def test_gate_verifies_stored_bytes_now_not_remembered_results(
    ok: Invoke,
    run: Invoke,
    db_path: Path,
    stage: None,
    evidence: Evidence,
    trusted: KeyPair,
    other: KeyPair,
) -> None:
    signed = evidence.add(APP, signer=trusted)
    ok("attestation", "verify", signed, "--key", str(trusted.public))  # remembered
    set_policy(ok, "--require-predicate", SLSA, "--trusted-key", str(trusted.public))
    recorded(record(run, APP))
    # The key is removed from the policy: the remembered verification admits nothing.
    set_policy(ok, "--require-predicate", SLSA, "--trusted-key", str(other.public))
    refused(run, db_path, APP, f"verifies with a trusted key ({fp(other)})", env="cluster-2")
    check = run("policy", "check", "--logical-env", "production", "--digest", APP)
    assert_refused(check, contains="verifies with a trusted key")


def test_policy_applies_in_every_environment_of_its_stage_only(
    ok: Invoke, run: Invoke, db_path: Path, stage: None, evidence: Evidence
) -> None:
    evidence.add(APP, predicate=OURS)
    set_policy(ok, "--require-predicate", SLSA)
    for env in ("cluster", "cluster-2"):
        refused(run, db_path, APP, "no attestation of predicate type", env=env)
    for other_stage in ("staging", "development"):
        assert recorded(record(run, APP, stage=other_stage))["deployment"]["policy_id"] is None


def test_a_heartbeat_is_not_a_new_admission(
    ok: Invoke, run: Invoke, db_path: Path, stage: None, evidence: Evidence
) -> None:
    evidence.add(APP, predicate=OURS)
    evidence.add(APP2, predicate=OURS)
    first = recorded(record(run, APP))["deployment"]
    set_policy(ok, "--require-predicate", SLSA)  # set after APP was deployed
    beat = recorded(record(run, APP))
    assert beat["action"] == "heartbeat"
    assert beat["deployment"]["id"] == first["id"]
    assert beat["deployment"]["policy_id"] is None
    # A new digest at the slot is a new admission: refused, and the active record stays.
    refused(run, db_path, APP2, "no attestation of predicate type")
    assert recorded(record(run, APP))["action"] == "heartbeat"


def test_decommissioning_is_never_blocked(
    ok: Invoke, run: Invoke, stage: None, evidence: Evidence, trusted: KeyPair
) -> None:
    evidence.add(APP, predicate=OURS)
    recorded(record(run, APP))
    set_policy(ok, "--require-predicate", SLSA, "--trusted-key", str(trusted.public))
    ended = recorded(record(run, APP, status="decommissioned"))
    assert ended["action"] == "decommissioned"
    assert recorded(record(run, APP, status="decommissioned"))["action"] == "unchanged"


# --- policy check -------------------------------------------------------------------------


def test_policy_check_answers_without_recording(
    ok: Invoke, run: Invoke, db_path: Path, stage: None, evidence: Evidence, trusted: KeyPair
) -> None:
    evidence.add(APP, predicate=OURS)
    before = snapshot(db_path)
    free = run("policy", "check", "--logical-env", "production", "--digest", APP)
    assert free.exit_code == 0 and free.stdout.startswith("PASS: production has no stage policy")
    unknown = run("policy", "check", "--logical-env", "staging", "--digest", APP2)
    assert_refused(unknown, contains="not in the evidence store")
    assert snapshot(db_path) == before

    set_policy(ok, "--require-predicate", SLSA, "--trusted-key", str(trusted.public))
    before = snapshot(db_path)
    failed = run("policy", "check", "--logical-env", "production", "--digest", APP, "-o", "json")
    assert failed.exit_code == 1
    body = json.loads(failed.stdout)
    assert (body["passed"], body["digest"], body["admission"]) == (False, APP, [])
    assert body["reasons"] == [f"no attestation of predicate type {SLSA} names it"]
    assert body["policy"]["required_predicates"] == [SLSA]
    assert failed.stderr.startswith("Error: stage policy ") and len(failed.stderr.splitlines()) == 1
    signed = evidence.add(APP, signer=trusted)
    before = snapshot(db_path)
    passed = run("policy", "check", "--logical-env", "production", "--digest", APP, "-o", "json")
    assert passed.exit_code == 0
    assert json.loads(passed.stdout)["admission"] == [
        {
            "requirement": SLSA,
            "attestation": signed,
            "fingerprint": fp(trusted),
            "identity": None,
            "issuer": None,
        }
    ]
    text = run("policy", "check", "--logical-env", "production", "--digest", APP)
    assert text.exit_code == 0 and text.stdout.startswith("PASS: stage policy")
    assert snapshot(db_path) == before  # nothing recorded, not even a verification
    # The same answer as the gate.
    recorded(record(run, APP))


def test_policy_check_offline_oci_layout_and_usage(
    ok: Invoke, run: Invoke, stage: None, evidence: Evidence
) -> None:
    layout = Path(__file__).parent.parent / "demo" / "oci-layout"
    ok(
        "attestation",
        "import",
        str(layout.parent / "attestations" / "api-server-1.0.0.provenance.json"),
    )
    set_policy(ok, "--require-predicate", SLSA)
    result = run("policy", "check", "--logical-env", "production", "--oci-ref",
                 f"oci:{layout}:1.0.0")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert_refused(run("policy", "check", "--logical-env", "production"), code=2,
                   contains="exactly one of --digest and --oci-ref")  # fmt: skip
    assert_refused(run("policy", "check", "--logical-env", "nowhere", "--digest", APP),
                   contains="logical environment 'nowhere' does not exist")  # fmt: skip
    assert_refused(run("policy", "check", "--logical-env", "production", "--digest", "sha256:1"),
                   code=2, contains="invalid digest")  # fmt: skip


def test_policy_check_through_the_entry_point(entry_point: str, tmp_path: Path) -> None:
    db = str(tmp_path / "ep.db")
    path = tmp_path / "s.json"
    path.write_bytes(statement(APP))
    subprocess.run([entry_point, "--db", db, "attestation", "import", str(path)], check=True)
    subprocess.run(
        [entry_point, "--db", db, "logical-environment", "policy", "set", "--name", "production",
         "--require-predicate", OURS], check=True, capture_output=True,
    )  # fmt: skip
    check = [entry_point, "--db", db, "policy", "check", "--digest", APP, "--logical-env"]
    assert subprocess.run([*check, "staging"], capture_output=True).returncode == 0
    failed = subprocess.run([*check, "production"], capture_output=True, text=True)
    assert failed.returncode == 1
    assert failed.stderr.startswith("Error: stage policy") and failed.stderr[-1] == "\n"


# --- history and display ------------------------------------------------------------------


def test_every_policy_change_is_kept_with_its_time(
    ok: Invoke, run: Invoke, db_path: Path, trusted: KeyPair, other: KeyPair
) -> None:
    first = set_policy(ok, "--require-predicate", SLSA)
    assert first["changed"] is True
    same = set_policy(ok, "--require-predicate", SLSA)
    assert (same["changed"], same["policy"]["id"]) == (False, first["policy"]["id"])
    second = set_policy(ok, "--require-predicate", SLSA, "--trusted-key", str(trusted.public),
                        "--trusted-key", str(other.public))  # fmt: skip
    cleared = json.loads(
        ok("logical-environment", "policy", "clear", "--name", "production", "-o", "json").stdout
    )
    assert cleared["changed"] is True and cleared["policy"]["action"] == "clear"
    again = ok("logical-environment", "policy", "clear", "--name", "production")
    assert again.stdout == "No stage policy on production: nothing to clear.\n"
    shown = json.loads(
        ok("logical-environment", "policy", "show", "--name", "production", "-o", "json").stdout
    )
    assert shown["policy"] is None
    history = shown["history"]
    assert [(v["id"], v["action"]) for v in history] == [
        (first["policy"]["id"], "set"),
        (second["policy"]["id"], "set"),
        (cleared["policy"]["id"], "clear"),
    ]
    assert [len(v["trusted_keys"]) for v in history] == [0, 2, 0]
    times = [v["created_at"] for v in history]
    assert times == sorted(times)
    rows = query(db_path, "SELECT action, required_predicates FROM stage_policy ORDER BY id")
    assert [r["action"] for r in rows] == ["set", "set", "clear"]
    text = ok("logical-environment", "policy", "show", "--name", "production").stdout
    assert text.startswith("No stage policy on production")
    assert "History:" in text and fp(trusted) in text
    # Another stage has its own (empty) history.
    empty = json.loads(
        ok("logical-environment", "policy", "show", "--name", "staging", "-o", "json").stdout
    )
    assert (empty["policy"], empty["history"]) == (None, [])


def test_describe_names_the_policy_version_that_admitted_the_record(
    ok: Invoke, run: Invoke, stage: None, evidence: Evidence
) -> None:
    evidence.add(APP)
    admitting = set_policy(ok, "--require-predicate", SLSA)["policy"]
    made = recorded(record(run, APP))["deployment"]
    set_policy(ok, "--require-predicate", SLSA, "--require-predicate", OURS)
    ok("logical-environment", "policy", "clear", "--name", "production")
    body = describe(ok, made["id"])
    assert body["policy_id"] == admitting["id"]
    assert body["policy"] == admitting  # the version then, not the policy now
    text = ok("deployment", "describe", str(made["id"])).stdout
    stamp = admitting["created_at"][:19] + "Z"
    assert f"Admitted by: stage policy {admitting['id']} of production, set {stamp}" in text


def test_policy_set_refusals(
    ok: Invoke, run: Invoke, db_path: Path, trusted: KeyPair, tmp_path: Path
) -> None:
    ok("environment", "list")
    before = snapshot(db_path)
    base = ("logical-environment", "policy", "set")
    assert_refused(run(*base, "--name", "production"), code=2, contains="--require-predicate")
    result = run(*base, "--name", "production", "--trusted-key", str(trusted.private))
    assert_refused(result, contains="is a private key: give its public key")
    body = [line for line in trusted.private.read_text().splitlines() if "-----" not in line]
    assert not any(line in result.output + result.stderr for line in body)
    assert_refused(run(*base, "--name", "nowhere", "--require-predicate", SLSA),
                   contains="logical environment 'nowhere' does not exist")  # fmt: skip
    assert_refused(run(*base, "--name", "production", "--require-predicate", "has space"),
                   contains="invalid predicate type")  # fmt: skip
    assert_refused(run(*base, "--name", "production", "--trusted-key", str(tmp_path / "no.pub")),
                   contains="cannot read public key")  # fmt: skip
    assert_refused(run("logical-environment", "policy", "show", "--name", "nowhere"),
                   contains="does not exist")  # fmt: skip
    assert snapshot(db_path) == before


# --- the schema keeps the rules too -------------------------------------------------------


def _insert_deployment(db_path: Path, policy_id: int | None) -> None:
    conn = raw(db_path)
    try:
        env = conn.execute("SELECT id FROM environment WHERE name = 'cluster'").fetchone()[0]
        stage = conn.execute(
            "SELECT id FROM logical_environment WHERE name = 'production'"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO deployment (environment_id, logical_environment_id, deployment_name, "
            "kind, digest, status, created_at, last_seen_at, policy_id) "
            "VALUES (?, ?, 'raw', 'CONTAINER_IMAGE', ?, 'deployed', 1, 1, ?)",
            (env, stage, APP, policy_id),
        )
        conn.commit()
    finally:
        conn.close()


def test_schema_refuses_records_that_skip_the_gate(
    ok: Invoke, run: Invoke, db_path: Path, stage: None, evidence: Evidence, trusted: KeyPair
) -> None:
    evidence.add(APP, signer=trusted)
    policy = set_policy(ok, "--require-predicate", SLSA, "--trusted-key", str(trusted.public))[
        "policy"
    ]
    before = snapshot(db_path)
    for wrong in (None, policy["id"] + 1):
        with pytest.raises(INTEGRITY_ERRORS, match="must name the stage policy in force"):
            _insert_deployment(db_path, wrong)
    assert snapshot(db_path) == before
    made = recorded(record(run, APP))["deployment"]
    conn = raw(db_path)
    try:
        with pytest.raises(INTEGRITY_ERRORS, match="immutable history"):
            conn.execute("UPDATE deployment SET policy_id = NULL WHERE id = ?", (made["id"],))
        for sql in (
            "UPDATE stage_policy SET required_predicates = '[]'",
            "DELETE FROM stage_policy",
            "DELETE FROM stage_policy_key",
            "UPDATE stage_policy_key SET public_key_id = 0",
            "DELETE FROM deployment_admission",
            "UPDATE deployment_admission SET requirement = 'x'",
        ):
            with pytest.raises(INTEGRITY_ERRORS, match="trust history"):
                conn.execute(sql)
    finally:
        conn.close()


def test_a_stage_with_policy_history_cannot_be_deleted(refuse: Invoke, ok: Invoke) -> None:
    ok("logical-environment", "create", "--name", "canary")
    set_policy(ok, "--require-predicate", SLSA, name="canary")
    ok("logical-environment", "policy", "clear", "--name", "canary")
    refuse(
        "logical-environment",
        "delete",
        "--name",
        "canary",
        contains="stage policy history, which is never deleted",
    )
    ok("logical-environment", "create", "--name", "fresh")
    ok("logical-environment", "delete", "--name", "fresh")  # no history: it can go
