"""The event log's commands: list the events, verify the log against itself, the tables
and checkpoints kept elsewhere; checkpoints, inclusion proofs of a record's events (made
from the stored nodes) and their offline check, consistency proofs.

What an event is and how it is appended: store/eventlog.py. The checks: store/logcheck.py.
Checkpoints and their keys: services/checkpoints.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, get_args

from deploytrack import timeutil
from deploytrack.services import ServiceError, checkpoints
from deploytrack.services.views.log import (
    CheckpointView,
    ConsistencyView,
    EventView,
    LogCheck,
    LogReport,
    ProofView,
    ProvenView,
    ProveResult,
    VerifierKeyView,
)
from deploytrack.store import Store, eventlog, logcheck
from deploytrack.store.eventlog import EventType

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Every type an event can have, for `log list --type` (docs/log.md says what each means).
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


def _changed(event: dict[str, Any]) -> str:
    """`deployment 7 inserted, deployment 5 updated`, `origin deploytrack.local/…`."""
    if event.get("seq") == 1 and "origin" in event:
        return f"origin {event['origin']}"
    parts = []
    for change in event.get("changes", []):
        key = change.get("key", {})
        name = " ".join(str(v) for v in key.values())
        parts.append(f"{change.get('table')} {name} {_DONE.get(change.get('op'), '?')}")
    return ", ".join(parts)


_DONE = {"insert": "inserted", "update": "updated", "delete": "deleted"}


def list_events(
    store: Store,
    *,
    since: int | None = None,
    until: int | None = None,
    types: tuple[str, ...] = (),
    limit: int | None = None,
) -> list[EventView]:
    """The events in order, filtered by time (inclusive) and type."""
    conditions: list[str] = []
    params: list[object] = []
    if since is not None:
        conditions.append("time >= ?")
        params.append(since)
    if until is not None:
        conditions.append("time <= ?")
        params.append(until)
    if types:
        conditions.append(f"type IN ({', '.join('?' * len(types))})")
        params.extend(types)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT seq, time, type, body, leaf_hash FROM log_event {where} ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with store.read():
        rows = store.db.execute_sql(sql, params).fetchall()
    out = []
    for seq, time, type_, body, leaf in rows:
        event = json.loads(bytes(body))
        out.append(
            EventView(
                seq=int(seq),
                time=timeutil.rfc3339(int(time)) or "",
                type=str(type_),
                changed=_changed(event),
                leaf_hash=bytes(leaf).hex(),
                event=event,
            )
        )
    return out


def verify_units(store: Store) -> int:
    """What `verify` reports progress in: each event, checked in the tree, then replayed;
    each row of the tables compared with the replay."""
    with store.read():
        return logcheck.units(store.db) if logcheck.has_log(store.db) else 0


def verify(
    store: Store,
    checkpoint_files: Sequence[str] = (),
    key_files: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> LogReport:
    """Check the tree (every event hashes to its leaf, nodes and tree heads match), the
    state (replaying the events reproduces every row of the tables) and, when files are
    given, that each kept checkpoint is this log's, signed by one of the keys when keys are
    given, and extended by the log (check `checkpoints`, after the tree is found sound:
    its consistency proofs are made from the nodes the tree check verified).
    `progress(1)` after each event of each pass and each row (verify_units in all)."""
    # A file that cannot be read or is no checkpoint is refused before the long checks.
    kept = [checkpoints.load(path) for path in checkpoint_files]
    checks: list[LogCheck] = []
    with store.read():
        if not logcheck.has_log(store.db):
            problem = (
                # PostgreSQL's schema changes only by `db migrate` (store/pgmigrate.py).
                "the database has no event log yet: run 'deploytrack --db URL db migrate' "
                "to set it up"
                if store.postgresql
                else "the database has no event log yet: any deploytrack command but doctor "
                "sets it up (the schema is brought up to date when the database is opened)"
            )
            check = LogCheck("tree", False, "the event log", problem)
            return LogReport(None, 0, "", False, (check,))
        tree = logcheck.check_tree(store.db, progress)
        checks.append(
            LogCheck(
                "tree",
                tree.problem is None,
                f"{tree.size} events hash to their leaves, nodes and tree heads",
                tree.problem,
            )
        )
        if tree.problem is None:
            state_problem = logcheck.check_state(store.db, progress)
            checks.append(
                LogCheck(
                    "state",
                    state_problem is None,
                    "replaying the events reproduces every row of the tables",
                    state_problem,
                )
            )
        if tree.problem is None and kept:
            checks.append(_check_checkpoints(store, kept, key_files, tree.size, tree.root))
    return LogReport(
        origin=tree.origin,
        size=tree.size,
        root=base64.b64encode(tree.root).decode(),
        ok=all(c.ok for c in checks),
        checks=tuple(checks),
    )


def _check_checkpoints(
    store: Store,
    kept: list[checkpoints.Kept],
    key_files: Sequence[str],
    size: int,
    root: bytes,
) -> LogCheck:
    origin = eventlog.origin(store.db)
    keys = checkpoints.verifiers(key_files, origin)
    subtree = eventlog.subtree(store.db)
    found = None
    for each in kept:
        found = checkpoints.problem(each, origin, size, root, subtree, keys)
        if found is not None:
            break
    sizes = ", ".join(str(k.checkpoint.size) for k in kept)
    signed = ", signed by a given key" if keys else ""
    detail = f"{len(kept)} checkpoint(s) (size {sizes}) of this log{signed}, extended by it"
    return LogCheck("checkpoints", found is None, detail, found)


def checkpoint(store: Store, key: Ed25519PrivateKey | None) -> CheckpointView:
    """The checkpoint of the log now: a signed note with `key`, the bare text without."""
    now = checkpoints.current(store)
    note = checkpoints.sign(now, key) if key is not None else now.text()
    root = base64.b64encode(now.root).decode()
    return CheckpointView(now.origin, now.size, root, key is not None, note)


def verifier_key(store: Store, key_file: str) -> VerifierKeyView:
    """The note verifier key of the Ed25519 public key in `key_file`, for this log."""
    with store.read():
        origin = eventlog.origin(store.db)
    verifier = checkpoints.verifiers([key_file], origin)[0]
    return VerifierKeyView(origin, verifier.key_id.hex(), verifier.text())


def _touching(store: Store, table: str, key: int) -> list[tuple[int, int, str, bytes]]:
    """(seq, time, type, body) of every event whose changes touch the row of `table` with
    primary key id `key`. SQLite's JSON functions read the events where they are stored:
    one pass over the log, in C."""
    if store.postgresql:  # the same pass in PostgreSQL's JSON functions
        sql = (
            "SELECT DISTINCT e.seq, e.time, e.type, e.body FROM log_event e,"
            " jsonb_array_elements(convert_from(e.body, 'UTF8')::jsonb -> 'changes') c"
            " WHERE c ->> 'table' = ? AND c -> 'key' ->> 'id' = ? ORDER BY e.seq"
        )
        params: tuple[object, ...] = (table, str(key))
    else:
        sql = (
            "SELECT DISTINCT e.seq, e.time, e.type, e.body"
            " FROM log_event e, json_each(CAST(e.body AS TEXT), '$.changes') c"
            " WHERE json_extract(c.value, '$.table') = ? AND json_extract(c.value, '$.key.id') = ?"
            " ORDER BY e.seq"
        )
        params = (table, key)
    rows = store.db.execute_sql(sql, params).fetchall()
    return [(int(seq), int(time), str(type_), bytes(body)) for seq, time, type_, body in rows]


def prove(
    store: Store,
    deployment: int,
    *,
    checkpoint_file: str | None = None,
    key: Ed25519PrivateKey | None = None,
) -> ProveResult:
    """A c2sp.org/tlog-proof for each event of a deployment record, against a signed
    checkpoint: the kept one in `checkpoint_file` (which the log must extend), or the
    log's checkpoint now signed with `key`. Each proof carries its event's bytes in its
    `extra` line, so it is checked offline with nothing else (`verify_proof`)."""
    from deploytrack.tlog import merkle
    from deploytrack.tlog.note import Checkpoint, InclusionProof

    kept = checkpoints.load(checkpoint_file) if checkpoint_file is not None else None
    if kept is not None and kept.note is None:
        raise ServiceError(
            f"checkpoint {kept.path} is not signed: a proof carries a signed checkpoint, as "
            "only a signature lets someone else trust it (sign one with 'log checkpoint --key')"
        )
    with store.read():
        origin = eventlog.origin(store.db)
        size, root = eventlog.root(store.db)
        subtree = eventlog.subtree(store.db)
        events = _touching(store, "deployment", deployment)
        if not events:
            raise ServiceError(
                f"deployment record {deployment} does not exist: 'deployment list --history' "
                "lists every record with its id"
            )
        if kept is not None:
            found = checkpoints.problem(kept, origin, size, root, subtree)
            if found is not None:
                raise ServiceError(found)
            note = kept.data.decode("utf-8")
            tree_size = kept.checkpoint.size
        else:
            assert key is not None, "the caller gives a key or a kept checkpoint"
            note = checkpoints.sign(Checkpoint(origin, size, root), key)
            tree_size = size
        covered = [e for e in events if e[0] <= tree_size]
        if not covered:
            raise ServiceError(
                f"checkpoint {checkpoint_file} (size {tree_size}) was taken before the first "
                f"event of deployment record {deployment} (event {events[0][0]}): prove it "
                "against a newer checkpoint"
            )
        proofs = []
        for seq, time, type_, body in covered:
            hashes = merkle.inclusion_proof(seq - 1, tree_size, subtree)
            proof = InclusionProof(seq - 1, tuple(hashes), note, extra=body)
            proofs.append(
                ProofView(
                    seq=seq,
                    type=type_,
                    time=timeutil.rfc3339(time) or "",
                    changed=_changed(json.loads(body)),
                    event=body.decode("utf-8"),
                    proof=proof.text(),
                    file=None,
                )
            )
    later = tuple(e[0] for e in events if e[0] > tree_size)
    return ProveResult(deployment, origin, tree_size, tuple(proofs), later)


def verify_proof(
    proof_file: str, key_files: Sequence[str], event_file: str | None = None
) -> ProvenView:
    """Check a c2sp.org/tlog-proof offline, with no database: its checkpoint is signed by
    one of the keys under the checkpoint's origin, and the event (the bytes of
    `event_file`, or those the proof's `extra` line carries) is the entry at its index."""
    from deploytrack.tlog import LogFormatError, merkle, replay
    from deploytrack.tlog.note import parse_proof

    try:
        proof = parse_proof(checkpoints.read_file(proof_file, "proof"))
    except LogFormatError as exc:
        raise ServiceError(f"proof {proof_file} is not a tlog-proof: {exc}") from None
    origin = proof.checkpoint().origin
    keys = checkpoints.verifiers(key_files, origin)
    if event_file is not None:
        body, source = checkpoints.read_file(event_file, "event"), event_file
    elif proof.extra is not None:
        body, source = proof.extra, "proof"
    else:
        raise ServiceError(
            f"proof {proof_file} carries no event (no extra line): give the event's bytes with "
            "--event FILE"
        )
    try:
        checkpoint = proof.verify(merkle.leaf_hash(body), keys)
    except merkle.ProofError as exc:
        where = "the event it carries" if event_file is None else f"the event in {event_file}"
        raise ServiceError(f"proof {proof_file} does not prove {where}: {exc}") from None
    except LogFormatError as exc:
        raise ServiceError(f"proof {proof_file}: {exc}") from None
    signer = proof.note().require_signature(keys, what="checkpoint")
    try:
        event = replay.parse_event(body, proof.index + 1)
    except LogFormatError as exc:
        raise ServiceError(f"proof {proof_file} proves a leaf that is no event: {exc}") from None
    return ProvenView(
        origin=checkpoint.origin,
        tree_size=checkpoint.size,
        seq=proof.index + 1,
        type=str(event["type"]),
        time=str(event["time"]),
        changed=_changed(event),
        leaf_hash=merkle.leaf_hash(body).hex(),
        signed_by=signer.label,
        event_source=source,
    )


def consistency(
    store: Store, from_file: str, key: Ed25519PrivateKey | None = None
) -> ConsistencyView:
    """The RFC 9162 consistency proof from the checkpoint kept in `from_file` to the log
    now, with the new checkpoint (signed with `key`, bare without). Refused when the log
    does not extend the kept checkpoint: no proof exists then."""
    from deploytrack.tlog import merkle
    from deploytrack.tlog.note import Checkpoint

    kept = checkpoints.load(from_file)
    if kept.checkpoint.size == 0:
        raise ServiceError(
            f"checkpoint {from_file} is of the empty log: every log extends it, no proof is "
            "needed (none exists in RFC 9162)"
        )
    with store.read():
        origin = eventlog.origin(store.db)
        size, root = eventlog.root(store.db)
        subtree = eventlog.subtree(store.db)
        found = checkpoints.problem(kept, origin, size, root, subtree)
        if found is not None:
            raise ServiceError(found)
        proof = merkle.consistency_proof(kept.checkpoint.size, size, subtree)
    # The checkpoint of the snapshot the proof was made in, not a second read's.
    now = Checkpoint(origin, size, root)
    note = checkpoints.sign(now, key) if key is not None else now.text()

    def b64(digest: bytes) -> str:
        return base64.b64encode(digest).decode()

    return ConsistencyView(
        old_size=kept.checkpoint.size,
        old_root=b64(kept.checkpoint.root),
        new_size=size,
        new_root=b64(root),
        proof=tuple(b64(h) for h in proof),
        checkpoint=note,
        signed=key is not None,
    )


__all__ = [
    "EVENT_TYPES",
    "checkpoint",
    "consistency",
    "list_events",
    "prove",
    "verifier_key",
    "verify",
    "verify_proof",
]
