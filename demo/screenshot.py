"""The screenshot of the demo's report in docs/: `python demo/screenshot.py [REPORT]`.

Opens the report `make demo` wrote (default build/demo-report.html) in Debian's chromium
through Playwright, as the report's tests do (both come with `make test`), 1280 pixels
wide, and writes the whole page to docs/report.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "build" / "demo-report.html"
TARGET = ROOT / "docs" / "report.png"
CHROMIUM = "/usr/bin/chromium"


def main(argv: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    report = Path(argv[0]).resolve() if argv else REPORT
    if not report.is_file():
        sys.exit(f"{report} does not exist: run `make demo` first")
    with sync_playwright() as p:
        # Root needs --no-sandbox; Playwright's own browser downloads are not used.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(report.as_uri(), wait_until="load")
        page.screenshot(path=str(TARGET), full_page=True)
        browser.close()
    print(f"Wrote {TARGET.relative_to(ROOT)} from {report}")


if __name__ == "__main__":
    main(sys.argv[1:])
