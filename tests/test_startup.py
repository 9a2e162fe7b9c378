"""Start-up hygiene: a command imports only what it uses.

A CLI is judged by its start-up: click and peewee are the stack's own cost; anything
else on the hot path must earn its place. These run the entry point and read which
modules it loaded from `sys.modules` at exit (`python -X importtime` does not list the
modules loaded through importlib, such as the command modules cli/lazy.py loads).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NGINX_FULL, Invoke

# Heavy third-party packages, and our own modules that only some commands need.
NEVER_ON_THE_HOT_PATH = {
    "oras",
    "requests",
    "jsonschema",
    "tabulate",
    "cryptography",
    "platformdirs",
    "sigstore",
    "pydantic",
    "tuf",
    "jinja2",
    "markupsafe",
    "deploytrack.services.report",
    "deploytrack.services.keyless",
    "deploytrack.evidence.parse",
    "deploytrack.services.evidence",
    "deploytrack.services.policies",
    "deploytrack.services.trust",
    "deploytrack.services.views.evidence",
    "deploytrack.services.views.catalog",
    "deploytrack.registry.options",
    "deploytrack.registry.reference",
    "deploytrack.cli.catalog",
    "deploytrack.cli.attestations",
    "deploytrack.cli.lifecycle",
    "deploytrack.cli.policies",
    "deploytrack.cli.signing",
    "deploytrack.cli.variables",
    # Progress bars: only the long commands (sync, imports, audit, log verify) draw one.
    "deploytrack.cli.progress",
    # The lazy models: the ones no hot command uses (evidence bytes, keys, admissions, variables).
    "deploytrack.store.lazy_models",
}


# Prints every loaded module at exit, after the command (and whatever it imported late).
SHOW_MODULES = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('modules:', *sorted(sys.modules), file=sys.stderr))\n"
)
ENTRY_POINT = SHOW_MODULES + "from deploytrack.cli import main\nmain()\n"


def _modules(argv: list[str], env: dict[str, str] | None = None) -> set[str]:
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    listed = [line for line in result.stderr.splitlines() if line.startswith("modules: ")]
    assert len(listed) == 1, result.stderr[-2000:]
    return set(listed[0].split()[1:])


def imported(db: Path, *args: str) -> set[str]:
    return _modules([sys.executable, "-c", ENTRY_POINT, "--db", str(db), *args])


@pytest.fixture(scope="module")
def stack_modules() -> set[str]:
    """What importing the stack alone loads: deploytrack answers only for the rest."""
    return _modules([sys.executable, "-c", SHOW_MODULES + "import click, peewee\n"])


@pytest.fixture
def seeded_db(seeded: None, ok: Invoke, db_path: Path) -> Path:
    ok("deployment", "record", "--env", "cluster", "--logical-env", "production",
       "--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--digest", NGINX_FULL)  # fmt: skip
    return db_path


RECORD = [
    *("deployment", "record", "--env", "cluster", "--logical-env", "production"),
    *("--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--digest", NGINX_FULL),
]


def test_a_heartbeat_imports_nothing_it_does_not_use(seeded_db: Path) -> None:
    modules = imported(seeded_db, *RECORD)
    assert "peewee" in modules and "click" in modules  # the check sees imports at all
    assert modules & NEVER_ON_THE_HOT_PATH == set()


def test_a_new_record_on_a_stage_without_policy_loads_no_gate(seeded_db: Path) -> None:
    new = [*RECORD[:-1], NGINX_FULL]
    new[new.index("api")] = "other"
    assert imported(seeded_db, *new) & NEVER_ON_THE_HOT_PATH == set()


def test_json_lists_load_no_table_library_and_tables_do(seeded_db: Path) -> None:
    assert imported(seeded_db, "deployment", "list", "-o", "json") & NEVER_ON_THE_HOT_PATH == set()
    assert "tabulate" in imported(seeded_db, "deployment", "list")


# The hot path: `deployment record`, and `list` and `status` in JSON, within 1.15x of importing
# the stack alone. Their views are NamedTuples and cli/output.py imports dataclasses only
# for the views that are dataclasses: one frozen dataclass costs ~0.5 ms to define, and the
# dataclasses module ~0.4 ms to import (tabulate imports it anyway for tables).
STATUS_MODULE = "deploytrack.cli.lifecycle"  # status's own; the other commands never need it
JSON_HOT_PATHS = [
    RECORD,
    [*RECORD, "-o", "json"],
    ["deployment", "list", "-o", "json"],
    ["status", "-o", "json"],
]


@pytest.mark.parametrize(
    "args", JSON_HOT_PATHS, ids=["record", "record -o json", "list -o json", "status -o json"]
)
def test_json_hot_paths_define_no_dataclass_and_no_other_model(
    seeded_db: Path, stack_modules: set[str], args: list[str]
) -> None:
    modules = imported(seeded_db, *args)
    assert "deploytrack.store.models" in modules
    assert "dataclasses" not in modules - stack_modules
    assert modules & NEVER_ON_THE_HOT_PATH == ({STATUS_MODULE} if args[0] == "status" else set())


# What only a write needs: the event log and the log's formats (RFC 8785, Merkle hashing).
WRITE_ONLY = {
    "deploytrack.store.eventlog",
    "deploytrack.tlog",
    "deploytrack.tlog.merkle",
    "rfc8785",
}


@pytest.mark.parametrize(
    "args", [["deployment", "list", "-o", "json"], ["status", "-o", "json"], ["status"]]
)
def test_reads_load_nothing_of_the_event_log(seeded_db: Path, args: list[str]) -> None:
    assert imported(seeded_db, *args) & WRITE_ONLY == set()


def test_status_tables_load_no_other_model(seeded_db: Path) -> None:
    assert imported(seeded_db, "status") & NEVER_ON_THE_HOT_PATH == {"tabulate", STATUS_MODULE}


def test_a_database_named_by_the_environment_loads_no_platformdirs(seeded_db: Path) -> None:
    """platformdirs (~25 ms) only finds the default path: $DEPLOYTRACK_DB skips it too."""
    modules = _modules(
        [sys.executable, "-c", ENTRY_POINT, "status", "-o", "json"],
        env={**os.environ, "DEPLOYTRACK_DB": str(seeded_db)},
    )
    assert "deploytrack.store.connection" in modules
    assert "platformdirs" not in modules


MODEL_CHECK = """
import sys
from deploytrack.store import open_store
from deploytrack.store import models
if sys.argv[2] == "before":
    from deploytrack.store.models import PublicKey, VariableEvent
store = open_store(sys.argv[1])
from deploytrack.store.models import ALL_MODELS, Blob
with store.read():
    counts = {m.__name__: m.select().count() for m in ALL_MODELS}
    assert models.PublicKey._meta.database.obj is store.db
assert len(counts) == 16 and counts["LogicalEnvironment"] == 3 and counts["Blob"] > 0, counts
assert models.PublicKey._meta.database.obj is None  # reachable only inside a transaction
print("ok")
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_models_defined_on_first_use_reach_the_open_database(seeded_db: Path, when: str) -> None:
    """The models of store/lazy_models.py, loaded before or after the store is opened,
    query the database open_store() opened (they share the models' database proxy)."""
    result = subprocess.run(
        [sys.executable, "-c", MODEL_CHECK, str(seeded_db), when], capture_output=True, text=True
    )
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_an_unknown_model_name_is_an_attribute_error() -> None:
    from deploytrack.store import models

    assert not hasattr(models, "NoSuchModel")


FREEZE_CHECK = """
import atexit, gc
atexit.register(lambda: print("frozen objects:", gc.get_freeze_count()))
from deploytrack.cli import main
main()
"""


@pytest.mark.parametrize(
    ("args", "code"), [(["status", "-o", "json"], 0), (["status", "--env", "nowhere"], 1)]
)
def test_the_entry_point_skips_the_shutdown_collection(
    seeded_db: Path, args: list[str], code: int
) -> None:
    """main() freezes the GC when the command is over, succeeded or refused: shutdown then
    skips collecting every object of the stack (~5 ms of each command)."""
    result = subprocess.run(
        [sys.executable, "-c", FREEZE_CHECK, "--db", str(seeded_db), *args],
        capture_output=True,
        text=True,
    )
    assert result.returncode == code, result.stderr[-2000:]
    frozen = int(result.stdout.rsplit("frozen objects:", 1)[1])
    assert frozen > 10_000
