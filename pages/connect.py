"""Connect a customer (support, admin): link token, exchange, and in sandbox mode the widget.

Tokens never reach the browser: the link token and the public token are kept in the server's
session state and shown masked only.
"""

from __future__ import annotations

import streamlit as st

from dashboard import actions, ui
from dashboard.context import page_context
from dashboard.navigation import PROJECT_ROOT
from services.kryptos.models import mask_token
from services.operations import LinkTokenIssued, OperationError, validation

ISSUED_KEY = "connect_issued"  # LinkTokenIssued of the last link token
PUBLIC_KEY = "connect_public"  # {"public_token", "user_id", "kind"} from the sandbox widget
RESULT_KEY = "connect_result"  # GrantRow of the last exchange
RESUMED_KEY = "connect_resumed"  # the sandbox's answer to a returning customer's widget run
EXCHANGE_ERROR_KEY = "_connect_exchange_error"  # OperationError of the last exchange
PENDING_KEY = "_connect_record_pending"  # the last exchange's audit record is in the journal

ctx = page_context()


def _exchange() -> None:
    """The Exchange button's callback: runs before the page is drawn, so that the form below
    no longer offers a public token that was just used (a token is exchanged once)."""
    held = st.session_state.get(PUBLIC_KEY)
    pasted = (st.session_state.get("connect_public_token") or "").strip()
    public_token = pasted or (held or {}).get("public_token") or ""
    try:
        with actions.watch_records() as pending:
            row = actions.exchange_public_token(
                ctx.ops, ctx.actor, st.session_state.get("connect_ex_ref") or "", public_token)
    except OperationError as exc:
        st.session_state[EXCHANGE_ERROR_KEY] = exc
        return
    st.session_state[RESULT_KEY] = row
    st.session_state[PENDING_KEY] = bool(pending)
    st.session_state.pop(PUBLIC_KEY, None)
    st.session_state["connect_public_token"] = ""
    ui.toast_done(f"Grant {row.grant_id} stored")


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
                        help=validation.CUSTOMER_REF_HELP)
    returning = st.text_input(
        "Returning customer: grant id (optional)", key="connect_grant",
        help="Resume the session of an existing grant whose token is stored.",
    )
    create = st.form_submit_button("Create link token", type="primary")
if create:
    try:
        with st.spinner("Asking Kryptos for a link token..."):
            issued = actions.create_link_token(ctx.ops, ctx.actor, ref, returning)
        st.session_state[ISSUED_KEY] = issued
        st.session_state["connect_ex_ref"] = issued.customer_ref  # prefill the exchange form
        st.session_state.pop(RESULT_KEY, None)
        st.session_state.pop(RESUMED_KEY, None)
        ui.toast_done("Link token created")
    except OperationError as exc:
        ui.show_error(exc)
current: LinkTokenIssued | None = st.session_state.get(ISSUED_KEY)  # the newest one
if current is not None:
    with st.container(border=True):
        ui.kv("Link token", current.masked)
        ui.kv("For customer", current.customer_ref)
        ui.kv("Expires", current.expires_at.strftime("%Y-%m-%d %H:%M UTC")
              if current.expires_at else None)
        ui.kv("Session", "resumes an existing grant" if current.resumed else "new customer")

# --- sandbox: play the widget ----------------------------------------------------------------
if ctx.runtime.is_sandbox:
    st.subheader("Sandbox: play the widget's part")
    st.caption("As if the customer completed the Connect widget opened with this link token: "
               "a new customer gets a user with wallets and holdings and a public token to "
               "exchange; a returning customer's new integration joins their existing grant.")
    widget_row = st.container(horizontal=True, wrap=True, vertical_alignment="bottom",
                              gap="large")
    kind = widget_row.radio("Customer kind", ["guest", "linked"], horizontal=True,
                            key="connect_kind")
    if widget_row.button("Complete the widget", key="connect_play", disabled=current is None,
                         icon=":material/smart_button:") and current is not None:
        st.session_state.pop(RESUMED_KEY, None)
        try:
            answer = actions.complete_widget(ctx.runtime, current, kind)
        except OperationError as exc:
            ui.show_error(exc)
        else:
            if answer.get("resumed"):
                st.session_state.pop(PUBLIC_KEY, None)
                st.session_state[RESUMED_KEY] = answer
                ui.toast_done("Integration added to the existing grant")
            else:
                st.session_state[PUBLIC_KEY] = answer
                st.session_state.pop(RESULT_KEY, None)
                ui.toast_done("Widget completed; a public token is ready to exchange")
    if current is None:
        st.caption("Create a link token first.")
    resumed = st.session_state.get(RESUMED_KEY)
    if resumed is not None:
        st.success("The customer's new integration was added to their existing grant: no "
                   "public token was issued and no exchange is needed.",
                   icon=":material/check_circle:")
        with st.container(border=True):
            ui.kv("Grant", resumed.get("grant_id"))
            ui.kv("New wallet", resumed.get("wallet_id"))
            ui.kv("Kind", resumed.get("kind") or "unknown")

# --- 2. exchange -----------------------------------------------------------------------------
st.subheader("2. Exchange the public token")
held = st.session_state.get(PUBLIC_KEY)
with st.form("connect_exchange_form"):
    st.text_input("Customer reference", key="connect_ex_ref", help=validation.CUSTOMER_REF_HELP)
    if held is not None:
        ui.kv("Public token from the widget", mask_token(held["public_token"]))
    st.text_input(
        "Public token" + (" (leave empty to use the widget's)" if held is not None else ""),
        type="password", key="connect_public_token",
    )
    st.form_submit_button("Exchange", type="primary", on_click=_exchange)
error = st.session_state.pop(EXCHANGE_ERROR_KEY, None)
if error is not None:
    ui.show_error(error)
row = st.session_state.get(RESULT_KEY)
if row is not None:
    st.success(f"The customer is connected: grant {row.grant_id}, its access token stored in "
               "the vault (shown masked).", icon=":material/check_circle:")
    ui.record_pending_note(st.session_state.get(PENDING_KEY, False))
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

# --- 3. import ------------------------------------------------------------------------------
st.subheader("3. Import tokens your backend already stores")
st.caption(
    "A CSV with a header row grant_id, access_token, customer_ref (optional: workspace_id, "
    "kryptos_user_id, user_kind). Tokens are stored encrypted and never shown. Operators can "
    "do the same with `python -m services.store import-tokens FILE`."
)
upload = st.file_uploader("Tokens CSV", type=["csv"], key="connect_import_file")
if st.button("Import", key="connect_import", disabled=upload is None) and upload is not None:
    try:
        with st.spinner("Importing..."), actions.watch_records() as pending:
            report = actions.import_tokens_csv(ctx.ops, ctx.actor, upload.getvalue())
    except OperationError as exc:
        ui.show_error(exc)
    else:
        ui.record_pending_note(pending)
        message = (f"Added {report.added}, updated {report.updated}, "
                   f"rejected {report.rejected_count}.")
        (st.warning if report.rejected_count else st.success)(message)
        if report.rejected:
            ui.table([{"line": r.line, "grant id": r.grant_id or "", "reason": r.reason}
                      for r in report.rejected])
