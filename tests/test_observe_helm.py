"""`helm list -A -o json` read into Observed items (deploytrack/observe/helm.py): pure, on
Helm's own golden outputs (tests/fixtures/helm/) and on lists built from their shape."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from conftest import FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from deploytrack.observe import Observed, ObserveError, helm
from deploytrack.services import validate

HELM = FIXTURES / "helm"


def release(**fields: Any) -> dict[str, Any]:
    """One entry as `helm list -o json` writes it (the fixture's shape), with changes."""
    entry: dict[str, Any] = json.loads((HELM / "helm4-list-o-json.json").read_bytes())[0]
    entry.update(fields)
    return entry


def listed(*entries: Any) -> bytes:
    return json.dumps(list(entries)).encode()


def test_the_real_list_is_one_chart_to_find_by_name_and_version() -> None:
    assert helm.parse((HELM / "helm4-list-o-json.json").read_bytes()) == [
        Observed(
            deployment_name="default.test-release",
            kind="HELM_CHART",
            digest=None,
            artifact_ref=None,
            source={
                "namespace": "default",
                "release": "test-release",
                "chart": "test-chart-1.0.0",
                "revision": 1,  # written "1" by helm list, a number here as in helm history
            },
            chart=("test-chart", "1.0.0"),
        )
    ]


@pytest.mark.parametrize(
    ("chart", "split"),
    [
        ("foo-0.1.0-beta.1", ("foo", "0.1.0-beta.1")),  # the chart of Helm's own mocks
        ("test-chart-1.0.0", ("test-chart", "1.0.0")),
        ("my-app-2.0-1.0.0", ("my-app-2.0", "1.0.0")),
        ("ingress-nginx-4.11.3+build.7", ("ingress-nginx", "4.11.3+build.7")),
        ("cert-manager-v1.15.0", ("cert-manager", "v1.15.0")),
        ("a-1.0.0-rc-1", ("a", "1.0.0-rc-1")),
        # Ambiguous (helm joins the two with a dash): the last dash that starts one wins.
        ("a-1.0.0-2.0.0", ("a-1.0.0", "2.0.0")),
        ("chart", None),
        ("chart-1.0", None),
        ("-1.0.0", None),
        ("chart-01.0.0", None),
    ],
)
def test_the_version_is_the_last_dash_that_starts_a_whole_semver(
    chart: str, split: tuple[str, str] | None
) -> None:
    assert helm.split_chart(chart) == split


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("helm4-list-short-o-json.json", "a list of names (helm list --short?)"),
        ("helm-history-o-json.json", "a list whose entries are not releases (helm history?)"),
        ("helm4-status-o-json.json", "a JSON object (helm status or helm get?)"),
        ("helm4-get-metadata-o-json.json", "a JSON object (helm status or helm get?)"),
    ],
)
def test_other_helm_outputs_are_the_wrong_document(name: str, message: str) -> None:
    with pytest.raises(ObserveError) as refused:
        helm.parse((HELM / name).read_bytes())
    assert str(refused.value) == (
        f"the input is {message}, not the output of `helm list -A -o json`"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the helm list is not valid JSON: Expecting value at line 1 column 1"),
        (b"\xff[]", "the helm list is not valid JSON: invalid UTF-8 at byte 0"),
        (b'[{"name": 1, "name": 2}]', "duplicate key"),
        (b"42", "the input is a JSON int, not the output"),
    ],
)
def test_input_that_is_no_json_list_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ObserveError, match=message):
        helm.parse(data)


def test_an_empty_list_is_a_cluster_without_releases() -> None:
    assert helm.parse(b"[]\n") == []


def test_only_deployed_releases_run_the_others_are_skipped_with_their_status() -> None:
    statuses = ["deployed", "failed", "pending-upgrade", "superseded", "uninstalling"]
    seen = helm.parse(listed(*(release(name=f"r{i}", status=s) for i, s in enumerate(statuses))))
    assert [(o.deployment_name, o.skip, o.chart) for o in seen] == [
        ("default.r0", None, ("test-chart", "1.0.0")),
        ("default.r1", "release status is failed, not deployed", None),
        ("default.r2", "release status is pending-upgrade, not deployed", None),
        ("default.r3", "release status is superseded, not deployed", None),
        ("default.r4", "release status is uninstalling, not deployed", None),
    ]


def test_namespace_filter_skips_the_others_by_name() -> None:
    data = listed(release(namespace="web"), release(namespace="kube-system"), release())
    seen = helm.parse(data, namespaces=["web", "default"])
    assert [(o.deployment_name, o.skip) for o in seen] == [
        ("web.test-release", None),
        ("kube-system.test-release", "namespace kube-system is not one of --namespace"),
        ("default.test-release", None),
    ]


def test_the_same_release_name_in_two_namespaces_gets_two_default_names() -> None:
    seen = helm.parse(listed(release(namespace="a"), release(namespace="b")))
    names = [o.deployment_name for o in seen]
    assert names == ["a.test-release", "b.test-release"]
    for name in names:  # the default template makes valid deployment names
        assert name is not None and validate.deployment_name(name) == name


def test_a_reason_quotes_a_long_value_shortened() -> None:
    seen = helm.parse(listed(release(status="x" * 10_000), release(chart="y" * 10_000)))
    assert [o.skip for o in seen] == [
        f"release status is {'x' * 80}..., not deployed",
        f"chart '{'y' * 79}... is not NAME-VERSION with a SemVer version",
    ]
    assert seen[1].source["chart"] == "y" * 10_000


def test_a_revision_is_read_as_a_number_from_either_spelling() -> None:
    seen = helm.parse(listed(release(revision=7), release(revision="12"), release(revision="x")))
    assert [o.source["revision"] for o in seen] == [7, 12, None]


def test_bad_entries_are_skipped_and_the_rest_kept() -> None:
    seen = helm.parse(
        listed(
            release(),
            "not an object",
            {"name": "no-namespace"},
            release(chart="nochartversion"),
            release(chart=None),
            release(status=None),
        )
    )
    assert [o.skip for o in seen] == [
        None,
        "entry 2 is not a release object",
        "entry 3 has no name or namespace",
        "chart 'nochartversion' is not NAME-VERSION with a SemVer version",
        "chart None is not NAME-VERSION with a SemVer version",
        "release status is missing, not deployed",
    ]
    assert seen[1].source == {"entry": 2}
    assert all(o.kind == "HELM_CHART" and o.digest is None for o in seen)


@pytest.mark.parametrize(
    ("template", "name"),
    [
        ("{release}", "test-release"),
        ("{namespace}-{chart}", "default-test-chart"),
        ("helm.{namespace}.{release}.{chart}", "helm.default.test-release.test-chart"),
        ("{{literal}}{release}", "{literal}test-release"),  # doubled braces are braces
    ],
)
def test_the_name_template_takes_namespace_release_and_chart(template: str, name: str) -> None:
    (seen,) = helm.parse(listed(release()), name_template=template)
    assert seen.deployment_name == name


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{workload}", "unknown field {workload}: use {namespace}, {release}, {chart}"),
        ("{}", "unknown field {}"),
        ("{0}", "unknown field {0}"),
        ("{release.name}", "unknown field {release.name}"),
        ("{release[0]}", "unknown field {release[0]}"),
        ("{release:>20}", "{release} takes no format or conversion"),
        ("{release!r}", "{release} takes no format or conversion"),
        ("{release", "is malformed"),
        ("release}", "is malformed"),
    ],
)
def test_a_bad_name_template_is_refused_before_the_input_is_read(
    template: str, message: str
) -> None:
    with pytest.raises(ObserveError, match=r"^--name-template ") as refused:
        helm.parse(b"not even json", name_template=template)
    assert message in str(refused.value)


def test_a_name_needing_the_chart_is_not_formed_without_one() -> None:
    (seen,) = helm.parse(listed(release(chart="broken", status="failed")), name_template="{chart}")
    assert seen.deployment_name is None
    (seen,) = helm.parse(listed(release(chart="broken")), name_template="{release}")
    assert seen.deployment_name == "test-release"


def test_a_100_mb_input_is_refused_at_once() -> None:
    data = listed(release()) + b" " * (100 * 1024 * 1024)
    started = time.perf_counter()
    with pytest.raises(ObserveError, match="larger than 16 MiB"):
        helm.parse(data)
    assert time.perf_counter() - started < 1


def test_ten_thousand_releases_parse_quickly() -> None:
    data = listed(*(release(name=f"r{i}", namespace=f"ns{i % 50}") for i in range(10_000)))
    started = time.perf_counter()
    seen = helm.parse(data)
    assert time.perf_counter() - started < 2
    assert len(seen) == 10_000 and len({o.deployment_name for o in seen}) == 10_000


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
_FIELD = st.sampled_from(["name", "namespace", "revision", "status", "chart", "app_version"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(_FIELD, _JSON) | _JSON, max_size=6) | _JSON | st.binary())
def test_garbage_is_refused_or_skipped_never_another_exception(document: Any) -> None:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    try:
        seen = helm.parse(data)
    except ObserveError:
        return
    for item in seen:
        assert item.kind == "HELM_CHART" and item.digest is None
        assert (item.skip is None) == (item.chart is not None)
