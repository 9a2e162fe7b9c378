"""`attestation create` with CONTAINER_IMAGE and HELM_CHART materials resolved through real
registries (docker-registry on 127.0.0.1, images pushed with skopeo), exactly as
`deployment record --oci-ref` resolves them; and `policy check --oci-ref` the same way."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from click.testing import Result
from conftest import Invoke, assert_refused, snapshot
from keyutil import INTOTO, PASSWORD, cryptography_keys, pae

from deploytrack.crypto.keys import load_public_key_file

from . import registry_support as rs
from .conftest import ALICE


def _create(run: Invoke, *args: str, input: str | None = None) -> Result:
    return run(
        "attestation", "create", "--workflow", "release", "--project", "api", "--version", "1.0",
        *args, "-o", "json", input=input,
    )  # fmt: skip


def _statement(envelope: bytes) -> tuple[dict, bytes]:
    env = json.loads(envelope)
    payload = base64.b64decode(env["payload"])
    return env, payload


def test_container_images_from_a_registry_become_subjects(
    plain_registry: rs.Registry, ok: Invoke, run: Invoke, tmp_path: Path
) -> None:
    host = plain_registry.host
    single, multi = f"{host}/acme/app:1.0", f"{host}/acme/multi:1.0"
    out = tmp_path / "att.json"
    result = _create(
        run, "--material", f"CONTAINER_IMAGE={single}", "--material",
        f"CONTAINER_IMAGE:multi={multi}", "--plain-http", "--output-file", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    _, payload = _statement(out.read_bytes())
    st = json.loads(payload)
    expected = {
        single: plain_registry.digests["acme/app:1.0"],
        "multi": plain_registry.digests["acme/multi:1.0"],
    }
    assert {s["name"]: "sha256:" + s["digest"]["sha256"] for s in st["subject"]} == expected
    materials = st["predicate"]["materials"]
    assert [(m["kind"], m["reference"], m["mediaType"]) for m in materials] == [
        ("CONTAINER_IMAGE", single, rs.MANIFEST),
        ("CONTAINER_IMAGE", multi, rs.INDEX),
    ]
    # The evidence now names what the tags point to: deployment record accepts them.
    ok("environment", "create", "--name", "k8s")
    for ref in (single, multi):
        recorded = ok(
            "deployment", "record", "--env", "k8s", "--logical-env", "staging",
            "--deployment-name", ref.rsplit("/", 1)[1].split(":")[0], "--kind",
            "CONTAINER_IMAGE", "--oci-ref", ref, "--plain-http", "-o", "json",
        )  # fmt: skip
        assert json.loads(recorded.stdout)["deployment"]["digest"] in expected.values()


def test_helm_chart_from_a_registry(plain_registry: rs.Registry, run: Invoke) -> None:
    chart = f"oci://{plain_registry.host}/charts/mychart:0.1.0"
    result = _create(run, "--material", f"HELM_CHART={chart}", "--plain-http")
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    [subject] = body["attestation"]["subjects"]
    assert subject == {"name": chart, "digest": plain_registry.digests["charts/mychart:0.1.0"]}
    assert body["stored_files"] == []  # a chart in a registry stays there


def test_registry_refusals_store_nothing(
    plain_registry: rs.Registry, ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path
) -> None:
    ok("environment", "list")
    before = snapshot(db_path)
    host = plain_registry.host
    out = tmp_path / "never.json"
    cases = [
        (f"CONTAINER_IMAGE={host}/acme/app:9.9", "tag 9.9 not found"),
        (f"HELM_CHART=oci://{host}/acme/app:1.0", "is not a Helm chart"),
        (f"CONTAINER_IMAGE={host}/nobody/here:1", "not found"),
    ]
    for material, message in cases:
        result = _create(run, "--material", material, "--plain-http", "--output-file", str(out))
        assert_refused(result, contains=message)
        assert not out.exists()
    assert snapshot(db_path) == before


def test_registry_login_and_key_password_both_on_stdin(
    basic_registry: rs.Registry, run: Invoke, tmp_path: Path
) -> None:
    """--registry-password-stdin reads the first line, --key-password-stdin the second."""
    pair = cryptography_keys(tmp_path / "keys")["py-ec-enc"]
    ref = f"{basic_registry.host}/acme/app:1.0"
    result = _create(
        run, "--material", f"CONTAINER_IMAGE={ref}", "--plain-http",
        "--registry-server", basic_registry.host, "--registry-username", ALICE[0],
        "--registry-password-stdin", "--key", str(pair.private), "--key-password-stdin",
        input=f"{ALICE[1]}\n{PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["attestation"]["subjects"][0]["digest"] == basic_registry.digests["acme/app:1.0"]
    assert ALICE[1] not in result.output + result.stderr
    assert PASSWORD not in result.output + result.stderr
    envelope = run("artifact", "download", "--digest", body["attestation"]["digest"]).stdout_bytes
    env, payload = _statement(envelope)
    public = load_public_key_file(pair.public)
    assert public.verify(base64.b64decode(env["signatures"][0]["sig"]), pae(INTOTO, payload))


def test_policy_check_resolves_oci_ref_like_deployment_record(
    plain_registry: rs.Registry, ok: Invoke, run: Invoke, db_path: Path
) -> None:
    ref = f"{plain_registry.host}/acme/app:1.1"
    ok("attestation", "create", "--workflow", "w", "--project", "p", "--material",
       f"CONTAINER_IMAGE={ref}", "--plain-http")  # fmt: skip
    ok("logical-environment", "policy", "set", "--name", "production",
       "--require-predicate", "https://deploytrack.dev/attestation/v1")  # fmt: skip
    before = snapshot(db_path)
    passed = run("policy", "check", "--logical-env", "production", "--oci-ref", ref,
                 "--plain-http", "-o", "json")  # fmt: skip
    assert passed.exit_code == 0, passed.stderr
    assert json.loads(passed.stdout)["digest"] == plain_registry.digests["acme/app:1.1"]
    other = f"{plain_registry.host}/acme/app:1.0"
    failed = run("policy", "check", "--logical-env", "production", "--oci-ref", other,
                 "--plain-http")  # fmt: skip
    assert_refused(failed, contains="no attestation of predicate type")
    assert snapshot(db_path) == before
