"""The kubectl parser (deploytrack/observe/kubectl.py): a pod list in, Observed items out.

Pure: no database, no registry. The real pod lists of tests/fixtures/kubernetes/ (see its
README) are checked item by item against what each one shows; the cases no real file
holds (a StatefulSet pod, a bare `sha256:` imageID, a rollout across two ReplicaSets,
CronJob → Job → Pod, ephemeral containers...) are built here in the shape kubectl writes.
Expected values are written out, never computed by the code under test.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploytrack.observe import Observed, ObserveError, kubectl
from deploytrack.services import validate

FIXTURES = Path(__file__).parent / "fixtures" / "kubernetes"
ASK = "give the output of 'kubectl get pods -A -o json'"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
CONFIG = "sha256:" + "c" * 64
INIT = "an init container: it ran before the pod's containers started"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def rows(observed: list[Observed]) -> list[tuple[Any, ...]]:
    """What each item says, in order: name, digest, artifact_ref, skip, workload kind."""
    return [
        (o.deployment_name, o.digest, o.artifact_ref, o.skip, o.source["workload_kind"])
        for o in observed
    ]


def by_name(observed: list[Observed]) -> dict[str | None, Observed]:
    return {o.deployment_name: o for o in observed}


# --- building pod lists the way kubectl writes them -----------------------------------------


def status_of(
    name: str,
    image_id: str,
    *,
    image: str = "ghcr.io/acme/shop:1.0",
    ready: bool = True,
    state: dict[str, Any] | None = None,
    started: str = "2026-11-20T09:00:00Z",
) -> dict[str, Any]:
    return {
        "name": name,
        "state": state if state is not None else {"running": {"startedAt": started}},
        "lastState": {},
        "ready": ready,
        "restartCount": 0,
        "image": image,
        "imageID": image_id,
        "containerID": "containerd://" + "f" * 64,
        "started": ready,
    }


def make_pod(
    name: str,
    *,
    namespace: str = "shop",
    owner: tuple[str, str] | None = None,
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    containers: list[tuple[str, str]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    start: str = "2026-11-20T09:00:00Z",
) -> dict[str, Any]:
    """A pod; `containers` are (name, spec image); `statuses` default to one ready, running
    status per container with imageID `ghcr.io/acme/shop@D1`."""
    containers = containers if containers is not None else [("app", "ghcr.io/acme/shop:1.0")]
    if statuses is None:
        statuses = [status_of(c, "ghcr.io/acme/shop@" + D1) for c, _ in containers]
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {}}
    if owner:
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "u-" + name,
             "controller": True, "blockOwnerDeletion": True}
        ]  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": c, "image": image} for c, image in containers]},
        "status": {"phase": phase, "startTime": start, "containerStatuses": statuses},
    }


def controller(
    kind: str, name: str, *, namespace: str = "shop", owner: tuple[str, str] | None = None,
    revision: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if revision is not None:
        metadata["annotations"] = {"deployment.kubernetes.io/revision": revision}
    if owner:
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "u-" + name,
             "controller": True}
        ]  # fmt: skip
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": {}}


def as_list(*items: dict[str, Any], kind: str = "List") -> bytes:
    doc = {"apiVersion": "v1", "items": list(items), "kind": kind,
           "metadata": {"resourceVersion": ""}}  # fmt: skip
    return json.dumps(doc).encode()


def one(data: bytes, **kwargs: Any) -> Observed:
    observed = kubectl.parse(data, **kwargs)
    assert len(observed) == 1, observed
    return observed[0]


# --- the real files ---------------------------------------------------------------------


def test_kubelet_pods_of_honeycomb() -> None:
    """The kubelet's /pods PodList (items without kind, Docker's docker-pullable:// image
    IDs, Docker Hub names given short): DaemonSets, Deployments through the
    pod-template-hash of their ReplicaSets, a two-container pod, init containers skipped."""
    assert rows(kubectl.parse(fixture("honeycomb-kubelet-pods.json"))) == [
        ("default.kuard.kuard",
         "sha256:bd17153e9a3319f401acc7a27759243f37d422c06cbbf01cb3e1f54bbbfe14f4",
         "gcr.io/kuar-demo/kuard-amd64:1", None, "Deployment"),
        ("kube-system.calico-node.calico-node",
         "sha256:cb9dea7b86471c71925ae318f7c60af72d9ddf1dab0fe2029832a671b83bba6a",
         "docker.io/calico/node:v3.13.2", None, "DaemonSet"),
        ("kube-system.calico-node.flexvol-driver", None,
         "docker.io/calico/pod2daemon-flexvol:v3.13.2", INIT, "DaemonSet"),
        ("kube-system.calico-node.install-cni", None, "docker.io/calico/cni:v3.13.2", INIT,
         "DaemonSet"),
        ("kube-system.calico-node.upgrade-ipam", None, "docker.io/calico/cni:v3.13.2", INIT,
         "DaemonSet"),
        ("kube-system.kube-proxy.kube-proxy",
         "sha256:aeb82818de76ad19697136ed26650ef2fd4270dcf9cf25a4af717b38cbc6a8f9",
         "k8s.gcr.io/kube-proxy:v1.18.1", None, "DaemonSet"),
        ("metallb-system.controller.controller",
         "sha256:c0c6f8655f9c855bc6e10c9a9975413d253b91063e91732021f07eca140797eb",
         "docker.io/metallb/controller:v0.9.3", None, "Deployment"),
        ("metallb-system.speaker.speaker",
         "sha256:2b74eca0f25e946e9a1dc4b94b9da067b1fec4244364d266283dfbbab546a629",
         "docker.io/metallb/speaker:v0.9.3", None, "DaemonSet"),
        ("mysql.phpmyadmin.phpmyadmin",
         "sha256:14272212481d3efa0a2fa0df172e93eec759bc208b0628eac3192591620467d1",
         "docker.io/bitnami/phpmyadmin:5.0.2-debian-10-r10", None, "Deployment"),
        ("nginx.nginx-ingress-controller.nginx-ingress-controller",
         "sha256:b312c91d0de688a21075078982b5e3a48b13b46eda4df743317d3059fc3ca0d9",
         "quay.io/kubernetes-ingress-controller/nginx-ingress-controller:0.30.0", None,
         "Deployment"),
        ("nginx.nginx-ingress-default-backend.nginx-ingress-default-backend",
         "sha256:4dc5e07c8ca4e23bddb3153737d7b8c556e5fb2f29c4558b7cd6e6df99c512c7",
         "k8s.gcr.io/defaultbackend-amd64:1.5", None, "Deployment"),
        ("olly.grafana.grafana",
         "sha256:eb5abc53bed20198052d4ac0e01a8fd3bfe0c80d8e9eb9d021fbc10f93a25514",
         "docker.io/grafana/grafana:7.0.1", None, "Deployment"),
        ("olly.grafana.grafana-sc-dashboard",
         "sha256:63db76f174dded61727506237650c9a45e3e091824e53bf1c08e4583d4f46431",
         "docker.io/kiwigrid/k8s-sidecar:0.1.99", None, "Deployment"),
        ("olly.grafana.grafana-sc-datasources", None, "docker.io/kiwigrid/k8s-sidecar:0.1.99",
         INIT, "Deployment"),
        ("test.honeycomb-agent.honeycomb-agent",
         "sha256:f92069abdfda7a65b700b0908bed2c6d46d3d0db17819e0e16808bb097a58dcb",
         "docker.io/honeycombio/honeycomb-kubernetes-agent:2.1.0-beta2", None, "DaemonSet"),
        ("utils.seashell.seashell",
         "sha256:c4da08f9dac831b8f83ffc63f4a7f327754e20aeac1e9ae68d7727ccc25b8172",
         "docker.io/amouat/network-utils:latest", None, "DaemonSet"),
    ]  # fmt: skip


def test_kubectl_list_of_two_bare_pods() -> None:
    """kubectl's own List: two pods with no owner are each their own workload; the spec's
    `itaysk/cyan` and the status's `docker.io/itaysk/cyan:latest` are one reference."""
    cyan = "sha256:0fcfc9231fa11b473973a68c0394e7c85e2117a9ba7a9476897c07e40d718ffa"
    observed = kubectl.parse(fixture("kubectl-neat-list1-raw.json"))
    assert rows(observed) == [
        ("default.t1.t1", cyan, "docker.io/itaysk/cyan:latest", None, "Pod"),
        ("default.t2.t2", cyan, "docker.io/itaysk/cyan:latest", None, "Pod"),
    ]
    assert observed[0].source == {
        "namespace": "default", "workload": "t1", "workload_kind": "Pod", "container": "t1"
    }  # fmt: skip
    assert all(o.kind == "CONTAINER_IMAGE" and o.action == "record" for o in observed)
    assert all(o.warning is None for o in observed)


def test_k3s_default_namespace_crash_loop_and_pending_pods() -> None:
    """backend-api's only pod crash-loops: skipped with the reason. cpu-intensive-app has one
    running pod and two Pending ones (no containerStatuses at all): the running one counts.
    memory-hungry-app's two pods run one digest: one item, no warning."""
    alpine = "sha256:4bcff63911fcb4448bd4fdacec207030997caf25e9bea4045fa6c8c44de311d1"
    ref = "docker.io/library/alpine:latest"
    observed = kubectl.parse(fixture("troubleshoot-k3s-pods-default.json"))
    assert rows(observed) == [
        ("default.backend-api.api-server", None, ref,
         "not running: the container is waiting (CrashLoopBackOff)", "Deployment"),
        ("default.cpu-intensive-app.cpu-burner", alpine, ref, None, "Deployment"),
        ("default.memory-hungry-app.memory-hog", alpine, ref, None, "Deployment"),
    ]  # fmt: skip
    assert [o.warning for o in observed] == [None, None, None]


def test_k3s_pending_pods_alone_are_skipped_with_the_scheduler_reason() -> None:
    doc = json.loads(fixture("troubleshoot-k3s-pods-default.json"))
    doc["items"] = [p for p in doc["items"] if p["status"]["phase"] == "Pending"]
    assert rows(kubectl.parse(json.dumps(doc).encode())) == [
        ("default.cpu-intensive-app.cpu-burner", None, "docker.io/library/alpine:latest",
         "not running: the pod's phase is Pending (Unschedulable)", "Deployment"),
    ]  # fmt: skip


def test_k3s_kube_system_completed_jobs_and_a_two_container_daemon_set() -> None:
    observed = kubectl.parse(fixture("troubleshoot-k3s-pods-kube-system.json"))
    succeeded = "not running: the pod's phase is Succeeded (PodCompleted)"
    helm = "docker.io/rancher/klipper-helm:v0.9.8-build20250709"
    lb = "sha256:7eb86d5b908ec6ddd9796253d8cc2f43df99420fc8b8a18452a94dc56f86aca0"
    assert rows(observed) == [
        ("kube-system.coredns.coredns",
         "sha256:1391544c978029fcddc65068f6ad67f396e55585b664ecccd7fefba029b9b706",
         "docker.io/rancher/mirrored-coredns-coredns:1.12.3", None, "Deployment"),
        ("kube-system.helm-install-traefik.helm", None, helm, succeeded, "Job"),
        ("kube-system.helm-install-traefik-crd.helm", None, helm, succeeded, "Job"),
        ("kube-system.local-path-provisioner.local-path-provisioner",
         "sha256:80496fdeb307541007621959aa13aed41d31db9cd2dc4167c19833e0bfa3878c",
         "docker.io/rancher/local-path-provisioner:v0.0.31", None, "Deployment"),
        ("kube-system.metrics-server.metrics-server",
         "sha256:89258156d0e9af60403eafd44da9676fd66f600c7934d468ccc17e42b199aee2",
         "docker.io/rancher/mirrored-metrics-server:v0.8.0", None, "Deployment"),
        ("kube-system.svclb-traefik-9ce4920b.lb-tcp-443", lb,
         "docker.io/rancher/klipper-lb:v0.4.13", None, "DaemonSet"),
        ("kube-system.svclb-traefik-9ce4920b.lb-tcp-80", lb,
         "docker.io/rancher/klipper-lb:v0.4.13", None, "DaemonSet"),
        ("kube-system.traefik.traefik",
         "sha256:9595fc80fa8ed6c5f3876416332ca7c88e8f255daaf265cff6b857b8d0f44503",
         "docker.io/rancher/mirrored-library-traefik:3.3.6", None, "Deployment"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("troubleshoot-deployments-default.json", "DeploymentList"),
        ("troubleshoot-k3s-deployments-default.json", "DeploymentList"),
        ("troubleshoot-replicasets-default.json", "ReplicaSetList"),
    ],
)
def test_lists_of_other_objects_are_refused(name: str, kind: str) -> None:
    with pytest.raises(ObserveError) as caught:
        kubectl.parse(fixture(name))
    assert str(caught.value) == f"the kubectl input is a {kind}, not a list of pods: {ASK}"


def test_pods_deployments_and_replica_sets_in_one_list() -> None:
    """`kubectl get pods,rs,deploy -o json` writes one List: the real k3s pods with the real
    Deployments (items given their kind, as kubectl writes them in a List) name the same
    workloads as the pods alone, and the Deployments are not taken for pods."""
    pods = json.loads(fixture("troubleshoot-k3s-pods-default.json"))["items"]
    deployments = json.loads(fixture("troubleshoot-k3s-deployments-default.json"))["items"]
    for item in pods:
        item.setdefault("kind", "Pod")
    mixed = kubectl.parse(as_list(*deployments, *pods))
    assert mixed == kubectl.parse(fixture("troubleshoot-k3s-pods-default.json"))


def test_a_replica_set_in_the_list_names_its_own_deployment_and_a_custom_owner_above() -> None:
    """Up the owners as far as the list shows them: the real kotsadm-postgres-watch
    Deployment is owned by a `Database` resource, which is then the workload."""
    deployments = json.loads(fixture("troubleshoot-deployments-default.json"))["items"]
    watch = next(d for d in deployments if d["metadata"]["name"] == "kotsadm-postgres-watch")
    watch["kind"] = "Deployment"
    rs = controller(
        "ReplicaSet", "watch-abc12", namespace="default",
        owner=("Deployment", "kotsadm-postgres-watch"), revision="1",
    )  # fmt: skip
    pod = make_pod(
        "watch-abc12-xyz", namespace="default", owner=("ReplicaSet", "watch-abc12"),
        labels={"pod-template-hash": "abc12"}, containers=[("schemahero", "s:alpha")],
    )  # fmt: skip
    observed = one(as_list(rs, watch, pod))
    assert observed.source == {"namespace": "default", "workload": "kotsadm-postgres",
                               "workload_kind": "Database", "container": "schemahero"}  # fmt: skip
    assert observed.deployment_name == "default.kotsadm-postgres.schemahero"
    # Without the Deployment in the list, the ReplicaSet's own owner is as far as it goes.
    assert one(as_list(rs, pod)).source["workload"] == "kotsadm-postgres-watch"


# --- workloads ---------------------------------------------------------------------------


def test_stateful_set_daemon_set_and_bare_pods() -> None:
    data = as_list(
        make_pod("db-0", owner=("StatefulSet", "db")),
        make_pod("db-1", owner=("StatefulSet", "db")),
        make_pod("agent-x7k2p", owner=("DaemonSet", "agent")),
        make_pod("debug"),
    )
    assert [(o.deployment_name, o.source["workload_kind"]) for o in kubectl.parse(data)] == [
        ("shop.agent.app", "DaemonSet"),
        ("shop.db.app", "StatefulSet"),
        ("shop.debug.app", "Pod"),
    ]


def test_replica_set_not_in_the_list_needs_its_pod_template_hash() -> None:
    with_hash = make_pod("web-5d4f8-abcde", owner=("ReplicaSet", "web-5d4f8"),
                         labels={"pod-template-hash": "5d4f8"})  # fmt: skip
    assert one(as_list(with_hash)).source["workload"] == "web"
    assert one(as_list(with_hash)).source["workload_kind"] == "Deployment"
    # No label, or a label the name does not end with: the ReplicaSet is the workload.
    bare = make_pod("web-5d4f8-abcde", owner=("ReplicaSet", "web-5d4f8"))
    other = make_pod("web-5d4f8-abcde", owner=("ReplicaSet", "web-5d4f8"),
                     labels={"pod-template-hash": "99999"})  # fmt: skip
    whole = make_pod("x", owner=("ReplicaSet", "-5d4f8"), labels={"pod-template-hash": "5d4f8"})
    for pod in (bare, other):
        assert one(as_list(pod)).source == {
            "namespace": "shop", "workload": "web-5d4f8", "workload_kind": "ReplicaSet",
            "container": "app",
        }  # fmt: skip
    assert one(as_list(whole)).source["workload_kind"] == "ReplicaSet"


def test_the_pod_template_hash_names_only_the_pod_s_own_replica_set() -> None:
    """The label is the pod's: a ReplicaSet further up is not shortened by it."""
    rs = controller("ReplicaSet", "web-h1", owner=("ReplicaSet", "outer-h1"))
    pod = make_pod("web-h1-x", owner=("ReplicaSet", "web-h1"), labels={"pod-template-hash": "h1"})
    assert one(as_list(rs, pod)).source["workload"] == "outer-h1"
    assert one(as_list(rs, pod)).source["workload_kind"] == "ReplicaSet"


def test_cron_job_to_job_to_pod_only_as_far_as_the_list_shows() -> None:
    """A Job's CronJob is known only from the Job in the list: a Job name ending in digits
    is not taken as proof (people name their own Jobs so too)."""
    pod = make_pod("backup-29012345-q8k2z", owner=("Job", "backup-29012345"))
    job = controller("Job", "backup-29012345", owner=("CronJob", "backup"))
    job["apiVersion"] = "batch/v1"
    assert one(as_list(job, pod)).source["workload"] == "backup"
    assert one(as_list(job, pod)).source["workload_kind"] == "CronJob"
    assert one(as_list(pod)).source["workload"] == "backup-29012345"
    assert one(as_list(pod)).source["workload_kind"] == "Job"


def test_a_static_pod_is_its_own_workload_not_its_node() -> None:
    """The kubelet's mirror of a static pod is owned by its Node."""
    pod = make_pod("kube-apiserver-cp1", namespace="kube-system")
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Node", "name": "cp1", "uid": "n", "controller": True}
    ]
    assert one(as_list(pod)).source["workload"] == "kube-apiserver-cp1"
    assert one(as_list(pod)).source["workload_kind"] == "Pod"


def test_owner_loops_and_owners_without_controller_flag() -> None:
    a = controller("ReplicaSet", "a", owner=("Thing", "b"))
    b = controller("Thing", "b", owner=("ReplicaSet", "a"))
    pod = make_pod("a-1", owner=("ReplicaSet", "a"))
    assert one(as_list(a, b, pod)).source["workload"] == "b"
    plain = make_pod("p", owner=("StatefulSet", "s"))
    del plain["metadata"]["ownerReferences"][0]["controller"]
    assert one(as_list(plain)).source["workload_kind"] == "StatefulSet"


# --- digests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_id", "digest"),
    [
        ("docker-pullable://ghcr.io/acme/shop@" + D1, D1),  # Docker (dockershim)
        ("ghcr.io/acme/shop@" + D1, D1),  # containerd, CRI-O
        ("docker.io/library/nginx@SHA256:" + "1" * 64, D1),
    ],
)
def test_image_id_forms_runtimes_write(image_id: str, digest: str) -> None:
    pod = make_pod("p", statuses=[status_of("app", image_id)])
    assert one(as_list(pod)).digest == digest


@pytest.mark.parametrize("image_id", [CONFIG, "docker://" + CONFIG])
def test_a_bare_image_id_is_the_config_digest_never_recorded(image_id: str) -> None:
    observed = one(as_list(make_pod("p", statuses=[status_of("app", image_id)])))
    assert observed.digest is None
    assert observed.skip == (
        f"no registry digest: imageID '{image_id}' is the image's config digest, not its "
        "registry digest"
    )


def test_a_digest_pinned_image_gives_the_digest_the_image_id_does_not() -> None:
    pinned = "ghcr.io/acme/shop:1.0@" + D2
    pod = make_pod("p", containers=[("app", pinned)],
                   statuses=[status_of("app", CONFIG, image=pinned)])  # fmt: skip
    observed = one(as_list(pod))
    assert (observed.digest, observed.skip) == (D2, None)
    assert observed.artifact_ref == "ghcr.io/acme/shop:1.0"
    # Only the spec pins it (the status image is the image ID, as some Docker versions say).
    pod = make_pod("p", containers=[("app", pinned)], statuses=[status_of("app", "", image=CONFIG)])
    assert (one(as_list(pod)).digest, one(as_list(pod)).artifact_ref) == (
        D2, "ghcr.io/acme/shop:1.0"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("image_id", "why"),
    [
        ("", "the container status has no imageID"),
        ("ghcr.io/acme/shop@sha512:" + "a" * 128, "holds no sha256 registry digest"),
        ("ghcr.io/acme/shop@sha256:abc", "holds no sha256 registry digest"),
        ("not a digest\x1b[31m", "is not a registry digest"),
    ],
)
def test_an_image_id_that_is_no_digest_is_skipped(image_id: str, why: str) -> None:
    observed = one(as_list(make_pod("p", statuses=[status_of("app", image_id)])))
    assert observed.digest is None
    assert observed.skip is not None and observed.skip.startswith("no registry digest: ")
    assert why in observed.skip
    assert "\x1b" not in observed.skip


# --- what runs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "status", "skip"),
    [
        ("Failed", {}, "not running: the pod's phase is Failed"),
        ("Running", {"ready": False}, "not ready: the container runs but is not ready"),
        ("Running", {"state": {"waiting": {"reason": "ImagePullBackOff"}}},
         "not running: the container is waiting (ImagePullBackOff)"),
        ("Running", {"state": {"terminated": {"reason": "OOMKilled"}}},
         "not running: the container is terminated (OOMKilled)"),
        ("Running", {"state": {}}, "not running: the container status has no state"),
    ],
)  # fmt: skip
def test_only_ready_running_containers_of_running_pods_count(
    phase: str, status: dict[str, Any], skip: str
) -> None:
    pod = make_pod("p", phase=phase, statuses=[{**status_of("app", "r@" + D1), **status}])
    observed = one(as_list(pod))
    assert (observed.digest, observed.skip) == (None, skip)


def test_a_pod_without_status_or_container_statuses() -> None:
    no_status = make_pod("p")
    del no_status["status"]
    assert one(as_list(no_status)).skip == "the pod has no status"
    no_statuses = make_pod("p")
    del no_statuses["status"]["containerStatuses"]
    assert one(as_list(no_statuses)).skip == "the pod has no status for this container"
    nothing = {"kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}}
    observed = one(as_list(nothing))
    assert (observed.deployment_name, observed.skip) == (None, "pod 'p' names no container")
    unnamed = make_pod("p")
    del unnamed["metadata"]["namespace"]
    observed = one(as_list(unnamed))
    assert observed.deployment_name is None
    assert observed.skip == "the pod has no metadata.namespace or name"


def test_init_ephemeral_and_sidecar_containers() -> None:
    """Init containers ran and stopped; an ephemeral one is kubectl debug's; a native
    sidecar (an init container with restartPolicy Always) runs beside the app."""
    pod = make_pod("p")
    pod["spec"]["initContainers"] = [
        {"name": "migrate", "image": "ghcr.io/acme/migrate:1"},
        {"name": "proxy", "image": "ghcr.io/acme/proxy:2", "restartPolicy": "Always"},
    ]
    pod["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox"}]
    pod["status"]["initContainerStatuses"] = [
        status_of("migrate", "ghcr.io/acme/migrate@" + D2, ready=False,
                  state={"terminated": {"reason": "Completed"}}),
        status_of("proxy", "ghcr.io/acme/proxy@" + D3, image="ghcr.io/acme/proxy:2"),
    ]  # fmt: skip
    pod["status"]["ephemeralContainerStatuses"] = [
        status_of("debugger", "docker.io/library/busybox@" + D2, image="busybox")
    ]
    observed = by_name(kubectl.parse(as_list(pod)))
    assert observed["shop.p.app"].digest == D1
    assert (observed["shop.p.migrate"].digest, observed["shop.p.migrate"].skip) == (None, INIT)
    assert observed["shop.p.debugger"].skip == (
        "an ephemeral container (kubectl debug): not the workload's"
    )
    assert observed["shop.p.debugger"].digest is None
    assert (observed["shop.p.proxy"].digest, observed["shop.p.proxy"].skip) == (D3, None)
    assert observed["shop.p.proxy"].artifact_ref == "ghcr.io/acme/proxy:2"


def test_namespaces_not_asked_for_are_skipped_with_that_reason() -> None:
    data = as_list(make_pod("a", namespace="shop"), make_pod("b", namespace="kube-system"))
    assert rows(kubectl.parse(data, namespaces=["shop"])) == [
        ("kube-system.b.app", None, None, "namespace kube-system is not in --namespace", "Pod"),
        ("shop.a.app", D1, "ghcr.io/acme/shop:1.0", None, "Pod"),
    ]
    assert [o.skip for o in kubectl.parse(data, namespaces=["shop", "kube-system"])] == [None] * 2
    assert [o.skip for o in kubectl.parse(data)] == [None, None]


# --- several pods of one workload ------------------------------------------------------------


def rollout(*, with_replica_sets: bool, revisions: bool = True) -> bytes:
    """web at revision 2 (D2) rolling out over revision 1 (D1); the old pod started last."""
    old = make_pod("web-aaa11-1", owner=("ReplicaSet", "web-aaa11"),
                   labels={"pod-template-hash": "aaa11"},
                   statuses=[status_of("app", "ghcr.io/acme/shop@" + D1,
                                       started="2026-11-20T09:30:00Z")])  # fmt: skip
    new = make_pod("web-bbb22-1", owner=("ReplicaSet", "web-bbb22"),
                   labels={"pod-template-hash": "bbb22"},
                   statuses=[status_of("app", "ghcr.io/acme/shop@" + D2,
                                       image="ghcr.io/acme/shop:2.0",
                                       started="2026-11-20T09:10:00Z")])  # fmt: skip
    items = [old, new, copy.deepcopy(old)]
    if with_replica_sets:
        items += [
            controller("ReplicaSet", "web-aaa11", owner=("Deployment", "web"),
                       revision="1" if revisions else None),
            controller("ReplicaSet", "web-bbb22", owner=("Deployment", "web"),
                       revision="2" if revisions else None),
        ]  # fmt: skip
    if not revisions:  # the Deployment carries its current revision too: not a pod's
        items.append(controller("Deployment", "web", revision="2"))
    return as_list(*items)


def test_a_rollout_records_the_newest_revision_and_names_the_other_digest() -> None:
    observed = one(rollout(with_replica_sets=True))
    assert (observed.deployment_name, observed.digest) == ("shop.web.app", D2)
    assert observed.artifact_ref == "ghcr.io/acme/shop:2.0"
    assert observed.warning == (
        f"rollout in progress: other pods run {D1} (revision 1); this is the newest "
        "revision's digest (revision 2)"
    )


@pytest.mark.parametrize("replica_sets", [False, True])
def test_without_revisions_the_most_recently_started_ready_pod_wins(replica_sets: bool) -> None:
    observed = one(rollout(with_replica_sets=replica_sets, revisions=False))
    assert observed.digest == D1
    assert observed.warning == (
        f"rollout in progress: other pods run {D2}; this is the digest of the most recently "
        "started ready pod"
    )


def test_the_pod_start_time_when_the_container_has_none() -> None:
    early = make_pod("a", start="2026-11-20T08:00:00Z",
                     statuses=[status_of("app", "r@" + D2, state={"running": {}})])  # fmt: skip
    late = make_pod("b", start="2026-11-20T08:30:00+00:00",
                    statuses=[status_of("app", "r@" + D1, state={"running": {}})])  # fmt: skip
    for pod in (early, late):
        pod["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "ds"}]
    assert one(as_list(late, early)).digest == D1
    assert one(as_list(early, late)).digest == D1


def test_a_stuck_rollout_records_what_runs_and_names_what_does_not() -> None:
    """The new revision crash-loops: the old digest is what serves, the new one is said."""
    running = make_pod("w-1", owner=("DaemonSet", "w"))
    crashing = make_pod("w-2", owner=("DaemonSet", "w"), statuses=[
        status_of("app", "ghcr.io/acme/shop@" + D2, ready=False,
                  state={"waiting": {"reason": "CrashLoopBackOff"}})])  # fmt: skip
    observed = one(as_list(running, crashing))
    assert observed.digest == D1
    assert observed.warning == f"pods that do not run or are not ready have {D2}"


def test_reasons_of_several_pods_are_counted() -> None:
    pending = make_pod("w-1", owner=("DaemonSet", "w"), phase="Pending", statuses=[])
    creating = {"waiting": {"reason": "ContainerCreating"}}
    waiting = make_pod(
        "w-2",
        owner=("DaemonSet", "w"),
        statuses=[status_of("app", "", ready=False, state=creating)],
    )
    observed = one(as_list(pending, waiting, copy.deepcopy(pending)))
    assert observed.skip == (
        "not running: the pod's phase is Pending (2 of 3 pods); "
        "not running: the container is waiting (ContainerCreating) (1 of 3 pods)"
    )


def test_at_most_three_reasons_are_listed() -> None:
    pods = [
        make_pod(f"w-{phase}", owner=("DaemonSet", "w"), phase=phase, statuses=[])
        for phase in ("Pending", "Failed", "Unknown", "Succeeded")
    ]
    assert one(as_list(*pods)).skip == (
        "not running: the pod's phase is Pending (1 of 4 pods); "
        "not running: the pod's phase is Failed (1 of 4 pods); "
        "not running: the pod's phase is Unknown (1 of 4 pods); and 1 more reason"
    )


# --- names ------------------------------------------------------------------------------


def test_name_template_fields() -> None:
    rs = controller("ReplicaSet", "web-aaa11", owner=("Deployment", "web"))
    pod = make_pod("web-aaa11-1", owner=("ReplicaSet", "web-aaa11"))
    data = as_list(rs, pod)
    template = "k8s-{namespace}_{workload_kind}_{workload}_{container}-{{x}}"
    assert one(data, name_template=template).deployment_name == "k8s-shop_Deployment_web_app-{x}"
    assert one(data, name_template="{workload}").deployment_name == "web"
    assert one(data, name_template="{namespace}.{workload}.{container}").deployment_name == (
        "shop.web.app"
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{name}", "unknown field 'name'"),
        ("{}", "unknown field ''"),
        ("{0}", "unknown field '0'"),
        ("{namespace.upper}", "unknown field 'namespace.upper'"),
        ("{namespace[0]}", "unknown field 'namespace[0]'"),
        ("{workload!r}", "a field takes no conversion or format spec ('!r')"),
        ("{workload:>40}", "a field takes no conversion or format spec (':>40')"),
        ("{workload", "expected '}' before end of string"),
        ("workload}", "Single '}' encountered in format string"),
        ("static-name", "has no field, so it names every container the same"),
        ("", "has no field"),
    ],
)
def test_name_templates_that_ask_for_anything_else_are_refused(template: str, message: str) -> None:
    with pytest.raises(ObserveError) as caught:
        kubectl.parse(as_list(make_pod("p")), name_template=template)
    text = str(caught.value)
    assert text.startswith(f"--name-template {template!r}")
    assert message in text
    assert text.endswith("use the fields {namespace}, {workload}, {workload_kind}, {container}")


def test_a_template_is_refused_before_the_input_is_read() -> None:
    with pytest.raises(ObserveError, match=r"^--name-template"):
        kubectl.parse(b"not json", name_template="{nope}")


def test_the_default_name_fits_any_kubernetes_names() -> None:
    """A namespace and a container are DNS labels (63), a workload a DNS subdomain (253):
    the default name stays within a deployment name's 253 characters, unique per workload."""
    long_a = "a" * 200 + "." + "b" * 52
    long_b = "a" * 200 + "." + "c" * 52
    ns, container = "n" * 63, "c" * 63
    data = as_list(
        make_pod("p", namespace=ns, owner=("StatefulSet", long_a), containers=[(container, "x")]),
        make_pod("q", namespace=ns, owner=("StatefulSet", long_b), containers=[(container, "x")]),
    )
    names = [o.deployment_name for o in kubectl.parse(data)]
    assert all(n is not None and len(n) == 253 for n in names), names
    assert names[0] != names[1]
    for name in names:
        assert name is not None
        assert name.startswith(ns + ".aaaa") and name.endswith("." + container)
        assert name.replace(".", "").replace("-", "").isalnum()
    short = one(as_list(make_pod("p", owner=("StatefulSet", "s"))))
    assert short.deployment_name == "shop.s.app"


def test_default_names_pass_the_deployment_name_rule() -> None:
    """services/validate.py's rule, the one `deployment record` applies, on every name the
    real files give and on names as long as Kubernetes allows."""
    files = [*FIXTURES.glob("*pods*.json"), FIXTURES / "kubectl-neat-list1-raw.json"]
    names = [o.deployment_name for path in files for o in kubectl.parse(path.read_bytes())]
    longest = as_list(
        make_pod("p", namespace="n" * 63, owner=("Deployment", "w" * 126 + "." + "x" * 126),
                 containers=[("c" * 63, "x")])
    )  # fmt: skip
    names += [o.deployment_name for o in kubectl.parse(longest)]
    assert len(names) == 30
    for name in names:
        assert name is not None and validate.deployment_name(name) == name


# --- inputs that are not a pod list --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the kubectl input is not valid JSON: Expecting value at line 1 column 1"),
        (b"NAME READY STATUS\nweb 1/1 Running\n", "the kubectl input is not valid JSON"),
        (b"\xff\xfe", "the kubectl input is not valid JSON: invalid UTF-8 at byte 0"),
        (b'{"kind": "List", "kind": "PodList", "items": []}',
         'the kubectl input is not valid JSON: duplicate key "kind" in one object'),
        (b'{"kind": "PodList", "items": [{"metadata": {"name": "a", "name": "b"}}]}',
         'duplicate key "name"'),
        (b"[]", "the kubectl input is a JSON array, not a pod list"),
        (b'"PodList"', "the kubectl input is a JSON string, not a pod list"),
        (b"null", "the kubectl input is a JSON null, not a pod list"),
        (b"true", "the kubectl input is a JSON boolean, not a pod list"),
        (b"1.5", "the kubectl input is a JSON number, not a pod list"),
        (b'{"items": []}', "the kubectl input is a JSON object without kind, not a list of pods"),
        (b'{"kind": "Pod", "metadata": {"name": "p"}}',
         "the kubectl input is a Pod, not a list of pods"),
        (b'{"kind": "List", "items": {}}', "the kubectl input's items is not a JSON array"),
        (b'{"kind": "PodList", "items": [{}, 3]}',
         "the kubectl input's items[1] is not a JSON object"),
        (b'{"kind": "List", "items": [{"kind": "Deployment", "metadata": {"name": "d"}}]}',
         "the kubectl input holds no pod (Deployment)"),
        (b'{"kind": "List\\u001b[2J", "items": []}', "is a List\\x1b[2J, not a list of pods"),
    ],
)  # fmt: skip
def test_what_is_not_a_pod_list_is_refused_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(ObserveError) as caught:
        kubectl.parse(data)
    text = str(caught.value)
    assert message in text
    assert text.endswith(ASK)
    assert "\n" not in text and "\x1b" not in text


def test_an_input_over_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubectl, "MAX_INPUT_BYTES", 1024)
    data = as_list(*[make_pod(f"p{i}") for i in range(10)])
    assert len(data) > 1024
    with pytest.raises(ObserveError, match=r"^the kubectl input is larger than 1,024 bytes: "):
        kubectl.parse(data)


def test_empty_lists_are_empty() -> None:
    assert kubectl.parse(b'{"apiVersion": "v1", "items": [], "kind": "List"}') == []
    assert kubectl.parse(b'{"kind": "PodList", "metadata": {}}') == []


def test_pod_list_items_without_kind_are_pods() -> None:
    pod = make_pod("p")
    del pod["kind"]
    assert one(as_list(pod, kind="PodList")).digest == D1
    assert one(as_list(pod, kind="List")).digest == D1  # a pod's shape in a List
    # Without a spec, only a PodList says what its items are.
    del pod["spec"]
    assert one(as_list(pod, kind="PodList")).digest == D1
    with pytest.raises(ObserveError, match=r"holds no pod \(objects without kind\)"):
        kubectl.parse(as_list(pod, kind="List"))


# --- size and garbage --------------------------------------------------------------------------


def test_ten_thousand_pods_parse_well_within_ten_seconds() -> None:
    """A real pod (k3s coredns, as kubectl writes it: without managedFields) 10,000 times
    over 500 Deployments in 20 namespaces, ~45 MB."""
    template = json.loads(fixture("troubleshoot-k3s-pods-kube-system.json"))["items"][0]
    template["metadata"].pop("managedFields", None)
    pods = []
    for i in range(10_000):
        pod = copy.deepcopy(template)
        pod["metadata"]["name"] = f"app{i % 500}-64fd4b4794-{i:05d}"
        pod["metadata"]["namespace"] = f"team{i % 20}"
        pod["metadata"]["ownerReferences"][0]["name"] = f"app{i % 500}-64fd4b4794"
        pods.append(pod)
    data = json.dumps({"apiVersion": "v1", "kind": "PodList", "items": pods}).encode()
    started = time.perf_counter()
    observed = kubectl.parse(data)
    elapsed = time.perf_counter() - started
    assert len(observed) == 500
    assert all(o.digest is not None and o.warning is None for o in observed)
    assert elapsed < 10, f"{len(data) / 1e6:.0f} MB of 10,000 pods took {elapsed:.1f} s"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)  # fmt: skip
WORDS = st.sampled_from(
    ["Pod", "List", "PodList", "ReplicaSet", "Running", "Pending", "running", "waiting", "a",
     "", "sha256:" + "1" * 64, "r@" + D1, "docker://x", "2026-11-20T09:00:00Z", "Always",
     "pod-template-hash", "a-b"]
)  # fmt: skip
VALUE = JSON | WORDS | st.lists(st.dictionaries(WORDS, JSON | WORDS, max_size=5), max_size=3)
KEYS = st.sampled_from(
    ["kind", "metadata", "spec", "status", "name", "namespace", "ownerReferences", "labels",
     "annotations", "containers", "initContainers", "ephemeralContainers", "containerStatuses",
     "initContainerStatuses", "phase", "state", "running", "startedAt", "ready", "image",
     "imageID", "controller", "startTime", "restartPolicy", "reason", "conditions"]
)  # fmt: skip
SHAPED = st.recursive(VALUE, lambda inner: st.dictionaries(KEYS, inner, max_size=6), max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["List", "PodList"]) | st.text(max_size=5),
    items=st.lists(SHAPED, max_size=5) | JSON,
    template=st.none() | st.sampled_from(["{namespace}-{container}", "{workload_kind}"]),
    namespaces=st.lists(st.text(max_size=3), max_size=2),
)
def test_garbage_never_raises_anything_but_observe_error(
    kind: Any, items: Any, template: str | None, namespaces: list[str]
) -> None:
    data = json.dumps({"kind": kind, "items": items}).encode()
    try:
        observed = kubectl.parse(data, namespaces=namespaces, name_template=template)
    except ObserveError as exc:
        assert "\n" not in str(exc)
        return
    for item in observed:
        assert isinstance(item, Observed)
        assert (item.digest is None) != (item.skip is None)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_bytes_never_raise_anything_but_observe_error(data: bytes) -> None:
    with contextlib.suppress(ObserveError):
        kubectl.parse(data)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _real_list() -> dict[str, Any]:
    """A real two-container pod with an init container (grafana, from the kubelet), its
    ReplicaSet and Deployment: every field the parser reads is somewhere in it."""
    pod = json.loads(fixture("honeycomb-kubelet-pods.json"))["items"][5]
    pod["metadata"].pop("managedFields")
    pod["kind"] = "Pod"
    rs = controller("ReplicaSet", "grafana-7db5dff8ff", namespace="olly",
                    owner=("Deployment", "grafana"), revision="3")  # fmt: skip
    return {
        "kind": "List",
        "items": [pod, rs, controller("Deployment", "grafana", namespace="olly")],
    }


REAL = _real_list()
REAL_PATHS = _paths(REAL)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(REAL_PATHS), VALUE), min_size=1, max_size=4))
def test_a_real_list_with_any_field_replaced_never_raises_but_observe_error(
    changes: list[tuple[tuple[Any, ...], Any]],
) -> None:
    doc: Any = copy.deepcopy(REAL)
    for path, value in changes:
        if not path:
            doc = value
            continue
        parent = doc
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the path
    try:
        observed = kubectl.parse(json.dumps(doc).encode())
    except ObserveError as exc:
        assert "\n" not in str(exc)
        return
    for item in observed:
        assert (item.digest is None) != (item.skip is None)


def test_the_real_list_unchanged_is_read_through_its_replica_set() -> None:
    """The document the test above alters: its pod is traced through the ReplicaSet."""
    observed = kubectl.parse(json.dumps(REAL).encode())
    assert [(o.deployment_name, o.digest is not None) for o in observed] == [
        ("olly.grafana.grafana", True),
        ("olly.grafana.grafana-sc-dashboard", True),
        ("olly.grafana.grafana-sc-datasources", False),
    ]
