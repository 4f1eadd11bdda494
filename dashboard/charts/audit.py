"""The Audit log's chart: events per day by outcome over the last 30 days, failures and
refusals in colours that stand out. Clicking a day sets the page's date filters to it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import altair as alt
import streamlit as st

from dashboard.charts import palette
from dashboard.context import PageContext
from dashboard.reads import charts as reads
from services.operations import Permission, can

PICK = "pick"
KEY = "chart_audit_days"


def _filter_to_day(since_key: str, until_key: str, on_change: object) -> None:
    """on_select: the clicked day becomes the From and To filters (before the widgets run)."""
    event = st.session_state.get(KEY) or {}
    chosen = (event.get("selection") or {}).get(PICK) or []
    if not chosen or chosen[0].get("day") is None:
        return
    raw = chosen[0]["day"]
    # A temporal field comes back as epoch milliseconds.
    day = (datetime.fromtimestamp(raw / 1000, UTC).date() if isinstance(raw, int | float)
           else date.fromisoformat(str(raw)[:10]))
    st.session_state[since_key] = day
    st.session_state[until_key] = day
    if callable(on_change):
        on_change()


def events_by_outcome(ctx: PageContext, *, since_key: str, until_key: str,
                      on_change: object = None) -> None:
    """The chart, or what will appear there; a click on a day filters the table below.
    Nothing for a reader without the audit permission (the page's own read refuses)."""
    if not can(ctx.actor, Permission.READ_AUDIT):
        return
    series = reads.audit_by_outcome(ctx.ops, ctx.actor)
    if not series.points:
        st.info("Events per day by outcome appear here once the console records actions "
                "(logins, changes, exports).", icon=":material/bar_chart:")
        return
    bad = series.sum_of("failed") + series.sum_of("denied")
    st.caption(f"{series.total:,} event(s) from {series.since} to {series.until} (UTC); "
               f"{bad:,} failed or refused. Click a day to show only its events.")
    values = [{"day": p.day.isoformat(), "outcome": p.key, "n": p.n} for p in series.points]
    pick = alt.selection_point(name=PICK, fields=["day"], on="click")
    order = list(palette.OUTCOME)
    chart = (alt.Chart(alt.Data(values=values), title="Audit events per day by outcome")
             .transform_calculate(rank=f"indexof({order!r}, datum.outcome)")
             .mark_bar(cursor="pointer")
             .encode(x=alt.X("day:T", title="Day (UTC)", timeUnit="utcyearmonthdate",
                             scale=alt.Scale(domain=[series.since.isoformat(),
                                                     series.end.isoformat()])),
                     y=alt.Y("n:Q", title="Events", stack=True,
                             axis=alt.Axis(format="d", tickMinStep=1)),
                     color=alt.Color("outcome:N", title="Outcome",
                                     scale=palette.scale(palette.OUTCOME),
                                     legend=alt.Legend(orient="bottom")),
                     order=alt.Order("rank:Q"),
                     opacity=alt.condition(pick, alt.value(1.0), alt.value(0.5)),
                     tooltip=[alt.Tooltip("day:T", title="Day", timeUnit="utcyearmonthdate"),
                              alt.Tooltip("outcome:N", title="Outcome"),
                              alt.Tooltip("n:Q", title="Events", format=",")])
             .add_params(pick).properties(height=360))
    st.altair_chart(chart, width="stretch", on_select=lambda: _filter_to_day(
        since_key, until_key, on_change), key=KEY, selection_mode=PICK)
