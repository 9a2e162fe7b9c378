"""When a stored attestation says its subjects were built (pure): the time lead time for
changes starts from (docs/metrics.md).

Read from the predicates that carry one, the finish time first and the start time when
there is no finish time:

- SLSA provenance v1: `runDetails.metadata.finishedOn`, else `startedOn`;
- SLSA provenance v0.1 and v0.2: `metadata.buildFinishedOn`, else `buildStartedOn`;
- Chainloop (`chainloop.dev/attestation/...`): `metadata.finishedAt`, else `initializedAt`;
- deploytrack's own predicate: `createdAt` (written when `attestation create` ran).

The times are RFC 3339 with a zone; fractions finer than a microsecond (Chainloop writes
nanoseconds) are cut. A missing, malformed or zone-less time is no time: the caller falls
back to the attestation's import time and says so.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from deploytrack import timeutil
from deploytrack.evidence.parse import (
    CHAINLOOP_PREDICATE_PREFIX,
    DEPLOYTRACK_PREDICATE_PREFIX,
    EvidenceError,
    statement_of,
)

SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_V0_PREFIX = "https://slsa.dev/provenance/v0."

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)


def has_build_time(predicate_type: str) -> bool:
    """Whether attestations of this predicate type can carry a build time (the others'
    bytes need not be read)."""
    return (
        predicate_type == SLSA_V1
        or predicate_type.startswith(SLSA_V0_PREFIX)
        or predicate_type.startswith(CHAINLOOP_PREDICATE_PREFIX)
        or predicate_type.startswith(DEPLOYTRACK_PREDICATE_PREFIX)
    )


def parse_time(value: Any) -> int | None:
    """An RFC 3339 time with a zone, in microseconds since the epoch; None if it is not one."""
    if not isinstance(value, str):
        return None
    found = _RFC3339.fullmatch(value)
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = found.groups()
    offset = timedelta(0)
    if not zulu:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if sign == "-":
            offset = -offset
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
        moment -= offset
    except (ValueError, OverflowError):
        return None
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return timeutil.to_us(moment) + micros


def _at(tree: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _first_time(predicate: Any, *paths: tuple[str, ...]) -> int | None:
    for path in paths:
        moment = parse_time(_at(predicate, *path))
        if moment is not None:
            return moment
    return None


def built_at(raw: bytes, predicate_type: str) -> int | None:
    """The build time a stored attestation of `predicate_type` states, or None."""
    if not has_build_time(predicate_type):
        return None
    try:
        statement = statement_of(raw, "attestation")
    except EvidenceError:
        return None
    predicate = statement.get("predicate")
    if predicate_type == SLSA_V1:
        return _first_time(
            predicate,
            ("runDetails", "metadata", "finishedOn"),
            ("runDetails", "metadata", "startedOn"),
        )
    if predicate_type.startswith(SLSA_V0_PREFIX):
        return _first_time(
            predicate, ("metadata", "buildFinishedOn"), ("metadata", "buildStartedOn")
        )
    if predicate_type.startswith(CHAINLOOP_PREDICATE_PREFIX):
        return _first_time(predicate, ("metadata", "finishedAt"), ("metadata", "initializedAt"))
    return _first_time(predicate, ("createdAt",))
