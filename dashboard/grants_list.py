"""The Grants page's filters, table and pager: the filter widgets as the read model's
`GrantFilter`, a work-queue link from the Overview, and the table rows in words."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import streamlit as st

from dashboard import reads, rm_sections
from dashboard.context import PageContext
from dashboard.formats import fmt_minute, grant_list_caption
from services.operations import QUEUES, GrantFilter, GrantPage, Queue, RmGrant, validation

DETAIL_PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "grant_detail.py")

# Label shown -> the GrantFilter value (None: no filter).
STATUS: dict[str, Literal["active", "revoked"] | None] = {
    "All": None, "Active": "active", "Revoked": "revoked"}
KIND: dict[str, Literal["guest", "linked", "unknown"] | None] = {
    "All": None, "Guest": "guest", "Linked": "linked", "Unknown": "unknown"}
TOKEN = {"All": None, "Stored": True, "Not stored": False}
INTEGRATIONS: dict[str, Literal["failing", "syncing", "ok", "empty", "unreadable", "never"]
                   | None] = {
    "All": None, "Failing": "failing", "Syncing": "syncing", "OK": "ok",
    "None connected": "empty", "Not readable": "unreadable", "Not read yet": "never"}
QUEUE: dict[str, Queue | None] = {
    "All": None, **{rm_sections.QUEUE_LABELS[q]: q for q in QUEUES}}
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
    """Open the Grant detail page on this grant."""
    st.session_state["selected_grant_id"] = grant_id
    st.switch_page(DETAIL_PAGE, query_params={"grant": grant_id})


def first_page() -> None:
    st.session_state["grants_page"] = 1


def queue_from_url() -> None:
    """A work-queue link (Overview) opens this page filtered to that queue: applied once
    per link, then the select box rules (and is mirrored in the address)."""
    wanted = st.query_params.get(rm_sections.QUEUE_PARAM)
    if wanted in QUEUES and st.session_state.get(rm_sections.QUEUE_SEEN_KEY) != wanted:
        for key in FILTER_KEYS:
            st.session_state.pop(key, None)
        st.session_state["grants_queue"] = rm_sections.QUEUE_LABELS[wanted]
        st.session_state["grants_status"] = "Active"
        first_page()
    st.session_state[rm_sections.QUEUE_SEEN_KEY] = wanted


def _limit_options(ctx: PageContext) -> dict[str, Any]:
    options: dict[str, Any] = {"All": None}
    for t in reads.tiers(ctx.ops):
        options[f"Tier {t.name}"] = ("tier", t.name)
    options.update({"Custom limit": ("limit", "custom"), "Limiter off": ("limit", "off"),
                    "Limit unknown": ("limit", "unknown")})
    return options


def filters(ctx: PageContext) -> tuple[GrantFilter, str, bool, int]:
    """The filter widgets, as the read model's filter, the sort, its direction and the page
    size; a changed work queue is mirrored in the address."""
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    search = c1.text_input("Search", key="grants_search", on_change=first_page,
                           placeholder="grant id, customer reference or Kryptos user id")
    status = STATUS[c2.selectbox("Status", list(STATUS), key="grants_status",
                                 on_change=first_page)]
    kind = KIND[c3.selectbox("User", list(KIND), key="grants_kind", on_change=first_page)]
    has_token = TOKEN[c4.selectbox("Token", list(TOKEN), key="grants_token",
                                   on_change=first_page)]
    awaiting = st.toggle("Waiting for approval", key="grants_awaiting", on_change=first_page,
                         help="Only grants a pending four-eyes request holds (Approvals page)")
    c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 1, 1], vertical_alignment="bottom")
    integ = INTEGRATIONS[c1.selectbox("Integrations", list(INTEGRATIONS),
                                      key="grants_integrations", on_change=first_page)]
    queue = QUEUE[c2.selectbox("Work queue", list(QUEUE), key="grants_queue",
                               on_change=first_page)]
    limits = _limit_options(ctx)
    picked = limits[c3.selectbox("Limit or tier", list(limits), key="grants_limit",
                                 on_change=first_page)]
    sort = SORT[c4.selectbox("Sort by", list(SORT), key="grants_sort", on_change=first_page)]
    descending = c5.toggle("Descending", key="grants_desc", on_change=first_page)
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


def frame(rows: Iterable[RmGrant]) -> pd.DataFrame:
    """One table row per grant, in words (limit, sync state, last sync)."""
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


def read_page(ctx: PageContext, filters: GrantFilter, sort: str, page_size: int, *,
              descending: bool) -> GrantPage:
    """The page of grants the pager asks for: the next, previous or last page by keyset
    from the page shown last (`reads.PagePosition`, kept in the session), a jump by page
    number; the last page when there are fewer rows since (the pager is moved there)."""
    page_no = int(st.session_state.get("grants_page", 1))
    listing = (filters, sort, descending, page_size)
    cursor = reads.page_cursor(st.session_state.get("grants_shown"), listing, page_no)
    found = reads.grant_page(ctx.ops, ctx.actor, filters, sort, page_no, page_size,
                             descending=descending, cursor=cursor)
    if found.total_exact and found.total and page_no > found.pages:
        found = reads.grant_page(ctx.ops, ctx.actor, filters, sort, found.pages, page_size,
                                 descending=descending)
    if found.page != page_no:  # fewer rows since, or a keyset page that reached an end
        st.session_state["grants_page"] = found.page
    st.session_state["grants_shown"] = reads.PagePosition.of(found, listing)
    return found


def matched(found: GrantPage) -> str:
    """How many grants match: "more than 10,000" past the count's cap."""
    return f"{found.total:,}" if found.total_exact else f"more than {found.total:,}"


def shown(found: GrantPage, rows: int) -> str:
    """Which rows of how many the table shows (`formats.grant_list_caption`); past the
    count's cap the total reads "more than 10,000"."""
    return grant_list_caption(found.total, (found.page - 1) * found.page_size + 1, rows,
                              exact=found.total_exact)


COLUMNS = {
    # Not pinned: a pinned column is drawn grey, like a disabled one.
    "grant_id": st.column_config.TextColumn("Grant id"),
    "customer_ref": st.column_config.TextColumn("Customer reference"),
    "user": st.column_config.TextColumn("User", help="Guest, Linked or unknown"),
    "status": st.column_config.TextColumn("Status"),
    "limit": st.column_config.TextColumn(
        "Limit", help="The transaction limit in force. " + validation.LIMIT_UNIT_HELP),
    "integrations": st.column_config.NumberColumn("Integrations"),
    "failing": st.column_config.NumberColumn("Failing"),
    "sync": st.column_config.TextColumn("Sync state"),
    "last_sync": st.column_config.TextColumn("Last sync"),
    "workspace": st.column_config.TextColumn("Workspace"),
    "created": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm"),
    "token_stored": st.column_config.CheckboxColumn("Token stored"),
    "token": st.column_config.TextColumn("Token (masked)"),
}
