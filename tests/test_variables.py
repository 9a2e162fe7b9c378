"""Scoped variables — scopes and precedence, names, values, the hidden prompt,
secrets encrypted at rest (never plaintext in the database, its WAL or shm), masking,
revealing, lost keys, history, and eval-safe exports."""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    CHECK_FAILED,
    INTEGRITY_ERRORS,
    Invoke,
    assert_refused,
    keep_wal,
    query,
    raw,
    snapshot,
    stored_bytes,
)

SCOPE = ("--logical-env", "production", "--env", "prod-cluster", "--deployment-name", "api")
STAGE = ("--logical-env", "production")


@pytest.fixture(autouse=True)
def _environments(ok: Invoke) -> None:
    ok("environment", "create", "--name", "prod-cluster")
    ok("environment", "create", "--name", "edge")


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default key location (platformdirs' user config folder under the test's HOME)."""
    return tmp_path / "home" / "config" / "deploytrack" / "secrets.key"


def resolve(ok: Invoke, *args: str, scope: tuple[str, ...] = SCOPE) -> dict[str, Any]:
    return json.loads(ok("variable", "resolve", *scope, "-o", "json", *args).stdout)


def values(ok: Invoke, *args: str, scope: tuple[str, ...] = SCOPE) -> dict[str, str]:
    return {k: v["value"] for k, v in resolve(ok, *args, scope=scope).items()}


def events(db_path: Path) -> list[dict[str, Any]]:
    return query(db_path, "SELECT * FROM variable_event ORDER BY id")


# --- scopes and precedence -------------------------------------------------------------


def test_precedence_at_all_four_levels(ok: Invoke) -> None:
    """(stage, env, deployment) > (stage, deployment) > (stage, env) > (stage)."""
    ok("variable", "set", "LEVEL", "stage", *STAGE)
    assert resolve(ok)["LEVEL"]["scope"] == {
        "logical_environment": "production",
        "environment": None,
        "deployment_name": None,
    }
    ok("variable", "set", "LEVEL", "stage+env", *STAGE, "--env", "prod-cluster")
    assert values(ok)["LEVEL"] == "stage+env"
    ok("variable", "set", "LEVEL", "stage+deployment", *STAGE, "--deployment-name", "api")
    assert values(ok)["LEVEL"] == "stage+deployment"
    ok("variable", "set", "LEVEL", "stage+env+deployment", *SCOPE)
    body = resolve(ok)["LEVEL"]
    assert body["value"] == "stage+env+deployment"
    assert body["scope"] == {
        "logical_environment": "production",
        "environment": "prod-cluster",
        "deployment_name": "api",
    }
    # Unsetting the most specific scope each time falls back one level.
    ok("variable", "unset", "LEVEL", *SCOPE)
    assert values(ok)["LEVEL"] == "stage+deployment"
    ok("variable", "unset", "LEVEL", *STAGE, "--deployment-name", "api")
    assert values(ok)["LEVEL"] == "stage+env"
    ok("variable", "unset", "LEVEL", *STAGE, "--env", "prod-cluster")
    assert values(ok)["LEVEL"] == "stage"
    ok("variable", "unset", "LEVEL", *STAGE)
    assert "LEVEL" not in values(ok)


def test_precedence_does_not_depend_on_the_order_of_setting(ok: Invoke) -> None:
    ok("variable", "set", "LEVEL", "stage+env+deployment", *SCOPE)
    ok("variable", "set", "LEVEL", "stage+deployment", *STAGE, "--deployment-name", "api")
    ok("variable", "set", "LEVEL", "stage+env", *STAGE, "--env", "prod-cluster")
    ok("variable", "set", "LEVEL", "stage", *STAGE)
    assert values(ok)["LEVEL"] == "stage+env+deployment"


def test_stages_never_inherit(ok: Invoke, run: Invoke) -> None:
    ok("variable", "set", "DATABASE_URL", "postgres://staging-db", "--logical-env", "staging")
    ok("variable", "set", "ONLY_DEV", "1", "--logical-env", "development")
    assert values(ok) == {}
    staging = ("--logical-env", "staging", "--env", "prod-cluster", "--deployment-name", "api")
    assert values(ok, scope=staging) == {"DATABASE_URL": "postgres://staging-db"}
    result = run("variable", "resolve", *SCOPE, "--require", "DATABASE_URL")
    assert_refused(result, contains="DATABASE_URL")
    assert ok("variable", "list", *STAGE).stderr.strip() == "No variables at this scope."


def test_scopes_apply_only_to_their_environment_and_deployment(ok: Invoke) -> None:
    ok("variable", "set", "EDGE_ONLY", "1", *STAGE, "--env", "edge")
    ok("variable", "set", "WEB_ONLY", "1", *STAGE, "--deployment-name", "web")
    ok("variable", "set", "EDGE_WEB", "1", *STAGE, "--env", "edge", "--deployment-name", "web")
    assert values(ok) == {}
    edge_web = ("--logical-env", "production", "--env", "edge", "--deployment-name", "web")
    assert values(ok, scope=edge_web) == {"EDGE_ONLY": "1", "WEB_ONLY": "1", "EDGE_WEB": "1"}


def test_list_narrows_to_the_scopes_that_apply(ok: Invoke) -> None:
    ok("variable", "set", "A", "stage", *STAGE)
    ok("variable", "set", "A", "edge", *STAGE, "--env", "edge")
    ok("variable", "set", "A", "prod", *STAGE, "--env", "prod-cluster")
    ok("variable", "set", "A", "api", *STAGE, "--deployment-name", "api")
    ok("variable", "set", "A", "prod-api", *SCOPE)

    def listed(*args: str) -> list[tuple[str, str | None, str | None]]:
        body = json.loads(ok("variable", "list", *STAGE, *args, "-o", "json").stdout)
        assert all(list(v) == ["name", "value", "secret", "scope", "updated_at"] for v in body)
        return [(v["value"], v["scope"]["environment"], v["scope"]["deployment_name"])
                for v in body]  # fmt: skip

    # Most specific first.
    assert listed() == [
        ("prod-api", "prod-cluster", "api"),
        ("api", None, "api"),
        ("edge", "edge", None),
        ("prod", "prod-cluster", None),
        ("stage", None, None),
    ]
    assert listed("--env", "edge") == [("api", None, "api"), ("edge", "edge", None),
                                       ("stage", None, None)]  # fmt: skip
    assert listed("--env", "prod-cluster", "--deployment-name", "api") == [
        ("prod-api", "prod-cluster", "api"),
        ("api", None, "api"),
        ("prod", "prod-cluster", None),
        ("stage", None, None),
    ]
    table = ok("variable", "list", *STAGE).stdout
    assert "production env=prod-cluster deployment=api" in table
    for header in ("NAME", "VALUE", "SECRET", "SCOPE", "UPDATED"):
        assert header in table


def test_scope_names_must_exist(run: Invoke, db_path: Path, key_file: Path) -> None:
    before = snapshot(db_path)
    for args, message in [
        (("--logical-env", "nowhen"), "'nowhen' does not exist"),
        (("--logical-env", "production", "--env", "nowhere"), "'nowhere' does not exist"),
    ]:
        assert_refused(run("variable", "set", "K", "v", *args), contains=message)
        assert_refused(run("variable", "list", *args), contains=message)
    # A malformed name is a usage error, found before the database is read.
    malformed = ("--logical-env", "production", "--deployment-name", "bad name")
    assert_refused(run("variable", "set", "K", "v", *malformed), code=2, contains="deployment name")
    assert_refused(run("variable", "list", *malformed), code=2, contains="deployment name")
    assert_refused(run("variable", "set", "K", "v"), code=2, contains="--logical-env")
    bad_secret = run("variable", "set", "K", "v", "--secret", "--logical-env", "nowhen")
    assert_refused(bad_secret, contains="'nowhen' does not exist")
    assert snapshot(db_path) == before
    assert not key_file.exists()  # nothing stored, so no key was created either


# --- names and values ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["1ABC", "A-B", "A B", "", "ÄPFEL", "A.B", "A\n", "$A", "A" * 256],
)
def test_invalid_keys_are_refused(refuse: Invoke, key: str) -> None:
    refuse("variable", "set", key, "v", *STAGE, contains="invalid variable name")


@pytest.mark.parametrize("key", ["DEPLOYTRACK_DB", "deploytrack_x", "Deploytrack_"])
def test_the_deploytrack_prefix_is_reserved(refuse: Invoke, key: str) -> None:
    refuse("variable", "set", key, "v", *STAGE, contains="reserved")


@pytest.mark.parametrize("key", ["_", "a", "_PRIVATE", "Mixed_Case_9", "DEPLOYTRACK", "A" * 255])
def test_valid_keys(ok: Invoke, key: str) -> None:
    ok("variable", "set", key, "v", *STAGE)
    assert values(ok) == {key: "v"}


SALT = "0123456789abcdef" * 2  # a well-formed value salt (m005)


@pytest.mark.parametrize("name", ["1ABC", "A-B", "DEPLOYTRACK_X", "deploytrack_x", ""])
def test_the_schema_refuses_what_the_rules_refuse(ok: Invoke, db_path: Path, name: str) -> None:
    conn = raw(db_path)
    try:
        with pytest.raises(INTEGRITY_ERRORS, match=CHECK_FAILED):
            conn.execute(
                "INSERT INTO variable_event (logical_environment_id, name, action, value, "
                "value_salt, created_at) VALUES (3, ?, 'set', 'v', ?, 1)",
                (name, SALT),
            )
        # Plaintext in a secret, or a secret without its key id: refused too.
        for columns, params in [
            ("is_secret, value, value_salt, ciphertext, key_id", (1, "plain", SALT, b"x", "k")),
            ("is_secret, ciphertext", (1, b"x")),
            ("is_secret, value, value_salt, ciphertext", (0, "v", SALT, b"x")),
        ]:
            with pytest.raises(INTEGRITY_ERRORS, match=CHECK_FAILED):
                conn.execute(
                    f"INSERT INTO variable_event (logical_environment_id, name, action, "
                    f"{columns}, created_at) VALUES (3, 'OK', 'set', "
                    + ", ".join("?" * len(params))
                    + ", 1)",
                    params,
                )
    finally:
        conn.close()


def test_values_keep_every_character(ok: Invoke) -> None:
    value = "  spaces, 'quotes', \"double\", $HOME, `cmd`, \\n, ünïcødé, tab\there  "
    ok("variable", "set", "TRICKY", value, *STAGE)
    assert values(ok)["TRICKY"] == value
    ok("variable", "set", "EMPTY", "", *STAGE)
    assert values(ok)["EMPTY"] == ""


def test_value_limits(run: Invoke, db_path: Path) -> None:
    before = snapshot(db_path)
    assert_refused(run("variable", "set", "BIG", "x" * (64 * 1024 + 1), *STAGE), contains="KiB")
    assert_refused(run("variable", "set", "NUL", "--stdin", *STAGE, input="a\0b"), contains="NUL")
    assert_refused(
        run("variable", "set", "BIN", "--stdin", *STAGE, input=b"\xff\xfe"),
        code=2,
        contains="UTF-8",
    )
    assert snapshot(db_path) == before


def test_stdin_drops_one_final_newline(ok: Invoke) -> None:
    ok("variable", "set", "ONE", "--stdin", *STAGE, input="line\n")
    ok("variable", "set", "TWO", "--stdin", *STAGE, input="multi\nline\n\n")
    ok("variable", "set", "CRLF", "--stdin", *STAGE, input="windows\r\n")
    assert values(ok, scope=(*STAGE, "--env", "edge", "--deployment-name", "x")) == {
        "ONE": "line",
        "TWO": "multi\nline\n",
        "CRLF": "windows",
    }


def test_without_a_value_and_without_a_terminal_it_refuses(run: Invoke, db_path: Path) -> None:
    before = snapshot(db_path)
    result = run("variable", "set", "PASSWORD", "--secret", *STAGE, input="")
    assert_refused(result, code=2, contains="no terminal")
    assert_refused(run("variable", "set", "A", "v", "--stdin", *STAGE, input="v"), code=2)
    assert snapshot(db_path) == before


def test_setting_the_same_value_changes_nothing(ok: Invoke, db_path: Path) -> None:
    ok("variable", "set", "A", "1", *STAGE)
    before = events(db_path)
    assert "nothing changed" in ok("variable", "set", "A", "1", *STAGE).stdout
    assert events(db_path) == before
    ok("variable", "set", "A", "2", *STAGE)
    assert len(events(db_path)) == len(before) + 1


def test_unset_of_a_variable_that_is_not_set_is_refused(
    ok: Invoke, run: Invoke, db_path: Path
) -> None:
    ok("variable", "set", "A", "1", *STAGE)
    before = snapshot(db_path)
    # Set at the stage, not at the environment: unset names one exact scope.
    assert_refused(run("variable", "unset", "A", *STAGE, "--env", "edge"), contains="not set")
    assert_refused(run("variable", "unset", "B", *STAGE), contains="nothing to unset")
    assert snapshot(db_path) == before
    ok("variable", "unset", "A", *STAGE)
    assert_refused(run("variable", "unset", "A", *STAGE), contains="not set")


# --- resolve ---------------------------------------------------------------------------


def test_resolve_requires_every_key_and_names_all_missing(
    ok: Invoke, run: Invoke, db_path: Path
) -> None:
    ok("variable", "set", "PRESENT", "1", *STAGE)
    ok("variable", "set", "SECRET", "s", *STAGE, "--secret")
    ok("variable", "resolve", *SCOPE, "--require", "PRESENT", "--require", "SECRET")
    result = run("variable", "resolve", *SCOPE, "--require", "PRESENT", "--require", "ZETA",
                 "--require", "ALPHA")  # fmt: skip
    assert_refused(result, contains="ALPHA, ZETA")
    assert result.stdout == ""
    assert_refused(run("variable", "resolve", *SCOPE, "--require", "bad-key"), contains="invalid")
    assert_refused(run("variable", "resolve", *STAGE), code=2)  # env and deployment needed


def test_resolve_json_and_env_formats(ok: Invoke) -> None:
    ok("variable", "set", "LOG_LEVEL", "info", *STAGE)
    ok("variable", "set", "LOG_LEVEL", "debug", *STAGE, "--deployment-name", "api")
    body = resolve(ok)
    assert list(body) == ["LOG_LEVEL"]
    assert list(body["LOG_LEVEL"]) == ["value", "secret", "scope", "updated_at"]
    assert body["LOG_LEVEL"]["value"] == "debug"
    out = ok("variable", "resolve", *SCOPE).stdout
    assert out == "# LOG_LEVEL from production deployment=api\nexport LOG_LEVEL=debug\n"


EVIL = [
    "plain",
    "",
    "it's",
    "two words",
    "$(touch /tmp/deploytrack-pwned)",
    "`touch /tmp/deploytrack-pwned`",
    "a\nb\nc",
    "trailing\\",
    "'\"'\"'",
    "; rm -rf / #",
    "ünïcødé ✓",
    "$HOME ${PATH} !!",
    "-n",
]


def test_env_format_is_safe_to_eval_in_a_shell(ok: Invoke, tmp_path: Path) -> None:
    for i, value in enumerate(EVIL):
        # Odd ones secret at the stage, even ones plain at the environment.
        where = (*STAGE, "--secret") if i % 2 else (*STAGE, "--env", "edge")
        ok("variable", "set", f"V{i}", "--stdin", *where, input=value + "\n")
    scope = ("--logical-env", "production", "--env", "edge", "--deployment-name", "api")
    exported = ok("variable", "resolve", *scope, "--reveal").stdout
    script = tmp_path / "vars.sh"
    script.write_text(exported)
    names = " ".join(f"V{i}" for i in range(len(EVIL)))
    # A child process sees exactly the values (`export`), NUL-separated.
    shown = subprocess.run(
        ["sh", "-c", f'eval "$(cat "$1")"; for n in {names}; do printenv "$n"; printf "\\0"; done',
         "sh", str(script)],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    got = shown.stdout.decode().split("\0")[:-1]
    assert [g.removesuffix("\n") for g in got] == EVIL
    assert not Path("/tmp/deploytrack-pwned").exists()


def test_masked_secrets_are_not_exported(ok: Invoke, tmp_path: Path) -> None:
    ok("variable", "set", "DB_PASSWORD", "hunter2", *STAGE, "--secret")
    ok("variable", "set", "LOG_LEVEL", "info", *STAGE)
    out = ok("variable", "resolve", *SCOPE).stdout
    assert "hunter2" not in out
    assert "# DB_PASSWORD from production (secret, masked: add --reveal to export it)" in out
    shown = subprocess.run(["sh", "-c", 'eval "$1"; echo "${DB_PASSWORD-unset} $LOG_LEVEL"',
                            "sh", out], capture_output=True, text=True, check=True)  # fmt: skip
    assert shown.stdout == "unset info\n"


# Values that a terminal, a pipe or a shell could rewrite.
RAW = {
    "ESC": "red\033[31mRED\033[0m",
    "CR": "over\rwritten",
    "SOH": "a\x01b\x7fc",
    "QUOTES": "it's \"quoted\" '\"'",
    "LINES": "one\ntwo\n\nfour",
    "UNICODE": "ünïcødé ✓ 日本",
    "TRAILING": "ends with a newline\n",
    "SUBST": "$(touch /tmp/deploytrack-pwned-9) ${HOME}",
    "TICKS": "`touch /tmp/deploytrack-pwned-9`",
}


def _set_raw(ok: Invoke, *where: str) -> None:
    for name, value in RAW.items():
        # --stdin drops one final newline: add one so TRAILING keeps its own.
        ok("variable", "set", name, "--stdin", *where, input=(value + "\n").encode())


def test_resolve_env_is_byte_exact(ok: Invoke) -> None:
    """CliRunner's stdout is not a terminal: click.echo would strip the ESC sequence."""
    import shlex

    _set_raw(ok, *STAGE)
    out = ok("variable", "resolve", *SCOPE).stdout_bytes
    expected = "".join(
        f"# {name} from production\nexport {name}={shlex.quote(RAW[name])}\n"
        for name in sorted(RAW)
    )
    assert out == expected.encode()
    assert values(ok) == RAW


def _installed(entry_point: str, env: dict[str, str]) -> Callable[..., bytes]:
    """The installed command with `env`: each call must succeed; returns its stdout."""

    def cli(*args: str, input: bytes | None = None) -> bytes:
        done = subprocess.run([entry_point, *args], input=input, env=env,
                              capture_output=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    return cli


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_eval_in_a_real_shell_reproduces_every_value(
    entry_point: str, tmp_path: Path, shell: str
) -> None:
    """The installed command, stdout a pipe, its output eval'ed by a real shell."""
    env = {**os.environ, "DEPLOYTRACK_DB": str(tmp_path / "eval.db")}
    cli = _installed(entry_point, env)

    cli("environment", "create", "--name", "prod-cluster")
    for i, (name, value) in enumerate(RAW.items()):
        # Half of them secrets at the stage: revealed secrets take the same path.
        where = (*STAGE, "--secret") if i % 2 else SCOPE
        cli("variable", "set", name, "--stdin", *where, input=(value + "\n").encode())
    names = " ".join(RAW)
    script = (
        f'eval "$("$0" variable resolve {" ".join(SCOPE)} --reveal)" || exit 9; '
        f'for n in {names}; do printenv "$n"; printf "\\0"; done'
    )
    shown = subprocess.run([shell, "-c", script, entry_point], env=env,
                           capture_output=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    got = shown.stdout.decode().split("\0")[:-1]
    assert got == [value + "\n" for value in RAW.values()]  # printenv adds one newline
    assert not Path("/tmp/deploytrack-pwned-9").exists()


def test_resolve_writes_the_same_bytes_to_a_terminal_and_a_pipe(
    entry_point: str, tmp_path: Path
) -> None:
    import tty

    env = {**os.environ, "DEPLOYTRACK_DB": str(tmp_path / "tty.db")}
    for args, stdin in [
        (("environment", "create", "--name", "prod-cluster"), b""),
        (("variable", "set", "ESC", "--stdin", *STAGE), RAW["ESC"].encode()),
        (("variable", "set", "CR", "--stdin", *STAGE), RAW["CR"].encode()),
    ]:
        done = subprocess.run([entry_point, *args], input=stdin, env=env, capture_output=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
    command = [entry_point, "variable", "resolve", *SCOPE]
    piped = subprocess.run(command, env=env, capture_output=True, timeout=60).stdout
    assert b"\033[31m" in piped
    master, slave = os.openpty()
    tty.setraw(slave)  # no newline translation: compare the bytes the program wrote
    try:
        proc = subprocess.Popen(command, stdout=slave, stderr=subprocess.PIPE, env=env)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the program exited and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(master)
    assert seen == piped


def test_list_and_history_json_carry_values_exactly(entry_point: str, tmp_path: Path) -> None:
    cli = _installed(entry_point, {**os.environ, "DEPLOYTRACK_DB": str(tmp_path / "json.db")})

    for name, value in RAW.items():
        cli("variable", "set", name, "--stdin", *STAGE, input=(value + "\n").encode())
    listed = json.loads(cli("variable", "list", *STAGE, "-o", "json"))
    assert {v["name"]: v["value"] for v in listed} == RAW
    changes = json.loads(cli("variable", "history", *STAGE, "-o", "json"))
    assert {c["name"]: c["value"] for c in changes} == RAW


def test_resolve_output_option(ok: Invoke, run: Invoke) -> None:
    """-o/--output as everywhere else; --format, its former spelling, keeps working."""
    ok("variable", "set", "A", "1", *STAGE)
    as_json = ok("variable", "resolve", *SCOPE, "-o", "json").stdout
    assert json.loads(as_json)["A"]["value"] == "1"
    assert ok("variable", "resolve", *SCOPE, "--output", "json").stdout == as_json
    assert ok("variable", "resolve", *SCOPE, "--format", "json").stdout == as_json
    as_env = ok("variable", "resolve", *SCOPE).stdout
    assert as_env == "# A from production\nexport A=1\n"
    assert ok("variable", "resolve", *SCOPE, "-o", "env").stdout == as_env
    assert ok("variable", "resolve", *SCOPE, "--format", "env").stdout == as_env
    assert ok("variable", "resolve", *SCOPE, "-o", "json", "--format", "json").stdout == as_json
    result = run("variable", "resolve", *SCOPE, "-o", "json", "--format", "env")
    assert_refused(result, code=2, contains="disagree")
    assert_refused(run("variable", "resolve", *SCOPE, "-o", "table"), code=2, contains="table")


# --- secrets ---------------------------------------------------------------------------


def test_secrets_are_masked_everywhere_but_resolve_reveal(ok: Invoke, key_file: Path) -> None:
    ok("variable", "set", "DB_PASSWORD", "--secret", "--stdin", *STAGE, input="hunter2\n")
    outputs = [
        ok("variable", "list", *STAGE).stdout,
        ok("variable", "list", *STAGE, "-o", "json").stdout,
        ok("variable", "resolve", *SCOPE).stdout,
        ok("variable", "resolve", *SCOPE, "--format", "json").stdout,
        ok("variable", "history", *STAGE).stdout,
        ok("variable", "history", *STAGE, "-o", "json").stdout,
    ]
    for out in outputs:
        assert "hunter2" not in out
    listed = json.loads(outputs[1])
    assert (listed[0]["value"], listed[0]["secret"]) == ("********", True)
    assert "********" in outputs[0]
    revealed = resolve(ok, "--reveal")["DB_PASSWORD"]
    assert (revealed["value"], revealed["secret"]) == ("hunter2", True)
    assert "export DB_PASSWORD=hunter2" in ok("variable", "resolve", *SCOPE, "--reveal").stdout


def test_no_secret_plaintext_in_the_database_its_wal_or_shm(
    ok: Invoke, db_path: Path, key_file: Path, backend: str
) -> None:
    secret = "correct-horse-battery-staple-7f3a"
    plain = "a-plain-value-9c2e"  # the control: plain values are found, so the search works
    ok("variable", "set", "PLAIN", plain, *STAGE)
    # On SQLite a second connection keeps the WAL from being checkpointed away when the CLI
    # exits.
    with keep_wal(db_path):
        ok("variable", "set", "DB_PASSWORD", "--secret", "--stdin", *STAGE, input=secret)
        ok("variable", "set", "DB_PASSWORD", "--secret", "--stdin", *STAGE, input=secret + "2")
        ok("variable", "set", "TOKEN", secret, *SCOPE, "--secret")
        if backend == "sqlite":
            assert Path(f"{db_path}-wal").stat().st_size > 0
        held = stored_bytes(db_path)
        assert plain.encode() in held
        assert secret.encode() not in held
        assert secret.encode("utf-16-le") not in held
    stored = [e for e in events(db_path) if e["is_secret"]]
    assert len(stored) == 3
    assert all(e["value"] is None and e["ciphertext"] and e["key_id"] for e in stored)
    assert resolve(ok, "--reveal")["DB_PASSWORD"]["value"] == secret + "2"


def test_the_key_is_created_on_first_use_private(ok: Invoke, key_file: Path) -> None:
    ok("variable", "set", "PLAIN", "1", *STAGE)
    assert not key_file.exists()  # plain values need no key
    ok("variable", "set", "S", "x", *STAGE, "--secret")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    first = key_file.read_bytes()
    ok("variable", "set", "T", "y", *STAGE, "--secret")
    assert key_file.read_bytes() == first  # never replaced
    assert not [p for p in key_file.parent.iterdir() if p.name != "secrets.key"]  # no temp left


def test_key_file_from_the_environment(ok: Invoke, tmp_path: Path, key_file: Path) -> None:
    elsewhere = tmp_path / "vault" / "deploytrack.key"
    env = {"DEPLOYTRACK_SECRETS_KEY_FILE": str(elsewhere)}
    ok("variable", "set", "S", "x", *STAGE, "--secret", env=env)
    assert elsewhere.exists() and not key_file.exists()
    assert (
        json.loads(
            ok("variable", "resolve", *SCOPE, "--format", "json", "--reveal", env=env).stdout
        )["S"]["value"]
        == "x"
    )


def test_a_lost_key_is_a_clear_error(ok: Invoke, run: Invoke, key_file: Path) -> None:
    ok("variable", "set", "S", "x", *STAGE, "--secret")
    key_file.unlink()
    result = run("variable", "resolve", *SCOPE, "--reveal")
    assert_refused(result, contains="does not exist")
    assert "secrets cannot be decrypted" in result.stderr
    assert not key_file.exists()  # revealing never creates a key
    # Without --reveal nothing needs the key.
    assert values(ok) == {"S": "********"}


def _another_key(path: Path) -> None:
    """Overwrite the key file with another valid key (a different machine's, say)."""
    import base64

    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")


def test_a_different_key_is_a_clear_error_never_garbage(
    ok: Invoke, run: Invoke, key_file: Path, db_path: Path
) -> None:
    ok("variable", "set", "S", "x", *STAGE, "--secret")
    key_id = events(db_path)[0]["key_id"]
    _another_key(key_file)
    result = run("variable", "resolve", *SCOPE, "--reveal")
    assert_refused(result, contains=f"encrypted with key {key_id}")
    assert "cannot reveal S" in result.stderr
    # That key cannot encrypt while S needs the other one; once S is unset, it can.
    assert_refused(run("variable", "set", "S", "x", *STAGE, "--secret"), contains=key_id)
    ok("variable", "unset", "S", *STAGE)
    ok("variable", "set", "S", "x", *STAGE, "--secret")
    assert values(ok, "--reveal") == {"S": "x"}


def test_no_second_key_for_a_database_whose_secrets_need_another(
    ok: Invoke, run: Invoke, key_file: Path, db_path: Path, tmp_path: Path
) -> None:
    """A mistyped DEPLOYTRACK_SECRETS_KEY_FILE created a second key and encrypted
    under it: the database then held secrets no single key could reveal."""
    ok("variable", "set", "DB_PASSWORD", "--secret", "--stdin", *SCOPE, input="hunter2\n")
    ok("variable", "set", "API_TOKEN", "--secret", "--stdin", *STAGE, input="t0ken\n")
    key_id = events(db_path)[0]["key_id"]
    typo = tmp_path / "vault" / "secrets.kye"
    before = snapshot(db_path)
    result = run("variable", "set", "NEW", "--secret", "--stdin", *STAGE, input="n\n",
                 env={"DEPLOYTRACK_SECRETS_KEY_FILE": str(typo)})  # fmt: skip
    assert_refused(result, contains=f"the secrets key {typo} does not exist")
    line = result.stderr
    assert f"need key {key_id} (API_TOKEN at production and 1 more)" in line
    assert f"check DEPLOYTRACK_SECRETS_KEY_FILE: set it to the file that holds key {key_id}" in line
    assert not typo.exists() and not typo.parent.exists()  # no key created
    assert snapshot(db_path) == before
    # An existing file holding another key is refused the same way.
    typo.parent.mkdir()
    _another_key(typo)
    result = run("variable", "set", "NEW", "--secret", "--stdin", *STAGE, input="n\n",
                 env={"DEPLOYTRACK_SECRETS_KEY_FILE": str(typo)})  # fmt: skip
    assert_refused(result, contains=f"the secrets key {typo} holds key ")
    assert f"need key {key_id}" in result.stderr
    assert snapshot(db_path) == before
    # Without the variable, the default path is named, with how to restore it.
    key_file.rename(key_file.with_name("moved.key"))
    result = run("variable", "set", "NEW", "--secret", "--stdin", *STAGE, input="n\n")
    assert_refused(result, contains=f"the secrets key {key_file} does not exist")
    assert f"restore {key_file} from a backup, or set DEPLOYTRACK_SECRETS_KEY_FILE" in result.stderr
    assert not key_file.exists()
    key_file.with_name("moved.key").rename(key_file)
    # The right key works; plain variables and unsets never need a key.
    ok("variable", "set", "NEW", "--secret", "--stdin", *STAGE, input="n\n")
    env = {"DEPLOYTRACK_SECRETS_KEY_FILE": str(typo)}
    ok("variable", "set", "PLAIN", "p", *STAGE, env=env)
    # The key lost for good: unset what needs it, and a new key may start over.
    for name, where in (("DB_PASSWORD", SCOPE), ("API_TOKEN", STAGE), ("NEW", STAGE)):
        ok("variable", "unset", name, *where, env=env)
    ok("variable", "set", "DB_PASSWORD", "--secret", "--stdin", *SCOPE, input="new\n", env=env)
    assert events(db_path)[-1]["key_id"] != key_id
    assert (
        json.loads(ok("variable", "resolve", *SCOPE, "-o", "json", "--reveal", env=env).stdout)[
            "DB_PASSWORD"
        ]["value"]
        == "new"
    )


def test_a_damaged_key_file_is_a_clear_error(run: Invoke, ok: Invoke, key_file: Path) -> None:
    ok("variable", "set", "S", "x", *STAGE, "--secret")
    key_file.write_text("not base64 at all!\n")
    assert_refused(run("variable", "resolve", *SCOPE, "--reveal"), contains="damaged")
    key_file.write_text("c2hvcnQ=\n")
    assert_refused(run("variable", "resolve", *SCOPE, "--reveal"), contains="not a deploytrack key")


def test_a_ciphertext_moved_to_another_variable_does_not_decrypt(
    ok: Invoke, run: Invoke, db_path: Path, key_file: Path
) -> None:
    ok("variable", "set", "REAL", "hunter2", *STAGE, "--secret")
    conn = raw(db_path)
    conn.execute(
        "INSERT INTO variable_event (logical_environment_id, environment_id, deployment_name, "
        "name, action, is_secret, ciphertext, key_id, created_at) SELECT logical_environment_id, "
        "environment_id, deployment_name, 'COPY', action, is_secret, ciphertext, key_id, "
        "created_at + 1 FROM variable_event WHERE name = 'REAL'"
    )
    conn.commit()
    conn.close()
    result = run("variable", "resolve", *SCOPE, "--reveal")
    assert_refused(result, contains="cannot reveal COPY")
    assert "hunter2" not in result.stdout


def test_a_secret_stays_a_secret(ok: Invoke, run: Invoke, db_path: Path, key_file: Path) -> None:
    """Set again without --secret, a secret would be stored in plaintext for good."""
    ok("variable", "set", "TOKEN", "--secret", "--stdin", *SCOPE, input="old-secret\n")
    before = snapshot(db_path)
    for args, stdin in [
        (("variable", "set", "TOKEN", "n3w-plaintext", *SCOPE), None),
        (("variable", "set", "TOKEN", "--stdin", *SCOPE), "n3w-plaintext\n"),
    ]:
        result = run(*args, input=stdin)
        assert_refused(result, contains="TOKEN is a secret at production env=prod-cluster")
        assert "give --secret" in result.stderr
        assert f"variable unset TOKEN {' '.join(SCOPE)}" in result.stderr
        assert "n3w" not in result.stderr + result.stdout
    assert snapshot(db_path) == before
    assert b"n3w-plaintext" not in stored_bytes(db_path)
    # With --secret it changes, still encrypted.
    ok("variable", "set", "TOKEN", "--secret", "--stdin", *SCOPE, input="n3w\n")
    assert values(ok, "--reveal") == {"TOKEN": "n3w"}
    assert [e["value"] for e in events(db_path)] == [None, None]
    # Other scopes are other variables: a plain TOKEN for the whole stage is allowed.
    ok("variable", "set", "TOKEN", "stage-wide", *STAGE)
    # Unset first, and the name may become plain at that scope.
    ok("variable", "unset", "TOKEN", *SCOPE)
    ok("variable", "set", "TOKEN", "now-plain", *SCOPE)
    assert values(ok) == {"TOKEN": "now-plain"}
    # A plain variable may become a secret.
    ok("variable", "set", "TOKEN", "--secret", "--stdin", *SCOPE, input="secret-again\n")
    body = resolve(ok)["TOKEN"]
    assert (body["secret"], body["value"]) == (True, "********")


@pytest.mark.parametrize(
    ("args", "key_file_name", "error"),
    [
        (["TOKEN"], "secrets.key", b"Error: TOKEN is a secret"),
        (["NEW", "--secret"], "secrets.kye", b"Error: the secrets key "),
    ],
    ids=["secret-stays-secret", "second-key"],
)
def test_refusals_come_before_the_prompt(
    entry_point: str, tmp_path: Path, args: list[str], key_file_name: str, error: bytes
) -> None:
    """On a terminal, a refusal comes before the value is asked for (twice)."""
    env = {**os.environ, "DEPLOYTRACK_DB": str(tmp_path / "tty.db"),
           "DEPLOYTRACK_SECRETS_KEY_FILE": str(tmp_path / "secrets.key")}  # fmt: skip
    for setup in (["environment", "create", "--name", "prod-cluster"],
                  ["variable", "set", "TOKEN", "s", "--secret", *STAGE]):  # fmt: skip
        made = subprocess.run([entry_point, *setup], env=env, capture_output=True, timeout=60)
        assert made.returncode == 0, made.stderr
    env["DEPLOYTRACK_SECRETS_KEY_FILE"] = str(tmp_path / key_file_name)
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [entry_point, "variable", "set", *args, *STAGE],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Error" not in seen and b"Value for" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        assert b"Value for" not in seen, seen
        assert proc.wait(timeout=60) == 1, seen
    finally:
        proc.kill()
        os.close(master)
    assert error in seen
    assert not (tmp_path / "secrets.kye").exists()


def test_an_empty_value_from_stdin_warns_and_is_stored(ok: Invoke, key_file: Path) -> None:
    """`printf '%s\\n' "$UNSET_VAR" | ... --stdin` sends an empty line."""
    for stdin in ("\n", ""):
        result = ok("variable", "set", "DB_PASSWORD", "--secret", "--stdin", *SCOPE, input=stdin)
        warning = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
        assert len(warning) == 1, result.stderr
        assert "secret read from stdin for DB_PASSWORD is empty" in warning[0]
        assert "stored an empty secret" in warning[0]
    assert values(ok, "--reveal") == {"DB_PASSWORD": ""}
    plain = ok("variable", "set", "URL", "--stdin", *SCOPE, input="\n")
    assert "Warning: the value read from stdin for URL is empty" in plain.stderr
    # A value that is not empty, or an empty one typed on purpose, says nothing.
    quiet = [
        ok("variable", "set", "DB_PASSWORD", "--secret", "--stdin", *SCOPE, input="x\n"),
        ok("variable", "set", "URL", "--stdin", *SCOPE, input=" \n"),
        ok("variable", "set", "EMPTY", "", *SCOPE),
    ]
    assert all(r.stderr == "" for r in quiet)


def test_secret_on_the_command_line_warns(ok: Invoke) -> None:
    result = ok("variable", "set", "S", "x", *STAGE, "--secret")
    assert "Warning:" in result.stderr and "--stdin" in result.stderr
    assert "Warning" not in ok("variable", "set", "P", "x", *STAGE).stderr
    quiet = ok("variable", "set", "T", "--secret", "--stdin", *STAGE, input="x\n")
    assert "Warning" not in quiet.stderr


def test_hidden_prompt_on_a_terminal(entry_point: str, tmp_path: Path) -> None:
    """On a real terminal: asked twice, nothing echoed, stored encrypted."""
    db = tmp_path / "tty.db"
    env = {**os.environ, "DEPLOYTRACK_DB": str(db)}
    made = subprocess.run([entry_point, "environment", "create", "--name", "prod-cluster"],
                          env=env, capture_output=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [entry_point, "variable", "set", "DB_PASSWORD", "--secret", *STAGE],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    seen = b""

    def wait_for(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while text not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master, 1024)
                except OSError:
                    break
        assert text in seen, seen

    try:
        wait_for(b"Value for DB_PASSWORD")
        os.write(master, b"typed-secret-42\n")
        wait_for(b"Repeat for confirmation")
        os.write(master, b"typed-secret-42\n")
        wait_for(b"Set secret DB_PASSWORD")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        os.close(master)
    assert b"typed-secret-42" not in seen  # hidden input
    assert b"Warning" not in seen
    shown = subprocess.run(
        [entry_point, "variable", "resolve", *SCOPE, "--reveal", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["DB_PASSWORD"]["value"] == "typed-secret-42"


def test_plain_variables_never_load_cryptography(entry_point: str, tmp_path: Path) -> None:
    """cryptography is imported only on the paths that handle keys or secrets."""
    db = tmp_path / "lazy.db"
    probe = (
        "import sys\n"
        "from deploytrack.cli import cli\n"
        "args = sys.argv[1:]\n"
        "try:\n"
        "    cli.main(args, standalone_mode=False)\n"
        "finally:\n"
        "    print('cryptography' in sys.modules, file=sys.stderr)\n"
    )

    def loads_crypto(*args: str) -> bool:
        done = subprocess.run([sys.executable, "-c", probe, "--db", str(db), *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stderr.strip().splitlines()[-1] == "True"

    assert not loads_crypto("environment", "create", "--name", "prod-cluster")
    assert not loads_crypto("variable", "set", "A", "1", *STAGE)
    assert not loads_crypto("variable", "list", *STAGE)
    assert loads_crypto("variable", "set", "S", "x", *STAGE, "--secret")
    assert not loads_crypto("variable", "resolve", *SCOPE)  # masked: no key needed
    assert loads_crypto("variable", "resolve", *SCOPE, "--reveal")


# --- history ---------------------------------------------------------------------------


def test_history_keeps_every_change(ok: Invoke, db_path: Path) -> None:
    ok("variable", "set", "URL", "http://a", *STAGE)
    ok("variable", "set", "URL", "http://b", *STAGE)
    ok("variable", "set", "PASSWORD", "p1", *STAGE, "--env", "prod-cluster", "--secret")
    ok("variable", "set", "PASSWORD", "p2", *STAGE, "--env", "prod-cluster", "--secret")
    ok("variable", "unset", "URL", *STAGE)
    ok("variable", "set", "OTHER_STAGE", "x", "--logical-env", "staging")
    body = json.loads(ok("variable", "history", *STAGE, "-o", "json").stdout)
    assert all(
        list(c)
        == [
            "id",
            "changed_at",
            "name",
            "scope",
            "action",
            "secret",
            "value",
            "redacted",
            "redacts",
            "change",
        ]
        for c in body
    )
    assert [(c["name"], c["action"], c["value"], c["change"], c["scope"]["environment"])
            for c in body] == [
        ("URL", "set", "http://a", "set to 'http://a'", None),
        ("URL", "set", "http://b", "set to 'http://b'", None),
        ("PASSWORD", "set", None, "secret changed", "prod-cluster"),
        ("PASSWORD", "set", None, "secret changed", "prod-cluster"),
        ("URL", "unset", None, "unset", None),
    ]  # fmt: skip
    times = [c["changed_at"] for c in body]
    assert times == sorted(times)
    only = json.loads(ok("variable", "history", *STAGE, "--key", "URL", "-o", "json").stdout)
    assert [c["action"] for c in only] == ["set", "set", "unset"]
    edge = json.loads(ok("variable", "history", *STAGE, "--env", "edge", "-o", "json").stdout)
    assert {c["name"] for c in edge} == {"URL"}  # prod-cluster's secret does not apply to edge
    table = ok("variable", "history", *STAGE).stdout
    for header in ("TIME", "NAME", "SCOPE", "CHANGE"):
        assert header in table
    assert "secret changed" in table and "p1" not in table


def test_history_is_append_only(ok: Invoke, db_path: Path) -> None:
    ok("variable", "set", "URL", "http://a", *STAGE)
    conn = raw(db_path)
    try:
        with pytest.raises(INTEGRITY_ERRORS, match="never changes"):
            conn.execute("UPDATE variable_event SET value = 'x'")
        with pytest.raises(INTEGRITY_ERRORS, match="never deleted"):
            conn.execute("DELETE FROM variable_event")
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["environment", "logical-environment"])
def test_deletion_is_refused_while_variables_reference_it(
    refuse: Invoke, ok: Invoke, kind: str
) -> None:
    ok("logical-environment", "create", "--name", "canary")
    scope = ("--logical-env", "canary", "--env", "edge")
    ok("variable", "set", "A", "1", *scope)
    ok("variable", "unset", "A", *scope)  # unset: the history still names both
    name = "edge" if kind == "environment" else "canary"
    refuse(kind, "delete", "--name", name, contains="referenced by 2 variable change(s)")
    ok(kind, "create", "--name", "unused")
    ok(kind, "delete", "--name", "unused")  # the rule is about references only


def test_processes_creating_the_key_at_once_agree_on_one(
    entry_point: str, tmp_path: Path, key_file: Path
) -> None:
    """The key is linked into place: parallel first uses never write two keys."""
    db = tmp_path / "race.db"
    env = {**os.environ, "DEPLOYTRACK_DB": str(db)}
    made = subprocess.run([entry_point, "environment", "create", "--name", "edge"], env=env,
                          capture_output=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    command = [entry_point, "variable", "set", "--secret", "--stdin", *STAGE]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    procs = [subprocess.Popen([*command, f"S{i}"], env=env, **pipes) for i in range(6)]
    for i, proc in enumerate(procs):
        _, err = proc.communicate(f"value-{i}\n".encode(), timeout=60)
        assert proc.returncode == 0, err
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len({e["key_id"] for e in query(db, "SELECT key_id FROM variable_event")}) == 1
    shown = subprocess.run(
        [entry_point, "variable", "resolve", "--logical-env", "production", "--env", "edge",
         "--deployment-name", "x", "--format", "json", "--reveal"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert {k: v["value"] for k, v in json.loads(shown.stdout).items()} == {
        f"S{i}": f"value-{i}" for i in range(6)
    }
