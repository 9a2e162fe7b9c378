"""`deployment sync`'s engine (services/sync.py) on hand-built observations, through a real
store, and the command's own rules (flags, reading the input, output, --exit-code).

The parsers (deploytrack/observe/) are tested on their own; here an observation is built
as a parser would give it, so each rule of the engine is shown on exactly the case it is
about.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CHECK_FAILED, INTEGRITY_ERRORS, Invoke, assert_refused, query, raw, snapshot
from helpers import as_json, intoto_statement, record_args

from deploytrack.observe import Observed
from deploytrack.services import ServiceError
from deploytrack.services import sync as engine
from deploytrack.store import Store, open_store

PREDICATE = "https://example.com/release/v1"
V1, V2, V3, V4 = ("sha256:" + hashlib.sha256(f"image {n}".encode()).hexdigest() for n in "1234")
UNATTESTED = "sha256:" + hashlib.sha256(b"an image nobody attested").hexdigest()
ENV, STAGE = "prod-eu", "production"


def pod(
    name: str,
    digest: str | None,
    *,
    container: str = "app",
    namespace: str = "shop",
    **extra: Any,
) -> Observed:
    """An observation as the kubectl parser gives it."""
    source = {"namespace": namespace, "workload": name, "workload_kind": "Deployment",
              "container": container}  # fmt: skip
    return Observed(name, "CONTAINER_IMAGE", digest, None, source, **extra)


@pytest.fixture
def estate(ok: Invoke, tmp_path: Path) -> None:
    """Evidence for V1-V4 and the environment prod-eu."""
    path = tmp_path / "release.json"
    subjects = [(f"img-{i}", d) for i, d in enumerate((V1, V2, V3, V4))]
    path.write_text(json.dumps(intoto_statement(subjects, PREDICATE)))
    ok("attestation", "import", str(path))
    ok("environment", "create", "--name", ENV, "--type", "kubernetes")


@pytest.fixture
def store(estate: None, db_path: Path) -> Iterator[Store]:
    opened = open_store(db_path)
    yield opened
    opened.close()


def outcomes(result: engine.SyncResult) -> list[tuple[str | None, str, str | None]]:
    return [(r.deployment_name, r.outcome, r.reason) for r in result.rows]


def records(db_path: Path) -> list[dict[str, Any]]:
    return query(
        db_path,
        "SELECT id, deployment_name, digest, status, source FROM deployment ORDER BY id",
    )


def verifies(ok: Invoke) -> None:
    assert ok("log", "verify").stdout.endswith("The log verifies.\n")


def run_sync(store: Store, observed: list[Observed], **kw: Any) -> engine.SyncResult:
    return engine.sync(store, ENV, STAGE, observed, **kw)


# --- the rules of record, with source observed ------------------------------------------------


def test_created_heartbeat_superseded_through_records_rules(
    store: Store, ok: Invoke, db_path: Path
) -> None:
    first = run_sync(store, [pod("web", V1), pod("api", V2)])
    assert [(n, o) for n, o, _ in outcomes(first)] == [("web", "created"), ("api", "created")]
    assert [r.deployment_id for r in first.rows] == [1, 2]
    again = run_sync(store, [pod("web", V1), pod("api", V3)])
    assert outcomes(again) == [
        ("web", "heartbeat", None),
        ("api", "superseded", f"supersedes deployment 2 ({V2[:19]})"),
    ]
    assert records(db_path) == [
        {"id": 1, "deployment_name": "web", "digest": V1, "status": "deployed",
         "source": "observed"},
        {"id": 2, "deployment_name": "api", "digest": V2, "status": "superseded",
         "source": "observed"},
        {"id": 3, "deployment_name": "api", "digest": V3, "status": "deployed",
         "source": "observed"},
    ]  # fmt: skip
    # Per-record events, as `deployment record` logs them.
    events = as_json(ok("log", "list", "-o", "json", "--limit", "100"))
    assert [e["type"] for e in events][-4:] == [
        "deployment.recorded",
        "deployment.recorded",
        "deployment.heartbeat",
        "deployment.superseded",
    ]
    verifies(ok)


def test_a_declared_record_is_heartbeat_by_sync_and_stays_declared(
    store: Store, ok: Invoke, db_path: Path
) -> None:
    ok(*record_args(ENV, STAGE, "web"), "--digest", V1)
    assert outcomes(run_sync(store, [pod("web", V1)])) == [("web", "heartbeat", None)]
    assert [r["source"] for r in records(db_path)] == ["declared"]
    wide = ok("deployment", "list", "-o", "wide").stdout
    assert wide.splitlines()[0].split()[-1] == "SOURCE" and "declared" in wide
    run_sync(store, [pod("web", V2)])
    listed = as_json(ok("deployment", "list", "--history", "-o", "json"))
    assert [(d["digest"], d["source"]) for d in listed] == [(V2, "observed"), (V1, "declared")]
    described = ok("deployment", "describe", "2").stdout
    assert "Source" in described and "observed" in described
    assert as_json(ok("deployment", "describe", "2", "-o", "json"))["source"] == "observed"
    verifies(ok)


def test_an_unattested_digest_is_the_finding_and_records_nothing(
    store: Store, ok: Invoke, db_path: Path
) -> None:
    result = run_sync(store, [pod("web", UNATTESTED), pod("api", V1)])
    assert [(r.outcome, r.digest) for r in result.rows] == [
        ("unattested", UNATTESTED),
        ("created", V1),
    ]
    assert result.rows[0].reason == engine.UNATTESTED
    assert [r["deployment_name"] for r in records(db_path)] == ["api"]
    verifies(ok)


def test_skips_keep_the_parsers_reason_and_refuse_bad_names_and_digests(
    store: Store, db_path: Path
) -> None:
    result = run_sync(
        store,
        [
            pod("web", None, skip="pod web-1 is not Running (Pending)"),
            Observed(None, "CONTAINER_IMAGE", None, None, {}, skip="no owner"),
            pod("-bad name-", V1),
            pod("api", "sha256:1234"),
            pod("nodigest", None),
        ],
    )
    assert [(r.outcome, r.deployment_name) for r in result.rows] == [("skipped", n) for n in
        ("web", None, "-bad name-", "api", "nodigest")]  # fmt: skip
    reasons = [r.reason or "" for r in result.rows]
    assert reasons[0] == "pod web-1 is not Running (Pending)"
    assert reasons[1] == "no owner"
    assert "invalid deployment" in reasons[2]
    assert "sha256" in reasons[3] and result.rows[3].digest == "sha256:1234"
    assert reasons[4] == "no digest"
    assert records(db_path) == []


def test_a_stage_policy_refusal_is_an_outcome_and_the_rest_goes_on(
    store: Store, ok: Invoke, db_path: Path
) -> None:
    run_sync(store, [pod("web", V1)])
    ok("logical-environment", "policy", "set", "--name", STAGE,
       "--require-predicate", "https://slsa.dev/provenance/v1")  # fmt: skip
    result = run_sync(store, [pod("web", V1), pod("api", V2), pod("db", UNATTESTED)])
    # A heartbeat is no admission: the policy does not stop it.
    assert [r.outcome for r in result.rows] == ["heartbeat", "refused", "unattested"]
    assert "no attestation of predicate type https://slsa.dev/provenance/v1" in (
        result.rows[1].reason or ""
    )
    assert [r["deployment_name"] for r in records(db_path)] == ["web"]
    verifies(ok)


def test_every_observation_ends_in_exactly_one_outcome_in_order(store: Store) -> None:
    observed = [pod(f"svc-{i}", d) for i, d in enumerate((V1, UNATTESTED, None, V2, "bad"))]
    result = run_sync(store, observed)
    assert [r.deployment_name for r in result.rows] == [o.deployment_name for o in observed]
    assert result.counts == {"heartbeat": 0, "created": 2, "superseded": 0, "unattested": 1,
                             "refused": 0, "skipped": 2, "decommissioned": 0}  # fmt: skip


def test_a_warning_is_carried_beside_the_outcome(store: Store, ok: Invoke) -> None:
    warned = pod("web", V2, warning="rollout in progress: also running " + V1)
    result = run_sync(store, [warned])
    assert (result.rows[0].outcome, result.rows[0].warning) == ("created", warned.warning)
    assert result.rows[0].__json__()["warning"] == warned.warning
    assert "warning" not in run_sync(store, [pod("web", V2)]).rows[0].__json__()


# --- prune and decommission ---------------------------------------------------------------------


def test_prune_decommissions_what_was_not_observed_and_only_that(
    store: Store, ok: Invoke, db_path: Path
) -> None:
    ok(*record_args(ENV, STAGE, "old"), "--digest", V1)
    ok(*record_args(ENV, "staging", "elsewhere"), "--digest", V1)  # another logical env
    run_sync(store, [pod("web", V2), pod("pending", V3)])
    result = run_sync(
        store,
        [pod("web", V2), pod("pending", None, skip="pod pending-1 is not Running")],
        prune=True,
    )
    assert outcomes(result) == [
        ("web", "heartbeat", None),
        # Seen but not recordable now: not pruned (it may be restarting).
        ("pending", "skipped", "pod pending-1 is not Running"),
        ("old", "decommissioned", "not observed (--prune)"),
    ]
    assert result.rows[2].source == {"deployment_id": 1}
    assert {r["deployment_name"]: r["status"] for r in records(db_path)} == {
        "old": "decommissioned", "elsewhere": "deployed", "web": "deployed",
        "pending": "deployed",
    }  # fmt: skip
    # Without --prune nothing is ended.
    assert run_sync(store, []).rows == ()
    assert {r["deployment_name"]: r["status"] for r in records(db_path)}["web"] == "deployed"
    verifies(ok)


def test_a_removal_decommissions_once_then_says_so(store: Store, ok: Invoke, db_path: Path) -> None:
    deployed = Observed("web", "CONTAINER_IMAGE", V1, None, {"id": "e1"}, time=1)
    removed = Observed("web", "CONTAINER_IMAGE", None, None, {"id": "e2"}, "decommission", time=2)
    never = Observed("gone", "CONTAINER_IMAGE", None, None, {"id": "e3"}, "decommission", time=3)
    result = run_sync(store, [deployed, removed, removed, never])
    assert [(r.outcome, r.reason) for r in result.rows] == [
        ("created", None),
        ("decommissioned", "removed"),
        ("skipped", "already decommissioned"),
        ("skipped", "nothing is deployed there to decommission"),
    ]
    assert result.rows[1].digest == V1
    assert [r["status"] for r in records(db_path)] == ["decommissioned"]
    events = as_json(ok("log", "list", "-o", "json"))
    assert events[-1]["type"] == "deployment.decommissioned"
    verifies(ok)


def test_prune_is_refused_for_events(store: Store, db_path: Path) -> None:
    before = snapshot(db_path)
    event = Observed("web", "CONTAINER_IMAGE", V1, None, {}, time=1)
    with pytest.raises(ServiceError, match="--prune needs a snapshot"):
        run_sync(store, [event], prune=True)
    assert snapshot(db_path) == before


# --- refusals of the whole run ----------------------------------------------------------------


def test_two_artifacts_in_one_slot_are_refused_naming_both(store: Store, db_path: Path) -> None:
    before = snapshot(db_path)
    with pytest.raises(ServiceError) as refused:
        run_sync(store, [pod("web", V1, namespace="a"), pod("web", V2, namespace="b")])
    message = str(refused.value)
    assert "two observed artifacts map to deployment name 'web'" in message
    assert "namespace=a" in message and "namespace=b" in message
    assert snapshot(db_path) == before
    # The same name under two kinds is two slots; a skipped one claims none.
    chart = Observed("web", "HELM_CHART", V3, None, {"release": "web"})
    skipped = pod("web", None, skip="not running", namespace="c")
    assert [r.outcome for r in run_sync(store, [pod("web", V1), chart, skipped]).rows] == [
        "created", "created", "skipped"]  # fmt: skip


def test_events_may_name_one_slot_many_times(store: Store, db_path: Path) -> None:
    events = [Observed("web", "CONTAINER_IMAGE", d, None, {}, time=t)
              for t, d in enumerate((V1, V2, V1))]  # fmt: skip
    assert [r.outcome for r in run_sync(store, events).rows] == [
        "created",
        "superseded",
        "superseded",
    ]


@pytest.mark.parametrize(
    ("env", "stage", "message"),
    [("nowhere", STAGE, "nowhere"), (ENV, "nowhen", "nowhen")],
)
def test_an_unknown_environment_or_logical_environment_writes_nothing(
    store: Store, db_path: Path, env: str, stage: str, message: str
) -> None:
    before = snapshot(db_path)
    with pytest.raises(ServiceError, match=message):
        engine.sync(store, env, stage, [pod("web", V1)])
    assert snapshot(db_path) == before


# --- dry run ------------------------------------------------------------------------------------


def test_a_dry_run_is_the_real_runs_plan_and_writes_nothing(
    store: Store, ok: Invoke, db_path: Path
) -> None:
    ok(*record_args(ENV, STAGE, "api"), "--digest", V2)
    ok(*record_args(ENV, STAGE, "old"), "--digest", V4)
    ok("logical-environment", "policy", "set", "--name", STAGE,
       "--require-predicate", PREDICATE)  # fmt: skip
    observed = [pod("web", V1), pod("api", V3), pod("db", UNATTESTED), pod("x", None, skip="no")]
    before = snapshot(db_path)
    plan = run_sync(store, observed, prune=True, dry_run=True)
    assert snapshot(db_path) == before
    real = run_sync(store, observed, prune=True)
    assert plan.dry_run and not real.dry_run
    assert plan.rows == real.rows
    assert [r.outcome for r in real.rows] == [
        "created", "superseded", "unattested", "skipped", "decommissioned"]  # fmt: skip
    # And with a policy that refuses: the plan says refused too.
    ok("logical-environment", "policy", "set", "--name", STAGE,
       "--require-predicate", "https://slsa.dev/provenance/v1")  # fmt: skip
    later = [pod("web", V2), pod("api", V3)]
    plan = run_sync(store, later, dry_run=True)
    assert [r.outcome for r in plan.rows] == ["refused", "heartbeat"]
    assert plan.rows == run_sync(store, later).rows
    verifies(ok)


# --- helm charts --------------------------------------------------------------------------------


def test_a_chart_is_resolved_by_the_callable_the_command_passes(
    store: Store, db_path: Path
) -> None:
    from deploytrack.services.charts import ChartMatch

    found = {
        ("web", "1.0.0"): ChartMatch(V1, "found", "web-1.0.0.tgz"),
        ("api", "2.0.0"): ChartMatch(None, "unattested", "no match"),
        ("two", "1.0.0"): ChartMatch(
            None, "skipped", "two charts match two 1.0.0: sha256:aa…, sha256:bb…"
        ),
    }

    def resolve(name: str, version: str) -> ChartMatch:
        return found[(name, version)]

    def release(name: str, version: str) -> Observed:
        return Observed(name, "HELM_CHART", None, None, {"release": name}, chart=(name, version))

    result = run_sync(
        store,
        [release("web", "1.0.0"), release("api", "2.0.0"), release("two", "1.0.0")],
        resolve_chart=resolve,
    )
    assert [(r.outcome, r.digest, r.reason) for r in result.rows] == [
        ("created", V1, None),
        ("unattested", None, "no match"),
        ("skipped", None, "two charts match two 1.0.0: sha256:aa…, sha256:bb…"),
    ]
    assert records(db_path)[0]["digest"] == V1
    unresolved = run_sync(store, [release("web", "1.0.0")])
    assert unresolved.rows[0].outcome == "skipped"


# --- events: their own environment ----------------------------------------------------------


def test_an_event_goes_to_its_own_environment(store: Store, ok: Invoke) -> None:
    ok("environment", "create", "--name", "us-east")
    events = [
        Observed("web", "CONTAINER_IMAGE", V1, None, {}, time=1, environment="us-east"),
        Observed("web", "CONTAINER_IMAGE", V1, None, {}, time=2, environment="mars"),
        Observed("web", "CONTAINER_IMAGE", V1, None, {}, time=3),
    ]
    result = engine.sync(store, None, STAGE, events)
    assert [(r.outcome, r.environment) for r in result.rows] == [
        ("created", "us-east"),
        ("skipped", "mars"),
        ("skipped", None),
    ]
    assert "environment 'mars' does not exist" in (result.rows[1].reason or "")
    assert as_json(ok("deployment", "list", "-o", "json"))[0]["environment"] == "us-east"
    verifies(ok)


# --- the schema ---------------------------------------------------------------------------------


def test_the_source_of_a_record_is_immutable_and_checked(
    store: Store, ok: Invoke, db_path: Path
) -> None:
    ok(*record_args(ENV, STAGE, "web"), "--digest", V1)
    conn = raw(db_path)
    try:
        with pytest.raises(INTEGRITY_ERRORS, match="immutable history"):
            conn.execute("UPDATE deployment SET source = 'observed' WHERE id = 1")
        with pytest.raises(INTEGRITY_ERRORS, match=CHECK_FAILED):
            conn.execute(
                "INSERT INTO deployment (environment_id, logical_environment_id,"
                " deployment_name, kind, digest, status, created_at, last_seen_at, source)"
                " VALUES (1, 3, 'x', 'CONTAINER_IMAGE', ?, 'deployed', 1, 1, 'guessed')",
                (V1,),
            )
    finally:
        conn.close()


# --- the command --------------------------------------------------------------------------------


@pytest.fixture
def kubectl_parser(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The command's kubectl parser, standing in for deploytrack/observe/kubectl.py: it reads
    a JSON list of Observed fields. Returns the calls it received."""
    calls: list[dict[str, Any]] = []

    def parse(data: bytes, **kw: Any) -> list[Observed]:
        calls.append({"data": data, **kw})
        return [Observed(**item) for item in json.loads(data)]

    module = types.ModuleType("deploytrack.observe.kubectl")
    module.parse = parse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "deploytrack.observe.kubectl", module)
    # `from deploytrack.observe import kubectl` reads the package's attribute first: set
    # once the real parser was imported by an earlier test.
    import deploytrack.observe

    monkeypatch.setattr(deploytrack.observe, "kubectl", module, raising=False)
    return calls


def observed_file(tmp_path: Path, *items: Observed) -> Path:
    path = tmp_path / "pods.json"
    path.write_text(json.dumps([item._asdict() for item in items]))
    return path


SYNC = ("deployment", "sync", "--env", ENV, "--logical-env", STAGE)


def test_the_command_prints_each_outcome_and_its_json(
    estate: None, ok: Invoke, run: Invoke, tmp_path: Path, kubectl_parser: list[dict[str, Any]]
) -> None:
    path = observed_file(tmp_path, pod("web", V1), pod("db", UNATTESTED))
    table = ok(*SYNC, "--from-kubectl", str(path), "--namespace", "shop", "--name-template",
               "{workload}").stdout  # fmt: skip
    assert kubectl_parser[0]["namespaces"] == ("shop",)
    assert kubectl_parser[0]["name_template"] == "{workload}"
    lines = table.splitlines()
    assert lines[0].split() == ["OUTCOME", "NAME", "KIND", "DIGEST", "OBSERVED", "AT", "REASON"]
    assert lines[2].split()[:2] == ["created", "web"]
    assert "unattested" in lines[3] and "shop/web/Deployment/app" in table
    assert lines[-1] == f"Synced 2 row(s) into {ENV}/{STAGE}: 1 created, 1 unattested."
    body = as_json(ok(*SYNC, "--from-kubectl", str(path), "-o", "json"))
    assert list(body) == ["environment", "logical_environment", "dry_run", "rows", "counts"]
    assert (body["environment"], body["logical_environment"], body["dry_run"]) == (
        ENV, STAGE, False)  # fmt: skip
    assert body["rows"][0] == {
        "outcome": "heartbeat", "deployment_name": "web", "kind": "CONTAINER_IMAGE",
        "digest": V1, "reason": None,
        "source": {"namespace": "shop", "workload": "web", "workload_kind": "Deployment",
                   "container": "app"},
        "environment": ENV, "deployment_id": 1,
    }  # fmt: skip
    assert body["counts"]["heartbeat"] == 1 and body["counts"]["unattested"] == 1
    verifies(ok)


def test_exit_code_is_drift_and_dry_run_prints_the_same_plan(
    estate: None, ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path,
    kubectl_parser: list[dict[str, Any]],
) -> None:  # fmt: skip
    path = observed_file(tmp_path, pod("web", V1))
    before = snapshot(db_path)
    planned = run(*SYNC, "--from-kubectl", str(path), "--dry-run", "--exit-code", "-o", "json")
    assert planned.exit_code == 1 and planned.stderr == ""
    assert snapshot(db_path) == before
    real = run(*SYNC, "--from-kubectl", str(path), "--exit-code", "-o", "json")
    assert real.exit_code == 1
    assert as_json(planned)["rows"] == as_json(real)["rows"]
    assert as_json(planned)["dry_run"] is True
    text = run(*SYNC, "--from-kubectl", str(path), "--dry-run")
    assert text.stdout.splitlines()[-1].startswith("Dry run, nothing written: would sync 1 row")
    # Only heartbeats: no drift, exit 0.
    steady = run(*SYNC, "--from-kubectl", "-", "--exit-code", input=path.read_bytes())
    assert steady.exit_code == 0, steady.output
    assert "heartbeat" in steady.stdout
    verifies(ok)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "exactly one of --from-kubectl"),
        (("--from-kubectl", "a", "--from-helm", "b"), "exactly one of"),
        (("--from-cdevents", "a", "--prune"), "--prune needs a snapshot"),
        (("--from-cdevents", "a", "--namespace", "x"), "--namespace and --name-template"),
        (("--from-kubectl", "a", "--env-from-event"), "--env-from-event reads CDEvents"),
        (("--from-kubectl", "a", "--chart-repo", "oci://r/p"), "--chart-repo resolves helm"),
    ],
)
def test_flags_that_do_not_go_together_are_usage_errors(
    estate: None, refuse: Invoke, args: tuple[str, ...], message: str
) -> None:
    refuse(*SYNC, *args, code=2, contains=message)


def test_without_env_the_command_is_a_usage_error(estate: None, refuse: Invoke) -> None:
    refuse("deployment", "sync", "--logical-env", STAGE, "--from-kubectl", "-", code=2,
           contains="give --env")  # fmt: skip


def test_input_that_cannot_be_read_fails_the_run_with_one_line(
    estate: None, refuse: Invoke, run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse(*SYNC, "--from-kubectl", str(tmp_path / "missing.json"), contains="cannot read input")
    refuse(*SYNC, "--from-kubectl", str(tmp_path), contains="is a directory")
    from deploytrack import observe

    monkeypatch.setattr(observe, "MAX_INPUT_BYTES", 10)
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b" " * 20 + b"]")
    refuse(*SYNC, "--from-kubectl", str(big), contains="is larger than")
    refuse(*SYNC, "--from-kubectl", "-", input=big.read_bytes(), contains="stdin is larger")


def test_a_parser_refusal_is_one_line_and_writes_nothing(
    estate: None, run: Invoke, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploytrack.observe import ObserveError

    def parse(data: bytes, **kw: Any) -> list[Observed]:
        raise ObserveError("--from-kubectl: not JSON (line 1, column 1)")

    module = types.ModuleType("deploytrack.observe.kubectl")
    module.parse = parse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "deploytrack.observe.kubectl", module)
    # `from deploytrack.observe import kubectl` reads the package's attribute first: set
    # once the real parser was imported by an earlier test.
    import deploytrack.observe

    monkeypatch.setattr(deploytrack.observe, "kubectl", module, raising=False)
    before = snapshot(db_path)
    result = run(*SYNC, "--from-kubectl", "-", input=b"not json")
    assert_refused(result, contains="not JSON")
    assert snapshot(db_path) == before


def test_two_artifacts_in_one_slot_are_one_error_line(
    estate: None, refuse: Invoke, tmp_path: Path, kubectl_parser: list[dict[str, Any]]
) -> None:
    path = observed_file(tmp_path, pod("web", V1, container="a"), pod("web", V2, container="b"))
    refuse(*SYNC, "--from-kubectl", str(path), contains="container=a")
