"""Progress bars on stderr (cli/progress.py): drawn only when stderr is a terminal.

The long commands run as the installed entry point with stderr on a real pseudo-terminal
(`os.openpty()`), then with stderr on a pipe. On the terminal the bar is drawn and erased
when the command ends, so the screen keeps only what the command prints (an `Error:` line
alone on its line); on a pipe stderr stays empty. A few hundred files, artifacts and events
are enough: the bar is drawn when the work starts and once more, full, when it succeeds,
however fast it went. Then each service's progress adds up to the total its command
gives the bar, so the bar ends at 100%, never short of it or past it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Invoke, snapshot
from helpers import intoto_statement

from deploytrack.cli import progress as progress_module
from deploytrack.store import Store, open_store

COUNT = 300
PREDICATE = "https://example.com/release/v1"
ENV = "cluster-a"
# What the bar draws: click hides the cursor and goes back to the line's start.
DRAWN = b"\r\x1b[?25l"


def digest(n: int) -> str:
    return "sha256:" + hashlib.sha256(f"image {n}".encode()).hexdigest()


def pod(n: int) -> dict[str, Any]:
    """A running bare pod, as `kubectl get pods -A -o json` lists it, running image n."""
    image = f"ghcr.io/acme/app-{n}"
    status = {
        "name": "app",
        "state": {"running": {"startedAt": "2026-11-20T09:00:00Z"}},
        "ready": True,
        "restartCount": 0,
        "image": f"{image}:1.0",
        "imageID": f"{image}@{digest(n)}",
        "containerID": "containerd://" + "f" * 64,
        "started": True,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"app-{n}", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": f"{image}:1.0"}]},
        "status": {"phase": "Running", "containerStatuses": [status]},
    }


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    """COUNT attestation files, one per image."""
    folder = tmp_path / "attestations"
    folder.mkdir()
    out = []
    for n in range(COUNT):
        path = folder / f"app-{n}.json"
        path.write_text(json.dumps(intoto_statement([(f"app-{n}", digest(n))], PREDICATE)))
        out.append(path)
    return out


@pytest.fixture
def pods(tmp_path: Path) -> Path:
    path = tmp_path / "pods.json"
    doc = {"apiVersion": "v1", "kind": "List", "items": [pod(n) for n in range(COUNT)]}
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def history(ok: Invoke, files: list[Path], pods: Path) -> None:
    """COUNT attestations and COUNT records made by one sync: a log of some 300 events."""
    ok("attestation", "import", *map(str, files))
    ok("environment", "create", "--name", ENV, "--type", "kubernetes")
    ok(*SYNC, str(pods))


SYNC = ("deployment", "sync", "--env", ENV, "--logical-env", "production", "--from-kubectl")


class Ran:
    def __init__(self, code: int, stdout: str, stderr: bytes) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr


def _read_all(fd: int, proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    """Everything written to the terminal until the command exits and its side closes."""
    chunks = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: every copy of the terminal's other side is closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


def on_terminal(entry_point: str, db: Path, *args: str, env: dict[str, str] | None = None) -> Ran:
    """Run the entry point with stderr on a pseudo-terminal (stdout to a file)."""
    master, slave = os.openpty()
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                [entry_point, "--db", str(db), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=slave,
                env={**os.environ, "TERM": "xterm", **(env or {})},
            )
        finally:
            os.close(slave)
        try:
            raw = _read_all(master, proc, time.monotonic() + 60)
            code = proc.wait(timeout=60)
        finally:
            os.close(master)
        out.seek(0)
        return Ran(code, out.read().decode(), raw)


def on_pipe(entry_point: str, db: Path, *args: str) -> Ran:
    done = subprocess.run(
        [entry_point, "--db", str(db), *args], stdin=subprocess.DEVNULL, capture_output=True
    )
    return Ran(done.returncode, done.stdout.decode(), done.stderr)


_CONTROL = re.compile(r"(\r|\x1b\[K)")


def screen(raw: bytes) -> list[str]:
    """The lines a terminal shows after `raw`: carriage returns go back to the line's start,
    ESC [ K erases to its end, the cursor's show and hide draw nothing."""
    text = raw.decode().replace("\x1b[?25l", "").replace("\x1b[?25h", "")
    lines = []
    # The terminal turns each newline into CR LF (onlcr).
    for line in text.replace("\r\n", "\n").split("\n"):
        cells: list[str] = []
        column = 0
        for part in _CONTROL.split(line):
            if part == "\r":
                column = 0
            elif part == "\x1b[K":
                del cells[column:]
            else:
                for char in part:
                    if column < len(cells):
                        cells[column] = char
                    else:
                        cells.append(char)
                    column += 1
        lines.append("".join(cells).rstrip())
    while lines and not lines[-1]:
        lines.pop()
    assert "\x1b" not in "".join(lines), lines  # no escape this reading does not know
    return lines


def assert_bar(ran: Ran, *labels: str) -> None:
    """Each bar drawn in turn, filled to its end, erased: the screen keeps nothing of them."""
    assert ran.code == 0, (ran.stdout, ran.stderr)
    drawn = ran.stderr.split(DRAWN)[1:]
    for label in labels:
        mine = [line for line in drawn if line.startswith(label.encode())]
        assert mine and b"100%" in mine[-1], (label, ran.stderr)
    shown = [next(x for x in labels if line.startswith(x.encode())) for line in drawn]
    assert shown == sorted(shown, key=labels.index), ran.stderr  # one bar after the other
    assert screen(ran.stderr) == [], ran.stderr


def test_attestation_import_draws_a_bar_on_a_terminal_and_nothing_on_a_pipe(
    entry_point: str, files: list[Path], tmp_path: Path
) -> None:
    args = ("attestation", "import", *map(str, files))
    ran = on_terminal(entry_point, tmp_path / "tty.db", *args)
    assert_bar(ran, "Reading attestations", "Storing attestations")
    assert ran.stdout.count("Imported sha256:") == COUNT
    piped = on_pipe(entry_point, tmp_path / "pipe.db", *args)
    assert piped.code == 0 and piped.stderr == b""
    assert piped.stdout == ran.stdout.replace("tty.db", "pipe.db")


def test_sync_draws_a_bar_per_observed_artifact(
    entry_point: str, ok: Invoke, files: list[Path], pods: Path, db_path: Path
) -> None:
    ok("attestation", "import", *map(str, files))
    ok("environment", "create", "--name", ENV, "--type", "kubernetes")
    ran = on_terminal(entry_point, db_path, *SYNC, str(pods))
    assert_bar(ran, "Syncing")
    assert f"{COUNT} created" in ran.stdout
    piped = on_pipe(entry_point, db_path, *SYNC, str(pods))
    assert piped.code == 0 and piped.stderr == b""
    assert f"{COUNT} heartbeat" in piped.stdout


def test_log_verify_draws_a_bar_and_prints_the_same(
    entry_point: str, history: None, db_path: Path
) -> None:
    ran = on_terminal(entry_point, db_path, "log", "verify")
    assert_bar(ran, "Verifying the log")
    piped = on_pipe(entry_point, db_path, "log", "verify")
    assert piped.code == 0 and piped.stderr == b""
    assert piped.stdout == ran.stdout and ran.stdout.endswith("The log verifies.\n")


def test_audit_export_verify_import_draw_bars(
    entry_point: str, history: None, db_path: Path, tmp_path: Path
) -> None:
    tty_bundle, pipe_bundle = tmp_path / "tty.tgz", tmp_path / "pipe.tgz"
    assert_bar(
        on_terminal(entry_point, db_path, "audit", "export", "--output", str(tty_bundle)),
        "Exporting the log",
    )
    piped = on_pipe(entry_point, db_path, "audit", "export", "--output", str(pipe_bundle))
    assert piped.code == 0 and piped.stderr == b""
    assert tty_bundle.read_bytes() == pipe_bundle.read_bytes()

    ran = on_terminal(entry_point, db_path, "audit", "verify", str(tty_bundle))
    assert_bar(ran, "Verifying the bundle")
    piped = on_pipe(entry_point, db_path, "audit", "verify", str(tty_bundle))
    assert piped.code == 0 and piped.stderr == b"" and piped.stdout == ran.stdout

    ran = on_terminal(entry_point, tmp_path / "tty-copy.db", "audit", "import", str(tty_bundle))
    assert_bar(ran, "Importing the bundle")
    piped = on_pipe(entry_point, tmp_path / "pipe-copy.db", "audit", "import", str(tty_bundle))
    assert piped.code == 0 and piped.stderr == b""


def _tampered(bundle: Path, out: Path) -> Path:
    """The bundle with one event changed and gzip written again (its CRC right)."""
    data = gzip.decompress(bundle.read_bytes())
    at = data.index(b'"type":"deployment.recorded"')
    data = data[:at] + b'"type":"deployment.recordeD"' + data[at + 28 :]
    out.write_bytes(gzip.compress(data, mtime=0))
    return out


def test_a_refusal_erases_the_bar_before_its_error_line(
    entry_point: str, history: None, db_path: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.tgz"
    assert on_pipe(entry_point, db_path, "audit", "export", "--output", str(bundle)).code == 0
    bad = _tampered(bundle, tmp_path / "bad.tgz")
    ran = on_terminal(entry_point, db_path, "audit", "verify", str(bad))
    assert ran.code == 1 and DRAWN + b"Verifying the bundle" in ran.stderr, ran.stderr
    [line] = screen(ran.stderr)
    assert line.startswith("Error: the bundle does not verify: "), ran.stderr
    piped = on_pipe(entry_point, db_path, "audit", "verify", str(bad))
    assert piped.code == 1 and piped.stderr.decode() == line + "\n"


def test_a_bad_file_refused_mid_import_leaves_one_error_line_and_no_database(
    entry_point: str, files: list[Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"_type": "https://in-toto.io/Statement/v1"}')
    db = tmp_path / "new.db"
    ran = on_terminal(entry_point, db, "attestation", "import", *map(str, files), str(bad))
    assert ran.code == 1 and DRAWN + b"Reading attestations" in ran.stderr, ran.stderr
    [line] = screen(ran.stderr)
    assert line.startswith("Error: ") and "bad.json" in line, line
    assert not db.exists()


def test_a_dumb_terminal_gets_no_bar(entry_point: str, history: None, db_path: Path) -> None:
    """TERM=dumb: the escapes a bar is redrawn with would print as garbage."""
    ran = on_terminal(entry_point, db_path, "log", "verify", env={"TERM": "dumb"})
    assert ran.code == 0 and ran.stderr == b""


def test_redraws_are_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A million units do not write a million lines to the terminal: at most one redraw
    per REDRAW_SECONDS, plus the first and the last."""
    master, slave = os.openpty()
    written: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            written.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stderr = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setenv("TERM", "xterm")
    units = 200_000
    started = time.monotonic()
    with progress_module.progress("Counting", units) as advance:
        for _ in range(units):
            advance(1)
    elapsed = time.monotonic() - started
    monkeypatch.undo()
    stderr.close()
    reader.join(timeout=10)
    os.close(master)
    raw = b"".join(written)
    draws = raw.count(DRAWN)
    assert 2 <= draws <= elapsed / progress_module.REDRAW_SECONDS + 3, (draws, elapsed)
    assert b"100%" in raw.rsplit(DRAWN, 1)[1]
    assert screen(raw) == []


def test_no_terminal_no_output_and_no_total_asked(capsys: pytest.CaptureFixture[str]) -> None:
    def total() -> int:
        raise AssertionError("the total is asked for only when a bar is drawn")

    with progress_module.progress("Counting", total) as advance:
        advance(5)
    assert capsys.readouterr() == ("", "")


# -- each service's progress adds up to the total its command gives the bar ---------------


@pytest.fixture
def store(history: None, db_path: Path) -> Iterator[Store]:
    opened = open_store(db_path)
    yield opened
    opened.close()


class Counter:
    def __init__(self) -> None:
        self.done = 0
        self.calls = 0

    def __call__(self, n: int) -> None:
        assert n > 0
        self.done += n
        self.calls += 1


def test_log_verify_counts_each_event_of_each_pass_and_each_row(store: Store) -> None:
    from deploytrack.services import log

    counter = Counter()
    assert log.verify(store, progress=counter).ok
    # Each of the 300 attestations is a row of attestation, blob and attestation_subject;
    # each synced record a row of deployment: all compared with the replay.
    assert counter.done == log.verify_units(store) > 2 * COUNT + 4 * COUNT


def test_audit_counts_events_blobs_and_bytes(store: Store, tmp_path: Path) -> None:
    from deploytrack.services import audit

    exported = Counter()
    bundle = str(tmp_path / "bundle.tgz")
    result = audit.export(store, bundle, progress=exported)
    units = audit.export_units(store)
    assert exported.done == units == result.counts.events + result.counts.blobs
    assert result.counts.blobs == COUNT

    verified = Counter()
    audit.verify(bundle, progress=verified)
    assert verified.done == audit.bundle_units(bundle) == os.path.getsize(bundle)
    assert verified.calls > 1  # told as it reads, not once at the end

    imported = Counter()
    audit.import_bundle(lambda: open_store(tmp_path / "copy.db"), bundle, progress=imported)
    assert imported.done == 2 * audit.bundle_units(bundle)


def test_sync_counts_each_observed_artifact(store: Store, pods: Path) -> None:
    from deploytrack.observe import kubectl
    from deploytrack.services import sync

    observed = kubectl.parse(pods.read_bytes())
    counter = Counter()
    sync.sync(store, ENV, "production", observed, dry_run=True, progress=counter)
    assert counter.done == counter.calls == len(observed) == COUNT


def test_an_import_counts_each_file_then_each_attestation_twice(
    files: list[Path], db_path: Path
) -> None:
    from deploytrack.services import evidence

    sources = [evidence.Source(str(path), path.read_bytes()) for path in files]
    counter = Counter()
    parsed = evidence.parse_sources(sources, progress=counter)
    assert len(parsed) == counter.done == counter.calls == COUNT
    store = open_store(db_path)
    try:
        # New, then stored already: the bar of either ends full.
        for created in (COUNT, 0):
            stored = Counter()
            results = evidence.store_parsed(store, parsed, evidence.Overrides(), progress=stored)
            assert sum(r.created for r in results) == created
            assert stored.done == 2 * len(parsed)
    finally:
        store.close()


def test_an_unchanged_database_after_a_refusal_on_a_terminal(
    entry_point: str, history: None, db_path: Path, pods: Path
) -> None:
    """The bar changes nothing of a refusal: exit 1, one line, the database as it was."""
    before = snapshot(db_path)
    unknown_env = (*SYNC[:3], "nowhere", *SYNC[4:])
    ran = on_terminal(entry_point, db_path, *unknown_env, str(pods))
    assert ran.code == 1
    [line] = screen(ran.stderr)
    assert line.startswith("Error: ") and "nowhere" in line
    assert snapshot(db_path) == before
