"""Which login to present to a registry: explicit options, else the docker config, else none.

The docker config is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as the
docker, oras and skopeo command lines read it. For one registry host it is looked up in
this order:

1. `credHelpers[host]`: run `docker-credential-<helper> get` with the server on stdin;
2. `credsStore`: the same with the default helper;
3. `auths[host]`: `auth` (base64 of user:password), or `username` and `password`, and
   `identitytoken` (an OAuth2 refresh token, exchanged at the token service).

A helper that has no login for the host is not an error: the next source is tried. Keys
may be written as URLs (`https://host:port/v1/`); Docker Hub's keys (its v1 URL,
index.docker.io, registry-1.docker.io) all match `docker.io`.
"""

from __future__ import annotations

import base64
import binascii
import os
import subprocess
from pathlib import Path
from typing import Any

from deploytrack import jsondoc
from deploytrack.files import read_at_most
from deploytrack.registry import RegistryError
from deploytrack.registry.options import Credentials, RegistryOptions
from deploytrack.registry.reference import DOCKER_HUB, DOCKER_HUB_CONFIG_KEY, normalize_registry

CONFIG_ENV = "DOCKER_CONFIG"
HELPER_TIMEOUT = 60.0
_MAX_CONFIG_BYTES = 4 * 1024 * 1024
# What helpers print when they hold nothing for a server (docker-credential-helpers).
_NOT_FOUND = "credentials not found"


def docker_config_path() -> Path:
    folder = os.environ.get(CONFIG_ENV)
    if folder:
        return Path(folder) / "config.json"
    return Path.home() / ".docker" / "config.json"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = read_at_most(path, _MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RegistryError(f"cannot read docker config {path}: {exc.strerror}") from None
    if len(data) > _MAX_CONFIG_BYTES:
        raise RegistryError(f"cannot read docker config {path}: it is larger than 4 MiB")
    try:
        config = jsondoc.loads(data, max_bytes=_MAX_CONFIG_BYTES) if data.strip() else {}
    except jsondoc.JSONError as exc:
        raise RegistryError(f"cannot read docker config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise RegistryError(f"cannot read docker config {path}: it is not a JSON object")
    return config


def _host_key(key: str) -> str | None:
    """A config key (host, URL, Docker Hub's v1 URL) as a registry host; None if unusable."""
    try:
        return normalize_registry(key)
    except RegistryError:
        return None


def _lookup(table: Any, registry: str) -> Any:
    if not isinstance(table, dict):
        return None
    for key, value in table.items():
        if isinstance(key, str) and _host_key(key) == registry.lower():
            return value
    return None


def _server_address(registry: str) -> str:
    """What docker passes to credential helpers for a registry."""
    return DOCKER_HUB_CONFIG_KEY if registry == DOCKER_HUB else registry


def _from_helper(helper: str, registry: str, config_path: Path) -> Credentials | None:
    if not isinstance(helper, str) or not helper or "/" in helper or helper.startswith("."):
        raise RegistryError(f"docker config {config_path} names an invalid credential helper")
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(
            [program, "get"],
            input=_server_address(registry).encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise RegistryError(
            f"docker config {config_path} names credential helper {helper!r} for {registry}, "
            f"but {program} is not on PATH: install it, or remove it from the config"
        ) from None
    except subprocess.TimeoutExpired:
        raise RegistryError(
            f"credential helper {program} gave no answer for {registry} within "
            f"{HELPER_TIMEOUT:.0f} s"
        ) from None
    if proc.returncode != 0:
        said = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        if _NOT_FOUND in said.lower():
            return None
        first = said.splitlines()[0][:200] if said else f"exit code {proc.returncode}"
        raise RegistryError(f"credential helper {program} failed for {registry}: {first}")
    try:
        payload = jsondoc.loads(proc.stdout, max_bytes=_MAX_CONFIG_BYTES)
        username, secret = payload["Username"], payload["Secret"]
    except jsondoc.JSONError as exc:
        # The reason names at most a key, never a value: the answer holds a secret.
        raise RegistryError(
            f"credential helper {program} answered for {registry}, but its answer is {exc}"
        ) from None
    except (KeyError, TypeError):
        raise RegistryError(
            f"credential helper {program} answered for {registry} with something other than "
            '{"Username": ..., "Secret": ...}'
        ) from None
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None
    source = f"credential helper {program}"
    if username == "<token>":  # docker's convention: the secret is an identity token
        return Credentials("", identity_token=secret, source=source)
    return Credentials(username, secret, source=source)


def _from_auths(entry: Any, registry: str, config_path: Path) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    source = f"docker config {config_path}"
    username = name if isinstance(name := entry.get("username"), str) else ""
    password = word if isinstance(word := entry.get("password"), str) else None
    token = tok if isinstance(tok := entry.get("identitytoken"), str) else None
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if ":" not in decoded:
            raise RegistryError(
                f"docker config {config_path}: the 'auth' entry for {registry} is not the "
                "base64 of user:password"
            )
        username, _, password = decoded.partition(":")
    if token:
        return Credentials(username, password or None, identity_token=token, source=source)
    if username and password:
        return Credentials(username, password, source=source)
    return None


def from_docker_config(registry: str) -> Credentials | None:
    """The docker config's login for `registry` (host[:port]), or None."""
    path = docker_config_path()
    config = _load(path)
    if not config:
        return None
    helper = _lookup(config.get("credHelpers"), registry)
    if helper:
        found = _from_helper(helper, registry, path)
        if found is not None:
            return found
    store = config.get("credsStore")
    if store:
        found = _from_helper(store, registry, path)
        if found is not None:
            return found
    return _from_auths(_lookup(config.get("auths"), registry), registry, path)


def credentials_for(registry: str, options: RegistryOptions) -> Credentials | None:
    """Explicit credentials for their own server, else the docker config, else anonymous."""
    return options.explicit_credentials(registry) or from_docker_config(registry)
