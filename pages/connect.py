"""Connect a customer (support, admin): link token, exchange, and in sandbox mode the widget.

Tokens never reach the browser: the link token and the public token are kept in the server's
session state and shown masked only.
"""

from __future__ import annotations

import streamlit as st

from dashboard import data, ui
from dashboard.auth import PROJECT_ROOT, page_context
from dashboard.runtime import play_widget
from services.kryptos.models import mask_token
from services.operations import OperationError

ISSUED_KEY = "connect_issued"  # LinkTokenIssued of the last link token
PUBLIC_KEY = "connect_public"  # {"public_token", "user_id", "kind"} from the sandbox widget
RESULT_KEY = "connect_result"  # GrantRow of the last exchange

runtime, actor = page_context()
st.title("Connect a customer")
st.caption(
    "First create a link token for the customer: your frontend opens the Kryptos Connect "
    "widget with it. When the customer finishes, the widget gives a public token: exchange it "
    "here for the customer's grant, whose access token is stored in the vault."
)

# --- 1. link token ---------------------------------------------------------------------------
st.subheader("1. Create a link token")
with st.form("connect_link_form"):
    ref = st.text_input("Customer reference", key="connect_ref",
                        help="Your own id for the customer (e.g. CRM id). Letters, digits, - _ .")
    returning = st.text_input(
        "Returning customer: grant id (optional)", key="connect_grant",
        help="Resume the session of an existing grant whose token is stored.",
    )
    create = st.form_submit_button("Create link token", type="primary")
if create:
    try:
        with st.spinner("Asking Kryptos for a link token..."):
            issued = runtime.ops.create_link_token(actor, ref, (returning or "").strip() or None)
        st.session_state[ISSUED_KEY] = issued
        st.session_state["connect_ex_ref"] = issued.customer_ref  # prefill the exchange form
        st.session_state.pop(RESULT_KEY, None)
        ui.toast_done("Link token created")
    except OperationError as exc:
        ui.show_error(exc)
issued = st.session_state.get(ISSUED_KEY)
if issued is not None:
    with st.container(border=True):
        ui.kv("Link token", issued.masked)
        ui.kv("For customer", issued.customer_ref)
        ui.kv("Expires", issued.expires_at.strftime("%Y-%m-%d %H:%M UTC")
              if issued.expires_at else None)
        ui.kv("Session", "resumes an existing grant" if issued.resumed else "new customer")

# --- sandbox: play the widget ----------------------------------------------------------------
if runtime.is_sandbox:
    st.subheader("Sandbox: play the widget's part")
    st.caption("As if the customer completed the Connect widget: the sandbox creates a user "
               "with wallets and holdings, and hands back a public token.")
    w1, w2 = st.columns([2, 1], vertical_alignment="bottom")
    kind = w1.radio("Customer kind", ["guest", "linked"], horizontal=True, key="connect_kind")
    if w2.button("Complete the widget", key="connect_play", disabled=issued is None,
                 icon=":material/smart_button:"):
        try:
            st.session_state[PUBLIC_KEY] = play_widget(runtime, kind)
            ui.toast_done("Widget completed; a public token is ready to exchange")
        except OSError as exc:
            ui.show_error(OperationError(
                f"The sandbox did not answer ({type(exc).__name__}). Restart the console.",
                code="SANDBOX_UNREACHABLE"))
    if issued is None:
        st.caption("Create a link token first.")

# --- 2. exchange -----------------------------------------------------------------------------
st.subheader("2. Exchange the public token")
held = st.session_state.get(PUBLIC_KEY)
with st.form("connect_exchange_form"):
    ex_ref = st.text_input("Customer reference", key="connect_ex_ref")
    if held is not None:
        ui.kv("Public token from the widget", mask_token(held["public_token"]))
    pasted = st.text_input(
        "Public token" + (" (leave empty to use the widget's)" if held is not None else ""),
        type="password", key="connect_public_token",
    )
    exchange = st.form_submit_button("Exchange", type="primary")
if exchange:
    public_token = (pasted or "").strip() or (held or {}).get("public_token", "")
    try:
        with st.spinner("Exchanging with Kryptos..."):
            row = runtime.ops.exchange_public_token(actor, ex_ref, public_token)
        st.session_state[RESULT_KEY] = row
        st.session_state.pop(PUBLIC_KEY, None)
        data.invalidate_grant(row.grant_id)
        ui.toast_done(f"Grant {row.grant_id} stored")
    except OperationError as exc:
        ui.show_error(exc)
row = st.session_state.get(RESULT_KEY)
if row is not None:
    st.success("The customer is connected and the access token is stored in the vault.",
               icon=":material/check_circle:")
    with st.container(border=True):
        ui.kv("Grant", row.grant_id)
        ui.kv("Customer reference", row.customer_ref)
        ui.kv("Kind", row.user_kind or "unknown")
        ui.kv("Stored token", row.masked_token)
        ui.kv("Workspace", row.workspace_id)
    if st.button("Open the grant", key="connect_open_grant"):
        st.session_state["selected_grant_id"] = row.grant_id
        st.query_params["grant"] = row.grant_id
        st.switch_page(PROJECT_ROOT / "pages" / "grant_detail.py")
