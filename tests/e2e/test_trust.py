"""Sessions and logins in a real browser: a cookie saved before logout, a forged cookie, a
lock that survives the real user's reload, unlocking, a TOTP login.

These tests lock users out, log users out everywhere and enrol a second factor: they use a
console process of their own (`trust_console`), so the other browser tests never see it.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator

import jwt
import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from sandbox import SandboxHandle
from tests.e2e import helpers as h
from tests.e2e.conftest import running_console
from tests.e2e.console_process import PROJECT_ROOT, ConsoleProcess


@pytest.fixture(scope="module")
def trust_console(e2e_sandbox: SandboxHandle,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    yield from running_console(e2e_sandbox, tmp_path_factory, name="trust-console")


@pytest.fixture
def contexts(browser: Browser) -> Iterator:
    """`open_page()`: a page in a fresh browser context (no cookies), closed at the end."""
    made = []

    def open_page(cookies: list | None = None) -> Page:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.add_init_script(h.RUN_COUNTER_JS)
        if cookies:
            ctx.add_cookies(cookies)
        made.append(ctx)
        return ctx.new_page()

    yield open_page
    for ctx in made:
        ctx.close()


def users_cli(console: ConsoleProcess, *argv: str) -> str:
    """`python -m dashboard.users` against the console's own users file and database."""
    result = subprocess.run(
        [sys.executable, "-m", "dashboard.users", "--file",
         str(console.data_dir / "sandbox-users.yaml"), *argv],
        cwd=PROJECT_ROOT, env=console.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def expect_login_form(page: Page) -> None:
    expect(page.get_by_test_id("stForm").get_by_role("heading", name="Log in")).to_be_visible(
        timeout=h.TIMEOUT)
    h.settle(page)
    expect(h.nav(page)).to_have_count(0)


def test_a_cookie_saved_before_logout_opens_nothing(trust_console, contexts) -> None:
    url = trust_console.url
    page = contexts()
    h.login(page, url, "admin")
    h.wait_for_login_cookie(page)
    saved = page.context.cookies()
    assert any(c["name"] == h.COOKIE for c in saved)
    # The saved cookie works before the logout (a new browser with it is logged in) ...
    before = contexts(saved)
    before.goto(url + "/audit_log")
    h.expect_page(before, "Audit log")
    h.logout(page)
    # ... and opens nothing after it, in a new browser as in the one still open.
    after = contexts(saved)
    after.goto(url + "/audit_log")
    expect_login_form(after)
    expect(h.main(after).locator("h1", has_text="Audit log")).to_have_count(0)
    before.reload()
    expect_login_form(before)


FORGED = [
    jwt.encode({"sid": "A" * 43, "exp": 4_000_000_000}, None, algorithm="none"),
    jwt.encode({"username": "admin", "exp_date": 4_000_000_000}, None, algorithm="none"),
    jwt.encode({"username": "admin", "exp_date": 4_000_000_000}, "guess", algorithm="HS256"),
    "not-a-jwt-at-all",
]


@pytest.mark.parametrize("token", FORGED, ids=["none-sid", "none-old-format", "bad-key",
                                               "garbage"])
def test_a_forged_cookie_is_logged_out_without_a_traceback(trust_console, contexts,
                                                          token: str) -> None:
    page = contexts([{"name": h.COOKIE, "value": token, "url": trust_console.url}])
    page.goto(trust_console.url + "/")
    expect_login_form(page)
    expect(page.get_by_text("Traceback")).to_have_count(0)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    log = trust_console.log_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
    # The console still works for that browser: the form logs in.
    h.quiet(page)
    h.fill_login(page, "viewer", h.PASSWORDS["viewer"])
    h.expect_page(page, "Overview")


def test_a_stolen_database_row_is_no_cookie(trust_console, contexts) -> None:
    """Someone who copied the database (and even the cookie key) while an admin is logged
    in: every value of the session's row, signed as a cookie, opens nothing."""
    url = trust_console.url
    admin = contexts()
    h.login(admin, url, "admin")
    h.wait_for_login_cookie(admin)
    key = (trust_console.data_dir / "cookie.key").read_text(encoding="utf-8").strip()
    with sqlite3.connect(trust_console.data_dir / "console.db") as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute(
            "SELECT * FROM console_sessions WHERE username = 'admin' AND ended_at IS NULL")]
    conn.close()
    assert rows
    real_sid = jwt.decode(next(c["value"] for c in admin.context.cookies()
                               if c["name"] == h.COOKIE), key, algorithms=["HS256"])["sid"]
    stolen = {str(v) for row in rows for v in row.values() if v is not None}
    assert real_sid not in stolen
    for value in sorted(v for v in stolen if 20 <= len(v) <= 64):
        token = jwt.encode({"sid": value, "exp": 4_000_000_000}, key, algorithm="HS256")
        page = contexts([{"name": h.COOKIE, "value": token, "url": url}])
        page.goto(url + "/audit_log")
        expect_login_form(page)
        expect(h.main(page).locator("h1", has_text="Audit log")).to_have_count(0)
    admin.reload()  # the real cookie still works
    h.expect_page(admin, "Overview")


def test_a_lock_survives_the_users_reload_until_an_admin_unlocks(trust_console,
                                                                 contexts) -> None:
    url = trust_console.url
    real = contexts()
    h.login(real, url, "finance")
    attacker = contexts()
    attacker.goto(url + "/")
    try:
        h.wrong_passwords_until_locked(attacker, "finance")
        # The real user reloads an open tab (a new browser session from the cookie).
        real.reload()
        h.expect_page(real, "Overview")
        expect(real.get_by_text("signed in as Demo finance")).to_be_visible()
        # The lock holds: the right password is refused.
        other = contexts()
        other.goto(url + "/")
        h.fill_login(other, "finance", h.PASSWORDS["finance"])
        expect(h.main(other).get_by_text("Too many failed attempts")).to_be_visible(
            timeout=h.TIMEOUT)
        expect(h.nav(other)).to_have_count(0)

        # An admin unlocks on My account.
        admin = contexts()
        h.login(admin, url, "admin")
        h.goto_page(admin, "My account")
        expect(h.main(admin).get_by_text("Locked logins")).to_be_visible()
        # A click while a run the browser asks for right after the page's first (a component
        # reporting in) is starting is lost when that run replaces the click's before it
        # reaches the button: click once the page is quiet, and wait for the click's run.
        h.quiet(admin)
        h.submit(admin, h.main(admin).get_by_role("button", name="Unlock", exact=True))
        expect(h.main(admin).get_by_text("No login is locked.")).to_be_visible(
            timeout=h.TIMEOUT)
        h.fill_login(other, "finance", h.PASSWORDS["finance"])
        h.expect_page(other, "Overview")
    finally:
        users_cli(trust_console, "unlock", "finance")


def test_totp_login(trust_console, contexts) -> None:
    url = trust_console.url
    out = users_cli(trust_console, "totp-enroll", "support")
    uri = next(line for line in out.splitlines() if line.startswith("otpauth://"))
    secret = pyotp.parse_uri(uri).secret
    try:
        page = contexts()
        page.goto(url + "/")
        h.fill_login(page, "support", h.PASSWORDS["support"])
        form = page.get_by_test_id("stForm").filter(has_text="Second factor")
        expect(form).to_be_visible(timeout=h.TIMEOUT)
        expect(h.nav(page)).to_have_count(0)
        box = form.get_by_label("Code from your authenticator app, or a recovery code")
        box.fill("000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
        form.get_by_role("button", name="Verify").click()
        expect(h.main(page).get_by_text("Wrong code")).to_be_visible(timeout=h.TIMEOUT)
        h.settle(page)
        if time.time() % 30 > 27:  # a code about to change: wait for the next one
            time.sleep(4)
        box.fill(pyotp.TOTP(secret).now())
        form.get_by_role("button", name="Verify").click()
        h.expect_page(page, "Overview")
        expect(page.get_by_text("signed in as Demo support")).to_be_visible()
        h.wait_for_login_cookie(page)
        page.reload()  # the cookie's session: no second code asked
        h.expect_page(page, "Overview")
    finally:
        users_cli(trust_console, "totp-remove", "support")
