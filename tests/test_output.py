"""Output: stored data byte-exact, no escape reaches a terminal, tables that fit.

The escape scan runs every command of the CLI, enumerated from the click group, with
hostile data (names from attestations, file names, descriptions, variable values holding
ESC/CSI/OSC sequences, BEL, CR and the C1 CSI 0x9b), through CliRunner with color=True:
click does not strip ANSI sequences then, as on a terminal.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from conftest import Invoke
from helpers import intoto_statement
from keyutil import ed25519_pair

from deploytrack.cli import cli
from deploytrack.cli.output import MAX_ROW, print_table, safe, short_ref

DEMO = Path(__file__).parent.parent / "demo"
LAYOUT_INDEX = json.loads((DEMO / "oci-layout" / "index.json").read_text())
TAGS = {
    m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
    for m in LAYOUT_INDEX["manifests"]
}
V1, V2 = TAGS["1.0.0"], TAGS["1.1.0"]
# CSI (colour), OSC (window title) ended by BEL, CR, C1 CSI, DEL, a bidi override.
HOSTILE = "\x1b[31mred\x1b]0;owned\x07\rX\x9b2J\x7f\u202e"
# Descriptions refuse C0 controls but tab; DEL, C1 and format controls get through.
DESCRIPTION = "d\x9b2J\x85\x7f\u202e\t"
# Every C0 control but newline and tab, DEL, every C1 control.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# --- helpers ---------------------------------------------------------------------------------


def all_commands() -> set[str]:
    """Every leaf command of the CLI, found from the group (a new command is included)."""
    ctx = click.Context(cli)
    found: set[str] = set()

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])
        else:
            found.add(" ".join(path))

    walk(cli, [])
    return found


def command_of(args: Sequence[str]) -> str:
    """The leaf command an argument list runs."""
    ctx = click.Context(cli)
    command: click.Command = cli
    path = []
    for arg in args:
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(ctx, arg)
        if sub is None:
            break
        command, path = sub, [*path, arg]
    return " ".join(path)


def statement(subjects: list[tuple[str, str]], predicate_type: str) -> bytes:
    return json.dumps(intoto_statement(subjects, predicate_type)).encode()


def _layout_with_referrers(folder: Path) -> Path:
    """The demo layout plus two `oras attach`-style referrers of its 1.0.0 image."""
    shutil.copytree(DEMO / "oci-layout", folder)
    image = next(m for m in LAYOUT_INDEX["manifests"] if m["digest"] == V1)
    subject = {"mediaType": image["mediaType"], "digest": V1, "size": image["size"]}
    index = json.loads((folder / "index.json").read_text())

    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (folder / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    kinds = {
        f"application/x-{HOSTILE}": b"{}",
        "application/vnd.in-toto+json": statement([(f"img{HOSTILE}", V1)], "https://e.com/p"),
    }
    for kind, content in kinds.items():
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": kind,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", **blob(b"{}")},
                "layers": [{"mediaType": kind, **blob(content)}],
                "subject": subject,
            }
        ).encode()
        index["manifests"].append(
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(manifest),
             "artifactType": kind}
        )  # fmt: skip
    (folder / "index.json").write_text(json.dumps(index))
    return folder


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


# --- 1. stored data is written byte-exact, whatever stdout is ------------------------------


STORED = "a\x1b[31mred\x1b[0m\rb\x01 é 日本"


def piped(entry_point: str, db: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """Run the installed CLI with stdout a pipe, as `| jq` or `$(...)` does."""
    proc = subprocess.run(
        [entry_point, "--db", str(db), *args], input=stdin, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def test_stored_data_is_byte_exact_through_a_pipe(
    entry_point: str, db_path: Path, tmp_path: Path
) -> None:
    piped(entry_point, db_path, "environment", "create", "--name", "prod", "--description",
          DESCRIPTION)  # fmt: skip
    listed = json.loads(piped(entry_point, db_path, "environment", "list", "-o", "json"))
    assert listed[0]["description"] == DESCRIPTION

    piped(entry_point, db_path, "variable", "set", "K", STORED, "--logical-env", "production")
    scope = ("--logical-env", "production", "--env", "prod", "--deployment-name", "api")
    env_format = piped(entry_point, db_path, "variable", "resolve", *scope)
    # What `eval "$(deploytrack variable resolve ...)"` reads: the value, quoted, exactly.
    assert f"export K={shlex.quote(STORED)}\n".encode() in env_format
    resolved = json.loads(
        piped(entry_point, db_path, "variable", "resolve", *scope, "--format", "json")
    )
    assert resolved["K"]["value"] == STORED
    listed = json.loads(
        piped(entry_point, db_path, "variable", "list", "--logical-env", "production", "-o", "json")
    )
    assert listed[0]["value"] == STORED

    document = statement([(STORED, V1)], "https://example.com/" + STORED.replace(" ", ""))
    source = tmp_path / "hostile.json"
    source.write_bytes(document)
    args = ("attestation", "import", str(source), "--project", STORED, "-o", "json")
    imported = json.loads(piped(entry_point, db_path, *args))
    digest = imported[0]["attestation"]["digest"]
    described = json.loads(
        piped(entry_point, db_path, "attestation", "describe", digest, "-o", "json")
    )
    assert described["subjects"][0]["name"] == STORED
    assert described["project"] == STORED
    assert described["predicate_type"] == "https://example.com/" + STORED.replace(" ", "")
    assert piped(entry_point, db_path, "artifact", "download", "--digest", digest) == document


# --- 2. no control character reaches a terminal ----------------------------------------------


class Scan:
    """Runs commands as on a terminal and records every control character they print."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.runner = CliRunner()
        self.seen: set[str] = set()
        self.problems: list[tuple[tuple[str, ...], str, str]] = []

    def __call__(
        self, *args: str, code: int | None = 0, data: bool = False, stdin: str | None = None
    ) -> Result:
        """`data`: stdout is stored data for machines (checked exactly by the caller)."""
        result = self.runner.invoke(cli, ["--db", str(self.db), *args], input=stdin, color=True)
        self.seen.add(command_of(args))
        if code is not None:
            assert result.exit_code == code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr, (args, result.stderr)
        is_json = "json" in args and args[args.index("json") - 1] in ("-o", "--output", "--format")
        if is_json:
            json.loads(result.stdout)
        streams = [("stderr", result.stderr)]
        if not (data or is_json):
            streams.append(("stdout", result.stdout))
        for name, text in streams:
            if CONTROL.search(text) or "\u202e" in text:
                self.problems.append((args, name, text))
        if result.exit_code != 0:
            assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        return result


@pytest.fixture
def hostile_db(tmp_path: Path) -> Path:
    # The database path itself is hostile: doctor prints it, errors may name it.
    return tmp_path / f"db{HOSTILE}.sqlite"


def test_every_command_escapes_what_it_prints(
    hostile_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = Scan(hostile_db)
    files = tmp_path / "files"
    files.mkdir()
    layout = files / f"lay{HOSTILE}out"
    shutil.copytree(DEMO / "oci-layout", layout)
    evil = files / f"evil{HOSTILE}.json"
    evil.write_bytes(
        statement([(f"img{HOSTILE}", V1), (f"img2{HOSTILE}", V2)], f"https://e.com/{HOSTILE}")
    )
    private, public = ed25519_pair(files, f"key{HOSTILE}")
    artifact = files / f"art{HOSTILE}.bin"
    artifact.write_bytes(b"bytes")
    who = ("--project", f"api{HOSTILE}", "--version", f"1{HOSTILE}", "--workflow", f"w{HOSTILE}")

    # Catalog, with hostile free text.
    for env in ("prod", "stage", "gone"):
        scan("environment", "create", "--name", env, "--description", DESCRIPTION)
    scan("environment", "update", "--name", "prod", "--description", f"new{DESCRIPTION}")
    scan("environment", "update", "--name", "prod", "--description", HOSTILE, code=1)
    scan("environment", "list")
    scan("environment", "list", "-o", "wide")
    scan("environment", "describe", "--name", "prod")
    scan("environment", "delete", "--name", "gone")
    scan("logical-environment", "create", "--name", "canary", "--description", DESCRIPTION)
    scan("logical-environment", "update", "--name", "canary", "--description", f"x{DESCRIPTION}")
    scan("logical-environment", "list")
    scan("logical-environment", "describe", "--name", "canary")
    scan("logical-environment", "delete", "--name", "canary")

    # Evidence: a file with a hostile name and hostile contents.
    scan("attestation", "import", str(evil), *who)
    scan("attestation", "import", str(evil), "--project", "other")  # already imported
    body = json.loads(scan("attestation", "import", str(evil), "-o", "json").stdout)
    evil_digest = body[0]["attestation"]["digest"]
    scan("attestation", "import", str(files / f"missing{HOSTILE}.json"), code=1)
    scan("attestation", "list")
    scan("attestation", "list", "-o", "wide")
    scan("attestation", "describe", evil_digest)
    signed = scan("attestation", "sign", str(evil), "--key", str(private), *who,
                  "--output-file", str(files / f"out{HOSTILE}.json")).stdout.strip()  # fmt: skip
    scan("attestation", "verify", signed, "--key", str(public))
    scan("attestation", "create", *who, "--material", f"ARTIFACT={artifact}", code=1)
    scan("attestation", "create", "--project", "api", "--workflow", "w", "--material",
         f"ARTIFACT={artifact}", "--key", str(private),
         "--output-file", str(files / f"made{HOSTILE}.json"))  # fmt: skip
    # Pushing: refused before any request (a layout, a malformed reference), names echoed.
    scan("attestation", "push", evil_digest, "--to", f"oci:{layout}:1.0.0", code=1)
    scan("attestation", "push", evil_digest, "--to", f"127.0.0.1:1/a:{HOSTILE}", code=1)
    downloaded = scan("artifact", "download", "--digest", evil_digest, data=True)
    assert downloaded.stdout_bytes == evil.read_bytes()
    scan("artifact", "download", "--digest", evil_digest, "--output", str(files / f"dl{HOSTILE}"))

    # Deployments resolved from a layout whose path is hostile.
    slot = ("--deployment-name", "api", "--kind", "CONTAINER_IMAGE")
    for env, stage, tag in (("stage", "staging", "1.1.0"), ("prod", "production", "1.0.0"),
                            ("prod", "production", "1.1.0")):  # fmt: skip
        scan("deployment", "record", "--env", env, "--logical-env", stage, *slot,
             "--oci-ref", f"oci:{layout}:{tag}")  # fmt: skip
    scan("deployment", "record", "--env", "prod", "--logical-env", "production", *slot,
         "--oci-ref", f"oci:{files / f'nowhere{HOSTILE}'}:1.0.0", code=1)  # fmt: skip
    scan("deployment", "list", "--history")
    scan("deployment", "list", "--history", "-o", "wide")
    scan("deployment", "list", "-o", "json")
    scan("deployment", "describe", "2")
    scan("deployment", "rollback", "--env", "prod", "--logical-env", "production", *slot)
    scan("deployment", "promote", "--env", "stage", "--to-env", "prod", *slot,
         "--from-logical-env", "staging", "--to-logical-env", "production")  # fmt: skip
    diff = ("--from-env", "stage", "--from-logical-env", "staging", "--to-env", "prod",
            "--to-logical-env", "production")  # fmt: skip
    scan("deployment", "diff", *diff)
    scan("deployment", "diff", *diff, "-o", "wide")
    scan("status")
    scan("status", "-o", "wide")
    # Metrics of the history above: its names in the table's first line, its JSON whole.
    scan("metrics", "--env", "prod")
    scan("metrics", "--logical-env", "staging", "--interval", "month", "-o", "json")
    scan("metrics", "--env", f"no{HOSTILE}", code=2)

    # Sync: an input file with a hostile name, holding pods whose names, images and reasons
    # are hostile (the real kubectl parser reads it: its own tests cover the rules).
    def pod(name: str, image: str, ready: bool, waiting: str | None = None) -> dict[str, Any]:
        state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
        return {
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": image}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {"name": "c", "ready": ready, "image": image, "imageID": image, "state": state}
                ],
            },
        }

    pods = files / f"pods{HOSTILE}.json"
    listing = {
        "kind": "List",
        "items": [
            pod("api", f"registry.example/api@{V1}", True),
            pod(f"bad{HOSTILE}", f"registry.example/x{HOSTILE}@{V2}", True),
            pod("waiting", f"registry.example/w@{V2}", False, waiting=f"Crash{HOSTILE}"),
        ],
    }
    pods.write_text(json.dumps(listing))
    sync = ("deployment", "sync", "--env", "prod", "--logical-env", "staging")
    scan(*sync, "--from-kubectl", str(pods), "--dry-run")
    scan(*sync, "--from-kubectl", str(pods), "-o", "json")
    scan(*sync, "--from-kubectl", str(files / f"missing{HOSTILE}.json"), code=1)
    # Last of the deployments: the staging slot's record carries the hostile layout path.
    scan("deployment", "decommission", "--env", "stage", "--logical-env", "staging", *slot)
    # What is attached to a layout's image: a hostile artifact type (skipped, named) and
    # a statement with hostile names, in a layout whose path is hostile.
    attached = _layout_with_referrers(files / f"pull{HOSTILE}")
    scan("attestation", "pull", "--oci-ref", f"oci:{attached}:1.0.0", *who)
    scan("attestation", "pull", "--oci-ref", f"oci:{attached}:1.0.0", "-o", "json")
    scan("attestation", "pull", "--oci-ref", f"oci:{layout}:1.1.0")  # nothing attached
    scan("attestation", "pull", "--oci-ref", f"oci:{files / f'nowhere{HOSTILE}'}", code=1)
    scan("discover", V1)
    scan("discover", evil_digest)
    scan("project", "list")
    scan("project", "describe", "--name", f"api{HOSTILE}")

    # Variables: hostile values in tables; resolve is stored data, checked exactly.
    stage = ("--logical-env", "production")
    scan("variable", "set", "PLAIN", HOSTILE, *stage)
    scan("variable", "set", "SECRET", "--secret", "--stdin", *stage, stdin=HOSTILE + "\n")
    scan("variable", "list", *stage)
    scan("variable", "list", *stage, "-o", "wide")
    scan("variable", "history", *stage)
    resolved = scan("variable", "resolve", *stage, "--env", "prod", "--deployment-name", "api",
                    "--reveal", data=True)  # fmt: skip
    assert f"export PLAIN={shlex.quote(HOSTILE)}\n" in resolved.stdout
    history = json.loads(scan("variable", "history", *stage, "-o", "json").stdout)
    plain = next(e["id"] for e in history if e["name"] == "PLAIN" and e["action"] == "set")
    scan("variable", "redact", "--id", str(plain))
    scan("variable", "history", *stage)
    scan("variable", "set", "PLAIN", HOSTILE, *stage)
    scan("variable", "unset", "PLAIN", *stage)

    # Stage policies, refusals naming hostile values included.
    scan("logical-environment", "policy", "set", "--name", "staging",
         "--require-predicate", f"https://e.com/{HOSTILE}", code=1)  # fmt: skip
    scan("logical-environment", "policy", "set", "--name", "staging", "--trusted-key", str(public))
    scan("logical-environment", "policy", "show", "--name", "staging")
    scan("policy", "check", "--logical-env", "staging", "--digest", V1)
    scan("logical-environment", "policy", "clear", "--name", "staging")
    scan("policy", "check", "--logical-env", "production", "--oci-ref",
         f"oci:{files / f'nowhere{HOSTILE}'}", code=1)  # fmt: skip
    scan("doctor", code=None)
    scan("db", "migrate")
    scan("db", "migrate", "-o", "json")
    # The log shows what was recorded, hostile names included, in its CHANGED column and
    # its events (JSON).
    scan("log", "list")
    scan("log", "list", "-o", "json")
    scan("log", "verify", code=None)
    # CDEvents are data for machines (JSON Lines, checked exactly in tests/test_cdevents.py).
    exported = scan("log", "export", "--format", "cdevents", data=True).stdout.splitlines()
    assert exported and all(json.loads(line) for line in exported)
    scan("log", "export", "--format", "cdevents", "--output", str(files / f"cd{HOSTILE}.jsonl"))
    # Checkpoints and proofs, in files with hostile names.
    kept = files / f"cp{HOSTILE}.note"
    scan("log", "checkpoint", "--key", str(private), "--output", str(kept))
    scan("log", "checkpoint")
    scan("log", "verifier-key", "--key", str(public))
    scan("log", "verify", "--checkpoint", str(kept), "--key", str(public), code=None)
    scan("log", "verify", "--checkpoint", str(files / f"missing{HOSTILE}"), code=1)
    scan("log", "prove", "--deployment", "2", "--key", str(private))
    proofs = files / f"proofs{HOSTILE}"
    scan("log", "prove", "--deployment", "2", "--checkpoint", str(kept), "--output-dir",
         str(proofs))  # fmt: skip
    scan("log", "verify-proof", str(next(proofs.iterdir())), "--key", str(public))
    scan("log", "consistency", "--from", str(kept))
    # The audit bundle: exported, verified offline, imported into a new database (and
    # refused into this one), hostile file names and stored names included.
    bundle = files / f"bundle{HOSTILE}.tgz"
    scan("audit", "export", "--output", str(bundle))
    scan("audit", "verify", str(bundle))
    scan("audit", "verify", str(bundle), "-o", "json")
    scan("audit", "verify", str(files / f"nowhere{HOSTILE}"), code=1)
    scan("audit", "import", str(bundle), code=1)
    copy = Scan(tmp_path / f"copy{HOSTILE}.db")
    copy("audit", "import", str(bundle))
    scan.problems += copy.problems
    # The report names the file it wrote, and refuses one that exists, in its words.
    report = files / f"report{HOSTILE}.html"
    scan("report", "--output", str(report), "--env", "prod")
    scan("report", "--output", str(report), code=1)

    assert scan.problems == [], "\n".join(
        f"{' '.join(map(repr, args))} -> {stream}: {text!r}" for args, stream, text in scan.problems
    )
    # Every command the CLI has was run: a command added later fails here until it is.
    assert scan.seen == all_commands()


def test_an_error_line_escapes_control_characters(db_path: Path, tmp_path: Path) -> None:
    missing = tmp_path / "a\nError: forged\x1b[2J\t\x9b\x7f.json"
    result = CliRunner().invoke(
        cli, ["--db", str(db_path), "attestation", "import", str(missing)], color=True
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert "\\nError: forged\\x1b[2J\\t\\x9b\\x7f.json" in result.stderr


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain é 日本", "plain é 日本"),
        ("\x1b[31m", "\\x1b[31m"),
        ("a\rb\nc\td", "a\\rb\\nc\\td"),
        ("\x00\x07\x7f", "\\x00\\x07\\x7f"),
        ("\x85\x9b\x9f", "\\x85\\x9b\\x9f"),
        ("\u202eevil", "\\u202eevil"),
        (None, "-"),
        ("", "-"),
    ],
)
def test_safe_escapes_every_control_character(raw: Any, shown: str) -> None:
    assert safe(raw) == shown


# --- 3. tables fit a terminal -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "short"),
    [
        ("ghcr.io/acme/api-server:1.1.0", "acme/api-server:1.1.0"),
        ("docker.io/library/nginx:1.25", "nginx:1.25"),
        ("docker.io/bitnami/nginx:1.2", "bitnami/nginx:1.2"),
        ("localhost:5000/team/app", "team/app"),
        ("oci://ghcr.io/acme/charts/api:0.3.0", "acme/charts/api:0.3.0"),
        ("oci:/work/demo/oci-layout:1.1.0", "oci-layout:1.1.0"),
        ("oci:/work/demo/oci-layout", "oci-layout"),
        ("oci-archive:/tmp/images/app.tar:v2", "app.tar:v2"),
        ("/home/me/charts/api-0.3.0.tgz", "api-0.3.0.tgz"),
    ],
)
def test_short_ref(ref: str, short: str) -> None:
    assert short_ref(ref) == short


def demo_workflow(ok: Invoke) -> None:
    for version in ("1.0.0", "1.1.0"):
        path = DEMO / "attestations" / f"api-server-{version}.provenance.json"
        ok("attestation", "import", str(path),
           "--project", "api-server", "--version", version, "--workflow", "release")  # fmt: skip
    ok("environment", "create", "--name", "k8s-staging", "--type", "kubernetes",
       "--description", "Staging cluster")  # fmt: skip
    ok("environment", "create", "--name", "k8s-prod", "--type", "kubernetes",
       "--description", "Production cluster")  # fmt: skip
    slot = ("--deployment-name", "api-server", "--kind", "CONTAINER_IMAGE")
    layout = DEMO / "oci-layout"
    for env, stage, tag in (("k8s-staging", "staging", "1.0.0"),
                            ("k8s-prod", "production", "1.0.0"),
                            ("k8s-prod", "production", "1.1.0")):  # fmt: skip
        ok("deployment", "record", "--env", env, "--logical-env", stage, *slot,
           "--oci-ref", f"oci:{layout}:{tag}")  # fmt: skip
    worker = ("--deployment-name", "worker", "--kind", "CONTAINER_IMAGE")
    for status in ("deployed", "decommissioned"):
        ok("deployment", "record", "--env", "k8s-staging", "--logical-env", "staging", *worker,
           "--oci-ref", f"oci:{layout}:1.1.0", "--status", status)  # fmt: skip
    ok("variable", "set", "DATABASE_URL", "postgres://db.prod.internal/api",
       "--logical-env", "production")  # fmt: skip


TABLES = [
    ("deployment", "list"),
    ("deployment", "list", "--history"),
    (
        "deployment",
        "diff",
        *("--from-env", "k8s-staging", "--from-logical-env", "staging"),
        *("--to-env", "k8s-prod", "--to-logical-env", "production"),
    ),
    ("status",),
    ("environment", "list"),
    ("logical-environment", "list"),
    ("attestation", "list"),
    ("project", "list"),
    ("variable", "list", "--logical-env", "production"),
    ("variable", "history", "--logical-env", "production"),
]


def test_the_demo_tables_fit_120_columns(ok: Invoke) -> None:
    demo_workflow(ok)
    for args in TABLES:
        lines = table_lines(ok(*args).stdout)
        assert len(lines) >= 3, (args, lines)
        assert max(map(len, lines)) <= 120, (args, "\n".join(lines))
        assert "…" not in "\n".join(lines), (args, "ordinary names are never cut")
    listed = ok("deployment", "list", "--history").stdout
    assert "oci-layout:1.1.0@" + V2[:19] in listed
    assert str(DEMO) not in listed  # the full reference is for -o wide
    wide = ok("deployment", "list", "--history", "-o", "wide").stdout
    assert f"oci:{DEMO / 'oci-layout'}:1.1.0" in wide and V2 in wide
    assert "CONTAINER_IMAGE" in wide and "LAST SEEN" in wide


def test_every_list_command_has_a_wide_table(ok: Invoke) -> None:
    demo_workflow(ok)
    for args in TABLES:
        table = table_lines(ok(*args).stdout)
        wide = table_lines(ok(*args, "-o", "wide").stdout)
        assert len(wide) == len(table) and set(wide[-1]) != {"-"}, args
        assert max(map(len, wide)) <= MAX_ROW, args
    # JSON has no wide variant: the fields stay as documented, whole.
    body = json.loads(ok("deployment", "list", "-o", "json").stdout)
    assert body[0]["artifact_ref"] == f"oci:{DEMO / 'oci-layout'}:1.1.0"
    assert body[0]["digest"] == V2


def test_huge_values_keep_rows_short_and_json_whole(ok: Invoke, tmp_path: Path) -> None:
    value = "v" * (64 * 1024)
    ok("variable", "set", "BIG", "--stdin", "--logical-env", "production", input=value)
    stage = ("--logical-env", "production")
    for output in ("table", "wide"):
        for args in (("variable", "list", *stage), ("variable", "history", *stage)):
            lines = table_lines(ok(*args, "-o", output).stdout)
            assert max(map(len, lines)) <= MAX_ROW, (args, output)
            assert "…" in lines[2]
    assert json.loads(ok("variable", "list", *stage, "-o", "json").stdout)[0]["value"] == value

    name = "n" * 10_000
    source = tmp_path / "long.json"
    source.write_bytes(statement([(name, V1)], "https://slsa.dev/provenance/v1"))
    ok("attestation", "import", str(source), "--project", "p" * 10_000, "--workflow", "w" * 5000)
    digest = json.loads(ok("attestation", "list", "-o", "json").stdout)[0]["digest"]
    for args in (("attestation", "list"), ("attestation", "list", "-o", "wide"),
                 ("project", "list"), ("project", "list", "-o", "wide")):  # fmt: skip
        lines = table_lines(ok(*args).stdout)
        assert max(map(len, lines)) <= MAX_ROW, args
    described = ok("attestation", "describe", digest).stdout
    subjects = described.split("Subjects:\n", 1)[1].split("\n\n", 1)[0]
    assert max(map(len, table_lines(subjects))) <= MAX_ROW
    assert "…" in subjects
    body = json.loads(ok("attestation", "describe", digest, "-o", "json").stdout)
    assert body["subjects"][0]["name"] == name


def test_print_table_caps_cut_with_an_ellipsis(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["A", "B"], [["x" * 50, "short"]], empty="none", caps=[10])
    header, rule, row = capsys.readouterr().out.splitlines()
    assert row == "x" * 9 + "…" + "  short"
    assert rule == "-" * 10 + "  " + "-" * 5
    assert header == "A" + " " * 9 + "  B"


def test_no_row_is_longer_than_the_limit(capsys: pytest.CaptureFixture[str]) -> None:
    headers = [f"COLUMN{i}" for i in range(12)]
    print_table(headers, [["y" * 500] * 12], empty="none", caps=[1000] * 12)
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= MAX_ROW
    assert all(cell.endswith("…") for cell in lines[2].split("  "))


def test_an_empty_list_says_so_on_stderr_only(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["A"], [], empty="No rows.")
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "No rows.\n")


# --- 4. a describe prints everything on stdout -----------------------------------------------


def test_describe_sections_go_to_stdout(ok: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "a.json"
    source.write_bytes(statement([("app", V1)], "https://slsa.dev/provenance/v1"))
    digest = json.loads(ok("attestation", "import", str(source), "-o", "json").stdout)[0][
        "attestation"
    ]["digest"]
    ok("environment", "create", "--name", "prod")
    ok("deployment", "record", "--env", "prod", "--logical-env", "production",
       "--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--digest", V1)  # fmt: skip
    for args in (("attestation", "describe", digest), ("deployment", "describe", "1")):
        result = ok(*args)
        assert result.stderr == "", (args, result.stderr)
        assert "Materials:\n  none\n" in result.stdout
        assert "  no key yet ('deploytrack attestation verify DIGEST --key PUB_PEM')" in (
            result.stdout
        )
    for args in (
        ("environment", "describe", "--name", "prod"),
        ("logical-environment", "describe", "--name", "production"),
        ("logical-environment", "policy", "show", "--name", "production"),
        ("discover", V1),
    ):
        assert ok(*args).stderr == "", args


def test_a_long_reference_is_cut_before_its_digest(seeded: None, ok: Invoke) -> None:
    from conftest import NGINX_FULL

    # 90 characters with its registry: -o wide shows it whole within the 300 of a row.
    repository = "acme/" + "very-long-service-name-" * 3 + "xxxxxxxxxxx"
    ok("deployment", "record", "--env", "cluster", "--logical-env", "production",
       "--deployment-name", "api", "--kind", "CONTAINER_IMAGE",
       "--oci-ref", f"ghcr.io/{repository}@{NGINX_FULL}")  # fmt: skip
    row = table_lines(ok("deployment", "list").stdout)[2]
    assert f"{repository[:23]}…@{NGINX_FULL[:19]}" in row
    assert len(row) <= 120
    wide = ok("deployment", "list", "-o", "wide").stdout
    assert f"ghcr.io/{repository}" in wide and NGINX_FULL in wide
