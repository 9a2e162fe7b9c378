"""Environments and logical environments: names, types, defaults, life cycle, JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import NGINX_FULL, NGINX_GIT, Invoke, Record, assert_refused, query, snapshot
from helpers import as_json

RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ENVIRONMENT_FIELDS = ["name", "description", "type", "created_at", "updated_at"]
LOGICAL_FIELDS = ["name", "description", "is_default", "created_at", "updated_at"]
DEFAULTS = {
    "development": "For development and testing",
    "staging": "Pre-production validation",
    "production": "Live production workloads",
}
NAME_RULE = (
    "use 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
)
# (command group, the label its messages use)
CATALOGS = [("environment", "environment"), ("logical-environment", "logical environment")]
GROUPS = [group for group, _ in CATALOGS]


def assert_times(obj: dict[str, Any]) -> None:
    for field in ("created_at", "updated_at"):
        assert RFC3339_US.match(obj[field]), (field, obj[field])


# --- the default logical environments ----------------------------------------------------


def test_new_database_has_the_three_default_stages(ok: Invoke) -> None:
    stages = as_json(ok("logical-environment", "list", "-o", "json"))
    assert {s["name"]: s["description"] for s in stages} == DEFAULTS
    for stage in stages:
        assert list(stage) == LOGICAL_FIELDS
        assert stage["is_default"] is True
        assert_times(stage)


def test_defaults_are_created_once_however_often_the_database_is_opened(
    ok: Invoke, db_path: Path
) -> None:
    for _ in range(3):
        ok("logical-environment", "list")
    names = [r["name"] for r in query(db_path, "SELECT name FROM logical_environment")]
    assert sorted(names) == sorted(DEFAULTS)


def test_a_created_stage_is_not_a_default(ok: Invoke) -> None:
    created = as_json(
        ok("logical-environment", "create", "--name", "canary", "--description", "1%", "-o", "json")
    )
    assert list(created) == [*LOGICAL_FIELDS, "created"]
    assert created.pop("created") is True
    assert created["is_default"] is False
    assert created["description"] == "1%"
    shown = as_json(ok("logical-environment", "describe", "--name", "canary", "-o", "json"))
    assert shown == created
    listed = as_json(ok("logical-environment", "list", "-o", "json"))
    assert sorted(s["name"] for s in listed) == sorted([*DEFAULTS, "canary"])


def test_describe_table_shows_default_flag(ok: Invoke) -> None:
    out = ok("logical-environment", "describe", "--name", "production").stdout
    assert re.search(r"^Default:\s+yes$", out, re.M), out
    assert re.search(r"^Description:\s+Live production workloads$", out, re.M), out


# --- environments: create / list / describe / update / delete -----------------------------


def test_environment_life_cycle(ok: Invoke, run: Invoke, db_path: Path) -> None:
    created = as_json(
        ok(
            "environment",
            "create",
            "--name",
            "prod-eu-1",
            "--description",
            "EU cluster",
            "--type",
            "kubernetes",
            "-o",
            "json",
        )
    )
    assert list(created) == [*ENVIRONMENT_FIELDS, "created"]
    assert created.pop("created") is True
    assert created["name"] == "prod-eu-1"
    assert created["description"] == "EU cluster"
    assert created["type"] == "kubernetes"
    assert created["created_at"] == created["updated_at"]
    assert_times(created)

    assert as_json(ok("environment", "describe", "--name", "prod-eu-1", "-o", "json")) == created
    assert as_json(ok("environment", "list", "-o", "json")) == [created]

    updated = as_json(
        ok("environment", "update", "--name", "prod-eu-1", "--description", "moved", "-o", "json")
    )
    assert list(updated) == [*ENVIRONMENT_FIELDS, "changed"]
    assert updated["changed"] is True
    assert updated["description"] == "moved"
    assert updated["type"] == "kubernetes"
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] > created["updated_at"]

    retyped = as_json(
        ok("environment", "update", "--name", "prod-eu-1", "--type", "ecs", "-o", "json")
    )
    assert retyped["type"] == "ecs"
    assert retyped["description"] == "moved"
    assert retyped["updated_at"] >= updated["updated_at"]

    both = as_json(
        ok(
            "environment",
            "update",
            "--name",
            "prod-eu-1",
            "--type",
            "server",
            "--description",
            "",
            "-o",
            "json",
        )
    )
    assert (both["type"], both["description"]) == ("server", "")

    ok("environment", "delete", "--name", "prod-eu-1")
    assert query(db_path, "SELECT * FROM environment") == []
    assert_refused(run("environment", "describe", "--name", "prod-eu-1"), contains="does not exist")


def test_environment_list_is_sorted_by_name_and_table_has_columns(ok: Invoke) -> None:
    for name in ("zeta", "alpha", "mid"):
        ok("environment", "create", "--name", name)
    listed = as_json(ok("environment", "list", "-o", "json"))
    assert [e["name"] for e in listed] == ["alpha", "mid", "zeta"]
    header = ok("environment", "list").stdout.splitlines()[0]
    assert re.split(r"\s{2,}", header.strip()) == ["NAME", "TYPE", "DESCRIPTION", "CREATED"]


def test_empty_environment_list(ok: Invoke) -> None:
    assert ok("environment", "list", "-o", "json").stdout.strip() == "[]"
    table = ok("environment", "list")
    assert table.stdout == ""
    assert "No environments" in table.stderr


@pytest.mark.parametrize("type_", ["kubernetes", "ecs", "server", "lambda", "custom"])
def test_every_environment_type_is_accepted(ok: Invoke, type_: str) -> None:
    created = as_json(ok("environment", "create", "--name", "e", "--type", type_, "-o", "json"))
    assert created["type"] == type_


def test_environment_type_defaults_to_custom(ok: Invoke, db_path: Path) -> None:
    ok("environment", "create", "--name", "e")
    assert query(db_path, "SELECT type FROM environment") == [{"type": "custom"}]


@pytest.mark.parametrize("type_", ["k8s", "Kube", "", "vm"])
def test_invalid_environment_type_is_a_usage_error(
    run: Invoke, ok: Invoke, db_path: Path, type_: str
) -> None:
    ok("environment", "create", "--name", "existing")
    before = snapshot(db_path)
    assert_refused(run("environment", "create", "--name", "e", "--type", type_), code=2)
    assert_refused(run("environment", "update", "--name", "existing", "--type", type_), code=2)
    assert snapshot(db_path) == before


def test_environment_update_needs_something_to_change(refuse: Invoke, ok: Invoke) -> None:
    ok("environment", "create", "--name", "e", "--description", "kept")
    refuse(
        "environment", "update", "--name", "e", code=2,
        contains="give --description or --type (or both)",
    )  # fmt: skip


def test_the_update_service_given_no_field_changes_nothing(ok: Invoke, db_path: Path) -> None:
    # The command refuses this while its line is read (above): the service is a no-op.
    from deploytrack.services.catalog import environments, logical_environments
    from deploytrack.store import open_store

    ok("environment", "create", "--name", "e", "--description", "kept")
    before = snapshot(db_path)
    store = open_store(db_path)
    try:
        view, changed = environments.update(store, "e")
        assert (view.description, changed) == ("kept", False)
        assert logical_environments.update(store, "staging")[1] is False
    finally:
        store.close()
    assert snapshot(db_path) == before


def test_logical_environment_update_needs_a_description(refuse: Invoke, ok: Invoke) -> None:
    ok("logical-environment", "list")
    refuse("logical-environment", "update", "--name", "staging", code=2, contains="--description")


def test_logical_environment_has_no_type(refuse: Invoke, ok: Invoke) -> None:
    ok("logical-environment", "list")
    refuse("logical-environment", "create", "--name", "canary", "--type", "custom", code=2)


def test_logical_environment_life_cycle(ok: Invoke, run: Invoke, db_path: Path) -> None:
    created = as_json(ok("logical-environment", "create", "--name", "qa", "-o", "json"))
    assert created["description"] == ""
    updated = as_json(
        ok("logical-environment", "update", "--name", "qa", "--description", "manual", "-o", "json")
    )
    assert updated["description"] == "manual"
    assert updated["is_default"] is False
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] > created["updated_at"]
    # A default can be described and updated like any other.
    prod = as_json(
        ok(
            "logical-environment",
            "update",
            "--name",
            "production",
            "--description",
            "Live",
            "-o",
            "json",
        )
    )
    assert (prod["description"], prod["is_default"]) == ("Live", True)

    ok("logical-environment", "delete", "--name", "qa")
    names = {r["name"] for r in query(db_path, "SELECT name FROM logical_environment")}
    assert names == set(DEFAULTS)
    assert_refused(
        run("logical-environment", "describe", "--name", "qa"), contains="does not exist"
    )


# --- names ---------------------------------------------------------------------------------

VALID_NAMES = ["a", "0", "a" * 63, "prod-eu-1", "1st", "a-b-c", "x9"]
INVALID_NAMES = {
    "too long": "a" * 64,
    "empty": "",
    "leading dash": "-prod",
    "trailing dash": "prod-",
    "uppercase": "Prod",
    "underscore": "prod_eu",
    "dot": "prod.eu",
    "space": "prod eu",
    "trailing newline": "prod\n",
    "non-ascii": "prød",
}


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("name", VALID_NAMES)
def test_dns_label_names_are_accepted(ok: Invoke, db_path: Path, group: str, name: str) -> None:
    created = as_json(ok(group, "create", "--name", name, "-o", "json"))
    assert created["name"] == name
    table = "environment" if group == "environment" else "logical_environment"
    assert query(db_path, f"SELECT name FROM {table} WHERE name = ?", (name,)) == [{"name": name}]


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("name", INVALID_NAMES.values(), ids=INVALID_NAMES.keys())
def test_names_that_are_not_dns_labels_are_refused(
    refuse: Invoke, ok: Invoke, group: str, name: str
) -> None:
    ok("environment", "list")
    refuse(group, "create", "--name", name, code=2, contains=NAME_RULE)


@pytest.mark.parametrize(("group", "label"), CATALOGS)
def test_duplicate_names_are_refused(refuse: Invoke, ok: Invoke, group: str, label: str) -> None:
    ok(group, "create", "--name", "dup", "--description", "first")
    refuse(
        group,
        "create",
        "--name",
        "dup",
        "--description",
        "second",
        contains=f"{label} 'dup' already exists",
    )


def test_a_default_stage_name_cannot_be_created_again(refuse: Invoke, ok: Invoke) -> None:
    ok("logical-environment", "list")
    refuse("logical-environment", "create", "--name", "production", contains="already exists")


@pytest.mark.parametrize(("group", "label"), CATALOGS)
@pytest.mark.parametrize("command", ["describe", "delete"])
def test_unknown_names_are_refused(
    refuse: Invoke, ok: Invoke, group: str, label: str, command: str
) -> None:
    ok("environment", "list")
    refuse(group, command, "--name", "ghost", contains=f"{label} 'ghost' does not exist")


@pytest.mark.parametrize(("group", "label"), CATALOGS)
def test_updating_an_unknown_name_is_refused(
    refuse: Invoke, ok: Invoke, group: str, label: str
) -> None:
    ok("environment", "list")
    refuse(
        group,
        "update",
        "--name",
        "ghost",
        "--description",
        "x",
        contains=f"{label} 'ghost' does not exist",
    )


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("description", ["two\nlines", "x" * 1025])
def test_descriptions_are_one_line_of_at_most_1024(
    run: Invoke, ok: Invoke, db_path: Path, group: str, description: str
) -> None:
    ok(group, "create", "--name", "kept", "--description", "x" * 1024)
    before = snapshot(db_path)
    assert_refused(
        run(group, "create", "--name", "new", "--description", description),
        contains="invalid description",
    )
    assert_refused(
        run(group, "update", "--name", "kept", "--description", description),
        contains="invalid description",
    )
    assert snapshot(db_path) == before


# --- deletion and history -------------------------------------------------------------------

# Histories that leave at least one record in environment 'cluster' / stage 'production'.
HISTORIES = {
    "deployed": [(NGINX_FULL, "deployed")],
    "superseded and deployed": [(NGINX_FULL, "deployed"), (NGINX_GIT, "deployed")],
    "decommissioned only": [(NGINX_FULL, "deployed"), (NGINX_FULL, "decommissioned")],
    "superseded and decommissioned": [
        (NGINX_FULL, "deployed"),
        (NGINX_GIT, "deployed"),
        (NGINX_GIT, "decommissioned"),
    ],
}


@pytest.mark.parametrize("steps", HISTORIES.values(), ids=HISTORIES.keys())
@pytest.mark.parametrize(
    ("group", "label", "name"),
    [
        ("environment", "environment", "cluster"),
        ("logical-environment", "logical environment", "production"),
    ],
)
def test_delete_is_refused_while_any_record_references_it(
    refuse: Invoke,
    seeded: None,
    record: Record,
    db_path: Path,
    steps: list[tuple[str, str]],
    group: str,
    label: str,
    name: str,
) -> None:
    for digest, status in steps:
        record(digest, "--status", status)
    count = len(query(db_path, "SELECT id FROM deployment"))
    refuse(
        group,
        "delete",
        "--name",
        name,
        contains=f"{label} '{name}' is referenced by {count} deployment record(s)",
    )


def test_delete_is_allowed_when_no_record_references_it(
    seeded: None, record: Record, ok: Invoke, db_path: Path
) -> None:
    ok("environment", "create", "--name", "unused")
    ok("logical-environment", "create", "--name", "unused-stage")
    record(NGINX_FULL)  # cluster/production is referenced; the others are not
    record(NGINX_FULL, "--status", "decommissioned")
    ok("environment", "delete", "--name", "unused")
    ok("logical-environment", "delete", "--name", "unused-stage")
    ok("logical-environment", "delete", "--name", "staging")  # even a default
    assert {r["name"] for r in query(db_path, "SELECT name FROM environment")} == {"cluster"}
    stages = {r["name"] for r in query(db_path, "SELECT name FROM logical_environment")}
    assert stages == {"development", "production"}
    assert len(query(db_path, "SELECT id FROM deployment")) == 1


@pytest.mark.parametrize(
    ("group", "extra"),
    [("environment", ["--type", "kubernetes"]), ("logical-environment", [])],
)
def test_if_not_exists_makes_create_idempotent(
    ok: Invoke, run: Invoke, db_path: Path, group: str, extra: list[str]
) -> None:
    ok(group, "create", "--name", "shared", "--description", "first", *extra)
    before = snapshot(db_path)
    again = ok(group, "create", "--name", "shared", "--description", "other", "--if-not-exists")
    assert "already exists: unchanged" in again.stdout
    assert snapshot(db_path) == before  # nothing changed, not even the description
    as_json = ok(group, "create", "--name", "shared", "--if-not-exists", "-o", "json")
    assert json.loads(as_json.stdout)["description"] == "first"
    assert_refused(run(group, "create", "--name", "shared"), contains="already exists")
    fresh = ok(group, "create", "--name", "fresh", "--if-not-exists")
    assert fresh.stdout.startswith("Created")


# --- honest no-ops -----------------------------------------------------------------------------

ENV = ("environment", "Environment")
STAGE = ("logical-environment", "Logical environment")


@pytest.mark.parametrize(
    ("group", "label", "same", "other"),
    [
        (*ENV, ["--description", "d", "--type", "ecs"], ["--type", "server"]),
        (*ENV, ["--type", "ecs"], ["--description", "new"]),
        (*STAGE, ["--description", "d"], ["--description", "e"]),
    ],
)
def test_update_with_the_values_it_has_is_unchanged(
    ok: Invoke, db_path: Path, group: str, label: str, same: list[str], other: list[str]
) -> None:
    extra = ["--type", "ecs"] if group == "environment" else []
    ok(group, "create", "--name", "shared", "--description", "d", *extra)
    before = snapshot(db_path)
    table = ok(group, "update", "--name", "shared", *same)
    assert table.stdout.startswith(f"{label} shared already has th")
    assert table.stdout.rstrip().endswith(": unchanged.")
    body = as_json(ok(group, "update", "--name", "shared", *same, "-o", "json"))
    assert body["changed"] is False
    shown = as_json(ok(group, "describe", "--name", "shared", "-o", "json"))
    assert {k: v for k, v in body.items() if k != "changed"} == shown
    assert snapshot(db_path) == before  # updated_at did not move
    changed = as_json(ok(group, "update", "--name", "shared", *other, "-o", "json"))
    assert changed["changed"] is True
    assert changed["updated_at"] > shown["updated_at"]


@pytest.mark.parametrize(
    ("group", "extra", "given", "warning"),
    [
        ("environment", ["--type", "kubernetes"], ["--type", "ecs"],
         "Warning: environment shared exists with type kubernetes; nothing changed"),
        ("environment", ["--type", "kubernetes"], ["--description", "other", "--type", "ecs"],
         "Warning: environment shared exists with type kubernetes and description 'first'; "
         "nothing changed"),
        ("logical-environment", [], ["--description", "other"],
         "Warning: logical environment shared exists with description 'first'; nothing changed"),
    ],
)  # fmt: skip
def test_if_not_exists_with_other_values_warns(
    ok: Invoke, db_path: Path, group: str, extra: list[str], given: list[str], warning: str
) -> None:
    ok(group, "create", "--name", "shared", "--description", "first", *extra)
    before = snapshot(db_path)
    for output in ("table", "json"):
        again = ok(group, "create", "--name", "shared", *given, "--if-not-exists", "-o", output)
        assert again.stderr == warning + "\n"
    assert json.loads(again.stdout)["created"] is False
    assert json.loads(again.stdout)["description"] == "first"
    # The same values, or none given: nothing to warn about.
    for quiet in (["--description", "first", *extra], []):
        same = ok(group, "create", "--name", "shared", *quiet, "--if-not-exists")
        assert same.stderr == ""
        assert "already exists: unchanged" in same.stdout
    assert snapshot(db_path) == before
    made = ok(group, "create", "--name", "fresh", *given, "--if-not-exists", "-o", "json")
    assert (json.loads(made.stdout)["created"], made.stderr) == (True, "")
