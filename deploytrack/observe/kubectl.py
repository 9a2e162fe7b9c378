"""What a Kubernetes cluster runs, read from `kubectl get pods -A -o json` (pure).

Takes the three shapes a pod list comes in — kubectl's `List` (each item with its
`kind`), the API server's `PodList` (items may lack `kind`) and the kubelet's `/pods`
`PodList` — and a `List` that also holds the pods' controllers (`kubectl get
pods,rs,deploy,sts,ds,jobs,cronjobs -A -o json`), which only sharpen how a pod is traced
to its workload. Returns one `Observed` per (namespace, workload, container): the
registry digest the workload's pods run there, or why it cannot be recorded.
docs/observe.md says every rule below in the user's words.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from deploytrack import jsondoc
from deploytrack.digests import normalize_sha256, sha256_of
from deploytrack.observe import MAX_INPUT_BYTES, Observed, ObserveError
from deploytrack.registry import RegistryError
from deploytrack.registry.reference import parse_reference

FIELDS = ("namespace", "workload", "workload_kind", "container")
# Kubernetes names never hold '.' in a namespace or a container (DNS labels), so the
# workload (a DNS subdomain, which may) is unambiguous between them; '/' is not allowed in
# a deployment name.
DEFAULT_TEMPLATE = "{namespace}.{workload}.{container}"
# services/validate.py's limit on a deployment name. A namespace and a container are at
# most 63 characters each but a workload name 253, so the default can run over: the
# workload part is then cut and a hash of the whole name appended, which keeps it unique.
MAX_NAME = 253
_HASH_HEX = 10

REVISION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH = "pod-template-hash"
_ASK = "give the output of 'kubectl get pods -A -o json'"
# How many different skip reasons one (workload, container) lists before "and N more".
_MAX_REASONS = 3
_SHOWN = 100


# --- reading the document -----------------------------------------------------------


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _shown(value: str) -> str:
    """A value read from the input, quoted and bounded for a message. repr escapes control
    characters, so the value cannot act on a terminal."""
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def _text(value: str) -> str:
    """The same, unquoted: a word inside a sentence (a phase, a reason, a namespace)."""
    return _shown(value)[1:-1]


def _document(data: bytes) -> tuple[str, list[dict[str, Any]]]:
    """The kind and items of a pod list, or ObserveError for any document that is not one."""
    try:
        doc = jsondoc.loads(data, max_bytes=MAX_INPUT_BYTES)
    except jsondoc.JSONError as exc:
        raise ObserveError(f"the kubectl input is {exc}: {_ASK}") from None
    if not isinstance(doc, dict):
        raise ObserveError(f"the kubectl input is a JSON {_json_type(doc)}, not a pod list: {_ASK}")
    kind = doc.get("kind")
    if kind not in ("List", "PodList"):
        what = f"a {_text(kind)}" if isinstance(kind, str) else "a JSON object without kind"
        raise ObserveError(f"the kubectl input is {what}, not a list of pods: {_ASK}")
    items = doc.get("items")
    if items is None:
        items = []  # kubectl and the kubelet write `"items": []`; some encoders omit it
    if not isinstance(items, list):
        raise ObserveError(f"the kubectl input's items is not a JSON array: {_ASK}")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ObserveError(f"the kubectl input's items[{index}] is not a JSON object: {_ASK}")
    return kind, items


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def _is_pod(item: dict[str, Any], list_kind: str) -> bool:
    kind = item.get("kind")
    if kind is not None:
        return bool(kind == "Pod")
    # The API server's PodList may leave `kind` out of its items; in a mixed List only a
    # pod has spec.containers at the top of its spec.
    return list_kind == "PodList" or isinstance(_obj(item.get("spec")).get("containers"), list)


# --- the workload: the pod's top controller ---------------------------------------------


class _Ref(NamedTuple):
    kind: str
    name: str


def _controller(metadata: dict[str, Any]) -> _Ref | None:
    """The owner reference marked controller, else the first one (hand-built objects)."""
    refs = [_obj(r) for r in _list(metadata.get("ownerReferences"))]
    refs = [r for r in refs if _str(r.get("kind")) and _str(r.get("name"))]
    if not refs:
        return None
    chosen = next((r for r in refs if r.get("controller") is True), refs[0])
    return _Ref(chosen["kind"], chosen["name"])


class _Owners:
    """The non-pod objects of the list, by (namespace, kind, name)."""

    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        self.by_key: dict[tuple[str, str, str], dict[str, Any]] = {}
        for item in items:
            metadata = _obj(item.get("metadata"))
            kind, name = _str(item.get("kind")), _str(metadata.get("name"))
            namespace = _str(metadata.get("namespace")) or ""
            if kind and name and kind != "Pod":
                self.by_key.setdefault((namespace, kind, name), metadata)

    def find(self, namespace: str, ref: _Ref) -> dict[str, Any] | None:
        return self.by_key.get((namespace, ref.kind, ref.name))

    def workload(
        self, namespace: str, pod: str, metadata: dict[str, Any]
    ) -> tuple[_Ref, int | None]:
        """The pod's workload and, when the list holds the pod's ReplicaSet, its revision.

        Up the owner references as far as the list shows them: an owner that is in the
        list gives its own controller, one that is not ends the chain. Two fallbacks,
        both from what the pod itself proves: a ReplicaSet not in the list whose name is
        `NAME-<pod-template-hash>` belongs to Deployment NAME (how the Deployment
        controller names them); a Node owns the kubelet's mirror of a static pod, which
        is its own workload.
        """
        ref = _controller(metadata)
        if ref is None or ref.kind == "Node":
            return _Ref("Pod", pod), None
        revision: int | None = None
        seen = {ref}  # owner references can loop in a hand-edited list
        while True:
            owner = self.find(namespace, ref)
            if owner is None:
                if ref.kind == "ReplicaSet" and len(seen) == 1:
                    template_hash = _str(_obj(metadata.get("labels")).get(TEMPLATE_HASH))
                    suffix = "-" + (template_hash or "")
                    if template_hash and ref.name.endswith(suffix) and ref.name != suffix:
                        ref = _Ref("Deployment", ref.name[: -len(template_hash) - 1])
                break
            if ref.kind == "ReplicaSet" and revision is None:
                revision = _int(_obj(owner.get("annotations")).get(REVISION))
            parent = _controller(owner)
            if parent is None or parent in seen:
                break
            seen.add(parent)
            ref = parent
        return ref, revision


def _int(value: Any) -> int | None:
    if isinstance(value, str) and value.isdecimal() and len(value) <= 18:
        return int(value)
    return None


# --- names ---------------------------------------------------------------------------


def _compile(template: str) -> list[tuple[str, str | None]]:
    """The template as (literal text, field or None) pairs; ObserveError when it asks for
    anything but the four fields, plainly."""
    usage = "use the fields " + ", ".join("{" + f + "}" for f in FIELDS)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ObserveError(f"--name-template {_shown(template)}: {exc}: {usage}") from None
    parts: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is not None and field not in FIELDS:
            raise ObserveError(
                f"--name-template {_shown(template)}: unknown field {_shown(field)}: {usage}"
            )
        if conversion or spec:
            raise ObserveError(
                f"--name-template {_shown(template)}: a field takes no conversion or format "
                f"spec ({_shown(f'!{conversion}' if conversion else f':{spec}')}): {usage}"
            )
        parts.append((literal, field))
    if not any(field for _, field in parts):
        raise ObserveError(
            f"--name-template {_shown(template)} has no field, so it names every container "
            f"the same: {usage}"
        )
    return parts


class _Namer:
    def __init__(self, template: str | None) -> None:
        self.default = template is None or template == DEFAULT_TEMPLATE
        self.parts = _compile(DEFAULT_TEMPLATE if template is None else template)

    def __call__(self, values: dict[str, str]) -> str:
        text = "".join(literal + (values[field] if field else "") for literal, field in self.parts)
        if self.default and len(text) > MAX_NAME:
            text = _shortened(text, values)
        return text


def _shortened(full: str, values: dict[str, str]) -> str:
    hex_digits = sha256_of(full.encode("utf-8", "surrogatepass")).partition(":")[2]
    suffix = "-" + hex_digits[:_HASH_HEX]
    room = MAX_NAME - len(values["namespace"]) - len(values["container"]) - 2 - len(suffix)
    if room < 1:
        return full  # not Kubernetes names: the sync refuses the name, saying why
    return f"{values['namespace']}.{values['workload'][:room]}{suffix}.{values['container']}"


# --- one container of one pod -----------------------------------------------------------


class _Seen(NamedTuple):
    """One container of one pod: its digest when it runs one, else why not."""

    digest: str | None  # the registry digest the runtime reports, running or not
    skip: str | None
    artifact_ref: str | None
    revision: int | None
    started: float  # seconds since the epoch; -inf when unknown


def _registry_digest(image_id: str | None) -> tuple[str | None, str]:
    """The registry digest of a status imageID, or None and why it is none."""
    if image_id is None:
        return None, "the container status has no imageID"
    text = image_id
    for scheme in ("docker-pullable://", "docker://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
            break
    repository, at, digest = text.rpartition("@")
    if at and repository:
        found = normalize_sha256(digest)
        if found:
            return found, ""
        return None, f"imageID {_shown(image_id)} holds no sha256 registry digest"
    if normalize_sha256(text):
        return None, (
            f"imageID {_shown(image_id)} is the image's config digest, not its registry digest"
        )
    return None, f"imageID {_shown(image_id)} is not a registry digest"


def _pinned(image: str | None) -> str | None:
    if image is None:
        return None
    repository, at, digest = image.rpartition("@")
    return normalize_sha256(digest) if at and repository else None


def _reference(*candidates: str | None) -> str | None:
    """What a record keeps as artifact_ref: registry/repository:tag, normalised as
    `deployment record --oci-ref` does; the first candidate with a tag, else the first."""
    parsed = []
    for text in candidates:
        if text is None or normalize_sha256(text):  # some runtimes put the image ID here
            continue
        try:
            parsed.append(parse_reference(text))
        except RegistryError:
            continue
    chosen = next((ref for ref in parsed if ref.tag), parsed[0] if parsed else None)
    return chosen.display if chosen else None


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class _Container(NamedTuple):
    name: str
    role: str  # container, init, sidecar (an init container that keeps running), ephemeral
    spec: dict[str, Any]


def _containers(spec: dict[str, Any], status: dict[str, Any]) -> Iterator[_Container]:
    """Every container the pod names, in its spec or, without one, only in its status."""
    seen: set[str] = set()
    lists = (
        ("containers", "containerStatuses", "container"),
        ("initContainers", "initContainerStatuses", "init"),
        ("ephemeralContainers", "ephemeralContainerStatuses", "ephemeral"),
    )
    for spec_key, status_key, role in lists:
        for entries, in_spec in ((spec.get(spec_key), True), (status.get(status_key), False)):
            for entry in _list(entries):
                entry = _obj(entry)
                name = _str(entry.get("name"))
                if name is None or name in seen:
                    continue
                seen.add(name)
                # A native sidecar (Kubernetes 1.28+) is an init container that runs
                # beside the others for the pod's whole life.
                sidecar = role == "init" and entry.get("restartPolicy") == "Always"
                yield _Container(name, "sidecar" if sidecar else role, entry if in_spec else {})


def _status_of(status: dict[str, Any], container: _Container) -> dict[str, Any] | None:
    keys = {
        "container": "containerStatuses",
        "init": "initContainerStatuses",
        "sidecar": "initContainerStatuses",
        "ephemeral": "ephemeralContainerStatuses",
    }
    for entry in _list(status.get(keys[container.role])):
        if _obj(entry).get("name") == container.name:
            return _obj(entry)
    return None


def _phase_reason(status: dict[str, Any], phase: str | None) -> str:
    if phase is None:
        return "not running: the pod's status has no phase"
    why = _str(status.get("reason"))
    if why is None:
        for condition in _list(status.get("conditions")):
            condition = _obj(condition)
            if condition.get("status") == "False" and _str(condition.get("reason")):
                why = condition["reason"]
                break
    detail = f" ({_text(why)})" if why else ""
    return f"not running: the pod's phase is {_text(phase)}{detail}"


def _state_reason(state: dict[str, Any], ready: Any) -> str | None:
    """Why a container of a running pod does not count as running, or None if it does."""
    for word in ("waiting", "terminated"):
        if word in state:
            why = _str(_obj(state.get(word)).get("reason"))
            detail = f" ({_text(why)})" if why else ""
            return f"not running: the container is {word}{detail}"
    if "running" not in state:
        return "not running: the container status has no state"
    if ready is not True:
        return "not ready: the container runs but is not ready"
    return None


def _unseen(reason: str, image: str | None) -> _Seen:
    return _Seen(None, reason, _reference(image), None, float("-inf"))


def _see(pod_status: dict[str, Any] | None, container: _Container, revision: int | None) -> _Seen:
    spec_image = _str(container.spec.get("image"))
    if container.role == "init":
        return _unseen("an init container: it ran before the pod's containers started", spec_image)
    if container.role == "ephemeral":
        return _unseen("an ephemeral container (kubectl debug): not the workload's", spec_image)
    if pod_status is None:
        return _unseen("the pod has no status", spec_image)
    phase = _str(pod_status.get("phase"))
    status = _status_of(pod_status, container)
    if status is None:
        if phase != "Running":
            return _unseen(_phase_reason(pod_status, phase), spec_image)
        return _unseen("the pod has no status for this container", spec_image)

    status_image = _str(status.get("image"))
    image_id = _str(status.get("imageID"))
    digest, problem = _registry_digest(image_id)
    if digest is None:
        # The kubelet runs a digest-pinned image only if its manifest has that digest.
        digest = _pinned(status_image) or _pinned(spec_image)
    bare_id = image_id.split("://")[-1] if image_id else None
    reference = _reference(status_image, spec_image, bare_id)
    state = _obj(status.get("state"))
    started = _time(_obj(state.get("running")).get("startedAt"))
    if started is None:
        started = _time(pod_status.get("startTime"))
    skip = (
        _phase_reason(pod_status, phase)
        if phase != "Running"
        else _state_reason(state, status.get("ready"))
    )
    if skip is None and digest is None:
        skip = f"no registry digest: {problem}"
    return _Seen(digest, skip, reference, revision, float("-inf") if started is None else started)


# --- one workload's container across its pods ------------------------------------------------


def _decide(seen: list[_Seen]) -> tuple[str | None, str | None, str | None, str | None]:
    """(digest, skip, artifact_ref, warning) for one (namespace, workload, container)."""
    running = [s for s in seen if s.skip is None]
    if not running:
        counts = Counter(s.skip for s in seen if s.skip)
        shown = [
            reason if n == len(seen) else f"{reason} ({n} of {len(seen)} pods)"
            for reason, n in list(counts.items())[:_MAX_REASONS]
        ]
        more = len(counts) - _MAX_REASONS
        if more > 0:
            shown.append(f"and {more} more reason{'s' if more > 1 else ''}")
        refs = [s.artifact_ref for s in seen if s.artifact_ref]
        return None, "; ".join(shown), refs[0] if refs else None, None
    by_revision = all(s.revision is not None for s in running)
    newest = max(
        running,
        key=lambda s: ((s.revision or 0) if by_revision else 0, s.started, s.digest or ""),
    )
    digest = newest.digest
    warnings = []
    others = sorted({s.digest for s in running if s.digest and s.digest != digest})
    if others:
        if by_revision:
            revisions = {s.digest: s.revision for s in running}
            listed = ", ".join(f"{d} (revision {revisions[d]})" for d in others)
            why = f"the newest revision's digest (revision {newest.revision})"
        else:
            listed = ", ".join(others)
            why = "the digest of the most recently started ready pod"
        warnings.append(f"rollout in progress: other pods run {listed}; this is {why}")
    stuck = sorted(
        {s.digest for s in seen if s.skip and s.digest and s.digest != digest} - set(others)
    )
    if stuck:
        warnings.append(f"pods that do not run or are not ready have {', '.join(stuck)}")
    return digest, None, newest.artifact_ref, "; ".join(warnings) or None


# --- the parser ------------------------------------------------------------------------


def parse(
    data: bytes, *, namespaces: Sequence[str] = (), name_template: str | None = None
) -> list[Observed]:
    """One Observed per (namespace, workload, container) of the pod list in `data`, sorted
    by namespace, workload, its kind and container; pods that cannot be named (no name or
    namespace) come last, one each. `namespaces`, when given, keeps only those namespaces:
    the others are skipped, with that reason. Raises ObserveError when `data` is not a pod
    list, or `name_template` asks for anything but {namespace}, {workload},
    {workload_kind} and {container}.
    """
    namer = _Namer(name_template)
    list_kind, items = _document(data)
    pods = [item for item in items if _is_pod(item, list_kind)]
    if items and not pods:
        kinds = sorted({k for item in items if isinstance(k := item.get("kind"), str)})
        held = ", ".join(_text(k) for k in kinds[:5]) or "objects without kind"
        raise ObserveError(f"the kubectl input holds no pod ({held}): {_ASK}")
    owners = _Owners(items)
    wanted = set(namespaces)
    groups: dict[tuple[str, str, str, str], list[_Seen]] = {}
    unnamed: list[Observed] = []
    for pod in pods:
        metadata = _obj(pod.get("metadata"))
        namespace, name = _str(metadata.get("namespace")), _str(metadata.get("name"))
        if namespace is None or name is None:
            source = _source(namespace, name, "Pod", None)
            unnamed.append(_skipped(source, "the pod has no metadata.namespace or name"))
            continue
        workload, revision = owners.workload(namespace, name, metadata)
        status = pod.get("status") if isinstance(pod.get("status"), dict) else None
        containers = list(_containers(_obj(pod.get("spec")), status or {}))
        if not containers:
            source = _source(namespace, workload.name, workload.kind, None)
            unnamed.append(_skipped(source, f"pod {_shown(name)} names no container"))
            continue
        for container in containers:
            if wanted and namespace not in wanted:
                reason = f"namespace {_text(namespace)} is not in --namespace"
                seen = _Seen(None, reason, None, None, float("-inf"))
            else:
                seen = _see(status, container, revision)
            key = (namespace, workload.name, workload.kind, container.name)
            groups.setdefault(key, []).append(seen)
    observed = []
    for key in sorted(groups):
        values = dict(zip(FIELDS, (key[0], key[1], key[2], key[3]), strict=True))
        digest, skip, artifact_ref, warning = _decide(groups[key])
        observed.append(
            Observed(
                namer(values),
                "CONTAINER_IMAGE",
                digest,
                artifact_ref,
                dict(values),
                skip=skip,
                warning=warning,
            )
        )
    return observed + unnamed


def _source(
    namespace: str | None, workload: str | None, kind: str, container: str | None
) -> dict[str, Any]:
    return dict(zip(FIELDS, (namespace, workload, kind, container), strict=True))


def _skipped(source: dict[str, Any], reason: str) -> Observed:
    """A pod that gives no (namespace, workload, container) to name."""
    return Observed(None, "CONTAINER_IMAGE", None, None, source, skip=reason)
