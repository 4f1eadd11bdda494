"""The login form and its flow: password, lockout, the second factor step (a TOTP code, a
recovery code, or enrolment for a role that requires it), and logout.

- `auth.login` is audited once, when the password (and code) is accepted; a new browser
  session opened from a cookie is not a login.
- Failed logins are counted in the database (LoginFailures): per username (any address)
  and per address (services/operations/login_policy.py says which address). A lock lasts
  its time; only an admin lifts it earlier.
- A failed login answers no sooner than `login_failure_floor` after it started, whatever
  the username (an unknown one is also checked against a dummy hash of the current cost);
  an accepted password whose hash has a lower cost than `password_rounds` is rehashed.
- TOTP (services/store/totp.py): a user enrolled is asked for a code (or a one-time
  recovery code) after the password; a user of a role in `settings.totp_roles` who is not
  enrolled must enrol before reaching any page.
- Logout, a password change, a role change and removing a user end every session of the
  user in the database (so on every replica); the CLI does it too (dashboard/users.py).
- Single sign-on (`sso_sign_in`): "Sign in with SSO" is Streamlit's `st.login` (OpenID
  Connect; Streamlit's `[auth]` secrets are written at start by services/sso_config.py).
  Back from the provider, `st.user` holds the ID token's claims; `ops.sso.admit` decides
  (services/operations/sso.py): a user and roles, or a refusal shown on this page. Accepted,
  the users file gets or updates the user's SSO entry, then the console's own session opens
  as after a password (second factor unless the provider's `amr` says it did one), audited
  `auth.sso_login`. Logout also calls `st.logout()`, which ends Streamlit's 30-day identity
  cookie (and the provider's session where it offers an end-session endpoint).

Tests log in through the real form (AppTest types into the text inputs and clicks the submit
button); nothing else is faked. Policy: docs/architecture.md, "Sessions and logins".
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import bcrypt
import streamlit as st

from dashboard.account import STORE_DOWN, enrol, show_enrolment
from dashboard.runtime import Runtime
from dashboard.session_cookie import (
    DEAD_COOKIE_KEY,
    DELETE_COOKIE_KEY,
    ENDED_MESSAGE_KEY,
    LOGIN_MESSAGE_KEY,
    SET_COOKIE_KEY,
    SID_KEY,
    actor_of,
    audit_step,
    clear_login,
    client_address,
    cookie_token,
    encode_cookie,
    mark_cookie_dead,
    record,
)
from dashboard.users import User, check_password
from services.operations import Actor, canonical_username
from services.operations.login_policy import FailureFloor
from services.operations.sso import (
    IDENTITY_USED,
    LOCAL_ACCOUNT,
    STALE_IDENTITY,
    SUBJECT_MISMATCH,
    SsoIdentity,
    SsoPolicy,
    SsoRefusal,
)
from services.operations.users_file import (
    UsersError,
    hash_cost,
    hash_password,
    rehash_password,
    save_sso_user,
)
from services.store.actions import AuditAction
from services.store.errors import StoreError
from services.store.sessions import END_LOGOUT, UNKNOWN_ADDRESS

logger = logging.getLogger(__name__)

LOGIN_FORM_KEY = "console_login"
USERNAME_KEY = "login_username"
PASSWORD_KEY = "login_password"
CODE_FORM_KEY = "console_code"
CODE_KEY = "login_code"
LOGOUT_KEY = "console_logout"
PENDING_KEY = "_console_pending"  # password accepted, second factor to come
SSO_SEEN_KEY = "_console_sso_seen"  # the identity this browser session decided on, its answer
SSO_BUTTON_KEY = "console_sso_login"
SSO_LOGOUT_KEY = "console_sso_logout"

#: Time to type the code after the password (seconds).
PENDING_SECONDS = 300.0


# --- logging in -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _dummy_hash(cost: int) -> bytes:
    return bcrypt.hashpw(b"no user has this password", bcrypt.gensalt(rounds=cost))


def _dummy_check(runtime: Runtime, password: str) -> None:
    """Spend the work of a password check for a username that does not exist (at the
    current cost; the time is evened out by the failure floor)."""
    check_password(password, _dummy_hash(_rounds(runtime)).decode("ascii"))


def _rounds(runtime: Runtime) -> int:
    return runtime.settings.password_rounds if runtime.settings else 12


def failure_floor(runtime: Runtime) -> FailureFloor:
    return FailureFloor(runtime.settings.login_failure_floor if runtime.settings else 1.5)


def _rehash(runtime: Runtime, user: User, password: str) -> User:
    """A user whose hash has a lower cost than the current one gets a new hash of the same
    password (the users file rewritten atomically, its open sessions kept valid). A file
    that cannot be written leaves the login as it is."""
    cost = hash_cost(user.password_hash)
    if runtime.auth_file is None or cost is None or cost >= _rounds(runtime):
        return user
    try:
        # A password accepted today may break today's rules (an imported file): then
        # hash_password refuses it and the old hash stays.
        new_hash = hash_password(password, _rounds(runtime))
        if not rehash_password(runtime.auth_file, user.username, user.password_hash,
                               new_hash):
            return user
        runtime.auth.sessions.restamp(user.username, user.password_hash, new_hash)
    except (OSError, UsersError, StoreError) as exc:
        logger.error("rehashing the password of %s failed: %s", user.username,
                     getattr(exc, "user_message", type(exc).__name__))
        return user
    logger.info("rehashed the password of %s from cost %s to %s", user.username, cost,
                _rounds(runtime))
    return dataclasses.replace(user, password_hash=new_hash)


def _locked_message(wait: float) -> str:
    minutes = max(1, round(wait / 60))
    return (f"Too many failed attempts. Try again in about {minutes} minute(s), or ask an "
            "administrator to unlock your account.")


def attempt_login(runtime: Runtime, username: str, password: str,
                  address: str = UNKNOWN_ADDRESS, *,
                  floor: FailureFloor | None = None) -> str | None:
    """Check a username and password; returns None when accepted (logged in, or a second
    factor to come: `PENDING_KEY`), else the message to show (and audits the failure),
    no sooner than the failure floor after the call began."""
    floor = floor or failure_floor(runtime)
    started = floor.start()
    message = _attempt_login(runtime, username, password, address)
    if message is not None:
        floor.hold(started)
    return message


def _attempt_login(runtime: Runtime, username: str, password: str, address: str) -> str | None:
    typed = username
    # One form of a username (`SUPPORT` is `support`); longer names do not exist.
    username = canonical_username(username)[:64]
    if not username or not password:
        return "Enter a username and a password."
    throttle = runtime.throttle
    wait = throttle.locked_for(username, address)
    if wait > 0:
        audit_step("login failure",
               lambda: runtime.operations.auth.record_login_failed(typed, error_code="LOCKED"))
        return _locked_message(wait)
    user = runtime.users().get(username)
    if user is None or user.sso:
        # No password opens an SSO account; it costs the same as an unknown name.
        _dummy_check(runtime, password)
        ok = False
    else:
        ok = check_password(password, user.password_hash)
    if not ok:
        left = throttle.failure(username, address)
        audit_step("login failure", lambda: runtime.operations.auth.record_login_failed(typed))
        if left == 0:
            return ("Wrong username or password. Too many failed attempts: locked for "
                    f"{throttle.lock_seconds / 60:.0f} minutes.")
        return f"Wrong username or password ({left} attempt(s) left before a lock)."
    assert user is not None
    user = _rehash(runtime, user, password)
    if user.must_change_password:
        # A one-time password an admin was shown: the user chooses their own first.
        _set_pending(user.username, "new_password")
        return None
    return _second_factor_or_login(runtime, user, address)


def _second_factor_or_login(runtime: Runtime, user: User, address: str) -> str | None:
    """After the password: the second factor's step (a code, or an enrolment the role
    requires), else the session."""
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
    """The step to come; an SSO identity of the same user's earlier step is kept, so the
    sign-in ends audited as single sign-on."""
    before = st.session_state.get(PENDING_KEY)
    if isinstance(before, dict) and before.get("username") == username and "sso" in before:
        extra.setdefault("sso", before["sso"])
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


def complete_login(runtime: Runtime, user: User, address: str,
                   sso: SsoIdentity | None = None) -> None:
    """Open a session for a user whose credentials were accepted: the record, the cookie
    (written by the next run's cookie area), the audit event (the one `auth.login`, or
    `auth.sso_login` for an identity from single sign-on, also when it came through a
    pending second factor step)."""
    pending = st.session_state.get(PENDING_KEY)
    if sso is None and isinstance(pending, dict) and pending.get("username") == user.username:
        sso = pending.get("sso")
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
    actor = actor_of(user)
    if isinstance(sso, SsoIdentity):
        identity = sso
        audit_step("sso login", lambda: runtime.operations.sso.record_sso_login(actor, identity))
    else:
        audit_step("login", lambda: runtime.operations.auth.record_login(actor))


def choose_password(runtime: Runtime, new: str, again: str, address: str) -> str | None:
    """The step after a one-time password: the user's own password (typed twice), stored
    and audited (`user.passwd` by the user), then the second factor or the session. None
    when done, else the message."""
    from services.operations import OperationError

    pending = _pending()
    if pending is None or pending.get("stage") != "new_password":
        return st.session_state.pop(LOGIN_MESSAGE_KEY, None) or "Log in again."
    user = runtime.users().get(pending["username"])
    if user is None or not user.must_change_password:
        st.session_state.pop(PENDING_KEY, None)
        return "Log in again."
    if new != again:
        return "The two passwords differ."
    if check_password(new, user.password_hash):
        return "Choose a password other than the one-time password."
    try:
        user = runtime.user_ops.choose_own_password(actor_of(user), new)
    except OperationError as exc:
        return exc.user_message
    return _second_factor_or_login(runtime, user, address)


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


# --- single sign-on -------------------------------------------------------------------------


def sso_policy(runtime: Runtime) -> SsoPolicy:
    settings = runtime.settings
    assert settings is not None
    return SsoPolicy(claim=settings.sso_claim, role_map=settings.sso_role_map,
                     username_claim=settings.sso_username_claim)


def sso_available(runtime: Runtime) -> bool:
    """Single sign-on is configured and Streamlit has its `[auth]` secrets (written at start
    by the launcher, services/sso_config.py)."""
    if runtime.settings is None or not runtime.settings.sso_enabled:
        return False
    return bool(st.secrets.load_if_toml_exists() and st.secrets.get("auth"))


def sso_claims() -> dict[str, Any]:
    """The identity Streamlit holds for this browser session (`st.user`), or {}."""
    try:
        claims = st.user.to_dict()
    except Exception:  # noqa: BLE001 - no script context or no [auth]: no identity
        return {}
    return dict(claims) if claims.get("is_logged_in") else {}


USERS_FILE_DOWN = ("The console cannot record your sign-in now (its users file cannot be "
                   "written). Try again later, or tell an administrator.")


def sso_sign_in(runtime: Runtime, claims: dict[str, Any], address: str
                ) -> SsoRefusal | str | None:
    """An identity back from the provider: None when accepted (logged in, or a second
    factor to come: `PENDING_KEY`), else the refusal (audited by `ops.sso.admit`), or a
    message when the users file cannot be written."""
    sessions = runtime.auth.sessions
    users = runtime.users()

    def local_password_user(username: str) -> bool:
        user = users.get(username)
        return user is not None and not user.sso

    decision = runtime.operations.sso.admit(sso_policy(runtime), claims, sessions.now(),
                                     local_password_user=local_password_user,
                                     session_opened_since=sessions.opened_since)
    if isinstance(decision, SsoRefusal):
        return decision
    assert runtime.auth_file is not None
    try:
        before, user = save_sso_user(runtime.auth_file, decision.username, decision.roles,
                                     name=decision.name, email=decision.email,
                                     subject=decision.account)
    except UsersError as exc:
        refusal = SsoRefusal(exc.code if exc.code in (LOCAL_ACCOUNT, SUBJECT_MISMATCH)
                             else "BAD_USERNAME", decision.username)
        runtime.operations.sso.record_refused(claims, refusal)
        return refusal
    except OSError as exc:
        logger.error("single sign-on of %s: the users file cannot be written: %s",
                     decision.username, type(exc).__name__)
        return USERS_FILE_DOWN
    if before is None:
        decision = dataclasses.replace(decision, users_file_change={"added": True})
    elif before.roles != user.roles:
        decision = dataclasses.replace(decision,
                                       users_file_change={"roles_before": list(before.roles)})
    if decision.mfa:
        complete_login(runtime, user, address, sso=decision)
    elif runtime.auth.totp.is_enrolled(user.username):
        _set_pending(user.username, "code", sso=decision)
    elif set(user.roles) & runtime.settings.totp_roles:  # type: ignore[union-attr]
        from services.store.totp import new_secret

        _set_pending(user.username, "enrol", secret=new_secret(), sso=decision)
    else:
        complete_login(runtime, user, address, sso=decision)
    return None


def _identity_key(claims: dict[str, Any]) -> str:
    return "|".join(str(claims.get(k)) for k in ("iss", "sub", "iat", "nonce"))


def _sso_step(runtime: Runtime) -> None:
    """Decide once per identity and browser session (a rerun shows the same answer rather
    than audit the refusal again); an accepted identity reruns into the console."""
    claims = sso_claims()
    if not claims:
        return
    key = _identity_key(claims)
    seen = st.session_state.get(SSO_SEEN_KEY)
    if isinstance(seen, tuple) and seen[0] == key:
        return
    result = _guarded(sso_sign_in, runtime, claims, client_address(runtime))
    st.session_state[SSO_SEEN_KEY] = (key, result)
    if result is None:
        st.rerun()


def _sso_panel(runtime: Runtime) -> None:
    """The "Sign in with SSO" button, and what became of the identity this session holds."""
    seen = st.session_state.get(SSO_SEEN_KEY)
    answer = seen[1] if isinstance(seen, tuple) and sso_claims() else None
    st.subheader("Single sign-on")
    if isinstance(answer, SsoRefusal) and answer.code not in (STALE_IDENTITY, IDENTITY_USED):
        st.error(f"Access refused. {answer.message}", icon=":material/block:")
        st.button("Sign out of single sign-on", key=SSO_LOGOUT_KEY, on_click=st.logout)
        return
    if isinstance(answer, SsoRefusal):
        st.info(answer.message, icon=":material/info:")
    elif isinstance(answer, str):  # the store or the users file was unavailable
        st.error(answer)
    st.button("Sign in with SSO", key=SSO_BUTTON_KEY, type="primary",
              icon=":material/badge:", on_click=st.login)


def login_page() -> None:
    """The page shown to a session that is not logged in (the only page of its navigation,
    so that nothing of a previous user's menu stays in the sidebar after a logout)."""
    from dashboard.runtime import get_runtime

    runtime = get_runtime()
    st.title("Kryptos Connect console")
    pending = _pending()
    sso = sso_available(runtime)
    if pending is None and sso:
        _sso_step(runtime)
        pending = _pending()
    if pending is None:
        if sso:
            _sso_panel(runtime)
        elif runtime.settings is not None and runtime.settings.sso_enabled:
            st.warning("Single sign-on is configured, but Streamlit was started without its "
                       "[auth] secrets: start the console with bin/console (or python -m "
                       "backend.launch), which writes them.", icon=":material/warning:")
        if runtime.settings is None or runtime.settings.password_login:
            _password_form(runtime)
        else:
            _show_messages()
    elif pending["stage"] == "new_password":
        _new_password_form(runtime)
    elif pending["stage"] == "code":
        _code_form(runtime)
    elif pending["stage"] == "enrol":
        _enrol_form(runtime, pending)
    else:
        _codes_shown(runtime, pending)


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
        if sso_available(runtime):
            st.info("Sandbox mode: **Sign in with SSO** opens a local identity provider "
                    "(sandbox/idp.py); pick one of its people there.")
        st.info("Sandbox mode: a local Kryptos stand-in with demo data. Demo users:")
        st.table(
            [
                {"username": name, "password": password, "roles": ", ".join(roles)}
                for name, password, roles in runtime.demo_users
            ]
        )


def _cancel() -> None:
    st.session_state.pop(PENDING_KEY, None)


def _code_submit(runtime: Runtime, check: Callable[[Runtime, str, str], str | None]
                 ) -> Callable[[], None]:
    """The callback of a form that sends the typed code to `check` (a second-factor login
    step or an enrolment), its message kept for the next run, the field emptied."""
    def submit() -> None:
        st.session_state[LOGIN_MESSAGE_KEY] = _guarded(
            check, runtime, st.session_state.get(CODE_KEY) or "", client_address(runtime))
        st.session_state[CODE_KEY] = ""

    return submit


def _code_form(runtime: Runtime) -> None:
    submit = _code_submit(runtime, check_code)
    with st.form(CODE_FORM_KEY, clear_on_submit=False):
        st.subheader("Second factor")
        st.text_input("Code from your authenticator app, or a recovery code", key=CODE_KEY,
                      autocomplete="one-time-code")
        st.form_submit_button("Verify", type="primary", on_click=submit)
    st.button("Cancel", key="console_code_cancel", on_click=_cancel)
    _show_messages()


NEW_PASSWORD_KEY = "login_new_password"
NEW_PASSWORD_AGAIN_KEY = "login_new_password_again"


def _new_password_form(runtime: Runtime) -> None:
    def submit() -> None:
        st.session_state[LOGIN_MESSAGE_KEY] = _guarded(
            choose_password, runtime, st.session_state.get(NEW_PASSWORD_KEY) or "",
            st.session_state.get(NEW_PASSWORD_AGAIN_KEY) or "", client_address(runtime))
        st.session_state[NEW_PASSWORD_KEY] = st.session_state[NEW_PASSWORD_AGAIN_KEY] = ""

    st.subheader("Choose your password")
    st.info("You logged in with a one-time password. Choose your own to continue.",
            icon=":material/password:")
    with st.form("console_new_password", clear_on_submit=False):
        st.text_input("New password", type="password", key=NEW_PASSWORD_KEY,
                      autocomplete="new-password")
        st.text_input("New password again", type="password", key=NEW_PASSWORD_AGAIN_KEY,
                      autocomplete="new-password")
        st.form_submit_button("Save and continue", type="primary", on_click=submit)
    st.button("Cancel", key="console_new_password_cancel", on_click=_cancel)
    _show_messages()


def _enrol_form(runtime: Runtime, pending: dict) -> None:
    submit = _code_submit(runtime, confirm_enrolment)
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
    audit_step("logout", lambda: runtime.operations.auth.record_logout(actor))
    try:
        runtime.auth.sessions.end_user(actor.username, END_LOGOUT)
    except StoreError as exc:
        logger.error("ending the sessions of a logout failed: %s", exc.user_message)
    clear_login()
    st.session_state[DELETE_COOKIE_KEY] = True
    st.session_state.pop(SET_COOKIE_KEY, None)
    st.session_state.pop(PASSWORD_KEY, None)
    mark_cookie_dead(cookie_token(runtime))
    if sso_claims():
        # Streamlit's identity cookie lives 30 days: end it too, so the next sign-in goes
        # through the provider again (the browser is sent to /auth/logout, then back).
        st.session_state.pop(SSO_SEEN_KEY, None)
        st.logout()

