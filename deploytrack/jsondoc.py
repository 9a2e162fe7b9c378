"""Strict JSON for every document deploytrack reads from outside (pure).

Attestations (statements, DSSE envelopes, Sigstore bundles, JSON Lines lines), DSSE
payloads, SBOMs, the docker config, credential helper answers, OCI layout index.json and
manifests all go through `loads`, the one home of these rules:

- UTF-8 only;
- no NaN or Infinity: Python's json accepts them, RFC 8259 JSON and other parsers do not;
- no key twice in one object: Python keeps the last value, other parsers the first or
  refuse, so two tools could read one stored document differently (RFC 8259 section 4);
- nesting no deeper than Python's parser allows (about 1,000 levels), and a size limit.
"""

from __future__ import annotations

import json
from typing import Any

_SHOWN_KEY = 64


class JSONError(ValueError):
    """Why a document is refused: a phrase that reads after "X is " or after a colon."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Called for every object: building the dict and comparing lengths is nearly free;
    # only a document that does hold a duplicate pays for finding which key it is.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key if len(key) <= _SHOWN_KEY else key[:_SHOWN_KEY] + "..."
                # json.dumps escapes control characters: the key cannot act on a terminal.
                raise JSONError(
                    f"not valid JSON: duplicate key {json.dumps(shown)} in one object "
                    "(parsers disagree on which value counts; keep one)"
                )
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> Any:
    raise JSONError(f"not valid JSON: {name} is not a JSON value")


def _size(limit: int) -> str:
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit:,} bytes"


def loads(data: bytes, *, max_bytes: int) -> Any:
    """Parse one JSON document, refusing what `JSONError` says; `max_bytes` bounds its size."""
    if len(data) > max_bytes:
        raise JSONError(f"larger than {_size(max_bytes)}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONError(f"not valid JSON: invalid UTF-8 at byte {exc.start}") from None
    try:
        return json.loads(text, object_pairs_hook=_unique, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise JSONError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise JSONError("JSON nested too deeply") from None
