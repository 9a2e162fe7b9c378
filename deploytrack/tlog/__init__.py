"""The transparency log's formats, pure: RFC 6962 / RFC 9162 Merkle tree hashing and proofs
(merkle.py), and the C2SP text formats — signed notes, checkpoints, proofs (note.py).

No database and no I/O here: the store appends to the log, the services check it, and an
auditor's `audit verify` runs these functions on a bundle with no database at all.
"""

from deploytrack.errors import DeploytrackError


class LogFormatError(DeploytrackError):
    """A checkpoint, note, proof or bundle member that is malformed, too large, from
    another origin, or does not verify."""
