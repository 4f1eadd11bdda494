"""My account (every role): the session, the second factor (TOTP) and, for admins, the
locked logins with an unlock control."""

from __future__ import annotations

import streamlit as st

from dashboard import account, account_view
from dashboard.context import page_context
from dashboard.ui import kv, table, text
from services.operations import Permission, can

SECRET_KEY = "account_totp_secret"
CODES_KEY = "account_totp_codes"
MESSAGE_KEY = "account_message"

runtime, actor = page_context()  # (runtime, actor): a NamedTuple
settings = runtime.settings
assert settings is not None

st.title("My account")
kv("User", actor.username)
kv("Name", actor.display_name)
kv("Roles", ", ".join(sorted(actor.roles)))

# --- session --------------------------------------------------------------------------------

st.subheader("Session")
for label, value in account_view.session_facts(runtime, settings):
    kv(label, value)
st.caption(account_view.session_rules(settings))

# --- second factor ----------------------------------------------------------------------------

st.subheader("Second factor (authenticator app)")
users = runtime.users()
user = users.get(actor.username)
enrolled = account_view.totp_enrolled(runtime, actor)
text(account_view.second_factor_state(runtime, settings, actor, enrolled))

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
    table(account_view.lock_rows(locks), key="account_locks")
    choices = account_view.unlock_choices(locks)
    picked = st.selectbox("Unlock", choices, key="account_unlock_pick",
                          format_func=lambda c: f"{c[0]} {c[1]}")
    if st.button("Unlock", key="account_unlock", type="primary") and picked:
        kind, value = picked
        account.unlock(runtime, actor, kind, value)
        st.toast(f"Unlocked {kind} {value}.", icon=":material/lock_open:")
        st.rerun()
