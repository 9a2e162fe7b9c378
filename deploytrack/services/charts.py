"""Which digest a Helm release runs: `helm list` names only the chart's name and version.

Two ways to find it (`deployment sync --from-helm`):

- `find_chart`: the evidence store. A HELM_CHART material, or a subject that is surely a
  chart, whose name is the chart's: an OCI reference `[oci://]REGISTRY/PATH/NAME:VERSION`
  (or `NAME:VERSION`), or a packaged file `NAME-VERSION.tgz` (any folder). A subject is
  surely a chart when its name is `oci://...` or a `.tgz`, or when its attestation lists
  the same digest as a HELM_CHART material: `registry/app:1.0.0` alone could as well be
  an image tagged like the chart's version.
- `resolve_chart_repo`: the registry, `oci://REGISTRY/PATH/NAME:VERSION`, resolved as
  `deployment record --kind HELM_CHART --oci-ref` does (services/artifacts.py).

OCI tags cannot hold `+`: `helm push` writes a version's `+` as `_`, so `1.0.0+build.1`
is looked for, and resolved, as the tag `1.0.0_build.1`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

from deploytrack.digests import normalize_sha256, short
from deploytrack.errors import DeploytrackError
from deploytrack.services import ServiceError
from deploytrack.store import Store
from deploytrack.store.models import AttestationMaterial, AttestationSubject

if TYPE_CHECKING:
    from deploytrack.registry.options import RegistryOptions

HELM_CHART = "HELM_CHART"
_SCHEME = "oci://"
# Candidates a refusal lists; the rest are counted.
_SHOWN = 5


class ChartMatch(NamedTuple):
    """What the lookup found: `digest` when exactly one; else None with `outcome` the
    sync's (`unattested`: nothing names the chart; `skipped`: several digests do, or the
    registry could not answer) and `reason` in words (the candidates, when several)."""

    digest: str | None
    outcome: Literal["found", "unattested", "skipped"]
    reason: str


def oci_tag(version: str) -> str:
    return version.replace("+", "_")


def _is_reference_to(text: str, name: str, version: str) -> bool:
    """`text` is an OCI reference to the chart: its last path part is NAME:TAG."""
    ref = text.removeprefix(_SCHEME).split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last in (f"{name}:{version}", f"{name}:{oci_tag(version)}")


def _is_file_of(text: str, name: str, version: str) -> bool:
    return text.replace("\\", "/").rsplit("/", 1)[-1] == f"{name}-{version}.tgz"


def _narrowing(column: Any, name: str, version: str) -> Any:
    """A LIKE condition (case-insensitive, wildcards escaped by peewee) that every name the
    exact tests accept meets: it keeps the scan in SQLite, the tests decide."""
    condition = column.endswith(f"{name}-{version}.tgz")
    for tag in {version, oci_tag(version)}:
        condition |= column.endswith(f"{name}:{tag}") | column.contains(f"{name}:{tag}@")
    return condition


def find_chart(store: Store, name: str, version: str) -> ChartMatch:
    """The digest the evidence store names for chart `name` at `version` (see the module
    docstring), in a read transaction (or the caller's)."""
    found: dict[str, set[str]] = {}
    with store.read():
        materials = AttestationMaterial.select(
            AttestationMaterial.name, AttestationMaterial.digest
        ).where(
            AttestationMaterial.kind == HELM_CHART,
            _narrowing(AttestationMaterial.name, name, version),
        )
        # peewee's stubs type .tuples() as the model query it was called on.
        for text, digest in cast("Iterable[tuple[str | None, str | None]]", materials.tuples()):
            _keep(found, text, digest, name, version)
        subjects = AttestationSubject.select(
            AttestationSubject.name, AttestationSubject.digest, AttestationSubject.attestation
        ).where(_narrowing(AttestationSubject.name, name, version))
        for subject, subject_digest, attestation in cast(
            "Iterable[tuple[str, str, int]]", subjects.tuples()
        ):
            if _surely_chart(subject, subject_digest, attestation):
                _keep(found, subject, subject_digest, name, version)
    if not found:
        return ChartMatch(None, "unattested", f"no attestation names chart {name} {version}")
    if len(found) == 1:
        ((digest, _),) = found.items()
        return ChartMatch(digest, "found", f"chart {name} {version} is {digest}")
    shown = [f"{short(d)} ({sorted(names)[0]})" for d, names in sorted(found.items())]
    more = f" and {len(shown) - _SHOWN} more" if len(shown) > _SHOWN else ""
    return ChartMatch(
        None,
        "skipped",
        f"{len(found)} digests are named chart {name} {version}: "
        + ", ".join(shown[:_SHOWN])
        + more
        + "; give --chart-repo to resolve it in the registry",
    )


def _keep(found: dict[str, set[str]], text: str | None, digest: str | None, *chart: str) -> None:
    if text is None or digest is None:
        return
    canonical = normalize_sha256(digest)
    if canonical is not None and (_is_reference_to(text, *chart) or _is_file_of(text, *chart)):
        found.setdefault(canonical, set()).add(text)


def _surely_chart(text: str, digest: str, attestation: int) -> bool:
    if text.startswith(_SCHEME) or text.lower().endswith(".tgz"):
        return True
    return bool(
        AttestationMaterial.select()
        .where(
            AttestationMaterial.attestation == attestation,
            AttestationMaterial.digest == digest,
            AttestationMaterial.kind == HELM_CHART,
        )
        .exists()
    )


def chart_reference(repo: str, name: str, version: str) -> str:
    """`oci://REGISTRY/PATH/NAME:TAG` for a `--chart-repo oci://REGISTRY/PATH`."""
    if not repo.startswith(_SCHEME) or not repo.removeprefix(_SCHEME).strip("/"):
        raise ServiceError(
            f"--chart-repo {repo[:80]!r} is not a chart repository: use oci://REGISTRY/PATH"
        )
    return f"{repo.rstrip('/')}/{name}:{oci_tag(version)}"


def resolve_chart_repo(
    repo: str, name: str, version: str, options: RegistryOptions | None = None
) -> str:
    """The digest of chart `name` `version` in the OCI chart repository `repo`, resolved
    (and checked to be a Helm chart) as `deployment record --oci-ref` resolves it."""
    from deploytrack.services.artifacts import resolve_artifact

    return resolve_artifact(HELM_CHART, chart_reference(repo, name, version), options).digest


def chart_resolver(
    store: Store, repo: str | None = None, options: RegistryOptions | None = None
) -> Callable[[str, str], ChartMatch]:
    """One function for a whole sync: (name, version) to a ChartMatch, from the registry
    when `repo` is given (one client per registry for every release), else the evidence
    store. Each chart is looked up once however many releases run it (one chart in fifty
    namespaces is common). A registry refusal is that release's `skipped` reason, never
    the whole sync's."""
    known: dict[tuple[str, str], ChartMatch] = {}
    if repo is None:

        def look_up(name: str, version: str) -> ChartMatch:
            return find_chart(store, name, version)

    else:
        chart_reference(repo, "chart", "0.0.0")  # a malformed --chart-repo fails the sync once
        from deploytrack.services.artifacts import ArtifactResolver

        resolver = ArtifactResolver(options)

        def look_up(name: str, version: str) -> ChartMatch:
            reference = chart_reference(repo, name, version)
            try:
                digest = resolver.resolve(HELM_CHART, reference).digest
            except DeploytrackError as exc:
                return ChartMatch(None, "skipped", str(exc))
            return ChartMatch(digest, "found", f"{reference} is {digest}")

    def resolve(name: str, version: str) -> ChartMatch:
        if (name, version) not in known:
            known[name, version] = look_up(name, version)
        return known[name, version]

    return resolve


__all__ = [
    "ChartMatch",
    "chart_reference",
    "chart_resolver",
    "find_chart",
    "oci_tag",
    "resolve_chart_repo",
]
