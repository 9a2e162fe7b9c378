"""One home per rule: each rule below is defined once and the other places call it. These
tests pin the one place that is left: the command line's check, where the service's copy
could never be reached, and the shared helpers the services, registry, evidence and crypto
modules call instead of their own copies."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import NGINX_FULL, Invoke, Record, assert_refused, snapshot

from deploytrack.services import ServiceError, validate
from deploytrack.store import open_store, queries

SLOT = ("--env", "cluster", "--logical-env", "production", "--deployment-name", "api")


# --- checks made once, on the command line ---------------------------------------------------


def test_an_empty_policy_is_refused_while_the_command_line_is_read(
    run: Invoke, ok: Invoke, db_path: Path
) -> None:
    ok("logical-environment", "create", "--name", "canary")
    before = snapshot(db_path)
    result = run("logical-environment", "policy", "set", "--name", "canary")
    assert_refused(result, 2, "give --require-predicate URI or --trusted-key PUB_PEM (or both)")
    assert snapshot(db_path) == before


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "args",
    [
        ("deployment", "record", *SLOT, "--kind", "CONTAINER_IMAGE", "--digest", NGINX_FULL,
         "--status", "running"),
        ("deployment", "decommission", *SLOT, "--kind", "SBOM"),
        ("deployment", "rollback", *SLOT, "--kind", "SBOM"),
        ("deployment", "promote", "--env", "cluster", "--deployment-name", "api", "--kind", "SBOM",
         "--from-logical-env", "production", "--to-logical-env", "canary"),
        ("deployment", "promote", "--env", "cluster", "--deployment-name", "-api",
         "--kind", "HELM_CHART", "--from-logical-env", "production", "--to-logical-env", "canary"),
    ],
)  # fmt: skip
def test_slot_values_are_checked_while_the_command_line_is_read(
    run: Invoke, record: Record, db_path: Path, args: tuple[str, ...]
) -> None:
    record()
    before = snapshot(db_path)
    assert_refused(run(*args), 2, "Invalid value for")
    assert snapshot(db_path) == before


def test_variable_name_is_refused_before_the_value_is_asked_for(run: Invoke, db_path: Path) -> None:
    # No VALUE and no --stdin: a valid name would prompt (and fail: stdin is no terminal).
    result = run("variable", "set", "DEPLOYTRACK_TOKEN", "--logical-env", "production")
    assert_refused(result, 1, "the DEPLOYTRACK_ prefix is reserved")


# --- validation rules, in services/validate.py ------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "message"),
    [
        (validate.variable_name, "9LIVES", "invalid variable name"),
        (validate.variable_name, "deploytrack_x", "prefix is reserved"),
        (validate.variable_name, "A" * 256, "at most 255 characters"),
        (validate.variable_value, "x" * (64 * 1024 + 1), "larger than 64 KiB"),
        (validate.variable_value, "a\0b", "NUL character"),
        (validate.variable_value, "\udc80", "not valid UTF-8"),
        (validate.predicate_type, "", "invalid predicate type"),
        (validate.predicate_type, "https://x/ y", "invalid predicate type"),
        (validate.predicate_type, "u" * 1025, "1 to 1024"),
    ],
)
def test_validation_rules_refuse(rule, value: str, message: str) -> None:
    with pytest.raises(ServiceError, match=message):
        rule(value)


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        (validate.variable_name, "_A9"),
        (validate.variable_name, "A" * 255),
        (validate.variable_value, "x" * (64 * 1024)),
        (validate.predicate_type, "https://slsa.dev/provenance/v1"),
    ],
)
def test_validation_rules_accept(rule, value: str) -> None:
    assert rule(value) == value


# --- queries asked in one place ------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_naming_and_digest_in_evidence_answer_the_same_question(
    db_path: Path, record: Record
) -> None:
    first = record()["deployment"]
    second = record(NGINX_FULL, name="web")["deployment"]
    store = open_store(db_path)
    try:
        with store.read():
            assert queries.naming(NGINX_FULL) and queries.digest_in_evidence(NGINX_FULL)
            absent = "sha256:" + "0" * 64
            assert queries.naming(absent) == set()
            assert not queries.digest_in_evidence(absent)
            rows = list(queries.with_names().where(queries.active_now(queries.SlotFilter())))
            names = {(r.environment.name, r.logical_environment.name) for r in rows}
            assert names == {("cluster", "production")}
            slot = queries.in_slot(rows[0].environment_id, rows[0].logical_environment_id,
                                   "api", "CONTAINER_IMAGE")  # fmt: skip
            assert queries.active_in(slot).id == first["id"]
            assert queries.newest_in(slot).id == first["id"]
    finally:
        store.close()
    assert second["id"] != first["id"]


# --- manifest media types and limits, in registry/media.py ----------------------------------


def test_one_list_of_manifest_media_types_and_limits() -> None:
    import oras.defaults

    from deploytrack.registry import client, layout, media
    from deploytrack.services import artifacts

    # The list oras sends by default, in its order: what registries are known to answer.
    assert tuple(oras.defaults.default_manifest_accepted_media_types) == media.MANIFEST_MEDIA_TYPES
    assert {
        oras.defaults.default_index_media_type,
        oras.defaults.docker_manifest_list_media_type,
    } == media.INDEX_MEDIA_TYPES
    assert ", ".join(media.MANIFEST_MEDIA_TYPES) == client.ACCEPT
    for module in (client, layout, artifacts):
        for name in ("MANIFEST_MEDIA_TYPES", "INDEX_MEDIA_TYPES", "MAX_MANIFEST_BYTES",
                     "HELM_CONFIG_MEDIA_TYPE", "MAX_INDEX_BYTES"):  # fmt: skip
            if hasattr(module, name):
                assert getattr(module, name) is getattr(media, name), (module, name)
