"""`attestation push` and `attestation create --push` against Debian's docker-registry
(distribution 2.8.2: no referrers API, so the referrers tag schema), with Basic auth, TLS
and Bearer tokens as the other registry tests run them.

What was pushed is read back with plain HTTP and with skopeo, never with deploytrack: the
referrer manifest, the layer's bytes (whose sha256 is the attestation's digest), the
referrers tag's index. The referrers-API path runs against the same registry behind a
small proxy in this file that answers `GET /v2/<name>/referrers/<digest>` from the
registry's own manifests (read from its storage folder); the same proxy serves an index
the registry itself would refuse to store (not JSON, over 4 MiB).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import Invoke, assert_refused, snapshot
from helpers import sha256_digest

from . import registry_support as rs
from .conftest import ALICE, BOB

OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY = {
    "mediaType": OCI_EMPTY,
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
    "data": "e30=",
}
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
INTOTO = "application/vnd.in-toto+json"
SLSA = "https://slsa.dev/provenance/v1"
ACCEPT = ", ".join((rs.MANIFEST, rs.INDEX, rs.DOCKER_MANIFEST, rs.DOCKER_LIST))

_repos = iter(range(1_000_000))


# --- reading the registry without deploytrack ----------------------------------------------


def _http(
    registry: rs.Registry | str,
    method: str,
    path: str,
    *,
    accept: str = ACCEPT,
    body: bytes | None = None,
    content_type: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    host = registry if isinstance(registry, str) else registry.host
    if isinstance(registry, rs.Registry) and registry.scheme == "https":
        context = ssl.create_default_context(cafile=str(registry.ca))
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, context=context)
    else:
        conn = http.client.HTTPConnection(host, timeout=10)
    headers = {"Accept": accept}
    if isinstance(registry, rs.Registry) and registry.username:
        login = f"{registry.username}:{registry.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(login).decode()
    if content_type:
        headers["Content-Type"] = content_type
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def _manifest(registry: rs.Registry, repo: str, target: str) -> bytes | None:
    status, _, body = _http(registry, "GET", f"/v2/{repo}/manifests/{target}")
    assert status in (200, 404), (status, body)
    return body if status == 200 else None


def _blob(registry: rs.Registry, repo: str, digest: str) -> bytes:
    status, _, body = _http(registry, "GET", f"/v2/{repo}/blobs/{digest}", accept="*/*")
    assert status == 200, (status, body)
    return body


def _tag(digest: str) -> str:
    return digest.replace(":", "-")


def _revisions(registry: rs.Registry, repo: str) -> set[str]:
    """Every manifest the registry holds in `repo`, from its storage folder."""
    folder = _storage(registry) / repo / "_manifests" / "revisions" / "sha256"
    return {"sha256:" + p.name for p in folder.iterdir()} if folder.exists() else set()


def _storage(registry: rs.Registry) -> Path:
    return registry.log.parent / "storage" / "docker" / "registry" / "v2" / "repositories"


def _writes(registry: rs.Registry, since: int) -> list[str]:
    """PUT, POST and PATCH requests in the registry's access log after byte `since`."""
    text = registry.log.read_bytes()[since:].decode(errors="replace")
    return re.findall(r'"(PUT|POST|PATCH) (/v2/[^ ]+)', text)


# --- fixtures -------------------------------------------------------------------------------


def _image(registry: rs.Registry, layouts: rs.Layouts, work: Path, tag: str = "1.0") -> str:
    """Push a test image to a repository of its own; returns REGISTRY/REPO:TAG."""
    repo = f"push/app{next(_repos)}"
    rs.skopeo_copy(f"oci:{layouts.oci}:{tag}", registry, f"{repo}:{tag}", work)
    registry.digests[f"{repo}:{tag}"] = layouts.digests[tag]
    return f"{registry.host}/{repo}:{tag}"


def _repo(ref: str) -> str:
    return ref.split("/", 1)[1].rsplit(":", 1)[0]


def _import(ok: Invoke, tmp_path: Path, data: bytes) -> str:
    path = tmp_path / f"att-{sha256_digest(data)[7:19]}.json"
    path.write_bytes(data)
    ok("attestation", "import", str(path))
    return sha256_digest(data)


def _dsse(statement: bytes) -> bytes:
    sig = base64.b64encode(b"not checked by push").decode()
    envelope = {
        "payloadType": INTOTO,
        "payload": base64.b64encode(statement).decode(),
        "signatures": [{"keyid": "", "sig": sig}],
    }
    return rs.canonical(envelope)


def _bundle(statement: bytes) -> bytes:
    envelope = json.loads(_dsse(statement))
    material = {"publicKey": {"hint": "k"}, "tlogEntries": []}
    return rs.canonical({"mediaType": BUNDLE, "verificationMaterial": material,
                         "dsseEnvelope": envelope})  # fmt: skip


def _push(run: Invoke, digest: str, to: str, *extra: str, input: str | None = None) -> Result:
    return run("attestation", "push", digest, "--to", to, *extra, "-o", "json", input=input)


def _pushed(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def image(plain_registry: rs.Registry, layouts: rs.Layouts, work: Path) -> str:
    return _image(plain_registry, layouts, work)


# --- pushing --------------------------------------------------------------------------------


def test_push_attaches_the_exact_bytes_as_a_referrer_listed_in_the_tag_index(
    plain_registry: rs.Registry,
    image: str,
    ok: Invoke,
    run: Invoke,
    db_path: Path,
    tmp_path: Path,
    work: Path,
) -> None:
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    data = rs.statement(subject)
    digest = _import(ok, tmp_path, data)
    events = len(json.loads(ok("log", "list", "-o", "json").stdout))
    before = snapshot(db_path)

    body = _pushed(_push(run, digest, image, "--plain-http"))

    manifest_bytes = _manifest(plain_registry, repo, body["referrer"]["digest"])
    assert manifest_bytes is not None
    assert sha256_digest(manifest_bytes) == body["referrer"]["digest"]
    subject_bytes = _manifest(plain_registry, repo, subject)
    assert subject_bytes is not None
    assert json.loads(manifest_bytes) == {
        "schemaVersion": 2,
        "mediaType": rs.MANIFEST,
        "artifactType": INTOTO,
        "config": EMPTY,
        "layers": [{"mediaType": INTOTO, "digest": digest, "size": len(data)}],
        "subject": {"mediaType": rs.MANIFEST, "digest": subject, "size": len(subject_bytes)},
        "annotations": {"in-toto.io/predicate-type": SLSA},
    }
    layer = _blob(plain_registry, repo, digest)
    assert layer == data and sha256_digest(layer) == digest
    assert _blob(plain_registry, repo, EMPTY["digest"]) == b"{}"
    index = json.loads(_manifest(plain_registry, repo, _tag(subject)) or b"null")
    assert index == {
        "schemaVersion": 2,
        "mediaType": rs.INDEX,
        "manifests": [
            {
                "mediaType": rs.MANIFEST,
                "digest": body["referrer"]["digest"],
                "size": len(manifest_bytes),
                "artifactType": INTOTO,
                "annotations": {"in-toto.io/predicate-type": SLSA},
            }
        ],
    }
    # skopeo reads the same manifest back.
    raw = rs.run("skopeo", "inspect", "--raw", "--tls-verify=false",
                 f"docker://{plain_registry.host}/{repo}@{body['referrer']['digest']}")  # fmt: skip
    assert raw == manifest_bytes
    assert body == {
        "attestation": digest,
        "repository": f"{plain_registry.host}/{repo}",
        "subject": {"media_type": rs.MANIFEST, "digest": subject, "size": len(subject_bytes)},
        "referrer": {
            "media_type": rs.MANIFEST,
            "digest": body["referrer"]["digest"],
            "size": len(manifest_bytes),
        },
        "artifact_type": INTOTO,
        "referrers": "tag",
        "tag": _tag(subject),
        "pushed": True,
        "tag_updated": True,
    }
    # Pushing changes nothing in the database and logs no event.
    assert snapshot(db_path) == before
    assert len(json.loads(ok("log", "list", "-o", "json").stdout)) == events
    ok("log", "verify")


def test_table_output_prints_the_referrer_reference(
    plain_registry: rs.Registry, image: str, ok: Invoke, tmp_path: Path
) -> None:
    subject = plain_registry.digests[image.split("/", 1)[1]]
    digest = _import(ok, tmp_path, rs.statement(subject))
    result = ok("attestation", "push", digest[:19], "--to", image, "--plain-http")
    [line] = result.stdout.splitlines()
    assert re.fullmatch(rf"{re.escape(image.rsplit(':', 1)[0])}@sha256:[0-9a-f]{{64}}", line)
    assert f"Pushed attestation {digest}" in result.stderr
    assert f"referrers tag {_tag(subject)} updated" in result.stderr


def test_pushing_again_sends_nothing_new(
    plain_registry: rs.Registry, image: str, ok: Invoke, run: Invoke, tmp_path: Path
) -> None:
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    digest = _import(ok, tmp_path, rs.statement(subject))
    first = _pushed(_push(run, digest, image, "--plain-http"))
    index = _manifest(plain_registry, repo, _tag(subject))
    since = plain_registry.log.stat().st_size

    again = _pushed(_push(run, digest, image, "--plain-http"))

    assert again["referrer"] == first["referrer"]
    assert (again["pushed"], again["tag_updated"]) == (False, False)
    assert _manifest(plain_registry, repo, _tag(subject)) == index
    assert _writes(plain_registry, since) == []
    result = run("attestation", "push", digest, "--to", image, "--plain-http")
    assert "already" in result.stderr and "lists it already" in result.stderr
    ok("log", "verify")


def test_a_lost_index_entry_is_repaired_by_pushing_again(
    plain_registry: rs.Registry, image: str, ok: Invoke, run: Invoke, tmp_path: Path
) -> None:
    """Two pushers racing on the tag: the last write wins and drops the other's entry;
    the dropped manifest is still in the registry, and pushing it again adds it back."""
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    statement = rs.statement(subject)
    first = _pushed(_push(run, _import(ok, tmp_path, statement), image, "--plain-http"))
    second = _pushed(_push(run, _import(ok, tmp_path, _dsse(statement)), image, "--plain-http"))
    index = json.loads(_manifest(plain_registry, repo, _tag(subject)) or b"{}")
    assert [m["digest"] for m in index["manifests"]] == [
        first["referrer"]["digest"],
        second["referrer"]["digest"],
    ]
    # The other pusher's write, made from the index as it was before the second push.
    lost = {**index, "manifests": index["manifests"][:1]}
    status, _, _ = _http(plain_registry, "PUT", f"/v2/{repo}/manifests/{_tag(subject)}",
                         body=rs.canonical(lost), content_type=rs.INDEX)  # fmt: skip
    assert status == 201

    repaired = _pushed(_push(run, second["attestation"], image, "--plain-http"))

    assert (repaired["pushed"], repaired["tag_updated"]) == (False, True)
    index = json.loads(_manifest(plain_registry, repo, _tag(subject)) or b"{}")
    assert [m["digest"] for m in index["manifests"]] == [
        first["referrer"]["digest"],
        second["referrer"]["digest"],
    ]


@pytest.mark.parametrize(
    ("wrap", "artifact_type", "annotations"),
    [
        (
            _bundle,
            BUNDLE,
            {"dev.sigstore.bundle.content": "dsse-envelope",
             "dev.sigstore.bundle.predicateType": SLSA},
        ),
        (_dsse, DSSE, {"in-toto.io/predicate-type": SLSA}),
    ],
    ids=["sigstore-bundle", "dsse"],
)  # fmt: skip
def test_artifact_type_follows_the_format(
    plain_registry: rs.Registry,
    image: str,
    ok: Invoke,
    run: Invoke,
    tmp_path: Path,
    wrap: Any,
    artifact_type: str,
    annotations: dict[str, str],
) -> None:
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    data = wrap(rs.statement(subject))
    digest = _import(ok, tmp_path, data)
    body = _pushed(_push(run, digest, image, "--plain-http", "--referrers-mode", "tag"))
    assert body["artifact_type"] == artifact_type
    manifest = json.loads(_manifest(plain_registry, repo, body["referrer"]["digest"]) or b"{}")
    assert manifest["artifactType"] == artifact_type
    assert manifest["layers"] == [{"mediaType": artifact_type, "digest": digest, "size": len(data)}]
    assert manifest["annotations"] == annotations
    assert _blob(plain_registry, repo, digest) == data
    [entry] = json.loads(_manifest(plain_registry, repo, _tag(subject)) or b"{}")["manifests"]
    assert (entry["artifactType"], entry["annotations"]) == (artifact_type, annotations)


def test_a_multi_platform_index_is_the_subject(
    plain_registry: rs.Registry, layouts: rs.Layouts, work: Path, ok: Invoke, run: Invoke,
    tmp_path: Path,
) -> None:  # fmt: skip
    image = _image(plain_registry, layouts, work, "multi-1.0")
    repo, subject = _repo(image), layouts.digests["multi-1.0"]
    body = _pushed(_push(run, _import(ok, tmp_path, rs.statement(subject)), image, "--plain-http"))
    manifest = json.loads(_manifest(plain_registry, repo, body["referrer"]["digest"]) or b"{}")
    assert manifest["subject"]["mediaType"] == rs.INDEX
    assert manifest["subject"]["digest"] == subject


def test_digest_pinned_reference(
    plain_registry: rs.Registry, image: str, ok: Invoke, run: Invoke, tmp_path: Path
) -> None:
    subject = plain_registry.digests[image.split("/", 1)[1]]
    pinned = f"{image.rsplit(':', 1)[0]}@{subject}"
    body = _pushed(_push(run, _import(ok, tmp_path, rs.statement(subject)), pinned, "--plain-http"))
    assert body["subject"]["digest"] == subject


# --- the referrers API, through a proxy that answers it ---------------------------------------


class _Front:
    """A proxy in front of the test registry (Host passed through, so the registry's
    upload locations name the proxy). It answers the referrers API from the registry's own
    manifests when `api` is set, and serves `fixed` answers for given paths."""

    def __init__(self, registry: rs.Registry, api: bool) -> None:
        self.registry, self.api = registry, api
        # path -> (status, content type, body[, more headers])
        self.fixed: dict[str, tuple[Any, ...]] = {}
        self.log: list[tuple[str, str]] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(
                self, status: int, content_type: str, body: bytes, more: Any = None
            ) -> None:
                self.send_response(status)
                for name, value in (more or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                front.log.append((self.command, self.path))
                if self.path in front.fixed:
                    if self.command in ("POST", "PUT"):
                        self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    self._answer(*front.fixed[self.path])
                    return
                match = re.fullmatch(r"/v2/(.+)/referrers/(sha256:[0-9a-f]{64})", self.path)
                if match and front.api:
                    self._answer(200, rs.INDEX, front.referrers(match[1], match[2]))
                    return
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(front.registry.host, timeout=10)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                response = conn.getresponse()
                data = response.read()
                conn.close()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", response.getheader("Content-Length", "0")
                                 if self.command == "HEAD" else str(len(data)))  # fmt: skip
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def referrers(self, repo: str, digest: str) -> bytes:
        found = []
        for revision in sorted(_revisions(self.registry, repo)):
            body = _manifest(self.registry, repo, revision) or b"{}"
            manifest = json.loads(body)
            if manifest.get("subject", {}).get("digest") == digest:
                entry = {"mediaType": manifest["mediaType"], "digest": revision, "size": len(body),
                         "artifactType": manifest.get("artifactType")}  # fmt: skip
                if "annotations" in manifest:
                    entry["annotations"] = manifest["annotations"]
                found.append(entry)
        return rs.canonical({"schemaVersion": 2, "mediaType": rs.INDEX, "manifests": found})

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def front(plain_registry: rs.Registry) -> Iterator[_Front]:
    server = _Front(plain_registry, api=False)
    yield server
    server.stop()


def test_auto_uses_the_referrers_api_when_the_registry_has_it(
    plain_registry: rs.Registry, image: str, front: _Front, ok: Invoke, run: Invoke,
    tmp_path: Path,
) -> None:  # fmt: skip
    front.api = True
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    via = f"{front.host}/{repo}:1.0"
    digest = _import(ok, tmp_path, rs.statement(subject))
    for mode in ("auto", "api"):
        body = _pushed(_push(run, digest, via, "--plain-http", "--referrers-mode", mode))
        assert (body["referrers"], body["tag"], body["tag_updated"]) == ("api", None, False)
    assert _manifest(plain_registry, repo, _tag(subject)) is None  # no tag written
    listed = json.loads(front.referrers(repo, subject))["manifests"]
    assert [m["digest"] for m in listed] == [body["referrer"]["digest"]]
    assert listed[0]["artifactType"] == INTOTO
    assert ("GET", f"/v2/{repo}/referrers/{subject}") in front.log


def test_referrers_mode_api_without_the_api_is_refused_before_anything_is_pushed(
    plain_registry: rs.Registry, image: str, ok: Invoke, run: Invoke, tmp_path: Path
) -> None:
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    digest = _import(ok, tmp_path, rs.statement(subject))
    revisions = _revisions(plain_registry, repo)
    result = _push(run, digest, image, "--plain-http", "--referrers-mode", "api")
    assert_refused(result, contains="has no referrers API")
    assert "--referrers-mode auto or tag" in result.stderr
    assert _revisions(plain_registry, repo) == revisions
    assert _manifest(plain_registry, repo, _tag(subject)) is None


# --- refusals: one line, nothing pushed, the database unchanged ------------------------------


def test_bad_inputs_are_refused_with_nothing_pushed(
    plain_registry: rs.Registry, image: str, front: _Front, ok: Invoke, run: Invoke,
    db_path: Path, tmp_path: Path,
) -> None:  # fmt: skip
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    digest = _import(ok, tmp_path, rs.statement(subject))
    other = _import(ok, tmp_path, rs.statement("sha256:" + "ab" * 32))
    before = snapshot(db_path)
    via = f"{front.host}/{repo}:1.0"
    tag_path = f"/v2/{repo}/manifests/{_tag(subject)}"
    not_json = (200, rs.INDEX, b"<html>not an index</html>")
    huge = (200, rs.INDEX, b'{"manifests":[' + b" " * (4 * 1024 * 1024) + b"]}")
    probe = f"/v2/{repo}/referrers/{subject}"
    cases: list[tuple[tuple[str, ...], str, dict[str, tuple[Any, ...]]]] = [
        ((digest, "--to", f"127.0.0.1:{rs.free_port()}/x/y:1"), "connection refused", {}),
        (("sha256:" + "00" * 32, "--to", image), "no attestation", {}),
        ((other, "--to", image), f"does not name {subject}", {}),
        ((digest, "--to", f"{plain_registry.host}/{repo}:9.9"), "tag 9.9 not found", {}),
        ((digest, "--to", f"oci:{tmp_path}:1.0"), "is an OCI layout", {}),
        ((digest, "--to", "chart-0.1.0.tgz"), "is a chart file", {}),
        ((digest, "--to", via), "is not a referrers index: it is not valid JSON",
         {tag_path: not_json}),
        ((digest, "--to", via), "larger than 4 MiB", {tag_path: huge}),
        # A probe answered neither with an index nor with 404.
        ((digest, "--to", via), "cannot tell whether", {probe: (500, "text/plain", b"oops")}),
    ]  # fmt: skip
    for args, message, fixed in cases:
        front.fixed = fixed
        result = run("attestation", "push", *args, "--plain-http")
        assert_refused(result, contains=message)
        assert _revisions(plain_registry, repo) == {subject}, args
        assert _manifest(plain_registry, repo, _tag(subject)) is None, args
    assert snapshot(db_path) == before
    ok("log", "verify")


def test_an_upload_sent_to_another_host_is_refused(
    plain_registry: rs.Registry, image: str, front: _Front, ok: Invoke, run: Invoke,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The login goes with every request to the registry: never to a host it names."""
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    elsewhere = rs.SocketServer("close")
    try:
        location = f"http://{elsewhere.host}/v2/{repo}/blobs/uploads/x"
        front.fixed = {f"/v2/{repo}/blobs/uploads/": (202, "text/plain", b"",
                                                     {"Location": location})}  # fmt: skip
        digest = _import(ok, tmp_path, rs.statement(subject))
        result = _push(run, digest, f"{front.host}/{repo}:1.0", "--plain-http")
        assert_refused(result, contains=f"to {elsewhere.host}: refusing to send it elsewhere")
        assert elsewhere.connections == 0
    finally:
        elsewhere.stop()
    assert _revisions(plain_registry, repo) == {subject}


def test_a_tag_that_is_not_a_referrers_index_is_left_alone(
    plain_registry: rs.Registry, layouts: rs.Layouts, work: Path, image: str, ok: Invoke,
    run: Invoke, tmp_path: Path,
) -> None:  # fmt: skip
    """The registry itself holds an image under the subject's referrers tag."""
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    rs.skopeo_copy(f"oci:{layouts.oci}:1.1", plain_registry, f"{repo}:{_tag(subject)}", work)
    revisions = _revisions(plain_registry, repo)
    digest = _import(ok, tmp_path, rs.statement(subject))
    result = _push(run, digest, image, "--plain-http")
    assert_refused(result, contains=f"the referrers tag {_tag(subject)} of")
    assert "is not a referrers index" in result.stderr and rs.MANIFEST in result.stderr
    assert _revisions(plain_registry, repo) == revisions


def test_a_tag_index_that_would_pass_4_mib_is_refused(
    plain_registry: rs.Registry, image: str, ok: Invoke, run: Invoke, tmp_path: Path
) -> None:
    """A real index just under the limit, stored by the registry: one entry more is over."""
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    subject_bytes = _manifest(plain_registry, repo, subject) or b""
    filler = {"x": "y" * (4 * 1024 * 1024 - 400)}
    entry = {"mediaType": rs.MANIFEST, "digest": subject, "size": len(subject_bytes),
             "annotations": filler}  # fmt: skip
    index = rs.canonical({"schemaVersion": 2, "mediaType": rs.INDEX, "manifests": [entry]})
    assert len(index) <= 4 * 1024 * 1024
    status, _, answer = _http(plain_registry, "PUT", f"/v2/{repo}/manifests/{_tag(subject)}",
                              body=index, content_type=rs.INDEX)  # fmt: skip
    assert status == 201, answer
    revisions = _revisions(plain_registry, repo)
    digest = _import(ok, tmp_path, rs.statement(subject))
    assert_refused(_push(run, digest, image, "--plain-http"), contains="would grow past 4 MiB")
    assert _revisions(plain_registry, repo) == revisions
    assert _manifest(plain_registry, repo, _tag(subject)) == index


# --- logins and TLS ---------------------------------------------------------------------------


def test_basic_auth(
    basic_registry: rs.Registry, layouts: rs.Layouts, work: Path, ok: Invoke, run: Invoke,
    tmp_path: Path,
) -> None:  # fmt: skip
    image = _image(basic_registry, layouts, work)
    repo, subject = _repo(image), basic_registry.digests[image.split("/", 1)[1]]
    digest = _import(ok, tmp_path, rs.statement(subject))
    assert_refused(_push(run, digest, image, "--plain-http"), contains="authentication required")
    login = ("--registry-server", basic_registry.host, "--registry-username", ALICE[0],
             "--registry-password-stdin")  # fmt: skip
    wrong = _push(run, digest, image, "--plain-http", *login, input="nope\n")
    assert_refused(wrong, contains="authentication failed")
    assert _revisions(basic_registry, repo) == {subject}
    body = _pushed(_push(run, digest, image, "--plain-http", *login, input=f"{ALICE[1]}\n"))
    assert _blob(basic_registry, repo, digest) == rs.statement(subject)
    assert body["tag_updated"] is True
    assert ALICE[1] not in json.dumps(body)


def test_tls_with_a_private_ca(
    tls_registry: rs.Registry, layouts: rs.Layouts, work: Path, tls: rs.TlsFiles, ok: Invoke,
    run: Invoke, tmp_path: Path,
) -> None:  # fmt: skip
    image = _image(tls_registry, layouts, work)
    repo, subject = _repo(image), tls_registry.digests[image.split("/", 1)[1]]
    digest = _import(ok, tmp_path, rs.statement(subject))
    assert_refused(_push(run, digest, image), contains="certificate verify failed")
    body = _pushed(_push(run, digest, image, "--ca-file", str(tls.ca)))
    assert _manifest(tls_registry, repo, body["referrer"]["digest"]) is not None


def test_no_push_permission(
    token_registry: rs.Registry, ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path,
    backend: str,
) -> None:  # fmt: skip
    """pub/app is public: anyone may pull it (the subject resolves), only logins push."""
    image = f"{token_registry.host}/pub/app:1.0"
    subject = token_registry.digests["pub/app:1.0"]
    # The registry lives for the session: each backend's run pushes an attestation of its own.
    digest = _import(ok, tmp_path, rs.statement(subject, name=f"pub-app-{backend}"))
    stored = _revisions(token_registry, "pub/app")
    assert subject in stored
    before = snapshot(db_path)
    result = _push(run, digest, image, "--plain-http")
    assert_refused(result, contains="wants a login to push to pub/app")
    assert _revisions(token_registry, "pub/app") == stored
    assert snapshot(db_path) == before
    login = ("--registry-server", token_registry.host, "--registry-username", BOB[0],
             "--registry-password-stdin")  # fmt: skip
    _pushed(_push(run, digest, image, "--plain-http", *login, input=f"{BOB[1]}\n"))
    # The referrer, and the referrers tag's new index (a manifest too).
    assert len(_revisions(token_registry, "pub/app") - stored) == 2


# --- attestation create --push ---------------------------------------------------------------


def _create(run: Invoke, ref: str, *extra: str) -> Result:
    return run(
        "attestation", "create", "--workflow", "release", "--project", "api",
        "--material", f"CONTAINER_IMAGE={ref}", "--plain-http", *extra, "-o", "json",
    )  # fmt: skip


def test_create_push_pushes_what_it_created(
    plain_registry: rs.Registry, image: str, ok: Invoke, run: Invoke
) -> None:
    repo = _repo(image)
    result = _create(run, image, "--push", image)
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    digest = body["attestation"]["digest"]
    assert body["pushed"]["attestation"] == digest
    assert body["pushed"]["artifact_type"] == DSSE
    stored = ok("artifact", "download", "--digest", digest).stdout_bytes
    assert _blob(plain_registry, repo, digest) == stored
    ok("log", "verify")
    text = run("attestation", "create", "--workflow", "w", "--project", "p", "--material",
               f"CONTAINER_IMAGE={image}", "--plain-http", "--push", image)  # fmt: skip
    assert text.exit_code == 0, text.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", text.stdout)
    assert "Pushed attestation" in text.stderr


def test_create_push_refused_stores_nothing(
    plain_registry: rs.Registry, image: str, ok: Invoke, run: Invoke, db_path: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    ok("environment", "list")
    before = snapshot(db_path)
    out = tmp_path / "envelope.json"
    repo, subject = _repo(image), plain_registry.digests[image.split("/", 1)[1]]
    other = f"{plain_registry.host}/acme/app:1.1"  # not a subject of what is created
    cases = [
        (("--push", image, "--referrers-mode", "api"), "has no referrers API"),
        (("--push", other), "does not name"),
    ]
    for extra, message in cases:
        result = _create(run, image, *extra, "--output-file", str(out))
        assert_refused(result, contains=message)
        assert not out.exists()
    assert snapshot(db_path) == before
    assert _revisions(plain_registry, repo) == {subject}
    usage = _create(run, image, "--referrers-mode", "tag")
    assert_refused(usage, code=2, contains="--referrers-mode needs --push")


@pytest.mark.parametrize(
    ("name", "artifact_type"),
    [
        ("chainloop-slsa_provenance.sigstore.json", BUNDLE),
        ("sigstore-go-bundle-publish.json", "application/vnd.dev.sigstore.bundle+json;version=0.1"),
        ("chainloop-attestation-dsse.json", DSSE),
        ("sigstore-conformance-statement.json", INTOTO),
    ],
)
def test_artifact_type_of_real_attestations(name: str, artifact_type: str) -> None:
    """Real files: a GitHub attest-build-provenance bundle, a v0.1 bundle (its own media
    type spelling), a DSSE envelope, a bare statement."""
    from conftest import attestation

    from deploytrack.evidence import parse_document
    from deploytrack.services.push import artifact_of

    data = attestation(name).read_bytes()
    parsed = parse_document(data, name)
    artifact = artifact_of(parsed)
    assert artifact.media_type == artifact_type
    assert artifact.data == data
    key = "dev.sigstore.bundle.predicateType" if "bundle" in artifact_type else (
        "in-toto.io/predicate-type")  # fmt: skip
    assert dict(artifact.annotations)[key] == parsed.predicate_type


def test_a_chart_in_a_registry(
    plain_registry: rs.Registry, layouts: rs.Layouts, work: Path, ok: Invoke, run: Invoke,
    tmp_path: Path,
) -> None:  # fmt: skip
    chart = _image(plain_registry, layouts, work, "0.1.0")
    repo, subject = _repo(chart), layouts.digests["0.1.0"]
    digest = _import(ok, tmp_path, rs.statement(subject))
    body = _pushed(_push(run, digest, f"oci://{chart}", "--plain-http"))
    assert body["subject"]["digest"] == subject
    assert _blob(plain_registry, repo, digest) == rs.statement(subject)
