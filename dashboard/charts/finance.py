"""Guest limits page: where the Guests are (per tier, custom limits, limiter off) and the
limit changes made per day over the last 90 days, by person or by kind of change."""

from __future__ import annotations

import streamlit as st

from dashboard import ui
from dashboard.charts import palette, shapes
from dashboard.context import PageContext
from dashboard.reads import charts as reads
from services.operations import OperationError, Permission, can

TIER_WORDS = {"custom": "custom limit", "off": "limiter off", "": "unknown"}
CHANGE_WORDS = {"guest.tier.apply": "tier applied", "guest.limit.update": "custom limit set"}
#: A limit change's tier: its name, or (for '') a custom limit.
TIER_CHANGE_WORDS = {"": "custom limit"}
BY = {"actor_username": "person", "action": "kind of change", "tier": "tier"}


def guests_by_tier(ctx: PageContext) -> None:
    day, data = reads.guests_by_tier(ctx.ops, ctx.actor)
    if not data.total:
        st.markdown("**Active Guests by tier**")
        st.info("Active Guests per tier (and custom limits, limiter off) appear here once "
                "the sync worker has counted them.", icon=":material/bar_chart:")
        return
    top = data.buckets[0]
    st.caption(f"{data.total:,} active Guest(s) counted on {day}; most on "
               f"{TIER_WORDS.get(top.label, top.label)} ({top.n:,}).")
    values = [{"tier": TIER_WORDS.get(b.label, b.label), "n": b.n} for b in data.buckets]
    shapes.draw({
        "title": "Active Guests per tier",
        "data": {"values": values},
        "mark": {"type": "bar", "color": palette.BLUE},
        "height": 120 + 40 * len(values),
        "encoding": {
            "y": shapes.field("tier", "nominal", "Tier", sort="-x", axis={"labelLimit": 160}),
            "x": shapes.field("n", "quantitative", "Guests",
                              axis={"format": "~s", "tickMinStep": 1}),
            "tooltip": [shapes.field("tier", "nominal", "Tier"),
                        shapes.field("n", "quantitative", "Guests", format=",")],
        },
    })


def limit_changes(ctx: PageContext) -> None:
    st.markdown("**Limit changes per day, last 90 days**")
    by = st.radio("Split by", list(BY), format_func=BY.get, horizontal=True,
                  key="chart_limit_by")
    series = reads.limit_changes(ctx.ops, ctx.actor, by)
    if not series.points:
        st.info("Limit changes made from the console (one per grant, bulk runs included) "
                "appear here per day.", icon=":material/bar_chart:")
        return
    words = CHANGE_WORDS if by == "action" else TIER_CHANGE_WORDS if by == "tier" else {}
    values = [{"day": p.day.isoformat(), "who": words.get(p.key, p.key), "n": p.n}
              for p in series.points]
    st.caption(f"{series.total:,} grant limit(s) changed from {series.since} to "
               f"{series.until} (UTC).")
    chart = shapes.day_bars(values, series="who", series_title=BY[by].capitalize(),
                            y_title="Grants changed", title="Grant limits changed per day",
                            since=series.since, end=series.end,
                            colour={"range": palette.CATEGORIES}, height=360)
    shapes.draw(chart)


def largest_changes(ctx: PageContext) -> None:
    rows = reads.largest_limit_changes(ctx.ops, ctx.actor)
    st.markdown("**Largest limit changes, last 30 days**")
    if not rows:
        st.info("The grant limit changes that moved a limit the most in the last 30 days "
                "appear here, each opening its grant.", icon=":material/list:")
        return
    top = rows[0]
    st.caption(f"Largest: {top.before:,} → {top.after:,} on {top.grant_id} by {top.by}. "
               "Open a grant from its link.")
    st.dataframe(
        [{"grant": f"/grant_detail?grant={r.grant_id}", "when": r.at, "by": r.by,
          "kind": CHANGE_WORDS.get(r.action, r.action), "before": r.before, "after": r.after,
          "change": r.after - r.before} for r in rows],
        hide_index=True, key="chart_largest_changes",
        column_config={
            "grant": st.column_config.LinkColumn("Grant", display_text=r"grant=(.*)$"),
            "when": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm"),
            "by": st.column_config.TextColumn("Changed by"),
            "kind": st.column_config.TextColumn("Kind"),
            "before": st.column_config.NumberColumn("Before", format="localized"),
            "after": st.column_config.NumberColumn("After", format="localized"),
            "change": st.column_config.NumberColumn("Change", format="localized"),
        })


def finance_section(ctx: PageContext) -> None:
    """Both charts, one under the other, in an expander (the page's work is below)."""
    with st.expander("Where the Guests are", expanded=True, icon=":material/insights:"):
        try:
            guests_by_tier(ctx)
        except OperationError as exc:
            ui.show_error(exc)
        if not can(ctx.actor, Permission.VIEW_GRANT_HISTORY):
            st.caption("Who changed limits is shown to support, finance and admin.")
            return
        try:
            limit_changes(ctx)
            largest_changes(ctx)
        except OperationError as exc:
            ui.show_error(exc)
