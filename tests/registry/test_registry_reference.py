"""Reference parsing, the way container tools read references (pure: no server)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploytrack.registry import RegistryError
from deploytrack.registry.reference import (
    Reference,
    api_host,
    normalize_registry,
    parse_reference,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        # Docker Hub short names
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("library/nginx", "docker.io", "library/nginx", "latest", None),
        ("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/library/nginx:1", "docker.io", "library/nginx", "1", None),
        ("registry-1.docker.io/acme/app:2", "docker.io", "acme/app", "2", None),
        # hosts: a dot, a port, or localhost make the first component a registry
        ("ghcr.io/acme/api:1.1.0", "ghcr.io", "acme/api", "1.1.0", None),
        ("localhost:5000/x", "localhost:5000", "x", "latest", None),
        ("localhost/x:1", "localhost", "x", "1", None),
        ("10.0.0.5:5000/team/app:v1", "10.0.0.5:5000", "team/app", "v1", None),
        ("127.0.0.1/app", "127.0.0.1", "app", "latest", None),
        ("[::1]:5000/a/b:1", "[::1]:5000", "a/b", "1", None),
        ("[2001:db8::1]/app", "[2001:db8::1]", "app", "latest", None),
        ("Registry/app", "Registry", "app", "latest", None),
        (
            "reg.example.com:443/a/b/c-d_e.f__g:T_1.x-2",
            "reg.example.com:443",
            "a/b/c-d_e.f__g",
            "T_1.x-2",
            None,
        ),
        # digests: pinned, and tag + digest where the digest wins
        (f"ghcr.io/acme/api@{DIGEST}", "ghcr.io", "acme/api", None, DIGEST),
        (f"10.0.0.5:5000/team/app:v1@{DIGEST}", "10.0.0.5:5000", "team/app", "v1", DIGEST),
        (
            f"nginx:1@{DIGEST.upper().replace('SHA256', 'sha256')}",
            "docker.io",
            "library/nginx",
            "1",
            DIGEST,
        ),
    ],
)
def test_parse(text: str, registry: str, repository: str, tag: str | None, digest: str | None):
    ref = parse_reference(text)
    assert ref == Reference(registry, repository, tag, digest)


def test_tag_and_digest_the_digest_wins_and_the_tag_is_kept_for_the_record():
    ref = parse_reference(f"10.0.0.5:5000/team/app:v1@{DIGEST}")
    assert ref.target == DIGEST
    assert ref.display == "10.0.0.5:5000/team/app:v1"
    assert str(ref) == f"10.0.0.5:5000/team/app:v1@{DIGEST}"
    assert parse_reference(f"ghcr.io/a@{DIGEST}").display == "ghcr.io/a"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (" nginx", "white space"),
        ("ngi nx", "white space"),
        ("Nginx", "lowercase"),
        ("acme/App", "lowercase"),
        ("x:", "a tag is"),
        ("x:-bad", "a tag is"),
        ("x:" + "a" * 129, "a tag is"),
        (":tag", "names no repository"),
        ("a//b", "lowercase"),
        ("a/", "lowercase"),
        ("-a", "lowercase"),
        ("x@sha256:abc", "sha256:<64 hex digits>"),
        ("x@md5:" + "a" * 32, "sha256:<64 hex digits>"),
        ("https://ghcr.io/a/b:1", "URL scheme"),
        ("host:99999/x", "port 99999 is out of range"),
        ("host:123456/x", "valid registry host"),
        ("host:0/x", "port 0 is out of range"),
        ("[::g]:5000/x", "valid registry host"),
        ("[1:2:3]:5000/x", "IPv6"),
        ("bad_host.io:5000/x", "valid registry host"),
        ("r.io/" + "a/" * 130 + "b", "longer than 255"),
    ],
)
def test_malformed_references_are_refused(text: str, reason: str):
    with pytest.raises(RegistryError) as refused:
        parse_reference(text)
    assert reason in str(refused.value)
    assert str(refused.value).startswith("invalid reference")


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("ghcr.io", "ghcr.io"),
        ("https://ghcr.io/", "ghcr.io"),
        ("HTTP://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("[::1]:5000", "[::1]:5000"),
        ("Registry.Example.COM:5000", "registry.example.com:5000"),
    ],
)
def test_normalize_registry(text: str, host: str):
    assert normalize_registry(text) == host


@pytest.mark.parametrize("text", ["", "bad host", "host:99999", "https://"])
def test_normalize_registry_refuses(text: str):
    with pytest.raises(RegistryError, match="invalid registry server"):
        normalize_registry(text)


def test_docker_hub_is_asked_at_its_api_host():
    from deploytrack.registry.client import RegistryClient
    from deploytrack.registry.options import RegistryOptions

    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("ghcr.io") == "ghcr.io"
    ref = parse_reference("nginx")
    client = RegistryClient(ref.registry, RegistryOptions(), None)
    assert (
        client.manifest_url(ref) == "https://registry-1.docker.io/v2/library/nginx/manifests/latest"
    )
    plain = RegistryClient("localhost:5000", RegistryOptions(plain_http=True), None)
    assert plain.manifest_url(parse_reference("localhost:5000/x:1")) == (
        "http://localhost:5000/v2/x/manifests/1"
    )


_component = st.from_regex(r"[a-z0-9]{1,5}(?:[._-][a-z0-9]{1,5}){0,2}", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_host = st.one_of(
    st.sampled_from(["ghcr.io", "localhost", "localhost:5000", "10.0.0.5:5000", "[::1]:443"]),
    st.from_regex(
        r"[a-z][a-z0-9-]{0,8}[a-z0-9]\.(io|com|example)(:[1-9][0-9]{0,3})?", fullmatch=True
    ),
)


@given(
    host=_host,
    path=st.lists(_component, min_size=1, max_size=3),
    tag=st.one_of(st.none(), _tag),
    digest=st.one_of(st.none(), st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)),
)
def test_normalised_form_parses_back_to_itself(
    host: str, path: list[str], tag: str | None, digest: str | None
):
    ref = parse_reference(
        f"{host}/{'/'.join(path)}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    )
    assert ref.registry == host
    assert ref.repository == "/".join(path)
    assert ref.digest == digest
    assert ref.tag == (tag or (None if digest else "latest"))
    assert parse_reference(str(ref)) == ref
