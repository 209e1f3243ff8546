"""False-alarm control for slopes (jobs.alerts.confirm_slope_candidates): a growth-rate
exceedance needs confirmation by the same crack in 2 consecutive surveys, or by 2 cracks in
one survey (after Intrieri et al. 2012); an unconfirmed one is a watch candidate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from jobs.alerts import (
    CONFIRMED_RULES,
    Confirmation,
    Level,
    Observation,
    SlopeThresholds,
    evaluate_site,
)

T0 = datetime(2026, 6, 1, tzinfo=UTC)
FINE_PX = 0.0001  # 0.1 mm pixels: every threshold is resolvable


def obs(day: float, width_mm: float, length_m: float = 2.0) -> Observation:
    return Observation(T0 + timedelta(days=day), length_m, width_mm)


def opening(cands, track=1):
    [c] = [c for c in cands if c.rule == "slope.opening_rate" and c.track == track]
    return c


def test_one_survey_exceedance_is_a_watch_with_its_measured_level():
    # 3 mm/day of opening in one interval: orange by the thresholds, seen once
    c = opening(evaluate_site("slope", None, {1: [obs(0, 20), obs(1, 23)]}, FINE_PX))
    assert c.watch and c.level is Level.ORANGE and c.is_alert
    assert "not confirmed" in c.confirmation and "Intrieri" in c.confirmation
    assert "WATCH" in c.message
    assert c.to_dict()["watch"] is True
    json.dumps(c.to_dict())


def test_two_consecutive_exceedances_of_one_crack_confirm_it():
    c = opening(evaluate_site("slope", None, {1: [obs(0, 20), obs(1, 23), obs(2, 26)]},
                              FINE_PX))
    assert not c.watch and c.level is Level.ORANGE
    assert c.confirmation == "confirmed: exceeded in 2 consecutive surveys of this crack"


def test_a_quiet_interval_between_two_exceedances_does_not_confirm():
    c = opening(evaluate_site("slope", None,
                              {1: [obs(0, 20), obs(1, 23), obs(2, 23), obs(3, 26)]}, FINE_PX))
    assert c.watch and "exceeds in its last 1 survey(s)" in c.confirmation


def test_confirmed_level_is_the_lower_of_the_two_surveys():
    # yellow (1 mm/day) then red (12 mm/day): yellow is confirmed, red is not yet
    c = opening(evaluate_site("slope", None, {1: [obs(0, 20), obs(1, 21), obs(2, 33)]},
                              FINE_PX))
    assert not c.watch and c.level is Level.YELLOW
    assert c.threshold == 0.5  # the yellow threshold, matching the level
    assert c.measured_value == pytest.approx(12.0)
    assert "red measured, not yet confirmed" in c.message


def test_two_cracks_exceeding_in_one_survey_confirm_each_other():
    series = {1: [obs(0, 20), obs(1, 23)], 2: [obs(0, 10), obs(1, 13.5)]}
    cands = evaluate_site("slope", None, series, FINE_PX)
    for track in (1, 2):
        c = opening(cands, track)
        assert not c.watch and c.level is Level.ORANGE
        assert "2 cracks of the site exceed in this survey" in c.confirmation


def test_modes_select_the_confirmation():
    one_crack_twice = {1: [obs(0, 20), obs(1, 23), obs(2, 26)]}
    two_cracks_once = {1: [obs(0, 20), obs(1, 23)], 2: [obs(0, 10), obs(1, 13.5)]}

    def watch(mode, series, **kw):
        th = SlopeThresholds(confirmation=mode, **kw)
        return [opening(evaluate_site("slope", th, series, FINE_PX), t).watch for t in series]

    assert watch("consecutive", one_crack_twice) == [False]
    assert watch("consecutive", two_cracks_once) == [True, True]
    assert watch("multi_crack", one_crack_twice) == [True]
    assert watch("multi_crack", two_cracks_once) == [False, False]
    assert watch("none", {1: [obs(0, 20), obs(1, 23)]}) == [False]
    assert watch("either", one_crack_twice, confirmation_surveys=3) == [True]
    assert watch("either", two_cracks_once, confirmation_cracks=3) == [True, True]


def test_rules_that_need_several_intervals_are_not_held_back():
    # widths accelerating over many nights: acceleration and forecast are multi-survey rules
    import math

    tf, a = 20.0, 2.0
    series = [obs(d, 5.0 - a * math.log((tf - d) / tf)) for d in range(0, 17)]
    cands = {c.rule: c for c in evaluate_site("slope", None, {7: series}, FINE_PX)}
    assert set(CONFIRMED_RULES) == {"slope.opening_rate", "slope.length_rate"}
    acc, iv = cands["slope.acceleration"], cands["slope.inverse_velocity"]
    assert acc.is_alert and not acc.watch and acc.confirmation is None
    assert iv.level is Level.RED and not iv.watch


def test_structure_sites_need_no_confirmation():
    cands = evaluate_site("structure", None, {1: [obs(0, 10.0)]}, FINE_PX)
    assert cands and not any(c.watch for c in cands)


def test_confirmation_settings_are_validated_and_round_trip():
    th = SlopeThresholds(confirmation="multi_crack", confirmation_cracks=3)
    assert th.confirmation is Confirmation.MULTI_CRACK
    assert SlopeThresholds.from_dict(json.loads(json.dumps(th.to_dict()))) == th
    assert SlopeThresholds().to_dict()["confirmation"] == "either"
    with pytest.raises(ValueError, match="confirmation must be one of"):
        SlopeThresholds(confirmation="twice")
    with pytest.raises(ValueError, match="confirmation_surveys must be an integer >= 2"):
        SlopeThresholds(confirmation_surveys=1)
    with pytest.raises(ValueError, match="confirmation_cracks"):
        SlopeThresholds(confirmation_cracks=2.5)
