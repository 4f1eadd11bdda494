"""The login cookie and the per-run session check (`login_gate`), and the acting user.

- A login creates a record in `console_sessions` (services/store/sessions.py). The browser
  gets a cookie (`settings.cookie_name`) holding a JWT signed with the cookie key (HS256
  only): `{"sid": <session id>, "exp": <end of the session's lifetime>}`. The cookie names
  the session; the record decides.
- Every script run checks the record (one primary-key read): it must exist and not be
  ended, not be idle for more than `idle_timeout` nor older than `session_lifetime`, and
  its user must still exist with the same roles and password. Anything else logs the
  browser out (and ends the record, audited `auth.session_ended`). `last_seen_at` is
  written at most every `TOUCH_SECONDS`, and at least every half of the idle timeout
  (`touch_interval`), so someone who acts at least that often is never taken for idle.
- A cookie that cannot be read (garbage, bad signature, `alg: none`, expired, missing
  fields) means "logged out": no traceback.

The cookie is written and deleted by a one-line script in the page (`cookie_script`, drawn
by `st.html` in the run after a login or logout): it runs in the browser, so the cookie
cannot be HttpOnly; what a stolen cookie gives is bounded by the session record (idle,
lifetime, logout). The script is not a component: no frame and no script bundle to load,
and no report back to the server, so the Overview a login opens is not run a second time.
Policy: docs/architecture.md, "Sessions and logins".
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import jwt
import streamlit as st

from dashboard.runtime import Runtime
from dashboard.users import User
from services.operations import Actor, OperationError, login_policy
from services.store.actions import AuditAction
from services.store.errors import StoreError
from services.store.sessions import (
    END_BY_ADMIN,
    END_IDLE,
    END_LIFETIME,
    END_LOGOUT,
    END_PASSWORD_CHANGED,
    END_ROLES_CHANGED,
    END_USER_REMOVED,
    UNKNOWN_ADDRESS,
    ConsoleSession,
    credential_stamp,
    roles_text,
)

logger = logging.getLogger(__name__)

SID_KEY = "_console_sid"
SET_COOKIE_KEY = "_console_set_cookie"  # a token to write in this run's cookie area
DELETE_COOKIE_KEY = "_console_delete_cookie"
DEAD_COOKIE_KEY = "_console_dead_cookie"  # a cookie value known to name no live session
LOGIN_MESSAGE_KEY = "_console_login_message"
ENDED_MESSAGE_KEY = "_console_session_ended"

#: `last_seen_at` is written at most this often (seconds), not on every run.
TOUCH_SECONDS = 30.0
ALGORITHM = "HS256"


def touch_interval(idle_timeout: float) -> float:
    """How old `last_seen_at` may get before a run writes it again: `TOUCH_SECONDS`, but
    never more than half the idle timeout. The idle check counts from the last write, which
    lags the last click by up to this interval: a fixed 30 s throttle with a 40 s timeout
    would log out someone clicking every 14 s."""
    return min(TOUCH_SECONDS, idle_timeout / 2)


END_MESSAGES = {
    END_IDLE: "Your session ended after a time without activity. Log in again.",
    END_LIFETIME: "Your session reached its maximum length. Log in again.",
    END_ROLES_CHANGED: "Your roles were changed. Log in again.",
    END_PASSWORD_CHANGED: "Your password was changed. Log in again.",
    END_USER_REMOVED: "Your session ended.",
    END_BY_ADMIN: "An administrator ended your session. Log in again.",
    END_LOGOUT: "Your session ended (logged out). Log in again.",
}


#: What a cookie name and value may hold (a JWT, the configured name): nothing that could end
#: the cookie's attributes or the script's string.
_COOKIE_TEXT = re.compile(r"[A-Za-z0-9._~-]+")


def cookie_script(name: str, value: str, expires_at: datetime, *, secure: bool) -> str:
    """The script that writes (or, with an `expires_at` in the past, deletes) the login
    cookie: path `/`, `SameSite=Strict`, `Secure` over https."""
    if not (_COOKIE_TEXT.fullmatch(name) and (value == "" or _COOKIE_TEXT.fullmatch(value))):
        raise ValueError("a cookie name or value with characters a cookie cannot hold")
    parts = [f"{name}={value}", "Path=/",
             f"Expires={format_datetime(expires_at.astimezone(UTC), usegmt=True)}",
             "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return f"<script>document.cookie = {json.dumps('; '.join(parts))};</script>"


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
    return actor_of(user)


def actor_of(user: User) -> Actor:
    return Actor(username=user.username, display_name=user.name, roles=frozenset(user.roles))


def current_session_id() -> str | None:
    """The id of this browser session's console session (for the My account page)."""
    sid = st.session_state.get(SID_KEY)
    return sid if isinstance(sid, str) else None


# --- audit ----------------------------------------------------------------------------------


def audit_step(what: str, record: Callable[[], object]) -> None:
    """Record a login event; a login must not fail on the audit write."""
    try:
        record()
    except (OperationError, StoreError) as exc:
        logger.error("audit of %s failed: %s", what, exc.user_message)


def record(runtime: Runtime, username: str, roles: Any, action: str, outcome: str,
           **fields: Any) -> None:
    """Write one login-related audit event (actions in services/store/sessions.py)."""
    try:
        runtime.operations.ctx.event(username, roles, action, outcome, **fields)
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


def cookie_token(runtime: Runtime) -> str | None:
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
    token = cookie_token(runtime)
    if token is None or token == st.session_state.get(DEAD_COOKIE_KEY):
        return None
    sid = decode_cookie(runtime.cookie_key, token)
    if sid is None:
        mark_cookie_dead(token)
    return sid


def mark_cookie_dead(token: str | None) -> None:
    if token:
        st.session_state[DEAD_COOKIE_KEY] = token
    st.session_state[DELETE_COOKIE_KEY] = True


def _proxies(runtime: Runtime) -> int:
    return runtime.settings.trusted_proxies if runtime.settings else 0


def _header_values(name: str) -> list[str]:
    """Every value of a request header (it may be sent several times), in order."""
    values = st.context.headers.get_all(name)
    return [v for v in values if isinstance(v, str)]


def client_address(runtime: Runtime) -> str:
    """The address a login counts against (services/operations/login_policy.py): behind
    `trusted_proxies` proxies the X-Forwarded-For entry the outermost added, else the
    connection's; `unknown` when there is none (AppTest, localhost)."""
    try:
        peer = st.context.ip_address
        forwarded = _header_values("X-Forwarded-For") if _proxies(runtime) else []
    except Exception:  # noqa: BLE001 - no request context: not known
        return UNKNOWN_ADDRESS
    return login_policy.client_address(peer if isinstance(peer, str) else None, forwarded,
                                       _proxies(runtime))


def reached_over_https(runtime: Runtime) -> bool:
    """Whether this browser uses https (the page's address, or a trusted proxy's
    X-Forwarded-Proto): the login cookie is then `Secure`."""
    try:
        url = st.context.url
        proto = _header_values("X-Forwarded-Proto") if _proxies(runtime) else []
    except Exception:  # noqa: BLE001 - no request context: not known, so plain http
        return False
    return login_policy.reached_over_https(url if isinstance(url, str) else None, proto,
                                           _proxies(runtime))


# --- the gate, run first in every script run ------------------------------------------------


def login_gate(runtime: Runtime) -> Actor | None:
    """Check this browser's session (every run). Returns the actor, or None: then the
    entrypoint shows `login_page`.

    The cookie script (write after a login, delete after a logout) is drawn inside one
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
    if token:
        script = cookie_script(
            settings.cookie_name, token,
            datetime.now(UTC) + timedelta(seconds=settings.session_lifetime),
            secure=reached_over_https(runtime))
    else:
        script = cookie_script(settings.cookie_name, "", datetime(1970, 1, 1, tzinfo=UTC),
                               secure=reached_over_https(runtime))
    st.html(script, unsafe_allow_javascript=True)


def _login_gate(runtime: Runtime) -> Actor | None:
    sid = current_session_id()
    if sid is None:
        sid = _read_cookie(runtime)
    if sid is None:
        clear_login()
        return None
    try:
        actor = _check_session(runtime, sid)
    except StoreError as exc:
        logger.error("session check failed: %s", exc.user_message)
        st.session_state[LOGIN_MESSAGE_KEY] = ("The console cannot check your session now "
                                               "(its database is unavailable). Try again.")
        clear_login(keep_sid=True)
        return None
    if actor is None:
        clear_login()
        mark_cookie_dead(cookie_token(runtime))
        return None
    st.session_state[SID_KEY] = sid
    st.session_state["authentication_status"] = True
    st.session_state["username"] = actor.username
    st.session_state["name"] = actor.display_name
    st.session_state["roles"] = sorted(actor.roles)
    return actor


def clear_login(keep_sid: bool = False) -> None:
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
    now = store.now()
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
    settings = runtime.settings
    assert settings is not None
    if (now - session.last_seen_at).total_seconds() >= touch_interval(settings.idle_timeout):
        store.touch(sid)
    return actor_of(user)
