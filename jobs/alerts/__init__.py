"""Early-warning rules: crack growth per track and per site -> alert candidates.

Pure functions and frozen dataclasses, no database access and no clock: the inputs are plain
data (a time series of observations per crack track plus the site's thresholds) and the
output is a list of :class:`AlertCandidate`. The database layer later decides, with
:func:`lifecycle_action`, whether a candidate raises a new alert, escalates an open one or is
dropped because an alert of that level is already open.

Levels are ordered ``green < yellow < orange < red`` (:class:`Level`).

Profiles and rules (``rule`` ids in brackets):

``slope`` (:class:`SlopeThresholds`)
    * crack opening rate, mm/day, from the growth of ``max_width_mm`` between the last two
      observations of a track [``slope.opening_rate``];
    * crack length growth rate, m/day, from ``length_m`` [``slope.length_rate``];
    * acceleration of the opening rate, mm/day^2, positive over the last N intervals
      [``slope.acceleration``];
    * inverse-velocity time-of-failure forecast (Fukuzono 1985) after a moving-average
      smoothing of the velocities (Carla et al. 2017) [``slope.inverse_velocity``];
    * optionally new cracks per survey [``slope.new_cracks``].
``structure`` (:class:`StructureThresholds`)
    * BRE Digest 251 damage category from ``max_width_mm`` [``structure.bre251``];
    * width growth between the last two surveys [``structure.width_growth``];
    * number of new cracks in the latest survey [``structure.new_cracks``].

Imagery resolution. Widths and lengths measured on a raster are quantised to whole pixels
(see :mod:`geodata.vectorise`), so a change smaller than about one pixel between two surveys
cannot be told from noise. Every threshold finer than that is reported in
``AlertCandidate.resolution_warnings``: on a site-level candidate with rule
``<profile>.resolution`` (level green, always returned when there is something to say) and on
every alerting candidate whose rule it affects. Levels are *not* lowered because of it (that
could hide a real movement); the warning says that the level is not backed by the imagery.

False-alarm control on slopes (:func:`confirm_slope_candidates`, applied by
:func:`evaluate_site`): a growth-rate exceedance (``slope.opening_rate``,
``slope.length_rate``) raises an alert only once it is *confirmed*, after Intrieri et al.
(2012, Torgiovannetto rockslide: the attention level starts only when at least two sensors
exceed the threshold): by the same crack in >= 2 consecutive surveys of its lineage, or by
>= 2 cracks of the site in the same survey (``SlopeThresholds.confirmation``). An
unconfirmed exceedance is a *watch* candidate (``AlertCandidate.watch``): recorded and shown,
never notified, and promoted to an alert when confirmed.

Lifecycle (applied by the database layer, documented here): an alert is keyed by
``(site, track, rule)``. A candidate with no open alert for its key and a level above green is
*raised*; a candidate whose level is above the open alert's level *escalates* it (the level is
raised and the people are notified again); the same or a lower level does nothing, so an
alert is not repeated nightly. An open alert stays open after it is *acknowledged* (a person
has seen it, with a note) until it is *resolved* (with a note); only then does a new candidate
for the same key raise a new alert.
"""

from __future__ import annotations

from geodata.severity import BRE251_CATEGORIES, bre251_category
from jobs.alerts.candidates import (
    AlertCandidate,
    Forecast,
    ForecastStatus,
    LifecycleAction,
    lifecycle_action,
    site_level,
)
from jobs.alerts.confirmation import CONFIRMED_RULES, confirm_slope_candidates
from jobs.alerts.core import Confirmation, Level, Observation, Profile
from jobs.alerts.forecast import accelerations, growth_rates, inverse_velocity_forecast
from jobs.alerts.resolution import (
    min_detectable_length_rate_m_per_day,
    min_detectable_opening_rate_mm_per_day,
    slope_resolution_warnings,
    structure_resolution_warnings,
)
from jobs.alerts.rules import RULES, Rule, evaluate_slope_track, evaluate_structure_track
from jobs.alerts.site import evaluate_site
from jobs.alerts.thresholds import LevelThresholds, SlopeThresholds, StructureThresholds

__all__ = [
    "RULES",
    "Rule",
    "BRE251_CATEGORIES",
    "CONFIRMED_RULES",
    "AlertCandidate",
    "Confirmation",
    "Forecast",
    "ForecastStatus",
    "Level",
    "LevelThresholds",
    "LifecycleAction",
    "Observation",
    "Profile",
    "SlopeThresholds",
    "StructureThresholds",
    "accelerations",
    "bre251_category",
    "confirm_slope_candidates",
    "evaluate_site",
    "evaluate_slope_track",
    "evaluate_structure_track",
    "growth_rates",
    "inverse_velocity_forecast",
    "lifecycle_action",
    "min_detectable_length_rate_m_per_day",
    "min_detectable_opening_rate_mm_per_day",
    "site_level",
    "slope_resolution_warnings",
    "structure_resolution_warnings",
]
