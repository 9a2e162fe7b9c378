"""The CLI reference is current.

- docs/cli.md is what scripts/gen_cli_docs.py generates now, equals the real `--help` of
  every command, and does not depend on who generated it.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import platformdirs
import pytest
from click.testing import CliRunner

from deploytrack.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CLI_MD = DOCS / "cli.md"
PACKAGE = ROOT / "deploytrack"
WORKFLOW = "The typical workflow"
# Commands that only read: on the README's fresh database each must print something, or
# the example shows nothing (a time before anything was recorded, a filter matching none).
READS = re.compile(r"\bdeploytrack\b.*\b(list|describe|status|diff|resolve|history|doctor)\b")


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    return _load(ROOT / "scripts" / "gen_cli_docs.py")


def _without_fences(text: str) -> str:
    return re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S)


def _cli_sections(text: str) -> dict[str, str]:
    """docs/cli.md: command path -> the help in its fenced block."""
    found = re.findall(r"^## (deploytrack[^\n]*)\n\n```\n(.*?)\n```$", text, flags=re.M | re.S)
    return dict(found)


# --- docs/cli.md ------------------------------------------------------------------------


def test_cli_reference_is_current(gen: ModuleType) -> None:
    expected = gen.render()
    current = CLI_MD.read_text(encoding="utf-8") if CLI_MD.exists() else ""
    if current != expected:
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            "docs/cli.md (committed)",
            "docs/cli.md (generated now)",
            n=1,
        )
        pytest.fail("docs/cli.md is stale: run `make docs`\n" + "".join(list(diff)[:60]))


def test_cli_reference_is_the_real_help_of_every_command(gen: ModuleType) -> None:
    sections = _cli_sections(gen.render())
    runner = CliRunner()
    for path, text in sections.items():
        args = [*path.split()[1:], "--help"]
        result = runner.invoke(cli, args, prog_name="deploytrack", terminal_width=gen.WIDTH)
        assert result.exit_code == 0, (path, result.output)
        assert result.output.rstrip("\n") == text, path


def test_cli_reference_has_every_command_every_group_lists(gen: ModuleType) -> None:
    # Read from the help itself, not from the walk that generated it: a group whose
    # subcommands the generator missed (a lazy one, a nested one) fails here.
    sections = _cli_sections(gen.render())
    listed = {"deploytrack"}
    for path, text in sections.items():
        if "\nCommands:\n" in text:
            block = text.split("\nCommands:\n", 1)[1]
            names = re.findall(r"^  ([a-z][a-z0-9-]*)(?:\s|$)", block, flags=re.M)
            assert names, path
            listed |= {f"{path} {name}" for name in names}
    assert set(sections) == listed
    # Lazy top-level commands, and a group nested in a lazy group, are there.
    assert {"deploytrack deployment record", "deploytrack logical-environment policy set"} <= listed
    assert next(iter(sections)) == "deploytrack"


def test_cli_reference_does_not_depend_on_who_generates_it(gen: ModuleType, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "never.db"
    env = {
        **os.environ,
        "COLUMNS": "43",
        "LINES": "10",
        "TERM": "dumb",
        "HOME": str(tmp_path / "another-home"),
        "XDG_DATA_HOME": str(tmp_path / "another-data"),
        "XDG_CONFIG_HOME": str(tmp_path / "another-config"),
        "DEPLOYTRACK_DB": str(db),
        "DEPLOYTRACK_REGISTRY_SERVER": "registry.example.com",
        "DEPLOYTRACK_REGISTRY_USERNAME": "someone",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli_docs.py"), "--stdout"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    here = gen.render()
    assert done.stdout == here
    # No machine-specific path (the default database's folder, a home, a temp dir) in it,
    # and rendering help opened no database.
    for path in (str(tmp_path), platformdirs.user_data_dir("deploytrack"), str(Path.home())):
        assert path not in here
    assert not db.exists()


def test_gen_cli_docs_check_fails_on_a_stale_file(gen: ModuleType, tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(gen.render().replace("Usage:", "Usage (old):", 1), encoding="utf-8")
    original = gen.TARGET
    gen.TARGET, gen.ROOT = stale, tmp_path
    try:
        assert gen.main(["--check"]) == 1
        assert gen.main([]) == 0  # regenerates it
        assert gen.main(["--check"]) == 0
    finally:
        gen.TARGET, gen.ROOT = original, ROOT
    assert stale.read_text(encoding="utf-8") == gen.render()
