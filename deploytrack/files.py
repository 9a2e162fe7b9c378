"""Files deploytrack creates or reads on a user's behalf: private folders (0700), new
private files (0600, never over an existing one), and reads bounded by a size limit.

Only `os`: the store uses it when it creates a database, and the secrets key, attestation
files and downloads use it, each translating an OSError into its own layer's words.
"""

from __future__ import annotations

import os
from contextlib import suppress

from deploytrack.errors import DeploytrackError

StrPath = str | os.PathLike[str]


class FileError(DeploytrackError):
    """A file the user named could not be created."""


class NotAFile(OSError):
    """The path names a FIFO, a device or a socket, not a regular file."""


def make_private_folders(folder: StrPath) -> None:
    """Create `folder` and any missing parent, each 0700.

    os.makedirs gives the parents the umask's default mode (often 0755): every folder
    deploytrack creates is private, as the XDG spec asks.
    """
    # Absolute: the walk up a relative path would end at "" instead of at the folder
    # that exists (the working directory).
    current = os.path.abspath(os.fspath(folder))
    missing: list[str] = []
    while not os.path.exists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for each in reversed(missing):
        with suppress(FileExistsError):  # another process made it meanwhile
            os.mkdir(each, 0o700)


def open_new_private(path: StrPath) -> int:
    """A descriptor open for writing on a new file, 0600; FileExistsError if anything is
    at `path` already (O_EXCL: not even a link is followed)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def create_output(path: str) -> int:
    """`open_new_private` for an output file the user named, refused in their words."""
    try:
        return open_new_private(path)
    except FileExistsError:
        raise FileError(f"{path} exists: choose another path or remove it first") from None
    except OSError as exc:
        raise FileError(f"cannot write {path}: {exc.strerror}") from None


def read_at_most(path: StrPath, limit: int, *, regular_only: bool = False) -> bytes:
    """At most `limit` + 1 bytes of the file: one more than allowed tells the caller it is
    too large, without reading a file of any size into memory. OSError as raised (the
    caller words it); with `regular_only`, NotAFile for a FIFO, device or socket, which
    could block or never end."""
    if not regular_only:
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    import stat

    # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever, before the
    # check below could refuse it. A regular file ignores the flag.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAFile(f"{os.fspath(path)} is not a regular file")
        return handle.read(limit + 1)
