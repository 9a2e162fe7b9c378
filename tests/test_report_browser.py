"""The report in a real browser: Debian's chromium driven by Playwright (its executable is
/usr/bin/chromium: Playwright's own browser downloads are never used; `make test` installs
chromium when it is missing, and these tests fail, never skip, without it).

In the page: no console error, no request of any kind but the file itself, the expected
names and numbers, no serious or critical accessibility violation (axe-core), screenshots
at 1280 and 390 pixels wide; and a report of 10,000 records under 2 MB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import NGINX_FULL, NGINX_GIT, Clock, Invoke
from helpers import intoto_statement
from report_support import history, png_size

CHROMIUM = "/usr/bin/chromium"
MARKUP = "<script>alert(1)</script>"
MAX_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install chromium (make test runs scripts/system-deps.sh)"
    with sync_playwright() as p:
        # Root (CI) needs --no-sandbox.
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Opened:
    """A report open in a page, with what the page logged and asked for."""

    def __init__(self, browser: Any, path: Path, width: int, *, offline: bool = False) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        if offline:
            self.context.set_offline(True)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.url = path.as_uri()
        self.page.goto(self.url, wait_until="load")

    def errors(self) -> list[str]:
        return [line for line in self.console if line.startswith(("error", "pageerror"))]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_report(browser: Any) -> Iterator[Any]:
    opened: list[Opened] = []

    def open_(path: Path, width: int = 1280, **kwargs: Any) -> Opened:
        opened.append(Opened(browser, path, width, **kwargs))
        return opened[-1]

    yield open_
    for each in opened:
        each.close()


def serious(page: Any) -> list[str]:
    """axe-core's serious and critical violations in the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
def report_of_history(clock: Clock, seeded: None, ok: Invoke, tmp_path: Path) -> Path:
    history(ok, clock)
    out = tmp_path / "report.html"
    ok("report", "--output", str(out), "--since", "2026-11-20T00:00:00Z")
    return out


def test_the_report_in_a_browser(report_of_history: Path, open_report: Any, tmp_path: Path) -> None:
    for width in (1280, 390):
        opened = open_report(report_of_history, width, offline=True)
        page = opened.page
        assert opened.errors() == []
        # Nothing fetched, not even a favicon: the one load is the file itself.
        assert opened.requests == [opened.url]
        assert serious(page) == []
        shot = tmp_path / f"report-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        shot_width, shot_height = png_size(shot)
        assert shot_width == width
        # The whole page, not one screen of it; small enough to attach anywhere.
        assert 900 < shot_height < 20_000
        assert 20_000 < shot.stat().st_size < 3_000_000

    # The names and numbers are in the DOM, where a reader (or a screen reader) finds them.
    now = page.locator("#now").locator("xpath=..")
    assert now.locator("tbody th").all_inner_texts() == ["cluster"]
    assert now.locator("thead th").all_inner_texts() == ["environment", "staging", "production"]
    assert now.locator(".badge.stale").count() == 2
    timeline = page.locator("#timeline").locator("xpath=..")
    assert timeline.locator("h3").all_inner_texts() == [
        "api (CONTAINER_IMAGE) in cluster/staging",
        "api (CONTAINER_IMAGE) in cluster/production",
        "web (CONTAINER_IMAGE) in edge/production",
    ]
    assert timeline.locator("svg.tl g rect").count() == 7
    # Each kind of end is drawn apart by a pattern, not a colour only.
    fills = {
        css: timeline.locator(f"g.{css} rect").first.evaluate("e => getComputedStyle(e).fill")
        for css in ("e-r", "e-d")
    }
    assert fills == {"e-r": 'url("#p-r")', "e-d": 'url("#p-d")'}
    # The hover text of a bar: the record and its times.
    rolled = timeline.locator("g.e-r rect title").text_content()
    assert rolled == "#3 2026-11-20 12:00 – 2026-11-20 13:00 rolled back"
    rows = timeline.locator("table.recs tbody tr")
    assert rows.count() == 7
    assert rows.nth(3).inner_text().split("\t") == [
        "3",
        NGINX_GIT[7:19],
        "2026-11-20T12:00:00Z",
        "rolled back",
    ]
    log = page.locator("#log").locator("xpath=..")
    assert "passed" in log.locator("dd").nth(3).inner_text()
    metrics = page.locator("#metrics").locator("xpath=..")
    assert metrics.locator("svg.chart").count() == 2
    assert metrics.locator("h3").all_inner_texts() == ["production, every environment"]


def test_markup_is_text_in_the_browser(
    seeded: None, ok: Invoke, tmp_path: Path, open_report: Any
) -> None:
    statement = tmp_path / "s.json"
    statement.write_text(json.dumps(intoto_statement([("img", NGINX_FULL)], "https://e.com/p")))
    ok("attestation", "import", str(statement), "--project", MARKUP)
    ok("deployment", "record", "--env", "cluster", "--logical-env", "production",
       "--deployment-name", "api", "--kind", "CONTAINER_IMAGE", "--digest", NGINX_FULL)  # fmt: skip
    out = tmp_path / "r.html"
    ok("report", "--output", str(out))
    opened = open_report(out)
    assert opened.page.locator("script").count() == 0
    assert opened.dialogs == []
    assert f"built as {MARKUP}" in opened.page.locator("#now").locator("xpath=..").inner_text()


# --- 10,000 records --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of 10,000 records: 100 slots (5 environments, 2 logical environments, 10
    names), each record a new digest with a registry reference, spread over the 90 days of
    the default window; built through the services in one process."""
    import hashlib

    from deploytrack import timeutil
    from deploytrack.services import deployments, evidence
    from deploytrack.services import report as service
    from deploytrack.services.catalog import environments
    from deploytrack.store import open_store

    folder = tmp_path_factory.mktemp("big")
    digests = [f"sha256:{hashlib.sha256(str(i).encode()).hexdigest()}" for i in range(50)]
    document = intoto_statement([(f"img{i}", d) for i, d in enumerate(digests)], "https://e.com/p")
    end = timeutil.to_us(datetime(2026, 11, 20, tzinfo=UTC))
    total, day = 10_000, 86_400_000_000
    clock = [end - 89 * day]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timeutil, "now_us", lambda: clock[0])
        store = open_store(folder / "big.db")
        try:
            evidence.import_sources(
                store, [evidence.Source("s.json", json.dumps(document).encode())]
            )
            slots = []
            for e in range(5):
                environments.create(store, f"cluster-{e}", type="kubernetes")
                for stage in ("staging", "production"):
                    for n in range(10):
                        slot = deployments.Slot(
                            f"cluster-{e}", stage, f"svc-{n}", "CONTAINER_IMAGE"
                        )
                        slots.append(slot)
            with store.write():  # one transaction: each record() is a savepoint in it
                for i in range(total):
                    turn = i // len(slots)
                    deployments.record(
                        store,
                        slots[i % len(slots)],
                        digests[turn % len(digests)],
                        artifact_ref=f"ghcr.io/acme/svc-{i % 10}:1.{turn}.0",
                    )
                    clock[0] += 89 * day // total
            out = folder / "big.html"
            clock[0] = end
            result = service.write(store, str(out))
        finally:
            store.close()
    assert result.records == total
    return out


def test_ten_thousand_records_make_less_than_2_mb(big_report: Path, open_report: Any) -> None:
    size = big_report.stat().st_size
    assert size < MAX_BYTES, size
    opened = open_report(big_report)
    assert opened.errors() == []
    assert opened.requests == [opened.url]
    page = opened.page
    assert page.locator("svg.tl g rect").count() == 10_000
    assert page.locator("table.recs tbody tr").count() == 10_000
