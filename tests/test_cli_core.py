"""CLI core: usage errors, parameter types and bounds, exit codes, closed pipes,
bare groups. Rules that apply to every command are checked on the whole click tree,
enumerated, so a command added later is covered without editing this file."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import NGINX_FULL, Invoke, Record, assert_refused, attestation, query, untouched
from helpers import sha256_digest, slot_args

from deploytrack.cli import cli
from deploytrack.cli.lazy import Command, LazyGroup
from deploytrack.cli.params import MAX_ID, Choice, NameType, SecretText

# --- the click tree -----------------------------------------------------------------------


def walk(
    command: click.Command = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every group and command under `command`, with its path of names (imports them all)."""
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1] if path else "deploytrack")
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, (path, name)
            yield from walk(sub, (*path, name))


TREE = list(walk())
GROUPS = [path for path, command in TREE if isinstance(command, click.Group)]
COMMANDS = [(path, command) for path, command in TREE if not isinstance(command, click.Group)]


def _ids(paths: list[tuple[str, ...]]) -> list[str]:
    return [" ".join(p) or "deploytrack" for p in paths]


def test_the_tree_is_complete() -> None:
    # A guard on walk() itself: a tree that lost its lazily imported commands would make
    # every tree-wide test below pass vacuously.
    names = {" ".join(path) for path, _ in TREE}
    for expected in ("deployment record", "deployment rollback", "variable set", "status"):
        assert expected in names
    assert len(COMMANDS) > 30


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=_ids([p for p, _ in COMMANDS]))
def test_every_command_is_a_deploytrack_command(
    path: tuple[str, ...], command: click.Command
) -> None:
    # Command keeps typed values out of usage errors; LazyGroup gives its commands that class.
    assert isinstance(command, Command), f"{path}: add cls=Command"


@pytest.mark.parametrize("path", GROUPS, ids=_ids(GROUPS))
def test_every_group_is_a_lazy_group(path: tuple[str, ...]) -> None:
    command = dict(TREE)[path]
    assert isinstance(command, LazyGroup), f"{path}: add cls=LazyGroup"


# --- 1. --db '' -------------------------------------------------------------------------


def test_an_empty_db_option_is_a_usage_error(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", "", "environment", "create", "--name", "x"])
    assert_refused(result, code=2, contains="--db")
    assert "empty" in result.stderr
    assert not (tmp_path / "home").exists()  # no default database was created either


def test_an_empty_deploytrack_db_variable_means_unset(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["environment", "create", "--name", "x"], env={"DEPLOYTRACK_DB": ""}
    )
    assert result.exit_code == 0, result.stderr
    default = Path(os.environ["XDG_DATA_HOME"]) / "deploytrack" / "deploytrack.db"
    assert query(default, "SELECT name FROM environment") == [{"name": "x"}]


# --- 2. usage errors never repeat what was typed ------------------------------------------

SECRET = "s3cret-Hunter2"


def _nothing_repeated(result: click.testing.Result) -> None:
    assert SECRET not in result.output
    assert SECRET not in result.stderr


def test_extra_arguments_are_counted_never_repeated(run: Invoke, db_path: Path) -> None:
    result = run(
        "variable", "set", "TOKEN", SECRET, SECRET, "--secret", "--logical-env", "production"
    )
    assert_refused(result, code=2, contains="1 unexpected extra argument after KEY VALUE")
    _nothing_repeated(result)
    result = run("variable", "set", "TOKEN", SECRET, "a", SECRET, "--logical-env", "production")
    assert_refused(result, code=2, contains="2 unexpected extra arguments after KEY VALUE")
    _nothing_repeated(result)
    assert untouched(db_path) or not query(db_path, "SELECT * FROM variable_event")


def test_an_extra_argument_of_a_command_without_arguments(run: Invoke) -> None:
    result = run("deployment", "list", SECRET)
    assert_refused(result, code=2, contains="1 unexpected argument: this command takes options")
    _nothing_repeated(result)


def test_a_value_that_looks_like_an_option_is_not_repeated(run: Invoke) -> None:
    result = run("variable", "set", "TOKEN", "--" + SECRET, "--logical-env", "production")
    assert_refused(result, code=2, contains="then '--'")
    _nothing_repeated(result)
    # ...and the way the message points to works:
    done = run("variable", "set", "--logical-env", "production", "--", "TOKEN", "--" + SECRET)
    assert done.exit_code == 0, done.stderr
    listed = run("variable", "list", "--logical-env", "production", "-o", "json")
    assert '"value": "--' + SECRET + '"' in listed.stdout


def test_a_mistyped_option_of_other_commands_is_still_named(run: Invoke) -> None:
    result = run("deployment", "list", "--histroy")
    assert_refused(result, code=2, contains="--histroy")


def test_secret_bearing_parameters_are_marked() -> None:
    # The mark is what keeps their commands' usage errors quiet; these are the parameters
    # that carry secrets or values today.
    params = {(" ".join(path), p.name): p for path, command in COMMANDS for p in command.params}
    assert isinstance(params["variable set", "value"].type, SecretText)
    assert isinstance(params["deployment record", "registry_password"].type, SecretText)


# --- 3. integers have bounds --------------------------------------------------------------

INT_PARAMS = [
    (path, param)
    for path, command in TREE
    for param in command.params
    if isinstance(param.type, click.types.IntParamType)
]


def test_integer_parameters_exist() -> None:
    names = {(" ".join(path), p.name) for path, p in INT_PARAMS}
    assert {("deployment describe", "deployment_id"), ("deployment list", "limit")} <= names
    assert ("deployment rollback", "to_id") in names


@pytest.mark.parametrize(
    ("path", "param"),
    INT_PARAMS,
    ids=[f"{' '.join(path)} {param.name}" for path, param in INT_PARAMS],
)
def test_every_integer_parameter_is_bounded(path: tuple[str, ...], param: click.Parameter) -> None:
    assert isinstance(param.type, click.IntRange), f"{path} {param.name}: give it bounds"
    assert param.type.min is not None and param.type.min >= 0
    assert param.type.max is not None and param.type.max <= MAX_ID
    ctx = click.Context(dict(TREE)[path])
    for huge in (str(2**63), "1" + "0" * 30, str(-(2**63) - 1)):
        with pytest.raises(click.BadParameter):
            param.type.convert(huge, param, ctx)


@pytest.mark.parametrize(
    "args",
    [
        ("deployment", "describe", str(2**63)),
        ("deployment", "describe", "1" + "0" * 30),
        ("deployment", "list", "--limit", "1" + "0" * 30),
        ("deployment", "list", "--limit", "0"),
        (
            *slot_args("rollback", "cluster", "production", "api"),
            "--to",
            "1" + "0" * 30,
        ),
    ],
    ids=["id 2^63", "id 10^30", "limit 10^30", "limit 0", "rollback --to 10^30"],
)
def test_huge_integers_are_usage_errors(run: Invoke, seeded: None, args: tuple[str, ...]) -> None:
    assert_refused(run(*args), code=2, contains="range")


def test_the_largest_id_reaches_the_database(run: Invoke, seeded: None) -> None:
    result = run("deployment", "describe", str(MAX_ID))
    assert_refused(result, code=1, contains="no deployment record")


# --- 4. a closed stdout: exit 141, silently -----------------------------------------------


def _closed_reader_run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run with stdout a pipe whose reader is gone before the process starts."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(argv, stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)


def _quiet_141(done: subprocess.CompletedProcess[bytes] | subprocess.Popen[bytes], err: bytes):
    assert done.returncode == 141, (done.returncode, err)
    assert err == b"", err  # no "Exception ignored", no traceback, no Error line


def test_a_write_whose_reader_is_gone_exits_141_and_is_kept(
    entry_point: str, tmp_path: Path
) -> None:
    db = tmp_path / "pipe.db"
    argv = [entry_point, "--db", str(db)]
    done = _closed_reader_run([*argv, "environment", "create", "--name", "e"])
    _quiet_141(done, done.stderr)
    assert query(db, "SELECT name FROM environment") == [{"name": "e"}]
    # A second write, and JSON output (written through emit(), not click.echo):
    done = _closed_reader_run(
        [*argv, "logical-environment", "create", "--name", "qa", "-o", "json"]
    )
    _quiet_141(done, done.stderr)
    assert query(db, "SELECT name FROM logical_environment WHERE name = 'qa'") == [{"name": "qa"}]


@pytest.mark.parametrize(
    "args",
    [("environment", "list"), ("--help",), (), ("deployment",), ("doctor", "-o", "json")],
    ids=["list", "help", "bare", "bare group", "doctor json"],
)
def test_a_read_whose_reader_is_gone_exits_141(
    entry_point: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    db = tmp_path / "pipe.db"
    subprocess.run([entry_point, "--db", str(db), "environment", "create", "--name", "e"],
                   check=True, capture_output=True)  # fmt: skip
    done = _closed_reader_run([entry_point, "--db", str(db), *args] if args else [entry_point])
    _quiet_141(done, done.stderr)


def _reader_leaves_half_way(argv: list[str], unbuffered: str, size: int) -> bytes:
    """Run `argv` into a 4 KB pipe, read `size` bytes, leave; it must exit 141 quietly.

    Returns what was read. The pipe is smaller than the output, so the writer blocks until
    the reader leaves; one small os.read (not a buffered reader, which would drain the pipe).
    """
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen(
        argv,
        stdout=write_end,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
    )
    os.close(write_end)
    head = os.read(read_end, size)
    os.close(read_end)
    assert proc.stderr is not None
    proc.wait(timeout=60)
    _quiet_141(proc, proc.stderr.read())
    return head


@pytest.mark.parametrize("output", ["json", "table"])
@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["PYTHONUNBUFFERED", "buffered"])
def test_a_reader_that_leaves_half_way_exits_141(
    entry_point: str, seeded: None, record: Record, db_path: Path, unbuffered: str, output: str
) -> None:
    for index in range(80):  # ~32 KB of JSON, ~11 KB of table
        record(NGINX_FULL, name=f"svc-{index}")
    argv = [entry_point, "--db", str(db_path), "deployment", "list", "-o", output]
    head = _reader_leaves_half_way(argv, unbuffered, 16)
    assert head.startswith(b"[" if output == "json" else b"ID")


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["PYTHONUNBUFFERED", "buffered"])
def test_a_download_whose_reader_leaves_half_way_exits_141(
    entry_point: str, ok: Invoke, db_path: Path, unbuffered: str
) -> None:
    bundle = attestation("chainloop-slsa_provenance.sigstore.json")  # 12 KB
    ok("attestation", "import", str(bundle))
    digest = sha256_digest(bundle.read_bytes())
    argv = [entry_point, "--db", str(db_path), "artifact", "download", "--digest", digest]
    assert _reader_leaves_half_way(argv, unbuffered, 1) == b"{"


def test_a_broken_pipe_that_is_not_stdout_is_an_internal_error() -> None:
    # Only a reader that went away means 141: any other broken pipe (a socket) is a failure
    # worth reporting, not a silent success.
    from deploytrack.cli import DeploytrackGroup

    group = DeploytrackGroup("probe")

    @group.command("talk")
    def talk() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    result = CliRunner().invoke(group, ["talk"])
    assert_refused(result, code=1, contains="internal error (BrokenPipeError")


def _blocked_reading(pid: int) -> bool:
    try:
        return "pipe" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def test_ctrl_c_exits_130_with_one_line(entry_point: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [entry_point, "--db", str(tmp_path / "i.db"), "attestation", "import", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not _blocked_reading(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.decode().splitlines() == ["Error: interrupted"]
    assert out == b""


# --- 5. a bare group shows its help -------------------------------------------------------


@pytest.mark.parametrize("path", GROUPS, ids=_ids(GROUPS))
def test_a_bare_group_prints_its_help_on_stdout(path: tuple[str, ...], db_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(db_path), *path] if path else [])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Usage: ")
    assert "Commands:" in lines
    assert len(lines) > 6  # the usual layout, not one squashed line
    assert untouched(db_path)


def test_a_bare_group_through_the_entry_point(entry_point: str) -> None:
    done = subprocess.run([entry_point, "variable"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("Usage: deploytrack variable [OPTIONS] COMMAND [ARGS]...\n")


# --- 6. one spelling per value; malformed values are usage errors -------------------------

# (flag, type) for every option whose values have one spelling or one rule; the commands
# that take such a flag for something else are listed with it.
TYPED_FLAGS = {
    "--env": "environment",
    "--to-env": "environment",
    "--from-env": "environment",
    "--logical-env": "logical_environment",
    "--from-logical-env": "logical_environment",
    "--to-logical-env": "logical_environment",
    "--deployment-name": "deployment_slot",
}
NAME_OPTIONS = [
    (path, param)
    for path, command in COMMANDS
    for param in command.params
    if isinstance(param, click.Option) and set(param.opts) & set(TYPED_FLAGS)
]


@pytest.mark.parametrize(
    ("path", "param"),
    NAME_OPTIONS,
    ids=[f"{' '.join(path)} {param.opts[0]}" for path, param in NAME_OPTIONS],
)
def test_every_name_option_is_typed(path: tuple[str, ...], param: click.Option) -> None:
    assert isinstance(param.type, NameType), f"{path} {param.opts}"
    assert param.type.table == TYPED_FLAGS[param.opts[0]]


CHOICE_FLAGS = {"--type", "--status"}


def test_every_choice_option_has_one_spelling() -> None:
    found = 0
    for path, command in COMMANDS:
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            # discover --kind is an evidence material kind: free text, not an artifact kind
            flag = param.opts[0]
            if (flag == "--kind" and path != ("discover",)) or flag in CHOICE_FLAGS:
                assert isinstance(param.type, Choice), (path, param.opts)
                found += 1
    assert found >= 8


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("deployment", "record", "--help"), "--kind [CONTAINER_IMAGE|HELM_CHART]"),
        (("deployment", "record", "--help"), "--status [deployed|decommissioned]"),
        (("environment", "create", "--help"), "--type [kubernetes|ecs|server|lambda|custom]"),
    ],
)
def test_help_shows_the_canonical_spelling(run: Invoke, args: tuple[str, ...], shown: str) -> None:
    assert shown in " ".join(run(*args).stdout.split())


def test_any_case_is_accepted_and_stored_canonically(
    ok: Invoke, db_path: Path, seeded: None
) -> None:
    ok("environment", "create", "--name", "edge", "--type", "KUBERNETES")
    ok("environment", "update", "--name", "edge", "--type", "Ecs")
    assert query(db_path, "SELECT type FROM environment WHERE name = 'edge'") == [{"type": "ecs"}]
    ok("deployment", "record", "--env", "cluster", "--logical-env", "production",
       "--deployment-name", "api", "--kind", "Helm_Chart", "--digest", NGINX_FULL,
       "--status", "DEPLOYED")  # fmt: skip
    assert query(db_path, "SELECT kind, status FROM deployment") == [
        {"kind": "HELM_CHART", "status": "deployed"}
    ]


def test_an_unknown_choice_names_the_canonical_spellings(run: Invoke) -> None:
    result = run("deployment", "list", "--kind", "jar")
    assert_refused(result, code=2, contains="'CONTAINER_IMAGE', 'HELM_CHART'")


RECORD = ("deployment", "record", "--kind", "CONTAINER_IMAGE")
SLOT = {"--env": "cluster", "--logical-env": "production", "--deployment-name": "api"}


def _record(**changes: str) -> tuple[str, ...]:
    given = {**SLOT, "--digest": NGINX_FULL, **changes}
    return (*RECORD, *(item for pair in given.items() for item in pair))


MALFORMED = [
    (_record(**{"--env": "Cluster"}), "--env"),
    (_record(**{"--logical-env": "prod_eu"}), "--logical-env"),
    (_record(**{"--deployment-name": "-api"}), "--deployment-name"),
    (_record(**{"--digest": "sha256:abc"}), "--digest"),
    (("deployment", "list", "--env", "a.b"), "--env"),
    (("deployment", "list", "--deployment-name", "a b"), "--deployment-name"),
    (("deployment", "list", "--at", "yesterday"), "--at"),
    (("deployment", "diff", "--from-env", "UPPER"), "--from-env"),
    (
        (
            "deployment",
            "promote",
            "--env",
            "cluster",
            "--deployment-name",
            "api",
            "--kind",
            "CONTAINER_IMAGE",
            "--from-logical-env",
            "staging",
            "--to-logical-env",
            "Prod",
        ),
        "--to-logical-env",
    ),
    (("status", "--stale-after", "soon"), "--stale-after"),
    (("status", "--logical-env", ""), "--logical-env"),
    (("environment", "create", "--name", "a_b"), "--name"),
    (("environment", "create", "--name", "e", "--type", "vm"), "--type"),
    (("logical-environment", "describe", "--name", "x" * 64), "--name"),
    (("logical-environment", "policy", "show", "--name", "Prod"), "--name"),
    (("variable", "list", "--logical-env", "production", "--env", "e e"), "--env"),
    (("policy", "check", "--logical-env", "production", "--digest", "md5:00"), "--digest"),
]


@pytest.mark.parametrize(("args", "flag"), MALFORMED, ids=[" ".join(a) for a, _ in MALFORMED])
def test_malformed_values_are_usage_errors(
    refuse: Invoke, seeded: None, args: tuple[str, ...], flag: str
) -> None:
    refuse(*args, code=2, contains=f"'{flag}'")


UNKNOWN = [
    _record(**{"--env": "nowhere"}),
    _record(**{"--logical-env": "nowhen"}),
    ("deployment", "list", "--env", "nowhere"),
    ("status", "--logical-env", "nowhen"),
    ("environment", "describe", "--name", "nowhere"),
    ("logical-environment", "policy", "show", "--name", "nowhen"),
    ("variable", "list", "--logical-env", "nowhen"),
    ("policy", "check", "--logical-env", "nowhen", "--digest", NGINX_FULL),
    slot_args("rollback", "cluster", "production", "never-ran"),
]


@pytest.mark.parametrize("args", UNKNOWN, ids=[" ".join(a) for a in UNKNOWN])
def test_well_formed_but_unknown_names_are_refusals(
    refuse: Invoke, seeded: None, args: tuple[str, ...]
) -> None:
    refuse(*args, code=1)


def test_a_full_digest_in_any_case_is_recorded_canonically(
    ok: Invoke, seeded: None, db_path: Path
) -> None:
    ok(*_record(**{"--digest": NGINX_FULL.upper()}))
    assert query(db_path, "SELECT digest FROM deployment") == [{"digest": NGINX_FULL}]
