"""The login page with single sign-on configured (AppTest: Streamlit's `[auth]` secrets and
`st.user` are given to the run, as Streamlit fills them back from the provider). The whole
round trip through a provider is in tests/e2e/test_sso.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.runtime import Runtime, get_runtime
from tests.pages.conftest import _clear_caches, new_app
from tests.pages.helpers import shown

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
        "client_id": "console", "client_secret": "secret",
        "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}


@pytest.fixture
def sso_runtime(console_env: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("CONSOLE_SSO_ISSUER", "https://idp.example")
    monkeypatch.setenv("CONSOLE_SSO_CLIENT_ID", "console")
    monkeypatch.setenv("CONSOLE_SSO_CLIENT_SECRET", "secret")
    monkeypatch.setenv("CONSOLE_SSO_ROLE_MAP", "kryptos-finance=finance,kryptos-admins=admin")
    monkeypatch.setenv("CONSOLE_TOTP_REQUIRED_ROLES", "admin")
    monkeypatch.setenv("CONSOLE_PASSWORD_LOGIN", "off")
    _clear_caches()
    rt = get_runtime()
    assert rt.ok and rt.settings is not None and rt.settings.sso_enabled, rt.problems
    return rt


def app_with(identity: dict[str, Any] | None) -> AppTest:
    at = new_app()
    at.secrets["auth"] = AUTH
    at.user = ({"is_logged_in": True, "iss": "https://idp.example", "iat": int(time.time()),
                "nonce": "n", **identity} if identity else {"is_logged_in": False})
    return at


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.error, *at.info, *at.markdown, *at.subheader])


def test_password_login_off_shows_only_single_sign_on(sso_runtime) -> None:
    at = app_with(None).run()
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Sign in with SSO"]
    assert not at.text_input  # no username or password field
    assert at.session_state["authentication_status"] is None


def test_an_identity_from_the_provider_opens_a_console_session(
        sso_runtime, audit_events: Callable[..., list]) -> None:
    at = app_with({"sub": "u-1", "preferred_username": "fay", "name": "Fay Finance",
                   "groups": ["kryptos-finance"], "amr": ["pwd"]}).run()
    assert not at.exception, at.exception
    assert at.session_state["authentication_status"] is True
    assert at.session_state["username"] == "fay"
    assert sso_runtime.users()["fay"].sso
    [event] = audit_events(action="auth.sso_login")
    assert (event.actor_username, event.outcome) == ("fay", "succeeded")
    assert event.params["added"] is True and event.params["roles"] == ["finance"]
    # Signed in again (a new identity, issued after that session opened) with another
    # group: the users file follows, the audit says so.
    again = app_with({"sub": "u-1", "iat": int(time.time()) + 1, "preferred_username": "fay",
                      "groups": [
        "kryptos-finance", "kryptos-admins"], "amr": ["mfa"]}).run()
    assert again.session_state["authentication_status"] is True
    assert sso_runtime.users()["fay"].roles == ("finance", "admin")
    latest = audit_events(action="auth.sso_login")[-1]
    assert latest.params["roles_before"] == ["finance"]
    assert latest.params["roles"] == ["finance", "admin"]


def test_no_mapped_group_is_refused_on_the_page(sso_runtime,
                                                audit_events: Callable[..., list]) -> None:
    at = app_with({"sub": "u-2", "preferred_username": "cora",
                   "groups": ["contractors"]}).run()
    assert not at.exception, at.exception
    assert "Access refused" in texts(at)
    assert [b.label for b in at.button] == ["Sign out of single sign-on"]
    assert at.session_state["authentication_status"] is None
    # A rerun of the same browser session shows the answer without refusing again.
    at.run()
    assert "Access refused" in texts(at)
    assert [e.error_code for e in audit_events(action="auth.sso_login")] == ["NO_MAPPED_GROUP"]


def test_another_provider_account_with_the_same_name_is_refused(
        sso_runtime, audit_events: Callable[..., list]) -> None:
    first = app_with({"sub": "u-6", "preferred_username": "fay@corp.example",
                      "groups": ["kryptos-finance"], "amr": ["pwd"]}).run()
    assert first.session_state["authentication_status"] is True
    assert sso_runtime.users()["fay"].sso_subject == "https://idp.example u-6"
    # Another account of the same provider whose name also maps to `fay`, signed in after
    # that session opened.
    other = app_with({"sub": "u-7", "iat": int(time.time()) + 2,
                      "preferred_username": "fay@elsewhere.example",
                      "groups": ["kryptos-finance", "kryptos-admins"], "amr": ["mfa"]}).run()
    assert not other.exception, other.exception
    assert other.session_state["authentication_status"] is None
    assert "belongs to another single sign-on account" in texts(other)
    assert sso_runtime.users()["fay"].roles == ("finance",)
    assert [e.error_code for e in audit_events(action="auth.sso_login")
            if e.outcome == "denied"] == ["SUBJECT_MISMATCH"]


def test_a_role_that_needs_a_second_factor_asks_for_it_unless_the_provider_did(
        sso_runtime) -> None:
    without = app_with({"sub": "u-3", "preferred_username": "ada",
                        "groups": ["kryptos-admins"], "amr": ["pwd"]}).run()
    assert "Set up a second factor" in texts(without)
    assert without.session_state["authentication_status"] is None
    with_mfa = app_with({"sub": "u-3", "preferred_username": "ada",
                         "groups": ["kryptos-admins"], "amr": ["pwd", "mfa"]}).run()
    assert with_mfa.session_state["authentication_status"] is True


def test_no_password_opens_an_sso_account(sso_runtime) -> None:
    from dashboard.login import attempt_login
    from services.operations.login_policy import FailureFloor

    at = app_with({"sub": "u-4", "preferred_username": "fay", "groups": ["kryptos-finance"],
                   "amr": ["pwd"]}).run()
    assert at.session_state["authentication_status"] is True
    for password in ("", "anything-at-all", "$2b$12$"):
        message = attempt_login(sso_runtime, "fay", password or "x", floor=FailureFloor(0))
        assert message is not None and message.startswith("Wrong username or password")


def test_a_users_file_that_cannot_be_written_is_said_plainly(sso_runtime) -> None:
    assert sso_runtime.auth_file is not None
    # Its lock cannot be opened (a folder in its place: even root cannot open that).
    lock = sso_runtime.auth_file.with_name(sso_runtime.auth_file.name + ".lock")
    lock.unlink(missing_ok=True)
    lock.mkdir()
    at = app_with({"sub": "u-5", "preferred_username": "fay",
                   "groups": ["kryptos-finance"], "amr": ["pwd"]}).run()
    assert not at.exception, at.exception
    assert at.session_state["authentication_status"] is None
    assert "cannot record your sign-in" in texts(at)
    assert "fay" not in sso_runtime.users()


def test_without_streamlits_auth_table_the_page_says_how_to_start(sso_runtime) -> None:
    at = new_app()
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception, at.exception
    assert not at.button and not at.text_input
    assert "started without its [auth] secrets" in " ".join(w.value for w in at.warning)


@pytest.fixture
def sso_and_password_runtime(console_env: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """Single sign-on configured beside the password form (the default)."""
    monkeypatch.setenv("CONSOLE_SSO_ISSUER", "https://idp.example")
    monkeypatch.setenv("CONSOLE_SSO_CLIENT_ID", "console")
    monkeypatch.setenv("CONSOLE_SSO_CLIENT_SECRET", "secret")
    monkeypatch.setenv("CONSOLE_SSO_ROLE_MAP", "kryptos-finance=finance,kryptos-admins=admin")
    _clear_caches()
    rt = get_runtime()
    assert rt.ok and rt.settings is not None and rt.settings.sso_enabled, rt.problems
    return rt


def test_an_admin_moves_a_password_account_to_single_sign_on(
        sso_and_password_runtime, make_app, audit_events: Callable[..., list]) -> None:
    from tests.pages.conftest import DEMO_PASSWORDS, login, page_path

    rt = sso_and_password_runtime
    admin = make_app("admin")
    admin.switch_page(page_path("pages/users.py")).run()
    admin.selectbox(key="users_pick").select("finance").run()
    admin.button(key="users_to_sso").click().run()
    assert any("Move finance to single sign-on?" in shown(w.value) for w in admin.warning)
    assert not rt.users()["finance"].sso  # nothing changed before the yes
    admin.button(key="users_confirm").click().run()
    assert not admin.exception, admin.exception
    assert any("now signs in through single sign-on" in shown(s.value) for s in admin.success)
    moved = rt.users()["finance"]
    assert moved.sso and moved.password_hash == "" and moved.roles == ("finance",)
    # The old password no longer opens the account.
    refused = login(new_app().run(), "finance", DEMO_PASSWORDS["finance"])
    assert refused.session_state["authentication_status"] is not True
    # Single sign-on does, and binds the entry to that provider account.
    at = app_with({"sub": "f-1", "preferred_username": "finance",
                   "groups": ["kryptos-finance"], "amr": ["pwd"]}).run()
    assert at.session_state["authentication_status"] is True
    assert rt.users()["finance"].sso_subject == "https://idp.example f-1"
    assert [(e.actor_username, e.outcome, e.target_id) for e in
            audit_events(action="user.to_sso")] == [("admin", "requested", "finance"),
                                                      ("admin", "succeeded", "finance")]
    # Moving it again is refused with the reason.
    admin.button(key="users_to_sso").click().run()
    assert any("already signs in through single sign-on" in shown(e.value) for e in admin.error)
