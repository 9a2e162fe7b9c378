"""The store: peewee models, ordered migrations, and opening the database.

Only this package talks SQL. Services use the models' query builder and the `Store`
transaction helpers; everything dialect-specific stays in `connection` and `migrations`.
"""

from deploytrack.store.connection import Store, StoreError, open_store, resolve_path

__all__ = ["Store", "StoreError", "open_store", "resolve_path"]
