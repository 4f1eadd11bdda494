"""Browser helpers for the console: log in, wait for Streamlit to settle, navigate, read.

Streamlit draws over a websocket and reruns the script on every interaction; while a rerun
is going the previous elements stay on the page marked `data-stale="true"`. The helpers
look at fresh elements only (`fresh(page)`) and wait for the app to report that no script
is running (`data-test-script-state` on `stApp`, which Streamlit's own e2e tests use).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from playwright.sync_api import Download, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from dashboard.runtime import DEMO_USERS

PASSWORDS = {name: password for name, password, _ in DEMO_USERS}
TIMEOUT = 30_000  # ms; the first reads of a page go to the sandbox over HTTP

#: The navigation each demo user must see, in menu order (dashboard/navigation.py PAGES).
NAV = {
    "viewer": ["Overview", "Grants", "Grant detail", "My account"],
    "support": ["Overview", "Grants", "Grant detail", "Connect a customer", "My account"],
    "finance": ["Overview", "Grants", "Grant detail", "Guest limits", "Audit log",
                "My account"],
    "admin": ["Overview", "Grants", "Grant detail", "Guest limits", "Audit log",
              "Connect a customer", "My account", "Outcomes", "Users"],
    "ops": ["Overview", "Grants", "Grant detail", "Guest limits", "Audit log",
            "Connect a customer", "My account"],
}
ALL_PAGES = ["Overview", "Grants", "Grant detail", "Guest limits", "Audit log",
             "Connect a customer", "My account", "Outcomes", "Users"]


#: Counts the app's script runs (`window.__consoleRuns`): added to every browser context by
#: the fixtures, so that `quiet()` can tell a finished run from a pause between two runs.
RUN_COUNTER_JS = """
(() => {
  window.__consoleRuns = 0;
  let last = null;
  new MutationObserver(() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app && app.getAttribute('data-test-script-state');
    if (state !== last) {
      if (state === 'running') window.__consoleRuns += 1;
      last = state;
    }
  }).observe(document, {attributes: true, subtree: true, childList: true,
                        attributeFilter: ['data-test-script-state']});
})();
"""


def runs(page: Page) -> int | None:
    """How many script runs this page has seen (None without RUN_COUNTER_JS)."""
    return page.evaluate("window.__consoleRuns === undefined ? null : window.__consoleRuns")


def quiet(page: Page, for_ms: int = 400, timeout: float = TIMEOUT) -> None:
    """Settle, then wait until no run has started for `for_ms`: for the moments when the
    browser itself asks for a rerun shortly after a run ends (a component reporting in, a
    fragment's timer), and a click sent in between would race that rerun."""
    import time

    deadline = time.monotonic() + timeout / 1000
    while True:
        settle(page, timeout)
        before = runs(page)
        page.wait_for_timeout(for_ms)
        if before is None or (runs(page) == before and _not_running(page)):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the console kept rerunning for {timeout / 1000:.0f} s")


def _not_running(page: Page) -> bool:
    state = page.get_by_test_id("stApp").get_attribute("data-test-script-state")
    return state == "notRunning"


def fresh(page: Page) -> Locator:
    """The main area's elements of the latest run (not the stale ones of the previous)."""
    return page.locator('[data-testid="stMain"] [data-stale="false"]')


def main(page: Page) -> Locator:
    return page.get_by_test_id("stMainBlockContainer")


def settle(page: Page, timeout: float = TIMEOUT) -> None:
    """Wait until the app is connected and no script run is going."""
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED", timeout=timeout)
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=timeout)


def heading(page: Page, name: str) -> Locator:
    return main(page).get_by_role("heading", name=name, exact=True)


def expect_page(page: Page, title: str, timeout: float = TIMEOUT) -> None:
    """The main area shows the page with this title (as an h1) and the run is over."""
    expect(main(page).locator("h1", has_text=title).first).to_be_visible(timeout=timeout)
    settle(page, timeout)


def login(page: Page, base_url: str, username: str, password: str | None = None) -> None:
    """Open the console and log in through the form; waits for the Overview page."""
    page.goto(base_url + "/")
    fill_login(page, username, PASSWORDS[username] if password is None else password)
    expect_page(page, "Overview")
    # The page's script writes the cookie as the Overview is drawn: a reload or a new tab
    # from here on stays logged in.
    wait_for_login_cookie(page)
    quiet(page)


def fill_login(page: Page, username: str, password: str) -> None:
    form = page.get_by_test_id("stForm").filter(has_text="Log in")
    # A run that follows the first (a rerun asked for by the browser) draws the form twice
    # for a moment. Wait for one form in a finished run.
    expect(form).to_have_count(1, timeout=TIMEOUT)
    settle(page)
    expect(form).to_have_count(1, timeout=TIMEOUT)
    user_box = form.get_by_label("Username", exact=True)
    pass_box = form.get_by_label("Password", exact=True)
    user_box.fill(username)
    pass_box.fill(password)
    expect(user_box).to_have_value(username)
    expect(pass_box).to_have_value(password)
    submit(page, form.get_by_role("button", name="Log in"))


def submit(page: Page, button: Locator) -> None:
    """Click `button` and wait until the script run the click asked for has begun.

    `settle()` right after a click can return before that run has begun: the page still
    says "notRunning" until the server answers. A next step taken then races the run; a
    second login typed into the form while the first submit's run is on its way has its
    password box emptied by that run (the form empties it after each attempt), and the
    next click sends an empty password, which is refused without being counted. Pages
    opened without RUN_COUNTER_JS (`runs()` is None) only click."""
    before = runs(page)
    button.click()
    if before is not None:
        page.wait_for_function("n => window.__consoleRuns > n", arg=before, timeout=TIMEOUT)


def wrong_passwords_until_locked(page: Page, username: str, attempts: int = 5) -> None:
    """Type a wrong password `attempts` times (the console's lock threshold), each after the
    previous answer is on the page, and check each answer counts one more failure."""
    for left in range(attempts - 1, -1, -1):
        fill_login(page, username, "wrong-password")
        answer = (f"({left} attempt(s) left before a lock)" if left else
                  "Too many failed attempts: locked")
        expect(main(page).get_by_text(answer)).to_be_visible(timeout=TIMEOUT)
        settle(page)


def nav(page: Page) -> Locator:
    return page.get_by_test_id("stSidebarNav")


def nav_titles(page: Page) -> list[str]:
    links = nav(page).get_by_role("link")
    # Each link is "<material icon name>\n\n<title>": keep the title.
    return [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts()]


def goto_page(page: Page, title: str, heading_text: str | None = None) -> None:
    """Click a page in the sidebar navigation and wait for it."""
    nav(page).get_by_role("link", name=title, exact=True).click()
    expect_page(page, heading_text or title)


def logout(page: Page) -> None:
    page.get_by_test_id("stSidebar").get_by_role("button", name="Log out").click()
    expect(page.get_by_test_id("stForm").get_by_role("heading", name="Log in")).to_be_visible(
        timeout=TIMEOUT)


def open_grant(page: Page, base_url: str, grant_id: str) -> None:
    """Open a grant through the Grants page's "Open a grant by id" form."""
    goto_page(page, "Grants")
    form = main(page).get_by_test_id("stForm").filter(has_text="Open a grant by id")
    form.get_by_label("Open a grant by id", exact=True).fill(grant_id)
    form.get_by_test_id("stBaseButton-secondaryFormSubmit").click()
    expect_page(page, "Grant detail")
    expect(main(page).get_by_text(grant_id, exact=True).first).to_be_visible(timeout=TIMEOUT)


def download_text(page: Page, button: Locator) -> tuple[Download, str]:
    with page.expect_download(timeout=TIMEOUT) as info:
        button.click()
    download = info.value
    path = download.path()
    with open(path, encoding="utf-8-sig") as fh:
        return download, fh.read()


def csv_rows(text: str) -> list[dict[str, Any]]:
    return list(csv.DictReader(io.StringIO(text)))


def all_html(page: Page) -> str:
    """The page's HTML, including the HTML of its same-origin frames (components)."""
    parts = [page.content()]
    for frame in page.frames:
        if frame is page.main_frame:
            continue
        parts.append(frame.content())
    return "\n".join(parts)


def grid_rows(grid: Locator) -> list[list[str]]:
    """The rows (header first) of an `st.dataframe`/`st.data_editor`, read from the
    accessible table glide-data-grid keeps next to its canvas (rows scrolled into view only:
    enough for the short tables read here)."""
    expect(grid.locator("table[role=grid]")).to_be_attached(timeout=TIMEOUT)
    return grid.locator("table[role=grid]").first.evaluate(
        """t => Array.from(t.querySelectorAll('tr')).map(
               r => Array.from(r.querySelectorAll('th,td')).map(c => c.textContent.trim()))"""
    )


ROW_PX = 35  # glide-data-grid's row (and header) height in Streamlit's tables
MARKER_PX = 17  # the middle of a selectable table's row-marker (checkbox) column


def row_marker(grid: Locator, row: int) -> tuple[float, float]:
    """Where the selection checkbox of row `row` (from 0, counted from the top of the grid
    as scrolled) is drawn on the screen: the grid is a canvas, so a click goes to a place,
    as a person's does."""
    box = grid.locator("canvas").first.bounding_box()
    assert box is not None
    return box["x"] + MARKER_PX, box["y"] + ROW_PX * (row + 1) + ROW_PX / 2


def selected_rows(grid: Locator) -> list[int]:
    """The positions (from 0) of the rows a multi-row `st.dataframe` shows selected, among
    the rows scrolled into view, from its accessible table's `aria-selected`."""
    expect(grid.locator("table[role=grid]")).to_be_attached(timeout=TIMEOUT)
    return grid.locator("table[role=grid]").first.evaluate(
        """t => Array.from(t.querySelectorAll('tbody tr')).flatMap(
               r => r.getAttribute('aria-selected') === 'true'
                    ? [Number(r.getAttribute('aria-rowindex')) - 2] : [])""")


def grid_dicts(grid: Locator) -> list[dict[str, str]]:
    rows = grid_rows(grid)
    head = rows[0]
    return [dict(zip(head, r, strict=False)) for r in rows[1:]]


SECRET = "sandbox_secret_do_not_use_live"


def assert_no_secrets(page: Page, sandbox: Any) -> None:
    """The page's HTML (and its frames') holds neither the client secret nor any access
    token the sandbox handed out."""
    html = all_html(page)
    assert SECRET not in html, "the client secret is in the page's HTML"
    leaked = [t["grant_id"] for t in sandbox.tokens() if t["access_token"] in html]
    assert not leaked, f"access tokens of {leaked} are in the page's HTML"


COOKIE = "kryptos_console"


def has_login_cookie(page: Page) -> bool:
    return bool(page.evaluate(
        f"document.cookie.split('; ').some(c => c.startsWith('{COOKIE}='))"))


def wait_for_login_cookie(page: Page, timeout: float = 10_000) -> None:
    """The login cookie is written by a script in the page (the run after the login)."""
    try:
        page.wait_for_function(
            f"document.cookie.split('; ').some(c => c.startsWith('{COOKIE}='))",
            timeout=timeout)
    except PlaywrightTimeout:
        raise AssertionError(
            f"the login cookie '{COOKIE}' was not written within {timeout / 1000:.0f} s of the "
            "login: a refresh or a new tab would show the login form again") from None


def eventually(page: Page, check: Any, what: str, timeout: float = TIMEOUT) -> None:
    """Poll `check()` until it is true: for what is read from a data grid's accessible table,
    which the grid redraws a moment after the run that changed it."""
    import time

    deadline = time.monotonic() + timeout / 1000
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"{what} (last seen: {last!r})")


def grid(scope: Locator, column: str) -> Locator:
    """The first data grid under `scope` that has a column headed `column`."""
    import re

    return scope.get_by_test_id("stDataFrame").filter(
        has=scope.page.locator("table[role=grid] th", has_text=re.compile(
            rf"^\s*{re.escape(column)}\s*$"))).first
