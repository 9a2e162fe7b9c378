"""A Helm release's chart resolved in an OCI chart repository (`--chart-repo`,
deploytrack/services/charts.py), against the real registry the tests start, and the same
chart found in the evidence store once `attestation create` names it from there."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pytest
from conftest import Invoke

from deploytrack.registry import RegistryError
from deploytrack.registry.options import RegistryOptions
from deploytrack.services.artifacts import ArtifactResolver
from deploytrack.services.charts import ChartMatch, chart_resolver, find_chart, resolve_chart_repo
from deploytrack.store import open_store

from . import registry_support as rs

PLAIN = RegistryOptions(plain_http=True)


def test_a_chart_resolves_by_repository_name_and_version(plain_registry: rs.Registry) -> None:
    digest = resolve_chart_repo(f"oci://{plain_registry.host}/charts", "mychart", "0.1.0", PLAIN)
    assert digest == plain_registry.digests["charts/mychart:0.1.0"]


@pytest.mark.parametrize(
    ("repo", "name", "version", "message"),
    [
        ("charts", "mychart", "9.9.9", r"tag 9\.9\.9 not found in .*/charts/mychart"),
        ("acme", "app", "1.0", "is not a Helm chart"),  # an image, checked as record does
    ],
)
def test_what_is_no_chart_in_the_repository_is_refused(
    plain_registry: rs.Registry, repo: str, name: str, version: str, message: str
) -> None:
    with pytest.raises(RegistryError, match=message):
        resolve_chart_repo(f"oci://{plain_registry.host}/{repo}", name, version, PLAIN)


def _unreachable(*args: object) -> NoReturn:
    raise AssertionError("the registry was asked twice for one chart")


def test_the_resolver_of_a_sync_tells_each_release_apart(
    plain_registry: rs.Registry, ok: Invoke, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("environment", "list")
    store = open_store(db_path)
    try:
        resolve = chart_resolver(store, f"oci://{plain_registry.host}/charts/", PLAIN)
        digest = plain_registry.digests["charts/mychart:0.1.0"]
        reference = f"oci://{plain_registry.host}/charts/mychart:0.1.0"
        assert resolve("mychart", "0.1.0") == ChartMatch(
            digest, "found", f"{reference} is {digest}"
        )
        missing = resolve("mychart", "9.9.9")  # one release's refusal, not the sync's
        assert missing.digest is None and missing.outcome == "skipped"
        assert "tag 9.9.9 not found" in missing.reason
        # Asked again (the same chart in another namespace): the answer, not the registry.
        monkeypatch.setattr(ArtifactResolver, "resolve", _unreachable)
        assert resolve("mychart", "0.1.0").digest == digest
        assert resolve("mychart", "9.9.9") == missing
    finally:
        store.close()


def test_a_chart_attested_from_the_registry_is_found_in_the_evidence_store(
    plain_registry: rs.Registry, ok: Invoke, db_path: Path
) -> None:
    chart = f"oci://{plain_registry.host}/charts/mychart:0.1.0"
    ok("attestation", "create", "--workflow", "release", "--project", "web",
       "--material", f"HELM_CHART={chart}", "--plain-http")  # fmt: skip
    store = open_store(db_path)
    try:
        match = find_chart(store, "mychart", "0.1.0")
    finally:
        store.close()
    assert match.digest == plain_registry.digests["charts/mychart:0.1.0"]
    assert match.digest == resolve_chart_repo(
        f"oci://{plain_registry.host}/charts", "mychart", "0.1.0", PLAIN
    )
