"""Real parts for the registry tests: Debian's docker-registry, skopeo, openssl, and small
HTTP servers for what a real registry cannot be made to do.

Nothing here is a mock: every server listens on 127.0.0.1 and speaks HTTP (or TLS) to
the code under test, which does not know it is being tested.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from helpers import intoto_statement, sha256_digest

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

BINARIES = {
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "htpasswd": "apache2-utils",
    "openssl": "openssl",
}


def require_binaries() -> None:
    """Fail (never skip) when a package the tests use is missing."""
    missing = [f"{b} (Debian package {p})" for b, p in BINARIES.items() if not shutil.which(b)]
    if missing:
        raise RuntimeError(
            "the registry tests need " + ", ".join(missing) + ": run `make test`, which "
            "installs them (scripts/system-deps.sh)"
        )


def run(*args: str | Path, input: bytes | None = None, env: dict | None = None) -> bytes:
    proc = subprocess.run(
        [str(a) for a in args], input=input, capture_output=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# --- images and layouts -------------------------------------------------------------------


@dataclass
class Blobs:
    """Content-addressed blobs, written out as an OCI layout or a skopeo dir: folder."""

    data: dict[str, bytes] = field(default_factory=dict)

    def add(self, content: bytes) -> dict[str, Any]:
        digest = sha256_digest(content)
        self.data[digest] = content
        return {"digest": digest, "size": len(content)}


def _image(blobs: Blobs, name: str, arch: str, docker: bool = False) -> bytes:
    """A small runnable-looking image manifest (config + one gzipped layer)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        content = f"{name} {arch}\n".encode()
        info = tarfile.TarInfo("app/NAME")
        info.size, info.mtime = len(content), 1_767_225_600
        tar.addfile(info, io.BytesIO(content))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    config = canonical(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Labels": {"name": name}},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(raw.getvalue())]},
        }
    )
    config_type = (
        "application/vnd.docker.container.image.v1+json"
        if docker
        else "application/vnd.oci.image.config.v1+json"
    )
    layer_type = (
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
        if docker
        else "application/vnd.oci.image.layer.v1.tar+gzip"
    )
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else MANIFEST,
            "config": {"mediaType": config_type, **blobs.add(config)},
            "layers": [{"mediaType": layer_type, **blobs.add(layer)}],
        }
    )


def chart_tgz(
    name: str = "mychart", version: str = "0.1.0", chart_yaml: str | None = None, prefix: str = ""
) -> bytes:
    """What `helm package` writes: a gzipped tar of <name>/Chart.yaml, values, templates."""
    if chart_yaml is None:
        chart_yaml = (
            f"apiVersion: v2\nname: {name}\ndescription: A test chart # comment\n"
            f'type: application\nversion: "{version}"\nappVersion: "1.16.0"\n'
        )
    files = {
        f"{name}/Chart.yaml": chart_yaml.encode(),
        f"{name}/values.yaml": b"replicaCount: 1\n",
        f"{name}/templates/deployment.yaml": b"kind: Deployment\n",
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(prefix + path)
            info.size, info.mtime = len(content), 1_767_225_600
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass
class Layouts:
    """Test images: an OCI layout (skopeo's oci: transport) and skopeo dir: folders for
    the Docker media types, which skopeo's oci: transport does not read."""

    root: Path
    oci: Path = field(init=False)
    digests: dict[str, str] = field(default_factory=dict)  # tag -> digest
    docker_dirs: dict[str, Path] = field(default_factory=dict)  # tag -> dir: folder
    _blobs: Blobs = field(default_factory=Blobs)
    _index: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.oci = self.root / "oci"

    def _tag(self, tag: str, media_type: str, manifest: bytes, **extra: Any) -> None:
        descriptor = {"mediaType": media_type, **self._blobs.add(manifest), **extra}
        descriptor["annotations"] = {REF_NAME: tag}
        self._index.append(descriptor)
        self.digests[tag] = descriptor["digest"]

    def single(self, tag: str, name: str = "app") -> None:
        self._tag(tag, MANIFEST, _image(self._blobs, f"{name}-{tag}", "amd64"))

    def multi(self, tag: str) -> None:
        manifests = []
        for arch in ("amd64", "arm64"):
            body = _image(self._blobs, f"multi-{tag}", arch)
            platform = {"architecture": arch, "os": "linux"}
            manifests.append({"mediaType": MANIFEST, **self._blobs.add(body), "platform": platform})
        index = canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests})
        self._tag(tag, INDEX, index)

    def helm(self, tag: str, name: str = "mychart") -> None:
        config = canonical({"apiVersion": "v2", "name": name, "version": tag})
        manifest = canonical(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"mediaType": HELM_CONFIG, **self._blobs.add(config)},
                "layers": [{"mediaType": HELM_LAYER, **self._blobs.add(chart_tgz(name, tag))}],
            }
        )
        self._tag(tag, MANIFEST, manifest)

    def docker(self, tag: str, *, manifest_list: bool) -> None:
        """A Docker schema2 manifest, or a Docker manifest list of two, as a dir: folder."""
        folder = self.root / f"docker-{tag}"
        folder.mkdir(parents=True)
        (folder / "version").write_text("Directory Transport Version: 1.1\n")
        blobs = Blobs()
        if manifest_list:
            entries = []
            for arch in ("amd64", "arm64"):
                body = _image(blobs, f"dlist-{tag}", arch, docker=True)
                (folder / f"{hashlib.sha256(body).hexdigest()}.manifest.json").write_bytes(body)
                entry = {
                    "mediaType": DOCKER_MANIFEST,
                    "digest": sha256_digest(body),
                    "size": len(body),
                }
                entries.append({**entry, "platform": {"architecture": arch, "os": "linux"}})
            top = canonical({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries})
        else:
            top = _image(blobs, f"docker-{tag}", "amd64", docker=True)
        (folder / "manifest.json").write_bytes(top)
        for digest, content in blobs.data.items():
            (folder / digest.removeprefix("sha256:")).write_bytes(content)
        self.docker_dirs[tag] = folder
        self.digests[tag] = sha256_digest(top)

    def write(self) -> Path:
        blob_dir = self.oci / "blobs" / "sha256"
        blob_dir.mkdir(parents=True, exist_ok=True)
        for digest, content in self._blobs.data.items():
            (blob_dir / digest.removeprefix("sha256:")).write_bytes(content)
        (self.oci / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": self._index}
        (self.oci / "index.json").write_bytes(canonical(index))
        return self.oci


def write_layout(folder: Path, descriptors: list[dict[str, Any]], blobs: dict[str, bytes]) -> Path:
    """A layout with exactly these index.json descriptors and blobs (for layout edge cases)."""
    (folder / "blobs" / "sha256").mkdir(parents=True)
    for digest, content in blobs.items():
        (folder / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(content)
    (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": descriptors}
    (folder / "index.json").write_bytes(canonical(index))
    return folder


def tar_folder(folder: Path, archive: Path) -> Path:
    """An oci-archive: the layout's files at the root of a plain tar."""
    with tarfile.open(archive, "w") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return archive


def statement(*digests: str, name: str = "test-image") -> bytes:
    """An in-toto v1 statement naming the digests, for `attestation import`."""
    predicate = {
        "buildDefinition": {"buildType": "https://example.com/test@v1"},
        "runDetails": {"builder": {"id": "https://ci.example.com/test"}},
    }
    subjects = ((name, d) for d in digests)
    return canonical(intoto_statement(subjects, "https://slsa.dev/provenance/v1", predicate))


# --- TLS material -------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA that did not sign the server certificate


def make_tls(folder: Path) -> TlsFiles:
    """A CA, a server certificate for IP 127.0.0.1 signed by it, and an unrelated CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for name in ("ca", "other-ca"):
        run(
            "openssl",
            "req",
            "-x509",
            *ec,
            "-keyout",
            folder / f"{name}.key",
            "-out",
            folder / f"{name}.pem",
            "-days",
            "2",
            "-subj",
            f"/CN=deploytrack test {name}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        )
    run(
        "openssl",
        "req",
        *ec,
        "-keyout",
        folder / "server.key",
        "-out",
        folder / "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        folder / "server.csr",
        "-CA",
        folder / "ca.pem",
        "-CAkey",
        folder / "ca.key",
        "-CAcreateserial",
        "-out",
        folder / "server.pem",
        "-days",
        "2",
        "-extfile",
        folder / "server.ext",
    )
    return TlsFiles(
        folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "other-ca.pem"
    )


# --- the registry -------------------------------------------------------------------------


@dataclass
class Registry:
    """A running `docker-registry serve` on 127.0.0.1."""

    process: subprocess.Popen
    host: str  # 127.0.0.1:PORT
    log: Path
    scheme: str = "http"
    username: str | None = None
    password: str | None = None
    ca: Path | None = None
    digests: dict[str, str] = field(default_factory=dict)  # repo:tag -> digest

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_registry(folder: Path, auth: dict | None = None, tls: TlsFiles | None = None) -> Registry:
    """Start docker-registry with its own config: port 0 on 127.0.0.1, storage in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    http_config: dict[str, Any] = {"addr": "127.0.0.1:0", "secret": secrets.token_hex(16)}
    if tls is not None:
        http_config["tls"] = {"certificate": str(tls.cert), "key": str(tls.key)}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(folder / "storage")}},
        "http": http_config,
    }
    if auth is not None:
        config["auth"] = auth
    (folder / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log = folder / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(folder / "config.yml")],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        match = re.search(rb"listening on 127\.0\.0\.1:(\d+)", log.read_bytes())
        if match:
            scheme = "https" if tls else "http"
            return Registry(process, f"127.0.0.1:{match[1].decode()}", log, scheme)
        if process.poll() is not None:
            break
        time.sleep(0.01)
    process.kill()
    raise RuntimeError(f"docker-registry did not start: {log.read_text()[-2000:]}")


def htpasswd_auth(folder: Path, username: str, password: str) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    line = run("htpasswd", "-Bbn", username, password)
    (folder / "htpasswd").write_bytes(line)
    return {"htpasswd": {"realm": "deploytrack-test", "path": str(folder / "htpasswd")}}


def skopeo_copy(source: str, registry: Registry, repo_tag: str, work: Path) -> None:
    """Push with skopeo (--all keeps indexes and digests as they are)."""
    policy = work / "policy.json"
    if not policy.exists():
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    args = ["skopeo", "--policy", str(policy), "copy", "--all", "--quiet"]
    args += ["--dest-tls-verify=false", source, f"docker://{registry.host}/{repo_tag}"]
    if registry.username:
        args[-2:-2] = ["--dest-creds", f"{registry.username}:{registry.password}"]
    env = {**os.environ, "HOME": str(work), "XDG_RUNTIME_DIR": str(work)}
    run(*args, env=env)


# --- a token issuer distribution accepts --------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(cert: Path) -> str:
    """distribution's `kid`: base32 of the first 240 bits of sha256(DER public key)."""
    pem = run("openssl", "x509", "-in", cert, "-pubkey", "-noout")
    der = run("openssl", "pkey", "-pubin", "-outform", "DER", input=pem)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass
class TokenIssuer:
    """An OAuth2-style token service for docker-registry's `auth: token`: RS256 JWTs
    whose `kid` names the key of a certificate in the registry's rootcertbundle.

    Grants: users (Basic password, or identity token via POST refresh_token) get what they
    ask for; anonymous requests get pull on `public` repositories only.
    """

    folder: Path
    users: dict[str, str]
    identity_tokens: dict[str, str]  # token -> user
    public: set[str]
    service: str = "deploytrack-test-registry"
    issuer: str = "deploytrack-test-issuer"
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = self.folder / "token.key", self.folder / "token.pem"
        run(
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            self.key,
            "-out",
            self.cert,
            "-days",
            "2",
            "-subj",
            "/CN=deploytrack test token signer",
        )
        self.kid = libtrust_key_id(self.cert)

    @property
    def realm(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def auth_config(self) -> dict[str, Any]:
        return {
            "token": {
                "realm": self.realm,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": str(self.cert),
            }
        }

    def sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64url(canonical(header))}.{_b64url(canonical(claims))}"
        signature = run(
            "openssl", "dgst", "-sha256", "-sign", self.key, input=signing_input.encode()
        )
        return f"{signing_input}.{_b64url(signature)}"

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository":
                continue
            wanted = [a for a in actions.split(",") if a]
            if user is not None:
                allowed = wanted
            else:
                allowed = [a for a in wanted if a == "pull" and name in self.public]
            if allowed:
                access.append({"type": "repository", "name": name, "actions": allowed})
        return access

    def start(self) -> TokenIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, params: dict[str, list[str]], user: str | None) -> None:
                scopes = params.get("scope", [])
                issuer.requests.append(
                    {
                        "method": self.command,
                        "user": user,
                        "scopes": scopes,
                        "service": params.get("service", [None])[0],
                    }
                )
                token = issuer.sign(user or "", issuer.grant(user, scopes))
                body = canonical({"token": token, "access_token": token, "expires_in": 300})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _refuse(self) -> None:
                issuer.requests.append({"method": self.command, "user": None, "refused": True})
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                params = parse_qs(urlsplit(self.path).query)
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if issuer.users.get(name) != password:
                        self._refuse()
                        return
                    user = name
                self._answer(params, user)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                refresh = form.get("refresh_token", [""])[0]
                if (
                    form.get("grant_type") != ["refresh_token"]
                    or refresh not in issuer.identity_tokens
                ):
                    self._refuse()
                    return
                self._answer(form, issuer.identity_tokens[refresh])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# --- small servers for what a registry will not do ----------------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 that logs every request it gets."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.log: list[tuple[str, str, dict[str, str]]] = []
        handler.server_owner = self  # type: ignore[attr-defined]
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def proxy(upstream: str, strip: tuple[str, ...] = (), refuse_head: bool = False) -> _Server:
    """A reverse proxy to `upstream` (host:port, plain HTTP) that can drop response headers,
    or answer every HEAD with 405 Method Not Allowed."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            owner = type(self).server_owner  # type: ignore[attr-defined]
            owner.log.append((self.command, self.path, dict(self.headers)))
            if refuse_head and self.command == "HEAD":
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = upstream
            conn = http.client.HTTPConnection(upstream, timeout=10)
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() in _HOP_BY_HOP or name.lower() in strip:
                    continue
                if name.lower() == "content-length" and self.command != "HEAD":
                    continue
                self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_POST = do_PUT = _forward

    return _Server(Handler)


def status_server(status: int, reason: str = "") -> _Server:
    """Answers every request with `status` (e.g. 500) and a JSON error body."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            type(self).server_owner.log.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
            body = b'{"errors":[{"code":"UNKNOWN","message":"storage backend failed"}]}'
            self.send_response(status, reason or None)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = _answer

    return _Server(Handler)


class SocketServer:
    """A TCP listener that either holds connections open and silent, or closes them at once."""

    def __init__(self, mode: str) -> None:
        assert mode in ("silent", "close")
        self.mode = mode
        self.connections = 0
        self._held: list[socket.socket] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stopped = False
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.mode == "silent":
                self._held.append(conn)
            else:
                conn.close()

    def stop(self) -> None:
        self._stopped = True
        self.sock.close()
        for conn in self._held:
            conn.close()


def docker_config(folder: Path, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def basic_auth_entry(username: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}


def credential_helper(bin_dir: Path, name: str, logins: dict[str, tuple[str, str]]) -> Path:
    """A real `docker-credential-<name>` executable (shell script) serving `logins`.

    It answers `get` as the docker-credential-helpers protocol says, and appends each
    server it is asked about to <bin_dir>/<name>.calls.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    calls = bin_dir / f"{name}.calls"
    answers = {
        server: json.dumps({"ServerURL": server, "Username": user, "Secret": secret})
        for server, (user, secret) in logins.items()
    }
    cases = "".join(
        f"  \"{server}\") printf '%s' '{answer}' ;;\n" for server, answer in answers.items()
    )
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || { echo "unsupported: $1" >&2; exit 1; }\n'
        "read -r server\n"
        f'echo "$server" >> "{calls}"\n'
        'case "$server" in\n'
        f"{cases}"
        '  *) echo "credentials not found in native keychain"; exit 1 ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    return script


def iter_lines(path: Path) -> Iterator[str]:
    if path.exists():
        yield from path.read_text().splitlines()
