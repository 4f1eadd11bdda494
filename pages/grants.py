"""Grants: every grant of the company's client, searchable, filterable, exportable."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import reads
from dashboard.context import page_context
from dashboard.csv_io import csv_safe_frame
from dashboard.ui import show_error
from services.operations import OperationError, validation

DETAIL_PAGE = str(Path(__file__).resolve().parent / "grant_detail.py")

STATUS = {"All": None, "Active": "active", "Revoked": "revoked"}
KIND = {"All": None, "Guest": "guest", "Linked": "linked", "Unknown": "unknown"}
TOKEN = {"All": None, "Stored": True, "Not stored": False}
KIND_LABEL = {"guest": "Guest", "linked": "Linked", None: "unknown"}


def open_grant(grant_id: str) -> None:
    st.session_state["selected_grant_id"] = grant_id
    st.switch_page(DETAIL_PAGE, query_params={"grant": grant_id})


ctx = page_context()

st.title("Grants")

with st.form("open_grant", border=False):
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    typed = c1.text_input("Open a grant by id", key="open_grant_id", placeholder="cgrant_...")
    if c2.form_submit_button("Open"):
        try:
            open_grant(validation.grant_id(typed))
        except OperationError as exc:
            show_error(exc)

c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
search = c1.text_input(
    "Search", key="grants_search", placeholder="grant id, customer reference or workspace"
)
status = STATUS[c2.selectbox("Status", list(STATUS), key="grants_status")]
kind = KIND[c3.selectbox("User", list(KIND), key="grants_kind")]
has_token = TOKEN[c4.selectbox("Token", list(TOKEN), key="grants_token")]

try:
    with st.spinner("Reading grants..."):
        rows = reads.list_grants(
            ctx.ops, ctx.actor, search=search, status=status, kind=kind, has_token=has_token
        )
except OperationError as exc:
    show_error(exc)
    st.stop()

frame = pd.DataFrame(
    [
        {
            "grant_id": r.grant_id,
            "customer_ref": r.customer_ref or "",
            "user": KIND_LABEL.get(r.user_kind, "unknown"),
            "status": r.status,
            "workspace": r.workspace_id or "",
            "scopes": r.scopes,
            "created": r.created_at,
            "expires": r.expires_at,
            "token_stored": r.has_token,
            "token": r.masked_token or "",
        }
        for r in rows
    ],
    columns=[
        "grant_id", "customer_ref", "user", "status", "workspace", "scopes", "created",
        "expires", "token_stored", "token",
    ],
)

st.caption(f"{len(frame)} grant(s). Choose a row to open its detail.")
event = st.dataframe(
    csv_safe_frame(frame),
    key="grants_table",
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    column_config={
        "grant_id": st.column_config.TextColumn("Grant id", pinned=True),
        "customer_ref": st.column_config.TextColumn("Customer reference"),
        "user": st.column_config.TextColumn("User", help="Guest, Linked or unknown"),
        "status": st.column_config.TextColumn("Status"),
        "workspace": st.column_config.TextColumn("Workspace"),
        "scopes": st.column_config.TextColumn("Scopes", width="medium"),
        "created": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm"),
        "expires": st.column_config.DatetimeColumn("Expires", format="YYYY-MM-DD HH:mm"),
        "token_stored": st.column_config.CheckboxColumn("Token stored"),
        "token": st.column_config.TextColumn("Token (masked)"),
    },
)

picked = event.selection.rows if event is not None else []
if picked:
    open_grant(str(frame.iloc[picked[0]]["grant_id"]))

st.download_button(
    "Download CSV",
    data=csv_safe_frame(frame).to_csv(index=False),
    file_name="grants.csv",
    mime="text/csv",
    key="grants_csv",
)
