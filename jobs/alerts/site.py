"""One site's evaluation (:func:`evaluate_site`): every track's rules, the site rules, resolution
warnings and slope confirmation. Part of :mod:`jobs.alerts` (see its docstring for the rules,
levels and lifecycle).
"""


from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from jobs.alerts.candidates import AlertCandidate
from jobs.alerts.confirmation import confirm_slope_candidates
from jobs.alerts.core import Level, Observation, Profile, _days, _finite, _sorted_observations
from jobs.alerts.resolution import slope_resolution_warnings, structure_resolution_warnings
from jobs.alerts.rules import evaluate_slope_track, evaluate_structure_track
from jobs.alerts.thresholds import SlopeThresholds, StructureThresholds


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
    th = _thresholds_of(prof, thresholds)
    if isinstance(th, SlopeThresholds):
        out, site_warnings = _slope_site(site, th, tracks_series, pixel_size_m, count,
                                         include_green)
    else:
        out, site_warnings = _structure_site(site, th, tracks_series, pixel_size_m, count,
                                             include_green)
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


def _thresholds_of(prof: Profile,
                   thresholds: SlopeThresholds | StructureThresholds | Mapping[str, Any] | None
                   ) -> SlopeThresholds | StructureThresholds:
    """The profile's thresholds from what :func:`evaluate_site` was given (None: defaults).

    Raises:
        ValueError: invalid threshold values.
        TypeError: thresholds of the other profile.
    """
    expected = SlopeThresholds if prof is Profile.SLOPE else StructureThresholds
    if thresholds is None:
        return expected()
    if isinstance(thresholds, Mapping):
        return expected.from_dict(thresholds)
    if isinstance(thresholds, expected):
        return thresholds
    raise TypeError(
        f"a {prof} site needs {expected.__name__}, got {type(thresholds).__name__}: "
        "check the site's profile"
    )


def _slope_site(site: Hashable | None, th: SlopeThresholds,
                tracks_series: Mapping[Hashable, Sequence[Observation | Mapping[str, Any]]],
                pixel_size_m: float | None, count: int, include_green: bool
                ) -> tuple[list[AlertCandidate], list[str]]:
    """The slope rules of every track and the site, confirmed (false-alarm control), and the
    site's resolution warnings (its pixel size against its shortest latest interval)."""
    out: list[AlertCandidate] = []
    intervals = []
    for track, series in tracks_series.items():
        out.extend(evaluate_slope_track(site, track, series, th, pixel_size_m,
                                        include_green=include_green))
    for track, series in tracks_series.items():
        obs = _sorted_observations(track, series)
        if len(obs) >= 2:
            intervals.append(_days(obs[-2].surveyed_at, obs[-1].surveyed_at))
    site_warnings = slope_resolution_warnings(th, pixel_size_m, min(intervals)) \
        if intervals else []
    if th.new_cracks_max is not None:
        out.append(_new_cracks(site, count, th.new_cracks_max, Profile.SLOPE))
    return confirm_slope_candidates(out, tracks_series, th), site_warnings


def _structure_site(site: Hashable | None, th: StructureThresholds,
                    tracks_series: Mapping[Hashable, Sequence[Observation | Mapping[str, Any]]],
                    pixel_size_m: float | None, count: int, include_green: bool
                    ) -> tuple[list[AlertCandidate], list[str]]:
    """The structure rules of every track and the site, and the site's resolution warnings."""
    out: list[AlertCandidate] = []
    for track, series in tracks_series.items():
        out.extend(evaluate_structure_track(site, track, series, th, pixel_size_m,
                                            include_green=include_green))
    out.append(_new_cracks(site, count, th.new_cracks_max, Profile.STRUCTURE))
    return out, structure_resolution_warnings(th, pixel_size_m)
