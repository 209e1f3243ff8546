"""Reads of photo views for the CLI and the dashboard: views, registrations, view
histories, photos in their view frame, photo cracks on the map (see :mod:`geodata.views`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import select

from geodata.store.models import (
    Crack,
    CrackTrack,
    PhotoRegistration,
    PhotoView,
    PhotoViewTrack,
    Site,
    Survey,
    TrackObservation,
)
from geodata.views.common import ALIVE, TRACKED, matrix, photo_path, view_track_ids, warp_geom

__all__ = [
    "photo_in_view",
    "site_views",
    "survey_photo_cracks_on_map",
    "survey_registrations",
    "view_history",
    "view_track_polygons",
]


def site_views(bind: Any, site: int | str) -> pd.DataFrame:
    """A site's photo views, oldest first.

    Returns:
        One row per view: ``view_id``, ``name``, ``reference_image``,
        ``reference_survey_id``, ``created_at`` (UTC), ``photos`` (reference + registered
        photos), ``surveys`` (with a photo in it), ``first_photo_at``, ``last_photo_at``
        (UTC acquisition times), ``tracks``, ``median_rms_px`` / ``max_rms_px`` (of the
        registered photos; NaN with none yet), ``scale_mm_per_px``, ``scale_source``,
        ``on_map`` (reference placed through a GPS footprint), ``position_error_m``.
    """
    from geodata.store.engine import session_scope
    from geodata.store.lookup import _site

    cols = ["view_id", "name", "reference_image", "reference_survey_id", "created_at",
            "photos", "surveys", "first_photo_at", "last_photo_at", "tracks",
            "median_rms_px", "max_rms_px", "scale_mm_per_px", "scale_source", "on_map",
            "position_error_m"]
    with session_scope(bind) as s:
        site_row = _site(s, site)
        views = list(s.scalars(select(PhotoView).where(PhotoView.site_id == site_row.id)
                               .order_by(PhotoView.id)))
        regs = s.execute(select(PhotoRegistration.view_id, PhotoRegistration.status,
                                PhotoRegistration.rms_px, PhotoRegistration.survey_id,
                                Survey.acquired_at)
                         .join(Survey, Survey.id == PhotoRegistration.survey_id)
                         .where(PhotoRegistration.site_id == site_row.id,
                                PhotoRegistration.status.in_(TRACKED))).all()
        tracks = view_track_ids(s, site_row.id)
    rows = []
    for v in views:
        mine = [r for r in regs if r.view_id == v.id]
        rms = [r.rms_px for r in mine if r.status == "registered" and r.rms_px is not None]
        times = [r.acquired_at for r in mine]
        rows.append({
            "view_id": v.id, "name": v.name, "reference_image": v.reference_image,
            "reference_survey_id": v.reference_survey_id, "created_at": v.created_at,
            "photos": len(mine), "surveys": len({r.survey_id for r in mine}),
            "first_photo_at": min(times, default=None), "last_photo_at": max(times, default=None),
            "tracks": sum(1 for t in tracks.values() if t == v.id),
            "median_rms_px": float(np.median(rms)) if rms else np.nan,
            "max_rms_px": float(max(rms)) if rms else np.nan,
            "scale_mm_per_px": (v.scale_m_per_px * 1000.0 if v.scale_m_per_px else np.nan),
            "scale_source": v.scale_source, "on_map": v.image_to_map is not None,
            "position_error_m": v.position_error_m,
        })
    return pd.DataFrame(rows, columns=cols)


def survey_registrations(bind: Any, survey_id: int) -> pd.DataFrame:
    """How each photo of a survey was registered (one row per photo, by name).

    Returns:
        ``image_name``, ``status``, ``view_id`` (Int64), ``view_name``, ``matches``,
        ``inliers``, ``rms_px`` (view px), ``overlap`` (fraction of the view), ``gsd_mm_per_px``
        (at the photo centre), ``gsd_source``, ``blur``, ``on_map``, ``position_error_m``,
        ``reason``.
    """
    from geodata.store.engine import session_scope

    cols = ["image_name", "status", "view_id", "view_name", "matches", "inliers", "rms_px",
            "overlap", "gsd_mm_per_px", "gsd_source", "blur", "on_map", "position_error_m",
            "reason"]
    with session_scope(bind) as s:
        rows = s.execute(select(PhotoRegistration, PhotoView.name)
                         .outerjoin(PhotoView, PhotoView.id == PhotoRegistration.view_id)
                         .where(PhotoRegistration.survey_id == survey_id)
                         .order_by(PhotoRegistration.image_name)).all()
        out = [{"image_name": r.image_name, "status": r.status, "view_id": r.view_id,
                "view_name": name, "matches": r.matches, "inliers": r.inliers,
                "rms_px": r.rms_px, "overlap": r.overlap,
                "gsd_mm_per_px": r.gsd_m * 1000.0 if r.gsd_m else np.nan,
                "gsd_source": r.gsd_source, "blur": (r.quality or {}).get("blur"),
                "on_map": r.image_to_map is not None, "position_error_m": r.position_error_m,
                "reason": r.reason} for r, name in rows]
    frame = pd.DataFrame(out, columns=cols)
    for c in ("view_id", "matches", "inliers"):
        frame[c] = frame[c].astype("Int64")
    return frame


def view_history(bind: Any, view_id: int) -> pd.DataFrame:
    """Every measurement of every track of a view, oldest first.

    Returns:
        One row per observation with a crack: ``track_id``, ``survey_id``, ``acquired_at``
        (UTC), ``event``, ``crack_id``, ``image_name``, ``length_m``, ``mean_width_mm``,
        ``max_width_mm``, ``severity`` (BRE Digest 251 of the width), ``status`` (of the
        track now), ``parent_track_id``, ``merged_into_track_id``.
    """
    from geodata.store.engine import session_scope

    cols = ["track_id", "survey_id", "acquired_at", "event", "crack_id", "image_name",
            "length_m", "mean_width_mm", "max_width_mm", "severity", "status",
            "parent_track_id", "merged_into_track_id"]
    with session_scope(bind) as s:
        rows = s.execute(
            select(TrackObservation.track_id, TrackObservation.survey_id,
                   TrackObservation.acquired_at, TrackObservation.event,
                   TrackObservation.crack_id, Crack.image_name, TrackObservation.length_m,
                   TrackObservation.mean_width_mm, TrackObservation.max_width_mm,
                   Crack.severity, CrackTrack.status, CrackTrack.parent_track_id,
                   CrackTrack.merged_into_track_id)
            .join(PhotoViewTrack, PhotoViewTrack.track_id == TrackObservation.track_id)
            .join(CrackTrack, CrackTrack.id == TrackObservation.track_id)
            .join(Crack, Crack.id == TrackObservation.crack_id)
            .where(PhotoViewTrack.view_id == int(view_id),
                   TrackObservation.length_m.is_not(None))
            .order_by(TrackObservation.acquired_at, TrackObservation.track_id)).all()
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("track_id", "survey_id", "crack_id", "parent_track_id", "merged_into_track_id"):
        frame[c] = frame[c].astype("Int64")
    return frame


def photo_in_view(bind: Any, survey_id: int, image_name: str
                  ) -> tuple[Path, np.ndarray, Any] | None:
    """(photo file, homography photo px -> view px, the crack polygons of that photo in
    the view frame by crack id) of a registered photo, or None when it is in no view."""
    from geodata.store.engine import session_scope

    with session_scope(bind) as s:
        reg = s.scalar(select(PhotoRegistration).where(
            PhotoRegistration.survey_id == survey_id,
            PhotoRegistration.image_name == image_name))
        if reg is None or reg.homography is None:
            return None
        survey = s.get(Survey, survey_id)
        h = matrix(reg.homography)
        polys = {int(i): warp_geom(g, h) for i, g in s.execute(
            select(Crack.id, Crack.polygon).where(Crack.survey_id == survey_id,
                                                  Crack.image_name == image_name)).all()}
        return photo_path(survey, image_name), h, polys


def survey_photo_cracks_on_map(bind: Any, survey_id: int) -> gpd.GeoDataFrame:
    """A photo survey's cracks placed on the map through each photo's nadir footprint
    (site CRS), APPROXIMATE: ``position_error_m`` is the assumed GPS error (m).

    Columns: ``crack_id``, ``track_id``, ``image_name``, ``length_m``, ``max_width_mm``,
    ``severity``, ``position_error_m``, geometry. Photos without GPS are left out.
    """
    from geodata.store.engine import session_scope

    with session_scope(bind) as s:
        survey = s.get(Survey, survey_id)
        epsg = s.get(Site, survey.site_id).crs_epsg if survey else None
        placed = {r.image_name: (r.image_to_map, r.position_error_m) for r in s.scalars(
            select(PhotoRegistration).where(PhotoRegistration.survey_id == survey_id,
                                            PhotoRegistration.image_to_map.is_not(None)))}
        rows = s.execute(select(Crack.id, Crack.track_id, Crack.image_name, Crack.length_m,
                                Crack.max_width_mm, Crack.severity, Crack.polygon)
                         .where(Crack.survey_id == survey_id,
                                Crack.coordinate_space == "image",
                                Crack.image_name.in_(list(placed)))
                         .order_by(Crack.id)).all() if placed else []
    data, geoms = [], []
    for cid, track, name, length, width, severity, poly in rows:
        to_map, err = placed[name]
        geoms.append(shapely.set_srid(warp_geom(poly, matrix(to_map)), 0))
        data.append({"crack_id": cid, "track_id": track, "image_name": name,
                     "length_m": length, "max_width_mm": width, "severity": severity,
                     "position_error_m": err})
    frame = pd.DataFrame(data, columns=["crack_id", "track_id", "image_name", "length_m",
                                        "max_width_mm", "severity", "position_error_m"])
    frame["track_id"] = frame["track_id"].astype("Int64")
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=epsg), crs=epsg)


def view_track_polygons(bind: Any, track_id: int) -> gpd.GeoDataFrame:
    """The cracks of a photo track in its view's frame (view px, no CRS), oldest first:
    ``survey_id``, ``acquired_at``, ``image_name``, ``crack_id``, ``max_width_mm``,
    ``length_m``, geometry."""
    from geodata.store.engine import session_scope

    with session_scope(bind) as s:
        rows = s.execute(
            select(TrackObservation.survey_id, TrackObservation.acquired_at, Crack.image_name,
                   Crack.id, Crack.max_width_mm, Crack.length_m, Crack.polygon,
                   PhotoRegistration.homography)
            .join(Crack, Crack.id == TrackObservation.crack_id)
            .join(PhotoRegistration, (PhotoRegistration.survey_id == Crack.survey_id)
                  & (PhotoRegistration.image_name == Crack.image_name))
            .where(TrackObservation.track_id == int(track_id),
                   TrackObservation.event.in_(ALIVE))
            .order_by(TrackObservation.acquired_at)).all()
    data = [{"survey_id": r[0], "acquired_at": r[1], "image_name": r[2], "crack_id": r[3],
             "max_width_mm": r[4], "length_m": r[5]} for r in rows]
    geoms = [warp_geom(r[6], matrix(r[7])) for r in rows]
    frame = pd.DataFrame(data, columns=["survey_id", "acquired_at", "image_name", "crack_id",
                                        "max_width_mm", "length_m"])
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms))
