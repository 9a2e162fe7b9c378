"""Which database the models reach: the one of the store whose transaction is open.

Every model reaches the database through `DATABASE`, a peewee DatabaseProxy. It points
at nothing until `Store.read()` / `Store.write()` is entered, and again at nothing once
the outermost transaction exits: a model is reachable only inside a transaction of the
store passed, so the store a service is given is the database it uses, and a service
that forgets the transaction fails at its first query instead of reaching whichever
database happened to be open. The binding is per thread, as peewee's connections are.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import peewee


class TransactionMisuse(RuntimeError):
    """A programming error: a model used outside `store.read()` / `store.write()`, or a
    transaction of one store entered inside a transaction of another.

    Not a DeploytrackError on purpose: it is a bug to fix, shown with its traceback, not
    a condition to report to the user in one line.
    """


class _StoreProxy(peewee.DatabaseProxy):
    """A DatabaseProxy whose target is per thread and set only by `bound()`."""

    __slots__ = ("_local",)

    def __init__(self) -> None:
        object.__setattr__(self, "_local", threading.local())
        super().__init__()

    @property
    def obj(self) -> peewee.Database | None:
        return getattr(self._local, "obj", None)

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr == "obj":
            self._local.obj = value
        else:
            object.__setattr__(self, attr, value)

    def __getattr__(self, attr: str) -> Any:
        target = self.obj
        if target is None:
            if attr.startswith("_"):  # copy, pickle and hasattr probes: not a query
                raise AttributeError(attr)
            raise TransactionMisuse(
                "a model was used outside a transaction: open one with store.read() or "
                "store.write() around the queries, at the service's entry"
            )
        return getattr(target, attr)


DATABASE = _StoreProxy()


@contextmanager
def bound(db: peewee.Database) -> Iterator[None]:
    """Point the models at `db` for the block; nested blocks of the same database share
    the outer binding, a block of another database inside it is refused."""
    current = DATABASE.obj
    if current is db:
        yield
        return
    if current is not None:
        raise TransactionMisuse(
            "a transaction of another store was entered while one is open: finish the "
            "first store's transaction before using the second"
        )
    DATABASE.initialize(db)
    try:
        yield
    finally:
        DATABASE.initialize(None)


def require(db: peewee.Database) -> None:
    """Refuse, as a model would, unless the models point at `db` now."""
    if DATABASE.obj is not db:
        raise TransactionMisuse(
            "this needs a transaction of the store passed: call it inside store.read() or "
            "store.write() of that store"
        )
