"""Input rules shared by services. Each rule lives here once; messages state the rule."""

from __future__ import annotations

import re

from deploytrack.digests import normalize_lookup, normalize_sha256
from deploytrack.services import ServiceError

# Used with fullmatch: "$" would also match before a trailing newline ("prod\n").
_DNS1123_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?")
MAX_DESCRIPTION = 1024

ENVIRONMENT_TYPES = ("kubernetes", "ecs", "server", "lambda", "custom")
KINDS = ("CONTAINER_IMAGE", "HELM_CHART")
STATUSES = ("deployed", "decommissioned")

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_PREFIX = "DEPLOYTRACK_"  # variable names deploytrack keeps for its own settings
MAX_VARIABLE_NAME = 255
MAX_VALUE_BYTES = 64 * 1024
MAX_PREDICATE_CHARS = 1024
# Why a digest no attestation names cannot be recorded (`deployment record`, `policy
# check`): the rule every deployment record obeys, in its words.
NOT_IN_EVIDENCE = (
    "is not in the evidence store: import an attestation that names it first "
    "('deploytrack attestation import FILE')"
)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "...")


def _fullmatch(pattern: re.Pattern[str], value: str, what: str, rule: str) -> str:
    if not pattern.fullmatch(value):
        raise ServiceError(f"invalid {what} name {_shown(value)}: use {rule}")
    return value


def name(value: str, what: str) -> str:
    return _fullmatch(
        _DNS1123_LABEL,
        value,
        what,
        "1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
    )


def deployment_name(value: str) -> str:
    return _fullmatch(
        _DEPLOYMENT_NAME,
        value,
        "deployment",
        "1 to 253 letters, digits, '.', '_' or '-', starting and ending with a letter or digit",
    )


def description(value: str) -> str:
    if len(value) > MAX_DESCRIPTION or any(ord(c) < 32 and c not in "\t" for c in value):
        raise ServiceError(f"invalid description: at most {MAX_DESCRIPTION} characters on one line")
    return value


def environment_type(value: str) -> str:
    if value not in ENVIRONMENT_TYPES:
        raise ServiceError(
            f"invalid environment type {_shown(value)}: use one of {', '.join(ENVIRONMENT_TYPES)}"
        )
    return value


def kind(value: str) -> str:
    if value not in KINDS:
        raise ServiceError(f"invalid kind {_shown(value)}: use one of {', '.join(KINDS)}")
    return value


def sha256(value: str) -> str:
    digest = normalize_sha256(value)
    if digest is None:
        raise ServiceError(f"invalid digest {_shown(value)}: use sha256:<64 hex digits>")
    return digest


def digest_or_prefix(value: str) -> str:
    """A digest to look up: whole, or a prefix of 8+ hex digits (digests.normalize_lookup,
    which cli/params.py's option types call too)."""
    try:
        return normalize_lookup(value)
    except ValueError as exc:
        raise ServiceError(str(exc)) from None


def variable_name(value: str) -> str:
    if not _VARIABLE_NAME.fullmatch(value) or len(value) > MAX_VARIABLE_NAME:
        raise ServiceError(
            f"invalid variable name {value[:80]!r}: use letters, digits and '_', not starting "
            f"with a digit ([A-Za-z_][A-Za-z0-9_]*, at most {MAX_VARIABLE_NAME} characters)"
        )
    if value.upper().startswith(RESERVED_PREFIX):
        raise ServiceError(
            f"invalid variable name {value!r}: the {RESERVED_PREFIX} prefix is reserved for "
            "deploytrack's own settings"
        )
    return value


def variable_value(value: str) -> str:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ServiceError("the value is not valid UTF-8 text") from None
    if size > MAX_VALUE_BYTES:
        raise ServiceError(f"the value is larger than {MAX_VALUE_BYTES // 1024} KiB")
    if "\0" in value:
        raise ServiceError("the value contains a NUL character, which no environment can hold")
    return value


def predicate_type(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ServiceError("a --require-predicate value is not valid UTF-8 text") from None
    if (
        not value
        or len(value) > MAX_PREDICATE_CHARS
        or not value.isprintable()
        or any(c.isspace() for c in value)
    ):
        raise ServiceError(
            f"invalid predicate type {value[:80]!r}: a URI of 1 to {MAX_PREDICATE_CHARS} "
            "printable characters without spaces, e.g. https://slsa.dev/provenance/v1"
        )
    return value
