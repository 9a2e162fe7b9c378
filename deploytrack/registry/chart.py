"""A packaged Helm chart (`helm package` output, a .tgz): its sha256 and its Chart.yaml.

The digest recorded for a chart file is the sha256 of the file's bytes. The archive must
be what Helm loads: a gzipped tar whose files sit under one top folder holding
Chart.yaml with apiVersion v1 or v2, a name and a SemVer version.

Only those three top-level scalars are read, so no YAML library is needed (deploytrack
keeps its dependencies to what it uses): `key: value` lines at column 0, values plain or
quoted, comments stripped. A Chart.yaml that writes them another way is refused with a
message rather than misread.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deploytrack.registry import RegistryError

CHART_SUFFIXES = (".tgz", ".tar.gz")
MAX_CHART_BYTES = 20 * 1024 * 1024  # Helm refuses bigger chart archives too
MAX_CHART_YAML_BYTES = 1024 * 1024
API_VERSIONS = ("v1", "v2")
# SemVer 2, with Helm's leniency for a leading "v".
_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_LINE = re.compile(
    r"""^(?P<q>["']?)(?P<key>apiVersion|name|version)(?P=q)\s*:(?:\s+(?P<value>.*))?$"""
)


@dataclass(frozen=True)
class ChartFile:
    digest: str
    name: str
    version: str
    api_version: str


def is_chart_path(text: str) -> bool:
    return text.lower().endswith(CHART_SUFFIXES)


def _scalar(raw: str) -> str | None:
    value = raw.strip()
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        return value[1:end] if end > 0 else None
    value = re.split(r"\s#", value, maxsplit=1)[0].strip()
    if not value or value[0] in "|>&*!{[":
        return None
    return value


def parse_chart_yaml(text: str) -> dict[str, str]:
    """apiVersion, name and version from Chart.yaml text (those found)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line.rstrip())
        if match and match["key"] not in fields:
            value = _scalar(match["value"] or "")
            if value is not None:
                fields[match["key"]] = value
    return fields


def _chart_yaml(path: Path, tar: tarfile.TarFile) -> str:
    top: str | None = None
    found: tarfile.TarInfo | None = None
    for member in tar:
        parts = PurePosixPath(member.name.removeprefix("./")).parts
        if not parts:
            continue
        if top is None:
            top = parts[0]
        elif parts[0] != top:
            raise RegistryError(
                f"{path} is not a packaged Helm chart: its files are not under one top folder"
            )
        if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
            found = member
            break
    if found is None:
        raise RegistryError(f"{path} is not a packaged Helm chart: it has no <chart>/Chart.yaml")
    if found.size > MAX_CHART_YAML_BYTES:
        raise RegistryError(f"{path}: Chart.yaml is larger than 1 MiB")
    handle = tar.extractfile(found)
    assert handle is not None
    with handle:
        data = handle.read(MAX_CHART_YAML_BYTES)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RegistryError(f"{path}: Chart.yaml is not UTF-8 text") from None


def read_chart(path_text: str) -> ChartFile:
    """The sha256 of a chart .tgz and its Chart.yaml name/version, or a one-line refusal."""
    path = Path(path_text)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise RegistryError(f"{path} is not a file: give a packaged chart (.tgz)")
    except FileNotFoundError:
        raise RegistryError(f"no chart file at {path}: the file does not exist") from None
    if size > MAX_CHART_BYTES:
        raise RegistryError(f"{path} is larger than 20 MiB: not a packaged Helm chart")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc.strerror}") from None
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            text = _chart_yaml(path, tar)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise RegistryError(f"{path} is not a packaged Helm chart (a gzipped tar): {exc}") from None
    fields = parse_chart_yaml(text)
    api_version = fields.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise RegistryError(
            f"{path}: Chart.yaml has apiVersion {api_version!r}; Helm charts use v1 or v2"
        )
    name, version = fields.get("name"), fields.get("version")
    if not name:
        raise RegistryError(f"{path}: Chart.yaml has no name")
    if not version or not _SEMVER.match(version):
        raise RegistryError(f"{path}: Chart.yaml version {version!r} is not a SemVer version")
    return ChartFile(digest=digest, name=name, version=version, api_version=api_version)
