"""The event log holds: tampering with the tables or the log is found, every write is
logged exactly, concurrent writers keep it dense, and an older database is brought in.

Every tampering is made as a tamperer would: with the `sqlite3` module, dropping the
append-only and immutability triggers around the edit and recreating them (on PostgreSQL,
psycopg with the triggers switched off for the session), never through deploytrack. Each is
caught by `log verify` (exit 1, its precise message) and by `doctor`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    NGINX_FULL,
    NGINX_GIT,
    Clock,
    Invoke,
    assert_refused,
    is_pg,
    raw,
    snapshot,
)
from helpers import as_json, intoto_statement, record_args, sha256_digest, slot_args
from keyutil import ed25519_pair

SLSA = "https://slsa.dev/provenance/v1"


class _AnyDigest:
    """Equal to any `sha256:<64 hex>` (the digest of bytes a command made itself)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", other) is not None

    def __repr__(self) -> str:
        return "sha256:<any>"


ANY_DIGEST = _AnyDigest()


# --- helpers --------------------------------------------------------------------------------


def tamper(db: Path, *statements: tuple[str, tuple[Any, ...]] | str) -> None:
    """Edit the file as anyone with sqlite3 can: drop every trigger, edit, recreate them.
    On PostgreSQL, as the database's owner can, in one transaction: switch deploytrack's
    triggers off, edit, switch them on (all but the ones that number new rows, which SQLite
    does without a trigger)."""
    if is_pg(db):
        with raw(db) as pg:
            triggers = pg.execute(
                "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c"
                " ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
                " AND t.tgname NOT LIKE '%\\_assign\\_id'"
            ).fetchall()
            for table, name in triggers:
                pg.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER "{name}"')
            for statement in statements:
                sql, params = (statement, ()) if isinstance(statement, str) else statement
                pg.execute(sql, params)
            for table, name in triggers:
                pg.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER "{name}"')
        return
    with closing(sqlite3.connect(db)) as conn:
        triggers = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall()
        with conn:
            for name, _ in triggers:
                conn.execute(f'DROP TRIGGER "{name}"')
            for statement in statements:
                sql, params = (statement, ()) if isinstance(statement, str) else statement
                conn.execute(sql, params)
            for _, sql in triggers:
                conn.execute(sql)


def rehash(db: Path) -> None:
    """What a thorough tamperer does after editing events: recompute every leaf hash,
    interior node and tree head (RFC 6962, written here with hashlib) so the tree agrees."""

    def leaf(body: bytes) -> bytes:
        return hashlib.sha256(b"\x00" + body).digest()

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    def mth(leaves: list[bytes]) -> bytes:
        if len(leaves) == 1:
            return leaves[0]
        split = 1 << ((len(leaves) - 1).bit_length() - 1)
        return node(mth(leaves[:split]), mth(leaves[split:]))

    bodies = [bytes(b) for (b,) in _rows(db, "SELECT body FROM log_event ORDER BY seq")]
    leaves = [leaf(b) for b in bodies]
    sizes = [s for (s,) in _rows(db, "SELECT size FROM log_tree_head ORDER BY size")]
    statements: list[tuple[str, tuple[Any, ...]] | str] = [
        "DELETE FROM log_node",
        "DELETE FROM log_tree_head",
    ]
    for seq, hashed in enumerate(leaves, 1):
        statements.append(("UPDATE log_event SET leaf_hash = ? WHERE seq = ?", (hashed, seq)))
    level, width = 1, 2
    while width <= len(leaves):
        for idx in range(len(leaves) // width):
            statements.append(
                (
                    "INSERT INTO log_node (level, idx, hash) VALUES (?, ?, ?)",
                    (level, idx, mth(leaves[idx * width : (idx + 1) * width])),
                )
            )
        level, width = level + 1, width * 2
    for size in sizes:
        statements.append(
            (
                "INSERT INTO log_tree_head (size, root, created_at) VALUES (?, ?, 0)",
                (size, mth(leaves[:size])),
            )
        )
    tamper(db, *statements)


def events(ok: Invoke, *args: str) -> list[dict[str, Any]]:
    return as_json(ok("log", "list", "--limit", "100000", *args, "-o", "json"))  # type: ignore[no-any-return]


def log_size(db: Path) -> int:
    return int(_rows(db, "SELECT count(*) FROM log_event")[0][0])


def verifies(ok: Invoke) -> None:
    result = ok("log", "verify")
    assert result.stdout.endswith("The log verifies.\n"), result.stdout


def doctor_check(run: Invoke, name: str) -> dict[str, Any]:
    result = run("doctor", "-o", "json")
    [check] = [c for c in json.loads(result.stdout)["checks"] if c["name"] == name]
    return check  # type: ignore[no-any-return]


def changed(event: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c["table"], c["op"], c["key"]) for c in event["event"]["changes"]]


# --- a history to tamper with ----------------------------------------------------------------

# The events of `history`, in order (checked by test_the_history_is_what_the_tests_assume).
HISTORY = [
    "log.started",
    "imported",  # development, staging, production: the defaults of a new database
    "imported",
    "imported",
    "attestation.imported",  # 5
    "environment.created",  # 6
    "deployment.recorded",  # 7: deployment 1
    "deployment.superseded",  # 8: deployment 2 supersedes 1
    "policy.set",  # 9: stage_policy 1 of staging, trusted key public_key 1
    "variable.set",  # 10: variable_event 1, plain
    "variable.set",  # 11: variable_event 2, secret
    "deployment.heartbeat",  # 12: deployment 2 seen again
]
T0 = "2026-11-20T09:00:00Z"
T1 = "2026-11-20T10:00:00Z"
T2 = "2026-11-20T11:00:00Z"


@pytest.fixture
def history(ok: Invoke, clock: Clock, tmp_path: Path, db_path: Path, seeded: None) -> Path:
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_FULL)
    clock.advance(hours=1)
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_GIT)
    _, public = ed25519_pair(tmp_path, "trusted")
    ok("logical-environment", "policy", "set", "--name", "staging",
       "--require-predicate", SLSA, "--trusted-key", str(public))  # fmt: skip
    ok("variable", "set", "DATABASE_URL", "postgres://db/api", "--logical-env", "production")
    ok("variable", "set", "DB_PASSWORD", "--secret", "--stdin", "--logical-env", "production",
       input="hunter2\n")  # fmt: skip
    clock.advance(hours=1)
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_GIT)
    return db_path


def test_the_history_is_what_the_tests_assume(history: Path, ok: Invoke) -> None:
    logged = events(ok)
    assert [e["type"] for e in logged] == HISTORY
    assert [e["seq"] for e in logged] == list(range(1, len(HISTORY) + 1))
    verifies(ok)


# --- tampering ------------------------------------------------------------------------------


def _commitment(salt: str, value: str) -> str:
    digest = hashlib.sha256(bytes.fromhex(salt) + value.encode()).hexdigest()
    return json.dumps({"commitment": digest})


def _value_row(db: Path, id_: int) -> tuple[str, str]:
    [(value, salt)] = _rows(db, "SELECT value, value_salt FROM variable_event WHERE id = ?", id_)
    return value, salt


def _changed_value(db: Path) -> str:
    value, salt = _value_row(db, 1)
    tamper(db, "UPDATE variable_event SET value = 'postgres://evil/api' WHERE id = 1")
    return (
        f"variable_event 1: value is {_commitment(salt, 'postgres://evil/api')} in the table "
        f"but {_commitment(salt, value)} in event 10"
    )


def _changed_salt(db: Path) -> str:
    value, salt = _value_row(db, 1)
    other = "0" * 32
    tamper(db, ("UPDATE variable_event SET value_salt = ? WHERE id = 1", (other,)))
    return (
        f"variable_event 1: value is {_commitment(other, value)} in the table "
        f"but {_commitment(salt, value)} in event 10"
    )


def _changed_ciphertext(db: Path) -> str:
    [(ciphertext,)] = _rows(db, "SELECT ciphertext FROM variable_event WHERE id = 2")
    forged = bytes(ciphertext[:-1]) + bytes([ciphertext[-1] ^ 1])
    tamper(db, ("UPDATE variable_event SET ciphertext = ? WHERE id = 2", (forged,)))

    def image(data: bytes) -> str:
        return json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})

    return (
        f"variable_event 2: ciphertext is {image(forged)} in the table but "
        f"{image(bytes(ciphertext))} in event 11"
    )


def _changed_public_key(db: Path) -> str:
    [(pem,)] = _rows(db, "SELECT pem FROM public_key WHERE id = 1")
    with tempfile.TemporaryDirectory() as folder:
        _, other = ed25519_pair(Path(folder), "other")
        forged = other.read_text()
    tamper(db, ("UPDATE public_key SET pem = ? WHERE id = 1", (forged,)))
    return (
        f"public_key 1: pem is {json.dumps(forged)[:120]} in the table but "
        f"{json.dumps(pem)[:120]} in event 9"
    )


def _flip_body_byte(db: Path) -> str:
    [(body,)] = _rows(db, "SELECT body FROM log_event WHERE seq = 7")
    body = bytearray(body)
    body[len(body) // 2] ^= 0x01
    tamper(db, ("UPDATE log_event SET body = ? WHERE seq = 7", (bytes(body),)))
    return "event 7 does not hash to its leaf: the event was changed"


def _swap(db: Path, a: int, b: int, columns: str) -> None:
    [first] = _rows(db, f"SELECT {columns} FROM log_event WHERE seq = ?", a)
    [second] = _rows(db, f"SELECT {columns} FROM log_event WHERE seq = ?", b)
    sets = ", ".join(f"{c.strip()} = ?" for c in columns.split(","))
    tamper(
        db,
        (f"UPDATE log_event SET {sets} WHERE seq = ?", (*second, a)),
        (f"UPDATE log_event SET {sets} WHERE seq = ?", (*first, b)),
    )


Tampering = Callable[[Path], str]
Statement = tuple[str, tuple[Any, ...]] | str


def edit(*statements: Statement, message: str) -> Tampering:
    """A tampering by SQL statements alone, and the message that names it."""

    def apply(db: Path) -> str:
        tamper(db, *statements)
        return message

    return apply


def _body_and_leaf(db: Path) -> str:
    [(body,)] = _rows(db, "SELECT body FROM log_event WHERE seq = 6")
    edited = bytes(body).replace(b"kubernetes", b"server")
    tamper(db, ("UPDATE log_event SET body = ? WHERE seq = 6", (edited,)))
    _releaf(db, 6)
    return "the log's tree node at level 1, index 2 is not what events 5-6 hash to"


def _reordered_and_rehashed(db: Path) -> str:
    _swap(db, 7, 8, "body, time, type")
    rehash(db)
    return "event 7 says it is event 8: events were reordered, inserted or removed"


def _reordered(db: Path) -> str:
    _swap(db, 7, 8, "body")
    return "event 7 does not hash to its leaf: the event was changed"


YEAR_US = 365 * 86400 * 1_000_000
TRUNCATE = "DELETE FROM log_event WHERE seq = 12"
# Each tampering: how, and the doctor check that must fail with the same message.
TAMPERINGS: dict[str, tuple[Tampering, str]] = {
    # The issue's example: a superseded record's created_at moved back a year.
    "deployment created_at": (
        edit(
            f"UPDATE deployment SET created_at = created_at - {YEAR_US} WHERE id = 1",
            message=f"deployment 1: created_at is 2025-11-20T09:00:00Z in the table but {T0} "
            "in event 8",
        ),
        "log_state",
    ),
    "deployment digest": (
        edit(
            ("UPDATE deployment SET digest = ? WHERE id = 2", (NGINX_FULL,)),
            message=f'deployment 2: digest is "{NGINX_FULL}" in the table but "{NGINX_GIT}" '
            "in event 12",
        ),
        "log_state",
    ),
    "environment": (
        edit(
            "UPDATE environment SET type = 'server' WHERE name = 'cluster'",
            message='environment 1: type is "server" in the table but "kubernetes" in event 6',
        ),
        "log_state",
    ),
    "stage_policy": (
        edit(
            "UPDATE stage_policy SET required_predicates = '[]' WHERE id = 1",
            message="stage_policy 1: required_predicates is "
            + json.dumps("[]")
            + " in the table but "
            + json.dumps(json.dumps([SLSA], separators=(",", ":")))
            + " in event 9",
        ),
        "log_state",
    ),
    "variable value": (_changed_value, "log_state"),
    "variable salt": (_changed_salt, "log_state"),
    "secret ciphertext": (_changed_ciphertext, "log_state"),
    "public_key": (_changed_public_key, "log_state"),
    "deleted row": (
        edit(
            "DELETE FROM logical_environment WHERE name = 'development'",
            message="logical_environment 1 is missing from the table: event 2 wrote it last, "
            "none deleted it",
        ),
        "log_state",
    ),
    "inserted row": (
        edit(
            "INSERT INTO environment (name, type, created_at, updated_at)"
            " VALUES ('rogue', 'custom', 0, 0)",
            message="environment 2 is in the table, but no event inserted it",
        ),
        "log_state",
    ),
    "event body": (_flip_body_byte, "log_tree"),
    "leaf hash": (
        edit(
            ("UPDATE log_event SET leaf_hash = ? WHERE seq = 7", (b"\x07" * 32,)),
            message="event 7 does not hash to its leaf: the event was changed",
        ),
        "log_tree",
    ),
    "event body and its leaf": (_body_and_leaf, "log_tree"),
    "reordered events": (_reordered, "log_tree"),
    "reordered events, tree rebuilt": (_reordered_and_rehashed, "log_state"),
    "event removed from the middle": (
        edit(
            "DELETE FROM log_event WHERE seq = 5",
            message="event 5 is missing: the log goes on at event 6",
        ),
        "log_tree",
    ),
    "truncated log": (
        edit(TRUNCATE, message="there is a tree head of size 12, but the log has 11 events"),
        "log_tree",
    ),
    "truncated log, its tree head gone": (
        edit(
            TRUNCATE,
            "DELETE FROM log_tree_head WHERE size = 12",
            message="the log's tree has nodes no event accounts for",
        ),
        "log_tree",
    ),
    "truncated log, its tree head and nodes gone": (
        edit(
            TRUNCATE,
            "DELETE FROM log_tree_head WHERE size = 12",
            # Event 12 (index 11) completed the subtrees of events 11-12 and 9-12.
            "DELETE FROM log_node WHERE (level, idx) IN (VALUES (1, 5), (2, 2))",
            message=f"deployment 2: last_seen_at is {T2} in the table but {T1} in event 8",
        ),
        "log_state",
    ),
    "tree head": (
        edit(
            ("UPDATE log_tree_head SET root = ? WHERE size = 8", (b"\x08" * 32,)),
            message="the tree head of size 8 does not match the events",
        ),
        "log_tree",
    ),
    "deleted tree node": (
        edit(
            "DELETE FROM log_node WHERE level = 1 AND idx = 0",
            message="the log's tree node at level 1, index 0 is not what events 1-2 hash to",
        ),
        "log_tree",
    ),
}


def _releaf(db: Path, seq: int) -> None:
    """Give event `seq` the leaf hash of its (edited) body, as a tamperer would."""
    [(body,)] = _rows(db, "SELECT body FROM log_event WHERE seq = ?", seq)
    leaf = hashlib.sha256(b"\x00" + bytes(body)).digest()
    tamper(db, ("UPDATE log_event SET leaf_hash = ? WHERE seq = ?", (leaf, seq)))


@pytest.mark.parametrize("case", list(TAMPERINGS))
def test_tampering_is_caught_by_log_verify_and_doctor(
    history: Path, run: Invoke, ok: Invoke, case: str
) -> None:
    verifies(ok)
    edit, check = TAMPERINGS[case]
    message = edit(history)
    result = run("log", "verify")
    assert_refused(result)
    assert result.stderr == f"Error: the log does not verify: {message}\n"
    assert "The log does not verify." in result.stdout
    failed = doctor_check(run, check)
    assert failed["ok"] is False
    assert failed["problems"] == [message]
    assert run("doctor").exit_code == 1


def test_the_issues_example_is_caught_exactly_as_the_issue_says(history: Path, run: Invoke) -> None:
    """Drop `deployment_immutable`, move a superseded record's created_at back a year,
    recreate the trigger: doctor used to say Healthy."""
    edit = "UPDATE deployment SET created_at = created_at - 365 * 86400000000 WHERE id = 1"
    if is_pg(history):
        with raw(history) as pg:
            pg.execute("ALTER TABLE deployment DISABLE TRIGGER deployment_immutable")
            pg.execute(edit)
            pg.execute("ALTER TABLE deployment ENABLE TRIGGER deployment_immutable")
    else:
        with closing(sqlite3.connect(history)) as conn:
            (sql,) = conn.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'deployment_immutable'"
            ).fetchone()
            with conn:
                conn.execute("DROP TRIGGER deployment_immutable")
                conn.execute(edit)
                conn.execute(sql)
    result = run("log", "verify")
    assert_refused(result)
    assert result.stderr == (
        "Error: the log does not verify: deployment 1: created_at is 2025-11-20T09:00:00Z in "
        "the table but 2026-11-20T09:00:00Z in event 8\n"
    )
    doctor = run("doctor")
    assert doctor.exit_code == 1
    assert "Healthy" not in doctor.stdout


# --- completeness: every write command, its event, and exactly its rows ----------------------


class Scenario:
    """Runs commands and checks the events each one appended."""

    def __init__(self, ok: Invoke, run: Invoke, db: Path) -> None:
        self.ok, self.run, self.db = ok, run, db
        self.seen = len(events(ok))
        self.types: list[str] = []

    def step(
        self, args: tuple[str, ...], *expected: tuple[str, list[tuple[str, str, dict[str, Any]]]],
        input: str | None = None,
    ) -> Any:  # fmt: skip
        result = self.ok(*args, input=input)
        new = events(self.ok)[self.seen :]
        assert [(e["type"], changed(e)) for e in new] == list(expected), args
        for event in new:
            for change in event["event"]["changes"]:
                if change["op"] != "delete":
                    assert {k: change["row"][k] for k in change["key"]} == change["key"]
        self.seen += len(new)
        self.types += [e["type"] for e in new]
        verifies(self.ok)
        return result

    def refused(self, args: tuple[str, ...], contains: str) -> None:
        before, size = snapshot(self.db), log_size(self.db)
        assert_refused(self.run(*args), contains=contains)
        assert snapshot(self.db) == before
        assert log_size(self.db) == size


def ins(table: str, id_: object = None, **key: object) -> tuple[str, str, dict[str, Any]]:
    return table, "insert", key or {"id": id_}


def upd(table: str, id_: int) -> tuple[str, str, dict[str, Any]]:
    return table, "update", {"id": id_}


def dele(table: str, id_: int) -> tuple[str, str, dict[str, Any]]:
    return table, "delete", {"id": id_}


def test_every_write_command_logs_exactly_the_rows_it_changed(
    ok: Invoke, run: Invoke, db_path: Path, tmp_path: Path
) -> None:
    ok("environment", "list")  # a new database: log.started and the three default stages
    s = Scenario(ok, run, db_path)
    assert [e["type"] for e in events(ok)] == ["log.started", "imported", "imported", "imported"]

    # The catalogue; a refused duplicate appends nothing.
    env, stage_ = "environment", "logical_environment"
    s.step(("environment", "create", "--name", "k8s"), ("environment.created", [ins(env, 1)]))
    s.step(("environment", "create", "--name", "old"), ("environment.created", [ins(env, 2)]))
    s.step(
        ("environment", "update", "--name", "old", "--description", "going"),
        ("environment.updated", [upd(env, 2)]),
    )
    s.step(("environment", "delete", "--name", "old"), ("environment.deleted", [dele(env, 2)]))
    s.refused(("environment", "create", "--name", "k8s"), "already exists")
    s.step(
        ("logical-environment", "create", "--name", "canary"),
        ("logical_environment.created", [ins(stage_, 4)]),
    )
    s.step(
        ("logical-environment", "update", "--name", "canary", "--description", "5%"),
        ("logical_environment.updated", [upd(stage_, 4)]),
    )
    s.step(
        ("logical-environment", "delete", "--name", "canary"),
        ("logical_environment.deleted", [dele(stage_, 4)]),
    )

    # Evidence: import (its bytes, the attestation, its subjects), create, sign, verify.
    digests = [sha256_digest(f"v{i}".encode()) for i in range(4)]
    statement = intoto_statement([(f"api-{i}", d) for i, d in enumerate(digests)], SLSA)
    path = tmp_path / "statement.json"
    path.write_text(json.dumps(statement))
    blob = sha256_digest(path.read_bytes())
    subjects = [ins("attestation_subject", i) for i in range(1, 5)]
    s.step(
        ("attestation", "import", str(path)),
        ("attestation.imported", [ins("blob", digest=blob), ins("attestation", 1), *subjects]),
    )
    [event] = events(ok, "--type", "attestation.imported")
    assert event["event"]["digests"] == [blob]
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"the artifact")
    private, public = ed25519_pair(tmp_path, "signer")
    # create: the material file it keeps, its envelope, the attestation, its subject and
    # material, the signing key and the verification that signing it made.
    s.step(
        ("attestation", "create", "--workflow", "release", "--project", "api",
         "--material", f"ARTIFACT={artifact}", "--key", str(private)),
        ("attestation.imported", [
            ins("blob", digest=sha256_digest(b"the artifact")), ins("blob", digest=ANY_DIGEST),
            ins("attestation", 2), ins("attestation_subject", 5),
            ins("attestation_material", 1), ins("public_key", 1),
            ins("attestation_verification", 1),
        ]),
    )  # fmt: skip
    signed_path = tmp_path / "signed.json"
    signed_path.write_text(json.dumps(intoto_statement([("api-9", digests[3])], SLSA)))
    signed = s.step(
        ("attestation", "sign", str(signed_path), "--key", str(private)),
        ("attestation.imported", [
            ins("blob", digest=ANY_DIGEST), ins("attestation", 3),
            ins("attestation_subject", 6), ins("attestation_verification", 2),
        ]),
    ).stdout.strip()  # fmt: skip
    s.step(
        ("attestation", "verify", signed, "--key", str(public)),
        ("attestation.verified", [ins("attestation_verification", 3)]),
    )

    # Records: created (with its slot), heartbeat, superseded, decommissioned, rolled back.
    def rec(stage: str, digest: str, *extra: str) -> tuple[str, ...]:
        return (*record_args("k8s", stage, "api"), "--digest", digest, *extra)

    dep = "deployment"
    s.step(
        rec("production", digests[0]),
        ("deployment.recorded", [ins(dep, 1), ins("deployment_slot", 1)]),
    )
    s.step(rec("production", digests[0]), ("deployment.heartbeat", [upd(dep, 1)]))
    s.step(rec("production", digests[1]), ("deployment.superseded", [upd(dep, 1), ins(dep, 2)]))
    s.step(
        rec("production", digests[1], "--status", "decommissioned"),
        ("deployment.decommissioned", [upd(dep, 2)]),
    )
    s.step(
        slot_args("rollback", "k8s", "production", "api"),
        ("deployment.rolled_back", [ins(dep, 3)]),
    )

    # A stage policy, an admission under it, a refusal by it, a promotion, its clearing.
    s.step(
        ("logical-environment", "policy", "set", "--name", "staging",
         "--require-predicate", SLSA, "--trusted-key", str(public)),
        ("policy.set", [
            ins("stage_policy", 1), ins("stage_policy_key", policy_id=1, public_key_id=1),
        ]),
    )  # fmt: skip
    s.refused(rec("staging", digests[0]), "stage policy 1 of staging")
    s.step(
        rec("staging", digests[3]),
        ("deployment.recorded", [
            ins(dep, 4), ins("deployment_slot", 2), ins("attestation_verification", 4),
            ins("deployment_admission", 1),
        ]),
    )  # fmt: skip
    s.step(
        ("deployment", "promote", "--env", "k8s", "--deployment-name", "api",
         "--kind", "CONTAINER_IMAGE", "--from-logical-env", "staging",
         "--to-logical-env", "production"),
        ("deployment.promoted", [upd(dep, 3), ins(dep, 5)]),
    )  # fmt: skip
    s.step(
        ("logical-environment", "policy", "clear", "--name", "staging"),
        ("policy.cleared", [ins("stage_policy", 2)]),
    )
    decommission = slot_args("decommission", "k8s", "staging", "api")
    s.step(decommission, ("deployment.decommissioned", [upd(dep, 4)]))
    # Commands that succeed without changing anything append nothing.
    s.step(decommission)
    s.step(("environment", "create", "--name", "k8s", "--if-not-exists"))

    # Variables: set, unset, a secret, a redaction (which the schema's trigger applies to
    # the redacted entry: that change is logged too).
    var, stage = "variable_event", ("--logical-env", "production")
    s.step(
        ("variable", "set", "URL", "postgres://oops:pw@db", *stage),
        ("variable.set", [ins(var, 1)]),
    )
    s.step(("variable", "unset", "URL", *stage), ("variable.unset", [ins(var, 2)]))
    s.step(
        ("variable", "set", "TOKEN", "--secret", "--stdin", *stage),
        ("variable.set", [ins(var, 3)]),
        input="s3cret\n",
    )
    s.step(("variable", "redact", "--id", "1"), ("variable.redacted", [ins(var, 4), upd(var, 1)]))
    s.refused(("variable", "redact", "--id", "1"), "")

    assert s.types == [
        "environment.created", "environment.created", "environment.updated",
        "environment.deleted", "logical_environment.created", "logical_environment.updated",
        "logical_environment.deleted", "attestation.imported", "attestation.imported",
        "attestation.imported", "attestation.verified", "deployment.recorded",
        "deployment.heartbeat", "deployment.superseded", "deployment.decommissioned",
        "deployment.rolled_back", "policy.set", "deployment.recorded", "deployment.promoted",
        "policy.cleared", "deployment.decommissioned", "variable.set", "variable.unset",
        "variable.set", "variable.redacted",
    ]  # fmt: skip
    # Neither the secret nor the redacted plain value is in any event.
    bodies = b"".join(bytes(b) for (b,) in _rows(db_path, "SELECT body FROM log_event"))
    assert b"s3cret" not in bodies
    assert b"postgres" not in bodies and b"oops" not in bodies


def _rows(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with raw(db) as conn:
        return list(conn.execute(sql, params).fetchall())


# --- every write logs ----------------------------------------------------------------------


def test_a_write_that_logs_no_event_is_refused_and_commits_nothing(db_path: Path) -> None:
    from deploytrack.store import open_store
    from deploytrack.store.binding import TransactionMisuse
    from deploytrack.store.models import Environment

    store = open_store(db_path)
    try:
        before, size = snapshot(db_path), log_size(db_path)

        def refused() -> Any:
            return pytest.raises(TransactionMisuse, match="rows of environment changed with no")

        with refused(), store.write():
            Environment.create(name="unlogged", type="custom", created_at=1, updated_at=1)
        assert snapshot(db_path) == before
        # Changes after the last event of a transaction are refused the same way.
        with refused(), store.write() as log:
            Environment.create(name="logged", type="custom", created_at=1, updated_at=1)
            log.log("environment.created")
            Environment.create(name="not", type="custom", created_at=1, updated_at=1)
        assert snapshot(db_path) == before
        assert log_size(db_path) == size
        # And the same writes, logged, go through.
        with store.write() as log:
            Environment.create(name="logged", type="custom", created_at=1, updated_at=1)
            log.log("environment.created")
        assert log_size(db_path) == size + 1
    finally:
        store.close()


# --- a database of the previous release ------------------------------------------------------


def _previous_release(
    db: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, dict[str, Any]]]:
    """A database at schema m004 holding the state rows of `source` (made by this version
    through the CLI), copied as m004 has them; the (table, key) of each row, in the order
    m006 must import them."""
    from deploytrack.store import migrations, open_store

    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:4])
        open_store(db).close()
    skip = {"deploytrack_migration"}
    order: list[tuple[str, dict[str, Any]]] = []
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("ATTACH DATABASE ? AS source", (str(source),))
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM main.sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
            if name not in skip
        ]
        triggers = conn.execute(
            "SELECT name, sql FROM main.sqlite_master WHERE type = 'trigger'"
        ).fetchall()
        with conn:
            for name, _ in triggers:
                conn.execute(f'DROP TRIGGER main."{name}"')
            for table in tables:
                info = conn.execute(f'PRAGMA main.table_info("{table}")').fetchall()
                columns = ", ".join(f'"{row[1]}"' for row in info)
                conn.execute(f'DELETE FROM main."{table}"')
                conn.execute(
                    f'INSERT INTO main."{table}" ({columns}) SELECT {columns} FROM source."{table}"'
                )
                key = sorted((row[5], row[1]) for row in info if row[5])
                names = [k for _, k in key]
                keys = ", ".join(f'"{k}"' for k in names)
                for values in conn.execute(f'SELECT {keys} FROM main."{table}" ORDER BY {keys}'):
                    order.append((table, dict(zip(names, values, strict=True))))
            for _, sql in triggers:
                conn.execute(sql)
        conn.commit()
        conn.execute("DETACH DATABASE source")
    return order


@pytest.mark.sqlite_only(
    reason="an SQLite file of the previous release (ATTACHed copies), upgraded as it is opened"
)
def test_a_database_of_the_previous_release_is_brought_into_the_log(
    history: Path, ok: Invoke, run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The history plus what it lacks: a redaction, a cleared policy, an unset.
    stage = ("--logical-env", "production")
    ok("variable", "set", "LEAKED", "hunter2", *stage)
    ok("variable", "redact", "--id", "3")
    ok("variable", "unset", "DATABASE_URL", *stage)
    ok("logical-environment", "policy", "clear", "--name", "staging")
    old = tmp_path / "m004.db"
    order = _previous_release(old, history, monkeypatch)
    tables = {table for table, _ in order}
    assert {"deployment", "deployment_slot", "variable_event", "stage_policy", "blob",
            "attestation_subject", "public_key", "stage_policy_key"} <= tables  # fmt: skip
    with closing(sqlite3.connect(old)) as conn:
        assert "log_event" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        plain = conn.execute(
            "SELECT id, value FROM variable_event WHERE value IS NOT NULL ORDER BY id"
        ).fetchall()
    assert plain == [(1, "postgres://db/api")]

    from click.testing import CliRunner

    from deploytrack.cli import cli

    def old_ok(*args: str) -> Any:
        result = CliRunner().invoke(cli, ["--db", str(old), *args])
        assert result.exit_code == 0, (args, result.output, result.stderr)
        return result

    logged = json.loads(old_ok("log", "list", "--limit", "100000", "-o", "json").stdout)
    assert logged[0]["type"] == "log.started"
    assert logged[0]["event"]["origin"].startswith("deploytrack.local/")
    imported = logged[1 : len(order) + 1]
    assert [e["type"] for e in imported] == ["imported"] * len(order)
    assert all(e["event"]["imported"] is True for e in imported)
    assert [(c["table"], c["op"], c["key"]) for e in imported for c in e["event"]["changes"]] == [
        (table, "insert", key) for table, key in order
    ]
    # m010 then gave every record its source (declared), one event each with its new image.
    migrated = logged[len(order) + 1 :]
    records = [key for table, key in order if table == "deployment"]
    assert [e["type"] for e in migrated] == ["schema.migrated"] * len(records)
    assert [(c["table"], c["op"], c["key"], c["row"]["source"]) for e in migrated
            for c in e["event"]["changes"]] == [
        ("deployment", "update", key, "declared") for key in records
    ]  # fmt: skip
    assert [e["seq"] for e in logged] == list(range(1, len(order) + len(records) + 2))
    verified = old_ok("log", "verify")
    assert verified.stdout.endswith("The log verifies.\n")
    doctor = CliRunner().invoke(cli, ["--db", str(old), "doctor"])
    assert doctor.exit_code == 0, doctor.output

    # The plain value got a salt, and the log holds its commitment, not the value.
    with closing(sqlite3.connect(old)) as conn:
        rows = conn.execute(
            "SELECT id, value, value_salt, is_secret, redacted FROM variable_event ORDER BY id"
        ).fetchall()
        bodies = b"".join(bytes(b) for (b,) in conn.execute("SELECT body FROM log_event"))
    for id_, value, salt, _secret, _redacted in rows:
        if value is None:
            assert salt is None, id_
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", salt), id_
            assert _commitment(salt, value).encode().replace(b" ", b"") in bodies
    assert any(redacted for *_, redacted in rows) and any(s for *_, s, _ in rows)
    assert b"postgres://db/api" not in bodies and b"hunter2" not in bodies

    # The next command logs as usual, and the log still verifies.
    size = len(logged)
    old_ok(*record_args("cluster", "production", "api"), "--digest", NGINX_FULL)
    after = json.loads(old_ok("log", "list", "--limit", "100000", "-o", "json").stdout)
    assert [(e["seq"], e["type"]) for e in after[size:]] == [(size + 1, "deployment.superseded")]
    assert old_ok("log", "verify").stdout.endswith("The log verifies.\n")


# --- the benchmark's databases ---------------------------------------------------------------


BENCH = Path(__file__).parent.parent / "bench"


@pytest.mark.parametrize(
    "argv",
    [
        ["events.py", "--events", "700"],
        ["scale.py", "--envs", "1", "--stages", "3", "--names", "4", "--depth", "5"],
    ],
    ids=["events", "scale"],
)
def test_the_benchmarks_databases_have_logs_that_verify(
    tmp_path: Path, argv: list[str], entry_point: str
) -> None:
    """`make bench` times commands on databases built in bulk: they must be ones
    deploytrack itself could have made, their log included."""
    import subprocess
    import sys

    db = tmp_path / "bench.db"
    built = subprocess.run(
        [sys.executable, str(BENCH / argv[0]), str(db), *argv[1:]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    facts = json.loads(built.stdout)
    verified = subprocess.run(
        [entry_point, "--db", str(db), "log", "verify"], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    if argv[0] == "events.py":
        assert log_size(db) == facts["events"] == 700
    else:
        assert facts["records"] == 1 * 3 * 4 * 5
        # log.started and the 3 default stages; the evidence; environment e0; then one
        # `imported` event per record (60) and per slot its first record made (12).
        assert log_size(db) == 4 + 1 + 1 + 60 + 12
