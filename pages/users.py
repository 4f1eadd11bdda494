"""Users (admins): the console's users with their roles, sign-in, second factor, last login,
lock and open sessions; add a user, change roles, reset a password or a second factor, end
sessions, unlock, remove. The rules are the users use cases (services/operations/users.py),
the same as `python -m dashboard.users`; this page shows them and asks before what cannot be
undone. The only secret it ever shows is a new one-time password, once."""

from __future__ import annotations

import streamlit as st

from dashboard import users_admin
from dashboard.context import page_context
from dashboard.ui import escape_markdown, show_error, table, text, toast_done
from services.operations import ROLES, OperationError

PENDING_KEY = "users_pending"  # the change waiting for its confirmation
SHOWN_ONCE_KEY = "users_one_time_password"  # (username, password): popped when drawn
MESSAGE_KEY = "users_message"

runtime, actor = page_context()
st.title("Users")


def _done(message: str, username: str | None = None, password: str | None = None) -> None:
    st.session_state[MESSAGE_KEY] = message
    if password:
        st.session_state[SHOWN_ONCE_KEY] = (username, password)


# --- what the previous run did -----------------------------------------------------------------

message = st.session_state.pop(MESSAGE_KEY, None)
if message:
    st.success(escape_markdown(message), icon=":material/check_circle:")
    toast_done(message)
shown_once = st.session_state.pop(SHOWN_ONCE_KEY, None)
if shown_once:
    who, password = shown_once
    st.warning(escape_markdown(
        f"One-time password of {who}, shown this once: hand it over in person or through a "
        "channel you trust. It is not stored anywhere you can read it again."),
        icon=":material/key:")
    st.code(password, language=None)

# --- the list ------------------------------------------------------------------------------

try:
    rows = users_admin.user_rows(runtime, actor)
except OperationError as exc:
    show_error(exc)
    st.stop()
table(users_admin.table_rows(rows), key="users_table")
st.caption("Sign-in: password, or SSO (single sign-on through the company's identity "
           "provider). Open sessions: not ended, used within the idle timeout.")
by_name = {r.username: r for r in rows}

# --- add ---------------------------------------------------------------------------------------

with st.expander("Add a user", expanded=not rows):
    with st.form("users_add_form", clear_on_submit=True):
        st.text_input("Username", key="users_add_username")
        st.text_input("Name", key="users_add_name")
        st.text_input("Email", key="users_add_email")
        st.multiselect("Roles", ROLES, key="users_add_roles")
        st.radio("Sign-in", ["password", "SSO only"], key="users_add_sign_in",
                 captions=["a one-time password is shown once, here",
                           "no password: signs in through single sign-on"],
                 horizontal=True)
        submitted = st.form_submit_button("Add user", type="primary")
    if submitted:
        try:
            added = users_admin.add_user(
                runtime, actor, st.session_state.get("users_add_username", ""),
                st.session_state.get("users_add_roles", []),
                sso=st.session_state.get("users_add_sign_in") == "SSO only",
                name=st.session_state.get("users_add_name", ""),
                email=st.session_state.get("users_add_email", ""))
        except OperationError as exc:
            show_error(exc)
        else:
            note = (" The admin role waits for a second admin to grant it."
                    if added.admin_requested else "")
            _done(f"Added {added.user.username} ({', '.join(added.user.roles)}).{note}",
                  added.user.username, added.one_time_password)
            st.rerun()

# --- change ------------------------------------------------------------------------------------

if not rows:
    st.stop()
st.subheader("Change a user")
if st.session_state.get("users_pick") not in by_name:
    st.session_state.pop("users_pick", None)  # removed meanwhile: pick the first one again
username = st.selectbox("User", list(by_name), key="users_pick")
row = by_name[username]

pending = st.session_state.get(PENDING_KEY)
if pending and pending["username"] != username:
    st.session_state.pop(PENDING_KEY, None)
    pending = None

roles = st.multiselect("Roles", ROLES, default=list(r for r in row.roles if r in ROLES),
                       key=f"users_roles_{username}")
if st.button("Save roles", key="users_save_roles"):
    try:
        _done(users_admin.set_roles(runtime, actor, username, roles))
    except OperationError as exc:
        show_error(exc)
    else:
        st.rerun()
if row.admin_requested_by:
    text(f"{row.admin_requested_by} asked for {username} to become admin; another admin "
         "grants it.")
    if row.admin_requested_by != actor.username and st.button(
            "Grant admin", key="users_grant_admin", type="primary"):
        try:
            _done(users_admin.grant_admin(runtime, actor, username))
        except OperationError as exc:
            show_error(exc)
        else:
            st.rerun()

# One row that wraps: fixed columns cut the labels to "Res…" at half a laptop's screen.
buttons = st.container(horizontal=True, wrap=True)
for what, label in users_admin.LABELS.items():
    if buttons.button(label, key=f"users_{what}", disabled=pending is not None):
        try:
            result = users_admin.change(runtime, actor, what, username)
        except OperationError as exc:
            show_error(exc)
        else:
            if isinstance(result, users_admin.Asked):
                st.session_state[PENDING_KEY] = {"what": what, "username": username,
                                                 "question": result.question}
            else:
                _done(result.message, username, result.one_time_password)
            st.rerun()

if pending:
    st.warning(escape_markdown(pending["question"]), icon=":material/warning:")
    yes, no = st.columns(2)
    if yes.button(f"Yes: {users_admin.LABELS[pending['what']].lower()}", key="users_confirm",
                  type="primary"):
        st.session_state.pop(PENDING_KEY, None)
        try:
            result = users_admin.change(runtime, actor, pending["what"], username,
                                        confirmed=True)
        except OperationError as exc:
            show_error(exc)
        else:
            if isinstance(result, users_admin.Done):
                _done(result.message, username, result.one_time_password)
            st.rerun()
    if no.button("Cancel", key="users_cancel"):
        st.session_state.pop(PENDING_KEY, None)
        st.rerun()
