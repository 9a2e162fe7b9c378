"""`db migrate`: bring a database's schema up to date (on PostgreSQL, the only way)."""

from __future__ import annotations

from deploytrack.services.views.database import Migrated
from deploytrack.store import migrations
from deploytrack.store.connection import display, migrate_store


def migrate(target: str) -> Migrated:
    """Apply the pending migrations of the database at `target` (a path or a URL)."""
    applied = migrate_store(target)
    backend = "postgresql" if target.startswith(("postgresql://", "postgres://")) else "sqlite"
    return Migrated(display(target), backend, tuple(applied), migrations.names()[-1])
