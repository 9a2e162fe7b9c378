"""Shell completion: names come from the database the command would use, read
only, through the installed entry point exactly as bash calls it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import NGINX_FULL, NGINX_GIT, Invoke, Record

from deploytrack.cli import cli
from deploytrack.cli.completion import database_path
from deploytrack.store import resolve_path

# Completion reads an SQLite file directly (no store, no driver: it runs on every Tab); on a
# PostgreSQL URL it offers nothing, which test_a_postgresql_url_completes_nothing shows.
pytestmark = pytest.mark.sqlite_only(reason="completion reads SQLite files only")


def complete(
    entry_point: str, words: str, env: dict[str, str] | None = None, *, python: bool = False
) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """What bash gets for the last word of `words` (a trailing space starts a new word)."""
    split = words.split(" ")
    argv = [sys.executable, "-X", "importtime", "-m", "deploytrack"] if python else [entry_point]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            **(env or {}),
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(split) - 1),
            "_DEPLOYTRACK_COMPLETE": "bash_complete",
        },
    )
    assert done.returncode == 0, done.stderr
    return [line.partition(",")[2] for line in done.stdout.splitlines() if line], done


@pytest.fixture
def estate(seeded: None, ok: Invoke, record: Record, db_path: Path) -> Path:
    ok("environment", "create", "--name", "k8s-prod")
    ok("environment", "create", "--name", "k8s-staging")
    ok("logical-environment", "create", "--name", "canary")
    record(NGINX_FULL, name="api")
    record(NGINX_GIT, name="api-gateway", stage="staging")
    record(NGINX_FULL, name="worker", kind="HELM_CHART")
    return db_path


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("deploytrack deployment record --env k8s", ["k8s-prod", "k8s-staging"]),
        ("deploytrack deployment list --env ", ["cluster", "k8s-prod", "k8s-staging"]),
        ("deploytrack status --logical-env ", ["canary", "development", "production", "staging"]),
        ("deploytrack deployment list --deployment-name api", ["api", "api-gateway"]),
        ("deploytrack deployment rollback --deployment-name w", ["worker"]),
        ("deploytrack deployment diff --to-logical-env p", ["production"]),
        ("deploytrack deployment promote --to-env k8s-p", ["k8s-prod"]),
        ("deploytrack environment describe --name c", ["cluster"]),
        ("deploytrack logical-environment policy show --name ca", ["canary"]),
        ("deploytrack variable list --env k", ["k8s-prod", "k8s-staging"]),
        ("deploytrack deployment list --kind h", ["HELM_CHART"]),
        ("deploytrack environment create --name e --type K", ["kubernetes"]),
        ("deploytrack deployment record --env nothing-like-it", []),
    ],
)
def test_names_are_completed_from_the_database(
    entry_point: str, estate: Path, words: str, expected: list[str]
) -> None:
    got, _ = complete(entry_point, words, {"DEPLOYTRACK_DB": str(estate)})
    assert got == expected


def test_the_db_option_wins_over_the_variable(
    entry_point: str, estate: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    words = f"deploytrack --db {estate} deployment record --env k8s"
    got, _ = complete(entry_point, words, {"DEPLOYTRACK_DB": str(other)})
    assert got == ["k8s-prod", "k8s-staging"]
    assert not other.exists()


def test_the_default_database_is_the_one_commands_use(entry_point: str, tmp_path: Path) -> None:
    # completion.database_path restates store.resolve_path without importing peewee.
    default = Path(resolve_path(None))
    for explicit in (None, str(tmp_path / "x.db"), "~/y.db"):
        assert database_path(explicit) == resolve_path(explicit)

    assert CliRunner().invoke(cli, ["environment", "create", "--name", "home-env"]).exit_code == 0
    assert default.exists()
    got, _ = complete(entry_point, "deploytrack status --env h")
    assert got == ["home-env"]


def test_a_missing_database_completes_nothing_and_stays_missing(
    entry_point: str, tmp_path: Path
) -> None:
    missing = tmp_path / "missing" / "none.db"
    got, done = complete(
        entry_point, "deploytrack deployment list --env ", {"DEPLOYTRACK_DB": str(missing)}
    )
    assert got == [] and done.stderr == ""
    assert not missing.parent.exists()


def test_a_postgresql_url_completes_nothing(entry_point: str, pg_migrated: str) -> None:
    """Completion does not connect to a server on every Tab: names are not offered, fixed
    choices still are, and nothing is printed."""
    ok = CliRunner().invoke(cli, ["--db", pg_migrated, "environment", "create", "--name", "k8s"])
    assert ok.exit_code == 0, ok.stderr
    env = {"DEPLOYTRACK_DB": pg_migrated}
    got, done = complete(entry_point, "deploytrack deployment list --env ", env)
    assert got == [] and done.stderr == ""
    got, done = complete(entry_point, "deploytrack deployment list --kind h", env)
    assert got == ["HELM_CHART"] and done.stderr == ""


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100], ids=["empty", "junk"])
def test_a_file_that_is_not_a_deploytrack_database_completes_nothing(
    entry_point: str, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "other.db"
    path.write_bytes(content)
    got, done = complete(
        entry_point, "deploytrack deployment list --env ", {"DEPLOYTRACK_DB": str(path)}
    )
    assert got == [] and done.stderr == ""
    assert path.read_bytes() == content


def test_completion_changes_nothing_on_disk(entry_point: str, estate: Path) -> None:
    before = {p.name: p.read_bytes() for p in estate.parent.iterdir() if p.is_file()}
    got, _ = complete(entry_point, "deploytrack status --env ", {"DEPLOYTRACK_DB": str(estate)})
    assert got
    after = {p.name: p.read_bytes() for p in estate.parent.iterdir() if p.is_file()}
    assert after == before  # not even an empty -wal or -shm beside it


def test_names_still_in_the_wal_of_an_open_database_are_completed(
    entry_point: str, estate: Path, ok: Invoke
) -> None:
    holder = sqlite3.connect(estate)  # keeps the WAL from being checkpointed away
    try:
        holder.execute("SELECT count(*) FROM environment").fetchall()
        ok("environment", "create", "--name", "k8s-fresh")
        assert Path(f"{estate}-wal").exists()
        got, _ = complete(
            entry_point, "deploytrack status --env k8s-f", {"DEPLOYTRACK_DB": str(estate)}
        )
        assert got == ["k8s-fresh"]
    finally:
        holder.close()


def test_completion_imports_no_store(entry_point: str, estate: Path) -> None:
    got, done = complete(
        entry_point,
        "deploytrack deployment record --env k8s",
        {"DEPLOYTRACK_DB": str(estate)},
        python=True,
    )
    assert got == ["k8s-prod", "k8s-staging"]
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "sqlite3" in modules
    assert not {"peewee", "deploytrack.store", "deploytrack.services.deployments"} & modules


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_documented_source_lines_work(entry_point: str, shell: str) -> None:
    done = subprocess.run(
        [entry_point],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "_DEPLOYTRACK_COMPLETE": f"{shell}_source"},
    )
    assert done.returncode == 0, done.stderr
    assert "_DEPLOYTRACK_COMPLETE" in done.stdout
    docs = (Path(__file__).parent.parent / "docs" / "completion.md").read_text()
    assert f"_DEPLOYTRACK_COMPLETE={shell}_source deploytrack" in docs


def test_bash_completes_through_the_documented_line(entry_point: str, estate: Path) -> None:
    script = (
        'eval "$(_DEPLOYTRACK_COMPLETE=bash_source deploytrack)"\n'
        "COMP_WORDS=(deploytrack deployment record --env k8s); COMP_CWORD=4\n"
        "_deploytrack_completion deploytrack\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    path = f"{Path(entry_point).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": path, "DEPLOYTRACK_DB": str(estate)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["k8s-prod", "k8s-staging"]
