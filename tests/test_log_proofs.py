"""Checkpoints, proofs and consistency: `log checkpoint`, `log verifier-key`, `log verify
--checkpoint`, `log prove`, `log verify-proof` and `log consistency`, run as a user runs
them against a real database, their outputs checked with the pure tlog functions (and the
`cryptography` package) rather than with the commands that made them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import peewee
import pytest
from click.testing import CliRunner
from conftest import NGINX_GIT, Invoke, Record, is_pg, query
from cryptography.hazmat.primitives import serialization
from helpers import as_json
from keyutil import KeyPair, cryptography_keys

from deploytrack.cli import cli
from deploytrack.store import eventlog
from deploytrack.tlog import merkle, note


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    return cryptography_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def ed(keys: dict[str, KeyPair]) -> KeyPair:
    return keys["py-ed25519"]


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """An Ed25519 key that signed nothing here (keys' -enc forms are the same keys)."""
    return cryptography_keys(tmp_path_factory.mktemp("stranger"))["py-ed25519"]


@pytest.fixture
def logged(seeded: None, record: Record) -> None:
    """Deployment 1 recorded, then superseded by deployment 2 (events for both)."""
    record()
    record(NGINX_GIT)


def verifier(pair: KeyPair, origin: str) -> note.Verifier:
    public = serialization.load_pem_public_key(pair.public.read_bytes())
    return note.verifier_of(origin, public)  # type: ignore[arg-type]


def head(ok: Invoke) -> tuple[str, int, bytes]:
    """The log's origin, size and root, as `log verify -o json` reports them."""
    report = as_json(ok("log", "verify", "-o", "json"))
    return report["origin"], report["size"], base64.b64decode(report["root"])


def save(ok: Invoke, path: Path, *args: str) -> Path:
    ok("log", "checkpoint", "--output", str(path), *args)
    return path


def other_database(tmp_path: Path, *args: str) -> Any:
    """Run the CLI on a second database (another origin)."""
    return CliRunner().invoke(cli, ["--db", str(tmp_path / "other.db"), *args])


# --- log checkpoint and log verifier-key ----------------------------------------------------


def test_checkpoint_is_the_log_head_bare_or_signed(
    ok: Invoke, logged: None, ed: KeyPair, tmp_path: Path
) -> None:
    origin, size, root = head(ok)
    bare = ok("log", "checkpoint").stdout
    assert bare == f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"

    signed = ok("log", "checkpoint", "--key", str(ed.private)).stdout_bytes
    assert signed.startswith(bare.encode() + "\n\u2014 ".encode())
    checkpoint = note.read_checkpoint(signed, [verifier(ed, origin)])
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (origin, size, root)
    # The signature is Ed25519's over the checkpoint text, under the key ID of the spec.
    line = signed.decode().rsplit("\n", 2)[-2]
    name, encoded = line.removeprefix("\u2014 ").split(" ")
    raw = base64.b64decode(encoded)
    assert name == origin and raw[:4] == verifier(ed, origin).key_id
    ed.loaded().public_key().verify(raw[4:], bare.encode())


def test_checkpoint_output_is_a_new_private_file(
    ok: Invoke, refuse: Invoke, logged: None, ed: KeyPair, tmp_path: Path
) -> None:
    path = tmp_path / "kept.note"
    result = ok("log", "checkpoint", "--key", str(ed.private), "--output", str(path))
    assert result.stdout == ""
    assert "Wrote the signed checkpoint of" in result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    origin, size, _ = head(ok)
    assert note.read_checkpoint(path.read_bytes(), [verifier(ed, origin)]).size == size
    before = path.read_bytes()
    refuse("log", "checkpoint", "--output", str(path), contains="exists")
    assert path.read_bytes() == before


def test_checkpoint_with_an_encrypted_key_reads_the_password(
    ok: Invoke, refuse: Invoke, logged: None, keys: dict[str, KeyPair]
) -> None:
    enc = keys["py-ed25519-enc"]
    assert enc.stdin is not None
    signed = ok("log", "checkpoint", "--key", str(enc.private), "--key-password-stdin",
                input=enc.stdin).stdout_bytes  # fmt: skip
    origin, _, _ = head(ok)
    note.read_checkpoint(signed, [verifier(enc, origin)])
    refuse("log", "checkpoint", "--key", str(enc.private), contains="is encrypted")
    refuse("log", "checkpoint", "--key", str(enc.private), "--key-password-stdin",
           input="wrong\n", contains="wrong password")  # fmt: skip
    refuse("log", "checkpoint", "--key-password-stdin", code=2, contains="needs --key")


@pytest.mark.parametrize("name", ["py-rsa", "py-ec"])
def test_checkpoint_refuses_keys_that_are_not_ed25519(
    refuse: Invoke, logged: None, keys: dict[str, KeyPair], name: str
) -> None:
    refuse("log", "checkpoint", "--key", str(keys[name].private), contains="Ed25519")
    refuse("log", "verifier-key", "--key", str(keys[name].public), contains="Ed25519")


def test_verifier_key_names_the_origin(ok: Invoke, logged: None, ed: KeyPair) -> None:
    origin, _, _ = head(ok)
    line = ok("log", "verifier-key", "--key", str(ed.public)).stdout.strip()
    parsed = note.parse_verifier_key(line)
    assert parsed.name == origin
    assert line == verifier(ed, origin).text()
    body = as_json(ok("log", "verifier-key", "--key", str(ed.public), "-o", "json"))
    assert body == {"origin": origin, "key_id": parsed.key_id.hex(), "verifier_key": line}


# --- log verify --checkpoint --------------------------------------------------------------


def test_verify_checks_kept_checkpoints(
    ok: Invoke, record: Record, logged: None, ed: KeyPair, tmp_path: Path
) -> None:
    signed = save(ok, tmp_path / "old.note", "--key", str(ed.private))
    bare = save(ok, tmp_path / "old.txt")
    record()  # supersedes 2: the log grows past both
    ok("environment", "create", "--name", "later", "--type", "server")
    result = ok("log", "verify", "--checkpoint", str(signed), "--key", str(ed.public))
    assert "ok    checkpoints:" in result.stdout
    report = as_json(
        ok("log", "verify", "--checkpoint", str(bare), "--checkpoint", str(signed), "-o", "json")
    )
    assert [c["name"] for c in report["checks"]] == ["tree", "state", "checkpoints"]
    assert all(c["ok"] for c in report["checks"])
    # The log as it is now: equal sizes, no proof hashes, the same root.
    now = save(ok, tmp_path / "now.note", "--key", str(ed.private))
    ok("log", "verify", "--checkpoint", str(now), "--key", str(ed.public))
    # Without --checkpoint there is no third check.
    assert len(as_json(ok("log", "verify", "-o", "json"))["checks"]) == 2


def failed(result: Any) -> str:
    return str(result.stderr.strip().removeprefix("Error: the log does not verify: "))


def test_verify_refuses_checkpoints_that_do_not_vouch_for_the_log(
    ok: Invoke,
    refuse: Invoke,
    logged: None,
    keys: dict[str, KeyPair],
    ed: KeyPair,
    stranger: KeyPair,
    tmp_path: Path,
) -> None:
    origin, size, root = head(ok)
    signed = save(ok, tmp_path / "old.note", "--key", str(ed.private))
    bare = save(ok, tmp_path / "old.txt")
    verify = ("log", "verify", "--checkpoint")

    # Signed by another key, or not signed at all, when --key asks for a signature.
    other = stranger
    refused = refuse(*verify, str(signed), "--key", str(other.public))
    assert failed(refused).startswith(
        f"checkpoint {signed} is not signed by any of the given keys "
        f"({verifier(other, origin).label}): it carries signatures by "
        f"{verifier(ed, origin).label}"
    )
    refuse(*verify, str(bare), "--key", str(ed.public), contains=f"checkpoint {bare} is not signed")
    refuse(*verify, str(signed), "--key", str(keys["py-rsa"].public), contains="Ed25519")
    refuse(*verify, str(signed), "--key", str(keys["py-ec"].public), contains="Ed25519")
    refuse("log", "verify", "--key", str(ed.public), code=2, contains="--checkpoint")

    # A changed checkpoint: its signature no longer verifies.
    forged = tmp_path / "forged.note"
    forged.write_bytes(
        signed.read_bytes().replace(f"\n{size}\n".encode(), f"\n{size - 1}\n".encode())
    )
    refused = refuse(*verify, str(forged), "--key", str(ed.public))
    assert "does not verify: the checkpoint" in failed(refused)

    # Another database's checkpoint.
    other_db = other_database(tmp_path, "log", "checkpoint")
    assert other_db.exit_code == 0, other_db.output
    theirs = tmp_path / "theirs.txt"
    theirs.write_text(other_db.stdout)
    their_origin = other_db.stdout.split("\n")[0]
    refused = refuse(*verify, str(theirs))
    assert failed(refused) == (
        f"checkpoint {theirs} is of another log (origin {their_origin}, this log is {origin})"
    )

    # Larger than the log: events were removed since.
    larger = tmp_path / "larger.txt"
    larger.write_text(f"{origin}\n{size + 10}\n{base64.b64encode(root).decode()}\n")
    refused = refuse(*verify, str(larger))
    assert failed(refused) == (
        f"checkpoint {larger} is for {size + 10} events, this log has {size}: events were removed"
    )

    # The same size with another root, and a smaller one that is no prefix.
    for old_size in (size, size - 3):
        wrong = tmp_path / f"wrong{old_size}.txt"
        other_root = hashlib.sha256(b"another history").digest()
        wrong.write_text(f"{origin}\n{old_size}\n{base64.b64encode(other_root).decode()}\n")
        refused = refuse(*verify, str(wrong))
        assert failed(refused) == (
            f"checkpoint size {old_size} (root {other_root.hex()[:16]}…) in {wrong} is not a "
            f"prefix of this log: the history up to event {old_size} was rewritten"
        )


@pytest.mark.parametrize(
    ("mangle", "contains"),
    [
        (lambda b: b[:-5], "is not a checkpoint: the note's last line has no newline"),
        (lambda b: b.split(b"\n\n")[0], "is not a checkpoint: the checkpoint's last line"),
        (lambda b: b"\xff" + b, "is not a checkpoint: the note is not UTF-8"),
        (lambda b: b"", "is not a checkpoint"),
        (lambda b: b.replace(b"\n", b"\n\n", 1), "is not a checkpoint"),
        (lambda b: b + b"x" * (1 << 20), "is larger than 1 MiB"),
    ],
    ids=["truncated", "cut-before-signatures", "not-utf8", "empty", "blank-line", "oversized"],
)
def test_verify_refuses_malformed_checkpoint_files(
    ok: Invoke, refuse: Invoke, logged: None, ed: KeyPair, tmp_path: Path, mangle: Any,
    contains: str,
) -> None:  # fmt: skip
    signed = save(ok, tmp_path / "old.note", "--key", str(ed.private))
    bad = tmp_path / "bad.note"
    bad.write_bytes(mangle(signed.read_bytes()))
    refuse("log", "verify", "--checkpoint", str(bad), contains=f"checkpoint {bad} {contains}")


def test_verify_refuses_missing_and_special_checkpoint_files(
    refuse: Invoke, logged: None, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.note"
    refuse("log", "verify", "--checkpoint", str(missing), contains="No such file")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    refuse("log", "verify", "--checkpoint", str(fifo), contains="is not a regular file")


def _rewrite_history(path: Path, created_at: int) -> None:
    """What someone holding the file can do with sqlite3 and this repository's own code:
    drop the append-only triggers, move deployment 1's created_at in the table and in
    every event, and append the whole log again so that leaves, nodes, tree head and
    state agree. Only a checkpoint kept elsewhere tells. (On PostgreSQL, the database's
    owner does the same with the triggers switched off.)"""
    tables = ("log_event", "log_node", "log_tree_head", "deployment")
    marks = ", ".join("?" * len(tables))
    db: Any
    if is_pg(path):
        from deploytrack.store.postgres import open_database

        db = open_database(str(path))
        pg_triggers = (
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            f" WHERE NOT t.tgisinternal AND c.relname IN ({marks})"
            " AND t.tgname NOT LIKE '%\\_assign\\_id'"
        )

        def drop() -> list[Any]:
            found = db.execute_sql(pg_triggers, tables).fetchall()
            for table, name in found:
                db.execute_sql(f'ALTER TABLE "{table}" DISABLE TRIGGER "{name}"')
            return list(found)

        def restore(found: list[Any]) -> None:
            for table, name in found:
                db.execute_sql(f'ALTER TABLE "{table}" ENABLE TRIGGER "{name}"')
    else:
        db = peewee.SqliteDatabase(str(path))

        def drop() -> list[Any]:
            found = db.execute_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                f" AND tbl_name IN ({marks})",
                tables,
            ).fetchall()
            for name, _ in found:
                db.execute_sql(f'DROP TRIGGER "{name}"')
            return list(found)

        def restore(found: list[Any]) -> None:
            for _, sql in found:
                db.execute_sql(sql)

    db.connect()
    with db.atomic():
        triggers = drop()
        events = db.execute_sql("SELECT time, type, body FROM log_event ORDER BY seq").fetchall()
        for table in ("log_event", "log_node", "log_tree_head"):
            db.execute_sql(f"DELETE FROM {table}")
        for time, type_, body in events:
            event = json.loads(bytes(body))
            for change in event["changes"]:
                if change["table"] == "deployment" and change["key"] == {"id": 1}:
                    change["row"]["created_at"] = created_at
            fields = {k: v for k, v in event.items() if k not in ("seq", "time", "type", "changes")}
            eventlog.append(db, type_, event["changes"], time=time, **fields)
        eventlog.seal(db)
        db.execute_sql("UPDATE deployment SET created_at = ? WHERE id = 1", (created_at,))
        restore(triggers)
    db.close()


def test_a_rewritten_log_is_caught_by_an_older_checkpoint(
    ok: Invoke, refuse: Invoke, logged: None, ed: KeyPair, tmp_path: Path, db_path: Path
) -> None:
    old = save(ok, tmp_path / "old.note", "--key", str(ed.private))
    _, size, root = head(ok)
    (original,) = query(db_path, "SELECT created_at FROM deployment WHERE id = 1")
    year = 365 * 24 * 3600 * 1_000_000
    _rewrite_history(db_path, original["created_at"] - year)
    ok("environment", "create", "--name", "after", "--type", "server")  # the log goes on

    # The rewrite is self-consistent: tree and state verify, and the table tells the new
    # story...
    ok("log", "verify")
    (moved,) = query(db_path, "SELECT created_at FROM deployment WHERE id = 1")
    assert moved["created_at"] == original["created_at"] - year
    _, new_size, _ = head(ok)
    assert new_size == size + 1
    # ...but the checkpoint kept before it is no prefix of the rewritten log.
    refused = refuse("log", "verify", "--checkpoint", str(old), "--key", str(ed.public))
    assert failed(refused) == (
        f"checkpoint size {size} (root {root.hex()[:16]}…) in {old} is not a prefix of this "
        f"log: the history up to event {size} was rewritten"
    )
    report = as_json(
        CliRunner().invoke(
            cli, ["--db", str(db_path), "log", "verify", "--checkpoint", str(old), "-o", "json"]
        )
    )
    assert [(c["name"], c["ok"]) for c in report["checks"]] == [
        ("tree", True),
        ("state", True),
        ("checkpoints", False),
    ]
    # No consistency proof is given for it either, and no proof against it.
    refuse("log", "consistency", "--from", str(old), contains="is not a prefix of this log")
    refuse("log", "prove", "--deployment", "1", "--checkpoint", str(old),
           contains="is not a prefix of this log")  # fmt: skip


# --- log prove and log verify-proof ------------------------------------------------------------


def nowhere(tmp_path: Path) -> list[str]:
    """--db naming a file in a folder that does not exist: opening it would fail."""
    return ["--db", str(tmp_path / "no" / "such" / "folder" / "deploytrack.db")]


def verify_proof(tmp_path: Path, *args: str) -> Any:
    """`log verify-proof` with no database at all."""
    result = CliRunner().invoke(cli, [*nowhere(tmp_path), "log", "verify-proof", *args])
    assert not (tmp_path / "no").exists()
    return result


def test_prove_a_record_and_verify_each_proof_offline(
    ok: Invoke, logged: None, ed: KeyPair, tmp_path: Path
) -> None:
    origin, size, root = head(ok)
    proofs = as_json(
        ok("log", "prove", "--deployment", "1", "--key", str(ed.private), "-o", "json")
    )
    events = {e["seq"]: e for e in as_json(ok("log", "list", "-o", "json"))}
    # Deployment 1 was recorded, then superseded: the events that changed its row.
    touching = [
        seq
        for seq, e in events.items()
        if any(c["table"] == "deployment" and c["key"] == {"id": 1} for c in e["event"]["changes"])
    ]
    assert [p["seq"] for p in proofs] == touching
    assert [p["type"] for p in proofs] == ["deployment.recorded", "deployment.superseded"]
    for item in proofs:
        body = item["event"].encode()
        assert merkle.leaf_hash(body).hex() == events[item["seq"]]["leaf_hash"]
        # (log list's JSON shows the times in the event's rows as RFC 3339; the bytes
        # hash to the leaf, which is what counts)
        assert json.loads(body)["type"] == events[item["seq"]]["type"]
        parsed = note.parse_proof(item["proof"].encode())
        assert parsed.index == item["seq"] - 1 and parsed.extra == body
        # Checked here with the pure functions, not with the command that made it.
        checkpoint = parsed.verify(merkle.leaf_hash(body), [verifier(ed, origin)])
        assert (checkpoint.size, checkpoint.root) == (size, root)
        merkle.verify_inclusion(merkle.leaf_hash(body), parsed.index, size, parsed.hashes, root)

        path = tmp_path / f"{item['seq']}.tlog-proof"
        path.write_text(item["proof"])
        result = verify_proof(tmp_path, str(path), "--key", str(ed.public))
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(
            f"Proven: event {item['seq']} ({item['type']}, {item['time']}) is in the log "
            f"{origin} of {size} events"
        )
        shown = as_json(verify_proof(tmp_path, str(path), "--key", str(ed.public), "-o", "json"))
        assert shown == {
            "origin": origin,
            "tree_size": size,
            "seq": item["seq"],
            "type": item["type"],
            "time": item["time"],
            "changed": item["changed"],
            "leaf_hash": events[item["seq"]]["leaf_hash"],
            "signed_by": verifier(ed, origin).label,
            "event_source": "proof",
        }

    # The text form: each proof after its event's line, the proofs as in JSON.
    text = ok("log", "prove", "--deployment", "1", "--key", str(ed.private)).stdout
    blocks = text.split("\n# ")
    assert len(blocks) == len(proofs)
    for block, item in zip(blocks, proofs, strict=True):
        first, _, rest = block.removeprefix("# ").partition("\n")
        assert first.startswith(f"event {item['seq']} {item['type']} {item['time']}: ")
        assert note.parse_proof(rest.encode()).index == item["seq"] - 1


def test_prove_against_a_kept_checkpoint(
    ok: Invoke, refuse: Invoke, record: Record, logged: None, ed: KeyPair, tmp_path: Path
) -> None:
    kept = save(ok, tmp_path / "kept.note", "--key", str(ed.private))
    _, size, _ = head(ok)
    record(NGINX_GIT)  # a heartbeat of deployment 2, after the checkpoint
    result = ok("log", "prove", "--deployment", "2", "--checkpoint", str(kept), "-o", "json")
    proofs = json.loads(result.stdout)
    assert [p["type"] for p in proofs] == ["deployment.superseded"]  # the record's creation
    assert "came after the checkpoint" in result.stderr
    parsed = note.parse_proof(proofs[0]["proof"].encode())
    # The kept checkpoint travels verbatim, signature and all.
    assert parsed.checkpoint_note == kept.read_text()
    assert parsed.checkpoint().size == size
    path = tmp_path / "p.tlog-proof"
    path.write_text(proofs[0]["proof"])
    assert verify_proof(tmp_path, str(path), "--key", str(ed.public)).exit_code == 0

    bare = save(ok, tmp_path / "bare.txt")
    refuse("log", "prove", "--deployment", "1", "--checkpoint", str(bare),
           contains=f"checkpoint {bare} is not signed")  # fmt: skip
    refuse("log", "prove", "--deployment", "1", code=2, contains="--key")
    refuse("log", "prove", "--deployment", "1", "--key", str(ed.private), "--checkpoint",
           str(kept), code=2, contains="one of them")  # fmt: skip


def test_prove_refuses_a_record_that_does_not_exist(
    ok: Invoke, refuse: Invoke, logged: None, ed: KeyPair, keys: dict[str, KeyPair]
) -> None:
    refuse("log", "prove", "--deployment", "99", "--key", str(ed.private),
           contains="deployment record 99 does not exist: 'deployment list --history'")  # fmt: skip
    refuse("log", "prove", "--deployment", "0", "--key", str(ed.private), code=2)
    refuse("log", "prove", "--deployment", "1", "--key", str(keys["py-rsa"].private),
           contains="Ed25519")  # fmt: skip


def test_prove_writes_one_new_private_file_per_proof(
    ok: Invoke,
    refuse: Invoke,
    logged: None,
    ed: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "proofs" / "deployment-1"
    result = ok("log", "prove", "--deployment", "1", "--key", str(ed.private),
                "--output-dir", str(folder), "-o", "json")  # fmt: skip
    proofs = json.loads(result.stdout)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for item in proofs:
        path = Path(item["file"])
        assert path == folder / f"deployment-1-event-{item['seq']}.tlog-proof"
        assert path.read_text() == item["proof"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # One exists already: none is written, none is left behind.
    first = Path(proofs[0]["file"])
    Path(proofs[1]["file"]).unlink()
    refuse("log", "prove", "--deployment", "1", "--key", str(ed.private),
           "--output-dir", str(folder), contains="exists")  # fmt: skip
    assert sorted(folder.iterdir()) == [first]
    # A relative folder works as well.
    monkeypatch.chdir(tmp_path)
    ok("log", "prove", "--deployment", "2", "--key", str(ed.private), "--output-dir", "rel")
    (written,) = (tmp_path / "rel").iterdir()
    assert written.name.startswith("deployment-2-event-")


def _a_proof(ok: Invoke, ed: KeyPair, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    proofs = as_json(
        ok("log", "prove", "--deployment", "1", "--key", str(ed.private), "-o", "json")
    )
    path = tmp_path / "good.tlog-proof"
    path.write_text(proofs[0]["proof"])
    return path, proofs[0]


def refused_offline(tmp_path: Path, contains: str, *args: str) -> str:
    result = verify_proof(tmp_path, *args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert contains in lines[0], lines[0]
    return str(lines[0])


def test_verify_proof_with_the_event_given_apart(
    ok: Invoke, logged: None, ed: KeyPair, tmp_path: Path
) -> None:
    good, item = _a_proof(ok, ed, tmp_path)
    event = tmp_path / "event.json"
    event.write_text(item["event"])
    # A proof without the extra line needs the event's bytes.
    parsed = note.parse_proof(good.read_bytes())
    bare = tmp_path / "bare.tlog-proof"
    bare.write_text(dataclasses.replace(parsed, extra=None).text())
    refused_offline(tmp_path, "carries no event (no extra line): give the event's bytes with "
                    "--event FILE", str(bare), "--key", str(ed.public))  # fmt: skip
    result = verify_proof(tmp_path, str(bare), "--key", str(ed.public), "--event", str(event),
                          "-o", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["event_source"] == str(event)
    # Other bytes than the event's: the proof does not prove them.
    other = tmp_path / "other.json"
    other.write_text(item["event"].replace('"api"', '"evil"'))
    refused_offline(tmp_path, f"proof {good} does not prove the event in {other}: the "
                    "inclusion proof does not lead to the root", str(good), "--key",
                    str(ed.public), "--event", str(other))  # fmt: skip


def test_verify_proof_refusals(
    ok: Invoke,
    logged: None,
    ed: KeyPair,
    stranger: KeyPair,
    keys: dict[str, KeyPair],
    tmp_path: Path,
) -> None:
    good, item = _a_proof(ok, ed, tmp_path)
    data = good.read_bytes()
    origin = note.parse_proof(data).checkpoint().origin
    key = ("--key", str(ed.public))

    other = stranger
    refused_offline(tmp_path, f"is not signed by key {verifier(other, origin).label}",
                    str(good), "--key", str(other.public))  # fmt: skip
    for name in ("py-rsa", "py-ec"):
        refused_offline(tmp_path, "Ed25519", str(good), "--key", str(keys[name].public))

    def mangled(name: str, content: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(content)
        return str(path)

    parsed = note.parse_proof(data)
    # The event it carries, one byte changed: no longer the leaf at that index.
    flipped = item["event"].replace('"deployment.recorded"', '"deployment.rolled_back"')
    changed = dataclasses.replace(parsed, extra=flipped.encode()).text().encode()
    refused_offline(tmp_path, "does not prove the event it carries",
                    mangled("flipped", changed), *key)  # fmt: skip
    # Another index.
    moved = dataclasses.replace(parsed, index=parsed.index + 1).text().encode()
    refused_offline(tmp_path, "does not prove", mangled("moved", moved), *key)
    # A hash of the path changed.
    hashes = (hashlib.sha256(b"x").digest(), *parsed.hashes[1:])
    rehashed = dataclasses.replace(parsed, hashes=hashes).text().encode()
    refused_offline(tmp_path, "does not lead to the root", mangled("hash", rehashed), *key)
    # The checkpoint in it changed: its signature fails.
    size = parsed.checkpoint().size
    resized = data.replace(f"\n{size}\n".encode(), f"\n{size + 1}\n".encode())
    refused_offline(tmp_path, "does not verify", mangled("resized", resized), *key)
    # Malformed, truncated, oversized, missing.
    refused_offline(tmp_path, "is not a tlog-proof", mangled("truncated", data[:-40]), *key)
    refused_offline(tmp_path, "is not a tlog-proof", mangled("cut", data[:60]), *key)
    refused_offline(tmp_path, "is not a tlog-proof: the proof does not start with",
                    mangled("garbage", b"hello\n"), *key)  # fmt: skip
    refused_offline(tmp_path, "is larger than 1 MiB",
                    mangled("big", data + b"x" * (1 << 20)), *key)  # fmt: skip
    refused_offline(tmp_path, "No such file", str(tmp_path / "missing"), *key)
    # A leaf that is no event, in a tree signed by the key: proven, but not an event.
    leaf = b"not an event"
    checkpoint = note.Checkpoint(origin, 1, merkle.leaf_hash(leaf))
    signed = note.sign_note(checkpoint.text(), origin, ed.loaded())
    fake = note.InclusionProof(0, (), signed, leaf).text().encode()
    refused_offline(tmp_path, "proves a leaf that is no event: event 1 is not JSON",
                    mangled("fake", fake), *key)  # fmt: skip


# --- log consistency ----------------------------------------------------------------------


def test_consistency_proof_verifies(
    ok: Invoke, record: Record, logged: None, ed: KeyPair, tmp_path: Path
) -> None:
    old = save(ok, tmp_path / "old.note", "--key", str(ed.private))
    _, old_size, old_root = head(ok)
    record()
    ok("environment", "create", "--name", "later", "--type", "server")
    origin, size, root = head(ok)

    body = as_json(ok("log", "consistency", "--from", str(old), "-o", "json"))
    assert (body["old_size"], body["new_size"]) == (old_size, size)
    assert base64.b64decode(body["old_root"]) == old_root
    assert base64.b64decode(body["new_root"]) == root
    proof = [base64.b64decode(h) for h in body["proof"]]
    merkle.verify_consistency(old_size, size, proof, old_root, root)
    assert body["checkpoint"] == ok("log", "checkpoint").stdout and body["signed"] is False

    # The text form, signed: 'from SIZE ROOT', the hashes, a blank line, the checkpoint.
    text = ok("log", "consistency", "--from", str(old), "--key", str(ed.private)).stdout
    top, _, checkpoint_note = text.partition("\n\n")
    first, *hashes = top.split("\n")
    assert first == f"from {old_size} {base64.b64encode(old_root).decode()}"
    assert hashes == body["proof"]
    new = note.read_checkpoint(checkpoint_note.encode(), [verifier(ed, origin)])
    merkle.verify_consistency(
        old_size, new.size, [base64.b64decode(h) for h in hashes], old_root, new.root
    )
    # From the log as it is now: no hashes.
    now = save(ok, tmp_path / "now.txt")
    same = as_json(ok("log", "consistency", "--from", str(now), "-o", "json"))
    assert same["proof"] == [] and same["old_root"] == same["new_root"]


def test_consistency_refusals(ok: Invoke, refuse: Invoke, logged: None, tmp_path: Path) -> None:
    origin, size, root = head(ok)
    empty = tmp_path / "empty.txt"
    empty_root = base64.b64encode(hashlib.sha256(b"").digest()).decode()
    empty.write_text(f"{origin}\n0\n{empty_root}\n")
    refuse("log", "consistency", "--from", str(empty), contains="is of the empty log")
    ok("log", "verify", "--checkpoint", str(empty))  # its root is the empty tree's
    not_empty = tmp_path / "not-empty.txt"
    not_empty.write_text(f"{origin}\n0\n{base64.b64encode(root).decode()}\n")
    prefix = f"checkpoint size 0 (root {root.hex()[:16]}…) in {not_empty} is not a prefix"
    refuse("log", "verify", "--checkpoint", str(not_empty), contains=prefix)
    larger = tmp_path / "larger.txt"
    larger.write_text(f"{origin}\n{size + 1}\n{base64.b64encode(root).decode()}\n")
    refuse("log", "consistency", "--from", str(larger), contains="events were removed")
    theirs = tmp_path / "theirs.txt"
    theirs.write_text(other_database(tmp_path, "log", "checkpoint").stdout)
    refuse("log", "consistency", "--from", str(theirs), contains="is of another log")
    refuse("log", "consistency", "--from", str(tmp_path / "missing"), contains="No such file")
