"""Read-only queries for the dashboard and exports (same results on SQLite and PostGIS).

Every function takes ``bind`` (an ``Engine`` or a ``Session``) and hashable ids, so a
Streamlit page can cache on ``(site_id, survey_id)``. Frames are returned with their units in
column names; geometries in the site's CRS unless the name says otherwise
(:func:`survey_cracks_geojson` is EPSG:4326 for web maps). Nothing found gives an empty
frame with the same columns, never ``None``.
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from geodata.errors import RecordNotFoundError
from geodata.store.api import _site, _survey, crack_severity
from geodata.store.engine import session_scope
from geodata.store.models import (
    ALERT_LEVELS,
    Alert,
    Crack,
    CrackTrack,
    InferenceRun,
    JobRun,
    Notification,
    Site,
    Survey,
    SurveySummary,
    TrackObservation,
)

__all__ = [
    "CRACK_FIELDS",
    "all_alerts",
    "undelivered_notifications",
    "inference_runs",
    "job_runs",
    "list_surveys",
    "site_alerts",
    "site_cracks",
    "site_defect_history",
    "site_survey_summaries",
    "site_tracks",
    "sites_overview",
    "survey_cracks",
    "survey_cracks_geojson",
    "survey_track_events",
    "track_timeseries",
]

#: Attribute columns of :func:`survey_cracks` (besides ``geometry``), in order.
CRACK_FIELDS = ("crack_id", "survey_id", "run_id", "track_id", "crack_index", "image_name",
                "length_m", "mean_width_mm", "max_width_mm", "area_m2", "mean_probability",
                "max_probability", "severity")

_LEVEL_RANK = {level: i for i, level in enumerate(ALERT_LEVELS)}


def sites_overview(bind: Engine | Session) -> pd.DataFrame:
    """All sites with their current alert level, for the sites map.

    Returns:
        One row per site (ordered by name): ``site_id``, ``name``, ``profile``,
        ``crs_epsg``, ``lon``, ``lat`` (WGS 84 degrees), ``timezone``, ``survey_count``,
        ``latest_survey_at`` (UTC), ``latest_crack_count``, ``alert_level`` (the highest
        level among the site's unresolved alerts, watch alerts not counted; ``"green"`` when
        none), ``open_alerts``, ``latest_alert_at``, ``model_name`` (the site's own model;
        ``None``: the model of its profile), ``watch_alerts`` (open unconfirmed slope
        exceedances, shown as *watch*), ``watch_level`` (the highest of their levels, or
        ``None``).
    """
    with session_scope(bind) as s:
        sites = s.execute(select(Site.id, Site.name, Site.profile, Site.crs_epsg, Site.lon,
                                 Site.lat, Site.timezone, Site.model_name)
                          .order_by(Site.name)).all()
        counts = dict(s.execute(select(Survey.site_id, func.count(Survey.id))
                                .group_by(Survey.site_id)).all())
        latest = dict(s.execute(select(Survey.site_id, func.max(Survey.acquired_at))
                                .group_by(Survey.site_id)).all())
        summaries = s.execute(select(SurveySummary.site_id, SurveySummary.acquired_at,
                                     SurveySummary.crack_count)
                              .order_by(SurveySummary.acquired_at)).all()
        alerts = s.execute(select(Alert.site_id, Alert.level, Alert.raised_at, Alert.watch)
                           .where(Alert.resolved_at.is_(None))).all()
    latest_count = {site_id: n for site_id, _, n in summaries}  # ordered: last one wins
    rows = []
    for sid, name, profile, epsg, lon, lat, tz, model_name in sites:
        open_ = [(lvl, t) for a_sid, lvl, t, watch in alerts if a_sid == sid and not watch]
        watched = [lvl for a_sid, lvl, _t, watch in alerts if a_sid == sid and watch]
        level = max((lvl for lvl, _ in open_), key=_LEVEL_RANK.__getitem__, default="green")
        rows.append({
            "site_id": sid, "name": name, "profile": profile, "crs_epsg": epsg, "lon": lon,
            "lat": lat, "timezone": tz, "survey_count": int(counts.get(sid, 0)),
            "latest_survey_at": latest.get(sid), "latest_crack_count": latest_count.get(sid),
            "alert_level": level, "open_alerts": len(open_),
            "latest_alert_at": max((t for _, t in open_), default=None),
            "model_name": model_name, "watch_alerts": len(watched),
            "watch_level": max(watched, key=_LEVEL_RANK.__getitem__, default=None),
        })
    cols = ["site_id", "name", "profile", "crs_epsg", "lon", "lat", "timezone", "survey_count",
            "latest_survey_at", "latest_crack_count", "alert_level", "open_alerts",
            "latest_alert_at", "model_name", "watch_alerts", "watch_level"]
    return pd.DataFrame(rows, columns=cols)


def list_surveys(bind: Engine | Session, site: int | str, *,
                 with_state: bool = True) -> gpd.GeoDataFrame:
    """A site's surveys in acquisition order, with their current run and summary.

    Returns:
        GeoDataFrame (footprint geometry, site CRS): ``survey_id``, ``acquired_at`` (UTC),
        ``source_type``, ``source_path``, ``sha256``, ``pixel_size_m``,
        ``registration_error_m``, ``simulated`` (bool, from the metadata), ``run_id``,
        ``model_name``, ``crack_count``, ``total_length_m``, ``new_count``,
        ``vanished_count``; with ``with_state`` also ``state`` (``done``, ``pending``,
        ``waiting``, ``parked``, ``skipped``: :func:`geodata.survey_state.survey_states`),
        ``failures``, ``last_error`` and ``action`` (what to do about a parked, waiting or
        skipped survey, e.g. ``crackwatch survey retry ID``).
    """
    frame = _list_surveys(bind, site)
    if with_state:
        from geodata.survey_state import survey_states

        states = {st.survey_id: st for st in survey_states(bind, site)}
        ids = list(frame["survey_id"])
        frame["state"] = [states[i].state if i in states else None for i in ids]
        frame["failures"] = pd.array([states[i].failures if i in states else 0 for i in ids],
                                     dtype="Int64")
        frame["last_error"] = [states[i].last_error if i in states else None for i in ids]
        frame["action"] = [states[i].action() if i in states else None for i in ids]
    return frame


def _list_surveys(bind: Engine | Session, site: int | str) -> gpd.GeoDataFrame:
    with session_scope(bind) as s:
        site_row = _site(s, site)
        surveys = s.scalars(select(Survey).where(Survey.site_id == site_row.id)
                            .order_by(Survey.acquired_at, Survey.id)).all()
        runs = {r.survey_id: r for r in s.scalars(
            select(InferenceRun).join(Survey, Survey.id == InferenceRun.survey_id)
            .where(Survey.site_id == site_row.id, InferenceRun.status == "succeeded"))}
        sums = {x.survey_id: x for x in s.scalars(
            select(SurveySummary).where(SurveySummary.site_id == site_row.id))}
        epsg = site_row.crs_epsg
    rows = []
    for sv in surveys:
        run, sm = runs.get(sv.id), sums.get(sv.id)
        rows.append({
            "survey_id": sv.id, "acquired_at": sv.acquired_at, "source_type": sv.source_type,
            "source_path": sv.source_path, "sha256": sv.sha256, "pixel_size_m": sv.pixel_size_m,
            "registration_error_m": sv.registration_error_m,
            "simulated": bool((sv.meta or {}).get("simulated", False)),
            "run_id": run.id if run else None, "model_name": run.model_name if run else None,
            "crack_count": run.crack_count if run else None,
            "total_length_m": sm.total_length_m if sm else None,
            "new_count": sm.new_count if sm else None,
            "vanished_count": sm.vanished_count if sm else None,
            "geometry": sv.footprint,
        })
    cols = ["survey_id", "acquired_at", "source_type", "source_path", "sha256", "pixel_size_m",
            "registration_error_m", "simulated", "run_id", "model_name", "crack_count",
            "total_length_m", "new_count", "vanished_count"]
    frame = pd.DataFrame(rows, columns=[*cols, "geometry"])
    for c in ("run_id", "crack_count", "new_count", "vanished_count"):
        frame[c] = frame[c].astype("Int64")
    return gpd.GeoDataFrame(frame.drop(columns="geometry"),
                            geometry=gpd.GeoSeries(list(frame["geometry"]), crs=epsg), crs=epsg)


def survey_cracks(
    bind: Engine | Session,
    survey_id: int,
    *,
    coordinate_space: str = "map",
    with_skeletons: bool = False,
) -> gpd.GeoDataFrame:
    """The cracks of a survey's current run.

    Args:
        coordinate_space: ``"map"`` (site CRS) or ``"image"`` (photo pixel coordinates,
            ``crs`` None, one photo per ``image_name``).
        with_skeletons: add a ``skeleton`` column (a second geometry column).

    Returns:
        GeoDataFrame with :data:`CRACK_FIELDS` + ``geometry`` (the polygon), ordered by
        ``crack_id``; ``attrs["coordinate_space"]`` set.

    Raises:
        RecordNotFoundError: no such survey.
    """
    with session_scope(bind) as s:
        survey = _survey(s, survey_id)
        epsg = s.get(Site, survey.site_id).crs_epsg
        return _cracks_frame(s, Crack.survey_id == survey_id, epsg, coordinate_space,
                             with_skeletons=with_skeletons)


def site_cracks(
    bind: Engine | Session, site: int | str, *, coordinate_space: str = "map"
) -> gpd.GeoDataFrame:
    """All current cracks of a site (every survey's current run), oldest survey first.

    Columns: :data:`CRACK_FIELDS` plus ``acquired_at`` (UTC) after ``survey_id``, and
    ``geometry`` (site CRS for ``"map"``, pixel coordinates without CRS for ``"image"``).
    """
    with session_scope(bind) as s:
        site_row = _site(s, site)
        return _cracks_frame(s, Crack.site_id == site_row.id, site_row.crs_epsg,
                             coordinate_space, with_acquired_at=True)


def _cracks_frame(
    s: Session,
    where: Any,
    epsg: int,
    coordinate_space: str,
    *,
    with_skeletons: bool = False,
    with_acquired_at: bool = False,
) -> gpd.GeoDataFrame:
    if coordinate_space not in ("map", "image"):
        raise ValueError(f"coordinate_space must be 'map' or 'image', got {coordinate_space!r}")
    cols = [Crack.id, Crack.survey_id, Crack.run_id, Crack.track_id, Crack.crack_index,
            Crack.image_name, Crack.length_m, Crack.mean_width_mm, Crack.max_width_mm,
            Crack.area_m2, Crack.mean_probability, Crack.max_probability, Crack.severity,
            Crack.polygon]
    names = [*CRACK_FIELDS, "geometry"]
    if with_skeletons:
        cols.append(Crack.skeleton)
        names.append("skeleton")
    stmt = select(*cols)
    if with_acquired_at:
        stmt = stmt.add_columns(Survey.acquired_at).join(Survey, Survey.id == Crack.survey_id)
        names.append("acquired_at")
    stmt = stmt.where(where, Crack.coordinate_space == coordinate_space)
    stmt = stmt.order_by(Survey.acquired_at, Crack.id) if with_acquired_at else \
        stmt.order_by(Crack.id)
    rows = s.execute(stmt).all()
    crs = epsg if coordinate_space == "map" else None
    frame = pd.DataFrame(rows, columns=names)
    for c in ("crack_id", "survey_id", "run_id", "track_id", "crack_index"):
        frame[c] = frame[c].astype("Int64")
    for c in ("length_m", "mean_width_mm", "max_width_mm", "area_m2", "mean_probability",
              "max_probability"):
        frame[c] = frame[c].astype(float)
    order = list(CRACK_FIELDS)
    if with_acquired_at:
        order.insert(order.index("survey_id") + 1, "acquired_at")
    gdf = gpd.GeoDataFrame(frame[order],
                           geometry=gpd.GeoSeries(list(frame["geometry"]), crs=crs), crs=crs)
    if with_skeletons:
        gdf["skeleton"] = gpd.GeoSeries(list(frame["skeleton"]), index=gdf.index, crs=crs)
    gdf.attrs["coordinate_space"] = coordinate_space
    return gdf


def survey_cracks_geojson(
    bind: Engine | Session,
    survey_id: int,
    *,
    simplify_m: float | None = None,
) -> dict[str, Any]:
    """A survey's map cracks as a GeoJSON FeatureCollection in EPSG:4326, for web maps.

    Polygons are simplified in the site CRS (``shapely.simplify``, topology preserved) by
    ``simplify_m`` metres (default: one pixel of the survey, 0 if unknown), then reprojected
    to WGS 84 (RFC 7946: lon, lat). Feature properties: ``crack_id``, ``track_id``,
    ``length_m``, ``mean_width_mm``, ``max_width_mm``, ``area_m2``, ``mean_probability``,
    ``severity``. Cracks in image coordinates cannot be placed on a map and are left out;
    the collection's ``skipped_image_cracks`` member counts them.

    Raises:
        RecordNotFoundError: no such survey. ValueError: negative ``simplify_m``.
    """
    with session_scope(bind) as s:
        survey = _survey(s, survey_id)
        pixel = survey.pixel_size_m
        skipped = s.scalar(select(func.count(Crack.id)).where(
            Crack.survey_id == survey_id, Crack.coordinate_space == "image")) or 0
        gdf = survey_cracks(s, survey_id)
    tol = (pixel or 0.0) if simplify_m is None else float(simplify_m)
    if tol < 0:
        raise ValueError(f"simplify_m must be >= 0, got {simplify_m}")
    props = ["crack_id", "track_id", "length_m", "mean_width_mm", "max_width_mm", "area_m2",
             "mean_probability", "severity"]
    out = gdf[[*props, "geometry"]].copy()
    if tol > 0 and len(out):
        simplified = shapely.simplify(out.geometry.values, tol, preserve_topology=True)
        # GEOS may hand back a one-part MultiPolygon as a Polygon: keep one geometry type
        out["geometry"] = [shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g
                           for g in simplified]
    out = out.to_crs(4326)
    fc = json.loads(out.to_json(drop_id=True, na="null"))
    fc["survey_id"] = int(survey_id)
    fc["skipped_image_cracks"] = int(skipped)
    return fc


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
    rows = []
    for t in tracks:
        ms = by_track.get(t.id, [])
        if not ms:
            continue
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
        rows.append({
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
            "view_id": views.get(t.id),
        })
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("parent_track_id", "merged_into_track_id", "view_id"):
        frame[c] = frame[c].astype("Int64")
    return frame.sort_values(["first_seen_at", "track_id"], ascending=[False, True],
                             ignore_index=True)


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


def site_alerts(bind: Engine | Session, site: int | str, *, open_only: bool = False
                ) -> pd.DataFrame:
    """A site's alerts, newest first: ``alert_id``, ``level``, ``rule``, ``track_id``,
    ``survey_id``, ``measured_value``, ``threshold``, ``message``, ``raised_at``,
    ``acknowledged_at``, ``acknowledged_by``, ``acknowledge_note``, ``resolved_at``,
    ``resolve_note``. ``open_only``: only unresolved ones."""
    cols = ["id", "level", "rule", "track_id", "survey_id", "measured_value", "threshold",
            "message", "raised_at", "acknowledged_at", "acknowledged_by", "acknowledge_note",
            "resolved_at", "resolve_note"]
    with session_scope(bind) as s:
        site_row = _site(s, site)
        stmt = select(*[getattr(Alert, c) for c in cols]).where(Alert.site_id == site_row.id)
        if open_only:
            stmt = stmt.where(Alert.resolved_at.is_(None))
        rows = s.execute(stmt.order_by(Alert.raised_at.desc(), Alert.id.desc())).all()
    frame = pd.DataFrame(rows, columns=["alert_id", *cols[1:]])
    for c in ("track_id", "survey_id"):
        frame[c] = frame[c].astype("Int64")
    return frame


# --------------------------------------------------------------------------- dashboard reads


def all_alerts(
    bind: Engine | Session,
    *,
    site: int | str | None = None,
    open_only: bool = False,
    limit: int | None = None,
) -> pd.DataFrame:
    """Alerts of every site (or of ``site``), newest first, with the site name and forecast.

    Args:
        site: only this site (id or name); ``None`` for all.
        open_only: only unresolved alerts (raised or acknowledged).
        limit: at most this many rows.

    Returns:
        Columns ``alert_id``, ``site_id``, ``site_name``, ``level``, ``rule``, ``track_id``,
        ``survey_id``, ``measured_value``, ``threshold``, ``unit`` (of both, from the alert's
        ``details``; None if not recorded), ``message``, ``forecast`` (text of the
        inverse-velocity forecast when the alert has one, from ``details["forecast"]``, or
        for an inverse-velocity rule its value in days; else None), ``state`` (``open`` |
        ``acknowledged`` | ``resolved`` | ``watch``: an unresolved, unconfirmed slope
        exceedance that notified nobody), ``raised_at``, ``acknowledged_at``,
        ``acknowledged_by``, ``acknowledge_note``, ``resolved_at``, ``resolve_note``,
        ``delivery`` (per channel of the notifications outbox at the alert's current level:
        ``"webhook: failed (HTTP 500 ...), log: delivered"``; ``""`` when none was queued).

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    cols = ["alert_id", "site_id", "site_name", "level", "rule", "track_id", "survey_id",
            "measured_value", "threshold", "unit", "message", "forecast", "state", "raised_at",
            "acknowledged_at", "acknowledged_by", "acknowledge_note", "resolved_at",
            "resolve_note", "delivery"]
    with session_scope(bind) as s:
        stmt = select(Alert, Site.name).join(Site, Site.id == Alert.site_id)
        if site is not None:
            stmt = stmt.where(Alert.site_id == _site(s, site).id)
        if open_only:
            stmt = stmt.where(Alert.resolved_at.is_(None))
        stmt = stmt.order_by(Alert.raised_at.desc(), Alert.id.desc())
        if limit is not None:
            stmt = stmt.limit(int(limit))
        found = s.execute(stmt).all()
        delivery = _delivery_states(s, [a.id for a, _ in found])
    rows = []
    for a, site_name in found:
        state = ("resolved" if a.resolved_at is not None
                 else "watch" if a.watch
                 else "acknowledged" if a.acknowledged_at is not None else "open")
        details = getattr(a, "details", None) or {}
        rows.append({
            "alert_id": a.id, "site_id": a.site_id, "site_name": site_name, "level": a.level,
            "rule": a.rule, "track_id": a.track_id, "survey_id": a.survey_id,
            "measured_value": a.measured_value, "threshold": a.threshold,
            "unit": details.get("unit"), "message": a.message,
            "forecast": _alert_forecast(a.rule, a.measured_value, details),
            "state": state, "raised_at": a.raised_at, "acknowledged_at": a.acknowledged_at,
            "acknowledged_by": a.acknowledged_by, "acknowledge_note": a.acknowledge_note,
            "resolved_at": a.resolved_at, "resolve_note": a.resolve_note,
            "delivery": ", ".join(text for (lvl, text) in delivery.get(a.id, [])
                                  if lvl == a.level),
        })
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("track_id", "survey_id"):
        frame[c] = frame[c].astype("Int64")
    for c in ("measured_value", "threshold"):
        frame[c] = frame[c].astype(float)
    return frame


def _delivery_states(s: Session, alert_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """Per alert, ``(level, "channel: status[ (error)]")`` of its outbox rows."""
    out: dict[int, list[tuple[str, str]]] = {}
    for chunk in (alert_ids[i:i + 500] for i in range(0, len(alert_ids), 500)):
        for r in s.scalars(select(Notification).where(Notification.alert_id.in_(chunk))
                           .order_by(Notification.channel)):
            text = f"{r.channel}: {r.status}"
            if r.status == "failed" and r.last_error:
                text += f" ({r.attempts} tries; {r.last_error[:120]})"
            out.setdefault(r.alert_id, []).append((r.level, text))
    return out


def _alert_forecast(rule: str, measured_value: float | None, details: Any) -> str | None:
    """Readable inverse-velocity forecast of an alert (``details["forecast"]``, the
    ``Forecast.to_dict()`` of :mod:`jobs.alerts`), or None when it has none."""
    fc = details.get("forecast") if isinstance(details, dict) else None
    if isinstance(fc, dict):
        if fc.get("failure_time"):
            parts = [f"failure forecast {str(fc['failure_time'])[:16].replace('T', ' ')} UTC"]
            if isinstance(fc.get("days_after_last"), (int, float)):
                parts.append(f"{fc['days_after_last']:.1f} days after the latest survey")
            if isinstance(fc.get("r_squared"), (int, float)):
                parts.append(f"R^2 {fc['r_squared']:.2f}")
            return ", ".join(parts)
        if fc.get("status"):
            return f"no failure forecast ({fc['status']})"
    if rule.endswith("inverse_velocity") and measured_value is not None:
        return f"failure forecast {measured_value:.1f} days after the latest survey"
    return None


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


def _duration_s(start: Any, end: Any) -> float:
    return (end - start).total_seconds() if start is not None and end is not None else np.nan


def job_runs(
    bind: Engine | Session, *, site: int | str | None = None, limit: int = 500
) -> pd.DataFrame:
    """Job runs (nightly pipeline, ingest...), newest first.

    Returns:
        Columns ``job_run_id``, ``job``, ``site_id``, ``site_name``, ``survey_id``,
        ``status``, ``started_at``, ``finished_at``, ``duration_s`` (NaN while running),
        ``steps`` (the JSON object of step statuses), ``error``.

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    cols = ["job_run_id", "job", "site_id", "site_name", "survey_id", "status", "started_at",
            "finished_at", "duration_s", "steps", "error"]
    with session_scope(bind) as s:
        stmt = select(JobRun, Site.name).outerjoin(Site, Site.id == JobRun.site_id)
        if site is not None:
            stmt = stmt.where(JobRun.site_id == _site(s, site).id)
        found = s.execute(stmt.order_by(JobRun.started_at.desc(), JobRun.id.desc())
                          .limit(int(limit))).all()
    rows = [{"job_run_id": j.id, "job": j.job, "site_id": j.site_id, "site_name": name,
             "survey_id": j.survey_id, "status": j.status, "started_at": j.started_at,
             "finished_at": j.finished_at, "duration_s": _duration_s(j.started_at,
                                                                     j.finished_at),
             "steps": j.steps or {}, "error": j.error} for j, name in found]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("site_id", "survey_id"):
        frame[c] = frame[c].astype("Int64")
    frame["duration_s"] = frame["duration_s"].astype(float)
    return frame


def inference_runs(
    bind: Engine | Session, *, site: int | str | None = None, limit: int = 500
) -> pd.DataFrame:
    """Inference runs (every status, superseded ones too), newest first.

    Returns:
        Columns ``run_id``, ``survey_id``, ``site_id``, ``site_name``, ``acquired_at``
        (of the survey, UTC), ``model_name``, ``model_version``, ``status``,
        ``started_at``, ``finished_at``, ``duration_s``, ``megapixels_per_s``,
        ``crack_count``, ``error``.

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    cols = ["run_id", "survey_id", "site_id", "site_name", "acquired_at", "model_name",
            "model_version", "status", "started_at", "finished_at", "duration_s",
            "megapixels_per_s", "crack_count", "error"]
    with session_scope(bind) as s:
        stmt = (select(InferenceRun, Survey.site_id, Site.name, Survey.acquired_at)
                .join(Survey, Survey.id == InferenceRun.survey_id)
                .join(Site, Site.id == Survey.site_id))
        if site is not None:
            stmt = stmt.where(Survey.site_id == _site(s, site).id)
        found = s.execute(stmt.order_by(InferenceRun.started_at.desc(),
                                        InferenceRun.id.desc()).limit(int(limit))).all()
    rows = [{"run_id": r.id, "survey_id": r.survey_id, "site_id": sid, "site_name": name,
             "acquired_at": acq, "model_name": r.model_name, "model_version": r.model_version,
             "status": r.status, "started_at": r.started_at, "finished_at": r.finished_at,
             "duration_s": _duration_s(r.started_at, r.finished_at),
             "megapixels_per_s": r.megapixels_per_s, "crack_count": r.crack_count,
             "error": r.error} for r, sid, name, acq in found]
    frame = pd.DataFrame(rows, columns=cols)
    frame["crack_count"] = frame["crack_count"].astype("Int64")
    for c in ("duration_s", "megapixels_per_s"):
        frame[c] = frame[c].astype(float)
    return frame


def undelivered_notifications(bind: Engine | Session, *, limit: int = 500) -> pd.DataFrame:
    """Notifications of the outbox not yet delivered (pending, sending or failed), oldest first.

    Returns:
        Columns ``notification_id``, ``alert_id``, ``site_name``, ``channel``, ``level``,
        ``status``, ``attempts`` (tries so far), ``last_error``, ``created_at``,
        ``last_attempt_at``, ``next_attempt_at`` (UTC; when the scheduler tries again).
    """
    cols = ["notification_id", "alert_id", "site_name", "channel", "level", "status",
            "attempts", "last_error", "created_at", "last_attempt_at", "next_attempt_at"]
    with session_scope(bind) as s:
        found = s.execute(
            select(Notification, Site.name).join(Site, Site.id == Notification.site_id)
            .where(Notification.status != "delivered")
            .order_by(Notification.created_at, Notification.id).limit(int(limit))).all()
    rows = [{"notification_id": n.id, "alert_id": n.alert_id, "site_name": name,
             "channel": n.channel, "level": n.level, "status": n.status,
             "attempts": n.attempts, "last_error": n.last_error, "created_at": n.created_at,
             "last_attempt_at": n.last_attempt_at, "next_attempt_at": n.next_attempt_at}
            for n, name in found]
    return pd.DataFrame(rows, columns=cols)
