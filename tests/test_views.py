"""Typed results and one renderer.

Every command prints its result through `cli.output.render`: the view's JSON shape (its
fields, or the `__json__` defined beside it in services/views/) for `-o json`, the view's
one column spec for `-o table` and `-o wide`, or its text function. These tests hold the
CLI to that: no JSON body or output branch written per command, one definition of each
rendering helper, view types named rather than `Any`.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from conftest import NGINX_FULL, Invoke

from deploytrack.cli.output import Column, Table, jsonable, render
from deploytrack.services.views.policies import AdmissionEvidence, Decision, PolicyView

CLI = Path(__file__).parent.parent / "deploytrack" / "cli"
COMMAND_MODULES = sorted(p for p in CLI.glob("*.py") if p.name != "output.py")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


# --- the CLI's shape --------------------------------------------------------------------------


def test_no_command_chooses_its_output_format_itself() -> None:
    """`if output == "json"` (or "wide") and print_json live in output.render only."""
    found = []
    for path in COMMAND_MODULES:
        for node in ast.walk(_tree(path)):
            if (
                isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Name)
                and node.left.id == "output"
                and any(
                    isinstance(c, ast.Constant) and c.value in {"json", "wide", "table"}
                    for c in node.comparators
                )
            ):
                found.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id in {"print_json", "jsonable"}:
                found.append(f"{path.name}:{node.lineno} uses {node.id}")
    assert found == []


def test_no_cli_module_builds_a_json_body() -> None:
    """A dict literal passed to a printer is a JSON shape written outside its view."""
    found = []
    for path in COMMAND_MODULES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and any(
                isinstance(arg, (ast.Dict, ast.DictComp)) for arg in node.args
            ):
                name = ast.unparse(node.func)
                if name in {"render", "print_json", "emit", "print_table", "click.echo"}:
                    found.append(f"{path.name}:{node.lineno} {name}")
    assert found == []


def test_each_cli_helper_is_defined_once() -> None:
    """_artifact and _KIND were written in two CLI modules: one definition of each now."""
    defined: dict[str, list[str]] = {}
    aliases = []
    for path in sorted(CLI.glob("*.py")):
        for node in _tree(path).body:
            # An @overload stub and its implementation are one definition.
            if isinstance(node, ast.FunctionDef) and path.name not in defined.get(node.name, []):
                defined.setdefault(node.name, []).append(path.name)
            # `_KIND = KIND`: a second name for a parameter type of cli/params.py.
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Name)
                and node.value.id.isupper()
            ):
                aliases.append(f"{path.name}: {ast.unparse(node)}")
    assert {name: where for name, where in defined.items() if len(where) > 1} == {}
    assert aliases == []


def test_command_modules_name_view_types_not_any() -> None:
    """A parameter called view/result/detail/report/decision is annotated with its type."""
    untyped = []
    for path in COMMAND_MODULES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef):
                for arg in node.args.args:
                    if (
                        arg.arg in {"view", "result", "detail", "report", "decision", "change"}
                        and arg.annotation is not None
                        and ast.unparse(arg.annotation) == "Any"
                    ):
                        untyped.append(f"{path.name}:{node.lineno} {node.name}({arg.arg})")
    assert untyped == []


# --- the renderer -----------------------------------------------------------------------------


ROWS = [{"name": "api", "digest": "sha256:" + "a" * 64, "kind": "CONTAINER_IMAGE"}]
TABLE = Table(
    (
        Column("NAME", lambda r: r["name"]),
        Column("KIND", lambda r: r["kind"], wide=True),
        Column("DIGEST", lambda r: r["digest"][:19], full=lambda r: r["digest"]),
        Column("NOTE", lambda r: "table only", wide=False),
    ),
    empty="No rows.",
)


def test_a_column_spec_gives_the_table_and_the_wide_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    render(ROWS, "table", TABLE)
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAME", "DIGEST", "NOTE"]
    assert table[2].split() == ["api", "sha256:aaaaaaaaaaaa", "table", "only"]
    render(ROWS, "wide", TABLE)
    wide = capsys.readouterr().out.splitlines()
    assert wide[0].split() == ["NAME", "KIND", "DIGEST"]
    assert wide[2].split() == ["api", "CONTAINER_IMAGE", "sha256:" + "a" * 64]


def test_text_is_told_whether_wide_was_asked(capsys: pytest.CaptureFixture[str]) -> None:
    def tell(value: str, *, wide: bool = False) -> None:
        print(f"{value} wide={wide}")

    render("report", "table", text=tell)
    render("report", "wide", text=tell)
    assert capsys.readouterr().out == "report wide=False\nreport wide=True\n"


def test_json_is_the_view_whatever_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    render(ROWS, "json", TABLE)
    assert json.loads(capsys.readouterr().out) == ROWS


def test_a_view_defines_its_json_shape_beside_it() -> None:
    policy = PolicyView(7, "production", "set", ("https://slsa.dev/provenance/v1",), (), 0)
    decision = Decision(
        "production", NGINX_FULL, policy, True, (), (), (AdmissionEvidence("", 3, None),)
    )
    # The evidence rows are for the store: never printed. Times become RFC 3339.
    assert jsonable(decision) == {
        "logical_environment": "production",
        "digest": NGINX_FULL,
        "passed": True,
        "reasons": [],
        "policy": {
            "id": 7,
            "logical_environment": "production",
            "action": "set",
            "required_predicates": ["https://slsa.dev/provenance/v1"],
            "trusted_keys": [],
            "created_at": "1970-01-01T00:00:00.000000Z",
            "trusted_identities": [],
        },
        "admission": [],
    }


# --- end to end: the shapes the views define are the documented ones --------------------------


def test_describe_json_is_the_record_then_what_describe_adds(seeded: None, ok: Invoke) -> None:
    ok("deployment", "record", "--env", "cluster", "--logical-env", "production",
       "--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--digest", NGINX_FULL)  # fmt: skip
    body = json.loads(ok("deployment", "describe", "1", "-o", "json").stdout)
    listed = json.loads(ok("deployment", "list", "-o", "json").stdout)[0]
    assert list(body) == [*listed, "supersedes", "attestations", "policy", "admission"]
    assert {k: body[k] for k in listed} == listed


def test_status_and_diff_json_are_their_rows(seeded: None, ok: Invoke) -> None:
    ok("deployment", "record", "--env", "cluster", "--logical-env", "production",
       "--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--digest", NGINX_FULL)  # fmt: skip
    status = json.loads(ok("status", "-o", "json").stdout)
    assert [row["deployment_name"] for row in status] == ["api"]
    sides = ("--from-logical-env", "production", "--to-logical-env", "staging")
    diff = json.loads(ok("deployment", "diff", *sides, "-o", "json").stdout)
    assert [(row["deployment_name"], row["change"]) for row in diff] == [("api", "removed")]
