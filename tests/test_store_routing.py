"""The store passed is the database used: models reach a store's database only inside
its `read()` / `write()`, two stores open at once each keep their own rows, and a model
touched outside any transaction fails loudly."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from deploytrack.services.catalog import environments
from deploytrack.store import Store, open_store
from deploytrack.store.binding import DATABASE, TransactionMisuse
from deploytrack.store.models import Environment


def names_in(path: Path) -> list[str]:
    """The environments in the file, read with sqlite3 (not through the models)."""
    with closing(sqlite3.connect(path)) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM environment ORDER BY name")]


def add(name: str) -> None:
    """An environment row, through the model (so through whichever store is bound)."""
    Environment.create(name=name, type="custom", created_at=1, updated_at=1)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    first, second = open_store(tmp_path / "first.db"), open_store(tmp_path / "second.db")
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_writes_through_two_open_stores_land_each_in_its_own_file(
    two: tuple[Store, Store], tmp_path: Path
) -> None:
    first, second = two
    # Interleaved, and the first store written after the second was opened.
    environments.create(first, "a1")
    environments.create(second, "b1")
    environments.create(first, "a2")
    environments.update(second, "b1", description="only in the second")
    environments.create(second, "b2")
    environments.delete(first, "a2")
    assert names_in(tmp_path / "first.db") == ["a1"]
    assert names_in(tmp_path / "second.db") == ["b1", "b2"]
    assert [v.name for v in environments.list(first)] == ["a1"]
    assert [v.name for v in environments.list(second)] == ["b1", "b2"]
    assert environments.describe(second, "b1").description == "only in the second"


def test_a_model_outside_any_transaction_fails_loudly(two: tuple[Store, Store]) -> None:
    first, _ = two
    with pytest.raises(TransactionMisuse, match=r"store\.read\(\) or store\.write\(\)"):
        Environment.select().count()
    with first.read():
        assert Environment.select().count() == 0
    # The binding ends with the transaction: the open store is not reachable after it.
    with pytest.raises(TransactionMisuse, match="outside a transaction"):
        Environment.get_or_none(Environment.name == "a")


def test_a_service_lookup_needs_a_transaction_of_the_store_it_is_given(
    two: tuple[Store, Store],
) -> None:
    first, second = two
    environments.create(first, "a1")
    with pytest.raises(TransactionMisuse):
        environments.get(first, "a1")
    with first.read():
        assert environments.get(first, "a1").name == "a1"
    with second.read(), pytest.raises(TransactionMisuse, match="of the store passed"):
        environments.get(first, "a1")


def test_nested_transactions_of_one_store_work_as_savepoints(
    two: tuple[Store, Store], tmp_path: Path
) -> None:
    first, _ = two
    with first.write() as log:
        add("outer")
        with first.read():
            assert Environment.select().count() == 1
        with pytest.raises(RuntimeError, match="inner"), first.write():
            add("inner")
            raise RuntimeError("inner")
        # Still bound after the inner block ended: the outer transaction goes on.
        assert Environment.select().count() == 1
        log.log("environment.created")
    assert names_in(tmp_path / "first.db") == ["outer"]
    assert DATABASE.obj is None


def test_another_stores_transaction_inside_one_is_refused(
    two: tuple[Store, Store], tmp_path: Path
) -> None:
    first, second = two
    with first.write() as log:
        add("kept")
        for other in (second.write, second.read):
            with pytest.raises(TransactionMisuse, match="another store"), other():
                pass
        # The refusal left the first store's binding in place.
        assert DATABASE.obj is first.db
        log.log("environment.created")
    assert names_in(tmp_path / "first.db") == ["kept"]
    assert names_in(tmp_path / "second.db") == []
    environments.create(second, "later")  # and each store is usable after
    assert names_in(tmp_path / "second.db") == ["later"]


def test_a_failed_transaction_releases_the_binding(two: tuple[Store, Store]) -> None:
    first, second = two
    with pytest.raises(ValueError), first.write():
        raise ValueError("boom")
    assert DATABASE.obj is None
    environments.create(second, "b1")  # another store is not refused afterwards


def test_the_binding_is_per_thread(two: tuple[Store, Store], tmp_path: Path) -> None:
    """peewee keeps a connection per thread: so do the models' bindings (a thread opens
    its own connection to a store)."""
    first, second = two
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            second.db.connect()
            environments.create(second, "from-thread")
            second.db.close()
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    with first.read():
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert DATABASE.obj is first.db
    assert not errors, errors
    assert names_in(tmp_path / "second.db") == ["from-thread"]
    assert names_in(tmp_path / "first.db") == []
