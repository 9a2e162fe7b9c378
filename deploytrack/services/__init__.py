"""The rules of deploytrack. Commands call these; these call the store and the adapters.

Every function takes an open `Store` and returns frozen views (plain data), never
models, so the CLI cannot reach past this layer into the database.
"""

from deploytrack.errors import DeploytrackError


class ServiceError(DeploytrackError):
    """An operation refused by a rule (unknown name, missing evidence, bad transition)."""


__all__ = ["ServiceError"]
