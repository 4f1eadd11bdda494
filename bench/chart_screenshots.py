"""Save PNGs of the charts (Overview, Audit log) at 1440 and 800 px wide, for the README.

    .venv/bin/python -m bench.chart_screenshots [--out docs/screenshots]

Starts a sandbox and the console like bench/screenshots.py, logs in as admin, makes a few
audit events (a grant opened, a failed login), and shoots each page's charts in Debian's
headless Chromium.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from sandbox import start_sandbox
from tests.e2e import helpers as h
from tests.e2e.console_process import ConsoleProcess, launch_chromium

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (1440, 800)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="chart-shots-"))
    with start_sandbox(port=0, resync_delay=2.0) as sb, \
            ConsoleProcess(sb.base_url, tmp / "data") as console, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(console.url + "/")  # a failed login, to show in red
        h.fill_login(page, "admin", "not the password")
        page.wait_for_timeout(1500)
        h.login(page, console.url, "admin")
        grant = next(t["grant_id"] for t in sb.tokens()
                     if t["kind"] == "guest" and not t["revoked"])
        h.open_grant(page, console.url, grant)

        def shoot(title: str, anchor: str, name: str, height: int) -> None:
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": height})
                h.goto_page(page, title)
                h.main(page).get_by_text(anchor).first.wait_for()
                charts = page.get_by_test_id("stVegaLiteChart")
                if charts.count():
                    charts.first.locator("canvas, svg").first.wait_for()
                h.settle(page)
                page.wait_for_timeout(800)  # let the charts draw at this size
                path = out / f"{name}-{width}.png"
                page.screenshot(path=str(path), full_page=True)
                print("saved", path)

        shoot("Overview", "Trends", "charts-overview", 2600)
        shoot("Audit log", "failed or refused", "charts-audit", 1300)
        shoot("Guest limits", "Where the Guests are", "charts-guest-limits", 1300)
        browser.close()


if __name__ == "__main__":
    main()
