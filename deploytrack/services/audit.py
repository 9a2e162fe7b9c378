"""The audit bundle: the whole event log in one file an auditor verifies offline, and a
database built again from it.

A bundle is a gzipped tar whose members come in a fixed order (docs/audit.md):
`manifest.json`, `checkpoint`, `events.jsonl` (each event's stored bytes, one per line),
then `blobs/sha256/<hex>` (every stored blob and ciphertext, by the SHA-256 the row images
give) and `values/<hex>` (16-byte salt || UTF-8 value: what opens the log's commitment to
a plain variable value), each sorted by name. Every member has mtime 0 and owner 0, and
the gzip header no time or name: two exports of one database are the same bytes.

Reading streams the tar once (`_read`): every member is bounded before it is read, the
events are hashed into a right frontier and replayed (tlog.replay), blobs are hashed in
chunks. Memory grows with the number of rows and blobs, not with the log's length.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from deploytrack import __version__
from deploytrack.services import ServiceError
from deploytrack.services.views.audit import (
    BundleCounts,
    BundleReport,
    ExportResult,
    ImportResult,
    KeptCheckpoint,
    Running,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from deploytrack.store import Store
    from deploytrack.store.bundle import Loader
    from deploytrack.tlog.note import Checkpoint, Verifier

FORMAT = "deploytrack-audit-bundle"
VERSION = 1

MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint"
EVENTS = "events.jsonl"
BLOB_PREFIX = "blobs/sha256/"
VALUE_PREFIX = "values/"
_NAME = re.compile(r"(blobs/sha256/|values/)([0-9a-f]{64})")

# Bounds, checked from a member's tar header before its bytes are read.
MAX_MANIFEST_BYTES = 1 << 20
MAX_EVENT_BYTES = 8 << 20  # one line of events.jsonl
# A blob is an attestation (4 MiB) or a material file `attestation create` kept (up to
# 256 MiB for an artifact), or a ciphertext: the largest, and a margin.
MAX_BLOB_BYTES = (256 << 20) + (1 << 20)
MAX_VALUE_BYTES = 16 + 64 * 1024 + 1024
# Everything the tar holds, uncompressed: a decompression bomb stops here.
MAX_TOTAL_BYTES = 64 << 30
# What may follow the tar's end-of-archive blocks: zero padding to its record size.
MAX_TRAILER_BYTES = 1 << 20
_CHUNK = 1 << 20


class BundleError(ServiceError):
    """The bundle is malformed, incomplete, or does not verify."""


# What the commands draw a bar with (cli/progress.py): called with the units just done.
Progress = Callable[[int], None]


# -- exporting ---------------------------------------------------------------------------


class _EventStream(io.RawIOBase):
    """events.jsonl as a file tarfile can copy: bodies and newlines, a batch at a time."""

    def __init__(
        self, events: Iterator[tuple[int, int, str, bytes, bytes]], progress: Progress | None
    ) -> None:
        self._events = events
        self._buffer = b""
        self._progress = progress

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            event = next(self._events, None)
            if event is None:
                break
            self._buffer += event[3] + b"\n"
            if self._progress is not None:
                self._progress(1)
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def _info(name: str, size: int) -> Any:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def export_units(store: Store) -> int:
    """What `export` reports progress in: each event, blob and value it writes."""
    from deploytrack.store import bundle, eventlog

    with store.read():
        _, blob_count, value_count = bundle.counts(store.db)
        return eventlog.size(store.db) + blob_count + value_count


def export(
    store: Store,
    output: str,
    key: Ed25519PrivateKey | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the bundle to `output` (a new file, 0600): to a temporary file beside it,
    renamed into place only when complete, so a failed export leaves nothing.
    `progress(1)` after each event, blob and value written (export_units in all)."""
    import gzip
    import json
    import tarfile

    from deploytrack import timeutil
    from deploytrack.files import open_new_private
    from deploytrack.services import checkpoints
    from deploytrack.store import bundle, eventlog

    if os.path.lexists(output):
        raise ServiceError(f"{output} exists: choose another path or remove it first")
    folder, base = os.path.split(os.path.abspath(output))
    temporary = os.path.join(folder, f".{base}.{os.urandom(6).hex()}.part")
    try:
        fd = open_new_private(temporary)
    except OSError as exc:
        raise ServiceError(f"cannot write {output}: {exc.strerror}") from None
    try:
        with store.read():
            db = store.db
            checkpoint = checkpoints.current(store)
            note = checkpoints.sign(checkpoint, key) if key is not None else checkpoint.text()
            rows, blob_count, value_count = bundle.counts(db)
            rows = {name: n for name, n in sorted(rows.items()) if n}
            counts = BundleCounts(checkpoint.size, rows, blob_count, value_count)
            last = bundle.last_event_time(db)
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "origin": checkpoint.origin,
                "tree_size": checkpoint.size,
                "root": base64.b64encode(checkpoint.root).decode(),
                "counts": {
                    "events": counts.events,
                    "rows": counts.rows,
                    "blobs": counts.blobs,
                    "values": counts.values,
                },
                "deploytrack_version": __version__,
                # The time of the last event, not of the export: the bundle is the log as
                # of that moment, and two exports of it are the same bytes.
                "created_at": timeutil.rfc3339(last),
            }
            raw = os.fdopen(fd, "wb")
            fd = -1  # the file object closes it now
            with raw:
                # mtime 0 and no file name: the gzip header says nothing of when or where.
                gz_file = gzip.GzipFile(
                    filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
                )
                with (
                    gz_file as gz,
                    tarfile.open(fileobj=gz, mode="w|", format=tarfile.GNU_FORMAT) as tar,
                ):
                    head = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
                    for name, data in ((MANIFEST, head), (CHECKPOINT, note.encode())):
                        tar.addfile(_info(name, len(data)), io.BytesIO(data))
                    tar.addfile(
                        _info(EVENTS, bundle.events_size(db)),
                        _EventStream(eventlog.events(db), progress),
                    )
                    for name, data in bundle.blobs(db):
                        tar.addfile(_info(BLOB_PREFIX + name, len(data)), io.BytesIO(data))
                        if progress is not None:
                            progress(1)
                    for name, data in bundle.values(db):
                        tar.addfile(_info(VALUE_PREFIX + name, len(data)), io.BytesIO(data))
                        if progress is not None:
                            progress(1)
                # On disk before it gets its name: a crash never leaves a partial bundle
                # under the name the user gave.
                raw.flush()
                os.fsync(raw.fileno())
        _publish(temporary, output)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with _suppress():
            os.unlink(temporary)
        raise
    return ExportResult(
        file=output,
        origin=checkpoint.origin,
        size=checkpoint.size,
        root=base64.b64encode(checkpoint.root).decode(),
        signed=key is not None,
        counts=counts,
    )


def _suppress() -> Any:
    import contextlib

    return contextlib.suppress(OSError)


def _publish(temporary: str, output: str) -> None:
    """Move the finished file into place, never over a file that appeared meanwhile: a
    hard link fails when `output` exists, where a rename would replace it."""
    try:
        os.link(temporary, output)
    except FileExistsError:
        raise ServiceError(f"{output} exists: choose another path or remove it first") from None
    except OSError as exc:
        raise ServiceError(f"cannot write {output}: {exc.strerror}") from None
    os.unlink(temporary)


# -- reading -----------------------------------------------------------------------------


class _Reported(io.RawIOBase):
    """The bundle file as read, each read told to `progress` in bytes: a bundle's work is
    its bytes (one blob may be 256 MiB where an event is a few hundred bytes)."""

    def __init__(self, inner: IO[bytes], progress: Progress) -> None:
        self.inner = inner
        self.progress = progress

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        if data:
            self.progress(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def bundle_units(path: str) -> int:
    """What `verify` reports progress in: the bundle file's bytes (0 when it cannot be
    read: the read itself then says why)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class _Bounded(io.RawIOBase):
    """The decompressed stream, refused once it passes `limit` bytes."""

    def __init__(self, inner: io.BufferedIOBase, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = _CHUNK
        data = self.inner.read(min(size, self.limit + 1 - self.count))
        self.count += len(data)
        if self.count > self.limit:
            raise BundleError(
                f"the bundle holds more than {self.limit >> 30} GiB uncompressed: not a "
                "bundle deploytrack writes (a decompression bomb?)"
            )
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass
class _State:
    """What a read found so far."""

    manifest: dict[str, Any] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    signed_by: tuple[str, ...] = ()
    frontier: list[tuple[int, bytes]] = field(default_factory=list)
    size: int = 0
    blobs: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)
    # What the rows at the end of the log name: blob name -> size, value names.
    wanted_blobs: dict[str, int] = field(default_factory=dict)
    wanted_values: set[str] = field(default_factory=set)


class _BundleReplay:
    """tlog.replay.Replay, plus what the bundle's final state needs beyond a hash per row:
    the blobs and values each row names, and the rows that say what ran where (every
    environment and logical environment, the active deployment records)."""

    KEPT = ("environment", "logical_environment")

    def __init__(self) -> None:
        from deploytrack.tlog.replay import Replay

        self.replay = Replay()
        self.refs: dict[tuple[str, bytes], tuple[tuple[str, str, int | None], ...]] = {}
        self.kept: dict[str, dict[Any, dict[str, Any]]] = {
            "environment": {},
            "logical_environment": {},
            "deployment": {},
        }

    def apply(self, event: dict[str, Any]) -> None:
        import json

        self.replay.apply(event)
        for change in event["changes"]:
            # Replay has checked the change; equal keys give equal text (no RFC 8785 needed).
            table = change["table"]
            ident = (table, json.dumps(change["key"], sort_keys=True).encode())
            row = change.get("row")
            self.refs.pop(ident, None)
            kept = self.kept.get(table)
            if kept is not None:
                kept.pop(ident, None)
            if row is None:
                continue
            refs = tuple(_refs(table, row))
            if refs:
                self.refs[ident] = refs
            if kept is not None and (table != "deployment" or row.get("status") == "deployed"):
                kept[ident] = row


def _refs(table: str, row: dict[str, Any]) -> Iterator[tuple[str, str, int | None]]:
    """("blob" | "value", hex, size) for every stored value a row image names by hash."""
    for column, value in row.items():
        if not isinstance(value, dict):
            continue
        if set(value) == {"sha256", "size"}:
            digest, size = value["sha256"], value["size"]
            if not isinstance(digest, str) or not isinstance(size, int):
                raise _refuse(f"a row of {table} names a malformed blob in {column}")
            yield "blob", digest, size
        elif set(value) == {"commitment"} and isinstance(value["commitment"], str):
            yield "value", value["commitment"], None


def _refuse(problem: str) -> BundleError:
    return BundleError(f"the bundle does not verify: {problem}")


def _read(
    path: str,
    keys: Sequence[str] = (),
    kept: Sequence[tuple[str, Checkpoint]] = (),
    loader: Loader | None = None,
    progress: Progress | None = None,
) -> BundleReport:
    """Read and check the bundle at `path` in one pass; with `loader`, load it too."""
    import gzip
    import stat
    import tarfile
    import zlib

    from deploytrack.tlog import LogFormatError

    try:
        # O_NONBLOCK: a FIFO with no writer would otherwise hang the open itself, before
        # the check below refuses it. A regular file ignores the flag.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}") from None
    handle = os.fdopen(fd, "rb")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BundleError(f"{path} is not a regular file")
        source: IO[bytes] | _Reported = handle if progress is None else _Reported(handle, progress)
        bounded = _Bounded(gzip.GzipFile(fileobj=source, mode="rb"), MAX_TOTAL_BYTES)
        state = _State()
        replay = _BundleReplay()
        try:
            with tarfile.open(fileobj=bounded, mode="r|") as tar:
                _members(tar, state, replay, keys, kept, loader)
                # The tar's end: zero padding, then the gzip trailer (checked by reading
                # to the end: a truncated or changed file fails its CRC or length here).
                while data := bounded.read(_CHUNK):
                    if data.strip(b"\0") or bounded.count > MAX_TOTAL_BYTES:
                        raise _refuse("there is data after the end of the archive")
                    if bounded.count - tar.offset > MAX_TRAILER_BYTES:
                        raise _refuse("the archive ends with too much padding")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise _refuse(f"{path} is not a complete gzipped tar ({_why(exc)})") from None
        except LogFormatError as exc:
            raise _refuse(str(exc)) from None
        except OSError as exc:
            raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        handle.close()
    return _report(path, state, replay)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:120]


def _members(
    tar: Any,
    state: _State,
    replay: _BundleReplay,
    keys: Sequence[str],
    kept: Sequence[tuple[str, Checkpoint]],
    loader: Loader | None,
) -> None:
    """Each member in its turn: the fixed three, then blobs and values in name order."""
    order = [MANIFEST, CHECKPOINT, EVENTS]
    previous = ""
    for member in tar:
        name = member.name
        if not member.isreg():
            raise _refuse(f"member {name[:100]!r} is not a regular file")
        if order:
            if name != order[0]:
                raise _refuse(f"member {name[:100]!r} is where {order[0]} belongs")
            order.pop(0)
            source = tar.extractfile(member)
            if name == MANIFEST:
                _manifest(_bounded_read(source, member.size, MAX_MANIFEST_BYTES, name), state)
            elif name == CHECKPOINT:
                data = _bounded_read(source, member.size, MAX_MANIFEST_BYTES, name)
                _checkpoint(data, state, keys, kept)
            else:
                _events(source, member.size, state, replay, kept, loader)
                _check_log(state, replay)
            continue
        match = _NAME.fullmatch(name)
        if match is None:
            raise _refuse(f"member {name[:100]!r} is not one a bundle has")
        if name <= previous:  # in name order, "blobs/" before "values/"
            what = "twice" if name == previous else "out of order"
            raise _refuse(f"member {name} is {what}")
        previous = name
        prefix, hexname = match.groups()
        limit = MAX_BLOB_BYTES if prefix == BLOB_PREFIX else MAX_VALUE_BYTES
        if member.size > limit:
            raise _refuse(f"member {name} is {member.size} bytes: larger than a bundle's")
        # Refused from its header, before its bytes are read: a bundle holds only what
        # its (already verified) log names, at the size the log gives.
        if prefix == BLOB_PREFIX:
            if hexname not in state.wanted_blobs:
                raise _refuse(f"blob sha256:{hexname} is named by no row of the log")
            if member.size != state.wanted_blobs[hexname]:
                raise _refuse(
                    f"blob sha256:{hexname} is {member.size} bytes, the log says "
                    f"{state.wanted_blobs[hexname]}"
                )
        elif hexname not in state.wanted_values:
            raise _refuse(f"value {hexname} opens no commitment of the log")
        source = tar.extractfile(member)
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        remaining = member.size
        while remaining:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                raise _refuse(f"member {name} is truncated")
            remaining -= len(chunk)
            digest.update(chunk)
            if loader is not None or prefix == VALUE_PREFIX:
                chunks.append(chunk)
        if digest.hexdigest() != hexname:
            raise _refuse(f"member {name} does not hash to its name: its bytes were changed")
        if prefix == BLOB_PREFIX:
            state.blobs.add(hexname)
            if loader is not None:
                loader.blob(hexname, b"".join(chunks))
        else:
            data = b"".join(chunks)
            try:
                data[16:].decode("utf-8")
            except UnicodeDecodeError:
                raise _refuse(f"member {name} holds no UTF-8 value after its salt") from None
            if len(data) < 16:
                raise _refuse(f"member {name} is shorter than a salt")
            state.values.add(hexname)
            if loader is not None:
                loader.value(hexname, data)
    if order:
        raise _refuse(f"the bundle has no {order[0]}: the file is truncated")


def _bounded_read(source: IO[bytes], size: int, limit: int, name: str) -> bytes:
    if size > limit:
        raise _refuse(f"member {name} is {size} bytes: larger than a bundle's")
    data = source.read(size)
    if len(data) != size:
        raise _refuse(f"member {name} is truncated")
    return data


def _manifest(data: bytes, state: _State) -> None:
    from deploytrack.jsondoc import JSONError, loads

    try:
        manifest = loads(data, max_bytes=MAX_MANIFEST_BYTES)
    except JSONError as exc:
        raise _refuse(f"its manifest is {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(f"its manifest does not say format {FORMAT}: not an audit bundle")
    if manifest.get("version") != VERSION:
        raise _refuse(
            f"it is version {manifest.get('version')!r:.20} of the format; this deploytrack "
            f"reads version {VERSION}"
        )
    counts = manifest.get("counts")
    if (
        not isinstance(manifest.get("origin"), str)
        or not isinstance(manifest.get("tree_size"), int)
        or not isinstance(counts, dict)
        or not all(isinstance(counts.get(k), int) for k in ("events", "blobs", "values"))
        or not isinstance(counts.get("rows"), dict)
    ):
        raise _refuse("its manifest lacks the origin, tree size or counts")
    state.manifest = manifest


def _checkpoint(
    data: bytes, state: _State, keys: Sequence[str], kept: Sequence[tuple[str, Checkpoint]]
) -> None:
    from deploytrack.services import checkpoints
    from deploytrack.tlog import LogFormatError
    from deploytrack.tlog.note import read_checkpoint

    origin = state.manifest["origin"]
    verifiers: list[Verifier] = checkpoints.verifiers(keys, origin) if keys else []
    try:
        checkpoint = read_checkpoint(data, verifiers)
    except LogFormatError as exc:
        raise _refuse(f"its checkpoint: {exc}") from None
    if checkpoint.origin != origin:
        raise _refuse(f"its checkpoint is of origin {checkpoint.origin}, its manifest {origin}")
    for file, other in kept:
        if other.origin != origin:
            raise _refuse(
                f"checkpoint {file} is of origin {other.origin}, the bundle's log is {origin}: "
                "it is another database's"
            )
        if other.size > checkpoint.size:
            raise _refuse(
                f"checkpoint {file} has size {other.size}, the bundle's log {checkpoint.size} "
                "events: the bundle is older than the checkpoint, or the log was cut short"
            )
    state.checkpoint = checkpoint
    state.signed_by = tuple(v.label for v in verifiers)


def _events(
    source: IO[bytes],
    size: int,
    state: _State,
    replay: _BundleReplay,
    kept: Sequence[tuple[str, Checkpoint]],
    loader: Loader | None,
) -> None:
    from deploytrack.tlog import merkle
    from deploytrack.tlog.replay import parse_event

    expected = {other.size: (file, other) for file, other in kept}
    _prefix(0, merkle.EMPTY_ROOT, expected)
    remaining = size
    while remaining:
        line = source.readline(min(MAX_EVENT_BYTES + 1, remaining))
        if not line:
            raise _refuse(f"member {EVENTS} is truncated")
        remaining -= len(line)
        seq = state.size + 1
        if not line.endswith(b"\n"):
            if len(line) > MAX_EVENT_BYTES:
                raise _refuse(f"event {seq} is larger than {MAX_EVENT_BYTES >> 20} MiB")
            raise _refuse(f"event {seq} has no newline: {EVENTS} is truncated")
        body = line[:-1]
        event = parse_event(body, seq)
        replay.apply(event)
        leaf = merkle.leaf_hash(body)
        index, level, current = seq - 1, 0, leaf
        while state.frontier and state.frontier[-1][0] == level:
            _, left = state.frontier.pop()
            current = merkle.node_hash(left, current)
            level, index = level + 1, index >> 1
        state.frontier.append((level, current))
        state.size = seq
        if seq in expected:
            _prefix(seq, merkle.root_from_frontier([h for _, h in state.frontier]), expected)
        time = _event_time(event["time"], seq)
        if loader is not None:
            loader.event(seq, time, event, body, leaf)


def _event_time(text: str, seq: int) -> int:
    """An event's time in microseconds, from the RFC 3339 UTC form the log writes."""
    from datetime import datetime

    from deploytrack import timeutil

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is not None and moment.utcoffset() is not None:
        us = timeutil.to_us(moment)
        if timeutil.rfc3339(us) == text:
            return us
    raise _refuse(f"event {seq} has a time that is not RFC 3339 UTC: {text[:40]!r}")


def _prefix(size: int, root: bytes, expected: dict[int, tuple[str, Checkpoint]]) -> None:
    found = expected.get(size)
    if found is None:
        return
    file, other = found
    if other.root != root:
        raise _refuse(
            f"checkpoint {file} of size {size} (root {other.root.hex()[:8]}…) is not a prefix "
            f"of the bundle's log: the history before event {size + 1} was rewritten"
        )


def _check_log(state: _State, replay: _BundleReplay) -> None:
    """Once the events are read: they are the log the checkpoint names; then what the
    rows at its end name by hash, which the members that follow must be, and no more."""
    from deploytrack.tlog import merkle

    checkpoint = state.checkpoint
    assert checkpoint is not None  # the checkpoint member comes before the events
    root = merkle.root_from_frontier([h for _, h in state.frontier])
    if state.size != checkpoint.size:
        raise _refuse(f"its checkpoint says {checkpoint.size} events, {EVENTS} holds {state.size}")
    if root != checkpoint.root:
        raise _refuse(
            "its events do not hash to its checkpoint's root: an event was changed, added or "
            "removed"
        )
    if replay.replay.origin != checkpoint.origin:
        raise _refuse(f"event 1 names origin {replay.replay.origin}, its checkpoint another")
    for refs in replay.refs.values():
        for kind, name, size in refs:
            if kind == "blob":
                state.wanted_blobs[name] = size or 0
            else:
                state.wanted_values.add(name)


def _report(path: str, state: _State, replay: _BundleReplay) -> BundleReport:
    """The checks that need the whole bundle read: the tree against its checkpoint, blobs
    and values against the rows, the manifest's counts; then what ran where."""
    checkpoint = state.checkpoint
    assert checkpoint is not None  # _members refuses a bundle without one
    for name in sorted(state.wanted_blobs):
        if name not in state.blobs:
            raise _refuse(f"blob sha256:{name}, which the log's rows name, is missing")
    for name in sorted(state.wanted_values):
        if name not in state.values:
            raise _refuse(f"the value of commitment {name}, which the log's rows name, is missing")
    values = state.wanted_values
    rows = replay.replay.counts()
    counts = state.manifest["counts"]
    listed = {k: v for k, v in counts["rows"].items() if v}
    found = BundleCounts(state.size, dict(sorted(rows.items())), len(state.blobs), len(values))
    for what, said, actual in (
        ("events", counts["events"], found.events),
        ("blobs", counts["blobs"], found.blobs),
        ("values", counts["values"], found.values),
        ("tree size", state.manifest["tree_size"], found.events),
    ):
        if said != actual:
            raise _refuse(f"its manifest counts {said} {what}, the bundle holds {actual}")
    if listed != found.rows:
        table = min(
            set(listed) ^ set(found.rows) | {t for t in listed if listed[t] != found.rows.get(t)}
        )
        raise _refuse(
            f"its manifest counts {listed.get(table, 0)} rows of {table}, its events leave "
            f"{found.rows.get(table, 0)}"
        )
    if state.manifest["origin"] != checkpoint.origin:
        raise _refuse("its manifest names another origin than its checkpoint")
    return BundleReport(
        file=path,
        origin=checkpoint.origin,
        size=checkpoint.size,
        root=base64.b64encode(checkpoint.root).decode(),
        signed_by=state.signed_by,
        checkpoints=(),
        counts=found,
        running=_running(replay),
    )


def _running(replay: _BundleReplay) -> tuple[Running, ...]:
    envs = {row.get("id"): row for row in replay.kept["environment"].values()}
    stages = {row.get("id"): row for row in replay.kept["logical_environment"].values()}
    out = []
    for row in replay.kept["deployment"].values():
        env = envs.get(row.get("environment_id"), {})
        stage = stages.get(row.get("logical_environment_id"), {})
        out.append(
            Running(
                environment=str(env.get("name", "?")),
                logical_environment=str(stage.get("name", "?")),
                deployment_name=str(row.get("deployment_name")),
                kind=str(row.get("kind")),
                digest=str(row.get("digest")),
                record=int(row.get("id") or 0),
                created_at=int(row.get("created_at") or 0),
            )
        )
    out.sort(key=lambda r: (r.environment, r.logical_environment, r.deployment_name, r.kind))
    return tuple(out)


def _kept_checkpoints(files: Sequence[str], keys: Sequence[str]) -> list[tuple[str, Checkpoint]]:
    """The --checkpoint files, parsed (signatures checked once the origin is known)."""
    from deploytrack.files import read_at_most
    from deploytrack.tlog import LogFormatError
    from deploytrack.tlog.note import MAX_NOTE_BYTES, read_checkpoint

    out = []
    for file in files:
        try:
            data = read_at_most(file, MAX_NOTE_BYTES, regular_only=True)
        except OSError as exc:
            raise BundleError(f"cannot read checkpoint {file}: {exc.strerror or exc}") from None
        try:
            out.append((file, read_checkpoint(data)))
        except LogFormatError as exc:
            raise BundleError(f"checkpoint {file}: {exc}") from None
        if keys:
            _signed_kept(file, data, out[-1][1], keys)
    return out


def _signed_kept(file: str, data: bytes, checkpoint: Checkpoint, keys: Sequence[str]) -> None:
    from deploytrack.services import checkpoints
    from deploytrack.tlog import LogFormatError
    from deploytrack.tlog.note import read_checkpoint

    try:
        read_checkpoint(data, checkpoints.verifiers(keys, checkpoint.origin))
    except LogFormatError as exc:
        raise BundleError(f"checkpoint {file}: {exc}") from None


def verify(
    path: str,
    keys: Sequence[str] = (),
    checkpoint_files: Sequence[str] = (),
    progress: Progress | None = None,
) -> BundleReport:
    """Verify a bundle offline: no database is opened. `progress(n)` for each n bytes of
    the file read (bundle_units in all)."""
    kept = _kept_checkpoints(checkpoint_files, keys)
    report = _read(path, keys, kept, progress=progress)
    from dataclasses import replace

    return replace(
        report,
        checkpoints=tuple(
            KeptCheckpoint(file, c.size, base64.b64encode(c.root).decode()) for file, c in kept
        ),
    )


def import_bundle(
    open_store: Callable[[], Store], path: str, progress: Progress | None = None
) -> ImportResult:
    """Verify the bundle (no database touched), then build the database from it in one
    transaction, reading the bundle again and checking it as it loads. `progress(n)` for
    each n bytes of the file read, in both readings (twice bundle_units in all)."""
    from deploytrack.store import bundle

    report = _read(path, progress=progress)
    store = open_store()
    with store.translated(), bundle.Loading(store.db, store.path) as loader:
        again = _read(path, loader=loader, progress=progress)
        if again.root != report.root or again.size != report.size:
            raise BundleError(f"{path} changed while it was imported")
        loader.finish(again.origin)
    return ImportResult(
        database=store.path,
        origin=report.origin,
        size=report.size,
        root=report.root,
        counts=report.counts,
    )


__all__ = [
    "FORMAT",
    "VERSION",
    "BundleError",
    "bundle_units",
    "export",
    "export_units",
    "import_bundle",
    "verify",
]
