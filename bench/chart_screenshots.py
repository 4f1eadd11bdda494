"""Save PNGs of the charts (Overview, Audit log) at 1440 and 800 px wide, for the README.

    .venv/bin/python -m bench.chart_screenshots [--out docs/screenshots]

Starts a sandbox and the console like bench/screenshots.py, logs in as admin, makes a few
audit events (a grant opened, a failed login), and shoots each page's charts in Debian's
headless Chromium.
"""

from __future__ import annotations

from bench.screenshots import out_dir, save, shooting
from tests.e2e import helpers as h

WIDTHS = (1440, 800)


def main() -> None:
    out, tmp = out_dir("chart-shots-")
    with shooting(tmp) as (sb, console, browser):
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
                save(page, out / f"{name}-{width}.png", width, height, draw_ms=800)

        shoot("Overview", "Trends", "charts-overview", 2600)
        shoot("Audit log", "failed or refused", "charts-audit", 1300)
        shoot("Guest limits", "Where the Guests are", "charts-guest-limits", 1300)


if __name__ == "__main__":
    main()
