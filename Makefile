# The two set-up commands for a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCH_VENV := .venv-bench
# `make demo DB=postgresql`: the demo against a throwaway PostgreSQL server.
DB ?= sqlite

.PHONY: demo test lint bench clean system-deps docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# On PostgreSQL the demo needs Debian's postgresql, which system-deps installs.
demo: $(STAMP) $(if $(filter postgresql,$(DB)),system-deps)
	$(PY) demo/run.py --backend $(DB)

system-deps:
	@sh scripts/system-deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check .

# A regular (not editable) install, as users get from pip: an editable install's import
# hook alone costs ~10 ms per process. With the PostgreSQL extra: the SQLite rows are
# measured with psycopg installed, as a team's hosts have it.
bench: system-deps
	rm -rf $(BENCH_VENV)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet '.[postgresql]'
	$(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)

# docs/cli.md is generated from the click tree; tests/test_docs.py fails when it is stale.
docs: $(STAMP)
	$(PY) scripts/gen_cli_docs.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis build
