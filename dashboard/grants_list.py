"""The Grants page's filters, table and pager: the filter widgets as the read model's
`GrantFilter`, kept in the address (a shareable link; a reload, a work-queue link or a
search box answer sets them) and restored when the page is entered without any, and the
table rows in words."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import streamlit as st

from dashboard import reads, rm_sections
from dashboard.context import PageContext
from dashboard.formats import fmt_minute, grant_list_caption
from services.operations import (
    QUEUES,
    GrantFilter,
    GrantLookup,
    GrantPage,
    Queue,
    RmGrant,
    validation,
)

DETAIL_PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "grant_detail.py")
GRANTS_PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "grants.py")

# Label shown -> the GrantFilter value (None: no filter).
#: The filter boxes' width in pixels: "Customer reference" fits.
BOX_WIDTH = 190
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
#: Widget key -> its name in the address (the Grants page's filters are shareable links).
PARAMS = {"grants_search": "q", "grants_status": "status", "grants_kind": "user",
          "grants_token": "token", "grants_awaiting": "waiting",
          "grants_integrations": "integrations", "grants_queue": "queue",
          "grants_limit": "limit", "grants_sort": "sort", "grants_desc": "desc",
          "grants_page_size": "size", "grants_page": "page"}
#: Exact filters a search box answer sets (no widget: shown as a note with "clear filters").
EXACT = {"customer_ref": "ref", "kryptos_user_id": "user_id", "workspace_id": "workspace"}
EXACT_LABEL = {"customer_ref": "customer reference", "kryptos_user_id": "Kryptos user id",
               "workspace_id": "workspace"}
EXACT_KEY = "grants_exact"
#: The address last applied to (or written from) the widgets, and the filters to restore
#: when the page is entered without any (Back from a grant, the sidebar link).
APPLIED_KEY = "grants_address"
KEPT_KEY = "grants_kept"
DEFAULT_PAGE_SIZE = 100
_CODES: dict[str, dict[str, Any]] = {
    "grants_status": STATUS, "grants_kind": KIND, "grants_integrations": INTEGRATIONS,
    "grants_queue": QUEUE, "grants_sort": SORT,
}
_TOKEN_CODES = {"All": None, "Stored": "stored", "Not stored": "not_stored"}
#: Each filter widget's value when no filter is set. Set, not deleted: a widget whose state
#: is deleted takes back the value its browser still shows.
DEFAULTS: dict[str, Any] = {
    "grants_search": "", "grants_status": "All", "grants_kind": "All", "grants_token": "All",
    "grants_awaiting": False, "grants_integrations": "All", "grants_queue": "All",
    "grants_limit": "All", "grants_sort": "Created", "grants_desc": False,
    "grants_page_size": DEFAULT_PAGE_SIZE, "grants_page": 1,
}


def open_grant(grant_id: str) -> None:
    """Open the Grant detail page on this grant."""
    st.session_state["selected_grant_id"] = grant_id
    st.switch_page(DETAIL_PAGE, query_params={"grant": grant_id})


#: The grant ids of the rows the grid shows (one page), in order, and the one a click chose.
SHOWN_KEY = "grants_shown_ids"
PICKED_KEY = "grants_picked"


def remember_shown(grant_ids: list[str]) -> None:
    """The ids of the rows drawn in the grid, so that a click on a row opens its grant
    without the page (its query and its grid) being run and drawn again first."""
    st.session_state[SHOWN_KEY] = tuple(grant_ids)


def picked_row() -> None:
    """The grid's selection callback (it runs before the script): notes the grant of the
    clicked row for `open_picked`."""
    state = st.session_state.get("grants_table")
    try:
        rows = state["selection"]["rows"] if state is not None else []
    except (KeyError, TypeError):
        rows = []
    shown = st.session_state.get(SHOWN_KEY, ())
    if rows and 0 <= rows[0] < len(shown):
        st.session_state[PICKED_KEY] = shown[rows[0]]


def open_picked() -> None:
    """First thing of the page's run: a row clicked in the grid opens its grant at once."""
    picked = st.session_state.pop(PICKED_KEY, None)
    if isinstance(picked, str):
        open_grant(picked)


def show_lookup(found: GrantLookup) -> None:
    """A search box's answer: open the grant, or the Grants page filtered to it (through
    the address, so the list is a link too)."""
    if found.grant_id is not None:
        open_grant(found.grant_id)
    params = {EXACT[k] if k in EXACT else PARAMS["grants_search"]: v
              for k, v in found.filters().items()}
    st.switch_page(GRANTS_PAGE, query_params=params)


def open_status(status: str) -> None:
    """Open the Grants page filtered to one status (`active`, `revoked`)."""
    if status not in STATUS.values():
        raise ValueError(f"no such status {status!r}")
    st.switch_page(GRANTS_PAGE, query_params={PARAMS["grants_status"]: status})


def first_page() -> None:
    st.session_state["grants_page"] = 1


def _limit_code(picked: Any) -> str | None:
    if not picked:
        return None
    kind, value = picked
    return f"tier:{value}" if kind == "tier" else str(value)


def _limit_options(ctx: PageContext) -> dict[str, Any]:
    options: dict[str, Any] = {"All": None}
    for t in reads.tiers(ctx.ops):
        options[f"Tier {t.name}"] = ("tier", t.name)
    options.update({"Custom limit": ("limit", "custom"), "Limiter off": ("limit", "off"),
                    "Limit unknown": ("limit", "unknown")})
    return options


def _address() -> dict[str, str]:
    """The Grants page's filters in the address now (ours only)."""
    names = set(PARAMS.values()) | set(EXACT.values())
    return {k: str(st.query_params[k]) for k in st.query_params if k in names}


def _to_widgets(params: dict[str, str], limits: dict[str, Any]) -> None:
    """Every filter back to its default, then the address's values (unknown ones ignored)."""
    st.session_state.update(DEFAULTS)
    st.session_state[EXACT_KEY] = next(
        ((field, params[name]) for field, name in EXACT.items() if params.get(name)), None)
    for key, name in PARAMS.items():
        raw = params.get(name)
        if raw is None or raw == "":
            continue
        if key == "grants_search":
            st.session_state[key] = raw[:320]
        elif key in _CODES:
            label = next((lb for lb, code in _CODES[key].items() if code == raw), None)
            if label is not None:
                st.session_state[key] = label
        elif key == "grants_token":
            label = next((lb for lb, code in _TOKEN_CODES.items() if code == raw), None)
            if label is not None:
                st.session_state[key] = label
        elif key == "grants_limit":
            label = next((lb for lb, v in limits.items() if _limit_code(v) == raw), None)
            if label is not None:
                st.session_state[key] = label
        elif key in ("grants_awaiting", "grants_desc"):
            st.session_state[key] = raw == "1"
        elif key == "grants_page_size" and raw.isdigit() and int(raw) in PAGE_SIZES:
            st.session_state[key] = int(raw)
        elif key == "grants_page" and raw.isdigit() and int(raw) >= 1:
            st.session_state[key] = int(raw)


def _from_widgets(limits: dict[str, Any]) -> dict[str, str]:
    """The filters set now (defaults left out), as the address holds them."""
    ss = st.session_state
    out: dict[str, str] = {}
    search = (ss.get("grants_search") or "").strip()
    if search:
        out["q"] = search
    for key, codes in _CODES.items():
        code = codes.get(ss.get(key, "All"))
        if code is not None and not (key == "grants_sort" and code == "created_at"):
            out[PARAMS[key]] = code
    token = _TOKEN_CODES.get(ss.get("grants_token", "All"))
    if token:
        out["token"] = token
    limit = _limit_code(limits.get(ss.get("grants_limit", "All")))
    if limit:
        out["limit"] = limit
    if ss.get("grants_awaiting"):
        out["waiting"] = "1"
    if ss.get("grants_desc"):
        out["desc"] = "1"
    if int(ss.get("grants_page_size", DEFAULT_PAGE_SIZE)) != DEFAULT_PAGE_SIZE:
        out["size"] = str(ss["grants_page_size"])
    if int(ss.get("grants_page", 1)) > 1:
        out["page"] = str(ss["grants_page"])
    exact = ss.get(EXACT_KEY)
    if exact:
        out[EXACT[exact[0]]] = exact[1]
    return out


def address_to_filters(ctx: PageContext) -> None:
    """Before the widgets: the address rules. Its filters are applied when it changed since
    this page last wrote it (a shared link, a reload, a work-queue link, a search box, the
    browser's Back), and when the page is entered with none the last filters come back."""
    limits = _limit_options(ctx)
    asked = _address()
    entering = "grants_search" not in st.session_state
    if entering and not asked and st.session_state.get(KEPT_KEY):
        asked = dict(st.session_state[KEPT_KEY])
    if entering or asked != st.session_state.get(APPLIED_KEY):
        _to_widgets(asked, limits)
        st.session_state[APPLIED_KEY] = asked
    st.session_state.setdefault("grants_page_size", DEFAULT_PAGE_SIZE)


def filters_to_address(ctx: PageContext) -> None:
    """After the widgets: the filters in force written to the address (replacing it, so a
    copied link opens this same list) and kept for the next visit."""
    now = _from_widgets(_limit_options(ctx))
    if now != _address():
        st.query_params.from_dict(now)
    st.session_state[APPLIED_KEY] = now
    st.session_state[KEPT_KEY] = now


def clear_filters() -> None:
    """The "Clear filters" button's callback: every filter and the address back to none."""
    st.session_state.update(DEFAULTS)
    st.session_state[EXACT_KEY] = None
    st.session_state[APPLIED_KEY] = {}
    st.session_state[KEPT_KEY] = {}
    st.query_params.clear()


def any_filter(ctx: PageContext) -> bool:
    """Whether any filter (not the sort, page or page size) narrows the list."""
    now = _from_widgets(_limit_options(ctx))
    return any(k not in ("sort", "desc", "size", "page") for k in now)


def filters(ctx: PageContext) -> tuple[GrantFilter, str, bool, int]:
    """The filter widgets, as the read model's filter, the sort, its direction and the page
    size."""
    # One row that wraps (fixed-width boxes in a horizontal container): at a laptop's full
    # screen the filters take three lines and the grid starts within the first screen; at
    # half of it a box goes to the next line rather than being cut to "Creat" or "Desc…".
    row = st.container(horizontal=True, wrap=True, vertical_alignment="bottom")
    search = row.text_input("Search", key="grants_search", on_change=first_page, width=320,
                            placeholder="grant id, customer reference or Kryptos user id")
    status = STATUS[row.selectbox("Status", list(STATUS), key="grants_status",
                                  on_change=first_page, width=BOX_WIDTH)]
    kind = KIND[row.selectbox("User", list(KIND), key="grants_kind", on_change=first_page,
                              width=BOX_WIDTH)]
    has_token = TOKEN[row.selectbox("Token", list(TOKEN), key="grants_token",
                                    on_change=first_page, width=BOX_WIDTH)]
    integ = INTEGRATIONS[row.selectbox("Integrations", list(INTEGRATIONS),
                                       key="grants_integrations", on_change=first_page,
                                       width=BOX_WIDTH)]
    queue = QUEUE[row.selectbox("Work queue", list(QUEUE), key="grants_queue",
                                on_change=first_page, width=BOX_WIDTH)]
    limits = _limit_options(ctx)
    picked = limits[row.selectbox("Limit or tier", list(limits), key="grants_limit",
                                  on_change=first_page, width=BOX_WIDTH)]
    awaiting = row.toggle("Waiting for approval", key="grants_awaiting", on_change=first_page,
                          help="Only grants a pending four-eyes request holds (Approvals "
                               "page)")
    sort = SORT[row.selectbox("Sort by", list(SORT), key="grants_sort", on_change=first_page,
                              width=BOX_WIDTH)]
    descending = row.toggle("Descending", key="grants_desc", on_change=first_page)
    exact = st.session_state.get(EXACT_KEY)
    f = GrantFilter(
        search=(search or "").strip() or None, status=status, kind=kind, has_token=has_token,
        integration_status=integ, queue=queue,
        limit=picked[1] if picked and picked[0] == "limit" else None,
        tier=picked[1] if picked and picked[0] == "tier" else None,
        awaiting_approval=bool(awaiting),
        **({exact[0]: exact[1]} if exact else {}),
    )
    if exact:
        row.caption(f"Only the grants whose {EXACT_LABEL[exact[0]]} is “{exact[1]}”.",
                    width="content")
    row.button("Clear filters", key="grants_clear", on_click=clear_filters,
               disabled=not any_filter(ctx), icon=":material/filter_alt_off:")
    return f, sort, descending, int(st.session_state.get("grants_page_size",
                                                         DEFAULT_PAGE_SIZE))


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
