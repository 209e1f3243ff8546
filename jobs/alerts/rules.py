"""The per-track rules of each profile and the rule table (:data:`RULES`). Part of
:mod:`jobs.alerts` (see its docstring for the rules, levels and lifecycle).
"""


from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from geodata.severity import BRE251_CATEGORIES, bre251_category
from jobs.alerts.candidates import AlertCandidate, Forecast, ForecastStatus
from jobs.alerts.core import Level, Observation, _days, _sorted_observations
from jobs.alerts.forecast import accelerations, growth_rates, inverse_velocity_forecast
from jobs.alerts.resolution import (
    ALL_RULES,
    min_detectable_length_rate_m_per_day,
    min_detectable_opening_rate_mm_per_day,
    slope_resolution_warnings_by_rule,
    structure_resolution_warnings_by_rule,
)
from jobs.alerts.thresholds import SlopeThresholds, StructureThresholds, _reaches


@dataclass(frozen=True)
class Rule:
    """One alert rule: its id (``AlertCandidate.rule``), the profile it belongs to, the
    threshold field of that profile's thresholds (:class:`SlopeThresholds` /
    :class:`StructureThresholds`; None for a fixed rule), the function that evaluates it, the
    observation quantity it reads, and the resolution floor: the smallest value the imagery
    resolves, ``floor(pixel_size_m, interval_days)`` in the rule's unit (None: no floor).
    Adding a rule is one entry in :data:`RULES` plus its evaluation."""

    id: str
    profile: str
    threshold_field: str | None
    evaluator: str
    quantity: str | None
    what: str
    unit: str
    resolution_floor: Callable[[float, float], float] | None = None
    warnings_of: str | None = None  #: the rule whose resolution warnings it carries


#: Every rule, by id (see the module docstring of :mod:`jobs.alerts` for the sources).
RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("slope.opening_rate", "slope", "opening_rate_mm_per_day", "evaluate_slope_track",
         "max_width_mm", "opening rate", "mm/day", min_detectable_opening_rate_mm_per_day),
    Rule("slope.length_rate", "slope", "length_rate_m_per_day", "evaluate_slope_track",
         "length_m", "length growth rate", "m/day", min_detectable_length_rate_m_per_day),
    Rule("slope.acceleration", "slope", "acceleration_level", "evaluate_slope_track",
         "max_width_mm", "opening-rate acceleration", "mm/day^2",
         warnings_of="slope.opening_rate"),
    Rule("slope.inverse_velocity", "slope", "forecast_red_days", "evaluate_slope_track",
         "max_width_mm", "inverse-velocity forecast", "days"),
    Rule("slope.new_cracks", "slope", "new_cracks_max", "evaluate_site", None,
         "new cracks", "cracks"),
    Rule("structure.bre251", "structure", "category_levels", "evaluate_structure_track",
         "max_width_mm", "BRE Digest 251 category", "mm"),
    Rule("structure.width_growth", "structure", "width_growth_mm", "evaluate_structure_track",
         "max_width_mm", "width growth", "mm"),
    Rule("structure.new_cracks", "structure", "new_cracks_max", "evaluate_site", None,
         "new cracks", "cracks"),
)}


def _rule_warnings(by_rule: dict[str, list[str]], rule_id: str) -> tuple[str, ...]:
    """The resolution warnings of one rule (its own and those about every rule)."""
    rule = RULES[rule_id]
    return (*by_rule.get(rule.warnings_of or rule.id, ()), *by_rule.get(ALL_RULES, ()))


def _pair_pixel(a: Observation, b: Observation, default: float | None) -> float | None:
    sizes = [p for p in (a.pixel_size_m, b.pixel_size_m) if p is not None]
    return max(sizes) if sizes else default


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def evaluate_slope_track(site: Hashable | None, track: Hashable,
                         observations: Sequence[Observation | Mapping[str, Any]],
                         thresholds: SlopeThresholds, pixel_size_m: float | None = None, *,
                         include_green: bool = False) -> list[AlertCandidate]:
    """The ``slope`` rules for one track (see :class:`SlopeThresholds` for the sources).

    Needs two observations for rates, ``acceleration_intervals + 2`` for acceleration. The
    resolution of the latest interval uses the coarser pixel size of its two observations
    (``Observation.pixel_size_m``), else ``pixel_size_m``.

    Returns:
        Candidates above green (all of them with ``include_green``).

    Raises:
        ValueError: invalid observations or two at the same time.
    """
    obs = _sorted_observations(track, observations)
    if len(obs) < 2:
        return []
    prev, last = obs[-2], obs[-1]
    dt = _days(prev.surveyed_at, last.surveyed_at)
    px = _pair_pixel(prev, last, pixel_size_m)
    by_rule = slope_resolution_warnings_by_rule(thresholds, px, dt)
    found: list[AlertCandidate | None] = [
        _slope_rate(site, track, rule, qunit, prev, last, px, thresholds, by_rule)
        for rule, qunit in (("slope.opening_rate", "mm"), ("slope.length_rate", "m"))]
    rate_t, rates = growth_rates(obs, "max_width_mm")
    forecast = inverse_velocity_forecast(
        rate_t, rates, window=thresholds.smoothing_window,
        min_points=thresholds.min_accelerating_points,
    )
    opening_warns = _rule_warnings(by_rule, "slope.acceleration")
    found.append(_slope_acceleration(site, track, rate_t, rates, forecast, thresholds,
                                     opening_warns, last.surveyed_at))
    found.append(_slope_forecast(site, track, forecast, thresholds, opening_warns,
                                 last.surveyed_at))
    return [c for c in found if c is not None and (include_green or c.is_alert)]


def _slope_rate(site: Hashable | None, track: Hashable, rule: str, qunit: str,
                prev: Observation, last: Observation, px: float | None,
                thresholds: SlopeThresholds, by_rule: dict[str, list[str]]) -> AlertCandidate:
    """The growth-rate rule ``rule`` over the latest interval (``qunit``: the unit of the
    quantity itself), warned when the change is below the pixel size ``px``."""
    dt = _days(prev.surveyed_at, last.surveyed_at)
    spec = RULES[rule]
    quantity, what, unit = spec.quantity, spec.what, spec.unit
    levels = getattr(thresholds, spec.threshold_field)
    floor = None if px is None or spec.resolution_floor is None else \
        spec.resolution_floor(px, dt)
    change = getattr(last, quantity) - getattr(prev, quantity)
    rate = change / dt
    level = levels.level_for(rate)
    warns = list(_rule_warnings(by_rule, rule))
    if floor is not None and level > Level.GREEN and rate < floor:
        warns.append(
            f"the measured {what} {_fmt(rate)} {unit} ({_fmt(change)} {qunit} in "
            f"{dt:.3g} days) is a change smaller than one pixel: within measurement noise"
        )
    return AlertCandidate(
        site=site, track=track, level=level, rule=rule, measured_value=rate, unit=unit,
        threshold=levels.threshold_of(level),
        message=(f"crack track {track!r} {what} {_fmt(rate)} {unit} over {dt:.3g} days "
                 f"({quantity} {_fmt(getattr(prev, quantity))} -> "
                 f"{_fmt(getattr(last, quantity))} {qunit}): {level}"),
        resolution_warnings=tuple(warns), observed_at=last.surveyed_at,
    )


def _slope_acceleration(site: Hashable | None, track: Hashable, rate_t: Sequence[datetime],
                        rates: Sequence[float], forecast: Forecast,
                        thresholds: SlopeThresholds, warns: tuple[str, ...],
                        observed_at: datetime) -> AlertCandidate | None:
    """``slope.acceleration``: the opening rate rose over each of the last
    ``acceleration_intervals`` intervals (None with too few rates)."""
    n = thresholds.acceleration_intervals
    _acc_t, acc = accelerations(rate_t, rates)
    if len(acc) < n:
        return None
    accelerating = all(a > 0 for a in acc[-n:]) and all(r > 0 for r in rates[-n - 1:])
    level = thresholds.acceleration_level if accelerating else Level.GREEN
    return AlertCandidate(
        site=site, track=track, level=level, rule="slope.acceleration",
        measured_value=acc[-1], unit="mm/day^2", threshold=0.0,
        message=(f"crack track {track!r} opening rate "
                 f"{'rose' if accelerating else 'did not rise'} over each of the last {n} "
                 f"intervals (latest acceleration {_fmt(acc[-1])} mm/day^2, opening rates "
                 f"{', '.join(_fmt(r) for r in rates[-n - 1:])} mm/day); "
                 f"forecast: {forecast.status}"),
        forecast=forecast, resolution_warnings=warns if level else (),
        observed_at=observed_at,
    )


def _slope_forecast(site: Hashable | None, track: Hashable, forecast: Forecast,
                    thresholds: SlopeThresholds, warns: tuple[str, ...],
                    observed_at: datetime) -> AlertCandidate | None:
    """``slope.inverse_velocity``: the level of the forecast time of failure, counted from
    the latest survey ``observed_at`` (None without a forecast)."""
    if forecast.status is not ForecastStatus.FORECAST:
        return None
    # lead time from the latest *survey* (velocities are dated mid-interval)
    assert forecast.failure_time is not None
    to_failure = _days(observed_at, forecast.failure_time)
    r2 = forecast.r_squared or 0.0
    if r2 < thresholds.forecast_min_r_squared:
        level, threshold = Level.YELLOW, None  # the R^2 floor is not in days
        why = (f"fit R^2 {r2:.2f} < {thresholds.forecast_min_r_squared:g}: low confidence, "
               "yellow only")
    elif to_failure <= thresholds.forecast_red_days:
        level, threshold = Level.RED, thresholds.forecast_red_days
        why = f"within {threshold:g} days"
    elif to_failure <= thresholds.forecast_orange_days:
        level, threshold = Level.ORANGE, thresholds.forecast_orange_days
        why = f"within {threshold:g} days"
    else:
        level, threshold = Level.YELLOW, thresholds.forecast_orange_days
        why = f"more than {threshold:g} days ahead"
    return AlertCandidate(
        site=site, track=track, level=level, rule="slope.inverse_velocity",
        measured_value=to_failure, unit="days", threshold=threshold,
        message=(f"crack track {track!r}: {forecast.message}; {to_failure:.1f} days after the "
                 f"latest survey, {why}"),
        forecast=forecast, resolution_warnings=warns, observed_at=observed_at,
    )


def evaluate_structure_track(site: Hashable | None, track: Hashable,
                             observations: Sequence[Observation | Mapping[str, Any]],
                             thresholds: StructureThresholds, pixel_size_m: float | None = None,
                             *, include_green: bool = False) -> list[AlertCandidate]:
    """The ``structure`` rules for one track: BRE Digest 251 category of the latest width,
    and width growth between the last two surveys (see :class:`StructureThresholds`).

    Returns:
        Candidates above green (all of them with ``include_green``).

    Raises:
        ValueError: invalid observations or two at the same time.
    """
    obs = _sorted_observations(track, observations)
    if not obs:
        return []
    last = obs[-1]
    px = last.pixel_size_m if last.pixel_size_m is not None else pixel_size_m
    by_rule = structure_resolution_warnings_by_rule(thresholds, px)
    category = bre251_category(last.max_width_mm)
    name = BRE251_CATEGORIES[category][1]
    lower = 0.0 if category == 0 else BRE251_CATEGORIES[category - 1][2]
    bre_level = thresholds.category_levels[category]
    message = (f"crack track {track!r} max width {_fmt(last.max_width_mm)} mm: BRE Digest 251 "
               f"category {category} ({name}): {bre_level}")
    bre_warns = _rule_warnings(by_rule, "structure.bre251")
    if px is not None and last.max_width_mm <= px * 1000.0 * (1 + 1e-6):
        # A crack measured one pixel wide (or less) has an unresolved width: the imagery
        # only says it is narrower than about a pixel, so its category is an upper bound
        # and cannot raise an alert (at 0.5 m pixels every crack would read "very severe").
        unresolved = (f"crack track {track!r} is at most one pixel wide ({_fmt(px * 1000.0)} mm "
                      f"pixels): its width, and so its BRE Digest 251 category (at most "
                      f"{category}), is not resolved by this imagery")
        bre_level = Level.GREEN
        message = unresolved + ": green (not an assessment)"
        bre_warns = (*bre_warns, unresolved)
    out: list[AlertCandidate] = []
    bre = AlertCandidate(
        site=site, track=track, level=bre_level, rule="structure.bre251",
        measured_value=last.max_width_mm, unit="mm",
        threshold=lower if category else BRE251_CATEGORIES[0][2],
        message=message,
        resolution_warnings=bre_warns if bre_level else (),
        observed_at=last.surveyed_at,
    )
    if include_green or bre.is_alert:
        out.append(bre)
    if len(obs) >= 2:
        prev = obs[-2]
        growth = last.max_width_mm - prev.max_width_mm
        grew = _reaches(growth, thresholds.width_growth_mm)
        level = Level(min(int(Level.RED), max(int(Level.YELLOW), bre_level + 1))) if grew \
            else Level.GREEN
        c = AlertCandidate(
            site=site, track=track, level=level, rule="structure.width_growth",
            measured_value=growth, unit="mm", threshold=thresholds.width_growth_mm,
            message=(f"crack track {track!r} widened by {_fmt(growth)} mm since "
                     f"{prev.surveyed_at:%Y-%m-%d} ({_fmt(prev.max_width_mm)} -> "
                     f"{_fmt(last.max_width_mm)} mm; threshold "
                     f"{thresholds.width_growth_mm:g} mm): {level}"),
            resolution_warnings=_rule_warnings(by_rule, "structure.width_growth") if level
            else (),
            observed_at=last.surveyed_at,
        )
        if include_green or c.is_alert:
            out.append(c)
    return out
