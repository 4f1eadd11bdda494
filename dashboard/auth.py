"""Login, logout and the acting user, on streamlit-authenticator 0.4.2.

- `Authenticate` is built once per browser session and kept in `st.session_state`
  (building it on every rerun duplicates the cookie component's widget id).
- Its cookie re-login runs first (`login(location="unrendered")`). When nobody is logged in
  the entrypoint shows our own login form, which checks the password through the library's
  controller (same session keys, same cookie), so that we can limit failed attempts per
  username (process-wide, `runtime.throttle`) and audit each failure with the username tried.
- After a login the library keeps `authentication_status`, `username`, `name` and `roles` in
  `st.session_state`; `current_actor()` builds the `Actor` from them, re-reading the user's
  roles from the users file so that a `set-roles` or `remove` applies at the next rerun.
- `auth.login` is audited once per transition into a logged-in session (form or cookie),
  `auth.logout` when the button is pressed, `auth.login_failed` for each failure.

Tests log in through the real form (AppTest types into the text inputs and clicks the submit
button); nothing else is faked.
"""

from __future__ import annotations

import importlib
import logging
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import extra_streamlit_components as stx
import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.models import cookie_model as _cookie_model
from streamlit_authenticator.utilities import LoginError

from dashboard import actions
from dashboard.runtime import Runtime
from dashboard.users import MAX_PASSWORD_BYTES, credentials_dict
from services.operations import (
    Actor,
    OperationError,
    Permission,
    permissions_for,
)
from services.store.actions import AuditAction
from services.store.errors import StoreError

logger = logging.getLogger(__name__)

AUTHENTICATOR_KEY = "_console_authenticator"
AUDITED_LOGIN_KEY = "_console_login_audited"
LOGIN_FORM_KEY = "console_login"
USERNAME_KEY = "login_username"
PASSWORD_KEY = "login_password"
LOGOUT_KEY = "console_logout"
SET_COOKIE_KEY = "_console_set_cookie"
DELETE_COOKIE_KEY = "_console_delete_cookie"
LOGIN_MESSAGE_KEY = "_console_login_message"


PROJECT_ROOT = Path(__file__).resolve().parents[1]


class _CookieJar(dict):
    """The writer's record of what it set; deleting a cookie it never saw is not an error."""

    def __delitem__(self, key: Any) -> None:
        self.pop(key, None)


class CookieWriter(stx.CookieManager):
    """extra-streamlit-components' `CookieManager` without the `getAll` component that its
    constructor draws.

    streamlit-authenticator 0.4.2 reads its cookie on the server (`st.context.cookies`) and
    uses the manager only to set and delete it. The `getAll` component drawn when a session's
    `Authenticate` is built reported back about half a second after every page load and
    reran the page; a click in the navigation inside that window was lost, because that
    rerun still carried the page the browser had loaded (seen in CI as a refresh test that
    stayed on Overview). Setting and deleting go through the same component as before.
    """

    def __init__(self, key: str = "init") -> None:  # noqa: ARG002 (the library's signature)
        module = importlib.import_module(stx.CookieManager.__module__)
        self.cookie_manager = module._component_func
        self.cookies = _CookieJar()


# The library builds its manager as `stx.CookieManager()` in CookieModel.__init__; give that
# module a namespace whose CookieManager is the writer (requirements.txt pins the library).
assert hasattr(_cookie_model, "stx"), "streamlit-authenticator changed: see CookieWriter"
_cookie_model.stx = types.SimpleNamespace(CookieManager=CookieWriter)


@dataclass(frozen=True)
class PageSpec:
    """A page of the navigation, the permission a user needs to see it, and the audit action
    recorded (`denied`) when a user without it opens the page's address."""

    path: str  # relative to the project root
    title: str
    icon: str
    permission: Permission
    denied_action: AuditAction
    default: bool = False

    @property
    def url_path(self) -> str:
        """The page's address (Streamlit derives it from the file name)."""
        return Path(self.path).stem


PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/overview.py", "Overview", ":material/dashboard:", Permission.VIEW_GRANTS,
             AuditAction.GRANT_VIEW, default=True),
    PageSpec("pages/grants.py", "Grants", ":material/list:", Permission.VIEW_GRANTS,
             AuditAction.GRANT_VIEW),
    PageSpec("pages/grant_detail.py", "Grant detail", ":material/person_search:",
             Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW),
    PageSpec("pages/guest_limits.py", "Guest limits", ":material/tune:",
             Permission.MANAGE_LIMITS, AuditAction.TIER_APPLY),
    PageSpec("pages/audit_log.py", "Audit log", ":material/history:", Permission.READ_AUDIT,
             AuditAction.AUDIT_READ),
    PageSpec("pages/connect.py", "Connect a customer", ":material/link:",
             Permission.MANAGE_TOKENS, AuditAction.LINK_TOKEN_CREATE),
)

#: Title of a page registered only to refuse it (its address typed by a user without access).
REFUSED_TITLE = "Not available"

CURRENT_PAGE_KEY = "_console_current_page"
PREVIOUS_PAGE_KEY = "_console_previous_page"


def pages_for(roles: frozenset[str] | set[str] | tuple[str, ...]) -> list[PageSpec]:
    """The pages a user with these roles may see, in menu order."""
    allowed = permissions_for(roles)
    return [p for p in PAGES if p.permission in allowed]


def pages_refused(roles: frozenset[str] | set[str] | tuple[str, ...]) -> list[PageSpec]:
    """The pages a user with these roles may not use (registered hidden, to refuse them)."""
    allowed = permissions_for(roles)
    return [p for p in PAGES if p.permission not in allowed]


def refuse_page(runtime: Runtime, actor: Actor, spec: PageSpec) -> bool:
    """For a page's address opened by a user without its permission: let the operations
    refuse (one `denied` event for the page's action, target the page) and show the refusal
    alone. Returns False (nothing shown) when the operations in fact allow the actor."""
    refused = actions.refusal(runtime.ops, actor, spec.permission, spec.denied_action, "page",
                              spec.url_path)
    if refused is None:
        return False
    st.title(REFUSED_TITLE)
    st.error(refused.user_message, icon=":material/block:")
    st.caption("This page is not part of your role. Use the pages in the menu, or ask an "
               "administrator for the role you need.")
    return True


def note_page_run(url_path: str) -> None:
    """Called by the entrypoint before each page run: remembers the page of the previous run,
    so that a page can tell a first run after being opened from a rerun of itself."""
    st.session_state[PREVIOUS_PAGE_KEY] = st.session_state.get(CURRENT_PAGE_KEY)
    st.session_state[CURRENT_PAGE_KEY] = url_path


def page_opened_anew() -> bool:
    """True in the first run of a page after it was opened (from another page, the login, or
    a new browser session); False when the page reruns itself (a click, an input)."""
    return st.session_state.get(PREVIOUS_PAGE_KEY) != st.session_state.get(CURRENT_PAGE_KEY)


def get_authenticator(runtime: Runtime) -> stauth.Authenticate:
    """The session's `Authenticate`, built once (per session and runtime)."""
    held = st.session_state.get(AUTHENTICATOR_KEY)
    if held is not None and held[0] == id(runtime):
        return held[1]
    settings = runtime.settings
    assert settings is not None and runtime.cookie_key
    authenticator = stauth.Authenticate(
        credentials_dict(runtime.users()),
        cookie_name=settings.cookie_name,
        cookie_key=runtime.cookie_key,
        cookie_expiry_days=settings.cookie_expiry_days,
        auto_hash=False,
        login_sleep_time=0,
    )
    st.session_state[AUTHENTICATOR_KEY] = (id(runtime), authenticator)
    return authenticator


def _refresh_credentials(runtime: Runtime, authenticator: stauth.Authenticate) -> None:
    """Give the library the users file as it is now (users added or removed by the CLI)."""
    model = authenticator.authentication_controller.authentication_model
    model.credentials = credentials_dict(runtime.users())


def current_actor(runtime: Runtime | None = None) -> Actor | None:
    """The logged-in user as an `Actor`, or None. Roles come from the users file."""
    if not st.session_state.get("authentication_status"):
        return None
    username = st.session_state.get("username")
    if not username:
        return None
    if runtime is None:
        from dashboard.runtime import get_runtime

        runtime = get_runtime()
    user = runtime.users().get(str(username))
    if user is None:
        return None
    return Actor(username=user.username, display_name=user.name, roles=frozenset(user.roles))


def _audit(what: str, record: Callable[[], object]) -> None:
    """Record a login event; a login must not fail on the audit write."""
    try:
        record()
    except (OperationError, StoreError) as exc:
        logger.error("audit of %s failed: %s", what, exc.user_message)


def login_gate(runtime: Runtime) -> Actor | None:
    """Log the session in from its cookie or an earlier form login. Returns the actor, or
    None: then the entrypoint shows `login_page`.

    Every element of the cookie component (read on the session's first run, write after a
    login, delete after a logout) is drawn inside one container that comes first in every
    run, so the page below keeps its place whether or not the component is drawn in a run
    (otherwise the browser briefly shows the page twice while the next run replaces it).
    """
    with st.container(key="console_cookie_area"):
        return _login_gate(runtime)


def _login_gate(runtime: Runtime) -> Actor | None:
    authenticator = get_authenticator(runtime)
    _refresh_credentials(runtime, authenticator)
    try:
        authenticator.login(location="unrendered")
    except LoginError:
        # A valid cookie for a user who no longer exists.
        _end_login(authenticator)
    actor = current_actor(runtime)
    if actor is None and st.session_state.get("authentication_status"):
        # Logged in, but the user was removed from the users file since.
        _end_login(authenticator)
        st.session_state.pop(AUDITED_LOGIN_KEY, None)
    if actor is None:
        if st.session_state.pop(DELETE_COOKIE_KEY, False):
            # After a logout: drawn in this full run, not in the run that ended with
            # st.rerun() (a cookie component only acts once it reaches the browser).
            authenticator.cookie_controller.delete_cookie()
        return None
    if st.session_state.get(AUDITED_LOGIN_KEY) != actor.username:
        st.session_state[AUDITED_LOGIN_KEY] = actor.username
        runtime.throttle.success(actor.username)
        _audit("login", lambda: runtime.ops.auth.record_login(actor))
    if st.session_state.pop(SET_COOKIE_KEY, False):
        # After a form login, for the same reason as above.
        authenticator.cookie_controller.set_cookie()
    return actor


def _end_login(authenticator: stauth.Authenticate) -> None:
    """Log the session out and have its cookie deleted (in this run's cookie area)."""
    if st.session_state.get("authentication_status"):
        authenticator.authentication_controller.logout()
    st.session_state[DELETE_COOKIE_KEY] = True


def login_page() -> None:
    """The page shown to a session that is not logged in (the only page of its navigation,
    so that nothing of a previous user's menu stays in the sidebar after a logout)."""
    from dashboard.runtime import get_runtime

    runtime = get_runtime()
    _login_page(runtime, get_authenticator(runtime))


def attempt_login(runtime: Runtime, authenticator: stauth.Authenticate, username: str,
                  password: str) -> str | None:
    """Check a login; returns None on success, else the message to show (and audits it)."""
    username = username.strip().lower()
    if not username or not password:
        return "Enter a username and a password."
    wait = runtime.throttle.locked_for(username)
    if wait > 0:
        _audit("login failure", lambda: runtime.ops.auth.record_login_failed(username))
        minutes = max(1, round(wait / 60))
        return (f"Too many failed attempts for this username. Try again in about {minutes} "
                "minute(s), or ask an administrator.")
    ok = False
    if len(password.encode("utf-8")) <= MAX_PASSWORD_BYTES:
        ok = bool(authenticator.authentication_controller.login(username, password))
    if ok:
        runtime.throttle.success(username)
        st.session_state[SET_COOKIE_KEY] = True
        return None
    st.session_state["authentication_status"] = None
    left = runtime.throttle.failure(username)
    _audit("login failure", lambda: runtime.ops.auth.record_login_failed(username))
    if left == 0:
        return ("Wrong username or password. This username is now locked for "
                f"{runtime.throttle.window / 60:.0f} minutes.")
    return f"Wrong username or password ({left} attempt(s) left before a lock)."


def _login_page(runtime: Runtime, authenticator: stauth.Authenticate) -> None:
    st.title("Kryptos Connect console")

    def submit() -> None:
        # A callback, not `if submitted:` in the script: callbacks run before the script and
        # cannot be cut short by a rerun that arrives meanwhile (the cookie component reports
        # in once after a page load, and a quick submit would otherwise be lost).
        st.session_state[LOGIN_MESSAGE_KEY] = attempt_login(
            runtime, authenticator, st.session_state.get(USERNAME_KEY) or "",
            st.session_state.get(PASSWORD_KEY) or "",
        )
        st.session_state[PASSWORD_KEY] = ""

    with st.form(LOGIN_FORM_KEY, clear_on_submit=False):
        st.subheader("Log in")
        st.text_input("Username", key=USERNAME_KEY, autocomplete="username")
        st.text_input("Password", type="password", key=PASSWORD_KEY,
                      autocomplete="current-password")
        st.form_submit_button("Log in", type="primary", on_click=submit)
    message = st.session_state.pop(LOGIN_MESSAGE_KEY, None)
    if message:
        st.error(message)
    if runtime.is_sandbox and runtime.demo_users:
        st.info("Sandbox mode: a local Kryptos stand-in with demo data. Demo users:")
        st.table(
            [
                {"username": name, "password": password, "roles": ", ".join(roles)}
                for name, password, roles in runtime.demo_users
            ]
        )


def logout_button(runtime: Runtime, actor: Actor) -> None:
    """The sidebar's logout button: audit, clear the session's login and the cookie (in a
    callback, for the same reason as the login form's)."""
    st.sidebar.button("Log out", key=LOGOUT_KEY, icon=":material/logout:", on_click=logout,
                      args=(runtime, actor))


def logout(runtime: Runtime, actor: Actor) -> None:
    """End the session's login now; the cookie is deleted by the login page's run that
    follows (a cookie component drawn just before `st.rerun()` never reaches the browser).
    Until then the library's `logout` flag keeps the cookie from logging the session in."""
    _audit("logout", lambda: runtime.ops.auth.record_logout(actor))
    get_authenticator(runtime).authentication_controller.logout()
    st.session_state[DELETE_COOKIE_KEY] = True
    st.session_state.pop(SET_COOKIE_KEY, None)
    st.session_state.pop(AUDITED_LOGIN_KEY, None)
    st.session_state.pop(PASSWORD_KEY, None)
