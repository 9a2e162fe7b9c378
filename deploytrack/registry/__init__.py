"""The registry adapter: OCI references, and resolving them to digests.

`reference` is pure and cheap to import. Resolution through a registry (which needs
oras, ~200 ms of imports) lives in its own module and is imported only when a tag must
be resolved.
"""
