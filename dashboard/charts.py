"""Time-series charts of the dashboard (issue 28, item 4): dates on the axis, a point per
survey, the threshold lines of the rule that fired, and a sentence instead of an empty chart
for one survey."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard.text import md
from geodata.levels import LEVEL_COLOURS


def line_charts(*charts: tuple) -> None:
    """Time-series charts side by side, one column each: ``(caption, frame)`` or
    ``(caption, frame, lines)`` tuples, a frame's index the survey times (UTC), each of its
    columns a line; ``lines`` threshold lines as :func:`time_chart` takes them.

    Dates on the time axis (``YYYY-MM-DD``; a time of day is never the only label), a point
    per survey, and where a series has fewer than two surveys a sentence with its one value
    instead of an empty plot (issue 28, item 4).
    """
    for column, (caption, frame, *rest) in zip(st.columns(len(charts)), charts, strict=True):
        with column:
            st.caption(caption)
            chart = time_chart(frame, caption, rest[0] if rest else None)
            if chart is None:
                st.markdown(one_survey_text(frame))
            else:
                st.altair_chart(chart, width="stretch")


def time_chart(frame: pd.DataFrame, title: str,
               lines: list[dict[str, Any]] | None = None) -> Any | None:
    """An Altair line chart of ``frame`` (index: times; columns: series) with a date axis and
    a point per survey; None when no series has two values (nothing to draw a line from) and
    there are no ``lines`` (one rate against its thresholds is still worth a chart).

    ``lines``: horizontal threshold lines, ``{"level", "value", "label"}`` each (an alert's
    ``chart["lines"]``, :func:`jobs.alerts.chart.rule_chart`), dashed in the level's colour
    and labelled; the y scale takes them in, so a line above the data is still drawn."""
    import altair as alt

    data = frame.copy()
    data.index = pd.to_datetime(data.index, utc=True).tz_convert(None)
    data.index.name = "survey (UTC)"
    long = data.reset_index().melt(id_vars="survey (UTC)", var_name="series",
                                   value_name="value").dropna(subset=["value"])
    if long.empty or (long.groupby("series")["value"].count().max() < 2 and not lines):
        return None  # one value and no threshold to hold it against: a sentence instead
    counts = bool((long["value"] == long["value"].round()).all())
    many_days = (long["survey (UTC)"].max() - long["survey (UTC)"].min()) >= pd.Timedelta(days=2)
    axis = alt.Axis(format="%Y-%m-%d" if many_days else "%Y-%m-%d %H:%M", labelAngle=-30,
                    title="survey date (UTC)")
    enc = {"x": alt.X("survey (UTC):T", axis=axis),
           "y": alt.Y("value:Q", title=title, scale=alt.Scale(zero=False),
                      # counts read as whole numbers (no 1.2 cracks on the axis)
                      axis=alt.Axis(tickMinStep=1, format="d") if counts else alt.Axis()),
           "tooltip": [alt.Tooltip("survey (UTC):T", format="%Y-%m-%d %H:%M"), "series:N",
                       alt.Tooltip("value:Q", format=",.3~f")]}
    if long["series"].nunique() > 1:
        enc["color"] = alt.Color("series:N", title=None)
    chart = alt.Chart(long).mark_line(point=True).encode(**enc)
    if lines:
        rules = pd.DataFrame([{"value": float(x["value"]), "label": str(x["label"]),
                               "colour": LEVEL_COLOURS.get(str(x["level"]), "#888888")}
                              for x in lines])
        base = alt.Chart(rules)
        rule = base.mark_rule(strokeDash=[6, 4], strokeWidth=2).encode(
            y="value:Q", color=alt.Color("colour:N", scale=None),
            tooltip=[alt.Tooltip("label:N", title="threshold")])
        text = base.mark_text(align="left", dx=4, dy=-6, fontSize=11).encode(
            y="value:Q", x=alt.value(0), text="label:N",
            color=alt.Color("colour:N", scale=None))
        chart = alt.layer(chart, rule, text)
    return chart.properties(height=260)


def one_survey_text(frame: pd.DataFrame) -> str:
    """What a chart with fewer than two surveys says instead: each series' one value and its
    date, and that a trend needs a second survey."""
    parts = []
    for name in frame.columns:
        col = frame[name].dropna()
        if len(col):
            when_ = pd.Timestamp(col.index[-1])
            parts.append(f"{md(str(name))}: {col.iloc[-1]:,.3g} on "
                         f"{when_.strftime('%Y-%m-%d')}")
    seen = "; ".join(parts) if parts else "no measurement yet"
    return f"One survey so far ({seen}): the trend appears with the second survey."
