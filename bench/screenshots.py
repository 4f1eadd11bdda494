"""Save PNGs of the console's main pages in sandbox mode, for the README.

    .venv/bin/python -m bench.screenshots [--out docs/screenshots]

Streamlit scrolls inside its own container, so a PNG is one viewport: the viewport is made
as tall as each page needs.

Starts a sandbox in this process and the console with `streamlit run` (the launcher of the
browser tests, tests/e2e/console_process.py), logs in with the demo users and drives the
pages in Debian's headless Chromium.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from sandbox import SandboxHandle, start_sandbox
from tests.e2e import helpers as h
from tests.e2e.console_process import ConsoleProcess, launch_chromium

ROOT = Path(__file__).resolve().parents[1]


def out_dir(prefix: str) -> tuple[Path, Path]:
    """`--out` (default docs/screenshots), made; and a fresh working folder."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    return out, Path(tempfile.mkdtemp(prefix=prefix))


@contextmanager
def shooting(work: Path) -> Iterator[tuple[SandboxHandle, ConsoleProcess, Browser]]:
    """A sandbox in this process, the console (the browser tests' launcher) and Debian's
    headless Chromium; all stopped at the end."""
    with start_sandbox(port=0, resync_delay=2.0) as sb, \
            ConsoleProcess(sb.base_url, work / "data") as console, sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            yield sb, console, browser
        finally:
            browser.close()


def save(page: Page, path: Path, width: int, height: int, draw_ms: int = 500) -> None:
    """One PNG of the page at `width` x `height` (tall enough for the whole page: Streamlit
    scrolls inside its own container), once the run is over and charts and grids drew."""
    page.set_viewport_size({"width": width, "height": height})
    h.settle(page)
    # From the page's top, with no toolbar that the pointer's last place would show.
    page.get_by_test_id("stMain").evaluate("el => el.scrollTo(0, 0)")
    page.mouse.move(0, height - 1)
    page.wait_for_timeout(draw_ms)
    page.screenshot(path=str(path), full_page=True)
    print("saved", path)


def main() -> None:
    out, tmp = out_dir("screenshots-")
    with shooting(tmp) as (sb, console, browser):
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def shot(name: str, height: int = 900) -> None:
            save(page, out / name, 1280, height)
            page.set_viewport_size({"width": 1280, "height": 900})

        grant = next(t["grant_id"] for t in sb.tokens()
                     if t["kind"] == "guest" and not t["revoked"])
        h.login(page, console.url, "admin")
        h.open_grant(page, console.url, grant)  # an action or two for the audit log
        h.goto_page(page, "Overview")
        shot("overview.png", height=2600)  # the whole page, its charts too
        h.goto_page(page, "Grants")
        shot("grants.png")
        h.open_grant(page, console.url, grant)
        page.get_by_test_id("stVegaLiteChart").first.locator("canvas, svg").first.wait_for()
        shot("grant-detail.png", height=2300)
        h.goto_page(page, "Guest limits")
        ids = tmp / "ids.csv"
        guests = [t["grant_id"] for t in sb.tokens() if t["kind"] == "guest"
                  and not t["revoked"]][1:4]
        ids.write_text("grant_id\n" + "\n".join(guests) + "\n", encoding="utf-8")
        m = h.main(page)
        m.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(ids))
        m.get_by_text("3 grant id(s) read from the file.").wait_for()
        m.get_by_label("Reason (required to apply)", exact=True).fill("annual plan review")
        h.settle(page)
        m.get_by_role("button", name="Dry run", exact=True).click()
        m.get_by_text("Dry run: nothing was changed.").wait_for()
        shot("guest-limits.png", height=2700)
        # Apply it, so that the audit log has something to show.
        apply = m.get_by_role("button", name="Apply", exact=True)
        apply.click()
        # A cut by more than half asks first (as on one grant).
        yes = m.get_by_role("button", name="Yes, apply this change")
        results = m.get_by_role("heading", name="Results")
        yes.or_(results).first.wait_for()
        if yes.count():
            yes.click()
        results.wait_for()
        h.goto_page(page, "Audit log")
        # Verify the chain, so that the shot shows the head an auditor notes.
        h.main(page).get_by_role("button", name="Verify the chain").click()
        h.main(page).get_by_text("Head: row").first.wait_for()
        shot("audit-log.png", height=2000)
        h.goto_page(page, "Connect a customer")
        shot("connect.png", height=1500)


if __name__ == "__main__":
    main()
