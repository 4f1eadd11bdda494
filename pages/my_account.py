"""My account (every role): the session, the second factor (TOTP) and, for admins, the
locked logins with an unlock control."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from dashboard import account
from dashboard.context import page_context
from dashboard.session_cookie import current_session_id
from dashboard.ui import kv, table, text
from services.operations import Permission, can

SECRET_KEY = "account_totp_secret"
CODES_KEY = "account_totp_codes"
MESSAGE_KEY = "account_message"

runtime, actor = page_context()  # (runtime, actor): a NamedTuple
stores = runtime.auth
settings = runtime.settings
assert settings is not None

st.title("My account")
kv("User", actor.username)
kv("Name", actor.display_name)
kv("Roles", ", ".join(sorted(actor.roles)))

# --- session --------------------------------------------------------------------------------

st.subheader("Session")
sid = current_session_id()
session = stores.sessions.get(sid) if sid else None
if session is not None:
    kv("Logged in at (UTC)", session.created_at.strftime("%Y-%m-%d %H:%M:%S"))
    kv("Ends at the latest (UTC)", (session.created_at + timedelta(
        seconds=settings.session_lifetime)).strftime("%Y-%m-%d %H:%M:%S"))
    kv("Address", session.client_address or "unknown")
st.caption(f"A session ends after {settings.idle_timeout / 60:.0f} minutes without activity, "
           f"{settings.session_lifetime / 3600:g} hours after the login, at logout (which "
           "ends your sessions in every browser), and when your password or roles change.")

# --- second factor ----------------------------------------------------------------------------

st.subheader("Second factor (authenticator app)")
users = runtime.users()
user = users.get(actor.username)
enrolled = stores.totp.is_enrolled(actor.username)
required = bool(set(actor.roles) & settings.totp_roles)
if enrolled:
    text(f"Set up. Recovery codes left: {stores.totp.recovery_codes_left(actor.username)}.")
else:
    text("Not set up." + (" Your role requires it at the next login." if required else ""))

codes = st.session_state.pop(CODES_KEY, None)
if codes:
    st.warning("Your new one-time recovery codes (shown once; keep them safe):",
               icon=":material/key:")
    st.code("\n".join(codes), language=None)


def _confirm() -> None:
    secret = st.session_state.get(SECRET_KEY)
    if not secret or user is None:
        return
    codes, why = account.set_up_totp(runtime, user, secret,
                                  st.session_state.get("account_new_code", ""),
                                  st.session_state.get("account_current_code"))
    if why:
        st.session_state[MESSAGE_KEY] = why
        return
    st.session_state[CODES_KEY] = codes
    st.session_state.pop(SECRET_KEY, None)


if st.session_state.get(SECRET_KEY):
    account.show_enrolment(actor.username, st.session_state[SECRET_KEY])
    with st.form("account_totp_form"):
        if enrolled:
            st.text_input("Current code (from the key set up now)", key="account_current_code")
        st.text_input("Code from the new key", key="account_new_code")
        st.form_submit_button("Confirm", type="primary", on_click=_confirm)
    if st.button("Cancel", key="account_totp_cancel"):
        st.session_state.pop(SECRET_KEY, None)
        st.rerun()
elif st.button("Set up a new key" if enrolled else "Set up", key="account_totp_start"):
    st.session_state[SECRET_KEY] = account.new_totp_secret()
    st.rerun()
message = st.session_state.pop(MESSAGE_KEY, None)
if message:
    st.error(message)

# --- admins: locked logins --------------------------------------------------------------------

if can(actor, Permission.MANAGE_USERS):
    st.subheader("Locked logins")
    locks = account.login_locks(runtime)
    if locks is None:
        st.error(account.STORE_DOWN)
        st.stop()
    if not locks:
        text("No login is locked.")
        st.stop()
    table([{"user": lock.username or "", "address": lock.client_address or "",
            "kind": lock.scope, "failures": lock.failures,
            "locked until (UTC)": lock.locked_until.strftime("%Y-%m-%d %H:%M:%S")}
           for lock in locks], key="account_locks")
    users_locked = {("user", lock.username) for lock in locks if lock.username}
    addresses = {("address", lock.key) for lock in locks if lock.scope == account.ADDRESS_SCOPE}
    choices = sorted(users_locked | addresses)
    picked = st.selectbox("Unlock", choices, key="account_unlock_pick",
                          format_func=lambda c: f"{c[0]} {c[1]}")
    if st.button("Unlock", key="account_unlock", type="primary") and picked:
        kind, value = picked
        account.unlock(runtime, actor, kind, value)
        st.toast(f"Unlocked {kind} {value}.", icon=":material/lock_open:")
        st.rerun()
