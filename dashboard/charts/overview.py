"""The Overview's charts: grants by status over the last 90 days, failing integrations by
provider, the age of the console's copy, approvals waiting by age. A click on a bar opens
the Grants page filtered to the matching work queue, or the Approvals page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import streamlit as st

from dashboard import ui
from dashboard.charts import palette
from dashboard.context import PageContext
from dashboard.navigation import APPROVALS_PAGE
from dashboard.reads import charts as reads
from dashboard.rm_sections import GRANTS_PAGE, open_queue
from services.operations import OperationError
from services.store.daily_counts import NEVER_READ

PICK = "pick"
ROOT = Path(__file__).resolve().parents[2]


def _picked(event: Any, field: str) -> str | None:
    """The `field` of the bar clicked in a chart's selection event, if any."""
    chosen = (event or {}).get("selection", {}).get(PICK) or []
    return chosen[0].get(field) if chosen else None


def _bars(values: list[dict[str, Any]], *, x: str, x_title: str, y_title: str, title: str,
          colour: str, sort: list[str] | None = None, angle: int = 0) -> alt.Chart:
    pick = alt.selection_point(name=PICK, fields=[x], on="click")
    return (alt.Chart(alt.Data(values=values), title=title)
            .mark_bar(color=colour, cursor="pointer")
            .encode(x=alt.X(f"{x}:N", title=x_title, sort=sort or "-y",
                            axis=alt.Axis(labelAngle=angle, labelLimit=140)),
                    y=alt.Y("n:Q", title=y_title, axis=alt.Axis(format="~s", tickMinStep=1)),
                    opacity=alt.condition(pick, alt.value(1.0), alt.value(0.55)),
                    tooltip=[alt.Tooltip(f"{x}:N", title=x_title),
                             alt.Tooltip("n:Q", title=y_title, format=",")])
            .add_params(pick).properties(height=300))


def grants_by_status(ctx: PageContext) -> None:
    series = reads.grants_by_status(ctx.ops, ctx.actor)
    if not series.points:
        st.markdown("**Grants by status, last 90 days**")
        st.info("Grants per status per day appear here once the sync worker has counted "
                "them (after each full sync, once a day at least).", icon=":material/insights:")
        return
    st.caption(f"Active grants now: {series.latest('active'):,} · revoked: "
               f"{series.latest('revoked'):,} (UTC days {series.since} to {series.until}). "
               "Click a day to open the Grants page.")
    values = [{"day": p.day.isoformat(), "status": p.key, "n": p.n} for p in series.points]
    pick = alt.selection_point(name=PICK, fields=["status"], on="click")
    chart = (alt.Chart(alt.Data(values=values), title="Grants per day by status")
             .mark_bar(cursor="pointer")
             .encode(x=alt.X("day:T", title="Day (UTC)", timeUnit="utcyearmonthdate",
                             scale=alt.Scale(domain=[series.since.isoformat(),
                                                     series.end.isoformat()])),
                     y=alt.Y("n:Q", title="Grants", stack=True,
                             axis=alt.Axis(format="~s", tickMinStep=1)),
                     color=alt.Color("status:N", title="Status",
                                     scale=palette.scale(palette.STATUS),
                                     legend=alt.Legend(orient="bottom")),
                     tooltip=[alt.Tooltip("day:T", title="Day", timeUnit="utcyearmonthdate"),
                              alt.Tooltip("status:N", title="Status"),
                              alt.Tooltip("n:Q", title="Grants", format=",")])
             .add_params(pick).properties(height=300))
    event = st.altair_chart(chart, width="stretch", on_select="rerun",
                            key="chart_status", selection_mode=PICK)
    if _picked(event, "status"):
        st.switch_page(GRANTS_PAGE)


def failing_by_provider(ctx: PageContext) -> None:
    data = reads.failing_by_provider(ctx.ops, ctx.actor)
    if not data.buckets:
        st.markdown("**Failing integrations by provider**")
        st.info("No integration is failing. Providers with failed or partly synced "
                "integrations appear here.", icon=":material/check_circle:")
        return
    top = data.buckets[0]
    st.caption(f"{data.total:,} failing integration(s); most at {top.label} ({top.n:,}). "
               "Click a bar to open the failing grants.")
    chart = _bars([{"provider": b.label, "n": b.n} for b in data.buckets[:20]],
                  x="provider", x_title="Provider", y_title="Failing integrations",
                  title="Failing integrations per provider", colour=palette.WARN,
                  angle=-35)
    event = st.altair_chart(chart, width="stretch", on_select="rerun",
                            key="chart_failing", selection_mode=PICK)
    if _picked(event, "provider"):
        open_queue("failing")


def freshness(ctx: PageContext) -> None:
    data = reads.freshness_buckets(ctx.ops, ctx.actor)
    if not data.total:
        st.markdown("**How fresh the console's copy is**")
        st.info("Active grants with a stored token appear here by the age of the console's "
                "copy of their integrations.", icon=":material/schedule:")
        return
    fresh = data.buckets[0].n
    never = next((b.n for b in data.buckets if b.label == NEVER_READ), 0)
    st.caption(f"{fresh:,} of {data.total:,} active grants read in the last 15 minutes; "
               f"{never:,} never read. Click “never read” to open them.")
    chart = _bars([{"age": b.label, "n": b.n} for b in data.buckets], x="age",
                  x_title="Age of the copy", y_title="Active grants",
                  title="Active grants by age of their integrations' copy",
                  colour=palette.BUCKET, sort=[b.label for b in data.buckets])
    event = st.altair_chart(chart, width="stretch", on_select="rerun",
                            key="chart_fresh", selection_mode=PICK)
    if _picked(event, "age") == NEVER_READ:
        open_queue("never_synced")


def approvals_by_age(ctx: PageContext) -> None:
    data = reads.approvals_by_age(ctx.ops, ctx.actor)
    if not data.total:
        st.markdown("**Approvals waiting, by age**")
        st.info("No change is waiting for a second person. Requests waiting for approval "
                "appear here by how long they have waited.", icon=":material/approval:")
        return
    old = data.buckets[-1].n
    st.caption(f"{data.total:,} request(s) waiting; {old:,} for over a day. Click a bar to "
               "open the Approvals page.")
    chart = _bars([{"waiting": b.label, "n": b.n} for b in data.buckets], x="waiting",
                  x_title="Waiting for", y_title="Requests", title="Requests waiting by age",
                  colour=palette.ORANGE, sort=[b.label for b in data.buckets])
    event = st.altair_chart(chart, width="stretch", on_select="rerun",
                            key="chart_approvals", selection_mode=PICK)
    if _picked(event, "waiting"):
        st.switch_page(str(ROOT / APPROVALS_PAGE.path))


def overview_charts(ctx: PageContext) -> None:
    """The four charts; a read that fails shows its error in its place."""
    st.subheader("Trends")
    # One a row: two side by side leave too little room at 800 px.
    for draw in (grants_by_status, failing_by_provider, freshness, approvals_by_age):
        try:
            draw(ctx)
        except OperationError as exc:
            ui.show_error(exc)
