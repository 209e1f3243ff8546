"""Crack tracks: one track over time, a site's survey summaries, defect history and
tracks, a survey's growth events."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from geodata.errors import RecordNotFoundError
from geodata.store.api import crack_severity
from geodata.store.engine import session_scope
from geodata.store.lookup import _site, _survey
from geodata.store.models import Crack, CrackTrack, Survey, SurveySummary, TrackObservation

__all__ = [
    "site_defect_history",
    "site_survey_summaries",
    "site_tracks",
    "survey_track_events",
    "track_timeseries",
]


def track_timeseries(bind: Engine | Session, track_id: int) -> pd.DataFrame:
    """One crack track over time: one row per survey the track took part in.

    Returns:
        Columns ``survey_id``, ``acquired_at`` (UTC), ``event``, ``crack_id``, ``length_m``,
        ``mean_width_mm``, ``max_width_mm``, ``area_m2``, ``days_since_previous``,
        ``delta_length_m``, ``delta_max_width_mm``, ``delta_area_m2``,
        ``length_rate_m_per_day``, ``max_width_rate_mm_per_day``, ``area_rate_m2_per_day``
        (measurements are NaN for ``merged``/``vanished`` rows), ordered by time.

    Raises:
        RecordNotFoundError: no such track.
    """
    cols = ["survey_id", "acquired_at", "event", "crack_id", "length_m", "mean_width_mm",
            "max_width_mm", "area_m2", "days_since_previous", "delta_length_m",
            "delta_max_width_mm", "delta_area_m2", "length_rate_m_per_day",
            "max_width_rate_mm_per_day", "area_rate_m2_per_day"]
    with session_scope(bind) as s:
        if s.get(CrackTrack, track_id) is None:
            raise RecordNotFoundError(f"no crack track with id {track_id}; list a site's "
                                      f"tracks with geodata.queries.site_defect_history")
        rows = s.execute(select(*[getattr(TrackObservation, c) for c in cols])
                         .where(TrackObservation.track_id == track_id)
                         .order_by(TrackObservation.acquired_at, TrackObservation.id)).all()
    frame = pd.DataFrame(rows, columns=cols)
    frame["crack_id"] = frame["crack_id"].astype("Int64")
    for c in cols[4:]:
        frame[c] = frame[c].astype(float)
    return frame


def site_survey_summaries(bind: Engine | Session, site: int | str) -> pd.DataFrame:
    """Per survey of a site (time order): ``survey_id``, ``acquired_at``, ``crack_count``,
    ``total_length_m``, ``total_area_m2``, ``max_width_mm``, ``new_count``,
    ``continued_count``, ``split_count``, ``merged_count``, ``vanished_count``,
    ``tolerance_m``."""
    cols = ["survey_id", "acquired_at", "crack_count", "total_length_m", "total_area_m2",
            "max_width_mm", "new_count", "continued_count", "split_count", "merged_count",
            "vanished_count", "tolerance_m"]
    with session_scope(bind) as s:
        site_row = _site(s, site)
        rows = s.execute(select(*[getattr(SurveySummary, c) for c in cols])
                         .where(SurveySummary.site_id == site_row.id)
                         .order_by(SurveySummary.acquired_at)).all()
    return pd.DataFrame(rows, columns=cols)


def site_defect_history(
    bind: Engine | Session,
    site: int | str,
    *,
    length_noise_px: float = 2.0,
    width_noise_px: float = 1.0,
) -> pd.DataFrame:
    """Every crack track of a site with first seen, last measured and trend.

    Trend compares the first and the last measurement of the track: ``"growing"`` if the
    length grew by more than ``length_noise_px`` pixels or the maximum width by at least
    ``width_noise_px`` pixels (widths are measured in whole pixels); ``"shrinking"`` if the
    length fell by more than ``length_noise_px`` pixels and the width did not grow;
    ``"stable"`` otherwise; ``"new"`` with a single measurement. Pixels are the last
    survey's pixel size (0 if unknown: any change counts).

    Returns:
        One row per track (newest first seen first): ``track_id``, ``status``,
        ``first_seen_at``, ``last_seen_at`` (last measured, UTC), ``surveys_measured``,
        ``first_length_m``, ``last_length_m``, ``change_length_m``, ``first_max_width_mm``,
        ``last_max_width_mm``, ``change_max_width_mm``, ``last_area_m2``,
        ``length_rate_m_per_day`` and ``max_width_rate_mm_per_day`` (first to last),
        ``trend``, ``severity`` (of the last width), ``parent_track_id``,
        ``merged_into_track_id``, ``view_id`` (the photo view a photo track is followed in,
        :mod:`geodata.views`; <NA> for map tracks).
    """
    from geodata.views import view_track_ids

    cols = ["track_id", "status", "first_seen_at", "last_seen_at", "surveys_measured",
            "first_length_m", "last_length_m", "change_length_m", "first_max_width_mm",
            "last_max_width_mm", "change_max_width_mm", "last_area_m2", "length_rate_m_per_day",
            "max_width_rate_mm_per_day", "trend", "severity", "parent_track_id",
            "merged_into_track_id", "view_id"]
    with session_scope(bind) as s:
        site_row = _site(s, site)
        views = view_track_ids(s, site_row.id)
        tracks = s.execute(select(CrackTrack.id, CrackTrack.status, CrackTrack.first_seen_at,
                                  CrackTrack.last_seen_at, CrackTrack.parent_track_id,
                                  CrackTrack.merged_into_track_id)
                           .where(CrackTrack.site_id == site_row.id)).all()
        obs = s.execute(
            select(TrackObservation.track_id, TrackObservation.acquired_at,
                   TrackObservation.length_m, TrackObservation.max_width_mm,
                   TrackObservation.area_m2, Survey.pixel_size_m)
            .join(Survey, Survey.id == TrackObservation.survey_id)
            .join(CrackTrack, CrackTrack.id == TrackObservation.track_id)
            .where(CrackTrack.site_id == site_row.id, TrackObservation.length_m.is_not(None))
            .order_by(TrackObservation.track_id, TrackObservation.acquired_at)).all()
    by_track: dict[int, list[Any]] = {}
    for o in obs:
        by_track.setdefault(o.track_id, []).append(o)
    rows = [_history_row(t, by_track[t.id], views.get(t.id), length_noise_px, width_noise_px)
            for t in tracks if by_track.get(t.id)]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("parent_track_id", "merged_into_track_id", "view_id"):
        frame[c] = frame[c].astype("Int64")
    return frame.sort_values(["first_seen_at", "track_id"], ascending=[False, True],
                             ignore_index=True)



def _history_row(t: Any, ms: list[Any], view_id: int | None, length_noise_px: float,
                 width_noise_px: float) -> dict[str, Any]:
    """One row of :func:`site_defect_history`: track ``t`` and its measurements ``ms``
    (oldest first, at least one)."""
    first, last = ms[0], ms[-1]
    d_len = last.length_m - first.length_m
    d_w = last.max_width_mm - first.max_width_mm
    days = (last.acquired_at - first.acquired_at).total_seconds() / 86400.0
    px = last.pixel_size_m or 0.0
    if len(ms) == 1:
        trend = "new"
    elif d_len > length_noise_px * px or d_w >= max(width_noise_px * px * 1000.0, 1e-9):
        trend = "growing"
    elif d_len < -length_noise_px * px and d_w <= 0:
        trend = "shrinking"
    else:
        trend = "stable"
    return {
        "track_id": t.id, "status": t.status, "first_seen_at": t.first_seen_at,
        "last_seen_at": last.acquired_at, "surveys_measured": len(ms),
        "first_length_m": first.length_m, "last_length_m": last.length_m,
        "change_length_m": d_len, "first_max_width_mm": first.max_width_mm,
        "last_max_width_mm": last.max_width_mm, "change_max_width_mm": d_w,
        "last_area_m2": last.area_m2,
        "length_rate_m_per_day": d_len / days if days > 0 else np.nan,
        "max_width_rate_mm_per_day": d_w / days if days > 0 else np.nan,
        "trend": trend, "severity": crack_severity(last.max_width_mm),
        "parent_track_id": t.parent_track_id, "merged_into_track_id": t.merged_into_track_id,
        "view_id": view_id,
    }


def site_tracks(bind: Engine | Session, site: int | str) -> gpd.GeoDataFrame:
    """A site's crack tracks with the polygon of their last measured crack (site CRS).

    Columns: those of :func:`site_defect_history` plus ``geometry`` (None when the last
    crack is gone, e.g. its survey was re-run without it, and for photo tracks, whose
    cracks are in photo pixels: :func:`geodata.views.survey_photo_cracks_on_map` places
    those of nadir photos approximately).
    """
    with session_scope(bind) as s:
        site_row = _site(s, site)
        epsg = site_row.crs_epsg
        history = site_defect_history(s, site_row.id)
        last_obs = (select(TrackObservation.track_id,
                           func.max(TrackObservation.acquired_at).label("t"))
                    .join(CrackTrack, CrackTrack.id == TrackObservation.track_id)
                    .where(CrackTrack.site_id == site_row.id,
                           TrackObservation.length_m.is_not(None))
                    .group_by(TrackObservation.track_id).subquery())
        geoms = dict(s.execute(
            select(TrackObservation.track_id, Crack.polygon)
            .join(last_obs, (last_obs.c.track_id == TrackObservation.track_id)
                  & (last_obs.c.t == TrackObservation.acquired_at))
            .join(Crack, Crack.id == TrackObservation.crack_id)
            .where(Crack.coordinate_space == "map")).all())
    return gpd.GeoDataFrame(
        history, geometry=gpd.GeoSeries([geoms.get(t) for t in history["track_id"]],
                                        index=history.index, crs=epsg), crs=epsg)


def survey_track_events(bind: Engine | Session, survey_id: int) -> pd.DataFrame:
    """Growth of each crack of a survey since its track's previous survey.

    One row per crack of the survey that has a tracking record (the row of the crack's own
    track, so a crack that others merged into appears once).

    Returns:
        Columns ``crack_id``, ``track_id``, ``event`` (``new``, ``continued`` or ``split``),
        ``days_since_previous``, ``delta_length_m``, ``delta_max_width_mm``,
        ``delta_area_m2``, ``length_rate_m_per_day``, ``max_width_rate_mm_per_day``
        (NaN without a baseline), ordered by ``crack_id``.

    Raises:
        RecordNotFoundError: no such survey.
    """
    cols = ["crack_id", "track_id", "event", "days_since_previous", "delta_length_m",
            "delta_max_width_mm", "delta_area_m2", "length_rate_m_per_day",
            "max_width_rate_mm_per_day"]
    with session_scope(bind) as s:
        _survey(s, survey_id)
        rows = s.execute(
            select(*[getattr(TrackObservation, c) for c in cols])
            .join(Crack, (Crack.id == TrackObservation.crack_id)
                  & (Crack.track_id == TrackObservation.track_id))
            .where(TrackObservation.survey_id == survey_id)
            .order_by(TrackObservation.crack_id)).all()
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("crack_id", "track_id"):
        frame[c] = frame[c].astype("Int64")
    for c in cols[3:]:
        frame[c] = frame[c].astype(float)
    return frame
