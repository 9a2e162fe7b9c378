"""Credentials against real registries: htpasswd Basic auth, and Bearer tokens from a token
issuer the tests run. Every credential source, their order, and that a password is never
printed or stored."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import assert_refused, snapshot, stored_bytes
from helpers import prepend_path, record_args

from . import registry_support as rs
from .conftest import ALICE, BOB, BOB_IDENTITY_TOKEN, RecordRef, recorded

WRONG = "not-the-password"


def _docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict) -> Path:
    folder = rs.docker_config(tmp_path / "docker-config", config)
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


def _ok(registry: rs.Registry, ready, record_ref: RecordRef, repo_tag: str, *extra: str, **kw):
    ready(registry.digests[repo_tag])
    result = record_ref(f"{registry.host}/{repo_tag}", "--plain-http", *extra, **kw)
    assert recorded(result)["digest"] == registry.digests[repo_tag]
    return result


def _login(server: str, username: str, password: str) -> tuple[str, ...]:
    """The explicit credential flags: all three, as a user types them."""
    return (
        "--registry-server", server, "--registry-username", username,
        "--registry-password", password,
    )  # fmt: skip


def _helper_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, logins: dict
) -> Path:
    """A docker-credential-NAME answering `logins`, first on $PATH; its folder."""
    bin_dir = tmp_path / "bin"
    rs.credential_helper(bin_dir, name, logins)
    prepend_path(monkeypatch, bin_dir)
    return bin_dir


# --- Basic auth (htpasswd) ----------------------------------------------------------------


def test_basic_auth_required_without_credentials(refuse_ref, basic_registry, ready):
    ready()
    refuse_ref(
        f"{basic_registry.host}/acme/app:1.0",
        "--plain-http",
        contains=f"authentication required: {basic_registry.host} wants a login to read acme/app",
    )


def test_basic_auth_with_flags(basic_registry, ready, record_ref):
    _ok(
        basic_registry,
        ready,
        record_ref,
        "acme/app:1.0",
        *_login(basic_registry.host, ALICE[0], ALICE[1]),
    )


def test_basic_auth_with_password_stdin(basic_registry, ready, record_ref):
    _ok(
        basic_registry,
        ready,
        record_ref,
        "acme/app:1.0",
        "--registry-server",
        basic_registry.host,
        "--registry-username",
        ALICE[0],
        "--registry-password-stdin",
        input=f"{ALICE[1]}\n",
    )


def test_basic_auth_with_environment_variables(basic_registry, ready, record_ref):
    env = {
        "DEPLOYTRACK_REGISTRY_SERVER": f"http://{basic_registry.host}/",
        "DEPLOYTRACK_REGISTRY_USERNAME": ALICE[0],
        "DEPLOYTRACK_REGISTRY_PASSWORD": ALICE[1],
    }
    _ok(basic_registry, ready, record_ref, "acme/app:1.0", env=env)


def test_basic_auth_failed(refuse_ref, basic_registry, ready):
    ready()
    result = refuse_ref(
        f"{basic_registry.host}/acme/app:1.0",
        "--plain-http",
        *_login(basic_registry.host, ALICE[0], WRONG),
        contains=f"authentication failed: {basic_registry.host} refused user 'alice' from "
        "--registry-username/--registry-password",
    )
    assert WRONG not in result.stderr


def test_docker_config_auths_from_DOCKER_CONFIG(
    basic_registry, ready, record_ref, tmp_path, monkeypatch
):
    # ~/.docker/config.json has a wrong login: $DOCKER_CONFIG is the one read.
    rs.docker_config(
        tmp_path / "home" / ".docker",
        {"auths": {basic_registry.host: rs.basic_auth_entry(ALICE[0], WRONG)}},
    )
    _docker_config(
        tmp_path,
        monkeypatch,
        {"auths": {f"http://{basic_registry.host}/v2/": rs.basic_auth_entry(*ALICE)}},
    )
    _ok(basic_registry, ready, record_ref, "acme/app:1.0")


def test_docker_config_in_home_with_username_and_password_fields(
    basic_registry, ready, record_ref, tmp_path
):
    rs.docker_config(
        tmp_path / "home" / ".docker",
        {"auths": {basic_registry.host: {"username": ALICE[0], "password": ALICE[1]}}},
    )
    _ok(basic_registry, ready, record_ref, "acme/app:1.0")


def test_docker_config_wrong_login_names_its_file(
    refuse_ref, basic_registry, ready, tmp_path, monkeypatch
):
    folder = _docker_config(
        tmp_path, monkeypatch, {"auths": {basic_registry.host: rs.basic_auth_entry("alice", WRONG)}}
    )
    ready()
    refuse_ref(
        f"{basic_registry.host}/acme/app:1.0",
        "--plain-http",
        contains=f"refused user 'alice' from docker config {folder / 'config.json'}",
    )


def test_cred_helper_from_credHelpers(basic_registry, ready, record_ref, tmp_path, monkeypatch):
    bin_dir = _helper_on_path(tmp_path, monkeypatch, "testhelper", {basic_registry.host: ALICE})
    _docker_config(
        tmp_path,
        monkeypatch,
        {
            "credHelpers": {basic_registry.host: "testhelper"},
            "auths": {basic_registry.host: rs.basic_auth_entry("alice", WRONG)},
        },
    )
    _ok(basic_registry, ready, record_ref, "acme/app:1.0")
    assert list(rs.iter_lines(bin_dir / "testhelper.calls")) == [basic_registry.host]


def test_creds_store(basic_registry, ready, record_ref, tmp_path, monkeypatch):
    bin_dir = _helper_on_path(tmp_path, monkeypatch, "teststore", {basic_registry.host: ALICE})
    _docker_config(
        tmp_path, monkeypatch, {"credsStore": "teststore", "auths": {basic_registry.host: {}}}
    )
    _ok(basic_registry, ready, record_ref, "acme/app:1.0")
    assert list(rs.iter_lines(bin_dir / "teststore.calls")) == [basic_registry.host]


def test_creds_store_without_a_login_falls_back_to_auths(
    basic_registry, ready, record_ref, tmp_path, monkeypatch
):
    bin_dir = _helper_on_path(tmp_path, monkeypatch, "emptystore", {})
    _docker_config(
        tmp_path,
        monkeypatch,
        {
            "credsStore": "emptystore",
            "auths": {basic_registry.host: rs.basic_auth_entry(*ALICE)},
        },
    )
    _ok(basic_registry, ready, record_ref, "acme/app:1.0")
    assert list(rs.iter_lines(bin_dir / "emptystore.calls")) == [basic_registry.host]


def test_missing_credential_helper_is_an_error(
    refuse_ref, basic_registry, ready, tmp_path, monkeypatch
):
    _docker_config(tmp_path, monkeypatch, {"credsStore": "deploytrack-test-absent"})
    ready()
    refuse_ref(
        f"{basic_registry.host}/acme/app:1.0",
        "--plain-http",
        contains="docker-credential-deploytrack-test-absent is not on PATH",
    )


def test_malformed_docker_config_is_an_error(
    refuse_ref, basic_registry, ready, tmp_path, monkeypatch
):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"auths": ')
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    ready()
    refuse_ref(
        f"{basic_registry.host}/acme/app:1.0",
        "--plain-http",
        contains=f"cannot read docker config {folder / 'config.json'}: not valid JSON",
    )


def test_explicit_credentials_come_before_the_docker_config(
    refuse_ref, basic_registry, ready, record_ref, tmp_path, monkeypatch
):
    host = basic_registry.host
    _docker_config(tmp_path, monkeypatch, {"auths": {host: rs.basic_auth_entry(*ALICE)}})
    ready()
    # Right login in the config, wrong one given explicitly: the explicit one is used.
    refuse_ref(
        f"{host}/acme/app:1.0",
        "--plain-http",
        *_login(host, "alice", WRONG),
        contains="from --registry-username/--registry-password",
    )
    # And the other way round.
    _docker_config(tmp_path, monkeypatch, {"auths": {host: rs.basic_auth_entry("alice", WRONG)}})
    _ok(
        basic_registry,
        ready,
        record_ref,
        "acme/app:1.0",
        *_login(host, ALICE[0], ALICE[1]),
    )


def test_explicit_credentials_are_sent_only_to_their_server(refuse_ref, basic_registry, ready):
    """Through a proxy (another host:port), the login for the registry's own address is not
    sent: the proxy sees no Authorization header and the user is told a login is needed."""
    front = rs.proxy(basic_registry.host)
    try:
        ready()
        refuse_ref(
            f"{front.host}/acme/app:1.0",
            "--plain-http",
            *_login(basic_registry.host, ALICE[0], ALICE[1]),
            contains="authentication required",
        )
    finally:
        front.stop()
    assert front.log and not any("Authorization" in headers for _, _, headers in front.log)


def test_netrc_is_not_a_credential_source(refuse_ref, basic_registry, ready, tmp_path):
    host = basic_registry.host.partition(":")[0]
    netrc = tmp_path / "home" / ".netrc"
    netrc.parent.mkdir(parents=True, exist_ok=True)
    netrc.write_text(f"machine {host}\nlogin {ALICE[0]}\npassword {ALICE[1]}\n")
    netrc.chmod(0o600)
    ready()
    refuse_ref(
        f"{basic_registry.host}/acme/app:1.0",
        "--plain-http",
        contains="authentication required",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--registry-username", "alice", "--registry-password", "x"], "need all three"),
        (["--registry-server", "127.0.0.1:5000"], "need all three"),
        (
            [
                *_login("r.io", "a", "x"),
                "--registry-password-stdin",
            ],
            "not both",
        ),
        (
            ["--registry-server", "r.io", "--registry-username", "a", "--registry-password-stdin"],
            "empty password",
        ),
        (
            [
                *_login("bad host", "a", "x"),
            ],
            "invalid registry server",
        ),
        (["--plain-http", "--ca-file", __file__], "contradict"),
        (["--registry-timeout", "0"], "--registry-timeout"),
    ],
)
def test_inconsistent_registry_flags_are_usage_errors(
    record_ref, ready, db_path, args: list[str], message: str
):
    ready()
    before = snapshot(db_path)
    result = record_ref("127.0.0.1:1/acme/app:1.0", *args, input="")
    assert_refused(result, 2, message)
    assert snapshot(db_path) == before


# --- Bearer tokens ------------------------------------------------------------------------


def test_bearer_anonymous_token_for_a_public_repository(
    token_registry, token_issuer, ready, record_ref
):
    before = len(token_issuer.requests)
    _ok(token_registry, ready, record_ref, "pub/app:1.0")
    assert token_issuer.requests[before:] == [
        {
            "method": "GET",
            "user": None,
            "scopes": ["repository:pub/app:pull"],
            "service": token_issuer.service,
        }
    ]


def test_bearer_private_repository_requires_authentication(refuse_ref, token_registry, ready):
    ready()
    refuse_ref(
        f"{token_registry.host}/team/app:1.0",
        "--plain-http",
        contains=f"authentication required: {token_registry.host} wants a login to read team/app",
    )


def test_bearer_with_credentials(token_registry, token_issuer, ready, record_ref):
    before = len(token_issuer.requests)
    _ok(
        token_registry,
        ready,
        record_ref,
        "team/app:1.0",
        *_login(token_registry.host, BOB[0], BOB[1]),
    )
    assert [(r["user"], r["scopes"]) for r in token_issuer.requests[before:]] == [
        ("bob", ["repository:team/app:pull"])
    ]


def test_bearer_wrong_password(refuse_ref, token_registry, ready):
    ready()
    result = refuse_ref(
        f"{token_registry.host}/team/app:1.0",
        "--plain-http",
        *_login(token_registry.host, BOB[0], WRONG),
        contains=f"authentication failed: the token service of {token_registry.host}",
    )
    assert "refused user 'bob'" in result.stderr


def test_bearer_identity_token_from_docker_config(
    token_registry, token_issuer, ready, record_ref, tmp_path, monkeypatch
):
    entry = {**rs.basic_auth_entry("<token>", ""), "identitytoken": BOB_IDENTITY_TOKEN}
    entry["auth"] = rs.basic_auth_entry("bob", "unused")["auth"]
    _docker_config(tmp_path, monkeypatch, {"auths": {token_registry.host: entry}})
    before = len(token_issuer.requests)
    _ok(token_registry, ready, record_ref, "team/app:1.0")
    assert [(r["method"], r["user"]) for r in token_issuer.requests[before:]] == [("POST", "bob")]


def test_bearer_identity_token_from_a_credential_helper(
    token_registry, token_issuer, ready, record_ref, tmp_path, monkeypatch
):
    logins = {token_registry.host: ("<token>", BOB_IDENTITY_TOKEN)}
    _helper_on_path(tmp_path, monkeypatch, "tokenhelper", logins)
    _docker_config(tmp_path, monkeypatch, {"credHelpers": {token_registry.host: "tokenhelper"}})
    before = len(token_issuer.requests)
    _ok(token_registry, ready, record_ref, "team/app:1.0")
    assert [(r["method"], r["user"]) for r in token_issuer.requests[before:]] == [("POST", "bob")]


def test_tokens_are_cached_per_scope(token_registry, token_issuer):
    """A token scoped to team/app is not sent for team/other (oras 0.2 caches one token
    whatever its scope, and the second repository gets 401); the same scope reuses it."""
    from deploytrack.registry.options import RegistryOptions
    from deploytrack.services.artifacts import ArtifactResolver

    resolver = ArtifactResolver(
        RegistryOptions(
            server=token_registry.host, username=BOB[0], password=BOB[1], plain_http=True
        )
    )
    before = len(token_issuer.requests)
    host = token_registry.host
    for repo_tag in ("team/app:1.0", "team/other:1.1", "team/app:1.0", "team/other:1.1"):
        got = resolver.resolve("CONTAINER_IMAGE", f"{host}/{repo_tag}")
        assert got.digest == token_registry.digests[repo_tag]
    scopes = [r["scopes"] for r in token_issuer.requests[before:]]
    assert scopes == [["repository:team/app:pull"], ["repository:team/other:pull"]]
    assert token_registry.digests["team/app:1.0"] != token_registry.digests["team/other:1.1"]


# --- a password never leaves -------------------------------------------------------------

SECRET = "Zq8-distinctive-P4ssw0rd-e1"


@pytest.mark.parametrize("how", ["flag", "stdin", "env", "docker-config"])
def test_password_is_never_printed_or_stored(
    refuse_ref,
    how,
    basic_registry,
    token_registry,
    ready,
    record_ref,
    db_path,
    tmp_path,
    monkeypatch,
):
    ready(basic_registry.digests["acme/app:1.0"])
    outputs = []
    for registry in (basic_registry, token_registry):
        host = registry.host
        flags: list[str] = []
        kwargs: dict = {}
        if how == "flag":
            flags = [
                *_login(host, "alice", SECRET),
            ]
        elif how == "stdin":
            flags = [
                "--registry-server",
                host,
                "--registry-username",
                "alice",
                "--registry-password-stdin",
            ]
            kwargs["input"] = SECRET + "\n"
        elif how == "env":
            kwargs["env"] = {
                "DEPLOYTRACK_REGISTRY_SERVER": host,
                "DEPLOYTRACK_REGISTRY_USERNAME": "alice",
                "DEPLOYTRACK_REGISTRY_PASSWORD": SECRET,
            }
        else:
            _docker_config(
                tmp_path, monkeypatch, {"auths": {host: rs.basic_auth_entry("alice", SECRET)}}
            )
        repo = "acme/app:1.0" if registry is basic_registry else "team/app:1.0"
        failed = refuse_ref(
            f"{host}/{repo}",
            "--plain-http",
            *flags,
            contains="authentication failed",
            **kwargs,
        )
        outputs += [failed.stdout, failed.stderr]
    # A success prints nothing of the password either.
    good = _ok(
        basic_registry,
        ready,
        record_ref,
        "acme/app:1.0",
        *_login(basic_registry.host, ALICE[0], ALICE[1]),
    )
    outputs += [good.stdout, good.stderr]
    for text in outputs:
        assert SECRET not in text and ALICE[1] not in text
    stored = stored_bytes(db_path)
    assert b"acme/app" in stored  # the control: the record is there, so the search works
    assert SECRET.encode() not in stored and ALICE[1].encode() not in stored


def test_password_not_in_entry_point_output_or_options_repr(
    basic_registry, ready, entry_point, db_path, tmp_path
):
    from deploytrack.registry.options import Credentials, RegistryOptions

    options = RegistryOptions(server="r.io", username="u", password=SECRET)
    assert SECRET not in repr(options) and SECRET not in repr(options.explicit_credentials("r.io"))
    assert SECRET not in str(Credentials("u", SECRET, SECRET, source="x"))
    ready()
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "DEPLOYTRACK_DB": str(db_path),
        "DEPLOYTRACK_REGISTRY_SERVER": basic_registry.host,
        "DEPLOYTRACK_REGISTRY_USERNAME": "alice",
        "DEPLOYTRACK_REGISTRY_PASSWORD": SECRET,
        "DEPLOYTRACK_DEBUG": "1",
    }
    proc = subprocess.run(
        [
            entry_point,
            *record_args("k8s", "staging", "app"),
            "--plain-http",
            "--oci-ref",
            f"{basic_registry.host}/acme/app:1.0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: authentication failed") and proc.stderr.count("\n") == 1
    assert SECRET not in proc.stdout + proc.stderr


def test_registry_server_is_matched_without_regard_to_case(basic_registry, ready, record_ref):
    port = basic_registry.host.rpartition(":")[2]
    ready(basic_registry.digests["acme/app:1.0"])
    result = record_ref(
        f"localhost:{port}/acme/app:1.0",
        "--plain-http",
        *_login(f"http://LocalHost:{port}/", ALICE[0], ALICE[1]),
    )
    assert recorded(result)["digest"] == basic_registry.digests["acme/app:1.0"]
