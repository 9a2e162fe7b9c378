"""Which digest a Helm release runs, found in the evidence store by its chart's name and
version (deploytrack/services/charts.py `find_chart`): attestations imported through the
CLI into a real database, then looked up. The registry form (`--chart-repo`) is tested
against a real registry in tests/registry/test_chart_repo.py."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import Invoke, snapshot
from helpers import intoto_statement, sha256_digest

from deploytrack.services import ServiceError
from deploytrack.services.charts import ChartMatch, chart_reference, chart_resolver, find_chart
from deploytrack.store import Store, open_store

D1, D2, D3 = (sha256_digest(f"chart {n}".encode()) for n in (1, 2, 3))
DEPLOYTRACK_PREDICATE = "https://deploytrack.dev/attestation/v1"


@pytest.fixture
def attest(ok: Invoke, tmp_path: Path) -> Iterator[Any]:
    """Import one attestation: subjects (name, digest) and deploytrack predicate
    materials (kind, name, digest)."""
    count = iter(range(1_000))

    def attest(
        subjects: list[tuple[str, str]], materials: Sequence[tuple[str, str, str]] = ()
    ) -> None:
        predicate = {
            "workflow": "release",
            "materials": [
                {"kind": k, "name": n, "digest": {"sha256": d.removeprefix("sha256:")}}
                for k, n, d in materials
            ],
        }
        path = tmp_path / f"statement-{next(count)}.json"
        path.write_text(json.dumps(intoto_statement(subjects, DEPLOYTRACK_PREDICATE, predicate)))
        ok("attestation", "import", str(path))

    yield attest


@pytest.fixture
def store(db_path: Path, ok: Invoke) -> Iterator[Store]:
    ok("environment", "list")  # creates the database
    opened = open_store(db_path)
    try:
        yield opened
    finally:
        opened.close()


def unattested(name: str = "mychart", version: str = "0.1.0") -> ChartMatch:
    return ChartMatch(None, "unattested", f"no attestation names chart {name} {version}")


def found(digest: str, name: str = "mychart", version: str = "0.1.0") -> ChartMatch:
    return ChartMatch(digest, "found", f"chart {name} {version} is {digest}")


@pytest.mark.parametrize(
    "subject",
    [
        "mychart-0.1.0.tgz",  # what `helm package` writes
        "/builds/acme/dist/mychart-0.1.0.tgz",
        "dist\\mychart-0.1.0.tgz",
        "oci://ghcr.io/acme/charts/mychart:0.1.0",
        f"oci://ghcr.io/acme/charts/mychart:0.1.0@{D1}",
        "oci://mychart:0.1.0",
    ],
)
def test_a_subject_that_is_surely_the_chart_is_found(
    attest: Any, store: Store, subject: str
) -> None:
    attest([(subject, D1)])
    assert find_chart(store, "mychart", "0.1.0") == found(D1)


@pytest.mark.parametrize(
    "name",
    [
        "mychart-0.1.0.tgz",
        "oci://ghcr.io/acme/charts/mychart:0.1.0",
        "ghcr.io/acme/charts/mychart:0.1.0",  # a material of kind HELM_CHART says so
        "mychart:0.1.0",
    ],
)
def test_a_helm_chart_material_is_found(attest: Any, store: Store, name: str) -> None:
    attest([("app", D2)], [("HELM_CHART", name, D1)])
    assert find_chart(store, "mychart", "0.1.0") == found(D1)


def test_a_reference_without_oci_is_a_chart_only_when_a_chart_material_says_so(
    attest: Any, store: Store
) -> None:
    # registry/app:TAG could be an image tagged like the chart's version.
    attest([("ghcr.io/acme/mychart:0.1.0", D1)])
    attest([("ghcr.io/acme/mychart:0.1.0", D2)], [("CONTAINER_IMAGE", "ghcr.io/acme/x:1", D2)])
    assert find_chart(store, "mychart", "0.1.0") == unattested()
    attest([("ghcr.io/acme/mychart:0.1.0", D3)], [("HELM_CHART", "chart", D3)])
    assert find_chart(store, "mychart", "0.1.0") == found(D3)


@pytest.mark.parametrize(
    ("kind", "name", "digest"),
    [
        ("CONTAINER_IMAGE", "oci://ghcr.io/acme/mychart:0.1.0", D1),  # not a chart material
        ("HELM_CHART", "other-mychart-0.1.0.tgz", D1),  # another chart's file
        ("HELM_CHART", "mychart-0.1.0.tar.gz", D1),
        ("HELM_CHART", "oci://ghcr.io/acme/notmychart:0.1.0", D1),
        ("HELM_CHART", "oci://ghcr.io/acme/mychart:10.1.0", D1),
        ("HELM_CHART", "oci://ghcr.io/acme/mychart:0.1.0-rc.1", D1),
        ("HELM_CHART", "MyChart-0.1.0.tgz", D1),  # chart names are case-sensitive
        ("HELM_CHART", "oci://ghcr.io/acme/mychart:0.1.0/x", D1),
    ],
)
def test_names_of_other_charts_or_versions_are_not_matched(
    attest: Any, store: Store, kind: str, name: str, digest: str
) -> None:
    attest([("app", D2)], [(kind, name, digest)])
    assert find_chart(store, "mychart", "0.1.0") == unattested()


def test_a_plus_in_the_version_is_an_underscore_in_an_oci_tag(attest: Any, store: Store) -> None:
    attest([("oci://ghcr.io/acme/mychart:1.0.0_build.7", D1), ("mychart-2.0.0+b.1.tgz", D2)])
    assert find_chart(store, "mychart", "1.0.0+build.7") == found(D1, version="1.0.0+build.7")
    assert find_chart(store, "mychart", "2.0.0+b.1") == found(D2, version="2.0.0+b.1")
    assert chart_reference("oci://r.io/charts/", "mychart", "1.0.0+b") == (
        "oci://r.io/charts/mychart:1.0.0_b"
    )


def test_one_digest_named_many_times_is_one_match(attest: Any, store: Store) -> None:
    attest([("mychart-0.1.0.tgz", D1)], [("HELM_CHART", "mychart-0.1.0.tgz", D1)])
    attest([("oci://ghcr.io/acme/mychart:0.1.0", D1)])
    assert find_chart(store, "mychart", "0.1.0") == found(D1)


def test_several_digests_are_skipped_with_the_candidates(attest: Any, store: Store) -> None:
    attest([("mychart-0.1.0.tgz", D1)])
    attest([("oci://ghcr.io/acme/mychart:0.1.0", D2)])
    match = find_chart(store, "mychart", "0.1.0")
    first, second = sorted([D1, D2])
    names = {D1: "mychart-0.1.0.tgz", D2: "oci://ghcr.io/acme/mychart:0.1.0"}
    assert match == ChartMatch(
        None,
        "skipped",
        f"2 digests are named chart mychart 0.1.0: {first[:19]} ({names[first]}), "
        f"{second[:19]} ({names[second]}); give --chart-repo to resolve it in the registry",
    )


def test_many_candidates_are_counted_past_five(attest: Any, store: Store) -> None:
    attest([(f"oci://r{n}.io/mychart:0.1.0", sha256_digest(bytes([n]))) for n in range(7)])
    match = find_chart(store, "mychart", "0.1.0")
    assert match.outcome == "skipped" and match.reason.startswith("7 digests are named")
    assert match.reason.count("(oci://") == 5 and " and 2 more;" in match.reason


def test_a_digest_that_is_not_sha256_is_no_candidate(
    attest: Any, store: Store, ok: Invoke, tmp_path: Path
) -> None:
    statement = intoto_statement([("mychart-0.1.0.tgz", D1)], DEPLOYTRACK_PREDICATE)
    statement["subject"][0]["digest"] = {"sha512": "ab" * 64}
    (tmp_path / "sha512.json").write_text(json.dumps(statement))
    ok("attestation", "import", str(tmp_path / "sha512.json"))
    assert find_chart(store, "mychart", "0.1.0") == unattested()
    attest([("mychart-0.1.0.tgz", D2)])
    assert find_chart(store, "mychart", "0.1.0") == found(D2)


def test_lookups_read_only_and_work_inside_a_callers_transaction(
    attest: Any, store: Store, db_path: Path
) -> None:
    attest([("mychart-0.1.0.tgz", D1)])
    before = snapshot(db_path)
    with store.read():
        assert find_chart(store, "mychart", "0.1.0") == found(D1)
    with store.write():  # a sync looks charts up inside its one transaction
        assert find_chart(store, "mychart", "0.1.0") == found(D1)
    resolve = chart_resolver(store)
    assert resolve("mychart", "0.1.0") == found(D1)
    assert resolve("mychart", "0.2.0") == unattested(version="0.2.0")
    assert snapshot(db_path) == before


@pytest.mark.parametrize("repo", ["ghcr.io/acme/charts", "oci://", "oci:///", "https://r.io/c"])
def test_a_chart_repo_that_is_not_oci_is_refused_once(store: Store, repo: str) -> None:
    with pytest.raises(ServiceError, match="use oci://REGISTRY/PATH"):
        chart_resolver(store, repo)


def test_a_sync_looks_each_chart_up_once(
    attest: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploytrack.services import charts

    attest([("mychart-0.1.0.tgz", D1)])
    asked: list[tuple[str, str]] = []

    def counted(given: Store, name: str, version: str) -> ChartMatch:
        asked.append((name, version))
        return find_chart(given, name, version)

    monkeypatch.setattr(charts, "find_chart", counted)
    resolve = chart_resolver(store)
    assert [resolve("mychart", "0.1.0") for _ in range(50)] == [found(D1)] * 50
    assert resolve("mychart", "0.2.0") == unattested(version="0.2.0")
    assert asked == [("mychart", "0.1.0"), ("mychart", "0.2.0")]
