"""`attestation pull` and `--pull-evidence`, against real parts.

The registry is Debian's docker-registry (distribution 2.8.2), started for this module: it
has no referrers API, so the referrers tag schema (`sha256-<hex>`) and cosign's
`sha256-<hex>.att` tag are tested against it as it is. Images are pushed with skopeo,
referrers with plain HTTP PUTs of manifests built to the published formats.

The OCI 1.1 referrers API is tested against the same registry behind `ReferrersProxy`, a
small http.server thread started by the tests: it answers `GET /v2/<name>/referrers/
<digest>` from the registry's own manifests (the revisions in its storage folder, each
fetched back from the registry and kept when its `subject` is the digest), a page at a
time with `Link`, and forwards every other request to the registry unchanged. The bad
inputs a real registry refuses to store (a referrers index that is not JSON, oversized, or
whose pages loop) are served by the same proxy; the bad bytes a registry can hold (a blob
that no longer hashes to its digest) are written into the real registry's storage.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import Result
from conftest import Invoke, assert_refused, attestation, query, untouched
from helpers import record_args, sha256_digest
from registry import registry_support as rs

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
SPDX = "application/spdx+json"
SLSA = "https://slsa.dev/provenance/v1"
MiB = 1024 * 1024


# --- building referrers to the published formats --------------------------------------------


def envelope(*digests: str, predicate_type: str = SLSA) -> dict[str, Any]:
    """A DSSE envelope around an in-toto statement naming `digests` (signature not checked
    by a pull)."""
    statement = rs.statement(*digests)
    if predicate_type != SLSA:
        statement = statement.replace(SLSA.encode(), predicate_type.encode())
    return {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(statement).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(b"not checked here").decode()}],
    }


def bundle(*digests: str) -> bytes:
    """A Sigstore bundle v0.3 carrying a DSSE envelope, as attest-build-provenance writes."""
    return rs.canonical(
        {
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {"certificate": {"rawBytes": "AAAA"}, "tlogEntries": []},
            "dsseEnvelope": envelope(*digests),
        }
    )


class Pusher:
    """Plain HTTP pushes to the registry (the distribution API: blob upload, manifest PUT)."""

    def __init__(self, registry: rs.Registry) -> None:
        self.host = registry.host
        self.auth: dict[str, str] = {}
        if registry.username:
            login = f"{registry.username}:{registry.password}".encode()
            self.auth["Authorization"] = "Basic " + base64.b64encode(login).decode()

    def _request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        conn = http.client.HTTPConnection(self.host, timeout=10)
        conn.request(method, path, body=body, headers={**self.auth, **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response, data

    def blob(self, repo: str, data: bytes) -> dict[str, Any]:
        digest = sha256_digest(data)
        response, _ = self._request("POST", f"/v2/{repo}/blobs/uploads/")
        assert response.status == 202, response.status
        location = urlsplit(response.getheader("Location"))
        path = f"{location.path}?{location.query}&digest={digest}"
        response, body = self._request(
            "PUT", path, data, {"Content-Type": "application/octet-stream"}
        )
        assert response.status == 201, (response.status, body)
        return {"digest": digest, "size": len(data)}

    def manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        response, body = self._request(
            "PUT", f"/v2/{repo}/manifests/{reference}", data, {"Content-Type": media_type}
        )
        assert response.status == 201, (response.status, body)
        return sha256_digest(data)

    def referrer(
        self,
        repo: str,
        subject: dict[str, Any],
        layer: bytes,
        *,
        artifact_type: str = BUNDLE_V03,
        layer_type: str | None = None,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """An OCI 1.1 referrer as actions/attest-build-provenance pushes it: artifactType,
        the empty config, one layer, the subject; returns its index descriptor."""
        empty = self.blob(repo, b"{}")
        manifest = {
            "schemaVersion": 2,
            "mediaType": rs.MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY, **empty},
            "layers": [{"mediaType": layer_type or artifact_type, **self.blob(repo, layer)}],
            "subject": subject,
        }
        if annotations:
            manifest["annotations"] = annotations
        body = rs.canonical(manifest)
        digest = self.manifest(repo, sha256_digest(body), body, rs.MANIFEST)
        return {
            "mediaType": rs.MANIFEST,
            "digest": digest,
            "size": len(body),
            "artifactType": artifact_type,
        }

    def tag_index(self, repo: str, subject_digest: str, descriptors: list[dict[str, Any]]) -> None:
        """The referrers tag schema: an index of the referrers, tagged sha256-<hex>."""
        index = rs.canonical({"schemaVersion": 2, "mediaType": rs.INDEX, "manifests": descriptors})
        self.manifest(repo, subject_digest.replace(":", "-"), index, rs.INDEX)

    def cosign_att(self, repo: str, subject_digest: str, envelopes: list[bytes]) -> str:
        """cosign's legacy attestation manifest at sha256-<hex>.att: one DSSE layer each."""
        config = self.blob(repo, rs.canonical({"architecture": "", "os": "", "rootfs": {}}))
        layers = [
            {
                "mediaType": DSSE,
                **self.blob(repo, data),
                "annotations": {
                    "dev.cosignproject.cosign/signature": "",
                    "predicateType": SLSA,
                },
            }
            for data in envelopes
        ]
        body = rs.canonical(
            {
                "schemaVersion": 2,
                "mediaType": rs.MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": layers,
            }
        )
        return self.manifest(repo, subject_digest.replace(":", "-") + ".att", body, rs.MANIFEST)


GITHUB_ANNOTATIONS = {
    "dev.sigstore.bundle.content": "dsse-envelope",
    "dev.sigstore.bundle.predicateType": SLSA,
    "org.opencontainers.image.created": "2026-11-30T10:00:00.000Z",
}


# --- the referrers API in front of the registry ---------------------------------------------


class ReferrersProxy:
    """The referrers API that distribution 2.8 lacks, answered from the registry's own
    manifests; `page_size` referrers per page, linked with `Link: <...>; rel="next"`.
    `serve` replaces the referrers answer (for the bad inputs); `loop` links the last
    page back to the first."""

    def __init__(self, registry: rs.Registry, storage: Path, page_size: int = 2) -> None:
        self.upstream = registry.host
        self.storage = storage
        self.page_size = page_size
        self.serve: bytes | None = None
        self.loop = False
        self.link_host = ""  # e.g. "http://elsewhere:1": next pages on another server
        self.log: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.log.append(f"{self.command} {self.path}")
                if "/referrers/" in urlsplit(self.path).path:
                    owner.referrers(self)
                else:
                    owner.forward(self)

            do_HEAD = do_PUT = do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _upstream(self, method: str, path: str, body: bytes | None, headers: dict) -> Any:
        conn = http.client.HTTPConnection(self.upstream, timeout=10)
        conn.request(method, path, body=body, headers={"Host": self.upstream, **headers})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response, data

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        body = handler.rfile.read(length) if length else None
        # The client's Host goes on: the registry builds upload URLs (Location) from it.
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "connection"}
        response, data = self._upstream(handler.command, handler.path, body, headers)
        handler.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def _descriptors(self, repo: str, digest: str) -> list[dict[str, Any]]:
        revisions = (
            self.storage / "docker/registry/v2/repositories" / repo / "_manifests/revisions/sha256"
        )
        found = []
        for folder in sorted(revisions.iterdir()):
            path = f"/v2/{repo}/manifests/sha256:{folder.name}"
            response, data = self._upstream("GET", path, None, {"Accept": rs.MANIFEST})
            if response.status != 200:
                continue
            manifest = json.loads(data)
            if (manifest.get("subject") or {}).get("digest") != digest:
                continue
            kind = manifest.get("artifactType") or manifest["config"]["mediaType"]
            descriptor = {
                "mediaType": manifest["mediaType"],
                "digest": sha256_digest(data),
                "size": len(data),
                "artifactType": kind,
            }
            if manifest.get("annotations"):
                descriptor["annotations"] = manifest["annotations"]
            found.append(descriptor)
        return found

    def referrers(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        repo, _, digest = parts.path.removeprefix("/v2/").partition("/referrers/")
        start = int(parse_qs(parts.query).get("page", ["0"])[0])
        headers = {"Content-Type": rs.INDEX}
        if self.serve is not None:
            body = self.serve
        else:
            every = self._descriptors(repo, digest)
            page = every[start : start + self.page_size]
            body = rs.canonical({"schemaVersion": 2, "mediaType": rs.INDEX, "manifests": page})
            if start + self.page_size < len(every):
                target = f"{self.link_host}{parts.path}?page={start + self.page_size}"
                headers["Link"] = f'<{target}>; rel="next"'
            elif self.loop:
                headers["Link"] = f'<{parts.path}?page=0>; rel="next"'
        handler.send_response(200)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A registry of its own (its storage is tampered with), an image in several repos."""
    rs.require_binaries()
    work = tmp_path_factory.mktemp("pull")
    images = rs.Layouts(work / "images")
    images.single("1.0")
    images.single("2.0", name="other")
    images.write()
    registry = rs.start_registry(work / "registry")
    try:
        repos = ("gh", "cos", "api", "bad", "none", "pol", "push", "pushapi", "sig")
        for repo in (f"{name}/app" for name in repos):
            rs.skopeo_copy(f"oci:{images.oci}:1.0", registry, f"{repo}:1.0", work)
        yield {
            "registry": registry,
            "storage": work / "registry" / "storage",
            "digest": images.digests["1.0"],
            "subject": {"mediaType": rs.MANIFEST, "digest": images.digests["1.0"],
                        "size": _size(images.oci, images.digests["1.0"])},
            "push": Pusher(registry),
            "layouts": images,
        }  # fmt: skip
    finally:
        registry.stop()


def _size(layout: Path, digest: str) -> int:
    return (layout / "blobs/sha256" / digest.removeprefix("sha256:")).stat().st_size


@pytest.fixture
def pull(run: Invoke) -> Callable[..., Result]:
    def invoke(ref: str, *extra: str) -> Result:
        return run("attestation", "pull", "--oci-ref", ref, "--plain-http", *extra)

    return invoke


def pulled_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, (result.output, result.stderr)
    return json.loads(result.stdout)


def events(db: Path, kind: str) -> list[dict[str, Any]]:
    rows = query(db, "SELECT body FROM log_event WHERE type = ? ORDER BY seq", (kind,))
    return [json.loads(r["body"]) for r in rows]


def log_verifies(ok: Invoke) -> None:
    assert ok("log", "verify").stdout.endswith("The log verifies.\n")


# --- the registry paths ---------------------------------------------------------------------


def test_tag_schema_imports_github_bundles_and_skips_sboms(
    reg: dict[str, Any], pull: Callable[..., Result], ok: Invoke, db_path: Path
) -> None:
    push, digest = reg["push"], reg["digest"]
    attestation = bundle(digest)
    github = push.referrer("gh/app", reg["subject"], attestation, annotations=GITHUB_ANNOTATIONS)
    sbom = push.referrer(
        "gh/app", reg["subject"], b'{"spdxVersion":"SPDX-2.3"}', artifact_type=SPDX
    )
    push.tag_index("gh/app", digest, [github, sbom])
    ref = f"{reg['registry'].host}/gh/app:1.0"

    body = pulled_json(pull(ref, "--project", "app", "-o", "json"))
    assert body == {
        "digest": digest,
        "referrers": [
            {"digest": github["digest"], "artifact_type": BUNDLE_V03, "source": "tag",
             "outcome": "imported", "reason": None, "attestation": sha256_digest(attestation)},
            {"digest": sbom["digest"], "artifact_type": SPDX, "source": "tag",
             "outcome": "skipped", "reason": f"not an attestation ({SPDX})", "attestation": None},
        ],
    }  # fmt: skip
    # Stored byte for byte, with the import's index: the digest is now in evidence.
    described = json.loads(
        ok("attestation", "describe", sha256_digest(attestation), "-o", "json").stdout
    )
    assert described["format"] == "sigstore-bundle" and described["project"] == "app"
    assert (
        ok("artifact", "download", "--digest", sha256_digest(attestation)).stdout_bytes
        == attestation
    )
    [event] = events(db_path, "attestation.pulled")
    assert event["digests"] == [sha256_digest(attestation)]
    assert event["subject"] == digest and event["source"] == ref
    log_verifies(ok)

    # Again: already present, no event, nothing stored.
    again = pulled_json(pull(ref, "-o", "json"))
    assert [r["outcome"] for r in again["referrers"]] == ["present", "skipped"]
    assert len(events(db_path, "attestation.pulled")) == 1
    text = pull(ref).stdout
    assert "0 imported, 1 already present, 1 skipped" in text and "tag" in text


def test_cosign_att_tag_imports_each_dsse_layer(
    reg: dict[str, Any], pull: Callable[..., Result], ok: Invoke, db_path: Path
) -> None:
    push, digest = reg["push"], reg["digest"]
    mine = rs.canonical(envelope(digest))
    other = rs.canonical(envelope("sha256:" + "ab" * 32))
    att = push.cosign_att("cos/app", digest, [mine, other])
    body = pulled_json(pull(f"{reg['registry'].host}/cos/app:1.0", "-o", "json"))
    assert body["referrers"] == [
        {"digest": att, "artifact_type": DSSE, "source": "cosign", "outcome": "imported",
         "reason": None, "attestation": sha256_digest(mine)},
        {"digest": att, "artifact_type": DSSE, "source": "cosign", "outcome": "skipped",
         "reason": f"its statement does not name {digest}", "attestation": None},
    ]  # fmt: skip
    assert ok("attestation", "list", "--digest", digest, "-o", "json").stdout.count('"dsse"') == 1
    log_verifies(ok)


def test_nothing_attached_is_said_and_stores_nothing(
    reg: dict[str, Any], pull: Callable[..., Result], db_path: Path
) -> None:
    result = pull(f"{reg['registry'].host}/none/app:1.0")
    assert result.exit_code == 0, result.stderr
    assert (
        result.stdout
        == f"Nothing is attached to {reg['digest']} ({reg['registry'].host}/none/app:1.0).\n"
    )
    assert untouched(db_path) or events(db_path, "attestation.pulled") == []


def test_referrers_api_with_link_pages(
    reg: dict[str, Any], pull: Callable[..., Result], ok: Invoke
) -> None:
    push, digest = reg["push"], reg["digest"]
    blobs = [bundle(digest, "sha256:" + f"{n:02x}" * 32) for n in range(3)]
    for data in blobs:
        push.referrer("api/app", reg["subject"], data, annotations=GITHUB_ANNOTATIONS)
    push.referrer("api/app", reg["subject"], b"sig", artifact_type="application/example.signature")
    proxy = ReferrersProxy(reg["registry"], reg["storage"], page_size=2)
    try:
        body = pulled_json(pull(f"{proxy.host}/api/app:1.0", "-o", "json"))
    finally:
        proxy.stop()
    outcomes = sorted((r["source"], r["outcome"], r["attestation"]) for r in body["referrers"])
    assert outcomes == sorted(
        [("api", "imported", sha256_digest(b)) for b in blobs] + [("api", "skipped", None)]
    )
    pages = [line for line in proxy.log if "/referrers/" in line]
    assert pages == [
        f"GET /v2/api/app/referrers/{digest}",
        f"GET /v2/api/app/referrers/{digest}?page=2",
    ]
    # The API answered: the tag schema is not asked; the skipped signature costs no request.
    assert not any(f"manifests/{digest.replace(':', '-')} " in line for line in proxy.log)
    log_verifies(ok)


def test_a_registry_that_wants_a_login_gets_the_flags_login(
    reg: dict[str, Any], run: Invoke, ok: Invoke, tmp_path: Path
) -> None:
    """The same credentials as `deployment record --oci-ref`, for every request a pull
    makes (resolve, listing, manifests, blobs), and never printed."""
    user, password = "carol", "carol-secret-3"
    registry = rs.start_registry(
        tmp_path / "basic", auth=rs.htpasswd_auth(tmp_path / "auth", user, password)
    )
    registry.username, registry.password = user, password
    try:
        images: rs.Layouts = reg["layouts"]
        rs.skopeo_copy(f"oci:{images.oci}:1.0", registry, "team/app:1.0", tmp_path)
        push, digest = Pusher(registry), reg["digest"]
        attestation = bundle(digest)
        push.tag_index("team/app", digest, [push.referrer("team/app", reg["subject"], attestation)])
        pull = ("attestation", "pull", "--oci-ref", f"{registry.host}/team/app:1.0", "--plain-http")
        anonymous = run(*pull)
        assert anonymous.exit_code == 1 and "authentication required" in anonymous.stderr
        login = ("--registry-server", registry.host, "--registry-username", user,
                 "--registry-password-stdin")  # fmt: skip
        result = run(*pull, *login, "-o", "json", input=password + "\n")
    finally:
        registry.stop()
    assert result.exit_code == 0, result.stderr
    assert password not in result.stdout + result.stderr
    assert [r["attestation"] for r in json.loads(result.stdout)["referrers"]] == [
        sha256_digest(attestation)
    ]
    log_verifies(ok)


@pytest.mark.parametrize("mode", ["tag", "api"])
def test_pull_after_push_finds_exactly_what_was_pushed(
    reg: dict[str, Any], run: Invoke, ok: Invoke, tmp_path: Path, mode: str
) -> None:
    """`attestation push` from one database, `attestation pull` into another: the same
    bytes. `api`: both through the referrers API of the proxy; `tag`: the registry alone."""
    digest, repo = reg["digest"], "push/app" if mode == "tag" else "pushapi/app"
    proxy = ReferrersProxy(reg["registry"], reg["storage"]) if mode == "api" else None
    host = proxy.host if proxy else reg["registry"].host
    files = {"dsse": rs.canonical(envelope(digest)),
             "bundle": bundle(digest, "sha256:" + "f4" * 32),
             "statement": rs.statement(digest, name="pushed")}  # fmt: skip
    source = ["--db", str(tmp_path / "source.db")]
    try:
        for name, data in files.items():
            (tmp_path / f"{name}.json").write_bytes(data)
            assert (
                run(*source, "attestation", "import", str(tmp_path / f"{name}.json")).exit_code == 0
            )
            to = f"{host}/{repo}:1.0"
            pushed = run(*source, "attestation", "push", sha256_digest(data), "--to", to,
                         "--plain-http", "--referrers-mode", mode)  # fmt: skip
            assert pushed.exit_code == 0, pushed.stderr
        body = pulled_json(run("attestation", "pull", "--oci-ref", f"{host}/{repo}:1.0",
                               "--plain-http", "-o", "json"))  # fmt: skip
    finally:
        if proxy:
            proxy.stop()
    assert {r["source"] for r in body["referrers"]} == {mode}
    assert sorted(r["attestation"] for r in body["referrers"]) == sorted(
        sha256_digest(d) for d in files.values()
    )
    for data in files.values():
        downloaded = ok("artifact", "download", "--digest", sha256_digest(data)).stdout_bytes
        assert downloaded == data
    log_verifies(ok)


# --- layouts --------------------------------------------------------------------------------


def _layout_with_referrer(folder: Path, reg: dict[str, Any]) -> tuple[Path, bytes]:
    """The test image and an `oras attach`-style referrer in one layout's index.json."""
    images: rs.Layouts = reg["layouts"]
    shutil.copytree(images.oci, folder)
    digest = reg["digest"]
    attestation = bundle(digest)
    blobs = rs.Blobs()
    empty, layer = blobs.add(b"{}"), blobs.add(attestation)
    manifest = rs.canonical(
        {
            "schemaVersion": 2,
            "mediaType": rs.MANIFEST,
            "artifactType": BUNDLE_V03,
            "config": {"mediaType": EMPTY, **empty},
            # oras attach types a file application/vnd.oci.image.layer.v1.tar by default.
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer,
                        "annotations": {"org.opencontainers.image.title": "bundle.json"}}],
            "subject": reg["subject"],
        }
    )  # fmt: skip
    descriptor = {"mediaType": rs.MANIFEST, **blobs.add(manifest), "artifactType": BUNDLE_V03}
    for d, content in blobs.data.items():
        (folder / "blobs/sha256" / d.removeprefix("sha256:")).write_bytes(content)
    index = json.loads((folder / "index.json").read_bytes())
    index["manifests"].append(descriptor)
    (folder / "index.json").write_bytes(rs.canonical(index))
    return folder, attestation


def test_layout_and_archive_referrers_by_subject(
    reg: dict[str, Any], run: Invoke, ok: Invoke, tmp_path: Path
) -> None:
    folder, attestation = _layout_with_referrer(tmp_path / "layout", reg)
    archive = rs.tar_folder(folder, tmp_path / "layout.tar")
    body = pulled_json(run("attestation", "pull", "--oci-ref", f"oci:{folder}:1.0", "-o", "json"))
    assert [(r["source"], r["outcome"], r["attestation"]) for r in body["referrers"]] == [
        ("layout", "imported", sha256_digest(attestation))
    ]
    # The other image of the layout has nothing attached.
    other = pulled_json(run("attestation", "pull", "--oci-ref", f"oci:{folder}:2.0", "-o", "json"))
    assert other["referrers"] == []
    again = pulled_json(
        run("attestation", "pull", "--oci-ref", f"oci-archive:{archive}:1.0", "-o", "json")
    )
    assert [r["outcome"] for r in again["referrers"]] == ["present"]
    log_verifies(ok)

    # The pulled event and what it stored travel in an audit bundle like any other.
    bundle_file = tmp_path / "audit.tgz"
    ok("audit", "export", "--output", str(bundle_file))
    copy = ["--db", str(tmp_path / "copy.db")]
    assert run(*copy, "audit", "import", str(bundle_file)).exit_code == 0
    assert run(*copy, "log", "verify").stdout.endswith("The log verifies.\n")
    listed = [
        ok("attestation", "list", "-o", "json"),
        run(*copy, "attestation", "list", "-o", "json"),
    ]
    assert listed[0].stdout == listed[1].stdout
    assert '"attestation.pulled"' in run(*copy, "log", "list", "-o", "json").stdout


OCI_FIXTURES = Path(__file__).parent / "fixtures" / "oci"


def test_real_referrer_manifests_in_a_layout(run: Invoke, db_path: Path, tmp_path: Path) -> None:
    """regclient's image index with its two referrers (an SBOM and a signature, listed by
    the real tag-schema index's descriptors) and cosign's real bundle attached to it: the
    two are skipped by their type without reading their layers (not in the layout), the
    bundle is read with the import's rules and skipped, for it names another image."""
    files = {
        name: (OCI_FIXTURES / f"{name}.json").read_bytes()
        for name in ("regclient-testrepo-v2-image-index",
                     "regclient-testrepo-v2-referrers-tag-index",
                     "regclient-testrepo-a1-sbom-referrer-manifest",
                     "regclient-testrepo-a2-signature-referrer-manifest")
    }  # fmt: skip
    index = files["regclient-testrepo-v2-image-index"]
    subject = {"mediaType": rs.INDEX, "digest": sha256_digest(index), "size": len(index)}
    cosign = (OCI_FIXTURES / "cosign-oci-attestation.sigstore.json").read_bytes()
    blobs = rs.Blobs()
    for content in files.values():
        blobs.add(content)
    empty, layer = blobs.add(b"{}"), blobs.add(cosign)
    bundle_manifest = rs.canonical(
        {"schemaVersion": 2, "mediaType": rs.MANIFEST, "artifactType": BUNDLE_V03,
         "config": {"mediaType": EMPTY, **empty},
         "layers": [{"mediaType": BUNDLE_V03, **layer}], "subject": subject}
    )  # fmt: skip
    tag_index = json.loads(files["regclient-testrepo-v2-referrers-tag-index"])
    descriptors = [
        {**subject, "annotations": {rs.REF_NAME: "v2"}},
        *tag_index["manifests"],
        {"mediaType": rs.MANIFEST, **blobs.add(bundle_manifest)},
    ]
    folder = rs.write_layout(tmp_path / "regclient", descriptors, blobs.data)
    body = pulled_json(run("attestation", "pull", "--oci-ref", f"oci:{folder}:v2", "-o", "json"))
    assert body == {
        "digest": subject["digest"],
        "referrers": [
            {"digest": "sha256:0484e93c23cddf24a8400547119558312023295af241d4cd1eaf1b27145c5026",
             "artifact_type": "application/example.sbom", "source": "layout",
             "outcome": "skipped", "reason": "not an attestation (application/example.sbom)",
             "attestation": None},
            {"digest": "sha256:741132f956e196c3858dab17e50ea977056f2f1ce1ad2900f11f4c8ff2d4203b",
             "artifact_type": "application/example.signature", "source": "layout",
             "outcome": "skipped", "reason": "not an attestation (application/example.signature)",
             "attestation": None},
            {"digest": sha256_digest(bundle_manifest), "artifact_type": BUNDLE_V03,
             "source": "layout", "outcome": "skipped",
             "reason": f"its statement does not name {subject['digest']}", "attestation": None},
        ],
    }  # fmt: skip
    assert query(db_path, "SELECT count(*) AS n FROM attestation") == [{"n": 0}]
    assert events(db_path, "attestation.pulled") == []


# --- --pull-evidence ------------------------------------------------------------------------


def test_record_and_policy_check_pull_evidence_first(
    reg: dict[str, Any], run: Invoke, ok: Invoke, refuse: Invoke, db_path: Path
) -> None:
    push, digest = reg["push"], reg["digest"]
    attestation = bundle(digest)
    push.tag_index("pol/app", digest, [push.referrer("pol/app", reg["subject"], attestation)])
    ref = f"{reg['registry'].host}/pol/app:1.0"
    ok("environment", "create", "--name", "k8s")
    ok("logical-environment", "policy", "set", "--name", "production", "--require-predicate", SLSA)
    record = (*record_args("k8s", "production", "app"), "--oci-ref", ref, "--plain-http")

    # Without the pull, the digest is not in evidence; --pull-evidence needs a reference.
    refuse(*record, contains="not in the evidence store")
    refuse(*record_args("k8s", "production", "app"), "--digest", digest, "--pull-evidence",
           code=2, contains="--pull-evidence needs --oci-ref")  # fmt: skip

    # A record the rules refuse stores nothing, not even what was pulled (one transaction).
    ok("logical-environment", "policy", "set", "--name", "staging", "--require-predicate",
       "https://example.com/never")  # fmt: skip
    never = "no attestation of predicate type https://example.com/never"
    refuse(*record_args("k8s", "staging", "app"), "--oci-ref", ref, "--plain-http",
           "--pull-evidence", contains=never)  # fmt: skip

    # The check pulls, keeps what it pulled, and answers: a refusal in its one line...
    refused = run("policy", "check", "--logical-env", "staging", "--oci-ref", ref,
                  "--plain-http", "--pull-evidence")  # fmt: skip
    assert_refused(refused, 1, never)
    [event] = events(db_path, "attestation.pulled")
    assert event["digests"] == [sha256_digest(attestation)]
    # ...a pass with what the pull found on stderr.
    checked = run("policy", "check", "--logical-env", "production", "--oci-ref", ref,
                  "--plain-http", "--pull-evidence", "-o", "json")  # fmt: skip
    assert checked.exit_code == 0, checked.stderr
    assert json.loads(checked.stdout)["passed"] is True
    assert "0 imported, 1 already present" in checked.stderr
    assert len(events(db_path, "attestation.pulled")) == 1

    # The record: pulled (already present now) and admitted in the same command.
    recorded = run(*record, "--pull-evidence", "-o", "json")
    assert recorded.exit_code == 0, recorded.stderr
    assert json.loads(recorded.stdout)["deployment"]["digest"] == digest
    assert "1 already present" in recorded.stderr
    log_verifies(ok)


def test_record_pull_evidence_is_one_transaction_with_the_record(
    reg: dict[str, Any], run: Invoke, ok: Invoke, db_path: Path
) -> None:
    push, digest = reg["push"], reg["digest"]
    # pol/app's referrer may exist from the previous test; gh/app's is enough on its own.
    attestation = bundle(digest)
    push.tag_index("gh/app", digest, [push.referrer("gh/app", reg["subject"], attestation)])
    ok("environment", "create", "--name", "k8s")
    ok("logical-environment", "policy", "set", "--name", "production", "--require-predicate", SLSA)
    ref = f"{reg['registry'].host}/gh/app:1.0"
    result = run(*record_args("k8s", "production", "app"), "--oci-ref", ref, "--plain-http",
                 "--pull-evidence")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    types = [r["type"] for r in query(db_path, "SELECT type FROM log_event ORDER BY seq")]
    # The pull and the record are consecutive events of one write.
    assert types[-2:] == ["attestation.pulled", "deployment.recorded"]
    log_verifies(ok)


# --- bad input ------------------------------------------------------------------------------


@pytest.fixture
def seeded_db(ok: Invoke, tmp_path: Path) -> None:
    """Something in the database, so that `refuse` compares real rows."""
    path = tmp_path / "seed.json"
    path.write_bytes(rs.statement("sha256:" + "0f" * 32))
    ok("attestation", "import", str(path))


def _tamper(storage: Path, digest: str, change: Callable[[bytes], bytes]) -> None:
    hexa = digest.removeprefix("sha256:")
    data = storage / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data"
    data.write_bytes(change(data.read_bytes()))


@pytest.mark.usefixtures("seeded_db")
def test_a_blob_that_does_not_hash_to_its_digest(reg: dict[str, Any], refuse: Invoke) -> None:
    push, digest = reg["push"], reg["digest"]
    good = bundle(digest, "sha256:" + "c1" * 32)
    descriptor = push.referrer("bad/app", reg["subject"], good)
    push.tag_index("bad/app", digest, [descriptor])
    layer = sha256_digest(good)
    # The same size, one byte changed, in the real registry's storage.
    _tamper(reg["storage"], layer, lambda b: b[:-2] + (b"]" if b[-2:-1] != b"]" else b")") + b[-1:])
    host = reg["registry"].host
    refuse("attestation", "pull", "--oci-ref", f"{host}/bad/app:1.0", "--plain-http",
           contains=f"served bytes for blob {host}/bad/app@{layer} whose sha256 is")  # fmt: skip


@pytest.mark.usefixtures("seeded_db")
def test_an_oversized_blob(reg: dict[str, Any], refuse: Invoke) -> None:
    push, digest = reg["push"], reg["digest"]
    big = bundle(digest)[:-1] + b" " * (4 * MiB) + b"}"
    push.tag_index("bad/app", digest, [push.referrer("bad/app", reg["subject"], big)])
    limit = "more than the 4 MiB limit for one manifest or attestation"
    refuse("attestation", "pull", "--oci-ref", f"{reg['registry'].host}/bad/app:1.0",
           "--plain-http", contains=limit)  # fmt: skip


@pytest.mark.usefixtures("seeded_db")
def test_a_blob_larger_than_its_descriptor_says(reg: dict[str, Any], refuse: Invoke) -> None:
    push, digest = reg["push"], reg["digest"]
    small = bundle(digest, "sha256:" + "d2" * 32)
    push.tag_index("bad/app", digest, [push.referrer("bad/app", reg["subject"], small)])
    # The registry's copy grows past 4 MiB; the manifest still says it is small.
    _tamper(reg["storage"], sha256_digest(small), lambda b: b + b" " * (4 * MiB))
    refuse("attestation", "pull", "--oci-ref", f"{reg['registry'].host}/bad/app:1.0",
           "--plain-http", contains="is too large: ")  # fmt: skip


@pytest.mark.usefixtures("seeded_db")
def test_one_pull_reads_a_bounded_number_of_referrers_and_bytes(
    reg: dict[str, Any], refuse: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bounds (1,000 referrers, 64 MiB of attestations) lowered for the test, so a few
    referrers pass them: a registry cannot make one pull read without end."""
    from deploytrack.registry import referrers

    push, digest = reg["push"], reg["digest"]
    attached = [bundle(digest, "sha256:" + f"{n:02x}" * 32) for n in range(3)]
    push.tag_index(
        "bad/app", digest, [push.referrer("bad/app", reg["subject"], a) for a in attached]
    )
    ref = f"{reg['registry'].host}/bad/app:1.0"
    monkeypatch.setattr(referrers, "MAX_REFERRERS", 2)
    too_many = "lists 3 referrers, more than the 2 deploytrack reads for one digest"
    refuse("attestation", "pull", "--oci-ref", ref, "--plain-http", contains=too_many)
    monkeypatch.setattr(referrers, "MAX_REFERRERS", 1000)
    monkeypatch.setattr(referrers, "MAX_PULLED_BYTES", 2 * len(attached[0]))
    refuse("attestation", "pull", "--oci-ref", ref, "--plain-http",
           contains="MiB of attestations to one digest: refused")  # fmt: skip


@pytest.mark.usefixtures("seeded_db")
def test_a_referrer_about_another_subject(reg: dict[str, Any], refuse: Invoke) -> None:
    push, digest = reg["push"], reg["digest"]
    images: rs.Layouts = reg["layouts"]
    other = images.digests["2.0"]
    elsewhere = {**reg["subject"], "digest": other}
    descriptor = push.referrer("bad/app", elsewhere, bundle(digest, "sha256:" + "e3" * 32))
    push.tag_index("bad/app", digest, [descriptor])
    refuse("attestation", "pull", "--oci-ref", f"{reg['registry'].host}/bad/app:1.0",
           "--plain-http", contains=f"but its subject is {other}")  # fmt: skip


@pytest.mark.usefixtures("seeded_db")
def test_a_bad_document_is_refused_with_the_imports_reason(
    reg: dict[str, Any], refuse: Invoke
) -> None:
    """Chainloop's real DSSE envelope whose payload is not base64, attached as a DSSE."""
    push, digest = reg["push"], reg["digest"]
    bad = attestation("chainloop-attestation-invalid-payload.json").read_bytes()
    descriptor = push.referrer("bad/app", reg["subject"], bad, artifact_type=DSSE)
    push.tag_index("bad/app", digest, [descriptor])
    refuse("attestation", "pull", "--oci-ref", f"{reg['registry'].host}/bad/app:1.0",
           "--plain-http", contains="DSSE payload is not valid base64")  # fmt: skip


def test_signature_bundles_are_skipped_never_refused(
    reg: dict[str, Any], pull: Callable[..., Result], db_path: Path
) -> None:
    """cosign's bundle format for signatures has the attestations' artifact type: the
    annotation says so (skipped without a fetch), or the bundle itself does."""
    push, digest = reg["push"], reg["digest"]
    signature = rs.canonical(
        {"mediaType": BUNDLE_V03, "verificationMaterial": {},
         "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": "AA=="},
                              "signature": "AA=="}}
    )  # fmt: skip
    annotated = push.referrer(
        "sig/app", reg["subject"], signature,
        annotations={"dev.sigstore.bundle.content": "message-signature",
                     "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"},
    )  # fmt: skip
    unannotated = signature + b"\n"
    bare = push.referrer("sig/app", reg["subject"], unannotated)
    push.tag_index("sig/app", digest, [annotated, bare])
    body = pulled_json(pull(f"{reg['registry'].host}/sig/app:1.0", "-o", "json"))
    reason = "a signature (message-signature bundle), not an attestation"
    assert [(r["digest"], r["outcome"], r["reason"]) for r in body["referrers"]] == [
        (annotated["digest"], "skipped", reason),
        (bare["digest"], "skipped", reason),
    ]
    assert events(db_path, "attestation.pulled") == []
    # The registry writes its access log line after the answer: wait for the last one.
    fetched = f"GET /v2/sig/app/blobs/{sha256_digest(unannotated)} "
    deadline = time.monotonic() + 5
    while fetched not in (log := reg["registry"].log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fetched in log
    assert f"GET /v2/sig/app/blobs/{sha256_digest(signature)} " not in log

    # Through the referrers API, whose descriptors carry the manifests' annotations, the
    # annotated signature costs not even its manifest.
    proxy = ReferrersProxy(reg["registry"], reg["storage"])
    try:
        body = pulled_json(pull(f"{proxy.host}/sig/app:1.0", "-o", "json"))
    finally:
        proxy.stop()
    assert sorted(r["digest"] for r in body["referrers"] if r["reason"] == reason) == sorted(
        [annotated["digest"], bare["digest"]]
    )
    assert f"GET /v2/sig/app/manifests/{annotated['digest']}" not in proxy.log
    assert f"GET /v2/sig/app/manifests/{bare['digest']}" in proxy.log


@pytest.mark.usefixtures("seeded_db")
def test_a_referrers_index_naming_the_image_itself_is_a_loop(
    reg: dict[str, Any], refuse: Invoke
) -> None:
    push, digest = reg["push"], reg["digest"]
    push.tag_index("bad/app", digest, [{**reg["subject"], "artifactType": BUNDLE_V03}])
    refuse("attestation", "pull", "--oci-ref", f"{reg['registry'].host}/bad/app:1.0",
           "--plain-http", contains="as a referrer of itself: a loop")  # fmt: skip


@pytest.mark.usefixtures("seeded_db")
def test_a_next_page_on_another_server_is_refused(reg: dict[str, Any], refuse: Invoke) -> None:
    """The login goes with every request of the repository: never to a host a Link names."""
    push = reg["push"]
    for n in range(3):
        push.referrer(
            "api/app", reg["subject"], bundle(reg["digest"], f"sha256:{n:02x}" + "9" * 62)
        )
    proxy = ReferrersProxy(reg["registry"], reg["storage"], page_size=1)
    proxy.link_host = "http://127.0.0.2:9"
    try:
        elsewhere = "links the next page of referrers to another server (127.0.0.2:9)"
        refuse("attestation", "pull", "--oci-ref", f"{proxy.host}/api/app:1.0", "--plain-http",
               contains=elsewhere)  # fmt: skip
    finally:
        proxy.stop()
    assert not any("page=" in line for line in proxy.log)


def test_referrers_urls_carry_their_repository_for_logins() -> None:
    """A token's scope and the login remembered per repository come from the URL."""
    from deploytrack.registry import client

    url = "https://r.example/v2/team/app/referrers/sha256:" + "a" * 64
    assert client._repository_of(url) == "team/app"


@pytest.mark.usefixtures("seeded_db")
@pytest.mark.parametrize(
    ("serve", "loop", "message"),
    [
        (b"<html>not json</html>", False, "is not valid JSON"),
        (b"{" + b" " * (4 * MiB) + b"}", False, "served more than 4 MiB"),
        (None, True, "link back to one already read (a loop of indexes)"),
    ],
    ids=["not-json", "oversized-index", "loop-of-pages"],
)
def test_bad_referrers_api_answers(
    reg: dict[str, Any], refuse: Invoke, serve: bytes | None, loop: bool, message: str
) -> None:
    push = reg["push"]
    push.referrer("api/app", reg["subject"], bundle(reg["digest"]))
    proxy = ReferrersProxy(reg["registry"], reg["storage"], page_size=2)
    proxy.serve, proxy.loop = serve, loop
    try:
        refuse("attestation", "pull", "--oci-ref", f"{proxy.host}/api/app:1.0", "--plain-http",
               contains=message)  # fmt: skip
    finally:
        proxy.stop()


@pytest.mark.usefixtures("seeded_db")
def test_a_chart_file_has_nothing_attached(refuse: Invoke, tmp_path: Path) -> None:
    chart = tmp_path / "mychart-0.1.0.tgz"
    chart.write_bytes(rs.chart_tgz())
    refuse(*record_args("k8s", "staging", "c", "HELM_CHART"), "--oci-ref", str(chart),
           "--pull-evidence", contains="is a chart file: nothing is attached")  # fmt: skip
