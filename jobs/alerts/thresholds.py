"""The per-site thresholds of each profile (:class:`SlopeThresholds`,
:class:`StructureThresholds`), each a :class:`LevelThresholds` per rule. Part of
:mod:`jobs.alerts` (see its docstring for the rules, levels and lifecycle).
"""


from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.alerts.core import Confirmation, Level, _finite


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
