"""The rules of deploytrack. Commands call these; these call the store and the adapters.

Every function takes an open `Store` and returns frozen views (plain data), never
models, so the CLI cannot reach past this layer into the database.
"""

from deploytrack.errors import DeploytrackError


class ServiceError(DeploytrackError):
    """An operation refused by a rule (unknown name, missing evidence, bad transition)."""


def read_named_file(path: str, what: str, limit: int, too_large: str) -> bytes:
    """The bytes of a file the user named (a material, a checkpoint, a trusted root), at
    most `limit`; `what` names it in messages, `too_large` says what is wrong with a file
    over the limit ("is larger than 1 MiB: ..."). FIFOs and devices are refused, never
    waited on; every refusal is one line."""
    from deploytrack.files import NotAFile, read_at_most

    try:
        data = read_at_most(path, limit, regular_only=True)
    except NotAFile:
        raise ServiceError(f"{what} {path} is not a regular file") from None
    except IsADirectoryError:
        raise ServiceError(f"{what} {path} is a directory: give a file") from None
    except OSError as exc:
        raise ServiceError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise ServiceError(f"{what} {path} {too_large}")
    return data


__all__ = ["ServiceError", "read_named_file"]
