"""Dashboard time charts (issue 28, item 4): dates on the axis, a point per survey, and a
sentence instead of an empty chart for one survey."""

import pandas as pd

from dashboard.charts import one_survey_text, time_chart
from geodata.levels import LEVEL_COLOURS


def _frame(times, values):
    return pd.DataFrame({"max_width_mm": values},
                        index=pd.DatetimeIndex(pd.to_datetime(times, utc=True),
                                               name="acquired_at"))


def test_surveys_days_apart_get_a_date_axis_and_points():
    spec = time_chart(_frame(["2026-06-01 06:00", "2026-06-15 18:00", "2026-07-01 06:00"],
                             [0.8, 0.84, 0.9]), "Max width (mm)").to_dict()
    assert spec["mark"] == {"type": "line", "point": True}
    assert spec["encoding"]["x"]["axis"]["format"] == "%Y-%m-%d"
    assert spec["encoding"]["x"]["type"] == "temporal"
    assert spec["encoding"]["y"]["scale"] == {"zero": False}


def test_surveys_within_a_day_keep_the_date_beside_the_time():
    spec = time_chart(_frame(["2026-06-01 06:00", "2026-06-01 18:00"], [1.0, 2.0]),
                      "Length (m)").to_dict()
    assert spec["encoding"]["x"]["axis"]["format"] == "%Y-%m-%d %H:%M"


def test_one_survey_is_a_sentence_not_an_empty_chart():
    one = _frame(["2026-06-01 06:00"], [0.84])
    assert time_chart(one, "Max width (mm)") is None
    text = one_survey_text(one)
    assert "0.84 on 2026-06-01" in text and "second survey" in text
    assert time_chart(_frame(["2026-06-01", "2026-06-02"], [None, 1.0]), "x") is None


def test_a_count_series_has_whole_number_ticks():
    spec = time_chart(pd.DataFrame({"crack_count": [1, 1, 2]}, index=pd.DatetimeIndex(
        pd.to_datetime(["2026-06-01", "2026-06-02", "2026-06-03"], utc=True))),
        "Cracks per survey").to_dict()
    assert spec["encoding"]["y"]["axis"] == {"format": "d", "tickMinStep": 1}


def test_threshold_lines_are_drawn_dashed_in_their_level_colour():
    from jobs.alerts.chart import rule_chart

    chart = rule_chart("slope", None, "slope.opening_rate")
    spec = time_chart(_frame(["2026-06-01", "2026-06-15", "2026-07-01"], [0.1, 0.3, 2.4]),
                      chart["title"], chart["lines"]).to_dict()
    rule = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "rule")
    data = spec["datasets"][rule["data"]["name"]]
    assert [(d["value"], d["colour"]) for d in data] == [
        (0.5, LEVEL_COLOURS["yellow"]), (2.0, LEVEL_COLOURS["orange"]),
        (10.0, LEVEL_COLOURS["red"])]
    assert rule["mark"]["strokeDash"] == [6, 4]
    assert any(layer["mark"]["type"] == "text" for layer in spec["layer"])
    assert "yellow 0.5 mm/day" in [d["label"] for d in data]


def test_rule_chart_of_a_structure_site_draws_the_bre251_bounds():
    from jobs.alerts.chart import rule_chart

    chart = rule_chart("structure", {"category_levels": [
        "green", "yellow", "yellow", "orange", "red", "red"]}, "structure.bre251")
    assert chart["series"] == "max_width_mm"
    assert [(x["level"], x["value"]) for x in chart["lines"]] == [
        ("yellow", 0.1), ("orange", 5.0), ("red", 15.0)]
    assert rule_chart("slope", None, "slope.new_cracks") is None
