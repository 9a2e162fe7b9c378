"""The audit bundle: `audit export`, `audit verify` (offline, no database) and `audit import`.

Every bundle here is exported from a real database built through the CLI. A tampered
bundle is the real one with one member changed and the tar and gzip written again, so
each check of the bundle's content is what refuses it (not gzip's CRC, tested apart).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import (
    NGINX_FULL,
    NGINX_GIT,
    RESOLVE_API,
    ROUND_TRIP_QUESTIONS,
    Invoke,
    assert_refused,
    snapshot,
)
from helpers import record_args
from keyutil import ed25519_pair

from deploytrack.cli import cli

Members = list[tuple[str, bytes]]


def dt(db: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args], input=input)


def ok_on(db: Path, *args: str, input: str | None = None) -> Result:
    result = dt(db, *args, input=input)
    assert result.exit_code == 0, (args, result.output, result.stderr)
    return result


@pytest.fixture
def secrets_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "secrets.key"
    monkeypatch.setenv("DEPLOYTRACK_SECRETS_KEY_FILE", str(path))
    return path


@pytest.fixture
def history(ok: Invoke, secrets_key: Path, seeded: None, db_path: Path) -> dict[str, str]:
    """A database with a little of everything: evidence and environment cluster (`seeded`),
    one more environment, supersedes,
    a heartbeat, a decommission, an observed record (sync), a stage policy, plain, secret
    and redacted variables.
    Returns times to ask `--at` about."""
    ok("environment", "create", "--name", "edge", "--type", "server", "--description", "edge")
    ok("logical-environment", "create", "--name", "canary")
    ok(*record_args("cluster", "staging", "api"), "--digest", NGINX_FULL)
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_FULL)
    first = json.loads(ok("deployment", "describe", "2", "-o", "json").stdout)["created_at"]
    time.sleep(0.002)
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_GIT)
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_GIT)  # heartbeat
    ok(*record_args("edge", "canary", "web"), "--digest", NGINX_FULL)
    ok(*record_args("edge", "canary", "web"), "--digest", NGINX_FULL, "--status", "decommissioned")
    # A record `deployment sync` observed (source observed), through the sync service.
    from deploytrack.observe import Observed
    from deploytrack.services import sync
    from deploytrack.store import open_store

    store = open_store(db_path)
    try:
        seen = Observed("web", "CONTAINER_IMAGE", NGINX_GIT, None, {"namespace": "shop"})
        assert sync.sync(store, "edge", "staging", [seen]).rows[0].outcome == "created"
    finally:
        store.close()
    ok(
        "logical-environment",
        "policy",
        "set",
        "--name",
        "production",
        "--require-predicate",
        "https://slsa.dev/provenance/v1",
    )
    ok("variable", "set", "URL", "postgres://db", "--logical-env", "production")
    ok("variable", "set", "GONE", "redact me", "--logical-env", "production")
    ok(
        "variable",
        "set",
        "PASSWORD",
        "--secret",
        "--stdin",
        "--logical-env",
        "production",
        "--env",
        "cluster",
        input="s3cret-value\n",
    )
    entries = json.loads(
        ok("variable", "history", "--logical-env", "production", "-o", "json").stdout
    )
    gone = next(e["id"] for e in entries if e["name"] == "GONE")
    ok("variable", "redact", "--id", str(gone))
    return {"first": first}


def export(ok: Invoke, path: Path, *extra: str) -> Path:
    ok("audit", "export", "--output", str(path), *extra)
    return path


def members(path: Path) -> Members:
    with tarfile.open(path, "r:gz") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]


def write(path: Path, items: Members, **info: object) -> Path:
    """A bundle of exactly these members, written as export writes one."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name, data in items:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            for k, v in info.items():
                setattr(member, k, v)
            tar.addfile(member, io.BytesIO(data))
    return path


def edited(src: Path, dst: Path, edit: Callable[[Members], Members]) -> Path:
    return write(dst, edit(members(src)))


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def change(name: str, how: Callable[[bytes], bytes]) -> Callable[[Members], Members]:
    return lambda items: [(n, how(d) if n == name else d) for n, d in items]


def first_named(items: Members, prefix: str) -> str:
    return next(n for n, _ in items if n.startswith(prefix))


# --- export ----------------------------------------------------------------------------------


def test_export_writes_the_layout_byte_identical_twice(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    one = export(ok, tmp_path / "one.tar.gz")
    two = export(ok, tmp_path / "two.tar.gz")
    assert one.read_bytes() == two.read_bytes()
    assert one.stat().st_mode & 0o777 == 0o600
    with tarfile.open(one, "r:gz") as tar:
        infos = tar.getmembers()
    names = [m.name for m in infos]
    assert names[:3] == ["manifest.json", "checkpoint", "events.jsonl"]
    blobs = [n for n in names if n.startswith("blobs/sha256/")]
    values = [n for n in names if n.startswith("values/")]
    assert blobs == sorted(blobs) and values == sorted(values)
    assert names == names[:3] + blobs + values
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in infos)
    items = dict(members(one))
    manifest = json.loads(items["manifest.json"])
    assert manifest["format"] == "deploytrack-audit-bundle" and manifest["version"] == 1
    assert manifest["counts"]["events"] == manifest["tree_size"]
    # Two attestations and one ciphertext; one plain value left (the other was redacted).
    assert manifest["counts"]["blobs"] == 3 == len(blobs)
    assert manifest["counts"]["values"] == 1 == len(values)
    value = items[values[0]]
    assert hashlib.sha256(value).hexdigest() == values[0].split("/")[1]
    assert value[16:] == b"postgres://db"
    events = items["events.jsonl"].split(b"\n")
    assert events[-1] == b"" and len(events) - 1 == manifest["tree_size"]


def test_the_bundle_holds_no_secret_and_no_secrets_key(
    ok: Invoke, history: dict[str, str], tmp_path: Path, secrets_key: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    everything = b"".join(data for _, data in members(bundle))
    assert b"s3cret-value" not in everything
    assert b"redact me" not in everything
    assert secrets_key.read_bytes().strip() not in everything


def test_export_refuses_an_existing_file_and_leaves_it(
    ok: Invoke, refuse: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    there = tmp_path / "there.tar.gz"
    there.write_bytes(b"mine")
    refuse("audit", "export", "--output", str(there), contains="exists")
    assert there.read_bytes() == b"mine"


def test_a_failed_export_leaves_nothing(
    ok: Invoke, history: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploytrack.store import bundle

    def broken(db: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle, "values", broken)
    out = tmp_path / "out"
    out.mkdir()
    result = dt(tmp_path / "deploytrack.db", "audit", "export", "--output", str(out / "b.tgz"))
    assert result.exit_code == 1
    assert list(out.iterdir()) == []


def test_export_signs_with_an_ed25519_key_and_refuses_others(
    ok: Invoke, refuse: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    from keyutil import cryptography_keys

    private, public = ed25519_pair(tmp_path, "ci")
    bundle = export(ok, tmp_path / "b.tar.gz", "--key", str(private))
    checkpoint = dict(members(bundle))["checkpoint"].decode()
    assert "\n\n\u2014 deploytrack.local/" in checkpoint
    verified = json.loads(
        ok("audit", "verify", str(bundle), "--key", str(public), "-o", "json").stdout
    )
    assert len(verified["signed_by"]) == 1
    rsa = cryptography_keys(tmp_path / "keys")["py-rsa"]
    refuse(
        "audit",
        "export",
        "--output",
        str(tmp_path / "r.tgz"),
        "--key",
        str(rsa.private),
        contains="Ed25519",
    )
    assert not (tmp_path / "r.tgz").exists()


# --- verify ----------------------------------------------------------------------------------


def test_verify_needs_no_database_and_tells_what_ran_where(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    data_home = Path(os.environ["XDG_DATA_HOME"])
    result = CliRunner().invoke(cli, ["audit", "verify", str(bundle), "-o", "json"])
    assert result.exit_code == 0, result.stderr
    assert not data_home.exists() or not any(data_home.rglob("*"))
    report = json.loads(result.stdout)
    assert set(report) == {
        "file",
        "origin",
        "size",
        "root",
        "signed_by",
        "checkpoints",
        "counts",
        "running",
    }
    assert report["origin"].startswith("deploytrack.local/")
    assert report["signed_by"] == [] and report["checkpoints"] == []
    assert report["counts"]["blobs"] == 3 and report["counts"]["values"] == 1
    assert report["counts"]["rows"]["deployment"] == 5
    running = [
        (r["environment"], r["logical_environment"], r["deployment_name"], r["digest"])
        for r in report["running"]
    ]
    assert running == [
        ("cluster", "production", "api", NGINX_GIT),
        ("cluster", "staging", "api", NGINX_FULL),
        ("edge", "staging", "web", NGINX_GIT),
    ]
    assert report["running"][0]["created_at"].endswith("Z")
    verify = json.loads(ok("log", "verify", "-o", "json").stdout)
    assert (report["size"], report["root"]) == (verify["size"], verify["root"])
    text = CliRunner().invoke(cli, ["audit", "verify", str(bundle)])
    assert text.exit_code == 0 and "The bundle verifies." in text.stdout
    assert "cluster" in text.stdout and "production" in text.stdout


def refused(bundle: Path, *extra: str, contains: str = "") -> Result:
    result = CliRunner().invoke(cli, ["audit", "verify", str(bundle), *extra])
    assert_refused(result, 1, contains)
    return result


def test_verify_names_a_flipped_byte_in_each_member(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    items = members(bundle)
    blob, value = first_named(items, "blobs/"), first_named(items, "values/")
    events = dict(items)["events.jsonl"]
    cases = {
        "manifest.json": (lambda d: d.replace(b'"blobs": 3', b'"blobs": 2'), "counts 2 blobs"),
        "checkpoint": (lambda d: flip(d, len(d) - 3), "root"),
        # a byte inside the last event's JSON (its time), so it still parses
        "events.jsonl": (lambda d: flip(d, len(d) - 12), "do not hash to its checkpoint's root"),
        blob: (lambda d: flip(d, 10), "does not hash to its name"),
        value: (lambda d: flip(d, 20), "does not hash to its name"),
    }
    assert events.endswith(b"}\n")
    for name, (how, words) in cases.items():
        bad = edited(bundle, tmp_path / f"bad-{name.replace('/', '_')}", change(name, how))
        refused(bad, contains=words)


def test_verify_refuses_a_flipped_byte_of_the_file_and_a_truncated_file(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    data = bundle.read_bytes()
    flipped = tmp_path / "flipped.tgz"
    flipped.write_bytes(flip(data, len(data) // 2))
    refused(flipped, contains="the bundle does not verify")
    for cut in (len(data) - 4, len(data) // 2, 30, 0):
        truncated = tmp_path / f"cut{cut}.tgz"
        truncated.write_bytes(data[:cut])
        refused(truncated, contains="the bundle does not verify")


def test_verify_refuses_missing_extra_duplicate_and_tricky_members(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    items = members(bundle)
    blob = first_named(items, "blobs/")
    extra = b"extra bytes"
    extra_name = "blobs/sha256/" + hashlib.sha256(extra).hexdigest()
    cases: dict[str, tuple[Callable[[Members], Members], str]] = {
        "missing": (lambda i: [m for m in i if m[0] != blob], "is missing"),
        "extra": (
            lambda i: [*i[:3], *sorted([*i[3:], (extra_name, extra)])],
            "named by no row",
        ),
        "duplicate": (lambda i: [*i[:4], i[3], *i[4:]], "twice"),
        "unknown": (lambda i: [*i, ("notes.txt", b"hi")], "not one a bundle has"),
        "traversal": (lambda i: [*i, ("../../etc/passwd", b"x")], "not one a bundle has"),
        "reordered": (lambda i: [i[1], i[0], *i[2:]], "where manifest.json belongs"),
        "no events": (lambda i: i[:2], "has no events.jsonl"),
    }
    for label, (edit, words) in cases.items():
        refused(edited(bundle, tmp_path / f"{label}.tgz", edit), contains=words)
    link = write(tmp_path / "link.tgz", items[:1], type=tarfile.SYMTYPE)
    refused(link, contains="not a regular file")


def test_verify_refuses_a_reordered_log_even_with_a_fresh_checkpoint(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    """An exporter who rewrites history and signs nothing can make the root match: the
    replay still refuses it."""
    from deploytrack.tlog import merkle

    bundle = export(ok, tmp_path / "b.tar.gz")
    items = dict(members(bundle))
    lines = items["events.jsonl"].split(b"\n")[:-1]
    lines[4], lines[5] = lines[5], lines[4]
    leaves = [merkle.leaf_hash(line) for line in lines]
    root = merkle.subtree_of(leaves)(0, len(leaves))
    import base64

    origin, size, _ = items["checkpoint"].decode().split("\n")[:3]
    items["events.jsonl"] = b"\n".join(lines) + b"\n"
    items["checkpoint"] = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n".encode()
    bad = write(tmp_path / "reordered.tgz", list(items.items()))
    refused(bad, contains="event 5 says it is event 6")


def test_verify_checks_the_signature_and_kept_checkpoints(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    private, public = ed25519_pair(tmp_path, "ci")
    _, other = ed25519_pair(tmp_path, "other")
    old = export(ok, tmp_path / "old.tar.gz", "--key", str(private))
    kept = tmp_path / "kept.checkpoint"
    kept.write_bytes(dict(members(old))["checkpoint"])
    ok(*record_args("cluster", "staging", "api"), "--digest", NGINX_GIT)
    new = export(ok, tmp_path / "new.tar.gz", "--key", str(private))
    report = json.loads(
        ok(
            "audit",
            "verify",
            str(new),
            "--key",
            str(public),
            "--checkpoint",
            str(kept),
            "-o",
            "json",
        ).stdout
    )
    assert [c["file"] for c in report["checkpoints"]] == [str(kept)]
    assert report["checkpoints"][0]["size"] < report["size"]
    refused(new, "--key", str(other), contains="not signed by")
    unsigned = export(ok, tmp_path / "unsigned.tar.gz")
    refused(unsigned, "--key", str(public), contains="not signed")
    # A kept checkpoint newer than the bundle; one whose root the log does not extend.
    refused(old, "--checkpoint", str(tmp_path / "new.cp"), contains="cannot read checkpoint")
    newer = tmp_path / "newer.checkpoint"
    newer.write_bytes(dict(members(new))["checkpoint"])
    refused(old, "--checkpoint", str(newer), contains="the bundle is older than the checkpoint")
    origin, size, root = kept.read_text().split("\n")[:3]
    import base64

    forged = base64.b64encode(bytes(32)).decode()
    rewritten = tmp_path / "rewritten.checkpoint"
    rewritten.write_text(f"{origin}\n{size}\n{forged}\n")
    refused(
        new,
        "--checkpoint",
        str(rewritten),
        contains=f"is not a prefix of the bundle's log: the history before event "
        f"{int(size) + 1} was rewritten",
    )
    elsewhere = tmp_path / "elsewhere.checkpoint"
    elsewhere.write_text(f"deploytrack.local/another\n{size}\n{root}\n")
    refused(new, "--checkpoint", str(elsewhere), contains="another database's")
    garbage = tmp_path / "garbage.checkpoint"
    garbage.write_bytes(b"\xff\x00not a checkpoint")
    refused(new, "--checkpoint", str(garbage), contains="checkpoint")


def test_verify_refuses_oversized_members_and_bombs_quickly(
    ok: Invoke, history: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    items = members(bundle)
    # A header that declares a blob of 1 GiB: refused from the header, nothing read.
    big = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
    big.size = 1 << 30
    path = tmp_path / "big.tgz"
    with gzip.open(path, "wb") as gz:
        for name, data in items[:3]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            gz.write(info.tobuf(format=tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512))
        gz.write(big.tobuf(format=tarfile.GNU_FORMAT))
    refused(path, contains="larger than a bundle's")
    # events.jsonl of 64 MiB of zeros and no newline: refused at the 8 MiB line bound.
    bomb = tmp_path / "bomb.tgz"
    with gzip.open(bomb, "wb", compresslevel=1) as gz:
        for name, data in items[:2]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            gz.write(info.tobuf(format=tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512))
        info = tarfile.TarInfo("events.jsonl")
        info.size = 64 << 20
        gz.write(info.tobuf(format=tarfile.GNU_FORMAT))
        zeros = bytes(1 << 20)
        for _ in range(64):
            gz.write(zeros)
    started = time.monotonic()
    refused(bomb, contains="larger than 8 MiB")
    assert time.monotonic() - started < 5
    # The bound on everything uncompressed.
    from deploytrack.services import audit

    monkeypatch.setattr(audit, "MAX_TOTAL_BYTES", 4096)
    refused(bundle, contains="uncompressed")


def test_verify_refuses_garbage_files(tmp_path: Path) -> None:
    for name, data in {
        "empty": b"",
        "text": b"hello\n",
        "gzipped-text": gzip.compress(b"hello world\n" * 100),
        "gzipped-zeros": gzip.compress(bytes(10240)),
    }.items():
        path = tmp_path / name
        path.write_bytes(data)
        refused(path, contains="the bundle does not verify")
    refused(tmp_path / "absent.tgz", contains="cannot read")
    folder = CliRunner().invoke(cli, ["audit", "verify", str(tmp_path)])
    assert_refused(folder, 2, "is a directory")


# --- import ----------------------------------------------------------------------------------


def test_import_answers_exactly_as_the_source(
    ok: Invoke, history: dict[str, str], tmp_path: Path, db_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    target = tmp_path / "imported.db"
    result = json.loads(ok_on(target, "audit", "import", str(bundle), "-o", "json").stdout)
    assert result["database"] == str(target)
    questions = [
        *ROUND_TRIP_QUESTIONS,
        ("deployment", "list", "--at", history["first"], "-o", "json"),
        ("deployment", "diff", "--from-logical-env", "staging", "--to-logical-env",
         "production", "-o", "json"),
    ]  # fmt: skip
    for question in questions:
        source, copy = ok_on(db_path, *question), ok_on(target, *question)
        assert source.stdout == copy.stdout, question
    listed = json.loads(ok_on(target, "deployment", "list", "-o", "json").stdout)
    assert {d["source"] for d in listed} == {"declared", "observed"}
    revealed = ok_on(target, *RESOLVE_API).stdout
    assert "s3cret-value" in revealed
    # The events are the source's, byte for byte; the secret is still only ciphertext.
    from conftest import query

    def events(path: Path) -> list[tuple[object, ...]]:
        return [tuple(r.values()) for r in query(path, "SELECT * FROM log_event ORDER BY seq")]

    assert events(target) == events(db_path)
    assert not any(
        b"s3cret-value" in bytes(r["body"]) for r in query(target, "SELECT body FROM log_event")
    )
    assert "Healthy" in ok_on(target, "doctor").stdout
    # And the copy goes on: a new record is logged after the imported history.
    ok_on(target, *record_args("edge", "canary", "web"), "--digest", NGINX_GIT)
    ok_on(target, "log", "verify")
    # The import wrote no event of its own, and the triggers are back: as many as a new
    # SQLite database has (the source may be PostgreSQL: tests/test_postgres_store.py).
    fresh = tmp_path / "fresh.db"
    ok_on(fresh, "environment", "list")
    triggers = "SELECT count(*) AS n FROM sqlite_master WHERE type = 'trigger'"
    assert query(target, triggers) == query(fresh, triggers)


def test_import_refuses_a_database_that_holds_anything(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    used = tmp_path / "used.db"
    ok_on(used, "environment", "create", "--name", "mine", "--type", "server")
    before = snapshot(used)
    assert_refused(dt(used, "audit", "import", str(bundle)), 1, "is not empty")
    assert snapshot(used) == before
    twice = tmp_path / "twice.db"
    ok_on(twice, "audit", "import", str(bundle))
    assert_refused(dt(twice, "audit", "import", str(bundle)), 1, "is not empty")


def test_import_of_a_bad_bundle_writes_nothing(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    items = members(bundle)
    bad = edited(
        bundle, tmp_path / "bad.tgz", change(first_named(items, "blobs/"), lambda d: flip(d, 3))
    )
    absent = tmp_path / "absent.db"
    assert_refused(dt(absent, "audit", "import", str(bad)), 1, "does not hash to its name")
    assert not absent.exists()
    fresh = tmp_path / "fresh.db"
    ok_on(fresh, "environment", "list")
    before = fresh.read_bytes()
    assert_refused(dt(fresh, "audit", "import", str(bad)), 1, "does not verify")
    assert fresh.read_bytes() == before


def test_an_imported_database_is_checked_like_any_other(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    """`log verify` on the copy finds an edit made after the import, as on the source."""
    import sqlite3

    bundle = export(ok, tmp_path / "b.tar.gz")
    target = tmp_path / "copy.db"
    ok_on(target, "audit", "import", str(bundle))
    conn = sqlite3.connect(target)
    conn.execute("DROP TRIGGER deployment_immutable")
    conn.execute("UPDATE deployment SET deployment_name = 'other' WHERE id = 1")
    conn.commit()
    conn.close()
    result = dt(target, "log", "verify")
    assert_refused(result, 1, 'deployment 1: deployment_name is "other" in the table')


def rehashed(items: dict[str, bytes]) -> Members:
    """The members with the bare checkpoint (and manifest size) of their events: what an
    exporter who rewrites history and signs nothing can write."""
    import base64

    from deploytrack.tlog import merkle

    lines = items["events.jsonl"].split(b"\n")[:-1]
    leaves = [merkle.leaf_hash(line) for line in lines]
    root = merkle.subtree_of(leaves)(0, len(leaves))
    origin = items["checkpoint"].decode().split("\n")[0]
    checkpoint = f"{origin}\n{len(lines)}\n{base64.b64encode(root).decode()}\n"
    return list({**items, "checkpoint": checkpoint.encode()}.items())


def test_verify_refuses_an_event_time_that_is_not_rfc3339(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    items = dict(members(bundle))
    lines = items["events.jsonl"].split(b"\n")
    event = json.loads(lines[1])
    lines[1] = lines[1].replace(event["time"].encode(), b"yesterday")
    items["events.jsonl"] = b"\n".join(lines)
    bad = write(tmp_path / "time.tgz", rehashed(items))
    refused(bad, contains="event 2 has a time that is not RFC 3339 UTC: 'yesterday'")


def test_verify_refuses_data_after_the_archive_and_a_value_that_is_not_text(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    tail = tmp_path / "tail.tgz"
    tail.write_bytes(gzip.compress(gzip.decompress(bundle.read_bytes()) + b"more" + bytes(508)))
    refused(tail, contains="data after the end of the archive")
    # A log (unsigned, its checkpoint made again) that commits to bytes that are no text.
    items = dict(members(bundle))
    (old,) = [n for n in items if n.startswith("values/")]
    value = bytes(16) + b"\xff\xfe"
    new = hashlib.sha256(value).hexdigest()
    items["events.jsonl"] = items["events.jsonl"].replace(old[7:].encode(), new.encode())
    del items[old]
    items["values/" + new] = value
    refused(write(tmp_path / "value.tgz", rehashed(items)), contains="holds no UTF-8 value")
    # A value no row of the log commits to: refused from its name, before it is read.
    stray = bytes(16) + b"stray"
    name = "values/" + hashlib.sha256(stray).hexdigest()
    extra = edited(
        bundle, tmp_path / "stray.tgz", lambda i: [*i[:3], *sorted([*i[3:], (name, stray)])]
    )
    refused(extra, contains="opens no commitment of the log")


def test_export_key_password_needs_a_key(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    result = dt(
        tmp_path / "deploytrack.db",
        "audit",
        "export",
        "--output",
        str(tmp_path / "b.tgz"),
        "--key-password-stdin",
    )
    assert_refused(result, 2, "--key-password-stdin needs --key")
    assert not (tmp_path / "b.tgz").exists()


def test_the_auditors_workflow_in_the_docs_runs_as_printed(
    ok: Invoke, history: dict[str, str], tmp_path: Path, db_path: Path, entry_point: str
) -> None:
    import re
    import subprocess

    page = (Path(__file__).parent.parent / "docs" / "audit.md").read_text(encoding="utf-8")
    block = re.search(r"## The auditor's workflow\n\n```sh\n(.*?)```", page, re.S)
    assert block is not None
    work = tmp_path / "work"
    (work / "kept").mkdir(parents=True)
    ed25519_pair(work, "ci-log")
    path = f"{Path(entry_point).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "DEPLOYTRACK_DB": str(db_path), "PATH": path}
    script = ["bash", "-euo", "pipefail", "-c", block.group(1)]
    done = subprocess.run(script, cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "The bundle verifies." in done.stdout
    assert "api" in done.stdout  # deployment list --history on the imported copy
    assert (work / "audit.db").exists()


def test_import_refuses_rows_that_name_rows_the_bundle_does_not_hold(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    """The replay knows no foreign keys; the import checks them all before it commits."""
    bundle = export(ok, tmp_path / "b.tar.gz")
    items = dict(members(bundle))
    lines = items["events.jsonl"].split(b"\n")
    at = next(i for i, line in enumerate(lines) if b'"type":"deployment.recorded"' in line)
    lines[at] = lines[at].replace(b'"environment_id":1', b'"environment_id":99')
    assert b'"environment_id":99' in lines[at]
    items["events.jsonl"] = b"\n".join(lines)
    bad = write(tmp_path / "dangling.tgz", rehashed(items))
    fresh = tmp_path / "fresh.db"
    ok_on(fresh, "environment", "list")
    before = snapshot(fresh)
    result = dt(fresh, "audit", "import", str(bad))
    assert_refused(result, 1, "row 1 names a row of environment that it does not hold")
    assert snapshot(fresh) == before
    # The connection's foreign keys were enforced again afterwards: the same database
    # takes the good bundle.
    ok_on(fresh, "audit", "import", str(bundle))
    ok_on(fresh, "log", "verify")


def test_verify_refuses_a_fifo_without_waiting_on_it(tmp_path: Path) -> None:
    fifo = tmp_path / "bundle.fifo"
    os.mkfifo(fifo)
    refused(fifo, contains="is not a regular file")


def test_export_signs_with_an_encrypted_key_read_with_its_password(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    from keyutil import cryptography_keys

    pair = cryptography_keys(tmp_path / "keys")["py-ed25519-enc"]
    bundle = tmp_path / "b.tgz"
    args = ("audit", "export", "--output", str(bundle), "--key", str(pair.private))
    wrong = dt(tmp_path / "deploytrack.db", *args, "--key-password-stdin", input="wrong\n")
    assert_refused(wrong, 1, "wrong password")
    assert list(tmp_path.glob("*.tgz*")) == [] and list(tmp_path.glob(".b.tgz*")) == []
    ok(*args, "--key-password-stdin", input=f"{pair.password}\n")
    ok("audit", "verify", str(bundle), "--key", str(pair.public))


def test_verify_refuses_a_blob_of_another_size_than_the_log_gives(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    items = dict(members(bundle))
    name = first_named(list(items.items()), "blobs/")
    size = len(items[name])
    ref = f'"sha256":"{name[13:]}","size":{size}}}'.encode()
    assert ref in items["events.jsonl"]
    lie = f'"sha256":"{name[13:]}","size":{size + 1}}}'.encode()
    items["events.jsonl"] = items["events.jsonl"].replace(ref, lie)
    bad = write(tmp_path / "size.tgz", rehashed(items))
    refused(bad, contains=f"is {size} bytes, the log says {size + 1}")


def test_import_refuses_rows_whose_columns_this_database_has_not(
    ok: Invoke, history: dict[str, str], tmp_path: Path
) -> None:
    bundle = export(ok, tmp_path / "b.tar.gz")
    items = dict(members(bundle))
    lines = items["events.jsonl"].split(b"\n")
    at = next(i for i, line in enumerate(lines) if b'"type":"environment.created"' in line)
    lines[at] = lines[at].replace(b'"created_at":', b'"colour":"blue","created_at":', 1)
    items["events.jsonl"] = b"\n".join(lines)
    bad = write(tmp_path / "columns.tgz", rehashed(items))
    target = tmp_path / "target.db"
    ok_on(target, "environment", "list")
    before = snapshot(target)
    assert_refused(dt(target, "audit", "import", str(bad)), 1, "(colour)")
    assert snapshot(target) == before


def test_loading_refuses_a_connection_with_the_capture_installed(tmp_path: Path) -> None:
    """The capture's TEMP triggers would log the import as events of its own."""
    from deploytrack.store import StoreError, bundle, open_store

    store = open_store(tmp_path / "fresh.db")
    try:
        with store.write():  # a write, even one that changes nothing, sets the capture up
            pass
        with pytest.raises(StoreError, match="capture"), bundle.Loading(store.db, store.path):
            pass
    finally:
        store.close()


def test_import_keeps_keyless_verifications_and_identity_policies(
    ok: Invoke, tmp_path: Path, db_path: Path
) -> None:
    """The tables of keyless verification (m007-m009) round-trip: verifications by
    identity, a policy's trusted identities with their trusted root, and an admission by
    identity answer the same on the copy."""
    from test_keyless import A_TXT, DEFAULT_IDENTITY, GITHUB, HAPPY, HAPPY_DIGEST

    ok("attestation", "import", str(HAPPY))
    identity = ("--certificate-identity", DEFAULT_IDENTITY, "--certificate-oidc-issuer", GITHUB)
    ok("attestation", "verify", HAPPY_DIGEST, *identity)
    ok("environment", "create", "--name", "cluster")
    ok("logical-environment", "policy", "set", "--name", "production",
       "--trusted-identity", DEFAULT_IDENTITY, "--trusted-issuer", GITHUB)  # fmt: skip
    ok(*record_args("cluster", "production", "app"), "--digest", A_TXT)
    bundle = export(ok, tmp_path / "b.tar.gz")
    target = tmp_path / "imported.db"
    ok_on(target, "audit", "import", str(bundle))
    for question in (
        ("attestation", "describe", HAPPY_DIGEST, "-o", "json"),
        ("discover", A_TXT, "-o", "json"),
        ("deployment", "describe", "1", "-o", "json"),
        ("logical-environment", "policy", "show", "--name", "production", "-o", "json"),
        ("log", "verify", "-o", "json"),
    ):
        source, copy = ok_on(db_path, *question), ok_on(target, *question)
        assert source.stdout == copy.stdout, question
    described = json.loads(ok_on(target, "deployment", "describe", "1", "-o", "json").stdout)
    assert described["admission"][0]["identity"] == DEFAULT_IDENTITY
    # The copy admits by the stored root and identity, as the source does.
    ok_on(target, "environment", "create", "--name", "edge")
    ok_on(target, *record_args("edge", "production", "app"), "--digest", A_TXT)
    ok_on(target, "log", "verify")
