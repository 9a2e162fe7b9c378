"""A throwaway PostgreSQL server for the tests, `make bench` and `make demo DB=postgresql`.

Debian's `postgresql` package (installed by scripts/system-deps.sh): `initdb` and `pg_ctl`
run as the unprivileged `postgres` user (they refuse root) in a temporary folder, the
server listens on 127.0.0.1 on a free port with fsync off (a throwaway needs no
durability), and `stop()` shuts it down and removes the folder.

Run as a script it starts a server, prints its URL, and stops it on Ctrl-C or when its
standard input closes (`python scripts/pgtemp.py`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

BIN_DIRS = [
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
]
SUPERUSER = "deploytrack"


def _bin(name: str) -> str:
    for folder in BIN_DIRS:
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(f"{name} not found: install Debian's postgresql (make test does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    folder: str
    port: int
    user: str = SUPERUSER
    _as_user: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The maintenance database's URL (trust authentication, no password)."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        data = os.path.join(self.folder, "data")
        if os.path.isdir(data):
            subprocess.run(
                [*self._as_user, _bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.folder, ignore_errors=True)


def start(*, max_connections: int = 200, password: str | None = None) -> Server:
    """Start a server; the caller stops it (`Server.stop`).

    With `password`, connections over TCP must log in with it (scram-sha-256), as on a
    real server; without, they are trusted."""
    folder = tempfile.mkdtemp(prefix="deploytrack-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root.
        info = pwd.getpwnam("postgres")
        os.chown(folder, info.pw_uid, info.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    os.chmod(folder, 0o700)
    data = os.path.join(folder, "data")
    server = Server(folder, 0, _as_user=as_user)
    try:
        auth = ["-A", "trust"]
        if password is not None:
            pwfile = os.path.join(folder, "pw")
            with open(pwfile, "w") as f:
                f.write(password + "\n")
            if as_user:
                os.chown(pwfile, info.pw_uid, info.pw_gid)
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        subprocess.run(
            [
                *as_user,
                _bin("initdb"),
                "-D",
                data,
                *auth,
                "-U",
                SUPERUSER,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            capture_output=True,
            check=True,
        )
        # A port can be taken between choosing and binding: try a few.
        for _ in range(5):
            port = _free_port()
            options = (
                f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
                f" -c synchronous_commit=off -c full_page_writes=off"
                f" -c max_connections={max_connections}"
            )
            done = subprocess.run(
                [
                    *as_user,
                    _bin("pg_ctl"),
                    "-D",
                    data,
                    "-o",
                    options,
                    "-l",
                    os.path.join(folder, "log"),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ],
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                server.port = port
                return server
        log = open(os.path.join(folder, "log")).read()[-2000:]  # noqa: SIM115
        raise RuntimeError(f"PostgreSQL did not start:\n{log}")
    except BaseException:
        server.stop()
        raise


@contextlib.contextmanager
def running() -> Iterator[Server]:
    server = start()
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    with running() as srv:
        print(srv.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()
