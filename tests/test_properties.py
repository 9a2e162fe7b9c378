"""Property-based tests: any input is accepted, or refused with exit 1 or 2 and one
`Error:` line — never a traceback — and a refusal leaves the database unchanged.

The rules are restated independently here, so a test fails if the code's rule drifts.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import ATTESTATIONS, NGINX_FULL, snapshot
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from deploytrack.cli import cli
from deploytrack.errors import DeploytrackError
from deploytrack.registry.reference import parse_reference

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DNS1123 = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

# Text that reaches the edges: control characters, surrogate-free unicode, separators.
nasty_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]), min_size=0, max_size=80
) | st.from_regex(r"[a-z0-9-]{0,70}", fullmatch=True)


class Db:
    """One database for a whole property: each example runs against its current state."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runner = CliRunner()

    def run(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(cli, ["--db", str(self.path), *args], input=input)

    def check(self, result: Result, before: list[str]) -> bool:
        """True when accepted; a refusal must be exactly one Error line and change nothing."""
        assert "Traceback" not in result.output + result.stderr
        if result.exit_code == 0:
            return True
        assert result.exit_code in (1, 2), (result.exit_code, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        assert snapshot(self.path) == before
        return False


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    database = Db(tmp_path_factory.mktemp("properties") / "p.db")
    assert (
        database.run("attestation", "import", str(ATTESTATIONS / "chainloop-full.json")).exit_code
        == 0
    )
    assert database.run("environment", "create", "--name", "cluster").exit_code == 0
    yield database


@SETTINGS
@given(name=nasty_text)
@example(name="a" * 63)
@example(name="a" * 64)
@example(name="prod\n")
@example(name="-prod")
def test_environment_names(db: Db, name: str) -> None:
    assume("\x00" not in name)  # argv cannot carry NUL
    before = snapshot(db.path)
    result = db.run("environment", "create", "--name", name, "--if-not-exists")
    assert db.check(result, before) == bool(DNS1123.fullmatch(name))


@SETTINGS
@given(name=nasty_text)
def test_logical_environment_names(db: Db, name: str) -> None:
    assume("\x00" not in name)
    before = snapshot(db.path)
    accepted = db.check(
        db.run("logical-environment", "create", "--name", name, "--if-not-exists"), before
    )
    assert accepted == bool(DNS1123.fullmatch(name))


hex_digest = st.text(alphabet="0123456789abcdefABCDEF", min_size=60, max_size=68)
digests = (
    st.builds(lambda h: f"sha256:{h}", hex_digest)
    | st.builds(
        lambda a, h: f"{a}:{h}", st.sampled_from(["SHA256", "sha512", "md5", ""]), hex_digest
    )
    | nasty_text
)


@SETTINGS
@given(digest=digests)
@example(digest=NGINX_FULL)
@example(digest=NGINX_FULL.upper().replace("SHA256", "sha256"))
@example(digest=NGINX_FULL + "\n")
def test_record_digests(db: Db, digest: str) -> None:
    assume("\x00" not in digest)
    before = snapshot(db.path)
    result = db.run(
        "deployment", "record", "--env", "cluster", "--logical-env", "staging",
        "--deployment-name", "prop", "--kind", "CONTAINER_IMAGE", "--digest", digest,
    )  # fmt: skip
    accepted = db.check(result, before)
    # Only the known digest is accepted, in any case, with surrounding blanks ignored.
    assert accepted == (digest.strip().lower() == NGINX_FULL)


components = st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)*", fullmatch=True)
references = (
    st.builds(
        lambda host, path, tag: f"{host}{'/'.join(path)}{tag}",
        st.sampled_from(
            [
                "",
                "ghcr.io/",
                "localhost:5000/",
                "10.0.0.5:5000/",
                "[::1]:5000/",
                "docker.io/",
                "Registry.Example.com/",
            ]
        ),
        st.lists(components, min_size=1, max_size=4),
        st.sampled_from(["", ":latest", ":v1.2.3", ":-bad", ":" + "a" * 129]),
    )
    | nasty_text
)


@settings(max_examples=500, deadline=None)
@given(reference=references, pinned=st.booleans())
def test_reference_parser_accepts_or_refuses_cleanly(reference: str, pinned: bool) -> None:
    text = f"{reference}@{NGINX_FULL}" if pinned else reference
    try:
        parsed = parse_reference(text)
    except DeploytrackError as exc:
        assert str(exc).startswith("invalid reference") and "\n" not in str(exc)
        return
    assert parsed.repository and parsed.registry
    assert (parsed.digest == NGINX_FULL) == pinned
    assert parse_reference(str(parsed)) == parsed  # the normalised form reads back the same


@SETTINGS
@given(reference=references)
def test_record_pinned_references_needs_no_network(db: Db, reference: str) -> None:
    assume("\x00" not in reference and not reference.startswith(("oci:", "oci-archive:")))
    assume(not reference.endswith((".tgz", ".tar.gz")))
    before = snapshot(db.path)
    result = db.run(
        "deployment", "record", "--env", "cluster", "--logical-env", "development",
        "--deployment-name", "pinned", "--kind", "CONTAINER_IMAGE",
        "--oci-ref", f"{reference}@{NGINX_FULL}", "--registry-timeout", "1",
    )  # fmt: skip
    if db.check(result, before):
        listed = json.loads(db.run("deployment", "list", "--deployment-name", "pinned",
                                   "-o", "json").stdout)  # fmt: skip
        assert listed[0]["digest"] == NGINX_FULL


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | nasty_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=20,
)
statement_like = st.fixed_dictionaries(
    {
        "_type": st.sampled_from(["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"]),
        "subject": st.lists(
            st.fixed_dictionaries({"name": nasty_text, "digest": st.dictionaries(
                st.sampled_from(["sha256", "sha1", "SHA512", "gitCommit", ""]),
                st.text(alphabet=string.hexdigits, max_size=130), max_size=3)}),
            max_size=3,
        ),
        "predicateType": nasty_text,
    },
    optional={"predicate": json_values},
)  # fmt: skip


@SETTINGS
@given(document=json_values | statement_like)
def test_import_any_json(
    db: Db, document: object, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("doc") / "doc.json"
    path.write_text(json.dumps(document))
    before = snapshot(db.path)
    db.check(db.run("attestation", "import", str(path)), before)


DURATION = re.compile(r"(\d{1,12}[smhdw])+")
UNIT_US = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
durations = (
    st.lists(
        st.tuples(st.integers(0, 10**13), st.sampled_from("smhdwSMHDWx")), min_size=1, max_size=3
    ).map(lambda parts: "".join(f"{n}{u}" for n, u in parts))
    | nasty_text
)


def _duration_ok(text: str) -> bool:
    value = text.strip().lower()
    if not DURATION.fullmatch(value):
        return False
    seconds = sum(int(n) * UNIT_US[u] for n, u in re.findall(r"(\d+)([smhdw])", value))
    return seconds <= 100 * 365 * 86400


@SETTINGS
@given(duration=durations)
@example(duration="24h")
@example(duration="1h30m")
@example(duration="0s")
@example(duration="36500d")
@example(duration="36501d")
def test_durations(db: Db, duration: str) -> None:
    assume("\x00" not in duration)
    before = snapshot(db.path)
    accepted = db.check(db.run("status", "--stale-after", duration, "-o", "json"), before)
    assert accepted == _duration_ok(duration)


moments = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC])
    | st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)


@SETTINGS
@given(moment=moments, separator=st.sampled_from(["T", " ", "t"]))
def test_rfc3339_times_are_accepted(db: Db, moment: datetime, separator: str) -> None:
    text = moment.isoformat(sep=separator)
    assume(text.endswith("+00:00") or text[-6] in "+-")
    before = snapshot(db.path)
    result = db.run("deployment", "list", "--at", text, "-o", "json")
    assert db.check(result, before), (text, result.stderr)


@SETTINGS
@given(text=nasty_text | durations)
@example(text="2026-11-20T14:00:00")  # no zone: refused, not guessed
@example(text="2026-11-20")
@example(text="now")
def test_any_time_text_is_accepted_or_cleanly_refused(db: Db, text: str) -> None:
    assume("\x00" not in text)
    before = snapshot(db.path)
    accepted = db.check(db.run("deployment", "list", "--at", text, "-o", "json"), before)
    if text in ("2026-11-20T14:00:00", "2026-11-20"):
        assert not accepted


VARIABLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True) | nasty_text


@SETTINGS
@given(key=keys)
@example(key="DEPLOYTRACK_TOKEN")
@example(key="deploytrack_x")
@example(key="_")
@example(key="9LIVES")
@example(key="A" * 255)
@example(key="A" * 256)
@example(key="KEY\n")
def test_variable_keys(db: Db, key: str) -> None:
    assume("\x00" not in key and not key.startswith("-"))
    before = snapshot(db.path)
    result = db.run("variable", "set", key, "value", "--logical-env", "staging")
    expected = bool(VARIABLE_KEY.fullmatch(key)) and not key.upper().startswith("DEPLOYTRACK_")
    assert db.check(result, before) == expected
