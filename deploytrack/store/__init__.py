"""The store: peewee models, ordered migrations, and opening the database.

Only this package talks SQL. Services use the models' query builder inside the `Store`
transaction helpers (the models reach no database outside them: see `binding`);
everything dialect-specific stays in `connection` and `migrations`.
"""

from deploytrack.store.connection import Store, StoreError, open_store, resolve_path

__all__ = ["Store", "StoreError", "open_store", "resolve_path"]
