"""The grant's timeline (webhooks and recorded actions) and its history (audit events).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import reads
from dashboard import timeline as timeline_view
from dashboard.charts import grant as grant_chart
from dashboard.context import PageContext
from dashboard.csv_io import screen_frame
from dashboard.ui import show_error
from services.operations import OperationError, Permission, can
from services.operations.history import collapse, describe_event


def history(ctx: PageContext, gid: str) -> None:
    st.subheader("History")
    if not can(ctx.actor, Permission.VIEW_GRANT_HISTORY):
        st.caption("Who did what to this grant is shown to support, finance and admin.")
        return
    try:
        events = reads.grant_history(ctx.ops, ctx.actor, gid)
    except OperationError as exc:
        show_error(exc)
        return
    if not events:
        st.text("No recorded actions on this grant.")
        return
    # One row per change (its request and outcome together), said in words.
    st.dataframe(
        screen_frame(pd.DataFrame([
            {
                "time": e.ts,
                "user": e.actor_username,
                "done": describe_event(e),
                "reason": e.reason or "",
                "ticket": e.ticket or "",
                "request_id": e.request_id or "",
            }
            for e in collapse(events)
        ])),
        hide_index=True,
        key="history_table",
        column_config={
            "time": st.column_config.DatetimeColumn("Time", format="YYYY-MM-DD HH:mm:ss"),
            "user": st.column_config.TextColumn("User"),
            "done": st.column_config.TextColumn("What was done", width="large"),
            "reason": st.column_config.TextColumn("Reason", width="medium"),
            "ticket": st.column_config.TextColumn("Ticket"),
            "request_id": st.column_config.TextColumn("Request id"),
        },
    )
    grant_chart.limit_over_time(ctx, gid)


WRAPPING_ROW_PX = 72  # the grid wraps text in rows taller than 4 rem (64 px)
TIMELINE_COLUMNS = {
    "time": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "source": st.column_config.TextColumn("From"),
    "what": st.column_config.TextColumn("What happened", width="large"),
}


def timeline(ctx: PageContext, gid: str) -> None:
    """What Kryptos reported by webhook and what was done to the grant, newest first (upstream
    text in table cells only)."""
    st.subheader("Timeline")
    try:
        items = reads.timeline(ctx.ops, ctx.actor, gid)
    except OperationError as exc:
        show_error(exc)
        return
    if not reads.timeline_shows_actions(ctx.actor):
        st.caption("Webhooks from Kryptos only: the actions recorded on this grant are shown "
                   "to support, finance and admin.")
    if not items:
        st.text("Nothing yet: no webhook received for this grant and no recorded action.")
        return
    # Rows taller than 4 rem let the grid wrap a long line instead of cutting it.
    st.dataframe(screen_frame(pd.DataFrame(timeline_view.rows(items))), hide_index=True,
                 width="stretch", key="timeline_table", column_config=TIMELINE_COLUMNS,
                 row_height=WRAPPING_ROW_PX)
