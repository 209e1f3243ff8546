"""Export a site's cracks, tracks and surveys to GeoPackage, GeoJSON or CSV (pyogrio).

* ``gpkg``: one file with layers ``cracks`` (every current crack of every survey, with
  ``acquired_at`` and ``track_id``), ``tracks`` (each track's history row and its last
  polygon), ``surveys`` (footprints), all in the site CRS; plus ``photo_cracks`` (image
  pixel coordinates, no CRS) when the site has photo cracks, and ``not_observable`` (per
  survey, the ground its run could not see: vegetation on slope orthomosaics) and
  ``surface_change_unsupervised`` (per survey compared with the site baseline, the polygons
  of ground that changed, :mod:`jobs.site_baseline`; the raster's path in ``raster_path``) when
  there is any. Opens in QGIS as is.
* ``geojson``: ``PATH`` holds the cracks; ``<stem>_tracks.geojson`` and
  ``<stem>_surveys.geojson`` lie beside it. Coordinates stay in the site CRS (a ``crs``
  member names it; nothing is reprojected silently) unless ``rfc7946=True``, which
  reprojects to WGS 84 as RFC 7946 requires for web use.
* ``csv``: the same three tables as CSV, geometry as a ``WKT`` column.

``layer`` picks one of these layers instead of all of them. The ``audit`` layer
(:func:`export_audit`) is the audit trail (:mod:`geodata.audit`) of one site or of every
site: a table without geometry, so CSV only.

Timestamps are UTC. An existing output file is replaced.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geodata.queries import (
    list_surveys,
    site_cracks,
    site_surface_change,
    site_tracks,
    site_unobservable,
)
from geodata.store.api import _site
from geodata.store.engine import session_scope

__all__ = ["EXPORT_FORMATS", "EXPORT_LAYERS", "csv_safe", "export_audit", "export_site"]

#: Formats :func:`export_site` writes.
EXPORT_FORMATS = ("gpkg", "geojson", "csv")
#: Layers :func:`export_site` writes (``layer=``), and ``audit`` (:func:`export_audit`).
EXPORT_LAYERS = ("cracks", "tracks", "surveys", "photo_cracks", "not_observable",
                 "surface_change_unsupervised", "audit")


def export_site(
    bind: Engine | Session,
    site: int | str,
    out: str | os.PathLike[str],
    fmt: str = "gpkg",
    *,
    rfc7946: bool = False,
    layer: str | None = None,
) -> list[Path]:
    """Write a site's cracks, tracks and surveys to ``out`` in format ``fmt``.

    Args:
        site: site id or name.
        out: the GeoPackage, or the cracks file (GeoJSON/CSV; companions beside it).
        fmt: ``"gpkg"``, ``"geojson"`` or ``"csv"``.
        rfc7946: GeoJSON only: reproject to EPSG:4326 (RFC 7946) instead of the site CRS.
        layer: only this layer (``cracks``, ``tracks``, ``surveys``, ``photo_cracks``,
            ``not_observable``, ``surface_change_unsupervised``), written to ``out`` itself;
            ``audit`` is :func:`export_audit`. ``None``: all.

    Returns:
        The paths written.

    Raises:
        RecordNotFoundError: no such site. ValueError: unknown format or layer, ``rfc7946``
        with another format.
    """
    if layer == "audit":
        return export_audit(bind, out, fmt, site=site)
    if layer is not None and layer not in EXPORT_LAYERS:
        raise ValueError(f"layer must be one of {EXPORT_LAYERS}, got {layer!r}")
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
        hidden = site_unobservable(s, site_row.id)
        change = site_surface_change(s, site_row.id)
    if len(change) or layer == "surface_change_unsupervised":
        layers["surface_change_unsupervised"] = change
    if len(photo) or layer == "photo_cracks":
        layers["photo_cracks"] = photo
    if len(hidden) or layer == "not_observable":
        layers["not_observable"] = hidden
    if layer is not None:
        layers = {"cracks": layers[layer]}  # the one layer goes to ``out`` itself

    if fmt == "gpkg":
        if out.exists():
            out.unlink()
        for name, gdf in layers.items():
            _write(gdf, out, driver="GPKG", layer=layer or name)
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
            _write(csv_safe(gdf), path, driver="CSV", layer_options={"GEOMETRY": "AS_WKT"})
        paths.append(path)
    return paths


#: A CSV cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV
#: Injection"): ``=HYPERLINK(...)`` in a site name or a note would be live in Excel.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that a spreadsheet would run as a formula prefixed
    with ``'`` (OWASP CSV injection advice); numbers and geometry are left alone."""
    out = frame.copy()
    geometry = getattr(frame, "_geometry_column_name", None)
    for col in out.columns:
        if col == geometry or out[col].dtype.kind not in "OSU" and \
                str(out[col].dtype) not in ("string", "str"):
            continue
        out[col] = [f"'{v}" if isinstance(v, str) and v.startswith(_FORMULA_START) else v
                    for v in out[col]]
    return out


def _write(gdf: gpd.GeoDataFrame, path: Path, *, driver: str, layer: str | None = None,
           layer_options: dict[str, str] | None = None) -> None:
    kwargs = {"layer": layer} if layer else {}
    with warnings.catch_warnings():
        if gdf.crs is None:  # image coordinates: no spatial reference, on purpose
            warnings.filterwarnings("ignore", message="'crs' was not provided")
        gdf.to_file(path, driver=driver, engine="pyogrio", layer_options=layer_options or None,
                    **kwargs)


def export_audit(
    bind: Engine | Session,
    out: str | os.PathLike[str],
    fmt: str = "csv",
    *,
    site: int | str | None = None,
) -> list[Path]:
    """Write the audit trail (:func:`geodata.audit.audit_events`) to the CSV file ``out``.

    Columns ``event_id``, ``at`` (ISO 8601, UTC), ``actor``, ``action``, ``site_id``,
    ``site_name``, ``alert_id``, ``notification_id``, ``details`` (JSON text), oldest first.

    Args:
        site: only this site's entries (id or name); ``None``: every site and the entries
            that concern no site.
        fmt: ``"csv"`` (the trail has no geometry).

    Returns:
        ``[out]``.

    Raises:
        RecordNotFoundError: no such site. ValueError: another format.
    """
    import json

    from geodata.audit import audit_events

    if fmt != "csv":
        raise ValueError(f"the audit layer is a table without geometry: export it with "
                         f"format 'csv', not {fmt!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = audit_events(bind, site=site, newest_first=False)
    frame["at"] = [t.isoformat() for t in frame["at"]]
    frame["details"] = [json.dumps(d, sort_keys=True, default=str) for d in frame["details"]]
    tmp = out.with_name(out.name + ".part")
    csv_safe(frame).to_csv(tmp, index=False, encoding="utf-8")
    tmp.replace(out)
    return [out]
