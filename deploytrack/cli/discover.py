"""`discover DIGEST` and `project list|describe`: where evidence and artifacts came from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from deploytrack.cli import App, pass_app
from deploytrack.cli.lazy import Command, LazyGroup
from deploytrack.cli.output import Column, Table, output_option, render, safe, when
from deploytrack.digests import normalize_lookup

if TYPE_CHECKING:
    from deploytrack.services.discover import Discovery
    from deploytrack.services.projects import ProjectDetail
    from deploytrack.services.views.deployments import DeploymentView

Node = tuple[str, list[Any]]


def print_tree(root: str, children: list[Node]) -> None:
    """A tree of labels; every label is made safe for the terminal."""
    click.echo(safe(root))

    def walk(nodes: list[Node], prefix: str) -> None:
        for index, (label, kids) in enumerate(nodes):
            last = index == len(nodes) - 1
            click.echo(prefix + ("└── " if last else "├── ") + safe(label))
            walk(kids, prefix + ("    " if last else "│   "))

    walk(children, "")


def _who(project: str | None, version: str | None, workflow: str | None) -> str:
    parts = []
    if project:
        parts.append(f"project {project}" + (f" {version}" if version else ""))
    if workflow:
        parts.append(f"workflow {workflow}")
    return ", ".join(parts) if parts else "no project"


def _record(view: DeploymentView) -> str:
    where = f"{view.environment}/{view.logical_environment}"
    ended = f", ended {when(view.ended_at)}" if view.ended_at else ""
    return (
        f"deployment {view.id}: {view.deployment_name} ({view.kind}) in {where}, "
        f"{view.status} since {when(view.created_at)}{ended}"
    )


def _verified(fingerprints: tuple[str, ...]) -> str:
    return f"; signature verified with {', '.join(fingerprints)}" if fingerprints else ""


@click.command("discover", cls=Command)
@click.argument("digest", type=normalize_lookup)
@click.option(
    "--kind",
    default=None,
    metavar="KIND",
    help="Pick one kind when the digest was seen under several (CONTAINER_IMAGE, "
    "SBOM_CYCLONEDX_JSON, ATTESTATION...).",
)
@output_option
@pass_app
def discover(app: App, digest: str, kind: str | None, output: str) -> None:
    """What a digest is, which attestations reference it, what it references, where it runs.

    DIGEST may be a unique prefix of 8+ hex digits (sha256 unless another algorithm is named).
    """
    from deploytrack.services.discover import discover as find

    render(find(app.store, digest, kind), output, text=_tell_discovery)


def _tell_discovery(found: Discovery) -> None:
    children: list[Node] = []
    if found.ambiguous:
        children.append(
            (
                f"ambiguous: seen as {', '.join(found.kinds)}; pick one with --kind",
                [],
            )
        )
    else:
        children.append((f"kind: {found.kind or 'unknown (only ever a subject)'}", []))
    if found.names:
        children.append(("names: " + ", ".join(found.names), []))
    if found.stored_bytes is not None:
        children.append(
            (
                f"stored: {found.stored_bytes} bytes "
                f"(deploytrack artifact download --digest {found.digest})",
                [],
            )
        )
    refs: list[Node] = []
    for ref in found.referenced_by:
        lines: list[Node] = [(_who(ref.project, ref.version, ref.workflow), [])]
        for role in ref.roles:
            kind_shown = f" {role.kind}" if role.kind else ""
            name = f" {role.name!r}" if role.name else ""
            lines.append((f"as {role.role}{kind_shown}{name}", []))
        if ref.verified_by:
            lines.append((f"signature verified with {', '.join(ref.verified_by)}", []))
        if ref.verified_identities:
            signers = ", ".join(ref.verified_identities)
            lines.append((f"signed by {signers} (keyless, verified)", []))
        refs.append((f"{ref.attestation} {ref.predicate_type}", lines))
    children.append((f"referenced by {len(refs)} attestation(s)", refs))
    if found.attestation is not None:
        att = found.attestation
        named: list[Node] = [(f"subject {s.digest} {s.name!r}", []) for s in att.subjects]
        named += [
            (f"material {m.kind or '-'} {m.digest or '(no digest)'} {m.name!r}", [])
            for m in att.materials
        ]
        keys = ", ".join(v.fingerprint for v in att.verifications)
        verified = f"; signature verified with {keys}" if keys else ""
        signers = ", ".join(dict.fromkeys(v.identity for v in att.identity_verifications))
        verified += f"; signed by {signers} (keyless, verified)" if signers else ""
        children.append(
            (
                f"it is an attestation ({att.format}, {att.predicate_type}, "
                f"{_who(att.project, att.version, att.workflow)}{verified}); it references:",
                named,
            )
        )
    children.append(
        (
            f"deployment records: {len(found.deployments)}",
            [(_record(v), []) for v in found.deployments],
        )
    )
    print_tree(found.digest, children)


@click.group("project", cls=LazyGroup)
def project() -> None:
    """Projects named by attestations: versions, workflows, evidence, artifacts."""


@project.command("list")
@output_option(wide=True)
@pass_app
def project_list(app: App, output: str) -> None:
    """List the projects attestations belong to."""
    from deploytrack.services.projects import list_projects

    render(list_projects(app.store), output, PROJECTS)


PROJECTS = Table(
    (
        Column("PROJECT", lambda v: v.name, 32, wide_cap=64),
        Column("VERSIONS", lambda v: ", ".join(v.versions), 32, wide_cap=100),
        Column("WORKFLOWS", lambda v: ", ".join(v.workflows), 24, wide_cap=100),
        Column("ATTESTATIONS", lambda v: str(v.attestations)),
        Column("LAST IMPORTED", lambda v: when(v.last_imported_at)),
    ),
    empty="No projects: attestations name none (attestation import --project P).",
)


@project.command("describe")
@click.option("--name", required=True, help="The project.")
@output_option
@pass_app
def project_describe(app: App, name: str, output: str) -> None:
    """Versions, workflows, attestations, the artifacts they name, and where each runs now."""
    from deploytrack.services.projects import describe_project

    render(describe_project(app.store, name), output, text=_tell_project)


def _tell_project(detail: ProjectDetail) -> None:
    versions: list[Node] = []
    for version in detail.versions:
        atts: list[Node] = [
            (
                f"{a.digest} {a.predicate_type} ({a.format}"
                + (f", workflow {a.workflow}" if a.workflow else "")
                + f", imported {when(a.imported_at)}){_verified(a.verified_by)}",
                [],
            )
            for a in version.attestations
        ]
        arts: list[Node] = []
        for art in version.artifacts:
            runs: list[Node] = [(_record(r), []) for r in art.running] or [
                ("not running anywhere now", [])
            ]
            label = art.digest
            if art.kinds:
                label += f" {', '.join(art.kinds)}"
            if art.names:
                label += f" ({', '.join(art.names)})"
            arts.append((label, runs))
        workflows = ", ".join(version.workflows) or "-"
        versions.append(
            (
                f"version {version.version or '(none)'}, workflows: {workflows}",
                [
                    (f"attestations: {len(atts)}", atts),
                    (f"artifacts: {len(arts)}", arts),
                ],
            )
        )
    print_tree(f"project {detail.name}", versions)
