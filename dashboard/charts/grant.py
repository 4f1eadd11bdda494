"""Grant detail: a Guest's limit over time, a step line from its recorded changes, who made
each change on hover. A change to no cap draws as a gap at the top (marked "no cap")."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard.charts import palette, shapes
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
    f = shapes.field
    tooltip = [f("at", "temporal", "From (UTC)", format="%Y-%m-%d %H:%M"),
               f("shown", "nominal", "Limit"), f("by", "nominal", "Changed by"),
               f("action", "nominal", "Action")]
    at = {"field": "at", "type": "temporal"}
    shapes.draw({
        "title": "Transaction limit after each change",
        "height": 220,
        "data": {"values": values},
        "layer": [
            {"mark": {"type": "line", "interpolate": "step-after", "color": palette.BLUE},
             "encoding": {"x": f("at", "temporal", "Time (UTC)"),
                          "y": f("limit", "quantitative", "Limit (transactions)")}},
            {"mark": {"type": "point", "filled": True, "size": 70, "color": palette.BLUE},
             "encoding": {"x": at, "y": {"field": "limit", "type": "quantitative"},
                          "tooltip": tooltip}},
            # A change to no cap has no height: marked at the top of the chart.
            {"transform": [{"filter": "datum.limit === null"}],
             "mark": {"type": "text", "text": "no cap", "color": palette.VERMILION, "dy": -6,
                      "baseline": "top"},
             "encoding": {"x": at, "y": {"value": 0}, "tooltip": tooltip}},
        ],
    })
