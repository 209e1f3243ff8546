"""The cracks of a survey or a site, as frames and as GeoJSON for web maps."""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from geodata.store.engine import session_scope
from geodata.store.lookup import _site, _survey
from geodata.store.models import Crack, InferenceRun, Site, Survey

__all__ = [
    "CRACK_FIELDS",
    "site_cracks",
    "survey_cracks",
    "survey_cracks_geojson",
    "site_unobservable",
    "survey_unobservable",
]


#: Attribute columns of :func:`survey_cracks` (besides ``geometry``), in order.
CRACK_FIELDS = ("crack_id", "survey_id", "run_id", "track_id", "crack_index", "image_name",
                "length_m", "mean_width_mm", "max_width_mm", "area_m2", "mean_probability",
                "max_probability", "severity")


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


def survey_unobservable(bind: Engine | Session, survey_id: int) -> gpd.GeoSeries:
    """Where the survey's current run could not see the ground (vegetation on a slope site,
    :mod:`engine.observable`): a GeoSeries of zero or one (Multi)Polygon in the site CRS
    (``area_m2`` in its ``attrs``). Empty for runs without the vegetation mask.

    Raises:
        RecordNotFoundError: no such survey.
    """
    with session_scope(bind) as s:
        survey = _survey(s, survey_id)
        epsg = s.get(Site, survey.site_id).crs_epsg
        geom = s.scalar(select(InferenceRun.unobservable).where(
            InferenceRun.survey_id == survey_id, InferenceRun.status == "succeeded")
            .order_by(InferenceRun.id.desc()).limit(1))
    series = gpd.GeoSeries([geom] if geom is not None else [], crs=epsg)
    series.attrs["area_m2"] = float(series.area.sum())
    return series


def site_unobservable(bind: Engine | Session, site: int | str) -> gpd.GeoDataFrame:
    """Every survey's not-observable ground (:func:`survey_unobservable`) of a site, for
    export: ``survey_id``, ``acquired_at`` (UTC), ``run_id``, ``observable_fraction``,
    ``area_m2``; geometry in the site CRS. Surveys without one are left out.

    Raises:
        RecordNotFoundError: no such site.
    """
    with session_scope(bind) as s:
        site_row = _site(s, site)
        rows = s.execute(
            select(Survey.id, Survey.acquired_at, InferenceRun.id,
                   InferenceRun.observable_fraction, InferenceRun.unobservable)
            .join(InferenceRun, InferenceRun.survey_id == Survey.id)
            .where(Survey.site_id == site_row.id, InferenceRun.status == "succeeded",
                   InferenceRun.unobservable.is_not(None))
            .order_by(Survey.acquired_at, Survey.id)).all()
        epsg = site_row.crs_epsg
    frame = gpd.GeoDataFrame(
        {"survey_id": [r[0] for r in rows], "acquired_at": [r[1] for r in rows],
         "run_id": [r[2] for r in rows], "observable_fraction": [r[3] for r in rows]},
        geometry=gpd.GeoSeries([r[4] for r in rows], crs=epsg), crs=epsg)
    frame["observable_fraction"] = frame["observable_fraction"].astype("float64")
    frame.insert(4, "area_m2", frame.geometry.area.astype("float64"))
    return frame
