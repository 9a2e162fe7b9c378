"""Small helpers more than one test file needs: one copy each, imported where used.

Fixtures live in conftest.py; these are plain functions with no pytest state. They restate
the formats a user types or reads (a digest, a command line), never the code's constants.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest


def sha256_digest(data: bytes) -> str:
    """The OCI digest of `data`, as users write it: `sha256:<64 lowercase hex>`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


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
