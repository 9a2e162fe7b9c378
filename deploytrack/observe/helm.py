"""Helm releases from `helm list -A -o json` (pure): one Observed per release.

`helm list` names a release's chart only as `NAME-VERSION` and never its digest: each
Observed carries `chart=(NAME, VERSION)` for the sync to find the digest in the evidence
store or a chart repository (services/charts.py). Only releases whose status is
`deployed` run; the others (failed, pending-upgrade, superseded, uninstalling...) are
skipped with their status.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

from deploytrack import jsondoc
from deploytrack.observe import Observed, ObserveError

# A helm list is ~250 bytes a release: 16 MiB is 60,000 releases, more than any cluster
# holds, and a bigger input is refused before it is parsed.
MAX_HELM_BYTES = 16 * 1024 * 1024
# Unique per release: two namespaces may hold releases of the same name.
DEFAULT_TEMPLATE = "{namespace}.{release}"
FIELDS = ("namespace", "release", "chart")
# SemVer 2 with Helm's leading "v": what a chart's version is (Chart.yaml).
_SEMVER = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_DEPLOYED = "deployed"


def split_chart(text: str) -> tuple[str, str] | None:
    """`NAME-VERSION` as helm list joins them, split at the last dash whose remainder is a
    whole SemVer (`foo-0.1.0-beta.1` is foo 0.1.0-beta.1: the version's own dashes stay
    in it); None when no dash starts one."""
    index = len(text)
    while (index := text.rfind("-", 0, index)) > 0:
        if _SEMVER.fullmatch(text, index + 1):
            return text[:index], text[index + 1 :]
    return None


def check_template(template: str, fields: Sequence[str]) -> list[str]:
    """The fields of a `--name-template`, each one of `fields`; ObserveError for an unknown
    field, a positional `{}`, a format spec, a conversion, or unbalanced braces."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ObserveError(f"--name-template {template!r} is malformed: {exc}") from None
    used: list[str] = []
    allowed = ", ".join("{" + f + "}" for f in fields)
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in fields:
            raise ObserveError(
                f"--name-template {template!r}: unknown field {{{field}}}: use {allowed}"
            )
        if spec or conversion:
            raise ObserveError(
                f"--name-template {template!r}: {{{field}}} takes no format or conversion"
            )
        used.append(field)
    return used


def _fail(data: Any) -> ObserveError:
    if isinstance(data, list) and data and all(isinstance(item, str) for item in data):
        what = "a list of names (helm list --short?)"
    elif isinstance(data, dict):
        what = "a JSON object (helm status or helm get?)"
    elif isinstance(data, list):
        what = "a list whose entries are not releases (helm history?)"
    else:
        what = f"a JSON {type(data).__name__}"
    return ObserveError(f"the input is {what}, not the output of `helm list -A -o json`")


def _release(entry: Any) -> bool:
    return isinstance(entry, dict) and "name" in entry and "namespace" in entry


def parse(
    data: bytes, *, namespaces: Sequence[str] = (), name_template: str | None = None
) -> list[Observed]:
    """One Observed per release of the list, in its order. `namespaces` (when given) keeps
    only those; `name_template` makes the deployment name (DEFAULT_TEMPLATE)."""
    template = DEFAULT_TEMPLATE if name_template is None else name_template
    fields = check_template(template, FIELDS)
    try:
        document = jsondoc.loads(data, max_bytes=MAX_HELM_BYTES)
    except jsondoc.JSONError as exc:
        raise ObserveError(f"the helm list is {exc}") from None
    # An empty list is a cluster without releases; any other list must hold some.
    if not isinstance(document, list) or (document and not any(map(_release, document))):
        raise _fail(document)
    wanted = set(namespaces)
    return [
        _observe(index, entry, wanted, template, fields) for index, entry in enumerate(document)
    ]


def _short(text: str) -> str:
    """A value from the input as a reason quotes it: a reason is one line, however long
    the value (the row's source keeps it whole)."""
    return text if len(text) <= 80 else text[:80] + "..."


def _text(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) and value else None


def _revision(value: Any) -> int | None:
    # helm list writes it as a string ("1"), helm history and get metadata as a number.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _observe(
    index: int, entry: Any, wanted: set[str], template: str, fields: list[str]
) -> Observed:
    def skipped(reason: str, source: dict[str, Any], name: str | None = None) -> Observed:
        return Observed(name, "HELM_CHART", None, None, source, skip=reason)

    if not isinstance(entry, dict):
        return skipped(f"entry {index + 1} is not a release object", {"entry": index + 1})
    namespace, release, chart = _text(entry, "namespace"), _text(entry, "name"), entry.get("chart")
    source = {
        "namespace": namespace,
        "release": release,
        "chart": chart,
        "revision": _revision(entry.get("revision")),
    }
    if namespace is None or release is None:
        return skipped(f"entry {index + 1} has no name or namespace", source)
    split = split_chart(chart) if isinstance(chart, str) else None
    name = None
    if split is not None or "chart" not in fields:
        chart_name = split[0] if split is not None else ""
        name = template.format(namespace=namespace, release=release, chart=chart_name)
    if wanted and namespace not in wanted:
        return skipped(f"namespace {_short(namespace)} is not one of --namespace", source, name)
    status = entry.get("status")
    if status != _DEPLOYED:
        shown = _short(status) if isinstance(status, str) else "missing"
        return skipped(f"release status is {shown}, not deployed", source, name)
    if split is None:
        return skipped(
            f"chart {_short(repr(chart))} is not NAME-VERSION with a SemVer version", source, name
        )
    return Observed(name, "HELM_CHART", None, None, source, chart=split)


__all__ = ["DEFAULT_TEMPLATE", "MAX_HELM_BYTES", "check_template", "parse", "split_chart"]
