"""What a rule returns (:class:`AlertCandidate`, :class:`Forecast`) and the lifecycle decision the
store applies (:func:`lifecycle_action`). Part of :mod:`jobs.alerts` (see its docstring for the
rules, levels and lifecycle).
"""


from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from jobs.alerts.core import Level


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
