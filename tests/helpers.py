"""Small helpers more than one test file needs: one copy each, imported where used.

Fixtures live in conftest.py; these are plain functions with no pytest state. They restate
the formats a user types or reads (a digest, a command line), never the code's constants.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest


def sha256_digest(data: bytes) -> str:
    """The OCI digest of `data`, as users write it: `sha256:<64 lowercase hex>`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def intoto_statement(
    subjects: Iterable[tuple[str, str]],
    predicate_type: str,
    predicate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An in-toto v1 statement naming each (name, `sha256:<hex>` digest) as a subject."""
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}
            for name, digest in subjects
        ],
        "predicateType": predicate_type,
        "predicate": {} if predicate is None else predicate,
    }


def as_json(result: Any) -> Any:
    """What a command printed on stdout, parsed (for `-o json`)."""
    return json.loads(result.stdout)


def slot_args(
    command: str, env: str, stage: str, name: str, kind: str = "CONTAINER_IMAGE"
) -> tuple[str, ...]:
    """`deployment COMMAND` naming a slot (environment, stage, name) and a kind."""
    return (
        "deployment", command, "--env", env, "--logical-env", stage,
        "--deployment-name", name, "--kind", kind,
    )  # fmt: skip


def record_args(env: str, stage: str, name: str, kind: str = "CONTAINER_IMAGE") -> tuple[str, ...]:
    """`deployment record` into a slot; the caller adds --digest or --oci-ref."""
    return slot_args("record", env, stage, name, kind)


def prepend_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Put `folder` first on $PATH for this test, as a user installing a helper there would."""
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
