"""How to reach registries: explicit credentials, timeout and TLS settings (pure data).

The CLI builds one `RegistryOptions` from its `--registry-*` flags and environment
variables (deploytrack/cli/registry_options.py); services pass it to the registry client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deploytrack.registry import DEFAULT_TIMEOUT, RegistryError


@dataclass(frozen=True)
class Credentials:
    """A login for one registry. The secrets never appear in repr() or in any message.

    `source` says where it came from (e.g. "--registry-username", "docker config
    /home/me/.docker/config.json") so an authentication failure can name it.
    """

    username: str
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    source: str = ""

    def __str__(self) -> str:
        if self.username:
            return f"user {self.username!r} from {self.source}"
        return f"the identity token from {self.source}"


@dataclass(frozen=True)
class RegistryOptions:
    """Settings for every registry request of one command.

    server/username/password: explicit credentials, sent only to references on `server`
    (host[:port], normalised). timeout: seconds to connect and to wait for each answer.
    ca_file: PEM file of the CAs trusted instead of the system's. plain_http: talk HTTP.
    """

    server: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    ca_file: str | None = None
    plain_http: bool = False
    credentials_source: str = "--registry-username/--registry-password"

    def __post_init__(self) -> None:
        if self.server is not None:
            from deploytrack.registry.reference import normalize_registry

            object.__setattr__(self, "server", normalize_registry(self.server))
        given = (self.server is not None, self.username is not None, self.password is not None)
        if any(given) and not all(given):
            raise RegistryError(
                "explicit registry credentials need all three of the server, the username and "
                "the password (--registry-server, --registry-username, --registry-password or "
                "--registry-password-stdin); they are sent only to that server"
            )
        if not self.timeout > 0:
            raise RegistryError(f"invalid registry timeout {self.timeout}: give seconds > 0")
        if self.plain_http and self.ca_file is not None:
            raise RegistryError("--plain-http and --ca-file contradict each other: give one")

    def explicit_credentials(self, registry: str) -> Credentials | None:
        """The explicit login when `registry` is its server; None for every other registry."""
        if self.server is None or self.server != registry.lower():
            return None
        assert self.username is not None and self.password is not None
        return Credentials(self.username, self.password, source=self.credentials_source)
