"""Early-warning rules: levels, slope rates and resolution, inverse velocity, BRE 251,
lifecycle. All pure: no database, no clock."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from jobs.alerts import (
    AlertCandidate,
    ForecastStatus,
    Level,
    LevelThresholds,
    LifecycleAction,
    Observation,
    SlopeThresholds,
    StructureThresholds,
    accelerations,
    bre251_category,
    evaluate_site,
    evaluate_slope_track,
    evaluate_structure_track,
    growth_rates,
    inverse_velocity_forecast,
    lifecycle_action,
    min_detectable_length_rate_m_per_day,
    min_detectable_opening_rate_mm_per_day,
    site_level,
    slope_resolution_warnings,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)
FINE_PX = 0.0001  # 0.1 mm pixels: resolves every default threshold at 1-day intervals


def day(d: float) -> datetime:
    return T0 + timedelta(days=d)


def obs(d: float, width_mm: float, length_m: float = 1.0, **kw) -> Observation:
    return Observation(surveyed_at=day(d), length_m=length_m, max_width_mm=width_mm, **kw)


def rules(cands: list[AlertCandidate]) -> dict[str, AlertCandidate]:
    return {c.rule: c for c in cands}


# ---------------------------------------------------------------------------------- levels


def test_levels_are_ordered_and_parse():
    assert Level.GREEN < Level.YELLOW < Level.ORANGE < Level.RED
    assert max(Level.YELLOW, Level.RED, Level.GREEN) is Level.RED
    assert Level.parse("Orange") is Level.ORANGE and Level.parse(3) is Level.RED
    assert str(Level.YELLOW) == "yellow" and Level.RED.label == "red"
    with pytest.raises(ValueError, match="unknown alert level"):
        Level.parse("purple")
    with pytest.raises(ValueError):
        Level.parse(7)


def test_site_level_is_the_highest():
    assert site_level([]) is Level.GREEN
    cands = evaluate_site("structure", None, {"a": [obs(0, 6.0)], "b": [obs(0, 2.0)]}, FINE_PX)
    assert site_level(cands) is Level.ORANGE


# ------------------------------------------------------------------------ inverse velocity


def hyperbolic(tf: float, a: float, days: np.ndarray) -> list[float]:
    """Textbook tertiary creep with alpha = 2: v = A / (tf - t), so 1/v = (tf - t) / A."""
    return list(a / (tf - days))


def test_inverse_velocity_exact_without_smoothing():
    days = np.arange(0.0, 21.0)
    f = inverse_velocity_forecast([day(d) for d in days], hyperbolic(30.0, 10.0, days), window=1)
    assert f.status is ForecastStatus.FORECAST
    assert abs((f.failure_time - day(30.0)).total_seconds()) < 1.0
    assert f.r_squared == pytest.approx(1.0, abs=1e-12)
    assert f.n_points == 21
    assert f.days_after_last == pytest.approx(10.0, abs=1e-6)
    assert f.failure_time.tzinfo is not None


def test_inverse_velocity_with_default_smoothing_within_tolerance():
    days = np.arange(0.0, 21.0)
    f = inverse_velocity_forecast([day(d) for d in days], hyperbolic(30.0, 10.0, days))
    assert f.status is ForecastStatus.FORECAST
    # a 3-point moving average of a convex v(t) biases 1/v slightly low: < 0.2 day here
    assert abs((f.failure_time - day(30.0)).total_seconds()) / 86400 < 0.2
    assert f.r_squared > 0.9999
    assert f.n_points == 19  # 21 velocities, 3-point window


def test_forecast_needs_three_accelerating_points():
    # steady, then accelerating over the last two smoothed points only
    v = [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 4.0]
    f = inverse_velocity_forecast([day(d) for d in range(len(v))], v, window=1)
    assert f.status is ForecastStatus.NOT_ACCELERATING  # 2 and 4 rise: two, not three
    assert f.failure_time is None and f.n_points == 0
    assert "2 accelerating observation(s)" in f.message
    # three accelerating observations do give a forecast
    f3 = inverse_velocity_forecast([day(d) for d in range(len(v) + 1)], v + [8.0], window=1)
    assert f3.status is ForecastStatus.FORECAST and f3.n_points == 4  # 1, 2, 4, 8


def test_forecast_insufficient_data():
    v = [1.0, 2.0, 3.0, 4.0, 5.0]
    f = inverse_velocity_forecast([day(d) for d in range(5)], v)
    assert f.status is ForecastStatus.INSUFFICIENT_DATA  # 5 raw -> 3 smoothed: 2 rises max
    assert "needs at least 6" in f.message
    f6 = inverse_velocity_forecast([day(d) for d in range(6)], v + [6.0])
    assert f6.status is not ForecastStatus.INSUFFICIENT_DATA


def test_no_forecast_on_decelerating_series():
    days = np.arange(0.0, 12.0)
    v = list(10.0 / (1.0 + days))  # slowing down
    f = inverse_velocity_forecast([day(d) for d in days], v)
    assert f.status is ForecastStatus.NOT_ACCELERATING
    assert f.failure_time is None


def test_no_forecast_when_zero_crossing_beyond_horizon():
    days = np.arange(0.0, 10.0)
    v = list(1.0 + 1e-6 * days)  # barely accelerating: 1/v hits zero ~1e6 days later
    f = inverse_velocity_forecast([day(d) for d in days], v)
    assert f.status is ForecastStatus.NO_FORECAST
    assert "horizon" in f.message


def test_forecast_validates_inputs():
    with pytest.raises(ValueError, match="strictly increase"):
        inverse_velocity_forecast([day(1), day(0), day(2)], [1, 2, 3])
    with pytest.raises(ValueError, match="timezone"):
        inverse_velocity_forecast([datetime(2024, 1, 1)], [1.0])
    with pytest.raises(ValueError, match="one per time"):
        inverse_velocity_forecast([day(0)], [1.0, 2.0])
    with pytest.raises(ValueError, match="window"):
        inverse_velocity_forecast([day(0)], [1.0], window=0)


def test_forecast_from_crack_widths_in_evaluate_site():
    """Widths integrating v = A/(tf - t): w(t) = w0 - A ln((tf - t)/tf); red once close."""
    tf, a = 20.0, 2.0
    series = [obs(d, 5.0 - a * math.log((tf - d) / tf)) for d in range(0, 17)]
    cands = rules(evaluate_site("slope", None, {7: series}, FINE_PX, site="hill"))
    iv = cands["slope.inverse_velocity"]
    assert iv.level is Level.RED and iv.unit == "days"
    assert iv.forecast.status is ForecastStatus.FORECAST
    assert abs((iv.forecast.failure_time - day(tf)).total_seconds()) / 86400 < 0.3
    assert iv.measured_value == pytest.approx(tf - 16, abs=0.3)
    assert iv.forecast.r_squared > 0.999
    acc = cands["slope.acceleration"]
    assert acc.level is Level.YELLOW and acc.measured_value > 0 and acc.forecast is not None
    assert iv.key == ("hill", 7, "slope.inverse_velocity")
    json.dumps([c.to_dict() for c in cands.values()])  # JSON-ready


# ----------------------------------------------------------------------------- slope rates


@pytest.mark.parametrize(
    ("width_change_mm", "level"),
    [(0.0, Level.GREEN), (0.49, Level.GREEN), (0.5, Level.YELLOW), (1.99, Level.YELLOW),
     (2.0, Level.ORANGE), (9.99, Level.ORANGE), (10.0, Level.RED), (-3.0, Level.GREEN)],
)
def test_opening_rate_levels_at_boundaries(width_change_mm, level):
    series = [obs(0, 20.0), obs(1, 20.0 + width_change_mm)]
    cands = rules(evaluate_slope_track("s", 1, series, SlopeThresholds(), FINE_PX,
                                       include_green=True))
    c = cands["slope.opening_rate"]
    assert c.level is level
    assert c.measured_value == pytest.approx(width_change_mm)
    assert c.unit == "mm/day"
    assert c.threshold == {Level.GREEN: 0.5, Level.YELLOW: 0.5, Level.ORANGE: 2.0,
                           Level.RED: 10.0}[level]
    assert not c.resolution_warnings


@pytest.mark.parametrize(
    ("length_change_m", "level"),
    [(0.04, Level.GREEN), (0.05, Level.YELLOW), (0.2, Level.ORANGE), (1.0, Level.RED)],
)
def test_length_rate_levels_at_boundaries(length_change_m, level):
    # over 2 days: rate = change / 2
    series = [obs(0, 3.0, length_m=2.0), obs(2, 3.0, length_m=2.0 + 2 * length_change_m)]
    c = rules(evaluate_slope_track("s", 1, series, SlopeThresholds(), FINE_PX,
                                   include_green=True))["slope.length_rate"]
    assert c.level is level and c.unit == "m/day"
    assert c.measured_value == pytest.approx(length_change_m)


def test_rates_are_per_day_and_dated_mid_interval():
    times, rates = growth_rates([obs(4, 3.0), obs(0, 1.0), obs(2, 2.0)], "max_width_mm")
    assert rates == [pytest.approx(0.5), pytest.approx(0.5)]
    assert times == [day(1), day(3)]
    acc_t, acc = accelerations([day(0), day(2), day(4)], [1.0, 2.0, 4.0])
    assert acc == [pytest.approx(0.5), pytest.approx(1.0)] and acc_t == [day(1), day(3)]


def test_acceleration_flagged_only_when_positive_over_last_n_intervals():
    th = SlopeThresholds()
    # opening rates 0.1, 0.2, 0.4 mm/day: two positive accelerations
    up = [obs(0, 1.0), obs(1, 1.1), obs(2, 1.3), obs(3, 1.7)]
    acc = rules(evaluate_slope_track("s", 1, up, th, FINE_PX))["slope.acceleration"]
    assert acc.level is Level.YELLOW and acc.unit == "mm/day^2" and acc.threshold == 0.0
    assert acc.forecast.status is ForecastStatus.INSUFFICIENT_DATA
    # rates 0.4, 0.2, 0.4: only the last interval accelerates
    mixed = [obs(0, 1.0), obs(1, 1.4), obs(2, 1.6), obs(3, 2.0)]
    assert "slope.acceleration" not in rules(evaluate_slope_track("s", 1, mixed, th, FINE_PX))
    # closing ever more slowly (-0.4, -0.2, -0.1): positive acceleration, but not opening
    closing = [obs(0, 3.0), obs(1, 2.6), obs(2, 2.4), obs(3, 2.3)]
    assert "slope.acceleration" not in rules(evaluate_slope_track("s", 1, closing, th, FINE_PX))
    # N = 3 needs three positive accelerations
    th3 = SlopeThresholds(acceleration_intervals=3)
    assert "slope.acceleration" not in rules(evaluate_slope_track("s", 1, up, th3, FINE_PX))


def test_single_observation_gives_no_slope_candidates():
    assert evaluate_slope_track("s", 1, [obs(0, 5.0)], SlopeThresholds(), FINE_PX) == []


# ------------------------------------------------------------------------------ resolution


def test_min_detectable_rates():
    assert min_detectable_opening_rate_mm_per_day(0.01, 2.0) == pytest.approx(5.0)
    assert min_detectable_length_rate_m_per_day(0.01, 2.0) == pytest.approx(0.005)
    with pytest.raises(ValueError, match="pixel_size_m"):
        min_detectable_opening_rate_mm_per_day(0.0, 1.0)


def test_thresholds_finer_than_a_pixel_are_flagged_not_silently_used():
    # 1 cm pixels, daily surveys: the imagery resolves ~10 mm/day of opening
    series = [obs(0, 20.0), obs(1, 23.0)]  # 3 mm/day: orange by the thresholds
    cands = evaluate_site("slope", None, {"t1": series}, 0.01, site="hill")
    by_rule = rules(cands)
    c = by_rule["slope.opening_rate"]
    assert c.level is Level.ORANGE  # not lowered: that could hide a real movement ...
    assert c.resolution_flagged  # ... but flagged
    text = " ".join(c.resolution_warnings)
    assert "yellow threshold 0.5 mm/day" in text and "orange threshold 2 mm/day" in text
    assert "red threshold" not in text  # 10 mm/day is resolvable
    assert "smaller than one pixel" in text  # 3 mm change < 10 mm pixel
    site = by_rule["slope.resolution"]
    assert site.track is None and site.level is Level.GREEN
    assert len(site.resolution_warnings) == 2


def test_resolution_warning_survives_an_all_green_site():
    series = [obs(0, 20.0), obs(1, 20.0)]
    cands = evaluate_site("slope", None, {"t1": series}, 0.01)
    assert [c.rule for c in cands] == ["slope.resolution"]
    assert cands[0].resolution_flagged and not cands[0].is_alert


def test_no_resolution_warning_when_imagery_is_fine_enough():
    series = [obs(0, 20.0), obs(1, 23.0)]
    cands = evaluate_site("slope", None, {"t1": series}, FINE_PX)
    assert "slope.resolution" not in rules(cands)
    assert not any(c.resolution_flagged for c in cands)


def test_resolution_uses_the_coarser_pixel_of_the_pair_and_unknown_pixel_warns():
    series = [obs(0, 20.0, pixel_size_m=0.02), obs(1, 23.0, pixel_size_m=0.001)]
    c = rules(evaluate_slope_track("s", 1, series, SlopeThresholds(), FINE_PX))
    assert c["slope.opening_rate"].resolution_flagged  # 2 cm pixel -> 20 mm/day floor
    warns = slope_resolution_warnings(SlopeThresholds(), None, 1.0)
    assert len(warns) == 1 and "pixel size unknown" in warns[0]


# ------------------------------------------------------------------------------- BRE 251


@pytest.mark.parametrize(
    ("width_mm", "category"),
    [(0.0, 0), (0.099, 0), (0.1, 1), (1.0, 1), (1.01, 2), (5.0, 2), (5.01, 3), (15.0, 3),
     (15.01, 4), (25.0, 4), (25.01, 5), (100.0, 5)],
)
def test_bre251_category_boundaries(width_mm, category):
    assert bre251_category(width_mm) == category


def test_bre251_rejects_bad_widths():
    with pytest.raises(ValueError, match=">= 0"):
        bre251_category(-0.5)
    with pytest.raises(ValueError, match="finite"):
        bre251_category(float("nan"))


@pytest.mark.parametrize(
    ("width_mm", "level"),
    [(0.05, Level.GREEN), (1.0, Level.GREEN), (3.0, Level.YELLOW), (10.0, Level.ORANGE),
     (20.0, Level.RED), (30.0, Level.RED)],
)
def test_structure_category_levels(width_mm, level):
    cands = evaluate_structure_track("b", 1, [obs(0, width_mm)], StructureThresholds(),
                                     FINE_PX, include_green=True)
    c = rules(cands)["structure.bre251"]
    assert c.level is level and c.unit == "mm" and "BRE Digest 251" in c.message


def test_structure_growth_raises_one_level_at_least_yellow():
    th = StructureThresholds()  # 1.0 mm growth threshold
    # category 1 (green) widening by exactly 1 mm -> yellow
    c = rules(evaluate_structure_track("b", 1, [obs(0, 0.0), obs(7, 1.0)], th, FINE_PX))
    assert c["structure.width_growth"].level is Level.YELLOW
    assert c["structure.width_growth"].measured_value == pytest.approx(1.0)
    # category 2 (yellow) widening by 1.5 mm -> orange; BRE stays yellow
    c = rules(evaluate_structure_track("b", 1, [obs(0, 2.0), obs(7, 3.5)], th, FINE_PX))
    assert c["structure.width_growth"].level is Level.ORANGE
    assert c["structure.bre251"].level is Level.YELLOW
    # category 5 (red) growing stays red
    c = rules(evaluate_structure_track("b", 1, [obs(0, 30.0), obs(7, 32.0)], th, FINE_PX))
    assert c["structure.width_growth"].level is Level.RED
    # below the growth threshold: nothing
    c = rules(evaluate_structure_track("b", 1, [obs(0, 0.5), obs(7, 1.49)], th, FINE_PX))
    assert "structure.width_growth" not in c


def test_structure_new_cracks():
    site = evaluate_site("structure", None, {}, FINE_PX, new_crack_count=3, site="b")
    c = rules(site)["structure.new_cracks"]
    assert c.level is Level.YELLOW and c.track is None and c.measured_value == 3
    assert evaluate_site("structure", None, {}, FINE_PX, new_crack_count=2) == []
    th = StructureThresholds(new_cracks_max=0)
    assert rules(evaluate_site("structure", th, {}, FINE_PX, new_crack_count=1))


def test_structure_resolution_flags_bre_bounds_below_a_pixel():
    # 5 mm pixels (a drone at altitude): 0.1 and 1 mm bounds and the 1 mm growth threshold
    cands = evaluate_site("structure", None, {"c": [obs(0, 2.0), obs(3, 12.0)]}, 0.005)
    by_rule = rules(cands)
    text = " ".join(by_rule["structure.resolution"].resolution_warnings)
    assert "0.1, 1 mm" in text and "width growth threshold 1 mm" in text
    assert by_rule["structure.bre251"].level is Level.ORANGE
    assert by_rule["structure.bre251"].resolution_flagged


# -------------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize(
    ("open_level", "new", "action"),
    [(None, Level.YELLOW, "raise"), (None, Level.RED, "raise"), (None, Level.GREEN, "none"),
     (Level.YELLOW, Level.YELLOW, "none"), (Level.YELLOW, Level.ORANGE, "escalate"),
     (Level.ORANGE, Level.RED, "escalate"), (Level.RED, Level.ORANGE, "none"),
     (Level.ORANGE, Level.GREEN, "none"), ("yellow", "red", "escalate")],
)
def test_lifecycle(open_level, new, action):
    assert lifecycle_action(open_level, new) == action
    assert isinstance(lifecycle_action(open_level, new), LifecycleAction)


def test_lifecycle_takes_a_candidate_and_nightly_repeat_is_none():
    series = [obs(0, 20.0), obs(1, 23.0)]
    night1 = rules(evaluate_site("slope", None, {1: series}, FINE_PX))["slope.opening_rate"]
    assert lifecycle_action(None, night1) is LifecycleAction.RAISE
    night2 = rules(evaluate_site("slope", None, {1: series}, FINE_PX))["slope.opening_rate"]
    assert night2.key == night1.key
    assert lifecycle_action(night1.level, night2) is LifecycleAction.NONE


# ---------------------------------------------------------------------- configuration, input


def test_thresholds_round_trip_and_validation():
    th = SlopeThresholds(opening_rate_mm_per_day={"yellow": 1, "orange": 3, "red": 9},
                         acceleration_level="orange")
    assert th.opening_rate_mm_per_day == LevelThresholds(1, 3, 9)
    assert SlopeThresholds.from_dict(json.loads(json.dumps(th.to_dict()))) == th
    st = StructureThresholds(width_growth_mm=0.5)
    assert StructureThresholds.from_dict(json.loads(json.dumps(st.to_dict()))) == st
    with pytest.raises(ValueError, match="yellow < orange < red"):
        LevelThresholds(2, 1, 3)
    with pytest.raises(ValueError, match="unknown SlopeThresholds setting"):
        SlopeThresholds.from_dict({"opening_rate": [1, 2, 3]})
    with pytest.raises(ValueError, match="acceleration_intervals"):
        SlopeThresholds(acceleration_intervals=1)
    with pytest.raises(ValueError, match="must not decrease"):
        StructureThresholds(category_levels=("red", "green", "green", "green", "green", "red"))
    with pytest.raises(TypeError, match="StructureThresholds"):
        evaluate_site("structure", SlopeThresholds(), {}, FINE_PX)
    with pytest.raises(ValueError, match="unknown site profile"):
        evaluate_site("bridge", None, {}, FINE_PX)
    # a mapping is read with from_dict
    c = evaluate_site("slope", {"opening_rate_mm_per_day": [1, 3, 9]},
                      {1: [obs(0, 1.0), obs(1, 2.0)]}, FINE_PX)
    assert rules(c)["slope.opening_rate"].level is Level.YELLOW


def test_observation_validation_and_mappings():
    with pytest.raises(ValueError, match="timezone"):
        Observation(datetime(2024, 1, 1), 1.0, 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        obs(0, -1.0)
    with pytest.raises(ValueError, match="two observations"):
        evaluate_site("slope", None, {1: [obs(0, 1.0), obs(0, 2.0)]}, FINE_PX)
    cet = timezone(timedelta(hours=1))
    o = Observation.from_any({"surveyed_at": datetime(2024, 1, 1, 1, tzinfo=cet),
                              "length_m": 1, "max_width_mm": 2, "extra": "ignored"})
    assert o.surveyed_at == datetime(2024, 1, 1, tzinfo=UTC) and o.surveyed_at.tzinfo is UTC
    with pytest.raises(ValueError, match="lacks max_width_mm"):
        Observation.from_any({"surveyed_at": T0, "length_m": 1})


def test_candidates_sorted_highest_first():
    series = {1: [obs(0, 20.0), obs(1, 20.6)], 2: [obs(0, 20.0), obs(1, 35.0)]}
    # confirmation off: with it, one crack at red and one at yellow confirm yellow only
    # (see test_confirmation_* below)
    cands = evaluate_site("slope", {"confirmation": "none"}, series, FINE_PX)
    levels = [c.level for c in cands]
    assert levels == sorted(levels, reverse=True) and levels[0] is Level.RED


def test_rule_table_names_real_threshold_fields_and_every_emitted_rule():
    """The rule table (issue 17): each rule's threshold field exists on its profile's
    thresholds, and every rule id the evaluators emit is in the table with its warnings
    routed by id (a 1 m pixel makes every slope rate threshold unresolvable)."""
    from jobs.alerts import RULES

    for rule in RULES.values():
        cls = SlopeThresholds if rule.profile == "slope" else StructureThresholds
        assert rule.threshold_field in cls.__dataclass_fields__, rule.id
        assert rule.id.startswith(rule.profile + ".")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    obs = [Observation(t0 + timedelta(days=d), length_m=1.0 + d, max_width_mm=1.0 + 2 * d ** 2,
                       pixel_size_m=1.0) for d in range(5)]
    slope = evaluate_slope_track("s", 1, obs, SlopeThresholds(), include_green=True)
    structure = evaluate_structure_track("s", 1, obs, StructureThresholds(), include_green=True)
    emitted = {c.rule for c in slope + structure}
    assert emitted <= set(RULES) and {"slope.opening_rate", "slope.length_rate",
                                      "structure.bre251", "structure.width_growth"} <= emitted
    by_rule = {c.rule: c for c in slope}
    assert by_rule["slope.opening_rate"].resolution_warnings
    assert all(w.startswith("opening rate")
               for w in by_rule["slope.opening_rate"].resolution_warnings if "measured" not in w)
    assert all(w.startswith("length growth rate")
               for w in by_rule["slope.length_rate"].resolution_warnings if "measured" not in w)
