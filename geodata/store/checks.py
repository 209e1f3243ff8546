"""Validation at the store's boundary: CRSs (a site's CRS must be projected, in metres,
with an EPSG code; a geometry or frame must be in its site's CRS), aware timestamps, JSON."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely

from geodata.errors import CRSError
from geodata.store.models import Site

__all__ = [
    "check_crs",
    "geometry_in_site_crs",
    "jsonable",
    "projected_epsg",
    "site_crs",
]


def site_crs(site: Site) -> pyproj.CRS:
    """The site's projected CRS as a ``pyproj.CRS``."""
    return pyproj.CRS.from_epsg(site.crs_epsg)


def projected_epsg(crs: Any) -> int:
    """The EPSG code of a projected CRS in metres, or CRSError saying what is wrong."""
    try:
        pcrs = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise CRSError(
            f"cannot read CRS {crs!r}: {exc}; give the EPSG code of the site's projected CRS, "
            f"e.g. 32633 (WGS 84 / UTM 33N) or 2056 (Swiss LV95)"
        ) from exc
    name = pcrs.to_string()
    if not pcrs.is_projected:
        raise CRSError(
            f"a site's CRS must be projected (metres) so lengths and widths can be measured; "
            f"{name} is {'geographic (degrees)' if pcrs.is_geographic else 'not projected'}. "
            f"Use the site's UTM zone (geodata.crs.utm_crs_for(lon, lat)) or national grid"
        )
    units = {ax.unit_name for ax in pcrs.axis_info[:2]}
    if any(ax.unit_conversion_factor != 1.0 for ax in pcrs.axis_info[:2]):
        raise CRSError(f"a site's CRS must have metre axes; {name} has {sorted(units)}")
    epsg = pcrs.to_epsg()
    if epsg is None:
        raise CRSError(
            f"CRS {name} has no EPSG code; sites are stored by EPSG code: pick the EPSG CRS "
            f"it corresponds to (see https://epsg.io)"
        )
    return epsg


def jsonable(value: Any, name: str) -> Any:
    """A JSON-safe copy (numpy scalars -> Python numbers, paths -> str)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, (Path, os.PathLike)):
            return os.fspath(o)
        if isinstance(o, datetime):
            return o.isoformat()
        raise TypeError(f"{name} holds a {type(o).__name__} that is not JSON: {o!r}")

    try:
        return json.loads(json.dumps(value, default=default, allow_nan=False))
    except ValueError as exc:
        raise ValueError(f"{name} must be JSON (no NaN/inf): {exc}") from exc


def geometry_in_site_crs(geom: Any, site: Site, name: str) -> shapely.Geometry | None:
    """A shapely geometry with the site's SRID. GeoSeries/GeoDataFrame: CRS checked."""
    if geom is None:
        return None
    if isinstance(geom, (gpd.GeoSeries, gpd.GeoDataFrame)):
        series = geom.geometry if isinstance(geom, gpd.GeoDataFrame) else geom
        check_crs(series.crs, site, name)
        geom = shapely.union_all(series.values)
    if not isinstance(geom, shapely.Geometry):
        raise TypeError(f"{name} must be a shapely geometry or GeoSeries, got {type(geom)}")
    return shapely.set_srid(geom, site.crs_epsg)


def check_crs(crs: Any, site: Site, what: str) -> None:
    """Raise CRSError (naming both CRSs and the fix) unless ``crs`` is the site's CRS."""
    expected = site_crs(site)
    if crs is None:
        raise CRSError(
            f"{what} has no CRS; expected the site {site.name!r} CRS EPSG:{site.crs_epsg} "
            f"({expected.name}). Set it if the coordinates are in that CRS "
            f"(gdf.set_crs(epsg={site.crs_epsg})), or for photo results in image pixel "
            f"coordinates use coordinate_space='image'"
        )
    found = pyproj.CRS.from_user_input(crs)
    if not found.equals(expected, ignore_axis_order=True):
        raise CRSError(
            f"{what} is in {found.to_string()} ({found.name}) but site {site.name!r} stores "
            f"geometries in EPSG:{site.crs_epsg} ({expected.name}); reproject first "
            f"(gdf.to_crs(epsg={site.crs_epsg}), or warp the raster to the site CRS before "
            f"vectorising); if the site's CRS is wrong, fix the site instead"
        )
