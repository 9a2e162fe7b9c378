"""Security, end to end: a registry password, a secret variable and a private
key password never appear in the database file (with its WAL), in any output, in an
error message or in an exported file; and every file deploytrack creates is 0600, every
folder 0700.

One session of real processes uses all three secrets the ways a user would, including
failed attempts (a wrong registry password, a wrong key password), while a second
connection keeps the WAL alive so its bytes can be searched too.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import registry_support as rs

ENTRY = str(Path(sys.executable).parent / "deploytrack")
REGISTRY_PASSWORD = "Reg1stry-Pa55-q7ZK"
WRONG_REGISTRY_PASSWORD = "Wr0ng-Reg-Pa55-x2MV"
KEY_PASSWORD = "K3y-Pa55phrase-u8TD"
WRONG_KEY_PASSWORD = "Wr0ng-K3y-Pa55-p4NB"
SECRET_VALUE = "s3cret-Variable-Value-c9RW"
SECRETS = [REGISTRY_PASSWORD, WRONG_REGISTRY_PASSWORD, KEY_PASSWORD, WRONG_KEY_PASSWORD,
           SECRET_VALUE]  # fmt: skip


@pytest.fixture(scope="module")
def secured_registry(work: Path, layouts: rs.Layouts) -> Iterator[rs.Registry]:
    auth = rs.htpasswd_auth(work / "security-auth", "carol", REGISTRY_PASSWORD)
    registry = rs.start_registry(work / "security", auth=auth)
    registry.username, registry.password = "carol", REGISTRY_PASSWORD
    try:
        rs.skopeo_copy(f"oci:{layouts.oci}:1.0", registry, "acme/app:1.0", work)
        yield registry
    finally:
        registry.stop()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_no_secret_leaks_and_every_created_file_is_private(
    secured_registry: rs.Registry, tmp_path: Path
) -> None:
    os.umask(0o022)  # a usual umask: deploytrack must not rely on a strict one
    home = tmp_path / "home"
    db = home / "state" / "deploy" / "track.db"  # two folders deploytrack creates
    key_file = home / "keys" / "deploytrack" / "secrets.key"
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "DEPLOYTRACK_DB": str(db),
        "DEPLOYTRACK_SECRETS_KEY_FILE": str(key_file),
        "NO_PROXY": "*",
    }
    env.pop("DOCKER_CONFIG", None)
    host = secured_registry.host
    ref = f"{host}/acme/app:1.0"
    login = ["--plain-http", "--registry-server", host, "--registry-username", "carol"]
    transcript: list[str] = []

    def dt(*args: str, stdin: str | None = None, code: int = 0, extra_env: dict | None = None):
        result = subprocess.run(
            [ENTRY, *args], input=stdin, capture_output=True, text=True,
            env={**env, **(extra_env or {})}, timeout=60,
        )  # fmt: skip
        transcript.append(result.stdout + result.stderr)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        if code:
            assert len(result.stderr.strip().splitlines()) == 1
        return result

    private = tmp_path / "signing.key"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-aes256", "-pass", f"pass:{KEY_PASSWORD}", "-out", str(private)],
        check=True, capture_output=True,
    )  # fmt: skip

    # Evidence built with a registry login and a signing key, both read from stdin.
    evidence_file = out / "evidence.json"
    created = dt(
        "attestation", "create", "--workflow", "release", "--project", "api",
        "--material", f"CONTAINER_IMAGE={ref}", *login, "--registry-password-stdin",
        "--key", str(private), "--key-password-stdin", "--output-file", str(evidence_file),
        stdin=f"{REGISTRY_PASSWORD}\n{KEY_PASSWORD}\n",
    )  # fmt: skip
    digest = created.stdout.strip().splitlines()[-1]
    # Keep the WAL alive from here on: its bytes are searched at the end.
    keeper = sqlite3.connect(db)
    keeper.execute("SELECT COUNT(*) FROM attestation").fetchone()

    # Failed attempts: a wrong registry password, and a wrong key password.
    dt("environment", "create", "--name", "prod")
    record = [
        *("deployment", "record", "--env", "prod", "--logical-env", "production"),
        *("--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--oci-ref", ref),
    ]
    dt(*record, *login, "--registry-password", WRONG_REGISTRY_PASSWORD, code=1)
    dt(*record, *login, "--registry-password-stdin", stdin=WRONG_REGISTRY_PASSWORD + "\n", code=1)
    dt(
        "attestation", "sign", str(evidence_file), "--key", str(private), "--key-password-stdin",
        stdin=WRONG_KEY_PASSWORD + "\n", code=1,
    )  # fmt: skip
    # The password from the environment this time.
    dt(*record, "--plain-http", extra_env={
        "DEPLOYTRACK_REGISTRY_SERVER": host, "DEPLOYTRACK_REGISTRY_USERNAME": "carol",
        "DEPLOYTRACK_REGISTRY_PASSWORD": REGISTRY_PASSWORD,
    })  # fmt: skip

    # A secret variable, and every way to look at it short of --reveal.
    dt("variable", "set", "DB_PASSWORD", "--secret", "--stdin", "--logical-env", "production",
       stdin=SECRET_VALUE + "\n")  # fmt: skip
    resolved = out / "resolved.env"
    resolved.write_text(
        dt(
            "variable",
            "resolve",
            "--logical-env",
            "production",
            "--env",
            "prod",
            "--deployment-name",
            "api",
        ).stdout
    )
    for args in (
        ["variable", "list", "--logical-env", "production", "-o", "json"],
        ["variable", "history", "--logical-env", "production", "-o", "json"],
        ["variable", "resolve", "--logical-env", "production", "--env", "prod",
         "--deployment-name", "api", "--format", "json"],
        ["attestation", "describe", digest, "-o", "json"],
        ["deployment", "list", "--history", "-o", "json"],
        ["doctor", "-o", "json"],
        ["policy", "check", "--logical-env", "production", "--oci-ref", ref, *login,
         "--registry-password", WRONG_REGISTRY_PASSWORD],
    ):  # fmt: skip
        dt(*args, code=1 if args[0] == "policy" else 0)
    downloaded = out / "downloaded.json"
    dt("artifact", "download", "--digest", digest, "--output", str(downloaded))
    # --reveal shows the secret, and only there: it is a value the user asked for.
    revealed = subprocess.run(
        [ENTRY, "variable", "resolve", "--logical-env", "production", "--env", "prod",
         "--deployment-name", "api", "--reveal"], env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert SECRET_VALUE in revealed.stdout

    searched = {
        "database": db.read_bytes(),
        "wal": db.with_name(db.name + "-wal").read_bytes(),
        "shm": db.with_name(db.name + "-shm").read_bytes(),
        "outputs and errors": "\n".join(transcript).encode(),
        "attestation file": evidence_file.read_bytes(),
        "downloaded file": downloaded.read_bytes(),
        "resolved env": resolved.read_bytes(),
    }
    assert len(searched["wal"]) > 0  # the WAL was alive and is really searched
    for secret in SECRETS:
        for where, data in searched.items():
            assert secret.encode() not in data, f"{secret} found in {where}"
    keeper.close()

    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"), key_file,
             evidence_file, downloaded]  # fmt: skip
    for path in files:
        if path.exists():
            assert _mode(path) == 0o600, (path, oct(_mode(path)))
    for folder in (db.parent, db.parent.parent, key_file.parent, key_file.parent.parent):
        assert _mode(folder) == 0o700, (folder, oct(_mode(folder)))
