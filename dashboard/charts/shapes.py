"""The two chart shapes every page uses, built in one place so that titles, axes, units,
tooltips, click selection and the empty state look the same everywhere:

- `day_bars`: counts per UTC day stacked by a series (status, outcome, person, tier),
  the time axis covering the whole period;
- `category_bars`: one bar per category (provider, age bucket), a click selects a bar.

`show` draws a chart and returns the field of the bar clicked (if any); `empty` is the
chart's place before there is anything to draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import altair as alt
import streamlit as st

#: The name of every chart's click selection (the selection event's key).
PICK = "pick"


def empty(title: str, text: str, icon: str = ":material/bar_chart:") -> None:
    """What will appear in a chart's place once there are counts."""
    st.markdown(f"**{title}**")
    st.info(text, icon=icon)


def day_bars(values: list[dict[str, Any]], *, series: str, series_title: str,
             y_title: str, title: str, since: date, end: date, colour: alt.Scale,
             pick: str | None = None, order: Sequence[str] | None = None,
             y_format: str = "d", height: int = 300) -> alt.Chart:
    """Bars of `n` per `day` (ISO dates), stacked by `series`, from `since` to `end` (the
    day after the last, so its bar shows whole). `pick`: the field a click selects;
    `order`: the stacking order of the series (the first at the bottom)."""
    tooltip = [alt.Tooltip("day:T", title="Day", timeUnit="utcyearmonthdate"),
               alt.Tooltip(f"{series}:N", title=series_title),
               alt.Tooltip("n:Q", title=y_title, format=",")]
    encoding: dict[str, Any] = {
        "x": alt.X("day:T", title="Day (UTC)", timeUnit="utcyearmonthdate",
                   scale=alt.Scale(domain=[since.isoformat(), end.isoformat()])),
        "y": alt.Y("n:Q", title=y_title, stack=True,
                   axis=alt.Axis(format=y_format, tickMinStep=1)),
        "color": alt.Color(f"{series}:N", title=series_title, scale=colour,
                           # Four to a row: at half a laptop's screen a single row
                           # of seven outcomes was cut after the fifth.
                           legend=alt.Legend(orient="bottom", columns=4)),
        "tooltip": tooltip,
    }
    chart = alt.Chart(alt.Data(values=values), title=title)
    if order is not None:
        chart = chart.transform_calculate(rank=f"indexof({list(order)!r}, datum.{series})")
        encoding["order"] = alt.Order("rank:Q")
    if pick is not None:
        sel = alt.selection_point(name=PICK, fields=[pick], on="click")
        encoding["opacity"] = alt.condition(sel, alt.value(1.0), alt.value(0.55))
        chart = chart.add_params(sel)
    return (chart.mark_bar(cursor="pointer" if pick is not None else "default")
            .encode(**encoding).properties(height=height))


def category_bars(values: list[dict[str, Any]], *, x: str, x_title: str, y_title: str,
                  title: str, colour: str, sort: list[str] | None = None,
                  angle: int = 0) -> alt.Chart:
    """One bar of `n` per `x` (most first unless `sort` gives the order); a click selects
    the bar's `x`."""
    sel = alt.selection_point(name=PICK, fields=[x], on="click")
    return (alt.Chart(alt.Data(values=values), title=title)
            .mark_bar(color=colour, cursor="pointer")
            .encode(x=alt.X(f"{x}:N", title=x_title, sort=sort or "-y",
                            axis=alt.Axis(labelAngle=angle, labelLimit=140)),
                    y=alt.Y("n:Q", title=y_title, axis=alt.Axis(format="~s", tickMinStep=1)),
                    opacity=alt.condition(sel, alt.value(1.0), alt.value(0.55)),
                    tooltip=[alt.Tooltip(f"{x}:N", title=x_title),
                             alt.Tooltip("n:Q", title=y_title, format=",")])
            .add_params(sel).properties(height=300))


def picked(event: Any, field: str) -> Any:
    """The `field` of the bar clicked in a chart's selection event, if any."""
    chosen = ((event or {}).get("selection") or {}).get(PICK) or []
    return chosen[0].get(field) if chosen else None


def show(chart: alt.Chart, key: str, field: str) -> Any:
    """Draw `chart` (its click reruns the page) and return the clicked bar's `field`."""
    event = st.altair_chart(chart, width="stretch", on_select="rerun", key=key,
                            selection_mode=PICK)
    return picked(event, field)
