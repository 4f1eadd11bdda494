"""Grant detail: a Guest's limit over time, a step line from its recorded changes, who made
each change on hover. A change to no cap draws as a gap at the top (marked "no cap")."""

from __future__ import annotations

from datetime import UTC, datetime

import altair as alt
import streamlit as st

from dashboard.charts import palette
from dashboard.context import PageContext
from dashboard.reads import charts as reads
from services.operations import OperationError, Permission, can


def limit_over_time(ctx: PageContext, gid: str) -> None:
    """The chart under the grant's history (readers of the history only)."""
    if not can(ctx.actor, Permission.VIEW_GRANT_HISTORY):
        return
    try:
        steps = reads.limit_history(ctx.ops, ctx.actor, gid)
    except OperationError as exc:
        st.caption(f"The limit over time could not be read: {exc.user_message}")
        return
    if not steps:
        st.markdown("**Transaction limit over time**")
        st.info("Each change of this Guest's limit made from the console appears here as a "
                "step, with who made it.", icon=":material/show_chart:")
        return
    now = datetime.now(UTC)
    values = [{"at": s.at.isoformat(), "limit": s.limit.cap, "shown": s.limit.label(),
               "by": s.by, "action": s.action} for s in steps]
    last = steps[-1]
    values.append({"at": now.isoformat(), "limit": last.limit.cap, "shown": last.limit.label(),
                   "by": last.by, "action": "in force now"})
    st.caption(f"{len(steps)} change(s); now {last.limit.words()}, set by {last.by} on "
               f"{last.at:%Y-%m-%d %H:%M} UTC.")
    base = alt.Chart(alt.Data(values=values))
    tooltip = [alt.Tooltip("at:T", title="From (UTC)", format="%Y-%m-%d %H:%M"),
               alt.Tooltip("shown:N", title="Limit"), alt.Tooltip("by:N", title="Changed by"),
               alt.Tooltip("action:N", title="Action")]
    line = base.mark_line(interpolate="step-after", color=palette.BLUE).encode(
        x=alt.X("at:T", title="Time (UTC)"),
        y=alt.Y("limit:Q", title="Limit (transactions)"))
    points = base.mark_point(filled=True, size=70, color=palette.BLUE).encode(
        x="at:T", y=alt.Y("limit:Q"), tooltip=tooltip)
    no_cap = (base.transform_filter("datum.limit === null")
              .mark_text(text="no cap", color=palette.VERMILION, dy=-6, baseline="top")
              .encode(x="at:T", y=alt.value(0), tooltip=tooltip))
    chart = alt.layer(line, points, no_cap).properties(
        title="Transaction limit after each change", height=220)
    st.altair_chart(chart, width="stretch")
