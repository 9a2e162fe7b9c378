"""`deploytrack report`: the HTML file's content, its escaping, its window, its refusals.

What a browser makes of the file (console, network, accessibility, screenshots, size) is
tested in tests/test_report_browser.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import NGINX_FULL, NGINX_GIT, Clock, Invoke, execute
from helpers import intoto_statement, record_args
from report_support import compute_metrics, history, record_rows, section, text

from deploytrack import timeutil

ROOT = Path(__file__).resolve().parent.parent
MARKUP = "<script>alert(1)</script>"


@pytest.fixture
def made(clock: Clock, seeded: None, ok: Invoke, tmp_path: Path) -> str:
    """The report of `history`, over the window of its day and a half; the clock is frozen
    first, so the evidence is imported at its start too (a lead time measured from an
    import time does not depend on when the test runs)."""
    history(ok, clock)
    out = tmp_path / "report.html"
    ok("report", "--output", str(out), "--since", "2026-11-20T00:00:00Z")
    return out.read_text(encoding="utf-8")


def test_the_timeline_tells_how_each_record_started_and_ended(made: str) -> None:
    rows = record_rows(made)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 7]
    full, git = NGINX_FULL[7:19], NGINX_GIT[7:19]
    # A superseded or rolled back record ends when the next row starts: no end time then.
    assert rows[1] == f"{full} 2026-11-20T09:00:00Z superseded"
    assert rows[2] == f"{full} 2026-11-20T10:00:00Z superseded"
    assert rows[3] == f"{git} 2026-11-20T12:00:00Z rolled back"
    assert rows[4] == f"{full} 2026-11-20T13:00:00Z restored superseded"
    assert rows[5] == f"{git} 2026-11-20T14:00:00Z still active"
    assert rows[6] == f"{git} 2026-11-20T14:00:00Z promoted still active"
    # Nothing follows a decommissioning: its end time is written.
    assert rows[7] == f"{full} 2026-11-20T14:00:00Z decommissioned 2026-11-20T15:00:00Z"
    timeline = section(made, "timeline")
    # Slots in order: environment, then the lifecycle's order of logical environments.
    headings = re.findall(r"<h3 id=\"s\d+\">(.*?)</h3>", timeline)
    assert [text(h) for h in headings] == [
        "api (CONTAINER_IMAGE) in cluster/staging",
        "api (CONTAINER_IMAGE) in cluster/production",
        "web (CONTAINER_IMAGE) in edge/production",
    ]
    # Each end has its own pattern group, each start other than a record its own marker,
    # and every bar a hover text with its times.
    assert timeline.count('<g class="e-r">') == 1
    assert timeline.count('<g class="e-d">') == 1
    assert "#3 2026-11-20 12:00 – 2026-11-20 13:00 rolled back</title>" in timeline
    assert "#6 promoted 2026-11-20 14:00 – still active</title>" in timeline
    assert '<path class="m-p"' in timeline and '<circle class="m-r"' in timeline


def test_the_grid_shows_what_runs_where_now(made: str) -> None:
    grid = text(section(made, "now"))
    # Columns in the lifecycle's order; edge runs nothing any more.
    assert "environment staging production" in grid
    assert grid.count("api CONTAINER_IMAGE") == 2
    assert "web" not in grid
    assert f"{NGINX_GIT[:19]}" in grid
    # 31 hours without a heartbeat: stale, as `status` says after 24 hours.
    assert grid.count("last seen 1d 7h ago stale") == 2
    assert grid.count("evidence not verified") == 2
    assert grid.count("no stage policy in force when recorded") == 2


def test_the_metrics_are_the_metrics_service_s(made: str, db_path: Path) -> None:
    # The window: from --since to now (the clock), as the report's header says.
    header = text(made[: made.index("</header>")])
    assert "Window: 2026-11-20T00:00:00Z to 2026-11-21T21:00:00Z" in header

    since = timeutil.parse_time_span("2026-11-20T00:00:00Z")[0]
    until = timeutil.parse_time_span("2026-11-21T21:00:00Z")[0]
    found = compute_metrics(db_path, "production", since, until)
    shown = text(section(made, "metrics"))
    frequency = found.deployment_frequency
    assert "production, every environment" in shown
    assert f"Deployment frequency {frequency.count} deployments" in shown
    failures = found.change_failure_rate
    assert f"({failures.failed} of {failures.total})" in shown
    # One column per interval, labelled with its first day, its count on hover.
    titles = re.findall(r"<title>([^<]*) deployments</title>", section(made, "metrics"))
    intervals = [f"{timeutil.short(i.start)[:10]}: {i.count}" for i in frequency.per_interval]
    assert titles[: len(intervals)] == intervals
    lead = found.lead_time
    if lead.count:
        median = timeutil.age(lead.median_seconds * 1_000_000)
        p90 = timeutil.age(lead.p90_seconds * 1_000_000)
        assert f"median {median}, 90th percentile {p90} ({lead.count} measured" in shown
    # The distribution: every measured lead time in one column.
    assert sum(int(t.rsplit(": ", 1)[1]) for t in titles[len(intervals) :]) == lead.count


def test_the_log_state_is_log_verify_s(made: str, ok: Invoke) -> None:
    verified = json.loads(ok("log", "verify", "-o", "json").stdout)
    shown = text(section(made, "log"))
    assert f"Size {verified['size']} events" in shown
    assert f"Root {verified['root']}" in shown
    assert "log verify passed when this report was made" in shown
    checkpoint = ok("log", "checkpoint").stdout
    assert f'<pre tabindex="0">{checkpoint}</pre>' in made


def test_a_failed_log_verify_is_shown(made: str, ok: Invoke, db_path: Path, tmp_path: Path) -> None:
    # A row edited outside deploytrack: the log no longer reproduces the tables.
    execute(db_path, "UPDATE environment SET description = 'edited' WHERE name = 'edge'")
    out = tmp_path / "after.html"
    result = ok("report", "--output", str(out))
    assert "log verify FAILED" in result.stdout
    shown = text(section(out.read_text(), "log"))
    assert "log verify FAILED when this report was made" in shown
    assert "state: FAILED" in shown


def test_markup_in_stored_values_is_text(
    seeded: None, ok: Invoke, tmp_path: Path, db_path: Path
) -> None:
    # What the CLI lets in: an attestation's project and workflow, a reference's folder.
    statement = tmp_path / "s.json"
    statement.write_text(json.dumps(intoto_statement([("img", NGINX_FULL)], "https://e.com/p")))
    ok("attestation", "import", str(statement), "--project", MARKUP, "--workflow", MARKUP)
    layout = tmp_path / "<script>alert(2)<"
    shutil.copytree(ROOT / "demo" / "oci-layout", layout)
    ok(
        "attestation",
        "import",
        str(ROOT / "demo" / "attestations" / "api-server-1.0.0.provenance.json"),
    )
    ok(*record_args("cluster", "production", "api"), "--oci-ref", f"oci:{layout}:1.0.0")
    ok(*record_args("cluster", "staging", "api"), "--digest", NGINX_FULL)
    out = tmp_path / "r.html"
    ok("report", "--output", str(out))
    page = out.read_text()
    assert "<script" not in page.lower()
    assert f"built as {MARKUP} ({MARKUP})" in text(page)
    assert "&lt;script&gt;alert(2)&lt;" in page


def test_every_string_the_template_shows_is_escaped() -> None:
    """Names the CLI refuses (an environment, a deployment name, a logical environment with
    markup) may still come from an older or imported database: the template escapes every
    value, whatever its field."""
    import dataclasses

    from deploytrack.services import report
    from deploytrack.services.views import report as views

    def hostile(cls: type, **given: object) -> object:
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            if field.name in given:
                values[field.name] = given[field.name]
            elif field.type in ("str", "str | None"):
                values[field.name] = f"{MARKUP}\x1b[31m\u202e"
            elif field.type in ("int", "int | None"):
                values[field.name] = 1_800_000_000_000_000
            elif field.type in ("float", "float | None"):
                values[field.name] = 1.0
            elif field.type == "bool":
                values[field.name] = True
            elif field.type.startswith("tuple[str"):
                values[field.name] = (MARKUP,)
            else:
                raise AssertionError(f"give {cls.__name__}.{field.name}")
        return cls(**values)

    chart = views.Chart(10.0, 10.0, 1, (hostile(views.Column, x=1.0, width=1.0, height=1.0),))
    bar = hostile(views.Bar, digest="sha256:" + "ab" * 32, start="promoted", end="rolled back")
    page = report.render(
        hostile(
            views.Report,
            logical_environments=(MARKUP,),
            environments=(MARKUP,),
            grid=views.Grid(
                (MARKUP,),
                (views.GridRow(MARKUP, ((hostile(views.Cell, digest="sha256:" + "ab" * 32),),)),),
                60,
            ),
            timeline=views.Timeline(
                1000.0,
                (views.Tick(0.0, MARKUP),),
                (hostile(views.SlotTimeline, bars=(bar,)),),
                1,
            ),
            metrics=(
                hostile(views.MetricsPanel, frequency=chart, lead_time=chart, interval="week"),
            ),
            log=hostile(views.LogState, checks=(hostile(views.LogCheckRow),), checkpoint=MARKUP),
        )  # type: ignore[arg-type]
    )
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") > 20
    # Control and bidirectional characters are shown as escapes, as in the CLI's tables.
    assert "\x1b" not in page and "\u202e" not in page
    assert "\\x1b[31m\\u202e" in page


def test_the_window_cuts_records_at_its_edges(
    seeded: None, ok: Invoke, clock: Clock, db_path: Path
) -> None:
    from deploytrack.services import report
    from deploytrack.store import open_store

    start = clock.now
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_FULL)  # 1
    clock.advance(hours=10)
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_GIT)  # 2
    clock.advance(hours=10)
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_FULL)  # 3
    clock.advance(hours=10)
    store = open_store(db_path)
    try:
        # From the middle of record 1 to the middle of record 2: record 3 is outside.
        built = report.build(
            store, since=start + 5 * 3_600_000_000, until=start + 15 * 3_600_000_000
        )
    finally:
        store.close()
    (slot,) = built.timeline.slots
    first, second = slot.bars
    assert (first.deployment_id, second.deployment_id) == (1, 2)
    # Record 1 is drawn from the window's start; record 2 to its end, still shown as the
    # superseded record it is.
    assert (first.x, first.width) == (0.0, 500.0)
    assert (second.x, second.width) == (500.0, 500.0)
    assert second.end == "superseded"
    assert timeutil.short(built.since) == "2026-11-20T14:00:00Z"


def test_the_lead_time_distribution_buckets_by_their_bounds() -> None:
    from deploytrack.services.report import _chart, _distribution

    hour, day = 3600, 86_400
    counts = dict(_distribution([0, hour - 1, hour, 6 * hour, day, 3 * day, 7 * day, 28 * day]))
    assert counts == {
        "< 1 h": 2, "1–6 h": 1, "6–24 h": 1, "1–3 d": 1, "3–7 d": 1, "1–4 w": 1, "≥ 4 w": 1,
    }  # fmt: skip
    chart = _chart([("a", 4), ("b", 1), ("c", 0)])
    assert [c.height for c in chart.columns] == [140.0, 35.0, 0.0]
    assert _chart([("a", 0)]).columns[0].height == 0.0


def test_refusals_write_nothing(seeded: None, refuse: Invoke, ok: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    refuse("report", "--output", str(out), "--env", "nowhere", contains="environment 'nowhere'")
    refuse("report", "--output", str(out), "--logical-env", "qa", contains="'qa' does not exist")
    refuse(
        "report",
        "--output",
        str(out),
        "--since",
        "1d",
        "--until",
        "2d",
        contains="--since is after --until",
    )
    refuse("report", "--output", str(out), "--env", "Not_A_Name", code=2)
    refuse("report", code=2, contains="--output")
    assert not out.exists()
    out.write_text("kept")
    refuse("report", "--output", str(out), contains="exists: choose another path or remove it")
    assert out.read_text() == "kept"


def test_the_file_is_private_and_the_command_says_what_it_wrote(
    seeded: None, ok: Invoke, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    result = ok("report", "--output", str(out))
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    size = out.stat().st_size
    assert re.fullmatch(
        rf"Wrote {re.escape(str(out))} \({size} bytes\): 0 record\(s\) in 0 slot\(s\) from "
        r"\S+Z to \S+Z; log verify passed at \d+ events\.\n",
        result.stdout,
    )


def test_a_regular_install_ships_the_template(tmp_path: Path) -> None:
    # `make bench` and users install a wheel: the template must be inside it. Built from a
    # copy as fresh as a clone: a build folder or egg-info left here would list it anyway.
    source = tmp_path / "clone"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests", "*.db"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("deploytrack-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "deploytrack/services/templates/report.html.j2" in archive.namelist()


def test_the_grid_says_what_verified_the_evidence_and_which_policy_admitted_it(
    ok: Invoke, tmp_path: Path
) -> None:
    from keyutil import ed25519_pair

    private, public = ed25519_pair(tmp_path, "release")
    statement = tmp_path / "s.json"
    statement.write_text(json.dumps(intoto_statement([("img", NGINX_FULL)], "https://e.com/p")))
    ok("attestation", "sign", str(statement), "--key", str(private), "--project", "api")
    ok("environment", "create", "--name", "cluster")
    policy = json.loads(
        ok("logical-environment", "policy", "set", "--name", "production",
           "--trusted-key", str(public), "-o", "json").stdout
    )  # fmt: skip
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_FULL)
    out = tmp_path / "r.html"
    ok("report", "--output", str(out))
    grid = text(section(out.read_text(), "now"))
    (key,) = policy["policy"]["trusted_keys"]
    assert f"evidence verified by {key['fingerprint']}" in grid
    assert f"admitted by stage policy {policy['policy']['id']}" in grid


def test_the_selection_narrows_the_grid_the_timeline_and_the_metrics(
    made: str, ok: Invoke, tmp_path: Path
) -> None:
    out = tmp_path / "staging.html"
    ok("report", "--output", str(out), "--logical-env", "staging", "--env", "cluster",
       "--env", "edge", "--since", "2026-11-20T00:00:00Z")  # fmt: skip
    page = out.read_text()
    assert re.findall(r"<th scope=\"col\">(.*?)</th>", section(page, "now")) == [
        "environment",
        "staging",
    ]
    assert sorted(record_rows(page)) == [1, 5]
    # The metrics: once per (logical environment, environment) named.
    panels = re.findall(r"<h3>(.*?)</h3>", section(page, "metrics"))
    assert panels == ["staging in cluster", "staging in edge"]


def test_a_slot_s_table_names_the_repository_its_references_share_once() -> None:
    from deploytrack.services.report import _repository

    assert _repository(["ghcr.io/acme/api:1.0.0", "ghcr.io/acme/api:1.1.0"]) == (
        "ghcr.io/acme/api:"
    )
    assert _repository(["ghcr.io/acme/api:1.0", "ghcr.io/acme/app:1.0"]) == "ghcr.io/acme/"
    # One reference, or none in common: nothing to factor out.
    assert _repository(["ghcr.io/acme/api:1.0.0"]) == ""
    assert _repository(["a.io/x:1", "b.io/x:1"]) == ""
