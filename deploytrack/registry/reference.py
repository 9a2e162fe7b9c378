"""Parse image references the way container tools do (docker/distribution's grammar).

nginx                                 -> docker.io/library/nginx:latest
ghcr.io/acme/api:1.1.0                -> ghcr.io/acme/api, tag 1.1.0
localhost:5000/x@sha256:...           -> localhost:5000/x, digest only
10.0.0.5:5000/team/app:v1@sha256:...  -> the digest wins; the tag is kept for the record
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deploytrack.digests import normalize_sha256
from deploytrack.registry import RegistryError

DOCKER_HUB = "docker.io"
# Where Docker Hub's API answers, and the key docker login writes for it in config.json.
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_LEGACY_HUB_NAMES = {"index.docker.io", "registry-1.docker.io"}

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_HOST_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?$"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_NAME_LENGTH = 255


def _invalid(reference: str, reason: str) -> RegistryError:
    """A reference that no registry could serve; refused before any request."""
    shown = reference if len(reference) <= 200 else reference[:200] + "..."
    return RegistryError(f"invalid reference {shown!r}: {reason}")


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port], Docker Hub normalised to docker.io
    repository: str  # path inside the registry, e.g. library/nginx
    tag: str | None
    digest: str | None  # "sha256:..." when pinned

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        """The normalised reference kept on records: registry/repository[:tag][@digest]."""
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def display(self) -> str:
        """What a record keeps as artifact_ref: registry, repository and tag."""
        return f"{self.name}:{self.tag}" if self.tag else self.name

    @property
    def target(self) -> str:
        """What the registry is asked for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"


def _looks_like_registry(component: str) -> bool:
    # docker's rule: a first component with a dot, a port, or "localhost" is a host.
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or (component != component.lower())
    )


def _host_problem(host: str) -> str | None:
    """Why `host` is not a registry host[:port] (None when it is one)."""
    if not _DOMAIN_RE.match(host):
        return f"{host!r} is not a valid registry host[:port]"
    if host.startswith("["):
        import ipaddress  # only for IPv6 hosts: keeps `--digest` runs from loading it

        address, _, port = host[1:].partition("]")
        port = port.removeprefix(":")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return f"{host!r} is not a valid IPv6 address in brackets"
    else:
        port = host.rpartition(":")[2] if ":" in host else ""
    if port and not 0 < int(port) < 65536:
        return f"port {port} is out of range"
    return None


def normalize_registry(text: str) -> str:
    """A registry as written for logins (`https://Host:port/`, `docker.io`) -> host[:port].

    Docker Hub's aliases (index.docker.io, registry-1.docker.io, its v1 URL) become docker.io,
    the name references use, so credentials given for any of them match `nginx`.
    """
    host = text.strip()
    for scheme in ("https://", "http://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
    host = host.split("/", 1)[0]
    problem = _host_problem(host) if host else "it is empty"
    if problem:
        raise RegistryError(f"invalid registry server {text!r}: {problem}")
    host = host.lower()  # host names are case-insensitive; logins are matched in lowercase
    return DOCKER_HUB if host in _LEGACY_HUB_NAMES | {DOCKER_HUB} else host


def api_host(registry: str) -> str:
    """Where a registry's /v2/ API answers: Docker Hub serves it from another name."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def parse_reference(text: str) -> Reference:
    """Parse a reference; a missing tag means `latest` unless a digest pins it."""
    original = text
    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise _invalid(original, "it is empty or contains white space")
    if "://" in text:
        raise _invalid(original, "give it without a URL scheme (e.g. ghcr.io/org/app:1.0)")

    digest: str | None = None
    if "@" in text:
        text, _, raw_digest = text.rpartition("@")
        digest = normalize_sha256(raw_digest)
        if digest is None:
            raise _invalid(original, "the digest must be sha256:<64 hex digits>")

    registry = DOCKER_HUB
    first, slash, rest = text.partition("/")
    if slash and _looks_like_registry(first):
        registry, text = first, rest
        problem = _host_problem(registry)
        if problem:
            raise _invalid(original, problem)
    if registry in _LEGACY_HUB_NAMES:
        registry = DOCKER_HUB

    tag: str | None = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise _invalid(
                original,
                "a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            )

    if not text:
        raise _invalid(original, "it names no repository")
    if registry == DOCKER_HUB and "/" not in text:
        text = f"library/{text}"
    if not _PATH_RE.match(text):
        raise _invalid(
            original,
            "repository names are lowercase letters, digits and separators ('.', '_', '-', "
            "'/'), each part starting and ending with a letter or digit",
        )
    if len(registry) + 1 + len(text) > MAX_NAME_LENGTH:
        raise _invalid(original, f"the name is longer than {MAX_NAME_LENGTH} characters")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry=registry, repository=text, tag=tag, digest=digest)
