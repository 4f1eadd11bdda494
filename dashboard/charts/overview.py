"""The Overview's charts: grants by status over the last 90 days, failing integrations by
provider, the age of the console's copy, approvals waiting by age. A click on a bar opens
the Grants page filtered to that status or work queue, or the Approvals page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from dashboard import ui
from dashboard.charts import palette, shapes
from dashboard.context import PageContext
from dashboard.grants_list import open_status
from dashboard.navigation import APPROVALS_PAGE
from dashboard.reads import charts as reads
from dashboard.rm_sections import open_queue
from services.operations import Actor, OperationError, Operations
from services.operations.charts import Buckets
from services.store.daily_counts import NEVER_READ

ROOT = Path(__file__).resolve().parents[2]


def grants_by_status(ctx: PageContext) -> None:
    series = reads.grants_by_status(ctx.ops, ctx.actor)
    if not series.points:
        shapes.empty("Grants by status, last 90 days",
                     "Grants per status per day appear here once the sync worker has counted "
                     "them (after each full sync, once a day at least).", ":material/insights:")
        return
    st.caption(f"Active grants now: {series.latest('active'):,} · revoked: "
               f"{series.latest('revoked'):,} (UTC days {series.since} to {series.until}). "
               "Click a bar to open the Grants page filtered to its status.")
    chart = shapes.day_bars(
        [{"day": p.day.isoformat(), "status": p.key, "n": p.n} for p in series.points],
        series="status", series_title="Status", y_title="Grants",
        title="Grants per day by status", since=series.since, end=series.end,
        colour=palette.scale(palette.STATUS), pick="status", y_format="~s")
    status = shapes.show(chart, "chart_status", "status")
    if status:
        open_status(str(status))


def _buckets(read: Callable[[Operations, Actor], Buckets], key: str, *, title: str,
             empty: str, icon: str, caption: Callable[[Buckets], str], x: str, x_title: str,
             y_title: str, colour: str, ordered: bool = True, angle: int = 0,
             most: int | None = None,
             on_pick: Callable[[str], None]) -> Callable[[PageContext], None]:
    """A chart of the buckets (label, n) `read` returns: its empty state, a caption from
    `caption(buckets)`, bars (in the buckets' order when `ordered`, else most first) and
    `on_pick(label)` on a click; `key`: the chart's widget key."""
    def draw(ctx: PageContext) -> None:
        data = read(ctx.ops, ctx.actor)
        if not data.total:
            shapes.empty(title, empty, icon)
            return
        st.caption(caption(data))
        buckets = data.buckets[:most] if most else data.buckets
        chart = shapes.category_bars(
            [{x: b.label, "n": b.n} for b in buckets], x=x, x_title=x_title,
            y_title=y_title, title=title, colour=colour, angle=angle,
            sort=[b.label for b in buckets] if ordered else None)
        label = shapes.show(chart, key, x)
        if label:
            on_pick(str(label))
    return draw


def _never_read(data: Buckets) -> int:
    return next((b.n for b in data.buckets if b.label == NEVER_READ), 0)


def _open_never_read(label: str) -> None:
    if label == NEVER_READ:
        open_queue("never_synced")


failing_by_provider = _buckets(
    reads.failing_by_provider, "chart_failing", title="Failing integrations per provider",
    empty="No integration is failing. Providers with failed or partly synced integrations "
          "appear here.", icon=":material/check_circle:",
    caption=lambda d: (f"{d.total:,} failing integration(s); most at {d.buckets[0].label} "
                       f"({d.buckets[0].n:,}). Click a bar to open the failing grants."),
    x="provider", x_title="Provider", y_title="Failing integrations", colour=palette.WARN,
    ordered=False, angle=-35, most=20, on_pick=lambda _label: open_queue("failing"))

freshness = _buckets(
    reads.freshness_buckets, "chart_fresh",
    title="Active grants by age of their integrations' copy",
    empty="Active grants with a stored token appear here by the age of the console's copy "
          "of their integrations.", icon=":material/schedule:",
    caption=lambda d: (f"{d.buckets[0].n:,} of {d.total:,} active grants read in the last "
                       f"15 minutes; {_never_read(d):,} never read. Click “never read” to "
                       "open them."),
    x="age", x_title="Age of the copy", y_title="Active grants", colour=palette.BUCKET,
    on_pick=_open_never_read)

approvals_by_age = _buckets(
    reads.approvals_by_age, "chart_approvals", title="Requests waiting by age",
    empty="No change is waiting for a second person. Requests waiting for approval appear "
          "here by how long they have waited.", icon=":material/approval:",
    caption=lambda d: (f"{d.total:,} request(s) waiting; {d.buckets[-1].n:,} for over a "
                       "day. Click a bar to open the Approvals page."),
    x="waiting", x_title="Waiting for", y_title="Requests", colour=palette.ORANGE,
    on_pick=lambda _label: st.switch_page(str(ROOT / APPROVALS_PAGE.path)))


def overview_charts(ctx: PageContext) -> None:
    """The four charts; a read that fails shows its error in its place."""
    st.subheader("Trends")
    # One a row: two side by side leave too little room at 800 px.
    for draw in (grants_by_status, failing_by_provider, freshness, approvals_by_age):
        try:
            draw(ctx)
        except OperationError as exc:
            ui.show_error(exc)
