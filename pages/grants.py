"""Grants: every grant of the company's client from the read model, searched, filtered,
sorted and paged in SQL (the grid shows one page), exportable as CSV on demand.

Filters (kept in the address), rows and pager: `dashboard.grants_list`."""

from __future__ import annotations

import streamlit as st

from dashboard import grants_list, reads, rm_sections
from dashboard.context import page_context
from dashboard.csv_io import screen_frame
from dashboard.ui import show_error
from services.operations import OperationError

ctx = page_context()
grants_list.open_picked()  # a row clicked: its grant, without drawing this page again

st.title("Grants")
ready = rm_sections.freshness(ctx)

with st.form("open_grant", border=False):
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    typed = c1.text_input(
        "Open a grant by id", key="open_grant_id",
        placeholder="grant id, customer reference or Kryptos user id",
        help="An exact id or reference opens its grant (or lists the grants sharing it); "
             "anything else searches the list.")
    if c2.form_submit_button("Open"):
        try:
            grants_list.show_lookup(reads.find_grant(ctx.ops, ctx.actor, typed))
        except OperationError as exc:
            show_error(exc)

grants_list.address_to_filters(ctx)
filters, sort, descending, page_size = grants_list.filters(ctx)

try:
    found = grants_list.read_page(ctx, filters, sort, page_size, descending=descending)
except OperationError as exc:
    show_error(exc)
    st.stop()

frame = grants_list.frame(found.rows)
st.caption(grants_list.shown(found, len(frame)))
event = st.dataframe(
    screen_frame(frame),
    key="grants_table",
    hide_index=True,
    on_select=grants_list.picked_row,
    selection_mode="single-row",
    column_config=grants_list.COLUMNS,
)
grants_list.remember_shown([r.grant_id for r in found.rows])  # the grid's rows, in order

picked = event.selection.rows if event is not None else []
if picked and picked[0] < len(frame):
    grants_list.open_grant(str(frame.iloc[picked[0]]["grant_id"]))

p1, p2, p3 = st.columns([1, 1, 3], vertical_alignment="bottom")
p1.number_input(f"Page (of {found.pages:,})" if found.total_exact else "Page", min_value=1,
                max_value=max(1, found.pages) if found.total_exact else None,
                step=1, key="grants_page")
p2.selectbox("Rows a page", grants_list.PAGE_SIZES, key="grants_page_size",
             on_change=grants_list.first_page)
grants_list.filters_to_address(ctx)

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
        help=f"All {grants_list.matched(found)} grant(s) matching the filters, not only "
             "this page.",
        disabled=not ready,
    )
