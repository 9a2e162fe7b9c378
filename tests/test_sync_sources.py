"""`deployment sync` end to end: the command on the real kubectl and helm outputs of
tests/fixtures (see their READMEs), and on a CDEvents export of another database.

The parsers are tested alone in tests/test_observe_*.py and the engine with hand-built
observations in tests/test_sync.py; here the three meet the real database through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, Invoke, snapshot
from helpers import intoto_statement

from deploytrack.cli import cli

KUBERNETES = FIXTURES / "kubernetes"
K3S_DEFAULT = KUBERNETES / "troubleshoot-k3s-pods-default.json"
K3S_SYSTEM = KUBERNETES / "troubleshoot-k3s-pods-kube-system.json"
HONEYCOMB = KUBERNETES / "honeycomb-kubelet-pods.json"
NEAT = KUBERNETES / "kubectl-neat-list1-raw.json"
HELM_LIST = FIXTURES / "helm" / "helm4-list-o-json.json"

ALPINE = "sha256:4bcff63911fcb4448bd4fdacec207030997caf25e9bea4045fa6c8c44de311d1"
CHART = "sha256:" + "c" * 64
WHERE = ("--env", "k3s", "--logical-env", "production")


def evidence(ok: Invoke, tmp_path: Path, name: str, *subjects: tuple[str, str]) -> None:
    path = tmp_path / f"{name}.json"
    statement = intoto_statement(subjects, "https://slsa.dev/provenance/v1")
    path.write_text(json.dumps(statement), encoding="utf-8")
    ok("attestation", "import", str(path))


@pytest.fixture
def cluster(ok: Invoke) -> None:
    ok("environment", "create", "--name", "k3s", "--type", "kubernetes")


def sync(run: Invoke, *args: str) -> tuple[int, dict[str, Any]]:
    result = run("deployment", "sync", *WHERE, *args, "-o", "json")
    assert result.exit_code in (0, 1), (result.output, result.stderr)
    return result.exit_code, json.loads(result.stdout)


def outcomes(report: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(row["outcome"], row["deployment_name"]) for row in report["rows"]]


def verifies(ok: Invoke) -> None:
    assert ok("log", "verify").stdout.rstrip().endswith("The log verifies.")


def test_a_k3s_namespace_is_recorded_then_heartbeats(
    ok: Invoke, run: Invoke, cluster: None, tmp_path: Path
) -> None:
    evidence(ok, tmp_path, "alpine", ("docker.io/library/alpine", ALPINE))
    code, first = sync(run, "--from-kubectl", str(K3S_DEFAULT), "--exit-code")
    # backend-api crash-loops (skipped, with why); the two others run alpine, attested;
    # the Pending replicas of cpu-intensive-app have no container running and add nothing.
    assert outcomes(first) == [
        ("skipped", "default.backend-api.api-server"),
        ("created", "default.cpu-intensive-app.cpu-burner"),
        ("created", "default.memory-hungry-app.memory-hog"),
    ]
    assert "CrashLoopBackOff" in first["rows"][0]["reason"]
    assert first["rows"][1]["source"] == {
        "namespace": "default",
        "workload": "cpu-intensive-app",
        "workload_kind": "Deployment",
        "container": "cpu-burner",
    }
    assert code == 1  # --exit-code: anything but a heartbeat is drift
    code, again = sync(run, "--from-kubectl", str(K3S_DEFAULT), "--exit-code")
    assert [o for o, _ in outcomes(again)] == ["skipped", "heartbeat", "heartbeat"]
    records = json.loads(ok("deployment", "list", "-o", "json").stdout)
    assert {(r["deployment_name"], r["digest"], r["source"]) for r in records} == {
        ("default.cpu-intensive-app.cpu-burner", ALPINE, "observed"),
        ("default.memory-hungry-app.memory-hog", ALPINE, "observed"),
    }
    verifies(ok)


def test_what_no_attestation_names_is_the_finding_and_is_not_recorded(
    ok: Invoke, run: Invoke, cluster: None
) -> None:
    _, report = sync(run, "--from-kubectl", str(K3S_SYSTEM))
    seen = {name: (row["outcome"], row["reason"]) for row, (_, name) in zip(
        report["rows"], outcomes(report), strict=True)}  # fmt: skip
    assert seen["kube-system.coredns.coredns"][0] == "unattested"
    # Both containers of the svclb DaemonSet pod, each its own slot.
    assert seen["kube-system.svclb-traefik-9ce4920b.lb-tcp-80"][0] == "unattested"
    assert seen["kube-system.svclb-traefik-9ce4920b.lb-tcp-443"][0] == "unattested"
    # The helm-install Jobs' pods have finished: not running.
    helm_jobs = [n for n in seen if n.startswith("kube-system.helm-install")]
    assert helm_jobs and all(seen[n][0] == "skipped" for n in helm_jobs)
    assert json.loads(ok("deployment", "list", "-o", "json").stdout) == []
    verifies(ok)


def test_only_the_namespaces_asked_for_are_recorded(ok: Invoke, run: Invoke, cluster: None) -> None:
    _, report = sync(run, "--from-kubectl", str(HONEYCOMB), "--namespace", "olly")
    rows = {row["deployment_name"]: (row["outcome"], row["reason"]) for row in report["rows"]}
    olly = {name: rows.pop(name) for name in list(rows) if name.startswith("olly.")}
    assert olly["olly.grafana.grafana"][0] == "unattested"
    assert olly["olly.grafana.grafana-sc-dashboard"][0] == "unattested"
    # The kubelet's list of a pod with an init container: it ran before, it is not running.
    assert olly["olly.grafana.grafana-sc-datasources"][0] == "skipped"
    assert "init container" in olly["olly.grafana.grafana-sc-datasources"][1]
    assert len(rows) == 13 and all(
        outcome == "skipped" and "is not in --namespace" in reason
        for outcome, reason in rows.values()
    )


def test_prune_decommissions_what_the_cluster_no_longer_runs(
    ok: Invoke, run: Invoke, cluster: None, tmp_path: Path
) -> None:
    evidence(ok, tmp_path, "alpine", ("docker.io/library/alpine", ALPINE))
    sync(run, "--from-kubectl", str(K3S_DEFAULT))
    plan = ok("deployment", "sync", *WHERE, "--from-kubectl", str(NEAT), "--prune", "--dry-run")
    assert "not seen (record 1)" in plan.stdout  # a pruned record was seen nowhere
    _, report = sync(run, "--from-kubectl", str(NEAT), "--prune")
    assert sorted(outcomes(report)) == [
        ("decommissioned", "default.cpu-intensive-app.cpu-burner"),
        ("decommissioned", "default.memory-hungry-app.memory-hog"),
        ("unattested", "default.t1.t1"),
        ("unattested", "default.t2.t2"),
    ]
    statuses = {
        r["deployment_name"]: r["status"]
        for r in json.loads(ok("deployment", "list", "--history", "-o", "json").stdout)
    }
    assert set(statuses.values()) == {"decommissioned"}
    verifies(ok)


def test_a_dry_run_prints_the_real_runs_plan_and_writes_nothing(
    ok: Invoke, run: Invoke, cluster: None, tmp_path: Path, db_path: Path
) -> None:
    evidence(ok, tmp_path, "alpine", ("docker.io/library/alpine", ALPINE))
    before = snapshot(db_path)
    _, planned = sync(run, "--from-kubectl", str(K3S_DEFAULT), "--dry-run")
    assert snapshot(db_path) == before
    _, done = sync(run, "--from-kubectl", str(K3S_DEFAULT))
    assert planned["rows"] == done["rows"] and planned["dry_run"] is True


def test_the_stage_policy_refuses_an_observed_artifact_with_its_reason(
    ok: Invoke, run: Invoke, cluster: None, tmp_path: Path
) -> None:
    evidence(ok, tmp_path, "alpine", ("docker.io/library/alpine", ALPINE))
    ok("logical-environment", "policy", "set", "--name", "production",
       "--require-predicate", "https://example.com/reviewed/v1")  # fmt: skip
    _, report = sync(run, "--from-kubectl", str(K3S_DEFAULT))
    refused = [row for row in report["rows"] if row["outcome"] == "refused"]
    assert len(refused) == 2
    assert all("https://example.com/reviewed/v1" in row["reason"] for row in refused)
    assert json.loads(ok("deployment", "list", "-o", "json").stdout) == []
    verifies(ok)


def test_a_helm_release_is_recorded_by_the_chart_the_evidence_names(
    ok: Invoke, run: Invoke, cluster: None, tmp_path: Path
) -> None:
    _, unknown = sync(run, "--from-helm", str(HELM_LIST))
    assert outcomes(unknown) == [("unattested", "default.test-release")]
    evidence(ok, tmp_path, "chart", ("test-chart-1.0.0.tgz", CHART))
    _, report = sync(run, "--from-helm", str(HELM_LIST))
    assert outcomes(report) == [("created", "default.test-release")]
    assert report["rows"][0]["digest"] == CHART
    assert report["rows"][0]["kind"] == "HELM_CHART"
    verifies(ok)


def test_a_cdevents_export_replays_the_history_into_another_database(
    ok: Invoke, run: Invoke, cluster: None, tmp_path: Path
) -> None:
    """The issue's round trip: what one deploytrack exported, another records the same."""
    other_a, other_b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    evidence(ok, tmp_path, "app", ("app", other_a), ("app", other_b))
    slot = ("--env", "k3s", "--logical-env", "production", "--deployment-name", "app",
            "--kind", "CONTAINER_IMAGE")  # fmt: skip
    ok("deployment", "record", *slot, "--digest", other_a)
    ok("deployment", "record", *slot, "--digest", other_b)
    ok("deployment", "rollback", *slot)
    ok("deployment", "decommission", *slot)
    exported = tmp_path / "events.jsonl"
    ok("log", "export", "--format", "cdevents", "--output", str(exported))

    copy = tmp_path / "copy.db"

    def in_copy(*args: str) -> Any:
        done = CliRunner().invoke(cli, ["--db", str(copy), *args])
        assert done.exit_code == 0, (args, done.output, done.stderr)
        return done

    in_copy("environment", "create", "--name", "k3s", "--type", "kubernetes")
    in_copy("attestation", "import", str(tmp_path / "app.json"))
    in_copy("deployment", "sync", *WHERE, "--from-cdevents", str(exported))

    def history(result: Any) -> list[tuple[str, str, str]]:
        rows = json.loads(result.stdout)
        return [(r["deployment_name"], r["digest"], r["status"]) for r in rows]

    source = history(ok("deployment", "list", "--history", "-o", "json"))
    replayed = history(in_copy("deployment", "list", "--history", "-o", "json"))
    assert replayed == source
    assert [status for _, _, status in source] == [
        "decommissioned", "superseded", "superseded"
    ]  # fmt: skip
    in_copy("log", "verify")
