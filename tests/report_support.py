"""What the report's tests share: a history with every way a record starts and ends, and
ways to read a report."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from conftest import NGINX_FULL, NGINX_GIT, Clock, Invoke
from helpers import record_args, slot_args


def history(ok: Invoke, clock: Clock) -> None:
    """Records 1-7 at known times (clock starts 2026-11-20T09:00:00Z), after `seeded`:

    1 api staging FULL 09:00, superseded by 5
    2 api production FULL 10:00, superseded by 3
    3 api production GIT 12:00, rolled back (ended by 4)
    4 api production FULL 13:00, restored (rollback of 2), superseded by 6
    5 api staging GIT 14:00, still active
    6 api production GIT 14:00, promoted from 5, still active
    7 web production on edge FULL 14:00, decommissioned 15:00
    then 30 hours pass: every active record is stale.
    """
    ok("environment", "create", "--name", "edge", "--type", "server")
    ok(*record_args("cluster", "staging", "api"), "--digest", NGINX_FULL)
    clock.advance(hours=1)
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_FULL)
    clock.advance(hours=2)
    ok(*record_args("cluster", "production", "api"), "--digest", NGINX_GIT)
    clock.advance(hours=1)
    ok(*slot_args("rollback", "cluster", "production", "api"))
    clock.advance(hours=1)
    ok(*record_args("cluster", "staging", "api"), "--digest", NGINX_GIT)
    ok("deployment", "promote", "--env", "cluster", "--deployment-name", "api",
       "--kind", "CONTAINER_IMAGE", "--from-logical-env", "staging",
       "--to-logical-env", "production")  # fmt: skip
    ok(*record_args("edge", "production", "web"), "--digest", NGINX_FULL)
    clock.advance(hours=1)
    ok(*slot_args("decommission", "edge", "production", "web"))
    clock.advance(hours=30)


def text(markup: str) -> str:
    """The text of some HTML: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def record_rows(page: str) -> dict[int, str]:
    """Each row of the timeline's tables, by deployment id, as text."""
    rows = re.findall(r"^<tr><td>(\d+)<td>(.*)$", page, flags=re.M)
    return {int(number): text(rest) for number, rest in rows}


def section(page: str, heading_id: str) -> str:
    """The HTML of the <section> whose heading has this id."""
    start = page.index(f'<section aria-labelledby="{heading_id}">')
    return page[start : page.index("</section>", start)]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def compute_metrics(db_path: Path, stage: str, since: int, until: int) -> Any:
    """What the metrics service says of the selection, to compare the report with."""
    from deploytrack.services.metrics import MetricsQuery, compute
    from deploytrack.store import open_store

    store = open_store(db_path)
    try:
        return compute(store, MetricsQuery(logical_environment=stage, since=since, until=until))
    finally:
        store.close()
