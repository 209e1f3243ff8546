"""A crack frame checked and turned into ``crack`` insert rows (:func:`geodata.store.store_run`):
its coordinate space, geometry types, metrics (finite, >= 0; probabilities in 0..1) and
skeletons (aligned with the frame, in the same space)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geodata.errors import CRSError
from geodata.severity import bre251_name
from geodata.store.checks import check_crs
from geodata.store.models import COORDINATE_SPACES, Site, Survey

__all__ = ["OPTIONAL_METRICS", "REQUIRED_METRICS", "crack_rows", "frame_space"]

#: Metric columns every crack frame has.
REQUIRED_METRICS = ("length_m", "mean_width_mm", "max_width_mm", "area_m2")
#: Metric columns a crack frame may have (probabilities, 0..1).
OPTIONAL_METRICS = ("mean_probability", "max_probability")


def frame_space(cracks: gpd.GeoDataFrame, given: str | None, site: Site) -> str:
    """``"map"`` or ``"image"``: ``given``, else the frame's ``attrs``, else map.

    Raises:
        ValueError: an unknown space. CRSError: a map frame not in the site's CRS, or an
        image frame with a CRS.
    """
    space = given or cracks.attrs.get("coordinate_space")
    if space is None:
        space = "map"  # a frame without CRS then fails the CRS check with the fix named
    if space not in COORDINATE_SPACES:
        raise ValueError(f"coordinate_space must be one of {COORDINATE_SPACES}, got {space!r}")
    if space == "map":
        check_crs(cracks.crs, site, "the crack frame")
    elif cracks.crs is not None:
        raise CRSError(
            f"coordinate_space='image' means pixel coordinates without a CRS, but the frame "
            f"has CRS {cracks.crs.to_string()}; drop coordinate_space to store it as map "
            f"coordinates (it must then be EPSG:{site.crs_epsg})"
        )
    return space


def crack_rows(
    cracks: gpd.GeoDataFrame,
    skeletons: gpd.GeoSeries | None,
    site: Site,
    survey: Survey,
    space: str,
) -> list[dict[str, Any]]:
    """Validated insert rows (without run_id) for the frame's cracks.

    Raises:
        ValueError / TypeError: missing columns, non-finite or negative metrics, geometries
        that are not (Multi)Polygons, skeletons not aligned with the frame. CRSError:
        skeletons in another CRS.
    """
    missing = [c for c in REQUIRED_METRICS if c not in cracks.columns]
    if missing:
        raise ValueError(f"the crack frame lacks columns {missing}; expected at least "
                         f"{list(REQUIRED_METRICS)} (geodata.vectorise.CRACK_COLUMNS)")
    n = len(cracks)
    geoms = _polygons(cracks)
    values = _metrics(cracks)
    skel_geoms = _skeletons(cracks, skeletons, site, space)

    srid = site.crs_epsg if space == "map" else 0
    polygons = shapely.set_srid(geoms, srid)
    has_skel = np.array([g is not None for g in skel_geoms], dtype=bool)
    if has_skel.any():
        skel_geoms = skel_geoms.copy()
        skel_geoms[has_skel] = shapely.set_srid(skel_geoms[has_skel].astype(object), srid)

    image_col = next((c for c in ("image_name", "photo") if c in cracks.columns), None)
    default_image = Path(survey.source_path).name if space == "image" else None
    crack_index = (pd.to_numeric(cracks["crack_id"], errors="coerce").to_numpy()
                   if "crack_id" in cracks.columns else np.full(n, np.nan))
    severities = (cracks["severity"].astype(object).to_numpy() if "severity" in cracks.columns
                  else None)

    rows: list[dict[str, Any]] = []
    for i in range(n):
        max_w = float(values["max_width_mm"][i])
        rows.append({
            "survey_id": survey.id,
            "site_id": site.id,
            "crack_index": None if np.isnan(crack_index[i]) else int(crack_index[i]),
            "image_name": (str(cracks[image_col].iloc[i]) if image_col else default_image),
            "coordinate_space": space,
            "polygon": polygons[i],
            "skeleton": skel_geoms[i],
            "length_m": float(values["length_m"][i]),
            "mean_width_mm": float(values["mean_width_mm"][i]),
            "max_width_mm": max_w,
            "area_m2": float(values["area_m2"][i]),
            "mean_probability": _opt(values.get("mean_probability"), i),
            "max_probability": _opt(values.get("max_probability"), i),
            "severity": (str(severities[i]) if severities is not None
                         and severities[i] is not None else bre251_name(max_w)),
        })
    return rows


def _polygons(cracks: gpd.GeoDataFrame) -> np.ndarray:
    """The frame's geometries; ValueError unless each is a non-empty (Multi)Polygon."""
    geoms = np.asarray(cracks.geometry.values, dtype=object)
    types = shapely.get_type_id(geoms)
    bad = ~np.isin(types, (3, 6))  # Polygon, MultiPolygon (None gives -1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"crack geometries must be Polygons or MultiPolygons; row "
                         f"{cracks.index[i]!r} is {geoms[i]!r:.80}")
    empty = shapely.is_empty(geoms)
    if empty.any():
        raise ValueError(f"crack row {cracks.index[int(np.flatnonzero(empty)[0])]!r} has an "
                         f"empty geometry")
    return geoms


def _metrics(cracks: gpd.GeoDataFrame) -> dict[str, np.ndarray]:
    """The frame's metric columns as float arrays; ValueError on a bad value."""
    values: dict[str, np.ndarray] = {}
    for col in REQUIRED_METRICS + OPTIONAL_METRICS:
        if col not in cracks.columns:
            continue
        arr = pd.to_numeric(cracks[col], errors="coerce").to_numpy(dtype=float)
        if col in REQUIRED_METRICS:
            ok = np.isfinite(arr) & (arr >= 0)
        else:
            ok = np.isnan(arr) | ((arr >= 0) & (arr <= 1))
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"{col} must be finite and >= 0{' and <= 1' if 'prob' in col else ''}"
                             f"; row {cracks.index[i]!r} has {cracks[col].iloc[i]!r}")
        values[col] = arr
    return values


def _skeletons(cracks: gpd.GeoDataFrame, skeletons: gpd.GeoSeries | None, site: Site,
               space: str) -> np.ndarray:
    """The skeleton of each crack (None where there is none), checked against the frame."""
    if skeletons is None:
        return np.full(len(cracks), None, dtype=object)
    if not isinstance(skeletons, gpd.GeoSeries):
        raise TypeError(f"skeletons must be a GeoSeries, got {type(skeletons).__name__}")
    if not skeletons.index.equals(cracks.index):
        raise ValueError(
            "skeletons must have the crack frame's index (as "
            "vectorise_cracks_and_skeletons returns them); align with "
            "skeletons.reindex(cracks.index)"
        )
    if space == "map":
        if skeletons.crs is not None:
            check_crs(skeletons.crs, site, "the skeleton series")
    elif skeletons.crs is not None:
        raise CRSError("image-space cracks need skeletons without a CRS too, got "
                       f"{skeletons.crs.to_string()}")
    return np.asarray(skeletons.values, dtype=object)


def _opt(arr: np.ndarray | None, i: int) -> float | None:
    if arr is None or np.isnan(arr[i]):
        return None
    return float(arr[i])
