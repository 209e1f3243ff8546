"""The UTM zone of a point: CrackWatch's one ``utm_crs_for``.

Used where a metric CRS must be chosen for data that has none of its own: photos placed by
their EXIF GPS (:mod:`geodata.photos`, ``crackwatch infer`` on photos) and orthomosaics in
geographic coordinates that tiled inference reprojects (:mod:`engine.infer`). A site's own
CRS (``Site.crs_epsg``) always wins where there is one.
"""

from __future__ import annotations

import math
from typing import Any

import pyproj
import utm

from geodata.errors import CRSError

__all__ = ["lon_lat_pair", "utm_crs_for"]


def lon_lat_pair(pair: Any) -> tuple[float, float]:
    """``pair`` as ``(lon, lat)`` floats in WGS 84 degrees, longitude first.

    Raises:
        ValueError: not a pair of numbers, not finite, or out of range (lon in [-180, 180],
            lat in [-90, 90]).
    """
    try:
        lon, lat = (float(v) for v in pair)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"expected a (lon, lat) pair of numbers, got {pair!r}") from exc
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180
            and -90 <= lat <= 90):
        raise ValueError(f"(lon, lat) = ({lon}, {lat}) is out of range: lon must be in "
                         f"[-180, 180] and lat in [-90, 90] (WGS 84 degrees, longitude first)")
    return lon, lat


def utm_crs_for(lon: float, lat: float) -> pyproj.CRS:
    """The WGS 84 / UTM zone CRS (EPSG:326zz north, 327zz south) containing ``(lon, lat)``.

    The zone is the UTM grid's, as ``utm.latlon_to_zone_number`` gives it: the standard
    6-degree zones, zone = floor((lon + 180) / 6) + 1, with the grid's two exceptions
    (NGA.SIG.0012_2.0.0_UTMUPS, *The Universal Grids and the Transverse Mercator and
    Polar Stereographic Map Projections*, 2014): zone 32 widened to 3-12 E between 56 and 64 N
    (south-west Norway), and zones 31, 33, 35, 37 spanning 0-9, 9-21, 21-33, 33-42 E between
    72 and 84 N (Svalbard). A point on a zone boundary goes to the eastern zone (the 180th
    meridian is the west edge of zone 1); the equator is north.

    Args:
        lon, lat: WGS 84 degrees.

    Returns:
        A ``pyproj.CRS``; call ``.to_epsg()`` for the code, or
        ``rasterio.crs.CRS.from_epsg(...)`` where rasterio needs its own type.

    Raises:
        ValueError: lon/lat out of range or not finite.
        CRSError: latitude beyond UTM's 80 S .. 84 N; use a polar stereographic CRS instead.
    """
    lon, lat = lon_lat_pair((lon, lat))
    if not -80.0 <= lat <= 84.0:
        raise CRSError(f"UTM is defined from 80 S to 84 N, got lat {lat}; pass a polar CRS "
                       f"(e.g. EPSG:32661 UPS North or EPSG:32761 UPS South) instead")
    zone = utm.latlon_to_zone_number(lat, lon)
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)
