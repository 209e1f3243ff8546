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

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np
from scipy import stats

from geodata.severity import BRE251_CATEGORIES, bre251_category

__all__ = [
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

SECONDS_PER_DAY = 86_400.0


# --------------------------------------------------------------------------------------------
# levels, profiles, observations
# --------------------------------------------------------------------------------------------


class Level(IntEnum):
    """Alert level, ordered ``GREEN < YELLOW < ORANGE < RED`` (ints 0..3, so ``<``, ``max``
    and sorting work). ``str(level)`` is the lower-case name used in the database and UI."""

    GREEN = 0
    YELLOW = 1
    ORANGE = 2
    RED = 3

    def __str__(self) -> str:
        return self.name.lower()

    def __format__(self, spec: str) -> str:  # f"{level}" -> "red" on every Python version
        return format(str(self), spec)

    @property
    def label(self) -> str:
        """Lower-case name: ``'green'``, ``'yellow'``, ``'orange'`` or ``'red'``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: Level | str | int) -> Level:
        """A :class:`Level` from a level, its name (any case) or its int 0..3.

        Raises:
            ValueError: ``value`` names no level.
        """
        if isinstance(value, Level):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        raise ValueError(
            f"unknown alert level {value!r}: use one of 'green', 'yellow', 'orange', 'red' "
            "(or 0..3)"
        )


class Profile(StrEnum):
    """A site's monitoring profile: which rule set :func:`evaluate_site` applies."""

    SLOPE = "slope"
    STRUCTURE = "structure"


class Confirmation(StrEnum):
    """How a slope growth-rate exceedance is confirmed (:func:`confirm_slope_candidates`)."""

    EITHER = "either"  # consecutive surveys OR several cracks (default)
    CONSECUTIVE = "consecutive"  # the crack exceeds in N consecutive surveys of its lineage
    MULTI_CRACK = "multi_crack"  # N cracks of the site exceed in the same survey
    NONE = "none"  # no confirmation: every exceedance alerts at once


def _finite(name: str, value: Any, *, minimum: float | None = None,
            positive: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and out <= 0:
        raise ValueError(f"{name} must be > 0, got {out}")
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def _utc(name: str, value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} {value.isoformat()} has no timezone: pass a timezone-aware datetime, "
            "e.g. value.replace(tzinfo=datetime.UTC) if it is already UTC"
        )
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Observation:
    """One survey's measurement of one crack track.

    Attributes:
        surveyed_at: survey acquisition time, timezone-aware (stored converted to UTC).
        length_m: skeleton length, metres.
        max_width_mm: maximum width, millimetres.
        area_m2: area, square metres.
        pixel_size_m: ground pixel size of that survey, metres; ``None`` to use the site-level
            ``pixel_size_m`` given to :func:`evaluate_site`.

    Raises:
        ValueError: a naive datetime, a negative or non-finite measurement, or a non-positive
            pixel size.
    """

    surveyed_at: datetime
    length_m: float
    max_width_mm: float
    area_m2: float = 0.0
    pixel_size_m: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "surveyed_at", _utc("surveyed_at", self.surveyed_at))
        for name in ("length_m", "max_width_mm", "area_m2"):
            object.__setattr__(self, name, _finite(name, getattr(self, name), minimum=0.0))
        if self.pixel_size_m is not None:
            object.__setattr__(
                self, "pixel_size_m", _finite("pixel_size_m", self.pixel_size_m, positive=True)
            )

    @classmethod
    def from_any(cls, value: Observation | Mapping[str, Any]) -> Observation:
        """An observation from itself or a mapping with the same keys (extra keys ignored).

        Raises:
            ValueError: a required key is missing or a value is invalid.
        """
        if isinstance(value, Observation):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(
                f"an observation must be an Observation or a mapping, got {type(value).__name__}"
            )
        missing = [k for k in ("surveyed_at", "length_m", "max_width_mm") if k not in value]
        if missing:
            raise ValueError(
                f"observation {dict(value)!r} lacks {', '.join(missing)}: give surveyed_at "
                "(aware datetime), length_m, max_width_mm and optionally area_m2, pixel_size_m"
            )
        return cls(
            surveyed_at=value["surveyed_at"],
            length_m=value["length_m"],
            max_width_mm=value["max_width_mm"],
            area_m2=value.get("area_m2", 0.0),
            pixel_size_m=value.get("pixel_size_m"),
        )


def _sorted_observations(track: Hashable, observations: Iterable[Any]) -> list[Observation]:
    obs = sorted((Observation.from_any(o) for o in observations), key=lambda o: o.surveyed_at)
    for a, b in zip(obs, obs[1:], strict=False):
        if a.surveyed_at == b.surveyed_at:
            raise ValueError(
                f"track {track!r} has two observations at {a.surveyed_at.isoformat()}: keep one "
                "observation per survey (a rate over zero days is undefined)"
            )
    return obs


def _days(a: datetime, b: datetime) -> float:
    """``b - a`` in days (float)."""
    return (b - a).total_seconds() / SECONDS_PER_DAY


# --------------------------------------------------------------------------------------------
# thresholds
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelThresholds:
    """Three increasing thresholds mapping a measured value to yellow/orange/red.

    :meth:`level_for` returns the highest level whose threshold the value *reaches*
    (``value >= threshold``, with a 1e-9 relative tolerance so that a width change of exactly
    the threshold computed in floating point, e.g. ``(2.4 - 2.0) / 2``, still reaches it);
    below ``yellow`` is green.

    Raises:
        ValueError: a threshold is not finite and > 0, or they are not strictly increasing.
    """

    yellow: float
    orange: float
    red: float

    def __post_init__(self) -> None:
        for name in ("yellow", "orange", "red"):
            object.__setattr__(self, name, _finite(name, getattr(self, name), positive=True))
        if not self.yellow < self.orange < self.red:
            raise ValueError(
                f"thresholds must increase yellow < orange < red, got yellow={self.yellow}, "
                f"orange={self.orange}, red={self.red}"
            )

    @classmethod
    def from_any(cls, value: LevelThresholds | Mapping[str, float] | Sequence[float]
                 ) -> LevelThresholds:
        """From itself, ``{"yellow":..,"orange":..,"red":..}`` or ``(yellow, orange, red)``.

        Raises:
            ValueError: another shape, or invalid values.
        """
        if isinstance(value, LevelThresholds):
            return value
        if isinstance(value, Mapping):
            try:
                return cls(value["yellow"], value["orange"], value["red"])
            except KeyError as e:
                raise ValueError(
                    f"level thresholds {dict(value)!r} lack key {e}: give yellow, orange, red"
                ) from None
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3:
            return cls(*value)
        raise ValueError(
            f"level thresholds must be {{'yellow', 'orange', 'red'}} or a 3-sequence, "
            f"got {value!r}"
        )

    def level_for(self, value: float) -> Level:
        """The level ``value`` reaches (``>=``, see :func:`_reaches`); green below ``yellow``
        (and for NaN)."""
        for level, threshold in reversed(self.items()):
            if _reaches(value, threshold):
                return level
        return Level.GREEN

    def threshold_of(self, level: Level) -> float:
        """The threshold of ``level``; for green the yellow threshold (the next one up)."""
        return {Level.RED: self.red, Level.ORANGE: self.orange}.get(level, self.yellow)

    def items(self) -> list[tuple[Level, float]]:
        return [(Level.YELLOW, self.yellow), (Level.ORANGE, self.orange), (Level.RED, self.red)]

    def to_dict(self) -> dict[str, float]:
        return {"yellow": self.yellow, "orange": self.orange, "red": self.red}


def _reaches(value: float, threshold: float) -> bool:
    """``value >= threshold`` up to floating-point error (relative 1e-9, absolute 1e-12)."""
    return value >= threshold or math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12)


def _level_field(value: Any, name: str) -> Level:
    try:
        return Level.parse(value)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


@dataclass(frozen=True)
class SlopeThresholds:
    """Per-site thresholds of the ``slope`` profile (all user-configurable).

    Velocity thresholds, defaults and their sources. Alert levels on slopes are
    conventionally set as *velocity thresholds* on monitored surface displacement, with
    levels rising by roughly an order of magnitude, e.g. G. B. Crosta and F. Agliardi (2003),
    "Failure forecast for large rock slides by surface displacement measurements",
    Can. Geotech. J. 40, 176-191 (velocity alert thresholds for the Ruinon rock slide), and
    the Norwegian classification used by NVE, R. L. Hermanns et al. (2012), "Recommended
    hazard and risk classification system for large unstable rock slopes in Norway", NGU
    report 2012.029 (displacement rate as a hazard criterion). Those values are for
    displacement of rock masses, not for the opening of a surface crack seen from a drone,
    so **the defaults below are not taken from them verbatim**: they are conservative,
    order-of-magnitude starting points in the same style (each level ~4-5x the one below),
    to be tuned per site by a geotechnical engineer from the site's own history:

    * ``opening_rate_mm_per_day`` (growth of ``max_width_mm``): yellow 0.5, orange 2,
      red 10 mm/day.
    * ``length_rate_m_per_day`` (growth of ``length_m``): yellow 0.05, orange 0.2,
      red 1 m/day.

    Acceleration (``slope.acceleration``): ``(rate_k - rate_{k-1}) / dt`` between consecutive
    opening rates (each rate dated at the middle of its interval), flagged when it is > 0 over
    each of the last ``acceleration_intervals`` (>= 2) intervals while the crack is opening;
    the candidate gets ``acceleration_level`` (default yellow: acceleration is the onset of
    tertiary creep in the Fukuzono/Saito view, but two imagery intervals are weak evidence).

    Forecast (``slope.inverse_velocity``, Fukuzono 1985, Carla et al. 2017; see
    :func:`inverse_velocity_forecast`): ``smoothing_window`` (default 3, Carla et al.'s
    short-term moving average), ``min_accelerating_points`` (>= 3: accelerating observations,
    i.e. smoothed opening rates each above the one before, needed before forecasting). A
    forecast time of failure within ``forecast_red_days`` (default 7) of the latest survey is
    red, within ``forecast_orange_days`` (default 30) orange, later yellow, and any forecast
    whose fit R^2 is below ``forecast_min_r_squared`` (default 0.8) only yellow. These lead
    times and the R^2 floor are a project choice (not from a standard): they should match how
    fast the site's owner can act.

    ``new_cracks_max``: more than this many new cracks in one survey is yellow; ``None``
    (default) disables the rule on slopes.

    False-alarm control (see :func:`confirm_slope_candidates`): ``confirmation`` is how a
    growth-rate exceedance is confirmed before it notifies anyone: ``"either"`` (default),
    ``"consecutive"`` (the crack exceeds in ``confirmation_surveys`` >= 2 consecutive surveys,
    default 2), ``"multi_crack"`` (``confirmation_cracks`` >= 2 cracks of the site exceed in
    the same survey, default 2) or ``"none"`` (every exceedance alerts at once).

    Raises:
        ValueError: a value out of range, with the field named.
    """

    opening_rate_mm_per_day: LevelThresholds = field(
        default_factory=lambda: LevelThresholds(0.5, 2.0, 10.0)
    )
    length_rate_m_per_day: LevelThresholds = field(
        default_factory=lambda: LevelThresholds(0.05, 0.2, 1.0)
    )
    acceleration_intervals: int = 2
    acceleration_level: Level = Level.YELLOW
    smoothing_window: int = 3
    min_accelerating_points: int = 3
    forecast_red_days: float = 7.0
    forecast_orange_days: float = 30.0
    forecast_min_r_squared: float = 0.8
    new_cracks_max: int | None = None
    confirmation: str = "either"
    confirmation_surveys: int = 2
    confirmation_cracks: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "opening_rate_mm_per_day",
                           LevelThresholds.from_any(self.opening_rate_mm_per_day))
        object.__setattr__(self, "length_rate_m_per_day",
                           LevelThresholds.from_any(self.length_rate_m_per_day))
        object.__setattr__(self, "acceleration_level",
                           _level_field(self.acceleration_level, "acceleration_level"))
        if int(self.acceleration_intervals) != self.acceleration_intervals or \
                self.acceleration_intervals < 2:
            raise ValueError(
                f"acceleration_intervals must be an integer >= 2, got "
                f"{self.acceleration_intervals!r}: one positive acceleration is noise"
            )
        if int(self.smoothing_window) != self.smoothing_window or self.smoothing_window < 1:
            raise ValueError(
                f"smoothing_window must be an integer >= 1 (1 = no smoothing), got "
                f"{self.smoothing_window!r}"
            )
        if int(self.min_accelerating_points) != self.min_accelerating_points or \
                self.min_accelerating_points < 3:
            raise ValueError(
                f"min_accelerating_points must be an integer >= 3, got "
                f"{self.min_accelerating_points!r}: a line through two points always fits"
            )
        red = _finite("forecast_red_days", self.forecast_red_days, positive=True)
        orange = _finite("forecast_orange_days", self.forecast_orange_days, positive=True)
        if red > orange:
            raise ValueError(
                f"forecast_red_days ({red}) must be <= forecast_orange_days ({orange}): red "
                "is the shorter lead time"
            )
        object.__setattr__(self, "forecast_red_days", red)
        object.__setattr__(self, "forecast_orange_days", orange)
        r2 = _finite("forecast_min_r_squared", self.forecast_min_r_squared, minimum=0.0)
        if r2 > 1:
            raise ValueError(f"forecast_min_r_squared must be in [0, 1], got {r2}")
        object.__setattr__(self, "forecast_min_r_squared", r2)
        if self.new_cracks_max is not None and (
                int(self.new_cracks_max) != self.new_cracks_max or self.new_cracks_max < 0):
            raise ValueError(
                f"new_cracks_max must be an integer >= 0 or None, got {self.new_cracks_max!r}"
            )
        try:
            mode = Confirmation(str(self.confirmation).strip().lower())
        except ValueError:
            raise ValueError(
                f"confirmation must be one of {[str(c) for c in Confirmation]}, got "
                f"{self.confirmation!r}"
            ) from None
        object.__setattr__(self, "confirmation", mode)
        for name in ("confirmation_surveys", "confirmation_cracks"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 2:
                raise ValueError(
                    f"{name} must be an integer >= 2, got {v!r}: one survey or one crack is "
                    "what confirmation guards against (use confirmation='none' to turn it off)"
                )
            object.__setattr__(self, name, int(v))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlopeThresholds:
        """From a JSON-style mapping (e.g. a site's stored thresholds); missing keys default.

        Raises:
            ValueError: an unknown key (a typo would otherwise silently use a default) or an
                invalid value.
        """
        return _from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping that :meth:`from_dict` reads back."""
        return {
            "opening_rate_mm_per_day": self.opening_rate_mm_per_day.to_dict(),
            "length_rate_m_per_day": self.length_rate_m_per_day.to_dict(),
            "acceleration_intervals": self.acceleration_intervals,
            "acceleration_level": str(self.acceleration_level),
            "smoothing_window": self.smoothing_window,
            "min_accelerating_points": self.min_accelerating_points,
            "forecast_red_days": self.forecast_red_days,
            "forecast_orange_days": self.forecast_orange_days,
            "forecast_min_r_squared": self.forecast_min_r_squared,
            "new_cracks_max": self.new_cracks_max,
            "confirmation": str(self.confirmation),
            "confirmation_surveys": self.confirmation_surveys,
            "confirmation_cracks": self.confirmation_cracks,
        }


@dataclass(frozen=True)
class StructureThresholds:
    """Per-site thresholds of the ``structure`` profile (all user-configurable).

    * ``category_levels``: alert level of each BRE Digest 251 category 0..5 (see
      :func:`bre251_category`); default 0-1 green (cosmetic), 2 yellow, 3 orange, 4-5 red. The
      Digest groups 0-2 as aesthetic, 3-4 as serviceability and 5 as stability damage; the
      default is stricter on 2 and 4 on purpose, so growth is seen early. Must not decrease.
    * ``width_growth_mm``: an increase of ``max_width_mm`` of at least this much (mm) between
      the last two surveys raises the track's level by one above its BRE level, at least to
      yellow. Default 1.0 mm: the width of BRE category 1, and about what close-range photos
      (~1 mm per pixel) can resolve; a project choice to tune per building.
    * ``new_cracks_max``: more than this many new cracks in the latest survey is yellow
      (default 2: a single new detection is too often noise in a nightly job).

    Raises:
        ValueError: a value out of range, with the field named.
    """

    category_levels: tuple[Level, ...] = (
        Level.GREEN, Level.GREEN, Level.YELLOW, Level.ORANGE, Level.RED, Level.RED,
    )
    width_growth_mm: float = 1.0
    new_cracks_max: int = 2

    def __post_init__(self) -> None:
        levels = tuple(_level_field(v, "category_levels") for v in self.category_levels)
        if len(levels) != 6:
            raise ValueError(
                f"category_levels needs 6 levels (BRE 251 categories 0..5), got {len(levels)}"
            )
        if any(b < a for a, b in zip(levels, levels[1:], strict=False)):
            raise ValueError(
                f"category_levels must not decrease with the category, got "
                f"{[str(v) for v in levels]}"
            )
        object.__setattr__(self, "category_levels", levels)
        object.__setattr__(self, "width_growth_mm",
                           _finite("width_growth_mm", self.width_growth_mm, positive=True))
        if int(self.new_cracks_max) != self.new_cracks_max or self.new_cracks_max < 0:
            raise ValueError(f"new_cracks_max must be an integer >= 0, got "
                             f"{self.new_cracks_max!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StructureThresholds:
        """From a JSON-style mapping; missing keys default.

        Raises:
            ValueError: an unknown key or an invalid value.
        """
        data = dict(data)
        if "category_levels" in data:
            data["category_levels"] = tuple(data["category_levels"])
        return _from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping that :meth:`from_dict` reads back."""
        return {
            "category_levels": [str(v) for v in self.category_levels],
            "width_growth_mm": self.width_growth_mm,
            "new_cracks_max": self.new_cracks_max,
        }


def _from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} setting(s) {unknown}: valid keys are {sorted(known)}"
        )
    return cls(**dict(data))


# --------------------------------------------------------------------------------------------
# candidates and lifecycle
# --------------------------------------------------------------------------------------------


class ForecastStatus(StrEnum):
    """Outcome of :func:`inverse_velocity_forecast`."""

    INSUFFICIENT_DATA = "insufficient data"  # too few (smoothed) velocities to judge
    NOT_ACCELERATING = "not accelerating"  # < min_points accelerating observations at the end
    NO_FORECAST = "no forecast"  # accelerating, but 1/v does not trend to zero in range
    FORECAST = "forecast"


@dataclass(frozen=True)
class Forecast:
    """An inverse-velocity time-of-failure forecast.

    Attributes:
        status: see :class:`ForecastStatus`.
        failure_time: UTC time where the fitted 1/v line reaches zero (``FORECAST`` only).
        r_squared: coefficient of determination of the 1/v-vs-time fit (``None`` if no fit).
        n_points: smoothed velocities used in the fit (0 if none).
        days_after_last: ``failure_time`` minus the time of the latest (unsmoothed)
            velocity, days (negative: the fitted line already crossed zero).
        message: human-readable explanation.
    """

    status: ForecastStatus
    failure_time: datetime | None = None
    r_squared: float | None = None
    n_points: int = 0
    days_after_last: float | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "failure_time": self.failure_time.isoformat() if self.failure_time else None,
            "r_squared": self.r_squared,
            "n_points": self.n_points,
            "days_after_last": self.days_after_last,
            "message": self.message,
        }


@dataclass(frozen=True)
class AlertCandidate:
    """What one rule says about one site (``track is None``) or one crack track.

    Attributes:
        site: the site's id or name, as given to :func:`evaluate_site`.
        track: the crack track id, or ``None`` for a site-level rule.
        level: :class:`Level`.
        rule: rule id, e.g. ``"slope.opening_rate"`` (see the module docstring).
        measured_value: the value the rule measured, in ``unit``.
        unit: unit of ``measured_value`` and ``threshold`` (``"mm/day"``, ``"m/day"``,
            ``"mm/day^2"``, ``"days"``, ``"mm"``, ``"cracks"``).
        threshold: the threshold reached (or, when green, the next one up); ``None`` if the
            rule has none.
        message: one human-readable sentence.
        forecast: inverse-velocity forecast, for ``slope.acceleration`` and
            ``slope.inverse_velocity``.
        resolution_warnings: thresholds/measurements finer than the imagery resolves.
        observed_at: UTC time of the latest observation the rule used.
        watch: True for a slope growth exceedance not yet confirmed
            (:func:`confirm_slope_candidates`): ``level`` is the measured level, but the
            database layer records it as a *watch* and notifies nobody.
        confirmation: how the exceedance was (or was not yet) confirmed, one sentence;
            ``None`` for rules that need no confirmation.
    """

    site: Hashable | None
    track: Hashable | None
    level: Level
    rule: str
    measured_value: float
    unit: str
    threshold: float | None
    message: str
    forecast: Forecast | None = None
    resolution_warnings: tuple[str, ...] = ()
    observed_at: datetime | None = None
    watch: bool = False
    confirmation: str | None = None

    @property
    def key(self) -> tuple[Hashable | None, Hashable | None, str]:
        """``(site, track, rule)``: the identity of an alert across nights."""
        return (self.site, self.track, self.rule)

    @property
    def is_alert(self) -> bool:
        """True when the level is above green."""
        return self.level > Level.GREEN

    @property
    def resolution_flagged(self) -> bool:
        """True when a threshold or measurement is finer than the imagery resolves."""
        return bool(self.resolution_warnings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (what :mod:`jobs.notify` and the database layer take)."""
        return {
            "site": self.site,
            "track": self.track,
            "level": str(self.level),
            "rule": self.rule,
            "measured_value": self.measured_value,
            "unit": self.unit,
            "threshold": self.threshold,
            "message": self.message,
            "forecast": self.forecast.to_dict() if self.forecast else None,
            "resolution_warnings": list(self.resolution_warnings),
            "observed_at": self.observed_at.isoformat() if self.observed_at else None,
            "watch": self.watch,
            "confirmation": self.confirmation,
        }


class LifecycleAction(StrEnum):
    """What the database layer does with a candidate (see :func:`lifecycle_action`)."""

    RAISE = "raise"
    ESCALATE = "escalate"
    NONE = "none"


def lifecycle_action(open_level: Level | str | int | None,
                     candidate: AlertCandidate | Level | str | int) -> LifecycleAction:
    """Decide what a new candidate does to the alert open for the same ``(site, track, rule)``.

    Args:
        open_level: level of the alert currently open (raised or acknowledged, not resolved)
            for the candidate's key, or ``None`` if there is none.
        candidate: the new candidate, or just its level.

    Returns:
        ``RAISE`` when nothing is open and the level is above green; ``ESCALATE`` when the
        level is above the open alert's; otherwise ``NONE`` (same or lower level: not
        repeated nightly; a green candidate never raises). Lowering or closing an alert is a
        person's decision (acknowledge/resolve with a note in the database layer), not this
        function's.

    Raises:
        ValueError: a level that is not a level.
    """
    new = candidate.level if isinstance(candidate, AlertCandidate) else Level.parse(candidate)
    if open_level is None:
        return LifecycleAction.RAISE if new > Level.GREEN else LifecycleAction.NONE
    return LifecycleAction.ESCALATE if new > Level.parse(open_level) else LifecycleAction.NONE


def site_level(candidates: Iterable[AlertCandidate]) -> Level:
    """Highest level among ``candidates`` (green if none): the colour of a site on the map."""
    return max((c.level for c in candidates), default=Level.GREEN)


# --------------------------------------------------------------------------------------------
# rates, acceleration, inverse velocity
# --------------------------------------------------------------------------------------------


def growth_rates(observations: Sequence[Observation | Mapping[str, Any]], quantity: str
                 ) -> tuple[list[datetime], list[float]]:
    """Growth rate of ``quantity`` between consecutive observations, per day.

    ``quantity`` is ``"max_width_mm"`` (rate in mm/day), ``"length_m"`` (m/day) or
    ``"area_m2"`` (m^2/day). Each rate ``(q_k - q_{k-1}) / dt_days`` is dated at the middle of
    its interval, the time at which a finite difference best estimates the velocity.

    Returns:
        ``(times, rates)``, ``len(observations) - 1`` each, oldest first.

    Raises:
        ValueError: an unknown quantity, invalid observations, two at the same time.
    """
    if quantity not in ("max_width_mm", "length_m", "area_m2"):
        raise ValueError(
            f"quantity must be 'max_width_mm', 'length_m' or 'area_m2', got {quantity!r}"
        )
    obs = _sorted_observations("?", observations)
    times, rates = [], []
    for a, b in zip(obs, obs[1:], strict=False):
        dt = _days(a.surveyed_at, b.surveyed_at)
        times.append(a.surveyed_at + (b.surveyed_at - a.surveyed_at) / 2)
        rates.append((getattr(b, quantity) - getattr(a, quantity)) / dt)
    return times, rates


def accelerations(times: Sequence[datetime], rates: Sequence[float]
                  ) -> tuple[list[datetime], list[float]]:
    """Acceleration between consecutive rates: ``(rate_k - rate_{k-1}) / dt_days``.

    Units are the rate's unit per day (mm/day -> mm/day^2). Each acceleration is dated at the
    middle between the two rates' times.

    Raises:
        ValueError: lengths differ, naive or non-increasing times, non-finite rates.
    """
    t, v = _times_values(times, rates)
    out_t, out_a = [], []
    for k in range(1, len(v)):
        dt = _days(t[k - 1], t[k])
        out_t.append(t[k - 1] + (t[k] - t[k - 1]) / 2)
        out_a.append((v[k] - v[k - 1]) / dt)
    return out_t, out_a


def _times_values(times: Sequence[datetime], values: Sequence[float]
                  ) -> tuple[list[datetime], list[float]]:
    if len(times) != len(values):
        raise ValueError(f"got {len(times)} times but {len(values)} values: give one per time")
    t = [_utc("time", x) for x in times]
    v = [_finite("velocity", x) for x in values]
    for a, b in zip(t, t[1:], strict=False):
        if b <= a:
            raise ValueError(
                f"times must strictly increase, got {a.isoformat()} then {b.isoformat()}: "
                "sort them and drop duplicates"
            )
    return t, v


def inverse_velocity_forecast(times: Sequence[datetime], velocities: Sequence[float], *,
                              window: int = 3, min_points: int = 3,
                              max_horizon_days: float = 3650.0) -> Forecast:
    """Time-of-failure forecast with the inverse-velocity method.

    Method: T. Fukuzono (1985), "A new method for predicting the failure time of a slope",
    Proc. 4th Int. Conf. & Field Workshop on Landslides, Tokyo: in tertiary creep
    ``1/v`` decreases with time, and for the exponent alpha = 2 of Voight's relation
    (``d2x/dt2 = A (dx/dt)^alpha``) it decreases *linearly*; the time where the line through
    the ``1/v`` points reaches zero is the forecast time of failure. Smoothing as recommended
    by A. Carla et al. (2017), "Guidelines on the use of inverse velocity method as a failure
    forecasting tool", Landslides 14: velocities are first smoothed with a short-term simple
    moving average (``window`` points, default 3; 1 = none), each average dated at the mean of
    its window's times (no lag), then inverted.

    Steps: smooth; take the trailing run of smoothed velocities that are > 0 and strictly
    increasing (the current accelerating phase); an *accelerating observation* is a smoothed
    velocity above the one before it, and at least ``min_points`` of them are needed; fit
    ``1/v = a + b t`` to the run (its accelerating observations plus the point they rise
    from) with ``scipy.stats.linregress``; forecast ``t_f = -a / b``.

    Args:
        times: timezone-aware times of the velocities, strictly increasing.
        velocities: velocities, any unit of displacement per day (the forecast does not depend
            on it), e.g. the opening rates from :func:`growth_rates`.
        window: moving-average length, >= 1.
        min_points: accelerating observations (smoothed velocities above their predecessor)
            needed before a forecast is made, >= 3.
        max_horizon_days: a zero crossing further than this after the latest time is
            reported as ``NO_FORECAST`` (the line is nearly flat: no meaningful forecast).

    Returns:
        :class:`Forecast` with status ``INSUFFICIENT_DATA`` (fewer than ``min_points + 1``
        smoothed velocities), ``NOT_ACCELERATING`` (fewer than ``min_points`` accelerating
        observations at the end of the series), ``NO_FORECAST`` (the fit does not reach zero
        within the horizon) or ``FORECAST`` (with ``failure_time``, ``r_squared`` and ``n_points``).

    Raises:
        ValueError: mismatched lengths, naive or non-increasing times, non-finite values,
            ``window < 1``, ``min_points < 3``.
    """
    if int(window) != window or window < 1:
        raise ValueError(f"window must be an integer >= 1 (1 = no smoothing), got {window!r}")
    if int(min_points) != min_points or min_points < 3:
        raise ValueError(f"min_points must be an integer >= 3, got {min_points!r}")
    horizon = _finite("max_horizon_days", max_horizon_days, positive=True)
    t, v = _times_values(times, velocities)
    needed = window + min_points  # min_points rises need min_points + 1 smoothed values
    if len(v) < needed:
        return Forecast(
            ForecastStatus.INSUFFICIENT_DATA,
            message=(f"{len(v)} velocities; the forecast needs at least {needed} "
                     f"({min_points + 1} after a {window}-point moving average)"),
        )
    t0 = t[0]
    days = np.array([_days(t0, x) for x in t])
    vel = np.asarray(v, dtype=float)
    kernel = np.ones(window) / window
    v_s = np.convolve(vel, kernel, mode="valid")
    t_s = np.convolve(days, kernel, mode="valid")
    start = len(v_s) - 1
    if v_s[start] > 0:
        while start > 0 and 0 < v_s[start - 1] < v_s[start]:
            start -= 1
        run = len(v_s) - start
    else:
        run = 0
    rises = max(run - 1, 0)
    if rises < min_points:
        return Forecast(
            ForecastStatus.NOT_ACCELERATING,
            message=(f"{rises} accelerating observation(s) at the end of the series (smoothed "
                     f"velocity above the one before); the forecast needs {min_points}"),
        )
    x, inv = t_s[start:], 1.0 / v_s[start:]
    fit = stats.linregress(x, inv)
    r2 = float(fit.rvalue**2) if math.isfinite(fit.rvalue) else 0.0
    slope, intercept = float(fit.slope), float(fit.intercept)
    last = float(days[-1])
    if not slope < 0:
        return Forecast(ForecastStatus.NO_FORECAST, r_squared=r2, n_points=run,
                        message="1/velocity does not decrease: no time of failure to forecast")
    tf = -intercept / slope
    ahead = tf - last
    if ahead > horizon:
        return Forecast(
            ForecastStatus.NO_FORECAST, r_squared=r2, n_points=run,
            message=(f"1/velocity reaches zero {ahead:.0f} days after the last point, beyond "
                     f"the {horizon:.0f}-day horizon: no meaningful forecast"),
        )
    failure = t0 + timedelta(days=tf)
    return Forecast(
        ForecastStatus.FORECAST, failure_time=failure, r_squared=r2, n_points=run,
        days_after_last=ahead,
        message=(f"inverse-velocity forecast of failure at {failure:%Y-%m-%d %H:%M} UTC, "
                 f"linear fit of {run} points, R^2 = {r2:.3f}"),
    )


# --------------------------------------------------------------------------------------------
# resolution
# --------------------------------------------------------------------------------------------


def min_detectable_opening_rate_mm_per_day(pixel_size_m: float, interval_days: float) -> float:
    """Smallest opening rate the imagery resolves: one pixel of width change per interval.

    ``pixel_size_m * 1000 / interval_days`` (mm/day). Widths measured on a raster are
    quantised to whole pixels (:mod:`geodata.vectorise`), so a smaller change is
    indistinguishable from noise.

    Raises:
        ValueError: a non-positive or non-finite argument.
    """
    px = _finite("pixel_size_m", pixel_size_m, positive=True)
    days = _finite("interval_days", interval_days, positive=True)
    return px * 1000.0 / days


def min_detectable_length_rate_m_per_day(pixel_size_m: float, interval_days: float) -> float:
    """Smallest length growth rate the imagery resolves: one pixel per interval (m/day).

    Raises:
        ValueError: a non-positive or non-finite argument.
    """
    px = _finite("pixel_size_m", pixel_size_m, positive=True)
    days = _finite("interval_days", interval_days, positive=True)
    return px / days


def _below(thresholds: LevelThresholds, floor: float, what: str, unit: str,
           detail: str) -> list[str]:
    return [
        f"{what} {level} threshold {value:g} {unit} is below the smallest {what} this imagery "
        f"resolves (~{floor:.3g} {unit}, one pixel per interval: {detail}); the {level} level "
        "from it is not backed by the imagery: use finer imagery, longer survey intervals, or "
        "raise the threshold"
        for level, value in thresholds.items() if value < floor
    ]


def slope_resolution_warnings(thresholds: SlopeThresholds, pixel_size_m: float | None,
                              interval_days: float) -> list[str]:
    """Warnings for every slope rate threshold finer than one pixel per ``interval_days``.

    See :func:`min_detectable_opening_rate_mm_per_day` and
    :func:`min_detectable_length_rate_m_per_day`. ``pixel_size_m=None`` gives one warning
    that the resolution could not be checked.

    Raises:
        ValueError: a non-positive or non-finite pixel size or interval.
    """
    if pixel_size_m is None:
        return ["pixel size unknown: the rate thresholds could not be checked against the "
                "imagery resolution; record the survey's pixel size"]
    detail = f"{pixel_size_m:g} m pixels over {interval_days:.3g} days"
    out = _below(thresholds.opening_rate_mm_per_day,
                 min_detectable_opening_rate_mm_per_day(pixel_size_m, interval_days),
                 "opening rate", "mm/day", detail)
    out += _below(thresholds.length_rate_m_per_day,
                  min_detectable_length_rate_m_per_day(pixel_size_m, interval_days),
                  "length growth rate", "m/day", detail)
    return out


def structure_resolution_warnings(thresholds: StructureThresholds,
                                  pixel_size_m: float | None) -> list[str]:
    """Warnings for BRE 251 width bounds and the growth threshold finer than one pixel.

    Raises:
        ValueError: a non-positive or non-finite pixel size.
    """
    if pixel_size_m is None:
        return ["pixel size unknown: the width thresholds could not be checked against the "
                "imagery resolution; record the survey's pixel size"]
    px_mm = _finite("pixel_size_m", pixel_size_m, positive=True) * 1000.0
    out = []
    bounds = [upper for _c, _n, upper in BRE251_CATEGORIES[:-2] if upper < px_mm]
    if bounds:
        last = max(c for c, _n, upper in BRE251_CATEGORIES if upper in bounds) + 1
        out.append(
            f"BRE 251 width bound(s) {', '.join(f'{b:g}' for b in bounds)} mm are below one "
            f"pixel ({px_mm:.3g} mm): categories 0..{last} cannot be told apart in this imagery "
            "(widths are whole pixels); use closer photos for a category below "
            f"{last + 1}"
        )
    if thresholds.width_growth_mm < px_mm:
        out.append(
            f"width growth threshold {thresholds.width_growth_mm:g} mm is below one pixel "
            f"({px_mm:.3g} mm): growth alerts from it are not backed by the imagery; raise it "
            "to at least one pixel or use closer photos"
        )
    return out


# --------------------------------------------------------------------------------------------
# per-track rules
# --------------------------------------------------------------------------------------------


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
    warn_all = slope_resolution_warnings(thresholds, px, dt)
    out: list[AlertCandidate] = []

    def add(c: AlertCandidate) -> None:
        if include_green or c.is_alert:
            out.append(c)

    specs = (
        ("slope.opening_rate", "max_width_mm", "opening rate", "mm/day", "mm",
         thresholds.opening_rate_mm_per_day,
         None if px is None else min_detectable_opening_rate_mm_per_day(px, dt)),
        ("slope.length_rate", "length_m", "length growth rate", "m/day", "m",
         thresholds.length_rate_m_per_day,
         None if px is None else min_detectable_length_rate_m_per_day(px, dt)),
    )
    for rule, quantity, what, unit, qunit, levels, floor in specs:
        change = getattr(last, quantity) - getattr(prev, quantity)
        rate = change / dt
        level = levels.level_for(rate)
        warns = [w for w in warn_all if w.startswith(what) or w.startswith("pixel size")]
        if floor is not None and level > Level.GREEN and rate < floor:
            warns.append(
                f"the measured {what} {_fmt(rate)} {unit} ({_fmt(change)} {qunit} in "
                f"{dt:.3g} days) is a change smaller than one pixel: within measurement noise"
            )
        add(AlertCandidate(
            site=site, track=track, level=level, rule=rule, measured_value=rate, unit=unit,
            threshold=levels.threshold_of(level),
            message=(f"crack {track!r} {what} {_fmt(rate)} {unit} over {dt:.3g} days "
                     f"({quantity} {_fmt(getattr(prev, quantity))} -> "
                     f"{_fmt(getattr(last, quantity))} {qunit}): {level}"),
            resolution_warnings=tuple(warns), observed_at=last.surveyed_at,
        ))

    rate_t, rates = growth_rates(obs, "max_width_mm")
    forecast = inverse_velocity_forecast(
        rate_t, rates, window=thresholds.smoothing_window,
        min_points=thresholds.min_accelerating_points,
    )
    n = thresholds.acceleration_intervals
    _acc_t, acc = accelerations(rate_t, rates)
    opening_warns = tuple(w for w in warn_all
                          if w.startswith("opening rate") or w.startswith("pixel size"))
    if len(acc) >= n:
        accelerating = all(a > 0 for a in acc[-n:]) and all(r > 0 for r in rates[-n - 1:])
        level = thresholds.acceleration_level if accelerating else Level.GREEN
        add(AlertCandidate(
            site=site, track=track, level=level, rule="slope.acceleration",
            measured_value=acc[-1], unit="mm/day^2", threshold=0.0,
            message=(f"crack {track!r} opening rate "
                     f"{'rose' if accelerating else 'did not rise'} over each of the last {n} "
                     f"intervals (latest acceleration {_fmt(acc[-1])} mm/day^2, opening rates "
                     f"{', '.join(_fmt(r) for r in rates[-n - 1:])} mm/day); "
                     f"forecast: {forecast.status}"),
            forecast=forecast, resolution_warnings=opening_warns if level else (),
            observed_at=last.surveyed_at,
        ))
    if forecast.status is ForecastStatus.FORECAST:
        # lead time from the latest *survey* (velocities are dated mid-interval)
        assert forecast.failure_time is not None
        to_failure = _days(last.surveyed_at, forecast.failure_time)
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
        add(AlertCandidate(
            site=site, track=track, level=level, rule="slope.inverse_velocity",
            measured_value=to_failure, unit="days", threshold=threshold,
            message=(f"crack {track!r}: {forecast.message}; {to_failure:.1f} days after the "
                     f"latest survey, {why}"),
            forecast=forecast, resolution_warnings=opening_warns, observed_at=last.surveyed_at,
        ))
    return out


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
    warns = tuple(structure_resolution_warnings(thresholds, px))
    category = bre251_category(last.max_width_mm)
    name = BRE251_CATEGORIES[category][1]
    lower = 0.0 if category == 0 else BRE251_CATEGORIES[category - 1][2]
    bre_level = thresholds.category_levels[category]
    message = (f"crack {track!r} max width {_fmt(last.max_width_mm)} mm: BRE Digest 251 "
               f"category {category} ({name}): {bre_level}")
    bre_warns = tuple(w for w in warns if w.startswith("BRE") or w.startswith("pixel size"))
    if px is not None and last.max_width_mm <= px * 1000.0 * (1 + 1e-6):
        # A crack measured one pixel wide (or less) has an unresolved width: the imagery
        # only says it is narrower than about a pixel, so its category is an upper bound
        # and cannot raise an alert (at 0.5 m pixels every crack would read "very severe").
        unresolved = (f"crack {track!r} is at most one pixel wide ({_fmt(px * 1000.0)} mm "
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
            message=(f"crack {track!r} widened by {_fmt(growth)} mm since "
                     f"{prev.surveyed_at:%Y-%m-%d} ({_fmt(prev.max_width_mm)} -> "
                     f"{_fmt(last.max_width_mm)} mm; threshold "
                     f"{thresholds.width_growth_mm:g} mm): {level}"),
            resolution_warnings=tuple(w for w in warns if w.startswith("width growth") or
                                      w.startswith("pixel size")) if level else (),
            observed_at=last.surveyed_at,
        )
        if include_green or c.is_alert:
            out.append(c)
    return out


# --------------------------------------------------------------------------------------------
# false-alarm control: confirmation of slope growth exceedances
# --------------------------------------------------------------------------------------------

#: Slope rules whose exceedance needs confirmation, with the measured quantity and the
#: :class:`SlopeThresholds` field of their thresholds: the velocity thresholds, which one
#: interval between two surveys can exceed. ``slope.acceleration`` and
#: ``slope.inverse_velocity`` are not held back: they need several intervals by
#: construction (``acceleration_intervals`` >= 2, ``min_accelerating_points`` >= 3).
CONFIRMED_RULES: dict[str, tuple[str, str]] = {
    "slope.opening_rate": ("max_width_mm", "opening_rate_mm_per_day"),
    "slope.length_rate": ("length_m", "length_rate_m_per_day"),
}

#: The source of the confirmation rule.
CONFIRMATION_REFERENCE = (
    "E. Intrieri, G. Gigli, F. Mugnai, R. Fanti, N. Casagli (2012), \"Design and "
    "implementation of a landslide early warning system\", Engineering Geology 147-148, "
    "124-136 (Torgiovannetto rockslide)"
)


def _interval_levels(series: Sequence[Observation | Mapping[str, Any]], quantity: str,
                     levels: LevelThresholds) -> list[Level]:
    """The level each interval between consecutive observations reaches, oldest first."""
    _times, rates = growth_rates(series, quantity)
    return [levels.level_for(r) for r in rates]


def confirm_slope_candidates(
    candidates: Sequence[AlertCandidate],
    tracks_series: Mapping[Hashable, Sequence[Observation | Mapping[str, Any]]],
    thresholds: SlopeThresholds,
) -> list[AlertCandidate]:
    """False-alarm control: hold back slope growth exceedances until they are confirmed.

    Rule, after E. Intrieri et al. (2012), "Design and implementation of a landslide early
    warning system", Eng. Geol. 147-148, 124-136: at the Torgiovannetto rockslide the
    attention level starts only when at least two sensors exceed the velocity threshold, so
    that one faulty reading does not raise an alarm (a low false-alarm rate is a design goal).
    Here a crack is a sensor and a survey a reading. A growth-rate candidate
    (:data:`CONFIRMED_RULES`) of level L is *confirmed* at the highest level C <= L that

    * ``"consecutive"``: the same crack (track, i.e. its lineage) reaches in each of its last
      ``confirmation_surveys`` (N >= 2) intervals, i.e. in N consecutive surveys (needs
      N + 1 observations of the track), or
    * ``"multi_crack"``: at least ``confirmation_cracks`` (K >= 2) distinct cracks of the
      site reach with the same rule in the same survey (the K-th highest level),

    (``"either"``, the default: the higher of the two; ``"none"``: no confirmation).

    Outcome per candidate: C == L: unchanged, ``confirmation`` says how; green < C < L: the
    level is lowered to C (the threshold with it) and the message says which level still
    needs confirmation (the next survey that confirms it escalates the alert); C == green:
    ``watch=True``, level L kept (what was measured; shown as *watch* on the map and the
    Alerts page, no notification). Other candidates are returned as they are.

    Args:
        candidates: :func:`evaluate_slope_track` candidates of one site (one evaluation).
        tracks_series: the observations they were computed from, per track.
        thresholds: the site's thresholds (``confirmation``, ``confirmation_surveys``,
            ``confirmation_cracks``).

    Returns:
        The candidates, in the same order.
    """
    mode = Confirmation(thresholds.confirmation)
    out = list(candidates)
    if mode is Confirmation.NONE:
        return out
    n, k = thresholds.confirmation_surveys, thresholds.confirmation_cracks
    same_survey: dict[tuple[str, datetime | None], dict[Hashable, Level]] = {}
    for c in out:
        if c.rule in CONFIRMED_RULES and c.is_alert and c.track is not None:
            levels_here = same_survey.setdefault((c.rule, c.observed_at), {})
            levels_here[c.track] = max(levels_here.get(c.track, Level.GREEN), c.level)
    result = []
    for c in out:
        if c.rule not in CONFIRMED_RULES or not c.is_alert or c.track is None:
            result.append(c)
            continue
        quantity, field_name = CONFIRMED_RULES[c.rule]
        levels: LevelThresholds = getattr(thresholds, field_name)
        consecutive, intervals = Level.GREEN, 0
        if mode in (Confirmation.EITHER, Confirmation.CONSECUTIVE) and c.track in tracks_series:
            lv = _interval_levels(tracks_series[c.track], quantity, levels)
            run = 0
            for level in reversed(lv):  # exceeding intervals at the end of the lineage
                if level == Level.GREEN:
                    break
                run += 1
            intervals = run
            if len(lv) >= n:
                consecutive = min(lv[-n:])
        multi, cracks = Level.GREEN, 0
        if mode in (Confirmation.EITHER, Confirmation.MULTI_CRACK):
            peers = sorted(same_survey.get((c.rule, c.observed_at), {}).values(), reverse=True)
            cracks = len(peers)
            if cracks >= k:
                multi = peers[k - 1]
        confirmed = min(c.level, max(consecutive, multi))
        ways = []
        if confirmed > Level.GREEN and consecutive >= confirmed:
            ways.append(f"exceeded in {n} consecutive surveys of this crack")
        if confirmed > Level.GREEN and multi >= confirmed:
            ways.append(f"{cracks} cracks of the site exceed in this survey")
        needs = {Confirmation.EITHER: f"{n} consecutive surveys of this crack or {k} cracks "
                                      f"in one survey",
                 Confirmation.CONSECUTIVE: f"{n} consecutive surveys of this crack",
                 Confirmation.MULTI_CRACK: f"{k} cracks in one survey"}[mode]
        seen = (f"this crack exceeds in its last {intervals} survey(s), {cracks} crack(s) "
                f"exceed in this survey")
        if confirmed == c.level:
            why = f"confirmed: {' and '.join(ways)}"
            result.append(replace(c, confirmation=why, message=f"{c.message} ({why})"))
        elif confirmed > Level.GREEN:
            why = (f"confirmed {confirmed}: {' and '.join(ways)}; {c.level} measured, not yet "
                   f"confirmed (needs {needs}; {seen})")
            result.append(replace(
                c, level=confirmed, threshold=levels.threshold_of(confirmed),
                message=f"{c.message} -> {why}", confirmation=why))
        else:
            why = (f"not confirmed: needs {needs}; {seen} (false-alarm control after "
                   f"Intrieri et al. 2012)")
            result.append(replace(
                c, watch=True, confirmation=why,
                message=f"{c.message}; WATCH, unconfirmed: nobody is notified until it is "
                        f"confirmed ({why})"))
    return result


# --------------------------------------------------------------------------------------------
# site
# --------------------------------------------------------------------------------------------


def _new_cracks(site: Hashable | None, count: int, maximum: int, profile: Profile
                ) -> AlertCandidate:
    level = Level.YELLOW if count > maximum else Level.GREEN
    return AlertCandidate(
        site=site, track=None, level=level, rule=f"{profile}.new_cracks",
        measured_value=float(count), unit="cracks", threshold=float(maximum),
        message=(f"{count} new crack(s) in the latest survey (more than {maximum} is yellow): "
                 f"{level}"),
    )


def evaluate_site(profile: Profile | str,
                  thresholds: SlopeThresholds | StructureThresholds | Mapping[str, Any] | None,
                  tracks_series: Mapping[Hashable, Sequence[Observation | Mapping[str, Any]]],
                  pixel_size_m: float | None, new_crack_count: int = 0, *,
                  site: Hashable | None = None,
                  include_green: bool = False) -> list[AlertCandidate]:
    """Apply a site's rules to all its tracks.

    Args:
        profile: ``"slope"`` or ``"structure"``.
        thresholds: the profile's thresholds, a mapping for their ``from_dict``, or ``None``
            for the defaults.
        tracks_series: track id -> that track's observations (:class:`Observation` or mappings
            with ``surveyed_at``, ``length_m``, ``max_width_mm``, ``area_m2``), any order.
        pixel_size_m: ground pixel size of the latest survey, metres (``None``: unknown; the
            resolution check then only warns that it could not run).
        new_crack_count: tracks started by the latest survey.
        site: site id or name, copied into every candidate's key.
        include_green: also return green candidates (e.g. for a dashboard table).

    Slope growth-rate candidates go through :func:`confirm_slope_candidates` (false-alarm
    control): unconfirmed ones come back with ``watch=True``.

    Returns:
        Candidates, highest level first: track-level from each track, site-level for new
        cracks and, when any threshold is finer than the imagery resolves, one green
        ``<profile>.resolution`` candidate carrying the warnings (returned even without
        ``include_green``, so a warning is never dropped).

    Raises:
        ValueError: unknown profile, invalid thresholds, observations or pixel size.
        TypeError: thresholds of the other profile.
    """
    try:
        prof = Profile(str(profile).strip().lower())
    except ValueError:
        raise ValueError(f"unknown site profile {profile!r}: use 'slope' or 'structure'") from None
    if pixel_size_m is not None:
        pixel_size_m = _finite("pixel_size_m", pixel_size_m, positive=True)
    count = int(new_crack_count)
    if count != new_crack_count or count < 0:
        raise ValueError(f"new_crack_count must be an integer >= 0, got {new_crack_count!r}")
    expected = SlopeThresholds if prof is Profile.SLOPE else StructureThresholds
    if thresholds is None:
        th = expected()
    elif isinstance(thresholds, Mapping):
        th = expected.from_dict(thresholds)
    elif isinstance(thresholds, expected):
        th = thresholds
    else:
        raise TypeError(
            f"a {prof} site needs {expected.__name__}, got {type(thresholds).__name__}: "
            "check the site's profile"
        )

    out: list[AlertCandidate] = []
    site_warnings: list[str] = []
    for track, series in tracks_series.items():
        if prof is Profile.SLOPE:
            assert isinstance(th, SlopeThresholds)
            cands = evaluate_slope_track(site, track, series, th, pixel_size_m,
                                         include_green=include_green)
        else:
            assert isinstance(th, StructureThresholds)
            cands = evaluate_structure_track(site, track, series, th, pixel_size_m,
                                             include_green=include_green)
        out.extend(cands)
    # site-level resolution summary, from the site's pixel size and its shortest latest interval
    if prof is Profile.SLOPE:
        assert isinstance(th, SlopeThresholds)
        intervals = []
        for track, series in tracks_series.items():
            obs = _sorted_observations(track, series)
            if len(obs) >= 2:
                intervals.append(_days(obs[-2].surveyed_at, obs[-1].surveyed_at))
        if intervals:
            site_warnings = slope_resolution_warnings(th, pixel_size_m, min(intervals))
        if th.new_cracks_max is not None:
            out.append(_new_cracks(site, count, th.new_cracks_max, prof))
    else:
        assert isinstance(th, StructureThresholds)
        site_warnings = structure_resolution_warnings(th, pixel_size_m)
        out.append(_new_cracks(site, count, th.new_cracks_max, prof))
    if prof is Profile.SLOPE:
        assert isinstance(th, SlopeThresholds)
        out = confirm_slope_candidates(out, tracks_series, th)
    out = [c for c in out if include_green or c.is_alert or c.resolution_warnings]
    if site_warnings:
        out.append(AlertCandidate(
            site=site, track=None, level=Level.GREEN, rule=f"{prof}.resolution",
            measured_value=float(pixel_size_m) if pixel_size_m is not None else math.nan,
            unit="m", threshold=None,
            message=f"{len(site_warnings)} threshold(s) finer than the imagery resolves",
            resolution_warnings=tuple(site_warnings),
        ))
    return sorted(out, key=lambda c: -c.level)
