"""The documentation a newcomer reads works as printed, and the CLI reference is current.

- docs/cli.md is what scripts/gen_cli_docs.py generates now, equals the real `--help` of
  every command, and does not depend on who generated it;
- the README's shell blocks run as printed on a fresh database, with the exit codes their
  comments state, and `make demo` runs exactly those commands;
- the README stays a five-minute page, every link into docs/ resolves, every docs page is
  linked, opens with a paragraph, and docs/architecture.md names every module.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
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


# --- README.md: its examples work as printed ----------------------------------------------


def _readme_sh_blocks() -> list[tuple[str, str]]:
    """(section heading, block) for every ```sh block of README.md."""
    blocks = []
    heading = ""
    lines = iter(README.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if line.startswith("## "):
            heading = line[3:].strip()
        elif line.startswith("```sh"):
            body = []
            for inner in lines:
                if inner.startswith("```"):
                    break
                body.append(inner)
            blocks.append((heading, "\n".join(body)))
    return blocks


def _commands(block: str) -> list[str]:
    """The commands of a block as written: comment lines dropped, continuations joined."""
    commands, current = [], []
    for line in block.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current.append(line)
        if not line.endswith("\\"):
            commands.append("\n".join(current))
            current = []
    assert not current, f"a README block ends inside a command: {current}"
    return commands


def _expected_exit(command: str) -> int:
    said = re.search(r"#\s*exit (\d+)", command.splitlines()[-1])
    return int(said.group(1)) if said else 0


def _runnable() -> list[str]:
    return [
        command
        for _, block in _readme_sh_blocks()
        if re.search(r"^\s*[^#\n]*\bdeploytrack\b", block, flags=re.M)
        for command in _commands(block)
    ]


def _user_env(tmp_path: Path) -> dict[str, str]:
    """A newcomer's shell: the installed CLI on PATH, nothing of deploytrack's set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYTRACK_")}
    env.pop("DB_PASSWORD", None)
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir(exist_ok=True)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp_path / "home"),
        XDG_DATA_HOME=str(tmp_path / "home" / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / "config"),
        TMPDIR=str(tmp_path / "tmp"),
    )
    return env


def test_every_readme_example_is_in_the_workflow_section() -> None:
    # `make demo` runs that section, and the README says so: a runnable block elsewhere
    # would go unchecked by the demo.
    sections = {
        heading
        for heading, block in _readme_sh_blocks()
        if re.search(r"^\s*[^#\n]*\bdeploytrack\b", block, flags=re.M)
    }
    assert sections == {WORKFLOW}


def test_readme_workflow_runs_as_printed_on_a_fresh_database(tmp_path: Path) -> None:
    commands = _runnable()
    assert len(commands) > 20
    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "demo", work / "demo")
    out = tmp_path / "out"
    out.mkdir()
    # One shell, as a user pastes the blocks into one terminal: what a command exports or
    # assigns, the next one sees. `-u`: an example must not use a variable it never sets.
    script = "".join(
        f'{{ {command}\n}} >"{out}/{i}.out" 2>"{out}/{i}.err"; echo $? >"{out}/{i}.rc"\n'
        for i, command in enumerate(commands)
    )
    env = _user_env(tmp_path)
    done = subprocess.run(
        ["sh", "-u", "-c", script], cwd=work, env=env, capture_output=True, text=True, check=False
    )
    for i, command in enumerate(commands):
        rc_file = out / f"{i}.rc"
        stderr = (out / f"{i}.err").read_text() if (out / f"{i}.err").exists() else done.stderr
        assert rc_file.exists(), f"the shell stopped at README command:\n{command}\n{stderr}"
        rc = int(rc_file.read_text())
        stdout = (out / f"{i}.out").read_text()
        expected = _expected_exit(command)
        assert rc == expected, (
            f"README command exited {rc}, the README says {expected}:\n{command}\n{stdout}{stderr}"
        )
        assert "Traceback" not in stdout + stderr
        # An unset variable (`sh -u` says so even inside a pipeline) or a warning: the
        # example does not work as printed.
        assert not re.search(r"parameter not set|unbound variable|warning", stderr, re.I), (
            f"README command:\n{command}\n{stderr}"
        )
        if READS.search(command) and not re.match(r"\w+=", command):
            assert stdout.strip(), f"README command prints nothing on a fresh database:\n{command}"
    assert done.returncode == 0, done.stderr
    # The database was a fresh one the README made, not a file of this checkout or the user.
    assert list((tmp_path / "tmp").glob("*/deploytrack.db"))
    assert sorted(p.name for p in work.iterdir()) == ["demo"]


def _demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`demo/run.py --report tmp_path/out/demo-report.html ARGS` as `make demo` runs it;
    its output, once it ran every README command in order (but the one choosing the
    database, which `--backend postgresql` replaces) and wrote its report."""
    report = tmp_path / "out" / "demo-report.html"
    done = subprocess.run(
        [sys.executable, str(ROOT / "demo" / "run.py"), "--report", str(report), *args],
        cwd=ROOT,
        env=env or _user_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    position = 0
    for command in _runnable():
        if args and command.startswith("export DEPLOYTRACK_DB="):
            continue
        found = done.stdout.find(f"\n$ {command}\n", position)
        assert found >= 0, f"make demo does not run this README command (in order):\n{command}"
        position = found + 1
    # It ends by writing the report of its database, which outlives it, and says where.
    assert (
        f'\n$ deploytrack report --output "$DEMO_REPORT" --since "$DEMO_START"\nWrote {report} ('
        in done.stdout
    )
    assert done.stdout.endswith(f"The demo's report: {report}\n")
    page = report.read_text(encoding="utf-8")
    assert "api-server (CONTAINER_IMAGE) in k8s-prod/production" in page
    return done.stdout


def test_make_demo_runs_the_readme_commands(tmp_path: Path) -> None:
    _demo(tmp_path)
    # Its database and secrets key went with its temporary folder.
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "home" / "config" / "deploytrack").exists()


def test_make_demo_db_postgresql_runs_the_readme_commands_on_a_throwaway_server(
    tmp_path: Path,
) -> None:
    env = _user_env(tmp_path)
    # The server's folder is made in TMPDIR, and run as root its files belong to the
    # `postgres` user, who must reach them: a folder of its own under /tmp, not tmp_path.
    tmp = Path(tempfile.mkdtemp(prefix="deploytrack-demo-test-"))
    tmp.chmod(0o755)
    try:
        out = _demo(tmp_path, "--backend", "postgresql", env={**env, "TMPDIR": str(tmp)})
        chosen = re.findall(r"^\$ export DEPLOYTRACK_DB=(\S+)$", out, flags=re.M)
        assert chosen and all(url.startswith("postgresql://") for url in chosen), chosen
        assert (
            out.index(f"$ export DEPLOYTRACK_DB={chosen[0]}\n")
            < out.index("\n$ deploytrack db migrate\nApplied ")
            < out.index("\n$ deploytrack attestation import ")
        )
        port = int(chosen[0].rsplit(":", 1)[1].split("/")[0])
        # The server was stopped and its files removed, the demo's own with them.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert list(tmp.iterdir()) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert not list((tmp_path / "home").rglob("deploytrack.db"))


def test_readme_set_up_and_development_blocks_name_what_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    checked = 0
    for _, block in _readme_sh_blocks():
        if re.search(r"^\s*[^#\n]*\bdeploytrack\b", block, flags=re.M):
            continue
        for command in _commands(block):
            words = command.split("#", 1)[0].split()
            if words[0] == "make":
                assert re.search(rf"^{re.escape(words[1])}:", makefile, flags=re.M), command
            else:
                assert words[0] in {"python", "python3"}, command
                assert (ROOT / words[1]).is_file(), command
            checked += 1
    assert checked >= 4


def test_readme_is_a_five_minute_page() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 300
    headings = re.findall(r"^## (.*)$", _without_fences(text), flags=re.M)
    # The two set-up commands come first, then the workflow.
    assert headings[:2] == ["Set up on a fresh machine", WORKFLOW]
    first_block = _readme_sh_blocks()[0][1]
    assert [c.split("#")[0].strip() for c in _commands(first_block)] == ["make demo", "make test"]


# --- links and pages ------------------------------------------------------------------


def _slug(heading: str) -> str:
    # GitHub's anchors: lowercase; spaces become '-'; other punctuation but '-' and '_' goes.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _without_fences(page.read_text(encoding="utf-8"))
    return {_slug(h) for h in re.findall(r"^#{1,6} (.*)$", text, flags=re.M)}


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_every_relative_link_resolves() -> None:
    for page in [README, *_pages()]:
        text = _without_fences(page.read_text(encoding="utf-8"))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            assert resolved.exists(), f"{page.name}: broken link {target}"
            if fragment:
                assert fragment in _anchors(resolved), f"{page.name}: no heading for {target}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = set(re.findall(r"\]\(docs/([^)#]+\.md)", README.read_text(encoding="utf-8")))
    assert {page.name for page in _pages()} <= linked


def test_every_docs_page_opens_with_a_paragraph_saying_what_it_covers() -> None:
    for page in _pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("# "), page.name
        assert lines[1] == "", page.name
        opening = []
        for line in lines[2:]:
            if not line.strip():
                break
            opening.append(line)
        first = opening[0] if opening else ""
        assert first and not re.match(r"(```|\||- |\* |#|>|\d+\. |\s)", first), (
            f"{page.name} must open with a paragraph saying what it covers, not {first!r}"
        )


def test_no_cross_reference_points_at_a_section_of_another_page() -> None:
    # The docs were one README once: "the next section" now means another page.
    stale = re.compile(r"\b(the next section|the previous section|see below|see above)\b", re.I)
    for page in [README, *_pages()]:
        found = stale.findall(page.read_text(encoding="utf-8"))
        assert not found, f"{page.name}: {found}: link the page instead"


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.name == "__init__.py" and relative.parent != Path("."):
            names.append(f"{relative.parent.as_posix()}/")
        else:
            names.append(relative.as_posix())
    return names


def test_architecture_names_every_module() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    missing = [name for name in _modules() if f"| `{name}` |" not in text]
    assert not missing, f"docs/architecture.md does not name these modules: {missing}"
    # ...and names no module that is gone.
    table = re.findall(r"^\| `([^`]+)` \|", text, flags=re.M)
    assert sorted(table) == sorted(_modules())


def test_architecture_defines_the_vocabulary() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    section = text.split("\n## Vocabulary\n", 1)[1].split("\n## ", 1)[0]
    defined = {term.lower() for term in re.findall(r"\*\*([^*]+)\*\*", section)}
    terms = {
        "environment", "logical environment", "slot", "kind", "deployment record", "record",
        "evidence store", "attestation", "digest", "heartbeat", "supersede", "decommission",
        "promote", "rollback", "stage policy", "admission", "variable", "secret", "key",
    }  # fmt: skip
    assert terms <= defined, terms - defined
    # One entry per word, each with its spelling in code.
    entries = re.findall(r"^- (.*?)(?=^- |\Z)", section, flags=re.M | re.S)
    assert len(entries) == len(terms) - 1  # "record" shares the entry of "deployment record"
    assert all(" Code: " in " ".join(entry.split()) for entry in entries), entries


# --- one word per concept ---------------------------------------------------------------------

# "stage" alone, for what people read as "logical environment"; "stage policy" is the name
# of a feature (see the vocabulary), and code spells the word `stage` where it must.
STAGE_ALONE = re.compile(r"\bstages?\b(?!\s+polic)", re.IGNORECASE)


def _prose(markdown: str) -> str:
    """The text people read: no fenced blocks, code spans or quoted words."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return re.sub(r"`[^`]*`|\"[^\"\n]*\"", "", text)


def test_pages_and_help_say_logical_environment_not_stage() -> None:
    # docs/cli.md is the help of every command (test_cli_reference_is_current).
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    found = [
        f"{page.relative_to(ROOT)}: ...{match.string[match.start() - 40 : match.end()]!r}"
        for page in pages
        for match in STAGE_ALONE.finditer(_prose(page.read_text(encoding="utf-8")))
    ]
    assert not found, found


def test_messages_and_comments_say_logical_environment_not_stage() -> None:
    found = []
    for path in sorted((ROOT / "deploytrack").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        texts = [
            (node.lineno, node.value)
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        texts += [
            (number, line.split("#", 1)[1])
            for number, line in enumerate(source.splitlines(), 1)
            if "#" in line
        ]
        found += [f"{path.name}:{n}: {t.strip()}" for n, t in texts if STAGE_ALONE.search(t)]
    assert not found, found


def test_comments_say_what_a_feature_is_not_its_issue_number() -> None:
    number = re.compile(r"\bissues? [0-9]", re.IGNORECASE)
    files = [ROOT / "README.md", *DOCS.glob("*.md")]
    for folder in ("deploytrack", "tests", "scripts", "bench", "demo"):
        files += (ROOT / folder).rglob("*.py")
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted(files)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if number.search(line)
    ]
    assert not found, found
