"""The Audit log's chart: events per day by outcome over the last 30 days, failures and
refusals in colours that stand out. Clicking a day sets the page's date filters to it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import streamlit as st

from dashboard.charts import palette, shapes
from dashboard.context import PageContext
from dashboard.reads import charts as reads
from services.operations import Permission, can

KEY = "chart_audit_days"


def _filter_to_day(since_key: str, until_key: str, on_change: object) -> None:
    """on_select: the clicked day becomes the From and To filters (before the widgets run)."""
    event = st.session_state.get(KEY) or {}
    raw = shapes.picked(event, "day")
    if raw is None:
        return
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
        shapes.empty("Audit events per day by outcome",
                     "Events per day by outcome appear here once the console records actions "
                     "(logins, changes, exports).")
        return
    bad = series.sum_of("failed") + series.sum_of("denied")
    st.caption(f"{series.total:,} event(s) from {series.since} to {series.until} (UTC); "
               f"{bad:,} failed or refused. Click a day to show only its events.")
    values = [{"day": p.day.isoformat(), "outcome": p.key, "n": p.n} for p in series.points]
    chart = shapes.day_bars(values, series="outcome", series_title="Outcome",
                            y_title="Events", title="Audit events per day by outcome",
                            since=series.since, end=series.end,
                            colour=palette.scale(palette.OUTCOME), pick="day",
                            order=list(palette.OUTCOME), height=360)
    shapes.draw(chart, on_select=lambda: _filter_to_day(since_key, until_key, on_change),
                key=KEY, selection_mode=shapes.PICK)
