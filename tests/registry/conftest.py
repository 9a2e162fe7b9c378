"""Registries for the registry tests, started once per session on 127.0.0.1.

- `plain_registry`: anonymous, plain HTTP, with every kind of test image pushed;
- `basic_registry`: htpasswd Basic auth (user alice);
- `tls_registry`: HTTPS with a certificate from a CA the tests generate;
- `token_registry`: Bearer token auth with a token issuer the tests run.

Images are built by `registry_support.Layouts` and pushed with skopeo.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from conftest import assert_refused, snapshot
from helpers import record_args

from . import registry_support as rs

ALICE = ("alice", "alice-secret-1")
BOB = ("bob", "bob-secret-2")
BOB_IDENTITY_TOKEN = "bob-identity-token-7f3a"


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rs.require_binaries()
    return tmp_path_factory.mktemp("registries")


@pytest.fixture(scope="session")
def layouts(work: Path) -> rs.Layouts:
    images = rs.Layouts(work / "images")
    images.single("1.0")
    images.single("1.1")
    images.multi("multi-1.0")
    images.helm("0.1.0")
    images.docker("dlist-1.0", manifest_list=True)
    images.docker("dsingle-1.0", manifest_list=False)
    images.write()
    return images


def _push(registry: rs.Registry, layouts: rs.Layouts, work: Path, pushes: dict[str, str]) -> None:
    """Push layout tags (repo:tag -> layout tag) and record their digests."""
    for repo_tag, tag in pushes.items():
        if tag in layouts.docker_dirs:
            source = f"dir:{layouts.docker_dirs[tag]}"
        else:
            source = f"oci:{layouts.oci}:{tag}"
        rs.skopeo_copy(source, registry, repo_tag, work)
        registry.digests[repo_tag] = layouts.digests[tag]


def _serving(
    registry: rs.Registry, layouts: rs.Layouts, work: Path, pushes: dict[str, str]
) -> Iterator[rs.Registry]:
    """A session fixture's body: push, hand the registry out, and stop it in any case."""
    try:
        _push(registry, layouts, work, pushes)
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def plain_registry(work: Path, layouts: rs.Layouts) -> Iterator[rs.Registry]:
    registry = rs.start_registry(work / "plain")
    yield from _serving(
        registry,
        layouts,
        work,
        {
            "acme/app:1.0": "1.0",
            "acme/app:1.1": "1.1",
            "acme/multi:1.0": "multi-1.0",
            "acme/dlist:1.0": "dlist-1.0",
            "acme/dsingle:1.0": "dsingle-1.0",
            "charts/mychart:0.1.0": "0.1.0",
        },
    )


@pytest.fixture(scope="session")
def basic_registry(work: Path, layouts: rs.Layouts) -> Iterator[rs.Registry]:
    auth = rs.htpasswd_auth(work / "basic-auth", *ALICE)
    registry = rs.start_registry(work / "basic", auth=auth)
    registry.username, registry.password = ALICE
    yield from _serving(registry, layouts, work, {"acme/app:1.0": "1.0"})


@pytest.fixture(scope="session")
def tls(work: Path) -> rs.TlsFiles:
    return rs.make_tls(work / "tls")


@pytest.fixture(scope="session")
def tls_registry(work: Path, layouts: rs.Layouts, tls: rs.TlsFiles) -> Iterator[rs.Registry]:
    registry = rs.start_registry(work / "tls-registry", tls=tls)
    registry.ca = tls.ca
    yield from _serving(registry, layouts, work, {"acme/app:1.0": "1.0"})


@pytest.fixture(scope="session")
def token_issuer(work: Path) -> Iterator[rs.TokenIssuer]:
    issuer = rs.TokenIssuer(
        work / "token-issuer",
        users=dict([BOB]),
        identity_tokens={BOB_IDENTITY_TOKEN: BOB[0]},
        public={"pub/app"},
    ).start()
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture(scope="session")
def token_registry(
    work: Path, layouts: rs.Layouts, token_issuer: rs.TokenIssuer
) -> Iterator[rs.Registry]:
    registry = rs.start_registry(work / "token", auth=token_issuer.auth_config())
    registry.username, registry.password = BOB
    yield from _serving(
        registry,
        layouts,
        work,
        {"team/app:1.0": "1.0", "team/other:1.1": "1.1", "pub/app:1.0": "1.0"},
    )


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 must not be sent through a proxy from the environment."""
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def ready(ok: Callable[..., Result], tmp_path: Path) -> Callable[..., None]:
    """Environment 'k8s' exists; `ready(digest, ...)` imports evidence naming the digests."""
    ok("environment", "create", "--name", "k8s", "--type", "kubernetes")

    def add(*digests: str) -> None:
        # With no digest, evidence for an unrelated one: the database has rows to compare.
        path = tmp_path / f"statement-{len(list(tmp_path.glob('statement-*')))}.json"
        path.write_bytes(rs.statement(*(digests or ("sha256:" + "0f" * 32,))))
        ok("attestation", "import", str(path))

    return add


RecordRef = Callable[..., Result]


@pytest.fixture
def record_ref(run: Callable[..., Result]) -> RecordRef:
    """`deployment record --oci-ref REF [extra flags]` on this test's database (may fail)."""

    def invoke(
        ref: str,
        *extra: str,
        kind: str = "CONTAINER_IMAGE",
        input: str | None = None,
        env: dict | None = None,
    ) -> Result:
        args = record_args("k8s", "staging", "app", kind)
        return run(*args, "--oci-ref", ref, *extra, "-o", "json", input=input, env=env)

    return invoke


def recorded(result: Result) -> dict:
    """The record a successful `deployment record -o json` printed."""
    assert result.exit_code == 0, (result.output, result.stderr)
    return json.loads(result.stdout)["deployment"]


@pytest.fixture
def refuse_ref(record_ref: RecordRef, db_path: Path) -> RecordRef:
    """Like `record_ref`, but it must fail with one `Error:` line, exit 1, naming `contains`,
    and leave the database unchanged."""

    def invoke(ref: str, *extra: str, contains: str, **kwargs: object) -> Result:
        before = snapshot(db_path)
        result = record_ref(ref, *extra, **kwargs)
        assert_refused(result, 1, contains)
        assert snapshot(db_path) == before
        return result

    return invoke
