"""Where deploytrack's files live when no option names them: the database and the secrets
key. Only `os` (platformdirs, ~25 ms, only when the default is needed): shell completion
reads the database path on every <TAB> without loading peewee or cryptography.
"""

from __future__ import annotations

import os

DB_ENV = "DEPLOYTRACK_DB"
SECRETS_KEY_ENV = "DEPLOYTRACK_SECRETS_KEY_FILE"


def database_path(explicit: str | None) -> str:
    """--db, else $DEPLOYTRACK_DB, else the per-user data folder."""
    if explicit:
        return os.path.expanduser(explicit)
    from_env = os.environ.get(DB_ENV)
    if from_env:
        return os.path.expanduser(from_env)
    import platformdirs

    return os.path.join(platformdirs.user_data_dir("deploytrack"), "deploytrack.db")


def secrets_key_path() -> str:
    """$DEPLOYTRACK_SECRETS_KEY_FILE, else secrets.key in the per-user config folder."""
    explicit = os.environ.get(SECRETS_KEY_ENV)
    if explicit:
        return os.path.expanduser(explicit)
    import platformdirs

    return os.path.join(platformdirs.user_config_dir("deploytrack"), "secrets.key")
