"""No network: OCI image layouts (oci:DIR[:TAG]), OCI archives (oci-archive:FILE[:TAG]),
packaged Helm charts (.tgz); and Helm charts in a registry (oci://...)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploytrack.registry import RegistryError
from deploytrack.registry.chart import parse_chart_yaml, read_chart

from . import registry_support as rs
from .conftest import RecordRef, recorded

REPO = Path(__file__).parents[2]
DEMO = REPO / "demo"


# --- OCI image layouts --------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["1.0", "multi-1.0"])
def test_oci_layout_tag(layouts: rs.Layouts, ready, record_ref: RecordRef, tag: str):
    ready(layouts.digests[tag])
    record = recorded(record_ref(f"oci:{layouts.oci}:{tag}"))
    assert record["digest"] == layouts.digests[tag]
    assert record["artifact_ref"] == f"oci:{layouts.oci}:{tag}"


def test_oci_layout_relative_path_is_recorded_absolute(
    layouts: rs.Layouts, ready, record_ref: RecordRef, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(layouts.oci.parent)
    ready(layouts.digests["1.1"])
    record = recorded(record_ref("oci:oci:1.1"))
    assert record["artifact_ref"] == f"oci:{layouts.oci}:1.1"


def test_shipped_demo_layout_resolves_to_the_digests_its_attestations_name(
    ok, ready, record_ref: RecordRef
):
    ready()
    for version in ("1.0.0", "1.1.0"):
        statement = json.loads(
            (DEMO / "attestations" / f"api-server-{version}.provenance.json").read_text()
        )
        ok(
            "attestation",
            "import",
            str(DEMO / "attestations" / f"api-server-{version}.provenance.json"),
        )
        record = recorded(record_ref(f"oci:{DEMO / 'oci-layout'}:{version}"))
        assert record["digest"] == "sha256:" + statement["subject"][0]["digest"]["sha256"]


def test_oci_layout_missing_tag_lists_the_candidates(refuse_ref, layouts, ready):
    ready()
    line = refuse_ref(
        f"oci:{layouts.oci}:9.9",
        contains=f"tag 9.9 is not in OCI layout {layouts.oci}",
    ).stderr
    assert "(its tags: 1.0, 1.1, multi-1.0, 0.1.0)" in line


def test_oci_layout_without_tag_needs_exactly_one_manifest(
    refuse_ref, layouts, ready, record_ref, tmp_path
):
    ready(layouts.digests["1.0"])
    line = refuse_ref(
        f"oci:{layouts.oci}",
        contains=f"OCI layout {layouts.oci} holds 4 manifests: name one with",
    ).stderr
    assert "1.0, 1.1, multi-1.0, 0.1.0" in line
    # One manifest (untagged, as some tools write it): no tag needed.
    manifest = (
        layouts.oci / "blobs" / "sha256" / layouts.digests["1.0"].removeprefix("sha256:")
    ).read_bytes()
    one = rs.write_layout(
        tmp_path / "one",
        [{"mediaType": rs.MANIFEST, "digest": layouts.digests["1.0"], "size": len(manifest)}],
        {layouts.digests["1.0"]: manifest},
    )
    record = recorded(record_ref(f"oci:{one}"))
    assert record["digest"] == layouts.digests["1.0"]
    assert record["artifact_ref"] == f"oci:{one}"


def test_oci_layout_tag_on_several_manifests_is_refused(refuse_ref, layouts, ready, tmp_path):
    blobs = {}
    descriptors = []
    for tag in ("1.0", "1.1"):
        digest = layouts.digests[tag]
        blobs[digest] = (layouts.oci / "blobs" / "sha256" / digest[7:]).read_bytes()
        descriptors.append(
            {
                "mediaType": rs.MANIFEST,
                "digest": digest,
                "size": len(blobs[digest]),
                "annotations": {rs.REF_NAME: "latest"},
            }
        )
    twice = rs.write_layout(tmp_path / "twice", descriptors, blobs)
    ready()
    line = refuse_ref(
        f"oci:{twice}:latest",
        contains="tag latest names 2 manifests in OCI layout",
    ).stderr
    assert layouts.digests["1.0"] in line and layouts.digests["1.1"] in line


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no-folder", "no OCI layout at"),
        ("no-marker", "is not an OCI image layout: it has no oci-layout file"),
        ("bad-index", "index.json is not an OCI index"),
        ("missing-blob", "is incomplete: the blob of"),
        ("corrupt-blob", "is corrupt: the blob of"),
    ],
)
def test_broken_oci_layouts_are_refused(
    refuse_ref, layouts, ready, tmp_path, damage: str, message: str
):
    import shutil

    copy = tmp_path / "copy"
    if damage != "no-folder":
        shutil.copytree(layouts.oci, copy)
    blob = copy / "blobs" / "sha256" / layouts.digests["1.0"].removeprefix("sha256:")
    if damage == "no-marker":
        (copy / "oci-layout").unlink()
    elif damage == "bad-index":
        (copy / "index.json").write_text('{"schemaVersion": 2}')
    elif damage == "missing-blob":
        blob.unlink()
    elif damage == "corrupt-blob":
        blob.write_bytes(blob.read_bytes() + b" ")
    ready()
    refuse_ref(f"oci:{copy}:1.0", contains=message)


def test_oci_archive_written_by_skopeo(refuse_ref, layouts, ready, record_ref, tmp_path):
    archive = tmp_path / "images.tar"
    policy = tmp_path / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    for tag in ("1.0", "multi-1.0"):
        rs.run(
            "skopeo",
            "--policy",
            policy,
            "copy",
            "--all",
            "--quiet",
            f"oci:{layouts.oci}:{tag}",
            f"oci-archive:{archive}:{tag}",
        )
        ready(layouts.digests[tag])
        record = recorded(record_ref(f"oci-archive:{archive}:{tag}"))
        assert record["digest"] == layouts.digests[tag]
        assert record["artifact_ref"] == f"oci-archive:{archive}:{tag}"
    line = refuse_ref(
        f"oci-archive:{archive}:2.0",
        contains=f"tag 2.0 is not in OCI archive {archive}",
    ).stderr
    assert "(its tags: multi-1.0)" in line  # skopeo writes one image per archive


def test_oci_archive_of_a_layout_folder(refuse_ref, layouts, ready, record_ref, tmp_path):
    archive = rs.tar_folder(layouts.oci, tmp_path / "layout.tar")
    ready(layouts.digests["1.1"])
    assert recorded(record_ref(f"oci-archive:{archive}:1.1"))["digest"] == layouts.digests["1.1"]
    refuse_ref(
        f"oci-archive:{archive}",
        contains=f"OCI archive {archive} holds 4 manifests",
    )
    refuse_ref(
        f"oci-archive:{tmp_path / 'absent.tar'}:1.0",
        contains="no OCI archive at",
    )
    not_tar = tmp_path / "not.tar"
    not_tar.write_bytes(b"\x00garbage" * 100)
    refuse_ref(
        f"oci-archive:{not_tar}:1.0",
        contains="is not a tar archive of an OCI layout",
    )


# --- Helm charts --------------------------------------------------------------------------


def test_helm_chart_tgz(ready, record_ref, tmp_path):
    chart = tmp_path / "mychart-0.1.0.tgz"
    chart.write_bytes(rs.chart_tgz())
    digest = "sha256:" + hashlib.sha256(chart.read_bytes()).hexdigest()
    ready(digest)
    record = recorded(record_ref(str(chart), kind="HELM_CHART"))
    assert record["digest"] == digest
    assert record["artifact_ref"] == str(chart)
    assert record["kind"] == "HELM_CHART"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no chart file at"),
        (b"not gzip", "is not a packaged Helm chart (a gzipped tar)"),
        (rs.chart_tgz(chart_yaml="apiVersion: v2\nname: c\n"), "version None is not a SemVer"),
        (
            rs.chart_tgz(chart_yaml="apiVersion: v2\nname: c\nversion: one\n"),
            "'one' is not a SemVer",
        ),
        (rs.chart_tgz(chart_yaml="apiVersion: v9\nname: c\nversion: 1.0.0\n"), "apiVersion 'v9'"),
        (rs.chart_tgz(chart_yaml="apiVersion: v2\nversion: 1.0.0\n"), "Chart.yaml has no name"),
    ],
)
def test_broken_helm_chart_files_are_refused(
    refuse_ref, ready, tmp_path, content: bytes | None, message: str
):
    chart = tmp_path / "chart.tgz"
    if content is not None:
        chart.write_bytes(content)
    ready()
    refuse_ref(str(chart), kind="HELM_CHART", contains=message)


def test_helm_chart_without_chart_yaml(refuse_ref, ready, tmp_path):
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("mychart/values.yaml")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"a: 1"[:3]))
    chart = tmp_path / "empty.tgz"
    chart.write_bytes(gzip.compress(raw.getvalue()))
    ready()
    refuse_ref(
        str(chart),
        kind="HELM_CHART",
        contains="is not a packaged Helm chart: it has no <chart>/Chart.yaml",
    )


def test_chart_file_needs_kind_helm_chart(refuse_ref, ready, tmp_path):
    chart = tmp_path / "mychart-0.1.0.tgz"
    chart.write_bytes(rs.chart_tgz())
    ready()
    refuse_ref(str(chart), contains="give --kind HELM_CHART")


def test_chart_yaml_minimal_fields():
    text = (
        "# comment\napiVersion: v2\n"
        "name: 'quoted # not a comment'\n"
        'version: "1.2.3-rc.1+build.5"  # trailing\n'
        "description: |\n  name: nested-is-ignored\n"
        "dependencies:\n  - name: sub\n    version: 9.9.9\n"
    )
    assert parse_chart_yaml(text) == {
        "apiVersion": "v2",
        "name": "quoted # not a comment",
        "version": "1.2.3-rc.1+build.5",
    }
    assert parse_chart_yaml("name: |\n  block\n") == {}


def test_chart_members_with_dot_slash_prefix_are_read(tmp_path):
    """Member names written as ./<chart>/..., as some tar tools write them."""
    chart = tmp_path / "c.tgz"
    chart.write_bytes(rs.chart_tgz("web", "2.0.0", prefix="./"))
    found = read_chart(str(chart))
    assert (found.name, found.version, found.api_version) == ("web", "2.0.0", "v2")
    with pytest.raises(RegistryError, match="not a file"):
        read_chart(str(tmp_path))


def test_helm_chart_in_a_registry(plain_registry: rs.Registry, ready, record_ref):
    digest = plain_registry.digests["charts/mychart:0.1.0"]
    ready(digest)
    ref = f"oci://{plain_registry.host}/charts/mychart:0.1.0"
    record = recorded(record_ref(ref, "--plain-http", kind="HELM_CHART"))
    assert record["digest"] == digest
    assert record["artifact_ref"] == ref


@pytest.mark.parametrize(
    ("repo_tag", "message"),
    [
        (
            "acme/app:1.0",
            "is not a Helm chart: its config media type is "
            "application/vnd.oci.image.config.v1+json",
        ),
        ("acme/multi:1.0", "is an image index, not a Helm chart"),
    ],
)
def test_helm_kind_refuses_images_in_a_registry(
    refuse_ref, plain_registry: rs.Registry, ready, repo_tag: str, message: str
):
    ready()
    refuse_ref(
        f"oci://{plain_registry.host}/{repo_tag}",
        "--plain-http",
        kind="HELM_CHART",
        contains=message,
    )


def test_helm_chart_in_an_oci_layout(refuse_ref, layouts: rs.Layouts, ready, record_ref):
    ready(layouts.digests["0.1.0"])
    record = recorded(record_ref(f"oci:{layouts.oci}:0.1.0", kind="HELM_CHART"))
    assert record["digest"] == layouts.digests["0.1.0"]
    refuse_ref(
        f"oci:{layouts.oci}:1.0",
        kind="HELM_CHART",
        contains="is not a Helm chart",
    )


def test_make_demo_runs_offline(tmp_path: Path):
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "http_proxy": "http://127.0.0.1:1",
        "https_proxy": "http://127.0.0.1:1",
    }
    env.pop("DEPLOYTRACK_DB", None)
    proc = subprocess.run(
        [sys.executable, str(DEMO / "run.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "--oci-ref oci:demo/oci-layout:1.0.0" in proc.stdout
    assert "it supersedes deployment" in proc.stdout
    assert "Demo finished" in proc.stdout
