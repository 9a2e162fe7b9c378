"""`discover DIGEST` (the referrer index) and `project list|describe`, on real Chainloop
attestations and on evidence built by `attestation create`. Expected names, kinds and
digests are read here from the fixture files themselves."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import NGINX_FULL, NGINX_GIT, Invoke, assert_refused, attestation
from helpers import sha256_digest

FULL = attestation("chainloop-full.json")
DUPLICATED = attestation("chainloop-with-duplicated-sha.json")
GIT = attestation("chainloop-with-git-subject.json")
SLSA = attestation("sigstore-conformance-statement.json")
DISCOVERY_FIELDS = [
    "digest",
    "kinds",
    "kind",
    "ambiguous",
    "names",
    "stored_bytes",
    "referenced_by",
    "attestation",
    "deployments",
]


def payload(path: Path) -> dict[str, Any]:
    return json.loads(base64.b64decode(json.loads(path.read_bytes())["payload"]))


def discover(ok: Invoke, digest: str, *extra: str) -> dict[str, Any]:
    return json.loads(ok("discover", digest, *extra, "-o", "json").stdout)


def record(ok: Invoke, digest: str, stage: str = "production", name: str = "api") -> int:
    out = ok(
        "deployment", "record", "--env", "cluster", "--logical-env", stage, "--deployment-name",
        name, "--kind", "CONTAINER_IMAGE", "--digest", digest, "-o", "json",
    )  # fmt: skip
    return json.loads(out.stdout)["deployment"]["id"]


def test_what_a_digest_is_who_names_it_and_where_it_runs(ok: Invoke) -> None:
    ok("attestation", "import", str(FULL), str(GIT))
    ok("environment", "create", "--name", "cluster")
    deployment = record(ok, NGINX_FULL)
    found = discover(ok, NGINX_FULL)
    assert list(found) == DISCOVERY_FIELDS
    materials = payload(FULL)["predicate"]["materials"]
    [image] = [m for m in materials if m["digest"]["sha256"] == NGINX_FULL[7:]]
    assert (found["kinds"], found["kind"], found["ambiguous"]) == (
        ["CONTAINER_IMAGE"],
        "CONTAINER_IMAGE",
        False,
    )
    assert found["names"] == [image["name"]]
    assert found["stored_bytes"] is None and found["attestation"] is None
    [ref] = found["referenced_by"]
    assert ref["attestation"] == sha256_digest(FULL.read_bytes())
    assert ref["predicate_type"] == payload(FULL)["predicateType"]
    metadata = payload(FULL)["predicate"]["metadata"]
    assert (ref["project"], ref["workflow"]) == (metadata["project"], metadata["name"])
    assert ref["roles"] == [{"role": "material", "name": image["name"], "kind": "CONTAINER_IMAGE"}]
    assert ref["verified_by"] == []
    assert [(d["id"], d["status"]) for d in found["deployments"]] == [(deployment, "deployed")]
    text = ok("discover", NGINX_FULL).stdout
    assert text.startswith(NGINX_FULL + "\n")
    for part in ("kind: CONTAINER_IMAGE", "referenced by 1 attestation(s)",
                 sha256_digest(FULL.read_bytes()),
                 f"deployment {deployment}: api (CONTAINER_IMAGE) in cluster/production, "
                 "deployed since"):  # fmt: skip
        assert part in text


def test_one_digest_under_two_kinds_is_ambiguous_unless_kind_picks(ok: Invoke, run: Invoke) -> None:
    ok("attestation", "import", str(DUPLICATED))
    found = discover(ok, NGINX_FULL)
    assert found["ambiguous"] is True and found["kind"] is None
    assert sorted(found["kinds"]) == ["CONTAINER_IMAGE", "SBOM_CYCLONEDX_JSON"]
    [ref] = found["referenced_by"]
    assert sorted(r["kind"] for r in ref["roles"]) == ["CONTAINER_IMAGE", "SBOM_CYCLONEDX_JSON"]
    assert "ambiguous: seen as" in ok("discover", NGINX_FULL).stdout
    picked = discover(ok, NGINX_FULL, "--kind", "sbom_cyclonedx_json")
    assert (picked["ambiguous"], picked["kind"]) == (False, "SBOM_CYCLONEDX_JSON")
    assert [r["name"] for r in picked["referenced_by"][0]["roles"]] == ["sbom-with-same-digest"]
    assert_refused(
        run("discover", NGINX_FULL, "--kind", "HELM_CHART"),
        contains="was never seen as HELM_CHART; seen as: CONTAINER_IMAGE, SBOM_CYCLONEDX_JSON",
    )


def test_an_attestation_lists_every_digest_it_references(ok: Invoke) -> None:
    ok("attestation", "import", str(GIT))
    digest = sha256_digest(GIT.read_bytes())
    found = discover(ok, digest)
    assert (found["kinds"], found["kind"]) == (["ATTESTATION"], "ATTESTATION")
    assert found["stored_bytes"] == len(GIT.read_bytes())
    statement = payload(GIT)
    subjects = {f"{a}:{v}" for s in statement["subject"] for a, v in s["digest"].items()}
    materials = {
        f"{a}:{v}"
        for m in statement["predicate"]["materials"]
        for a, v in (m.get("digest") or {}).items()
    }
    att = found["attestation"]
    assert {s["digest"] for s in att["subjects"]} == subjects
    assert {m["digest"] for m in att["materials"] if m["digest"]} == materials
    text = ok("discover", digest).stdout
    assert "it is an attestation (dsse" in text
    for each in subjects:
        assert f"subject {each}" in text
    # The git commit subject (sha1) is found by its own digest too.
    [git] = [d for d in subjects if d.startswith("sha1:")]
    assert discover(ok, git)["referenced_by"][0]["attestation"] == digest


def test_a_subject_of_slsa_provenance_has_no_kind_until_deployed(ok: Invoke) -> None:
    ok("attestation", "import", str(SLSA))
    subject = json.loads(SLSA.read_bytes())["subject"][0]
    digest = "sha256:" + subject["digest"]["sha256"]
    found = discover(ok, digest)
    assert (found["kinds"], found["kind"]) == ([], None)
    assert found["referenced_by"][0]["roles"] == [
        {"role": "subject", "name": subject["name"], "kind": None}
    ]
    assert "only ever a subject" in ok("discover", digest).stdout


def test_material_files_of_created_attestations(ok: Invoke, tmp_path: Path) -> None:
    sbom = tmp_path / "bom.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5"}))
    app = tmp_path / "app.bin"
    app.write_bytes(b"binary")
    created = json.loads(
        ok("attestation", "create", "--workflow", "ci", "--project", "shop", "--material",
           f"ARTIFACT={app}", "--material", f"SBOM_CYCLONEDX_JSON={sbom}", "-o", "json").stdout
    )["attestation"]["digest"]  # fmt: skip
    found = discover(ok, sha256_digest(sbom.read_bytes()))
    assert (found["kind"], found["stored_bytes"]) == ("SBOM_CYCLONEDX_JSON", sbom.stat().st_size)
    assert found["referenced_by"][0]["attestation"] == created
    art = discover(ok, sha256_digest(b"binary"))
    # An ARTIFACT is a subject and a material of the attestation; the subject takes its kind.
    assert art["referenced_by"][0]["roles"] == [
        {"role": "subject", "name": "app.bin", "kind": "ARTIFACT"},
        {"role": "material", "name": "app.bin", "kind": "ARTIFACT"},
    ]


@pytest.mark.parametrize(
    ("digest", "code", "message"),
    [
        ("sha256:" + "0" * 64, 1, "nothing in the evidence store or the deployment records names"),
        ("sha256:xyz", 2, "invalid digest"),  # a malformed argument is a usage error
        ("nodigest", 2, "invalid digest"),
    ],
)
def test_discover_refusals(ok: Invoke, run: Invoke, digest: str, code: int, message: str) -> None:
    ok("attestation", "import", str(FULL))
    assert_refused(run("discover", digest), code=code, contains=message)


def test_projects_versions_workflows_artifacts_and_where_they_run(
    ok: Invoke, run: Invoke, tmp_path: Path
) -> None:
    ok("attestation", "import", str(FULL), str(GIT))
    ok("attestation", "import", str(SLSA), "--project", "shop", "--version", "2.0",
       "--workflow", "release")  # fmt: skip
    ok("environment", "create", "--name", "cluster")
    deployment = record(ok, NGINX_GIT, stage="staging")
    listed = json.loads(ok("project", "list", "-o", "json").stdout)
    full_meta = payload(FULL)["predicate"]["metadata"]
    git_meta = payload(GIT)["predicate"]["metadata"]
    names = {p["name"] for p in listed}
    assert names == {full_meta["project"], git_meta["project"], "shop"}
    [shop] = [p for p in listed if p["name"] == "shop"]
    assert (shop["versions"], shop["workflows"], shop["attestations"]) == (["2.0"], ["release"], 1)
    assert list(shop) == ["name", "versions", "workflows", "attestations", "last_imported_at"]
    table = ok("project", "list").stdout
    assert "PROJECT" in table and "shop" in table

    detail = json.loads(
        ok("project", "describe", "--name", git_meta["project"], "-o", "json").stdout
    )
    [version] = detail["versions"]
    assert version["workflows"] == [git_meta["name"]]
    assert [a["digest"] for a in version["attestations"]] == [sha256_digest(GIT.read_bytes())]
    artifacts = {a["digest"]: a for a in version["artifacts"]}
    assert NGINX_GIT in artifacts
    assert [r["id"] for r in artifacts[NGINX_GIT]["running"]] == [deployment]
    assert "CONTAINER_IMAGE" in artifacts[NGINX_GIT]["kinds"]
    not_running = [a for a in artifacts.values() if not a["running"]]
    assert not_running  # the other materials run nowhere
    text = ok("project", "describe", "--name", git_meta["project"]).stdout
    assert text.startswith(f"project {git_meta['project']}\n")
    assert f"deployment {deployment}: api (CONTAINER_IMAGE) in cluster/staging" in text
    assert "not running anywhere now" in text
    assert_refused(run("project", "describe", "--name", "nobody"),
                   contains="no attestation belongs to project 'nobody'")  # fmt: skip


def test_project_list_when_empty(run: Invoke) -> None:
    result = run("project", "list")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "No projects" in result.stderr
