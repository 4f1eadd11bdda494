"""Grants: every grant of the company's client from the read model, searched, filtered,
sorted and paged in SQL (the grid shows one page), exportable as CSV on demand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import reads, rm_sections
from dashboard.context import page_context
from dashboard.csv_io import screen_frame
from dashboard.formats import fmt_minute, grant_list_caption
from dashboard.ui import show_error
from services.operations import QUEUES, GrantFilter, OperationError, validation

DETAIL_PAGE = str(Path(__file__).resolve().parent / "grant_detail.py")

STATUS = {"All": None, "Active": "active", "Revoked": "revoked"}
KIND = {"All": None, "Guest": "guest", "Linked": "linked", "Unknown": "unknown"}
TOKEN = {"All": None, "Stored": True, "Not stored": False}
INTEGRATIONS = {"All": None, "Failing": "failing", "Syncing": "syncing", "OK": "ok",
                "None connected": "empty", "Not readable": "unreadable",
                "Not read yet": "never"}
QUEUE = {"All": None, **{rm_sections.QUEUE_LABELS[q]: q for q in QUEUES}}
SORT = {"Created": "created_at", "Grant id": "grant_id", "Customer reference": "customer_ref",
        "Status": "status", "User": "user_kind", "Limit": "transaction_limit",
        "Integrations": "n_integrations", "Failing": "n_failing", "Last sync": "last_sync",
        "Read at": "integrations_refreshed_at"}
PAGE_SIZES = (25, 50, 100, 250, 500)
KIND_LABEL = {"guest": "Guest", "linked": "Linked", None: "unknown"}
FILTER_KEYS = ("grants_search", "grants_status", "grants_kind", "grants_token",
               "grants_integrations", "grants_queue", "grants_limit", "grants_sort",
               "grants_desc", "grants_page_size")


def open_grant(grant_id: str) -> None:
    st.session_state["selected_grant_id"] = grant_id
    st.switch_page(DETAIL_PAGE, query_params={"grant": grant_id})


def _first_page() -> None:
    st.session_state["grants_page"] = 1


def _queue_from_url() -> None:
    """A work-queue link (Overview) opens this page filtered to that queue: applied once
    per link, then the select box rules (and is mirrored in the address)."""
    wanted = st.query_params.get(rm_sections.QUEUE_PARAM)
    if wanted in QUEUES and st.session_state.get(rm_sections.QUEUE_SEEN_KEY) != wanted:
        for key in FILTER_KEYS:
            st.session_state.pop(key, None)
        st.session_state["grants_queue"] = rm_sections.QUEUE_LABELS[wanted]
        st.session_state["grants_status"] = "Active"
        _first_page()
    st.session_state[rm_sections.QUEUE_SEEN_KEY] = wanted


def _limit_options() -> dict[str, Any]:
    options: dict[str, Any] = {"All": None}
    for t in reads.tiers(ctx.ops):
        options[f"Tier {t.name}"] = ("tier", t.name)
    options.update({"Custom limit": ("limit", "custom"), "Limiter off": ("limit", "off"),
                    "Limit unknown": ("limit", "unknown")})
    return options


def _filters() -> tuple[GrantFilter, str, bool, int]:
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    search = c1.text_input("Search", key="grants_search", on_change=_first_page,
                           placeholder="grant id, customer reference or Kryptos user id")
    status = STATUS[c2.selectbox("Status", list(STATUS), key="grants_status",
                                 on_change=_first_page)]
    kind = KIND[c3.selectbox("User", list(KIND), key="grants_kind", on_change=_first_page)]
    has_token = TOKEN[c4.selectbox("Token", list(TOKEN), key="grants_token",
                                   on_change=_first_page)]
    awaiting = st.toggle("Waiting for approval", key="grants_awaiting", on_change=_first_page,
                         help="Only grants a pending four-eyes request holds (Approvals page)")
    c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 1, 1], vertical_alignment="bottom")
    integ = INTEGRATIONS[c1.selectbox("Integrations", list(INTEGRATIONS),
                                      key="grants_integrations", on_change=_first_page)]
    queue = QUEUE[c2.selectbox("Work queue", list(QUEUE), key="grants_queue",
                               on_change=_first_page)]
    limits = _limit_options()
    picked = limits[c3.selectbox("Limit or tier", list(limits), key="grants_limit",
                                 on_change=_first_page)]
    sort = SORT[c4.selectbox("Sort by", list(SORT), key="grants_sort", on_change=_first_page)]
    descending = c5.toggle("Descending", key="grants_desc", on_change=_first_page)
    f = GrantFilter(
        search=(search or "").strip() or None, status=status, kind=kind, has_token=has_token,
        integration_status=integ, queue=queue,
        limit=picked[1] if picked and picked[0] == "limit" else None,
        tier=picked[1] if picked and picked[0] == "tier" else None,
        awaiting_approval=bool(awaiting),
    )
    if queue != st.session_state.get(rm_sections.QUEUE_SEEN_KEY):
        if queue is None:
            st.query_params.pop(rm_sections.QUEUE_PARAM, None)
        else:
            st.query_params[rm_sections.QUEUE_PARAM] = queue
        st.session_state[rm_sections.QUEUE_SEEN_KEY] = queue
    return f, sort, descending, int(st.session_state.get("grants_page_size", 100))


def _frame(rows: Any) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "grant_id": r.grant_id,
                "customer_ref": r.customer_ref or "",
                "user": KIND_LABEL.get(r.user_kind, "unknown"),
                "status": r.status,
                "limit": ("off" if r.limiter_enabled is False else
                          "unknown" if r.transaction_limit is None else
                          f"{r.transaction_limit:,}"),
                "integrations": r.n_integrations,
                "failing": r.n_failing,
                "sync": ("not readable" if r.unreadable else r.sync_state or "not read yet"),
                "last_sync": fmt_minute(r.last_sync) if r.last_sync else "never",
                "workspace": r.workspace_id or "",
                "created": r.created_at,
                "token_stored": r.has_token,
                "token": r.masked_token or "",
            }
            for r in rows
        ],
        columns=["grant_id", "customer_ref", "user", "status", "limit", "integrations",
                 "failing", "sync", "last_sync", "workspace", "created", "token_stored",
                 "token"],
    )


ctx = page_context()

st.title("Grants")
ready = rm_sections.freshness(ctx)

with st.form("open_grant", border=False):
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    typed = c1.text_input("Open a grant by id", key="open_grant_id", placeholder="cgrant_...")
    if c2.form_submit_button("Open"):
        try:
            open_grant(validation.grant_id(typed))
        except OperationError as exc:
            show_error(exc)

_queue_from_url()
filters, sort, descending, page_size = _filters()
page_no = int(st.session_state.get("grants_page", 1))

try:
    found = reads.grant_page(ctx.ops, ctx.actor, filters, sort, page_no, page_size,
                             descending=descending)
    if found.total and page_no > found.pages:  # fewer rows since: show the last page
        page_no = found.pages
        st.session_state["grants_page"] = page_no
        found = reads.grant_page(ctx.ops, ctx.actor, filters, sort, page_no, page_size,
                                 descending=descending)
except OperationError as exc:
    show_error(exc)
    st.stop()

frame = _frame(found.rows)
st.caption(grant_list_caption(found.total, (found.page - 1) * found.page_size + 1, len(frame)))
event = st.dataframe(
    screen_frame(frame),
    key="grants_table",
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    column_config={
        # Not pinned: a pinned column is drawn grey, like a disabled one.
        "grant_id": st.column_config.TextColumn("Grant id"),
        "customer_ref": st.column_config.TextColumn("Customer reference"),
        "user": st.column_config.TextColumn("User", help="Guest, Linked or unknown"),
        "status": st.column_config.TextColumn("Status"),
        "limit": st.column_config.TextColumn("Limit", help="The transaction limit in force"),
        "integrations": st.column_config.NumberColumn("Integrations"),
        "failing": st.column_config.NumberColumn("Failing"),
        "sync": st.column_config.TextColumn("Sync state"),
        "last_sync": st.column_config.TextColumn("Last sync"),
        "workspace": st.column_config.TextColumn("Workspace"),
        "created": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm"),
        "token_stored": st.column_config.CheckboxColumn("Token stored"),
        "token": st.column_config.TextColumn("Token (masked)"),
    },
)

picked = event.selection.rows if event is not None else []
if picked and picked[0] < len(frame):
    open_grant(str(frame.iloc[picked[0]]["grant_id"]))

p1, p2, p3 = st.columns([1, 1, 3], vertical_alignment="bottom")
p1.number_input(f"Page (of {found.pages:,})", min_value=1, max_value=max(1, found.pages),
                step=1, key="grants_page")
p2.selectbox("Rows a page", PAGE_SIZES, index=PAGE_SIZES.index(100), key="grants_page_size",
             on_change=_first_page)

actor, ops = ctx.actor, ctx.ops
with p3:
    st.download_button(
        "Download CSV",
        # Built only when clicked (in its own thread), chunk by chunk from SQL: never on a
        # rerun.
        data=lambda: reads.export_grants_csv(ops, actor, filters, sort, descending=descending),
        file_name="grants.csv",
        mime="text/csv",
        key="grants_csv",
        help=f"All {found.total:,} grant(s) matching the filters, not only this page.",
        disabled=not ready,
    )
