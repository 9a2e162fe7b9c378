"""The event log: events as `log list` shows them, and what `log verify` found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Verbatim:
    """JSON printed exactly as it is (`cli.output.jsonable` converts every `*_at` integer
    of a view to an RFC 3339 time; an event's row images keep their stored integers, as
    hashed)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __verbatim__(self) -> Any:
        return self.value


@dataclass(frozen=True)
class EventView:
    """One event. `event` is the event object exactly as hashed (its canonical JSON parsed
    back); `changed` says in a few words which rows it changed (for tables)."""

    seq: int
    time: str
    type: str
    changed: str
    leaf_hash: str
    event: dict[str, Any]

    def __json__(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "type": self.type,
            "changed": self.changed,
            "leaf_hash": self.leaf_hash,
            "event": Verbatim(self.event),
        }


@dataclass(frozen=True)
class LogCheck:
    """One check of `log verify` (and `doctor`): ok, or the first problem it found."""

    name: str
    ok: bool
    detail: str
    problem: str | None


@dataclass(frozen=True)
class LogReport:
    origin: str | None
    size: int
    root: str  # base64, as in a checkpoint
    ok: bool
    checks: tuple[LogCheck, ...]


@dataclass(frozen=True)
class CheckpointView:
    """`log checkpoint`: the log's checkpoint now. `note` is the exact text printed or
    written: the signed note, or the bare checkpoint when no key signed it."""

    origin: str
    size: int
    root: str  # base64, as in the checkpoint
    signed: bool
    note: str


@dataclass(frozen=True)
class VerifierKeyView:
    """`log verifier-key`: the note verifier key of a public key, named by the origin."""

    origin: str
    key_id: str  # 8 hex digits
    verifier_key: str


@dataclass(frozen=True)
class ProofView:
    """One event of a record and its c2sp.org/tlog-proof. `event` is the event's exact
    bytes (canonical JSON, as hashed into its leaf), `proof` the proof file's text (which
    carries the same bytes in its `extra` line); `file` where it was written, if asked."""

    seq: int
    type: str
    time: str
    changed: str
    event: str
    proof: str
    file: str | None


@dataclass(frozen=True)
class ProveResult:
    """`log prove`: a record's proofs against one checkpoint. `later` are the record's
    events the checkpoint does not cover yet (it was taken before them)."""

    deployment: int
    origin: str
    tree_size: int
    proofs: tuple[ProofView, ...]
    later: tuple[int, ...]

    def __json__(self) -> list[ProofView]:
        return list(self.proofs)


@dataclass(frozen=True)
class ProvenView:
    """`log verify-proof`: what a proof proved, offline."""

    origin: str
    tree_size: int
    seq: int
    type: str
    time: str
    changed: str
    leaf_hash: str
    signed_by: str  # the verifier's `name+hex key ID`
    event_source: str  # "proof" (its extra line) or the --event file


@dataclass(frozen=True)
class ConsistencyView:
    """`log consistency`: the RFC 9162 consistency proof from a kept checkpoint to now.
    Roots and hashes in base64, as in checkpoints; `checkpoint` is the new one's text."""

    old_size: int
    old_root: str
    new_size: int
    new_root: str
    proof: tuple[str, ...]
    checkpoint: str
    signed: bool
