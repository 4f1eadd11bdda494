"""A page's address opened while logged out: the login form under that address (not "Page
not found"), then, once logged in, that page with its query. The browser's side (where
"Page not found" is a dialog over the form and the address falls back to "/") is
tests/e2e/test_login.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.runtime import get_runtime
from tests.pages.conftest import DEMO_PASSWORDS, login, new_app, page_path


def _address(at: AppTest) -> str:
    """The address of the page the last run ran: what a browser's address bar keeps.

    AppTest asks for a page by its hash and, for a hash no page has, silently runs the
    default page (a browser asks by address and gets "Page not found" over the form, then
    "/"), and it asks for the same hash again on the next run; so the page a run really
    ran is read from AppTest's record of it (no public accessor)."""
    info = at._registered_pages.get(at._finished_page_script_hash, {})  # noqa: SLF001
    return str(info.get("url_pathname", ""))


def _opened_logged_out(page: str, **query: str) -> AppTest:
    """A new browser session whose first request is `page`'s address with `query`."""
    at = new_app()
    at.switch_page(page_path(page))  # before the first run: the page named by its address
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert _address(at) == Path(page).stem  # the login form, under the page's own address
    return at


def test_the_approvals_address_shows_the_login_then_approvals(
        console_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_APPROVALS", "on")
    assert get_runtime().ops.approvals.policy.enabled
    at = _opened_logged_out("pages/approvals.py", view="history")
    login(at, "admin", DEMO_PASSWORDS["admin"])
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Approvals"]
    assert _address(at) == "approvals"
    assert at.query_params["view"] == "history"


def test_a_grants_address_shows_the_login_then_that_grant(
        console_env: Path, sandbox: Any) -> None:
    grant = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"])
    at = _opened_logged_out("pages/grant_detail.py", grant=grant)
    login(at, "viewer", DEMO_PASSWORDS["viewer"])
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Grant detail"]
    assert _address(at) == "grant_detail"
    assert at.query_params["grant"] == grant
    assert f"`{grant}`" in [m.value for m in at.markdown]
