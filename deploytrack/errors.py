"""The one exception hierarchy every layer raises from.

Each layer has its own type (store, services, evidence, registry) so a caller can tell
where a refusal came from; the CLI catches the common base and prints one line.
"""


class DeploytrackError(Exception):
    """A refused operation. The message is shown to the user as is: it must say what to do."""

    exit_code = 1
