"""The registry adapter: OCI references, and resolving them to digests.

`reference`, `options`, `credentials`, `layout` and `chart` are pure Python and cheap to
import. `client` wraps oras (~200 ms of imports: requests, jsonschema) and is the only
module that imports it; it is imported only when a tag must be resolved through a
registry.

Every refusal from this package is a `RegistryError`: one line that says what to do.
"""

from deploytrack.errors import DeploytrackError

# Seconds to connect, and to wait for each answer (--registry-timeout).
DEFAULT_TIMEOUT = 10.0


class RegistryError(DeploytrackError):
    """A reference that cannot be resolved: malformed, unreachable, refused or missing."""


__all__ = ["DEFAULT_TIMEOUT", "RegistryError"]
