"""Single sign-on in the browser: "Sign in with SSO" goes through Streamlit's `st.login` to the
local OpenID Connect provider (sandbox/idp.py) and back, as a person would. A mapped person
lands on their role's pages; an unmapped one is refused on the page and in the audit log; a
console logout (also ended elsewhere) needs a new sign-in at the provider; the provider's
`amr` decides whether the console asks for its own second factor."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect

from sandbox import SandboxHandle
from sandbox.idp import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_ROLE_MAP,
    Client,
    IdpServer,
)
from services.store.audit import AuditLog
from services.store.db import open_database
from tests.e2e import helpers as h
from tests.e2e.console_process import ConsoleProcess, free_port

REDIRECT = "http://127.0.0.1:{port}/oauth2callback"


@pytest.fixture(scope="module")
def idp() -> Iterator[IdpServer]:
    server = IdpServer(free_port(), [Client(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET,
                                            (REDIRECT,))])
    with server:
        yield server


@pytest.fixture(scope="module")
def sso_console(e2e_sandbox: SandboxHandle, idp: IdpServer,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    root = tmp_path_factory.mktemp("sso-console")
    proc = ConsoleProcess(e2e_sandbox.base_url, root / "data", log_path=root / "console.log",
                          extra_env={
                              "CONSOLE_SSO_ISSUER": idp.url,
                              "CONSOLE_SSO_CLIENT_ID": SANDBOX_CLIENT_ID,
                              "CONSOLE_SSO_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
                              "CONSOLE_SSO_REDIRECT_URI": REDIRECT,
                              "CONSOLE_SSO_ROLE_MAP": SANDBOX_ROLE_MAP,
                              "CONSOLE_TOTP_REQUIRED_ROLES": "admin",
                          }, fast_logins=True)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def contexts(browser: Browser) -> Iterator:
    """Fresh browser contexts (no cookies), closed at the end."""
    made = []

    def make() -> Page:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.add_init_script(h.RUN_COUNTER_JS)
        made.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in made:
        ctx.close()


def sso_events(console: ConsoleProcess) -> list:
    log = AuditLog(open_database(f"sqlite:///{console.data_dir / 'console.db'}"))
    return [e for e in log.iter_events() if e.action == "auth.sso_login"]


def users_file(console: ConsoleProcess) -> dict:
    data = yaml.safe_load(Path(console.data_dir / "sandbox-users.yaml").read_text(encoding="utf-8"))
    return data["credentials"]["usernames"]


def open_provider(page: Page, console: ConsoleProcess, idp: IdpServer) -> None:
    """From the console's sign-in page to the provider's page (a new sign-in there)."""
    button = page.get_by_role("button", name="Sign in with SSO")
    expect(button).to_be_visible(timeout=h.TIMEOUT)
    h.settle(page)
    button.click()
    page.wait_for_url(re.compile(re.escape(idp.url) + "/authorize"), timeout=h.TIMEOUT)
    expect(page.get_by_role("heading", name="Sandbox identity provider")).to_be_visible()


def sso_sign_in(page: Page, console: ConsoleProcess, idp: IdpServer, person: str, *,
                mfa: bool = False) -> None:
    page.goto(console.url + "/")
    open_provider(page, console, idp)
    if mfa:
        page.get_by_label("I also used a second factor").check()
    page.get_by_role("button", name=re.compile("^" + re.escape(person))).click()
    page.wait_for_url(re.compile(re.escape(console.url)), timeout=h.TIMEOUT)


def landed(page: Page, title: str = "Overview") -> None:
    """Signed in: the page shows, and the console's own cookie is written (as `h.login`
    waits for it) before the next click."""
    h.expect_page(page, title)
    h.wait_for_login_cookie(page)
    h.quiet(page)


def test_a_mapped_person_lands_on_their_pages(contexts, sso_console, idp) -> None:
    page = contexts()
    sso_sign_in(page, sso_console, idp, "Sam Support")
    landed(page)
    expect(page.get_by_text("signed in as Sam Support")).to_be_visible()
    assert h.nav_titles(page) == h.NAV["support"]
    h.goto_page(page, "Grants")
    # First sign-in: a users-file entry marked SSO, with the mapped roles and no password.
    entry = users_file(sso_console)["sam.support"]
    assert entry["sso"] is True and entry["roles"] == ["support"]
    assert "password" not in entry
    accepted = [e for e in sso_events(sso_console) if e.actor_username == "sam.support"]
    assert [e.outcome for e in accepted] == ["succeeded"]
    assert accepted[0].params["groups"] == ["kryptos-support", "staff"]
    assert accepted[0].params["mfa"] is False
    # A refresh keeps the console session (its own cookie), on the same page.
    page.reload()
    h.expect_page(page, "Grants")
    assert h.nav_titles(page) == h.NAV["support"]


def test_a_person_in_no_mapped_group_is_refused_and_audited(contexts, sso_console,
                                                             idp) -> None:
    page = contexts()
    sso_sign_in(page, sso_console, idp, "Cora Contractor")
    expect(h.main(page).get_by_text("Access refused")).to_be_visible(timeout=h.TIMEOUT)
    expect(h.main(page).get_by_text("none of your groups gives access")).to_be_visible()
    expect(h.nav(page)).to_have_count(0)
    assert not h.has_login_cookie(page)
    refused = [e for e in sso_events(sso_console)
               if (e.params or {}).get("sso_username") == "cora.contractor"]
    assert refused and all(e.outcome == "denied" for e in refused)
    assert refused[0].error_code == "NO_MAPPED_GROUP"
    assert refused[0].actor_username == "anonymous"
    assert refused[0].params["groups"] == ["contractors"]
    assert "cora.contractor" not in users_file(sso_console)
    # "Sign out of single sign-on" ends Streamlit's identity: the sign-in button is back.
    page.get_by_role("button", name="Sign out of single sign-on").click()
    expect(page.get_by_role("button", name="Sign in with SSO")).to_be_visible(
        timeout=h.TIMEOUT)


def test_a_console_logout_needs_a_new_sso_sign_in(contexts, sso_console, idp) -> None:
    page = contexts()
    sso_sign_in(page, sso_console, idp, "Fay Finance")
    landed(page)
    assert h.nav_titles(page) == h.NAV["finance"]
    assert any(c["name"] == "_streamlit_user" for c in page.context.cookies())
    page.get_by_test_id("stSidebar").get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Sign in with SSO")).to_be_visible(
        timeout=h.TIMEOUT)
    # Streamlit's 30-day identity cookie is gone, and a reload does not sign in again.
    assert not any(c["name"] == "_streamlit_user" for c in page.context.cookies())
    page.reload()
    expect(page.get_by_role("button", name="Sign in with SSO")).to_be_visible(
        timeout=h.TIMEOUT)
    h.settle(page)
    expect(h.nav(page)).to_have_count(0)
    # Signing in again goes through the provider's page.
    open_provider(page, sso_console, idp)


def test_logout_elsewhere_is_not_undone_by_the_identity_cookie(contexts, sso_console,
                                                               idp) -> None:
    first, second = contexts(), contexts()
    sso_sign_in(first, sso_console, idp, "Otto Ops")
    landed(first)
    sso_sign_in(second, sso_console, idp, "Otto Ops")
    landed(second)
    second.get_by_test_id("stSidebar").get_by_role("button", name="Log out").click()
    expect(second.get_by_role("button", name="Sign in with SSO")).to_be_visible(
        timeout=h.TIMEOUT)
    # The first browser still holds Streamlit's identity cookie; its console session ended
    # with the logout (every session of the user), and the identity does not open another.
    assert any(c["name"] == "_streamlit_user" for c in first.context.cookies())
    first.reload()
    expect(first.get_by_role("button", name="Sign in with SSO")).to_be_visible(
        timeout=h.TIMEOUT)
    expect(first.get_by_text("Sign in with SSO again")).to_be_visible()
    expect(h.nav(first)).to_have_count(0)


def test_the_providers_second_factor_replaces_the_consoles(contexts, sso_console,
                                                            idp) -> None:
    without = contexts()
    sso_sign_in(without, sso_console, idp, "Ada Admin")
    expect(without.get_by_text("Set up a second factor")).to_be_visible(timeout=h.TIMEOUT)
    expect(h.nav(without)).to_have_count(0)
    with_mfa = contexts()
    sso_sign_in(with_mfa, sso_console, idp, "Ada Admin", mfa=True)
    landed(with_mfa)
    assert h.nav_titles(with_mfa) == h.NAV["admin"]
    accepted = [e for e in sso_events(sso_console)
                if e.actor_username == "ada.admin" and e.outcome == "succeeded"]
    assert [e.params["mfa"] for e in accepted] == [True]
