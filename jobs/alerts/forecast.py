"""Growth rates, acceleration and the inverse-velocity time-of-failure forecast (Fukuzono 1985;
smoothing after Carla et al. 2017). Part of :mod:`jobs.alerts` (see its docstring for the rules,
levels and lifecycle).
"""


from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from scipy import stats

from geodata.timestamps import utc_aware
from jobs.alerts.candidates import Forecast, ForecastStatus
from jobs.alerts.core import Observation, _days, _finite, _sorted_observations


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
    t = [utc_aware(x, "time") for x in times]
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
    kernel = np.ones(window) / window
    v_s = np.convolve(np.asarray(v, dtype=float), kernel, mode="valid")
    t_s = np.convolve(days, kernel, mode="valid")
    start = _trailing_rise_start(v_s)
    run = len(v_s) - start
    rises = max(run - 1, 0)
    if rises < min_points:
        return Forecast(
            ForecastStatus.NOT_ACCELERATING,
            message=(f"{rises} accelerating observation(s) at the end of the series (smoothed "
                     f"velocity above the one before); the forecast needs {min_points}"),
        )
    return _zero_crossing(t0, float(days[-1]), t_s[start:], 1.0 / v_s[start:], horizon)


def _trailing_rise_start(v_s: np.ndarray) -> int:
    """Where the trailing run of values > 0 and strictly increasing starts (``len(v_s)``
    when the last value is not > 0: no run)."""
    start = len(v_s) - 1
    if not v_s[start] > 0:
        return len(v_s)
    while start > 0 and 0 < v_s[start - 1] < v_s[start]:
        start -= 1
    return start


def _zero_crossing(t0: datetime, last: float, x: np.ndarray, inv: np.ndarray,
                   horizon: float) -> Forecast:
    """Fit ``1/v = a + b t`` (``x``: days after ``t0``, ``inv``: 1/velocity) and forecast where
    it reaches zero, unless it does not decrease or crosses beyond ``horizon`` days after
    ``last`` (days after ``t0``)."""
    run = len(x)
    fit = stats.linregress(x, inv)
    r2 = float(fit.rvalue**2) if math.isfinite(fit.rvalue) else 0.0
    slope, intercept = float(fit.slope), float(fit.intercept)
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
