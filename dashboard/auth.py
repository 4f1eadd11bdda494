"""Login, logout, server-side sessions and the acting user.

Design (policy in docs/architecture.md, "Console logins"):

- A login creates a record in `console_sessions` (services/store/sessions.py): a random
  32-byte id, the username, the roles and a stamp of the password hash at login, times,
  the client's address. The browser gets a cookie (`settings.cookie_name`) holding a JWT
  signed with the cookie key (HS256 only): `{"sid": <session id>, "exp": <end of the
  session's lifetime>}`. The cookie names the session; the record decides.
- Every script run checks the record (one primary-key read): it must exist and not be
  ended, not be idle for more than `idle_timeout` nor older than `session_lifetime`, and
  its user must still exist with the same roles and password. Anything else logs the
  browser out (and ends the record, audited `auth.session_ended`). `last_seen_at` is
  written at most every `TOUCH_SECONDS`.
- Logout, a password change, a role change and removing a user end every session of the
  user in the database (so on every replica); the CLI does it too (dashboard/users.py).
- A cookie that cannot be read (garbage, bad signature, `alg: none`, expired, missing
  fields) means "logged out": no traceback.
- `auth.login` is audited once, when the password (and code) is accepted; a new browser
  session opened from a cookie is not a login.
- Failed logins are counted in the database (LoginFailures): per username and address,
  per username, per address. A lock lasts its time; only an admin lifts it earlier.
- An unknown username is checked against a dummy bcrypt hash of the same cost.
- TOTP (services/store/totp.py): a user enrolled is asked for a code (or a one-time
  recovery code) after the password; a user of a role in `settings.totp_roles` who is not
  enrolled must enrol before reaching any page.

The cookie is written and deleted by extra-streamlit-components' cookie component
(`CookieWriter`): it runs in the browser, so the cookie cannot be HttpOnly; what a stolen
cookie gives is bounded by the session record (idle, lifetime, logout).

Tests log in through the real form (AppTest types into the text inputs and clicks the submit
button); nothing else is faked.
"""

from __future__ import annotations

import functools
import importlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import extra_streamlit_components as stx
import jwt
import streamlit as st

from dashboard import actions, reads
from dashboard.runtime import Runtime
from dashboard.users import User, check_password
from services.operations import (
    Actor,
    OperationError,
    Permission,
    can,
    permissions_for,
)
from services.store.actions import AuditAction
from services.store.errors import StoreError
from services.store.sessions import (
    END_IDLE,
    END_LIFETIME,
    END_LOGOUT,
    END_PASSWORD_CHANGED,
    END_ROLES_CHANGED,
    END_USER_REMOVED,
    SCOPE_ADDRESS,
    UNKNOWN_ADDRESS,
    ConsoleSession,
    credential_stamp,
    roles_text,
)

logger = logging.getLogger(__name__)

LOGIN_FORM_KEY = "console_login"
USERNAME_KEY = "login_username"
PASSWORD_KEY = "login_password"
CODE_FORM_KEY = "console_code"
CODE_KEY = "login_code"
LOGOUT_KEY = "console_logout"
SID_KEY = "_console_sid"
SET_COOKIE_KEY = "_console_set_cookie"  # a token to write in this run's cookie area
DELETE_COOKIE_KEY = "_console_delete_cookie"
DEAD_COOKIE_KEY = "_console_dead_cookie"  # a cookie value known to name no live session
LOGIN_MESSAGE_KEY = "_console_login_message"
ENDED_MESSAGE_KEY = "_console_session_ended"
PENDING_KEY = "_console_pending"  # password accepted, second factor to come

#: `last_seen_at` is written at most this often (seconds), not on every run.
TOUCH_SECONDS = 30.0
#: Time to type the code after the password (seconds).
PENDING_SECONDS = 300.0
ALGORITHM = "HS256"

PROJECT_ROOT = Path(__file__).resolve().parents[1]

END_MESSAGES = {
    END_IDLE: "Your session ended after a time without activity. Log in again.",
    END_LIFETIME: "Your session reached its maximum length. Log in again.",
    END_ROLES_CHANGED: "Your roles were changed. Log in again.",
    END_PASSWORD_CHANGED: "Your password was changed. Log in again.",
    END_USER_REMOVED: "Your session ended.",
    END_LOGOUT: "Your session ended (logged out). Log in again.",
}


class _CookieJar(dict):
    """The writer's record of what it set; deleting a cookie it never saw is not an error."""

    def __delitem__(self, key: Any) -> None:
        self.pop(key, None)


class CookieWriter(stx.CookieManager):
    """extra-streamlit-components' `CookieManager` without the `getAll` component that its
    constructor draws: the cookie is read on the server (`st.context.cookies`), and the
    `getAll` report reran every page about half a second after it loaded (a click in that
    window was lost). Setting and deleting go through the same component as before."""

    def __init__(self, key: str = "init") -> None:  # noqa: ARG002 (the library's signature)
        module = importlib.import_module(stx.CookieManager.__module__)
        self.cookie_manager = module._component_func
        self.cookies = _CookieJar()


@dataclass(frozen=True)
class PageSpec:
    """A page of the navigation and the permission a user needs to see it. A user without
    it who opens the page's address gets a refusal, audited `page.view` `denied` with the
    page's address as target."""

    path: str  # relative to the project root
    title: str
    icon: str
    permission: Permission
    default: bool = False

    @property
    def url_path(self) -> str:
        """The page's address (Streamlit derives it from the file name)."""
        return Path(self.path).stem


PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/overview.py", "Overview", ":material/dashboard:", Permission.VIEW_GRANTS,
             default=True),
    PageSpec("pages/grants.py", "Grants", ":material/list:", Permission.VIEW_GRANTS),
    PageSpec("pages/grant_detail.py", "Grant detail", ":material/person_search:",
             Permission.VIEW_GRANTS),
    PageSpec("pages/guest_limits.py", "Guest limits", ":material/tune:",
             Permission.MANAGE_LIMITS),
    PageSpec("pages/audit_log.py", "Audit log", ":material/history:", Permission.READ_AUDIT),
    PageSpec("pages/connect.py", "Connect a customer", ":material/link:",
             Permission.MANAGE_TOKENS),
    PageSpec("pages/my_account.py", "My account", ":material/account_circle:",
             Permission.VIEW_GRANTS),
    PageSpec("pages/outcomes.py", "Outcomes", ":material/rule:",
             Permission.SETTLE_OUTCOMES),
)

#: The Approvals page: in the navigation only when approvals are on (see `pages_for`); for
#: support, finance and admin (the roles that decide changes and read grants' history).
APPROVALS_PAGE = PageSpec("pages/approvals.py", "Approvals", ":material/approval_delegation:",
                          Permission.VIEW_GRANT_HISTORY)


def _table(approvals: bool) -> tuple[PageSpec, ...]:
    """PAGES, with the Approvals page before My account when approvals are on."""
    if not approvals:
        return PAGES
    last = tuple(p for p in PAGES if p.url_path == "my_account")
    return tuple(p for p in PAGES if p not in last) + (APPROVALS_PAGE,) + last


def nav_title(runtime: Runtime, actor: Actor, spec: PageSpec) -> str:
    """A page's title in the navigation: "Approvals (2)" when two requests wait for the
    actor."""
    if spec is not APPROVALS_PAGE:
        return spec.title
    try:
        n = reads.approvals_waiting_count(runtime.ops, actor)
    except (OperationError, StoreError) as exc:
        logger.warning("approvals count unavailable: %s", exc.user_message)
        return spec.title
    return f"{spec.title} ({n})" if n else spec.title


#: Title of a page registered only to refuse it (its address typed by a user without access).
REFUSED_TITLE = "Not available"

CURRENT_PAGE_KEY = "_console_current_page"
PREVIOUS_PAGE_KEY = "_console_previous_page"


def pages_for(roles: frozenset[str] | set[str] | tuple[str, ...], *,
              approvals: bool = False) -> list[PageSpec]:
    """The pages a user with these roles may see, in menu order (`approvals`: with the
    Approvals page)."""
    allowed = permissions_for(roles)
    return [p for p in _table(approvals) if p.permission in allowed]


def pages_refused(roles: frozenset[str] | set[str] | tuple[str, ...], *,
                  approvals: bool = False) -> list[PageSpec]:
    """The pages a user with these roles may not use (registered hidden, to refuse them)."""
    allowed = permissions_for(roles)
    return [p for p in _table(approvals) if p.permission not in allowed]


def refuse_page(runtime: Runtime, actor: Actor, spec: PageSpec) -> bool:
    """For a page's address opened by a user without its permission: one `page.view`
    `denied` event naming the page (not the page's actions: none was attempted), and the
    refusal alone. Returns False (nothing shown) when the operations in fact allow it."""
    refused = actions.refusal(runtime.ops, actor, spec.permission, AuditAction.PAGE_VIEW, "page",
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


# --- the acting user ------------------------------------------------------------------------


def current_actor(runtime: Runtime | None = None) -> Actor | None:
    """The logged-in user as an `Actor`, or None. Roles come from the users file (the
    entrypoint's `login_gate` has checked the session record in this run)."""
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
    return _actor(user)


def _actor(user: User) -> Actor:
    return Actor(username=user.username, display_name=user.name, roles=frozenset(user.roles))


def current_session_id() -> str | None:
    """The id of this browser session's console session (for the My account page)."""
    sid = st.session_state.get(SID_KEY)
    return sid if isinstance(sid, str) else None


# --- audit ----------------------------------------------------------------------------------


def _audit(what: str, record: Callable[[], object]) -> None:
    """Record a login event; a login must not fail on the audit write."""
    try:
        record()
    except (OperationError, StoreError) as exc:
        logger.error("audit of %s failed: %s", what, exc.user_message)


def record(runtime: Runtime, username: str, roles: Any, action: str, outcome: str,
           **fields: Any) -> None:
    """Write one login-related audit event (actions in services/store/sessions.py)."""
    try:
        runtime.ops.ctx.event(username, roles, action, outcome, **fields)
    except StoreError as exc:
        logger.error("audit of %s failed: %s", action, exc.user_message)


# --- the cookie -----------------------------------------------------------------------------


def encode_cookie(key: str, session: ConsoleSession, lifetime: float) -> str:
    exp = session.created_at + timedelta(seconds=lifetime)
    return jwt.encode({"sid": session.id, "exp": int(exp.timestamp())}, key,
                      algorithm=ALGORITHM)


def decode_cookie(key: str, token: object) -> str | None:
    """The session id named by a cookie, or None for anything unreadable, forged (another
    algorithm, `none`, a bad signature), expired or malformed."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        return None
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM],
                            options={"require": ["sid", "exp"]})
    except jwt.PyJWTError:
        return None
    sid = claims.get("sid")
    return sid if isinstance(sid, str) and 20 <= len(sid) <= 64 else None


def _cookie_token(runtime: Runtime) -> str | None:
    """The login cookie's value as the browser sent it (None when there is none)."""
    try:
        token = st.context.cookies.get(runtime.settings.cookie_name)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - no request context (a bare script run): no cookie
        return None
    return token if isinstance(token, str) and token else None


def _read_cookie(runtime: Runtime) -> str | None:
    """The session id of the browser's cookie; a cookie that names none (unreadable,
    forged, or found dead before) is deleted and then ignored."""
    assert runtime.cookie_key
    token = _cookie_token(runtime)
    if token is None or token == st.session_state.get(DEAD_COOKIE_KEY):
        return None
    sid = decode_cookie(runtime.cookie_key, token)
    if sid is None:
        _mark_cookie_dead(token)
    return sid


def _mark_cookie_dead(token: str | None) -> None:
    if token:
        st.session_state[DEAD_COOKIE_KEY] = token
    st.session_state[DELETE_COOKIE_KEY] = True


def client_address(runtime: Runtime) -> str:
    """The client's address: the trusted proxy header's first address when configured,
    else the connection's; `unknown` when there is none (AppTest, localhost)."""
    header = runtime.settings.client_address_header if runtime.settings else None
    try:
        value = st.context.headers.get(header) if header else st.context.ip_address
    except Exception:  # noqa: BLE001 - no request context: not known
        return UNKNOWN_ADDRESS
    if not isinstance(value, str):  # None (localhost), or AppTest's stand-in
        return UNKNOWN_ADDRESS
    return value.split(",")[0].strip()[:64] or UNKNOWN_ADDRESS


# --- the gate, run first in every script run ------------------------------------------------


def login_gate(runtime: Runtime) -> Actor | None:
    """Check this browser's session (every run). Returns the actor, or None: then the
    entrypoint shows `login_page`.

    The cookie component (write after a login, delete after a logout) is drawn inside one
    container that comes first in every run, so the page below keeps its place whether or
    not the component is drawn in a run."""
    with st.container(key="console_cookie_area"):
        actor = _login_gate(runtime)
        _cookie_ops(runtime)
    return actor


def _cookie_ops(runtime: Runtime) -> None:
    token = st.session_state.pop(SET_COOKIE_KEY, None)
    delete = st.session_state.pop(DELETE_COOKIE_KEY, False)
    if not (token or delete):
        return
    settings = runtime.settings
    assert settings is not None
    writer = CookieWriter()
    if token:
        writer.set(settings.cookie_name, token, key="console_cookie_set",
                   expires_at=datetime.now() + timedelta(seconds=settings.session_lifetime))
    elif delete:
        writer.delete(settings.cookie_name, key="console_cookie_delete")


def _login_gate(runtime: Runtime) -> Actor | None:
    sid = current_session_id()
    if sid is None:
        sid = _read_cookie(runtime)
    if sid is None:
        _clear_login()
        return None
    try:
        actor = _check_session(runtime, sid)
    except StoreError as exc:
        logger.error("session check failed: %s", exc.user_message)
        st.session_state[LOGIN_MESSAGE_KEY] = ("The console cannot check your session now "
                                               "(its database is unavailable). Try again.")
        _clear_login(keep_sid=True)
        return None
    if actor is None:
        _clear_login()
        _mark_cookie_dead(_cookie_token(runtime))
        return None
    st.session_state[SID_KEY] = sid
    st.session_state["authentication_status"] = True
    st.session_state["username"] = actor.username
    st.session_state["name"] = actor.display_name
    st.session_state["roles"] = sorted(actor.roles)
    return actor


def _clear_login(keep_sid: bool = False) -> None:
    if not keep_sid:
        st.session_state.pop(SID_KEY, None)
    st.session_state["authentication_status"] = None
    for key in ("username", "name", "roles"):
        st.session_state.pop(key, None)


def _end_reason(runtime: Runtime, session: ConsoleSession, user: User | None,
                now: datetime) -> str | None:
    settings = runtime.settings
    assert settings is not None
    if user is None:
        return END_USER_REMOVED
    if roles_text(user.roles) != roles_text(session.roles):
        return END_ROLES_CHANGED
    if credential_stamp(user.password_hash) != session.credential_stamp:
        return END_PASSWORD_CHANGED
    if (now - session.created_at).total_seconds() > settings.session_lifetime:
        return END_LIFETIME
    if (now - session.last_seen_at).total_seconds() > settings.idle_timeout:
        return END_IDLE
    return None


def _check_session(runtime: Runtime, sid: str) -> Actor | None:
    """The actor of a live session, or None (the session is ended here when it should)."""
    store = runtime.auth.sessions
    session = store.get(sid)
    if session is None:
        return None
    if session.ended_at is not None:
        if st.session_state.get(SID_KEY) == sid:  # ended elsewhere while this tab was open
            st.session_state[ENDED_MESSAGE_KEY] = END_MESSAGES.get(
                session.end_reason or "", END_MESSAGES[END_USER_REMOVED])
        return None
    now = datetime.now(UTC)
    user = runtime.users().get(session.username)
    reason = _end_reason(runtime, session, user, now)
    if reason is not None:
        if reason in (END_USER_REMOVED, END_ROLES_CHANGED, END_PASSWORD_CHANGED):
            store.end_user(session.username, reason)
        else:
            store.end(sid, reason)
        record(runtime, session.username, session.roles, AuditAction.SESSION_ENDED, "succeeded",
               target_type="user", target_id=session.username, params={"reason": reason})
        st.session_state[ENDED_MESSAGE_KEY] = END_MESSAGES[reason]
        return None
    assert user is not None
    if (now - session.last_seen_at).total_seconds() >= TOUCH_SECONDS:
        store.touch(sid)
    return _actor(user)


# --- logging in -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _dummy_hash(cost: int) -> bytes:
    return bcrypt.hashpw(b"no user has this password", bcrypt.gensalt(rounds=cost))


def _dummy_check(runtime: Runtime, password: str) -> None:
    """Spend the time a wrong password takes, for a username that does not exist (at the
    highest cost of the file's hashes, so it is never quicker than a real user's check)."""
    costs = [int(u.password_hash[4:6]) for u in runtime.users().values()
             if u.password_hash[4:6].isdigit()]
    check_password(password, _dummy_hash(max(costs, default=12)).decode("ascii"))


def _locked_message(wait: float) -> str:
    minutes = max(1, round(wait / 60))
    return (f"Too many failed attempts. Try again in about {minutes} minute(s), or ask an "
            "administrator to unlock your account.")


def attempt_login(runtime: Runtime, username: str, password: str,
                  address: str = UNKNOWN_ADDRESS) -> str | None:
    """Check a username and password; returns None when accepted (logged in, or a second
    factor to come: `PENDING_KEY`), else the message to show (and audits the failure)."""
    typed = username
    username = username.strip().lower()[:64]  # longer names do not exist (USERNAME_RE)
    if not username or not password:
        return "Enter a username and a password."
    throttle = runtime.throttle
    wait = throttle.locked_for(username, address)
    if wait > 0:
        _audit("login failure",
               lambda: runtime.ops.auth.record_login_failed(typed, error_code="LOCKED"))
        return _locked_message(wait)
    user = runtime.users().get(username)
    if user is None:
        _dummy_check(runtime, password)
        ok = False
    else:
        ok = check_password(password, user.password_hash)
    if not ok:
        left = throttle.failure(username, address)
        _audit("login failure", lambda: runtime.ops.auth.record_login_failed(typed))
        if left == 0:
            return ("Wrong username or password. Too many failed attempts: locked for "
                    f"{throttle.lock_seconds / 60:.0f} minutes.")
        return f"Wrong username or password ({left} attempt(s) left before a lock)."
    assert user is not None
    if runtime.auth.totp.is_enrolled(user.username):
        _set_pending(user.username, "code")
        return None
    if set(user.roles) & runtime.settings.totp_roles:  # type: ignore[union-attr]
        from services.store.totp import new_secret

        _set_pending(user.username, "enrol", secret=new_secret())
        return None
    complete_login(runtime, user, address)
    return None


def _set_pending(username: str, stage: str, **extra: Any) -> None:
    st.session_state[PENDING_KEY] = {"username": username, "stage": stage,
                                     "at": time.monotonic(), **extra}


def _pending() -> dict | None:
    pending = st.session_state.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    if time.monotonic() - pending["at"] > PENDING_SECONDS:
        st.session_state.pop(PENDING_KEY, None)
        st.session_state[LOGIN_MESSAGE_KEY] = "The code was not entered in time. Log in again."
        return None
    return pending


def complete_login(runtime: Runtime, user: User, address: str) -> None:
    """Open a session for a user whose credentials were accepted: the record, the cookie
    (written by the next run's cookie area), the audit event (the one `auth.login`)."""
    settings = runtime.settings
    assert settings is not None and runtime.cookie_key
    runtime.throttle.success(user.username)
    session = runtime.auth.sessions.create(user.username, user.roles, user.password_hash,
                                           address)
    st.session_state.pop(PENDING_KEY, None)
    st.session_state[SID_KEY] = session.id
    st.session_state[SET_COOKIE_KEY] = encode_cookie(runtime.cookie_key, session,
                                                     settings.session_lifetime)
    st.session_state.pop(DEAD_COOKIE_KEY, None)
    st.session_state.pop(ENDED_MESSAGE_KEY, None)
    st.session_state["authentication_status"] = True
    st.session_state["username"] = user.username
    actor = _actor(user)
    _audit("login", lambda: runtime.ops.auth.record_login(actor))


def check_code(runtime: Runtime, code: str, address: str) -> str | None:
    """The second step: a TOTP code or a recovery code for the pending user. None when
    accepted (logged in), else the message."""
    pending = _pending()
    if pending is None:
        return st.session_state.pop(LOGIN_MESSAGE_KEY, None) or "Log in again."
    username = pending["username"]
    user = runtime.users().get(username)
    if user is None:
        st.session_state.pop(PENDING_KEY, None)
        return "Log in again."
    wait = runtime.throttle.locked_for(username, address)
    if wait > 0:
        st.session_state.pop(PENDING_KEY, None)
        return _locked_message(wait)
    code = (code or "").strip()
    totp = runtime.auth.totp
    if code and totp.verify(username, code):
        complete_login(runtime, user, address)
        return None
    if code and not code.isdigit() and totp.use_recovery_code(username, code):
        left = totp.recovery_codes_left(username)
        record(runtime, username, user.roles, AuditAction.RECOVERY_CODE_USED, "succeeded",
               target_type="user", target_id=username, params={"codes_left": left})
        complete_login(runtime, user, address)
        return None
    left = runtime.throttle.failure(username, address)
    record(runtime, username, user.roles, AuditAction.TOTP_FAILED, "failed", target_type="user",
           target_id=username, error_code="BAD_CODE")
    if left == 0:
        st.session_state.pop(PENDING_KEY, None)
        return _locked_message(runtime.throttle.lock_seconds)
    return f"Wrong code ({left} attempt(s) left before a lock)."


def confirm_enrolment(runtime: Runtime, code: str, address: str) -> str | None:
    """At login, for a user who must use a second factor: the first code from the app
    confirms the new secret. None when enrolled (recovery codes to show), else the message."""
    from services.store.totp import code_matches

    pending = _pending()
    if pending is None or pending.get("stage") != "enrol":
        return "Log in again."
    username = pending["username"]
    user = runtime.users().get(username)
    if user is None:
        return "Log in again."
    if code_matches(pending["secret"], code or "") is None:
        left = runtime.throttle.failure(username, address)
        record(runtime, username, user.roles, AuditAction.TOTP_FAILED, "failed", target_type="user",
               target_id=username, error_code="BAD_CODE", params={"stage": "enrolment"})
        if left == 0:
            st.session_state.pop(PENDING_KEY, None)
            return _locked_message(runtime.throttle.lock_seconds)
        return "That code does not match. Check the app and the device's clock, and try again."
    codes = enrol(runtime, user, pending["secret"], by=user.username)
    _set_pending(username, "codes", codes=codes)
    return None


def enrol(runtime: Runtime, user: User, secret: str, by: str) -> list[str]:
    """Store a confirmed secret; returns the new recovery codes (audited, without them)."""
    codes = runtime.auth.totp.enroll(user.username, secret)
    record(runtime, by, user.roles, AuditAction.TOTP_ENROLLED, "succeeded", target_type="user",
           target_id=user.username, params={"recovery_codes": len(codes), "via": "console"})
    return codes


def qr_png(uri: str) -> bytes | None:
    """A QR code of the otpauth:// URI as PNG (None when it cannot be drawn)."""
    try:
        import qrcode

        image = qrcode.make(uri)
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()
    except (ImportError, OSError, ValueError) as exc:
        logger.warning("cannot draw the QR code: %s", type(exc).__name__)
        return None


def show_enrolment(username: str, secret: str) -> None:
    """The key to add to an authenticator app: QR code, otpauth:// URI, the key itself."""
    from services.store.totp import provisioning_uri

    uri = provisioning_uri(username, secret)
    png = qr_png(uri)
    if png is not None:
        st.image(png, width=220, caption="Scan with an authenticator app")
    st.caption("Or add this key by hand (time-based, 6 digits, 30 s):")
    st.code(secret, language=None)
    with st.expander("otpauth:// address"):
        st.code(uri, language=None)


def login_page() -> None:
    """The page shown to a session that is not logged in (the only page of its navigation,
    so that nothing of a previous user's menu stays in the sidebar after a logout)."""
    from dashboard.runtime import get_runtime

    runtime = get_runtime()
    st.title("Kryptos Connect console")
    pending = _pending()
    if pending is None:
        _password_form(runtime)
    elif pending["stage"] == "code":
        _code_form(runtime)
    elif pending["stage"] == "enrol":
        _enrol_form(runtime, pending)
    else:
        _codes_shown(runtime, pending)


STORE_DOWN = ("The console cannot check logins right now (its database is unavailable). "
              "Try again in a moment.")


def _guarded(check: Any, *args: Any) -> str | None:
    """Run a login step; a store that fails is a message, not a traceback."""
    try:
        return check(*args)
    except StoreError as exc:
        logger.error("login step failed: %s", exc.user_message)
        return STORE_DOWN


def _show_messages() -> None:
    ended = st.session_state.pop(ENDED_MESSAGE_KEY, None)
    if ended:
        st.info(ended, icon=":material/logout:")
    message = st.session_state.pop(LOGIN_MESSAGE_KEY, None)
    if message:
        st.error(message)


def _password_form(runtime: Runtime) -> None:
    def submit() -> None:
        # A callback, not `if submitted:`: callbacks run before the script and cannot be
        # cut short by a rerun that arrives meanwhile.
        st.session_state[LOGIN_MESSAGE_KEY] = _guarded(
            attempt_login, runtime, st.session_state.get(USERNAME_KEY) or "",
            st.session_state.get(PASSWORD_KEY) or "", client_address(runtime))
        st.session_state[PASSWORD_KEY] = ""

    with st.form(LOGIN_FORM_KEY, clear_on_submit=False):
        st.subheader("Log in")
        st.text_input("Username", key=USERNAME_KEY, autocomplete="username")
        st.text_input("Password", type="password", key=PASSWORD_KEY,
                      autocomplete="current-password")
        st.form_submit_button("Log in", type="primary", on_click=submit)
    _show_messages()
    if runtime.is_sandbox and runtime.demo_users:
        st.info("Sandbox mode: a local Kryptos stand-in with demo data. Demo users:")
        st.table(
            [
                {"username": name, "password": password, "roles": ", ".join(roles)}
                for name, password, roles in runtime.demo_users
            ]
        )


def _cancel() -> None:
    st.session_state.pop(PENDING_KEY, None)


def _code_form(runtime: Runtime) -> None:
    def submit() -> None:
        st.session_state[LOGIN_MESSAGE_KEY] = _guarded(
            check_code, runtime, st.session_state.get(CODE_KEY) or "",
            client_address(runtime))
        st.session_state[CODE_KEY] = ""

    with st.form(CODE_FORM_KEY, clear_on_submit=False):
        st.subheader("Second factor")
        st.text_input("Code from your authenticator app, or a recovery code", key=CODE_KEY,
                      autocomplete="one-time-code")
        st.form_submit_button("Verify", type="primary", on_click=submit)
    st.button("Cancel", key="console_code_cancel", on_click=_cancel)
    _show_messages()


def _enrol_form(runtime: Runtime, pending: dict) -> None:
    def submit() -> None:
        st.session_state[LOGIN_MESSAGE_KEY] = _guarded(
            confirm_enrolment, runtime, st.session_state.get(CODE_KEY) or "",
            client_address(runtime))
        st.session_state[CODE_KEY] = ""

    st.subheader("Set up a second factor")
    st.info("Your role requires a code from an authenticator app at every login. Add this "
            "key to the app, then enter the code it shows.", icon=":material/security:")
    show_enrolment(pending["username"], pending["secret"])
    with st.form(CODE_FORM_KEY, clear_on_submit=False):
        st.text_input("Code from your authenticator app", key=CODE_KEY,
                      autocomplete="one-time-code")
        st.form_submit_button("Confirm", type="primary", on_click=submit)
    st.button("Cancel", key="console_code_cancel", on_click=_cancel)
    _show_messages()


def _codes_shown(runtime: Runtime, pending: dict) -> None:
    def done() -> None:
        user = runtime.users().get(pending["username"])
        if user is None:
            _cancel()
            return
        st.session_state[LOGIN_MESSAGE_KEY] = _guarded(complete_login, runtime, user,
                                                       client_address(runtime))

    st.subheader("Recovery codes")
    st.warning("Keep these one-time codes somewhere safe: each logs you in once without the "
               "app. They are not shown again.", icon=":material/key:")
    st.code("\n".join(pending["codes"]), language=None)
    st.button("I have saved them, continue", key="console_codes_done", type="primary",
              on_click=done)
    _show_messages()


# --- logging out ----------------------------------------------------------------------------


def logout_button(runtime: Runtime, actor: Actor) -> None:
    """The sidebar's logout button (in a callback, for the same reason as the login form's)."""
    st.sidebar.button("Log out", key=LOGOUT_KEY, icon=":material/logout:", on_click=logout,
                      args=(runtime, actor))


def logout(runtime: Runtime, actor: Actor) -> None:
    """End every session of the user (all browsers, all replicas), clear this browser's
    login; the cookie is deleted by the login page's run that follows."""
    _audit("logout", lambda: runtime.ops.auth.record_logout(actor))
    try:
        runtime.auth.sessions.end_user(actor.username, END_LOGOUT)
    except StoreError as exc:
        logger.error("ending the sessions of a logout failed: %s", exc.user_message)
    _clear_login()
    st.session_state[DELETE_COOKIE_KEY] = True
    st.session_state.pop(SET_COOKIE_KEY, None)
    st.session_state.pop(PASSWORD_KEY, None)
    _mark_cookie_dead(_cookie_token(runtime))


# --- My account page --------------------------------------------------------------------------

#: `Lock.scope` of a lock on a client address (for all usernames).
ADDRESS_SCOPE = SCOPE_ADDRESS


def new_totp_secret() -> str:
    from services.store.totp import new_secret

    return new_secret()


def set_up_totp(runtime: Runtime, user: User, secret: str, new_code: str,
                current_code: str | None = None) -> tuple[list[str] | None, str | None]:
    """My account: store a new key once a code from it matches (and, when a key is set up
    already, a current code from that one). Returns (recovery codes, None) or (None, why)."""
    from services.store.totp import code_matches

    totp = runtime.auth.totp
    try:
        if totp.is_enrolled(user.username) and not totp.verify(user.username,
                                                               current_code or ""):
            return None, "The current code is wrong: nothing was changed."
        if code_matches(secret, new_code or "") is None:
            return None, "The code from the new key does not match."
        return enrol(runtime, user, secret, by=user.username), None
    except StoreError as exc:
        logger.error("TOTP set-up failed: %s", exc.user_message)
        return None, STORE_DOWN


def login_locks(runtime: Runtime) -> list[Any] | None:
    """The failed-login locks in force (`services.store.sessions.Lock`), or None when the
    database cannot be read."""
    try:
        return runtime.throttle.locks()
    except StoreError as exc:
        logger.error("reading the login locks failed: %s", exc.user_message)
        return None


def unlock(runtime: Runtime, actor: Actor, kind: str, value: str) -> int:
    """An admin lifts the locks of a user (`kind` "user") or an address ("address");
    audited `auth.unlock`. Returns how many locks were in force."""
    if not can(actor, Permission.MANAGE_USERS):
        runtime.ops.require(actor, Permission.MANAGE_USERS, AuditAction.UNLOCK, kind, value)
    is_user = kind == "user"
    lifted = runtime.throttle.unlock(username=value if is_user else None,
                                     address=None if is_user else value)
    record(runtime, actor.username, actor.roles, AuditAction.UNLOCK, "succeeded", target_type=kind,
           target_id=value if is_user else None,
           params={"locks_lifted": lifted, **({} if is_user else {"address": value})})
    return lifted
