"""Dashboard time charts (issue 28, item 4): dates on the axis, a point per survey, and a
sentence instead of an empty chart for one survey."""

import pandas as pd

from dashboard.charts import one_survey_text, time_chart


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
