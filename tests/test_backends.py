"""The suite's own rule for backends (tests/conftest.py): a test that opens a database runs
on SQLite and on PostgreSQL, one marked sqlite_only runs on SQLite alone and must say why,
and every database a test gets is as freshly migrated."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def every_deploytrack_module() -> None:
    """Every deploytrack module imported before `pytester` exists (a wider scope is set up
    first). pytester takes a snapshot of sys.modules when it is created and puts it back
    after the test: a deploytrack module first imported by the inner run would be dropped,
    then imported again by a later test, and a second `store.models` defines a second set
    of peewee models, which queries built by modules imported earlier then mix with it
    (`no such column: t2.environment_id`)."""
    import importlib
    import pkgutil

    import deploytrack

    for module in pkgutil.walk_packages(deploytrack.__path__, "deploytrack."):
        importlib.import_module(module.name)


@pytest.fixture
def suite(every_deploytrack_module: None, pytester: pytest.Pytester) -> pytest.Pytester:
    """A throwaway test folder with this suite's conftest.py and helpers."""
    for name in ("conftest.py", "helpers.py"):
        pytester.makepyfile(**{name.removesuffix(".py"): (TESTS / name).read_text()})
    pytester.syspathinsert(TESTS.parent / "scripts")  # pgtemp, for the PostgreSQL server
    return pytester


def collected(suite: pytest.Pytester, source: str) -> list[str]:
    suite.makepyfile(test_sample=source)
    result = suite.runpytest_inprocess("--collect-only", "-q", "--strict-markers")
    assert result.ret == 0, result.stdout.str()
    return [line for line in result.outlines if "::" in line]


def test_a_database_test_runs_on_both_backends_and_a_pure_one_once(
    suite: pytest.Pytester,
) -> None:
    ids = collected(
        suite,
        "def test_db(db_path): pass\ndef test_cli(ok): pass\ndef test_pure(): pass\n",
    )
    assert ids == [
        "test_sample.py::test_db[sqlite]",
        "test_sample.py::test_db[postgresql]",
        "test_sample.py::test_cli[sqlite]",
        "test_sample.py::test_cli[postgresql]",
        "test_sample.py::test_pure",
    ]


def test_sqlite_only_runs_on_sqlite_alone(suite: pytest.Pytester) -> None:
    ids = collected(
        suite,
        "import pytest\n"
        "@pytest.mark.sqlite_only(reason='the file mode')\n"
        "def test_file(db_path): pass\n",
    )
    assert ids == ["test_sample.py::test_file[sqlite]"]


@pytest.mark.parametrize("mark", ["sqlite_only", "sqlite_only()", "sqlite_only(reason=' ')"])
def test_sqlite_only_without_a_reason_fails_collection(suite: pytest.Pytester, mark: str) -> None:
    suite.makepyfile(test_sample=f"import pytest\n@pytest.mark.{mark}\ndef test_x(db_path): pass\n")
    result = suite.runpytest_inprocess("--collect-only", "-q", "--strict-markers")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*sqlite_only needs a reason*"])


def test_each_test_gets_a_database_as_freshly_migrated(suite: pytest.Pytester) -> None:
    """On PostgreSQL a used database is put back (rows) or dropped (schema changed): either
    way the next test cannot tell it from a new one."""
    suite.makepyfile(
        test_sample="from conftest import fail_writes, untouched\n"
        "def test_1_writes(ok, db_path):\n"
        "    ok('environment', 'create', '--name', 'left-behind')\n"
        "    assert not untouched(db_path)\n"
        "def test_2_is_fresh(ok, db_path):\n"
        "    assert untouched(db_path)\n"
        "def test_3_changes_the_schema(db_path):\n"
        "    fail_writes(db_path, 'environment')\n"
        "def test_4_is_fresh(ok, db_path):\n"
        "    assert untouched(db_path)\n"
        "    ok('environment', 'create', '--name', 'left-behind')\n"
    )
    result = suite.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-k", "postgresql")
    result.assert_outcomes(passed=4)


def test_the_developers_libpq_variables_do_not_reach_the_throwaway_server(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSSLMODE", "require")  # the throwaway server has no TLS
    suite.makepyfile(test_sample="def test_db(ok):\n    ok('environment', 'list')\n")
    result = suite.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-k", "postgresql")
    result.assert_outcomes(passed=1)
