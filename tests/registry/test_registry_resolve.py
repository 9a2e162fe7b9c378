"""Resolving tags through a real registry (docker-registry on 127.0.0.1), and every way a
request can fail, end to end through `deployment record --oci-ref` on a real database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import record_args, sha256_digest

from . import registry_support as rs
from .conftest import RecordRef, recorded

DEMO_LAYOUT = Path(__file__).parents[2] / "demo" / "oci-layout"
DEMO_100 = "sha256:47b52ebc612b8b554bab29d067bf302bb1b07407fe0d0a053b9023e93eb62ba0"
ALL_FOUR = (rs.MANIFEST, rs.INDEX, rs.DOCKER_MANIFEST, rs.DOCKER_LIST)


@pytest.mark.parametrize(
    ("repo_tag", "media_type"),
    [
        ("acme/app:1.0", rs.MANIFEST),
        ("acme/multi:1.0", rs.INDEX),
        ("acme/dlist:1.0", rs.DOCKER_LIST),
        ("acme/dsingle:1.0", rs.DOCKER_MANIFEST),
    ],
    ids=["oci-manifest", "oci-index-multi-platform", "docker-manifest-list", "docker-schema2"],
)
def test_tag_records_what_it_points_to(
    plain_registry: rs.Registry, ready, record_ref: RecordRef, repo_tag: str, media_type: str
):
    """The recorded digest is the tag's own: the index/list digest for multi-platform images."""
    expected = plain_registry.digests[repo_tag]
    ready(expected)
    record = recorded(record_ref(f"{plain_registry.host}/{repo_tag}", "--plain-http"))
    assert record["digest"] == expected
    assert record["artifact_ref"] == f"{plain_registry.host}/{repo_tag}"
    # The registry itself says the tag is that media type with that digest.
    served = rs.run(
        "skopeo",
        "inspect",
        "--raw",
        "--tls-verify=false",
        f"docker://{plain_registry.host}/{repo_tag}",
    )
    assert sha256_digest(served) == expected
    assert f'"mediaType":"{media_type}"' in served.decode().replace(" ", "")


def test_a_new_tag_supersedes_and_the_same_tag_is_a_heartbeat(
    plain_registry: rs.Registry, ready, record_ref: RecordRef
):
    v10, v11 = plain_registry.digests["acme/app:1.0"], plain_registry.digests["acme/app:1.1"]
    ready(v10, v11)
    host = plain_registry.host
    first = record_ref(f"{host}/acme/app:1.0", "--plain-http")
    assert recorded(first)["digest"] == v10
    again = record_ref(f"{host}/acme/app:1.0", "--plain-http")
    assert recorded(again)["id"] == recorded(first)["id"]
    newer = record_ref(f"{host}/acme/app:1.1", "--plain-http")
    assert recorded(newer)["digest"] == v11
    assert '"action": "superseded"' in newer.stdout


def _record_through(
    front: rs._Server, registry: rs.Registry, ready, record_ref: RecordRef, repo_tag: str
) -> None:
    """Record `repo_tag` of `registry` by asking `front` (a proxy to it): the tag's digest."""
    ready(registry.digests[repo_tag])
    result = record_ref(f"{front.host}/{repo_tag}", "--plain-http")
    assert recorded(result)["digest"] == registry.digests[repo_tag]


def test_one_head_request_with_all_four_media_types_and_no_blob(
    plain_registry: rs.Registry, ready, record_ref: RecordRef
):
    counting = rs.proxy(plain_registry.host)
    try:
        _record_through(counting, plain_registry, ready, record_ref, "acme/multi:1.0")
    finally:
        counting.stop()
    assert [(method, path) for method, path, _ in counting.log] == [
        ("HEAD", "/v2/acme/multi/manifests/1.0")
    ]
    accept = [a.strip() for a in counting.log[0][2]["Accept"].split(",")]
    assert sorted(accept) == sorted(ALL_FOUR)


def test_without_digest_header_it_falls_back_to_get_and_hashes_the_body(
    plain_registry: rs.Registry, ready, record_ref: RecordRef
):
    stripping = rs.proxy(plain_registry.host, strip=("docker-content-digest",))
    try:
        for repo_tag in ("acme/dlist:1.0", "acme/app:1.0"):
            _record_through(stripping, plain_registry, ready, record_ref, repo_tag)
    finally:
        stripping.stop()
    requests = [(method, path) for method, path, _ in stripping.log]
    assert requests == [
        ("HEAD", "/v2/acme/dlist/manifests/1.0"),
        ("GET", "/v2/acme/dlist/manifests/1.0"),
        ("HEAD", "/v2/acme/app/manifests/1.0"),
        ("GET", "/v2/acme/app/manifests/1.0"),
    ]
    assert not any("/blobs/" in path for _, path in requests)


@pytest.mark.parametrize(
    ("proxy_options", "requests"),
    [
        ({"refuse_head": True}, ["HEAD", "GET"]),
        ({"strip": ("content-type",)}, ["HEAD", "GET"]),
    ],
    ids=["registry-without-head", "no-content-type"],
)
def test_a_registry_without_head_or_content_type_is_read_with_get(
    plain_registry: rs.Registry, ready, record_ref: RecordRef, proxy_options, requests
):
    """The digest is then the sha256 of the body, and the media type the body's own."""
    front = rs.proxy(plain_registry.host, **proxy_options)
    try:
        _record_through(front, plain_registry, ready, record_ref, "acme/dlist:1.0")
    finally:
        front.stop()
    assert [method for method, _, _ in front.log] == requests


def test_a_digest_pinned_reference_makes_no_request(ready, record_ref: RecordRef):
    listener = rs.status_server(500)
    digest = "sha256:" + "5e" * 32
    try:
        ready(digest)
        record = recorded(record_ref(f"{listener.host}/acme/app:9.9@{digest}", "--plain-http"))
    finally:
        listener.stop()
    assert record["digest"] == digest
    assert record["artifact_ref"] == f"{listener.host}/acme/app:9.9"
    assert listener.log == []


def test_a_malformed_reference_is_refused_before_any_request(refuse_ref, ready):
    listener = rs.status_server(500)
    try:
        ready()
        for ref in (
            f"{listener.host}/Acme/app:1",
            f"{listener.host}/app:bad tag",
            f"{listener.host}/app@sha256:123",
            f"{listener.host}//app:1",
        ):
            refuse_ref(ref, "--plain-http", contains="invalid reference")
    finally:
        listener.stop()
    assert listener.log == []


def test_tag_not_found_lists_the_tags(refuse_ref, plain_registry: rs.Registry, ready):
    ready()
    line = refuse_ref(
        f"{plain_registry.host}/acme/app:9.9",
        "--plain-http",
        contains="tag 9.9 not found in",
    ).stderr
    assert "(its tags: 1.0, 1.1)" in line


def test_repository_not_found(refuse_ref, plain_registry: rs.Registry, ready):
    ready()
    refuse_ref(
        f"{plain_registry.host}/nobody/here:1",
        "--plain-http",
        contains=f"repository nobody/here not found on {plain_registry.host}",
    )


def test_registry_server_error_is_not_retried(refuse_ref, ready):
    failing = rs.status_server(500)
    try:
        ready()
        started = time.monotonic()
        refuse_ref(
            f"{failing.host}/acme/app:1",
            "--plain-http",
            contains=f"registry server error: {failing.host} answered HTTP 500",
        )
        elapsed = time.monotonic() - started
    finally:
        failing.stop()
    assert len(failing.log) == 1  # oras' do_request would retry for ~2 minutes
    assert elapsed < 2


def test_timeout_is_one_line_in_about_the_timeout_and_not_retried(refuse_ref, ready):
    silent = rs.SocketServer("silent")
    try:
        ready()
        started = time.monotonic()
        refuse_ref(
            f"{silent.host}/acme/app:1",
            "--plain-http",
            "--registry-timeout",
            "0.5",
            contains=f"timeout: {silent.host} gave no answer within 0.5 s (--registry-timeout)",
        )
        elapsed = time.monotonic() - started
    finally:
        silent.stop()
    assert 0.5 <= elapsed < 2.5
    assert silent.connections == 1


def test_a_dropped_connection_is_retried_once(refuse_ref, ready):
    closing = rs.SocketServer("close")
    try:
        ready()
        refuse_ref(
            f"{closing.host}/acme/app:1",
            "--plain-http",
            contains=f"connection to {closing.host} failed: it closed without an answer",
        )
    finally:
        closing.stop()
    assert closing.connections == 2


def test_connection_refused(refuse_ref, ready):
    ready()
    host = f"127.0.0.1:{rs.free_port()}"
    started = time.monotonic()
    refuse_ref(
        f"{host}/acme/app:1",
        "--plain-http",
        contains=f"connection refused by {host}",
    )
    assert time.monotonic() - started < 2


def test_unknown_host(refuse_ref, ready):
    ready()
    refuse_ref(
        "registry.deploytrack-test.invalid/acme/app:1",
        contains="unknown registry host registry.deploytrack-test.invalid",
    )


def test_plain_http_registry_without_the_flag_is_a_tls_failure_even_on_localhost(
    refuse_ref, plain_registry: rs.Registry, ready
):
    ready()
    line = refuse_ref(
        f"{plain_registry.host}/acme/app:1.0",
        contains=f"TLS failure talking to {plain_registry.host}",
    ).stderr
    assert "--plain-http" in line and "--ca-file" in line
    port = plain_registry.host.rpartition(":")[2]
    refuse_ref(f"localhost:{port}/acme/app:1.0", contains="TLS failure")


def test_installed_entry_point_records_a_tag(
    plain_registry: rs.Registry, ready, entry_point: str, db_path: Path, tmp_path: Path
):
    ready(plain_registry.digests["acme/multi:1.0"])
    env = {**os.environ, "HOME": str(tmp_path / "home"), "DEPLOYTRACK_DB": str(db_path)}

    def deploytrack(ref: str) -> subprocess.CompletedProcess:
        args = [*record_args("k8s", "production", "web"), "--plain-http"]
        return subprocess.run(
            [entry_point, *args, "--oci-ref", ref],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    proc = deploytrack(f"{plain_registry.host}/acme/multi:1.0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    short = plain_registry.digests["acme/multi:1.0"][:19]
    assert f"{plain_registry.host}/acme/multi:1.0@{short}" in proc.stdout
    failed = deploytrack(f"{plain_registry.host}/acme/multi:0.0")
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("Error: tag 0.0 not found")


def _imported_modules(args: list[str], env: dict[str, str]) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "deploytrack", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}


def test_only_resolving_a_tag_imports_oras(
    plain_registry: rs.Registry, ready, db_path: Path, tmp_path: Path
):
    digest = plain_registry.digests["acme/app:1.0"]
    ready(digest, DEMO_100)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "DEPLOYTRACK_DB": str(db_path)}
    common = record_args("k8s", "staging", "app")
    heavy = {"oras", "requests", "jsonschema", "urllib3"}
    for args in (
        [*common, "--digest", digest],
        [*common, "--oci-ref", f"{plain_registry.host}/acme/app:1.0@{digest}"],
        [*common, "--oci-ref", f"oci:{DEMO_LAYOUT}:1.0.0", "--deployment-name", "demo"],
    ):
        assert not heavy & _imported_modules(args, env), args
    resolved = _imported_modules(
        [*common, "--oci-ref", f"{plain_registry.host}/acme/app:1.0", "--plain-http"], env
    )
    assert heavy <= resolved  # the check above can fail


def test_resolver_is_reusable_for_several_references(plain_registry: rs.Registry):
    """What `attestation create --material` will use: one resolver, several references."""
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.services.artifacts import ArtifactResolver

    resolver = ArtifactResolver(RegistryOptions(plain_http=True))
    host = plain_registry.host
    got = [
        resolver.resolve("CONTAINER_IMAGE", f"{host}/{repo_tag}").digest
        for repo_tag in ("acme/app:1.0", "acme/multi:1.0", "acme/dlist:1.0")
    ]
    assert got == [
        plain_registry.digests[r] for r in ("acme/app:1.0", "acme/multi:1.0", "acme/dlist:1.0")
    ]
    assert resolver.client(host) is resolver.client(host)  # one session for the registry
