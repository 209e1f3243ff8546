"""Export a site's cracks, tracks and surveys to GeoPackage, GeoJSON or CSV (pyogrio).

* ``gpkg``: one file with layers ``cracks`` (every current crack of every survey, with
  ``acquired_at`` and ``track_id``), ``tracks`` (each track's history row and its last
  polygon), ``surveys`` (footprints), all in the site CRS; plus ``photo_cracks`` (image
  pixel coordinates, no CRS) when the site has photo cracks. Opens in QGIS as is.
* ``geojson``: ``PATH`` holds the cracks; ``<stem>_tracks.geojson`` and
  ``<stem>_surveys.geojson`` lie beside it. Coordinates stay in the site CRS (a ``crs``
  member names it; nothing is reprojected silently) unless ``rfc7946=True``, which
  reprojects to WGS 84 as RFC 7946 requires for web use.
* ``csv``: the same three tables as CSV, geometry as a ``WKT`` column.

Timestamps are UTC. An existing output file is replaced.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import geopandas as gpd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geodata.queries import list_surveys, site_cracks, site_tracks
from geodata.store.api import _site
from geodata.store.engine import session_scope

__all__ = ["EXPORT_FORMATS", "export_site"]

#: Formats :func:`export_site` writes.
EXPORT_FORMATS = ("gpkg", "geojson", "csv")


def export_site(
    bind: Engine | Session,
    site: int | str,
    out: str | os.PathLike[str],
    fmt: str = "gpkg",
    *,
    rfc7946: bool = False,
) -> list[Path]:
    """Write a site's cracks, tracks and surveys to ``out`` in format ``fmt``.

    Args:
        site: site id or name.
        out: the GeoPackage, or the cracks file (GeoJSON/CSV; companions beside it).
        fmt: ``"gpkg"``, ``"geojson"`` or ``"csv"``.
        rfc7946: GeoJSON only: reproject to EPSG:4326 (RFC 7946) instead of the site CRS.

    Returns:
        The paths written.

    Raises:
        RecordNotFoundError: no such site. ValueError: unknown format, or ``rfc7946`` with
        another format.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    if rfc7946 and fmt != "geojson":
        raise ValueError("rfc7946 applies to the geojson format only")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with session_scope(bind) as s:
        site_row = _site(s, site)
        layers = {
            "cracks": site_cracks(s, site_row.id),
            "tracks": site_tracks(s, site_row.id),
            "surveys": list_surveys(s, site_row.id, with_state=False),
        }
        photo = site_cracks(s, site_row.id, coordinate_space="image")
    if len(photo):
        layers["photo_cracks"] = photo

    if fmt == "gpkg":
        if out.exists():
            out.unlink()
        for name, gdf in layers.items():
            _write(gdf, out, driver="GPKG", layer=name)
        return [out]

    suffix = ".geojson" if fmt == "geojson" else ".csv"
    paths = []
    for name, gdf in layers.items():
        path = out if name == "cracks" else out.with_name(f"{out.stem}_{name}{suffix}")
        if path.exists():
            path.unlink()
        if fmt == "geojson":
            if rfc7946 and gdf.crs is not None:
                gdf = gdf.to_crs(4326)
            opts = {"RFC7946": "YES"} if rfc7946 and gdf.crs is not None else {}
            _write(gdf, path, driver="GeoJSON", layer_options=opts)
        else:
            _write(gdf, path, driver="CSV", layer_options={"GEOMETRY": "AS_WKT"})
        paths.append(path)
    return paths


def _write(gdf: gpd.GeoDataFrame, path: Path, *, driver: str, layer: str | None = None,
           layer_options: dict[str, str] | None = None) -> None:
    kwargs = {"layer": layer} if layer else {}
    with warnings.catch_warnings():
        if gdf.crs is None:  # image coordinates: no spatial reference, on purpose
            warnings.filterwarnings("ignore", message="'crs' was not provided")
        gdf.to_file(path, driver=driver, engine="pyogrio", layer_options=layer_options or None,
                    **kwargs)
