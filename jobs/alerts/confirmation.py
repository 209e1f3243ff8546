"""False-alarm control, confirmation of slope growth exceedances (after Intrieri et al. 2012). Part
of :mod:`jobs.alerts` (see its docstring for the rules, levels and lifecycle).
"""


from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from jobs.alerts.candidates import AlertCandidate
from jobs.alerts.core import Confirmation, Level, Observation
from jobs.alerts.forecast import growth_rates
from jobs.alerts.thresholds import LevelThresholds, SlopeThresholds

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
    same_survey = _levels_per_survey(out)
    return [_confirm(c, mode, tracks_series, thresholds,
                     same_survey.get((c.rule, c.observed_at), {}))
            if _needs_confirmation(c) else c for c in out]


def _needs_confirmation(c: AlertCandidate) -> bool:
    """A growth-rate alert of a crack (:data:`CONFIRMED_RULES`), held back until confirmed."""
    return c.rule in CONFIRMED_RULES and c.is_alert and c.track is not None


def _levels_per_survey(candidates: Sequence[AlertCandidate]
                       ) -> dict[tuple[str, datetime | None], dict[Hashable, Level]]:
    """Per (rule, survey time): the highest level each crack reaches with that rule."""
    same_survey: dict[tuple[str, datetime | None], dict[Hashable, Level]] = {}
    for c in candidates:
        if _needs_confirmation(c):
            levels_here = same_survey.setdefault((c.rule, c.observed_at), {})
            levels_here[c.track] = max(levels_here.get(c.track, Level.GREEN), c.level)
    return same_survey


def _consecutive(series: Sequence[Observation | Mapping[str, Any]] | None, quantity: str,
                 levels: LevelThresholds, n: int) -> tuple[Level, int]:
    """The level the crack reaches in each of its last ``n`` intervals (green if fewer), and
    how many of its last intervals exceed (any level)."""
    if series is None:
        return Level.GREEN, 0
    lv = _interval_levels(series, quantity, levels)
    run = 0
    for level in reversed(lv):  # exceeding intervals at the end of the lineage
        if level == Level.GREEN:
            break
        run += 1
    return (min(lv[-n:]) if len(lv) >= n else Level.GREEN), run


def _multi_crack(peers: Mapping[Hashable, Level], k: int) -> tuple[Level, int]:
    """The level at least ``k`` cracks reach in the survey (the k-th highest; green if fewer
    than ``k``), and how many cracks exceed."""
    ranked = sorted(peers.values(), reverse=True)
    return (ranked[k - 1] if len(ranked) >= k else Level.GREEN), len(ranked)


def _confirm(c: AlertCandidate, mode: Confirmation,
             tracks_series: Mapping[Hashable, Sequence[Observation | Mapping[str, Any]]],
             thresholds: SlopeThresholds, peers: Mapping[Hashable, Level]) -> AlertCandidate:
    """``c`` confirmed, lowered or turned into a watch (see :func:`confirm_slope_candidates`);
    ``peers``: the level of each crack with ``c``'s rule in ``c``'s survey."""
    n, k = thresholds.confirmation_surveys, thresholds.confirmation_cracks
    quantity, field_name = CONFIRMED_RULES[c.rule]
    levels: LevelThresholds = getattr(thresholds, field_name)
    consecutive, intervals = Level.GREEN, 0
    if mode in (Confirmation.EITHER, Confirmation.CONSECUTIVE):
        consecutive, intervals = _consecutive(tracks_series.get(c.track), quantity, levels, n)
    multi, cracks = Level.GREEN, 0
    if mode in (Confirmation.EITHER, Confirmation.MULTI_CRACK):
        multi, cracks = _multi_crack(peers, k)
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
        return replace(c, confirmation=why, message=f"{c.message} ({why})")
    if confirmed > Level.GREEN:
        why = (f"confirmed {confirmed}: {' and '.join(ways)}; {c.level} measured, not yet "
               f"confirmed (needs {needs}; {seen})")
        return replace(c, level=confirmed, threshold=levels.threshold_of(confirmed),
                       message=f"{c.message} -> {why}", confirmation=why)
    why = (f"not confirmed: needs {needs}; {seen} (false-alarm control after "
           f"Intrieri et al. 2012)")
    return replace(c, watch=True, confirmation=why,
                   message=f"{c.message}; WATCH, unconfirmed: nobody is notified until it is "
                           f"confirmed ({why})")
