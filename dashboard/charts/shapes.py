"""The two chart shapes every page uses, built in one place so that titles, axes, units,
tooltips, click selection and the empty state look the same everywhere:

- `day_bars`: counts per UTC day stacked by a series (status, outcome, person, tier),
  the time axis covering the whole period;
- `category_bars`: one bar per category (provider, age bucket), a click selects a bar.

`show` draws a chart and returns the field of the bar clicked (if any), `draw` one that
is not clicked; `empty` is the chart's place before there is anything to draw. Charts are
Vega-Lite specifications as plain data (`Spec`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]  # no stubs; one call
import streamlit as st

#: A Vega-Lite specification, built as plain data: Altair's objects validate every
#: constructor and the whole chart again when drawn (tens of ms of CPU a chart, most of
#: an Overview run), and nothing here needs more than the specification itself.
Spec = dict[str, Any]

#: The name of every chart's click selection (the selection event's key).
PICK = "pick"


def field(name: str, kind: str, title: str, **more: Any) -> Spec:
    """An encoding channel (or tooltip entry): `kind` is Vega-Lite's type (nominal,
    quantitative, temporal)."""
    return {"field": name, "type": kind, "title": title, **more}


def empty(title: str, text: str, icon: str = ":material/bar_chart:") -> None:
    """What will appear in a chart's place once there are counts."""
    st.markdown(f"**{title}**")
    st.info(text, icon=icon)


def _pick(spec: Spec, on: str) -> Spec:
    """`spec` with a click selection of the field `on` (PICK): the bars not picked fade."""
    spec["params"] = [{"name": PICK, "select": {"type": "point", "fields": [on],
                                                "on": "click"}}]
    spec["encoding"]["opacity"] = {"condition": {"param": PICK, "value": 1.0}, "value": 0.55}
    return spec


def day_bars(values: list[dict[str, Any]], *, series: str, series_title: str,
             y_title: str, title: str, since: date, end: date, colour: Spec,
             pick: str | None = None, order: Sequence[str] | None = None,
             y_format: str = "d", height: int = 300) -> Spec:
    """Bars of `n` per `day` (ISO dates), stacked by `series`, from `since` to `end` (the
    day after the last, so its bar shows whole). `colour`: the series' scale
    (`palette.scale`); `pick`: the field a click selects; `order`: the stacking order of the
    series (the first at the bottom)."""
    day = {"timeUnit": "utcyearmonthdate"}
    spec: Spec = {
        "title": title,
        "data": {"values": values},
        "mark": {"type": "bar", "cursor": "pointer" if pick is not None else "default"},
        "height": height,
        "encoding": {
            "x": field("day", "temporal", "Day (UTC)", **day,
                       scale={"domain": [since.isoformat(), end.isoformat()]}),
            "y": field("n", "quantitative", y_title, stack=True,
                       axis={"format": y_format, "tickMinStep": 1}),
            # Four to a row: at half a laptop's screen a single row of seven outcomes was
            # cut after the fifth.
            "color": field(series, "nominal", series_title, scale=colour,
                           legend={"orient": "bottom", "columns": 4}),
            "tooltip": [field("day", "temporal", "Day", **day),
                        field(series, "nominal", series_title),
                        field("n", "quantitative", y_title, format=",")],
        },
    }
    if order is not None:
        spec["transform"] = [{"calculate": f"indexof({list(order)!r}, datum.{series})",
                              "as": "rank"}]
        spec["encoding"]["order"] = {"field": "rank", "type": "quantitative"}
    return _pick(spec, pick) if pick is not None else spec


def category_bars(values: list[dict[str, Any]], *, x: str, x_title: str, y_title: str,
                  title: str, colour: str, sort: list[str] | None = None,
                  angle: int = 0) -> Spec:
    """One bar of `n` per `x` (most first unless `sort` gives the order); a click selects
    the bar's `x`."""
    return _pick({
        "title": title,
        "data": {"values": values},
        "mark": {"type": "bar", "color": colour, "cursor": "pointer"},
        "height": 300,
        "encoding": {
            "x": field(x, "nominal", x_title, sort=sort or "-y",
                       axis={"labelAngle": angle, "labelLimit": 140}),
            "y": field("n", "quantitative", y_title, axis={"format": "~s", "tickMinStep": 1}),
            "tooltip": [field(x, "nominal", x_title),
                        field("n", "quantitative", y_title, format=",")],
        },
    }, x)


def draw(spec: Spec, **kwargs: Any) -> Any:
    """Draw `spec` as wide as its column (`kwargs`: st.vega_lite_chart's `data` and
    selection arguments). Inline values go to the browser as an Arrow table built straight
    from the rows, as Streamlit sends every chart's data: through a pandas frame (what
    Streamlit does with them otherwise) it costs several times the CPU."""
    inline = spec.get("data")
    if isinstance(inline, dict) and "values" in inline and "data" not in kwargs:
        spec = {k: v for k, v in spec.items() if k != "data"}
        kwargs["data"] = pa.Table.from_pylist(inline["values"])
    return st.vega_lite_chart(spec=spec, width="stretch", **kwargs)


def picked(event: Any, name: str) -> Any:
    """The `name` of the bar clicked in a chart's selection event, if any."""
    chosen = ((event or {}).get("selection") or {}).get(PICK) or []
    return chosen[0].get(name) if chosen else None


def show(chart: Spec, key: str, on: str) -> Any:
    """Draw `chart` (its click reruns the page) and return the clicked bar's `on` field."""
    event = draw(chart, on_select="rerun", key=key, selection_mode=PICK)
    return picked(event, on)
