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
    assert_refused(
        result, 2, "give --require-predicate URI, --trusted-key PUB_PEM or --trusted-identity ID"
    )
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
        (validate.digest_or_prefix, "abc", "at least 8"),
        (validate.name, "Prod", "invalid environment name 'Prod': use 1 to 63 lowercase"),
        (validate.deployment_name, "-api", "invalid deployment name '-api': use 1 to 253"),
    ],
)
def test_validation_rules_refuse(rule, value: str, message: str) -> None:
    with pytest.raises(ServiceError, match=message):
        rule(value, "environment") if rule is validate.name else rule(value)


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        (validate.variable_name, "_A9"),
        (validate.variable_name, "A" * 255),
        (validate.variable_value, "x" * (64 * 1024)),
        (validate.predicate_type, "https://slsa.dev/provenance/v1"),
        (validate.digest_or_prefix, "sha256:abcdef12"),
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


# --- files and locations: deploytrack/files.py, deploytrack/locations.py -------------------


def test_private_folders_and_files(tmp_path: Path) -> None:
    import os
    import stat

    from deploytrack import files

    old = os.umask(0)  # the modes must not depend on a friendly umask
    try:
        folder = tmp_path / "a" / "b" / "c"
        files.make_private_folders(folder)
        files.make_private_folders(folder)  # there already: nothing to do, no error
        for each in (tmp_path / "a", tmp_path / "a" / "b", folder):
            assert stat.S_IMODE(each.stat().st_mode) == 0o700, each
        fd = files.open_new_private(folder / "key")
        os.close(fd)
        assert stat.S_IMODE((folder / "key").stat().st_mode) == 0o600
    finally:
        os.umask(old)
    with pytest.raises(FileExistsError):
        files.open_new_private(folder / "key")
    # A relative folder, from the working directory.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        files.make_private_folders(Path("r") / "s")
    assert stat.S_IMODE((tmp_path / "r" / "s").stat().st_mode) == 0o700
    (tmp_path / "target").write_bytes(b"")
    (folder / "link").symlink_to(tmp_path / "target")
    with pytest.raises(FileExistsError):  # a link is not followed, even a dangling one
        files.open_new_private(folder / "link")
    with pytest.raises(files.FileError, match=r"key exists: choose another path or remove it"):
        files.create_output(str(folder / "key"))
    with pytest.raises(files.FileError, match=r"^cannot write .*: No such file or directory$"):
        files.create_output(str(tmp_path / "missing" / "out"))


def test_read_at_most_reads_one_byte_past_the_limit(tmp_path: Path) -> None:
    import os

    from deploytrack import files

    path = tmp_path / "data"
    path.write_bytes(b"x" * 100)
    assert files.read_at_most(path, 100) == b"x" * 100
    assert files.read_at_most(path, 10) == b"x" * 11  # over the limit: the caller can tell
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(files.NotAFile):  # refused before a read that would block
        files.read_at_most(tmp_path / "fifo", 10, regular_only=True)
    with pytest.raises(IsADirectoryError):
        files.read_at_most(tmp_path, 10)


def test_one_place_says_where_the_database_and_the_secrets_key_live(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from deploytrack import locations
    from deploytrack.cli import completion
    from deploytrack.crypto import secrets
    from deploytrack.services import doctor
    from deploytrack.store import resolve_path

    assert completion.database_path is locations.database_path
    default = locations.database_path(None)
    assert default.endswith("/deploytrack/deploytrack.db") and resolve_path(None) == default
    monkeypatch.setenv("DEPLOYTRACK_DB", "~/x.db")
    assert resolve_path(None) == locations.database_path(None) == str(Path.home() / "x.db")
    assert resolve_path("~/y.db") == str(Path.home() / "y.db")

    key = Path(locations.secrets_key_path())
    assert key.name == "secrets.key" and secrets.key_path() == key
    assert doctor.secrets_key_path() is None  # no key yet: nothing to check
    key.parent.mkdir(parents=True)
    key.write_text("")
    assert doctor.secrets_key_path() == key
    monkeypatch.setenv("DEPLOYTRACK_SECRETS_KEY_FILE", str(tmp_path / "elsewhere.key"))
    assert secrets.key_path() == doctor.secrets_key_path() == tmp_path / "elsewhere.key"


def test_a_fifo_material_is_refused_without_waiting_for_a_writer(
    entry_point: str, db_path: Path, tmp_path: Path
) -> None:
    import os
    import subprocess

    fifo = tmp_path / "sbom.json"
    os.mkfifo(fifo)
    argv = [entry_point, "--db", str(db_path), "attestation", "create", "--workflow", "release",
            "--project", "api", "--material", f"SBOM_CYCLONEDX_JSON={fifo}"]  # fmt: skip
    # Before the fix, open() waited for a writer that never comes: the timeout fires.
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"Error: SBOM_CYCLONEDX_JSON material {fifo} is not a regular file\n"


@pytest.mark.usefixtures("seeded")
def test_record_and_policy_check_say_the_same_of_a_digest_not_in_evidence(run: Invoke) -> None:
    import json

    absent = "sha256:" + "ab" * 32
    record = run("deployment", "record", *SLOT, "--kind", "CONTAINER_IMAGE", "--digest", absent)
    assert_refused(record)
    checked = run("policy", "check", "--logical-env", "production", "--digest", absent,
                  "-o", "json")  # fmt: skip
    assert checked.exit_code == 1
    reason = json.loads(checked.stdout)["reasons"][0]
    tail = "is not in the evidence store: import an attestation that names it first "
    tail += "('deploytrack attestation import FILE')"
    assert record.stderr == f"Error: {absent} {tail}\n"
    assert reason == f"it {tail}"
