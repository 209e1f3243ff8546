"""The unsupervised "surface change" layer of a survey or a site (issue 29,
:mod:`jobs.site_baseline`), as frames for export and the Site page."""

from __future__ import annotations

import geopandas as gpd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodata.store.engine import session_scope
from geodata.store.lookup import _site, _survey
from geodata.store.models import Site, SurfaceChange, Survey

__all__ = ["site_surface_change", "survey_surface_change"]

#: Columns of :func:`site_surface_change` (besides ``geometry``).
FIELDS = ("survey_id", "acquired_at", "baseline_id", "compared_m2", "changed_m2",
          "changed_pct", "raster_path")


def survey_surface_change(bind: Engine | Session, survey_id: int) -> gpd.GeoDataFrame:
    """The survey's newest surface-change layer: zero or one row (:data:`FIELDS`), the
    polygons of changed ground as one (Multi)Polygon in the site CRS (None: compared, nothing
    changed).

    Raises:
        RecordNotFoundError: no such survey.
    """
    with session_scope(bind) as s:
        survey = _survey(s, survey_id)
        epsg = s.get(Site, survey.site_id).crs_epsg
        rows = s.execute(select(SurfaceChange, Survey.acquired_at)
                         .join(Survey, Survey.id == SurfaceChange.survey_id)
                         .where(SurfaceChange.survey_id == survey_id)
                         .order_by(SurfaceChange.baseline_id.desc()).limit(1)).all()
        return _frame(rows, epsg)


def site_surface_change(bind: Engine | Session, site: int | str) -> gpd.GeoDataFrame:
    """Every survey's newest surface-change layer of a site, oldest survey first, for export
    (:data:`FIELDS`; geometry in the site CRS).

    Raises:
        RecordNotFoundError: no such site.
    """
    with session_scope(bind) as s:
        site_row = _site(s, site)
        rows = s.execute(select(SurfaceChange, Survey.acquired_at)
                         .join(Survey, Survey.id == SurfaceChange.survey_id)
                         .where(Survey.site_id == site_row.id)
                         .order_by(Survey.acquired_at, Survey.id,
                                   SurfaceChange.baseline_id.desc())).all()
        newest = {}
        for change, when in rows:
            newest.setdefault(change.survey_id, (change, when))
        return _frame(list(newest.values()), site_row.crs_epsg)


def _frame(rows, epsg: int) -> gpd.GeoDataFrame:
    data = {f: [] for f in FIELDS}
    geoms = []
    for change, when in rows:
        data["survey_id"].append(change.survey_id)
        data["acquired_at"].append(when)
        data["baseline_id"].append(change.baseline_id)
        data["compared_m2"].append(float(change.compared_m2))
        data["changed_m2"].append(float(change.changed_m2))
        data["changed_pct"].append(100 * change.changed_m2 / change.compared_m2
                                   if change.compared_m2 else 0.0)
        data["raster_path"].append(change.raster_path)
        geoms.append(change.geometry)
    frame = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=epsg), crs=epsg)
    for f in ("compared_m2", "changed_m2", "changed_pct"):
        frame[f] = frame[f].astype("float64")
    return frame
