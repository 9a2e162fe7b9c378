"""The two catalogues are one `Catalog` with different data: what references an entry
(and so keeps it from deletion) is a tuple of columns, each pointing at the catalogue's
own table, and only environments have a type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploytrack.services.catalog import environments, logical_environments
from deploytrack.store import models, open_store


@pytest.mark.parametrize("catalog", [environments, logical_environments])
def test_every_referencing_column_points_at_the_catalogs_table(catalog: Any) -> None:
    referenced_by = catalog.referenced_by
    assert {column.split(".")[0] for column, _ in referenced_by} == {
        "Deployment",
        "VariableEvent",
    }
    for column, _what in referenced_by:
        model_name, field_name = column.split(".")
        field = getattr(getattr(models, model_name), field_name)
        assert field.rel_model is catalog.model


def test_a_stage_has_no_type(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.db")
    try:
        with pytest.raises(TypeError, match="logical environment has no type"):
            logical_environments.create(store, "canary", "", "kubernetes")
        with pytest.raises(TypeError, match="logical environment has no type"):
            logical_environments.update(store, "staging", type="kubernetes")
        view, created = environments.create(store, "edge")
        assert created and view.type == "custom"  # an environment's default type
    finally:
        store.close()
