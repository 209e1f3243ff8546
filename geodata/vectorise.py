"""Turn a crack probability raster into crack polygons with measured length, width and area.

Pipeline (one call of :func:`vectorise_cracks`)::

    probability (rows, cols) -> >= threshold, minus nodata -> 8-connected components
    -> drop components < min_area_px -> one label per crack
    -> rasterio.features.shapes(labels, transform) -> union per label -> simplify -> make valid
    -> per crack: skeleton (length), Euclidean distance transform on the skeleton (width)

Coordinates. Normally the raster is georeferenced: ``transform`` is its ``affine.Affine`` and
``crs`` a *projected* CRS in metres; polygons come back in that CRS (never reprojected). A
geographic CRS (degrees) raises :class:`~geodata.errors.CRSError`: reproject the probability
raster to the site's projected CRS first. Site photos have no CRS: pass ``crs=None`` and the
ground pixel size ``pixel_size_m`` (from EXIF or a user GSD); geometries are then in image
pixel coordinates, x = column and y = row from the top-left corner of the image (y grows
downwards, so a GIS viewer shows them upside down), the frame's ``crs`` is ``None`` and
``frame.attrs["coordinate_space"] == "image"`` (``"map"`` otherwise).

Measurements (approximations, as in all raster crack quantification):

* ``length_px`` / ``length_m``: length of the crack's skeleton (Zhang & Suen thinning, T. Y.
  Zhang and C. Y. Suen, "A fast parallel algorithm for thinning digital patterns", Commun. ACM
  27(3), 1984, via ``skimage.morphology.skeletonize``) measured on the 8-neighbour pixel graph
  of the skeleton: an orthogonal link is 1 px, a diagonal link sqrt(2) px, every link counted
  once, and a diagonal link is skipped when one of the two pixels that would join its ends
  orthogonally is also on the skeleton (that corner is already paid for by two orthogonal
  links). This chain-code length is exact at 0, 45 and 90 degrees and overestimates straight
  lines at other angles by at most ~8 % (22.5 degrees). The skeleton stops about half a width
  short of each crack end, and side branches (spurs) of blobby cracks add length.
* ``mean_width_mm`` / ``max_width_mm``: ``scipy.ndimage.distance_transform_edt`` of the crack
  mask (distance from a crack pixel centre to the nearest non-crack pixel centre, ``dt``)
  sampled on the skeleton, converted with the convention ``width_px = 2 * dt - 1``: a band of
  odd width w px has ``dt = (w + 1) / 2`` on its centre line, so 1, 3, 5 px bands read exactly
  1, 3, 5 px; even widths read 1 px low (the skeleton lies on one of the two centre rows).
  This is the skeleton + distance-transform approach common in crack quantification
  literature; it measures the width perpendicular to the crack only approximately for
  oblique cracks (pixel-centre distances) and is quantised to whole pixels.
* ``area_px`` / ``area_m2``: pixel count times pixel area (not the simplified polygon's area).
* ``mean_probability`` / ``max_probability``: over the crack's pixels, in [0, 1].

Pixel size. From the transform: ``sqrt(|det|)`` (the side of a square with the pixel's
area; equals ``|a|`` for square north-up pixels and stays right for rotated ones). If the two
pixel sides differ by more than 1 % a ``UserWarning`` says lengths use that mean size.
``pixel_size_m`` overrides it for measuring (e.g. a ground distance instead of a grid
distance); geometry and the simplification tolerance stay in the transform's units.

Output. A ``geopandas.GeoDataFrame`` with exactly :data:`CRACK_COLUMNS` (geometry last, every
geometry a ``MultiPolygon``), one row per crack, ``crack_id`` = the crack's label (1..n, in
raster scan order of each crack's first pixel). Nothing found gives an empty frame with the
same columns, dtypes and CRS, never ``None``. Skeleton lines are not a column (GeoPackage
layers hold one geometry column): :func:`vectorise_cracks_and_skeletons` returns them as a
separate ``GeoSeries``. The frame writes to GeoPackage with :func:`write_cracks_gpkg`.

The whole probability array and an int32 label array of the same shape are held in memory.
"""

from __future__ import annotations

import math
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio.features
import shapely
from affine import Affine
from shapely.geometry import MultiPolygon, Polygon, shape

from geodata.crack_objects import (
    ObjectFilter,
    apply_object_filter,
    drop_edge_followers,
    drop_excluded,
    label_components,
)
from geodata.errors import CRSError
from geodata.skeleton import measure_components

__all__ = [
    "CRACK_COLUMNS",
    "CRACK_DTYPES",
    "crack_labels",
    "empty_crack_frame",
    "vectorise_cracks",
    "vectorise_cracks_and_skeletons",
    "write_cracks_gpkg",
]

#: Column dtypes of a crack frame, in column order (``geometry`` is the geometry column).
CRACK_DTYPES: dict[str, str] = {
    "crack_id": "int64",
    "length_m": "float64",
    "mean_width_mm": "float64",
    "max_width_mm": "float64",
    "area_m2": "float64",
    "mean_probability": "float64",
    "max_probability": "float64",
    "length_px": "float64",
    "area_px": "int64",
    "pixel_size_m": "float64",
    "geometry": "geometry",
}

#: Columns of every frame returned by :func:`vectorise_cracks`, in order.
CRACK_COLUMNS: tuple[str, ...] = tuple(CRACK_DTYPES)

_SQUARE_TOLERANCE = 0.01  # pixel sides may differ by 1 % before we warn
_RANGE_TOLERANCE = 1e-6  # float probabilities may exceed [0, 1] by this much (rounding)


# --------------------------------------------------------------------------- public API


def empty_crack_frame(crs: Any = None) -> gpd.GeoDataFrame:
    """An empty crack frame: columns :data:`CRACK_COLUMNS`, dtypes :data:`CRACK_DTYPES`."""
    data = {
        name: pd.Series([], dtype=dtype)
        for name, dtype in CRACK_DTYPES.items()
        if name != "geometry"
    }
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def vectorise_cracks(
    probability: np.ndarray,
    transform: Affine | None,
    crs: Any,
    *,
    threshold: float = 0.5,
    min_area_px: int = 20,
    simplify_px: float = 1.0,
    nodata_mask: np.ndarray | None = None,
    probability_scale: float | None = None,
    pixel_size_m: float | None = None,
    edge_band_px: int = 0,
    exclude_mask: np.ndarray | None = None,
    object_filter: ObjectFilter | None = None,
) -> gpd.GeoDataFrame:
    """Vectorise and measure the cracks of one probability raster.

    Args:
        probability: ``(rows, cols)`` crack probability (a ``(1, rows, cols)`` band stack is
            accepted too). float in [0, 1] (NaN = nodata), uint8 0..255 (divided by 255),
            or bool. Any other dtype, or a float array in another range (percent, 0..255),
            needs ``probability_scale``.
        transform: the raster's ``affine.Affine`` (``dataset.transform``), pixel corner
            (0, 0) -> map coordinates. In image mode (``crs=None``) ``None`` or the identity.
        crs: the raster's CRS, anything ``pyproj.CRS.from_user_input`` accepts (EPSG code,
            ``"EPSG:32633"``, WKT, ``rasterio.crs.CRS``, ``pyproj.CRS``). Must be projected
            with metre axes. ``None`` only together with ``pixel_size_m`` (photos).
        threshold: a pixel is crack where ``probability >= threshold``; in (0, 1].
        min_area_px: 8-connected components with fewer pixels are dropped (specks).
        simplify_px: polygon simplification tolerance in pixels (``preserve_topology=True``);
            0 keeps the exact pixel outline.
        nodata_mask: ``(rows, cols)`` bool, ``True`` = nodata (numpy masked-array sense).
            Note rasterio's ``dataset.read_masks(1)`` is the opposite (0 = nodata): pass
            ``dataset.read_masks(1) == 0``. Nodata pixels are never crack.
        probability_scale: divide the raw values by this to get [0, 1] (e.g. 65535 for
            uint16, 100 for percent). ``None``: 255 for uint8, 1 for float and bool.
        pixel_size_m: ground size of one pixel in metres. Required when ``crs is None``;
            otherwise overrides the transform's pixel size for measuring only.
        edge_band_px: drop a component when at least half its pixels
            (:data:`geodata.crack_objects.EDGE_FRACTION`) lie within this many pixels
            of nodata or of the raster's frame: it follows the edge
            of the data (a collar, an alpha boundary, a photo's frame), where crack models
            fire on the step from ground to no ground (issue 25). 0: keep every component.
        exclude_mask: ``(rows, cols)`` bool, True where no crack can be observed (e.g.
            vegetation, :func:`engine.observable.vegetation_mask`): a component with at
            least half its pixels there is dropped. None: none.
        object_filter: drop components shorter or less elongated than its rules
            (:class:`geodata.crack_objects.ObjectFilter`; lengths in metres use the measuring
            pixel size, so an unmeasured photo passes a filter without ``min_length_m``).
            None: keep every shape.

    Returns:
        GeoDataFrame with :data:`CRACK_COLUMNS`, one row per crack, ``crs`` = ``crs`` (a
        ``pyproj.CRS``; ``None`` in image mode), ``attrs["coordinate_space"]`` ``"map"`` or
        ``"image"``. Empty (same columns, dtypes, CRS) when no crack is found.

    Raises:
        CRSError: ``crs`` is geographic (degrees: reproject to a projected CRS in metres
            first), not projected, not in metres, unreadable, or ``None`` without
            ``pixel_size_m``.
        ValueError: bad shape, dtype, value range, threshold, mask or transform.
        TypeError: ``transform`` is not an ``affine.Affine``.

    See the module docstring for how length and width are measured (an approximation).
    """
    frame, _ = _vectorise(
        probability, transform, crs, threshold=threshold, min_area_px=min_area_px,
        simplify_px=simplify_px, nodata_mask=nodata_mask,
        probability_scale=probability_scale, pixel_size_m=pixel_size_m, with_skeletons=False,
        edge_band_px=edge_band_px, exclude_mask=exclude_mask, object_filter=object_filter,
    )
    return frame


def vectorise_cracks_and_skeletons(
    probability: np.ndarray,
    transform: Affine | None,
    crs: Any,
    *,
    threshold: float = 0.5,
    min_area_px: int = 20,
    simplify_px: float = 1.0,
    nodata_mask: np.ndarray | None = None,
    probability_scale: float | None = None,
    pixel_size_m: float | None = None,
    edge_band_px: int = 0,
    exclude_mask: np.ndarray | None = None,
    object_filter: ObjectFilter | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoSeries]:
    """:func:`vectorise_cracks` plus each crack's skeleton line.

    Same arguments, errors and frame as :func:`vectorise_cracks`. The second item is a
    ``GeoSeries`` named ``"skeleton"`` with the frame's index and CRS: per crack a
    ``LineString`` or ``MultiLineString`` through skeleton pixel centres (a ``Point`` when
    the skeleton is one pixel). It is kept apart from the frame so the frame stays a valid
    one-geometry-column GeoPackage layer (and ``pd.concat`` of frames keeps working).
    """
    frame, skeletons = _vectorise(
        probability, transform, crs, threshold=threshold, min_area_px=min_area_px,
        simplify_px=simplify_px, nodata_mask=nodata_mask,
        probability_scale=probability_scale, pixel_size_m=pixel_size_m, with_skeletons=True,
        edge_band_px=edge_band_px, exclude_mask=exclude_mask, object_filter=object_filter,
    )
    assert skeletons is not None
    return frame, skeletons


def write_cracks_gpkg(
    gdf: gpd.GeoDataFrame, path: str | PathLike[str], layer: str = "cracks"
) -> Path:
    """Write a crack frame to ``layer`` of the GeoPackage ``path`` (pyogrio); return the path.

    The layer is replaced if it exists; other layers of the file are kept. Geometries are
    written as ``MultiPolygon``. Read back with ``geopandas.read_file(path, layer=layer)``.
    An image-coordinate frame (``crs`` None) is written without a spatial reference.

    Raises:
        ValueError: the frame has more than one geometry column.
    """
    geometry_columns = [
        c for c in gdf.columns if getattr(gdf[c].dtype, "name", "") == "geometry"
    ]
    if len(geometry_columns) != 1:
        raise ValueError(
            f"a GeoPackage layer holds exactly one geometry column, the frame has "
            f"{geometry_columns}; drop the others (keep skeletons in a separate layer)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if path.exists():
        import pyogrio

        if layer in {name for name, _ in pyogrio.list_layers(path)}:
            kwargs["layer_options"] = {"OVERWRITE": "YES"}
    with warnings.catch_warnings():
        if gdf.crs is None:  # image coordinates: no spatial reference, on purpose
            warnings.filterwarnings("ignore", message="'crs' was not provided")
        gdf.to_file(
            path, layer=layer, driver="GPKG", engine="pyogrio",
            geometry_type="MultiPolygon", promote_to_multi=True, **kwargs,
        )
    return path


# --------------------------------------------------------------------------- internals


def _vectorise(
    probability: np.ndarray,
    transform: Affine | None,
    crs: Any,
    *,
    threshold: float,
    min_area_px: int,
    simplify_px: float,
    nodata_mask: np.ndarray | None,
    probability_scale: float | None,
    pixel_size_m: float | None,
    with_skeletons: bool,
    edge_band_px: int = 0,
    exclude_mask: np.ndarray | None = None,
    object_filter: ObjectFilter | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoSeries | None]:
    raw = _as_2d(probability)
    _check_options(threshold, min_area_px, simplify_px, pixel_size_m)
    transform, frame_crs, geom_px, measure_px_m, space = _resolve_geometry(
        transform, crs, pixel_size_m
    )
    scale = _probability_scale(raw, probability_scale)
    valid = _valid_mask(raw, nodata_mask)
    _check_range(raw, valid, scale)

    labels, n, rows, skeleton_geoms = _components(
        raw, valid, nodata_mask is not None, scale, threshold=threshold,
        min_area_px=min_area_px, edge_band_px=edge_band_px, exclude_mask=exclude_mask,
        object_filter=object_filter, measure_px_m=measure_px_m,
        skeleton_transform=transform if with_skeletons else None)

    frame = empty_crack_frame(frame_crs)
    frame.attrs["coordinate_space"] = space
    if n == 0:
        skel = gpd.GeoSeries([], crs=frame_crs, name="skeleton") if with_skeletons else None
        return frame, skel

    polygons = _polygonise(labels, n, transform, simplify_px * geom_px)
    data = {c: pd.Series(v, dtype=CRACK_DTYPES[c]) for c, v in rows.items()}
    geoms = [polygons[lab] for lab in rows["crack_id"]]
    frame = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=frame_crs), crs=frame_crs)
    frame = frame[list(CRACK_COLUMNS)]
    frame.attrs["coordinate_space"] = space
    skeletons = (
        gpd.GeoSeries(skeleton_geoms, index=frame.index, crs=frame_crs, name="skeleton")
        if with_skeletons
        else None
    )
    return frame, skeletons


def crack_labels(
    probability: np.ndarray,
    *,
    threshold: float = 0.5,
    min_area_px: int = 20,
    nodata_mask: np.ndarray | None = None,
    pixel_size_m: float = 1.0,
    edge_band_px: int = 0,
    exclude_mask: np.ndarray | None = None,
    object_filter: ObjectFilter | None = None,
) -> tuple[np.ndarray, int]:
    """The crack components :func:`vectorise_cracks` would keep, as a label raster (no
    polygons; for evaluating the pipeline on labelled images).

    Args: as :func:`vectorise_cracks` (``probability`` float in [0, 1], uint8 or bool);
        ``pixel_size_m`` only serves ``object_filter.min_length_m``.

    Returns:
        ``(labels, n)``: ``(rows, cols)`` int32, 0 = no crack, 1..n the kept cracks.

    Raises:
        ValueError: as :func:`vectorise_cracks`.
    """
    raw = _as_2d(probability)
    _check_options(threshold, min_area_px, 0.0, pixel_size_m)
    scale = _probability_scale(raw, None)
    valid = _valid_mask(raw, nodata_mask)
    _check_range(raw, valid, scale)
    labels, n, _, _ = _components(raw, valid, nodata_mask is not None, scale,
                                  threshold=threshold, min_area_px=min_area_px,
                                  edge_band_px=edge_band_px, exclude_mask=exclude_mask,
                                  object_filter=object_filter, measure_px_m=pixel_size_m,
                                  skeleton_transform=None)
    return labels, n


def _components(raw: np.ndarray, valid: np.ndarray, has_nodata: bool, scale: float, *,
                threshold: float, min_area_px: int, edge_band_px: int,
                exclude_mask: np.ndarray | None, object_filter: ObjectFilter | None,
                measure_px_m: float, skeleton_transform: Affine | None):
    """(labels, n, measured rows, skeleton lines) of the kept crack components (the
    rules of :mod:`geodata.crack_objects`, in order)."""
    mask = raw >= threshold * scale  # NaN compares False
    if has_nodata:
        mask &= valid
    labels, n = label_components(mask, min_area_px)
    if n and edge_band_px > 0:
        labels, n = drop_edge_followers(labels, n, ~valid, edge_band_px)
    if n and exclude_mask is not None:
        labels, n = drop_excluded(labels, n, exclude_mask)
    rows: dict[str, list] = {}
    skeleton_geoms: list = []
    if n:
        rows, skeleton_geoms = measure_components(labels, raw, scale, measure_px_m,
                                                 skeleton_transform, CRACK_COLUMNS)
        if object_filter is not None and object_filter.active:
            labels, n, rows, skeleton_geoms = apply_object_filter(
                object_filter, labels, n, rows, skeleton_geoms, measure_px_m)
    return labels, n, rows, skeleton_geoms


def _check_options(threshold: float, min_area_px: int, simplify_px: float,
                   pixel_size_m: float | None) -> None:
    """Raise ``ValueError`` for a threshold outside (0, 1], a negative ``min_area_px``, a
    negative or infinite ``simplify_px`` or a ``pixel_size_m`` that is not a positive number."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if min_area_px < 0:
        raise ValueError(f"min_area_px must be >= 0, got {min_area_px}")
    if simplify_px < 0 or not math.isfinite(simplify_px):
        raise ValueError(f"simplify_px must be a finite number >= 0, got {simplify_px}")
    if pixel_size_m is not None and not (math.isfinite(pixel_size_m) and pixel_size_m > 0):
        raise ValueError(f"pixel_size_m must be a positive number of metres, got {pixel_size_m}")


def _check_range(raw: np.ndarray, valid: np.ndarray, scale: float) -> None:
    """Raise ``ValueError`` when the valid pixels of a float raster, divided by ``scale``, leave
    [0, 1] by more than rounding (a percent or 0..255 raster without ``probability_scale``)."""
    if raw.dtype.kind == "f" and valid.any():
        lo, hi = float(raw[valid].min()) / scale, float(raw[valid].max()) / scale
        if lo < -_RANGE_TOLERANCE or hi > 1.0 + _RANGE_TOLERANCE:
            raise ValueError(
                f"probabilities must lie in [0, 1] after dividing by probability_scale="
                f"{scale}, found [{lo}, {hi}]; pass probability_scale (e.g. 255 or 100)"
            )


def _as_2d(probability: np.ndarray) -> np.ndarray:
    raw = np.asarray(probability)
    if raw.ndim == 3 and raw.shape[0] == 1:
        raw = raw[0]
    if raw.ndim != 2:
        raise ValueError(
            f"probability must be (rows, cols) (or one band (1, rows, cols)), got shape "
            f"{raw.shape}; read one band with dataset.read(1)"
        )
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"probability must be numeric or bool, got dtype {raw.dtype}")
    return raw


def _probability_scale(raw: np.ndarray, probability_scale: float | None) -> float:
    if probability_scale is not None:
        if not (math.isfinite(probability_scale) and probability_scale > 0):
            raise ValueError(f"probability_scale must be > 0, got {probability_scale}")
        return float(probability_scale)
    if raw.dtype == np.uint8:
        return 255.0
    if raw.dtype.kind in "fb":
        return 1.0
    raise ValueError(
        f"probability of dtype {raw.dtype} needs probability_scale (the raw value meaning "
        f"probability 1, e.g. 65535 for uint16); only uint8 (255), float and bool are implied"
    )


def _valid_mask(raw: np.ndarray, nodata_mask: np.ndarray | None) -> np.ndarray:
    valid = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
    if nodata_mask is None:
        return valid
    nd = np.asarray(nodata_mask)
    if nd.shape != raw.shape:
        raise ValueError(
            f"nodata_mask shape {nd.shape} does not match probability shape {raw.shape}"
        )
    if nd.dtype != np.bool_:
        raise ValueError(
            f"nodata_mask must be bool with True = nodata, got dtype {nd.dtype}; from "
            f"rasterio use dataset.read_masks(1) == 0 (read_masks gives 0 for nodata)"
        )
    return valid & ~nd


def _resolve_geometry(
    transform: Affine | None, crs: Any, pixel_size_m: float | None
) -> tuple[Affine, pyproj.CRS | None, float, float, str]:
    """Return (transform, frame CRS, geometry units per pixel, metres per pixel, space)."""
    if crs is None:
        if pixel_size_m is None:
            raise CRSError(
                "crs is None and no pixel_size_m was given: pass the raster's projected CRS "
                "(metres), or for a photo in image coordinates pass pixel_size_m (its GSD)"
            )
        if transform is not None and transform != Affine.identity():
            raise ValueError(
                f"image coordinates (crs=None) use the identity transform (x = column, "
                f"y = row), got {transform!r}; pass transform=None or a CRS"
            )
        return Affine.identity(), None, 1.0, float(pixel_size_m), "image"

    if not isinstance(transform, Affine):
        raise TypeError(
            f"transform must be an affine.Affine (dataset.transform), got "
            f"{type(transform).__name__}"
        )
    pcrs = _projected_metric_crs(crs)
    det = transform.determinant
    if not math.isfinite(det) or det == 0:
        raise ValueError(f"transform is degenerate (determinant {det}): {transform!r}")
    a, b, _, d, e, _ = transform[:6]
    side_x, side_y = math.hypot(a, d), math.hypot(b, e)
    geom_px = math.sqrt(abs(det))
    if abs(side_x - side_y) > _SQUARE_TOLERANCE * max(side_x, side_y):
        warnings.warn(
            f"pixels are not square ({side_x} x {side_y} CRS units); lengths and widths use "
            f"sqrt(pixel area) = {geom_px}, which is off along the longer side",
            UserWarning,
            stacklevel=4,
        )
    measure_px_m = geom_px
    if pixel_size_m is not None:
        if abs(pixel_size_m - geom_px) > _SQUARE_TOLERANCE * geom_px:
            warnings.warn(
                f"pixel_size_m={pixel_size_m} differs by more than 1 % from the transform's "
                f"pixel size {geom_px} m; measuring with pixel_size_m",
                UserWarning,
                stacklevel=4,
            )
        measure_px_m = float(pixel_size_m)
    return transform, pcrs, geom_px, measure_px_m, "map"


def _projected_metric_crs(crs: Any) -> pyproj.CRS:
    try:
        pcrs = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise CRSError(f"cannot read CRS {crs!r}: {exc}; pass an EPSG code or WKT") from exc
    name = pcrs.to_string()
    if pcrs.is_geographic:
        raise CRSError(
            f"CRS {name} is geographic (degrees): crack lengths and widths cannot be measured "
            f"in degrees. Expected a projected CRS in metres; reproject the probability "
            f"raster to the site's projected CRS first (e.g. rasterio.warp.reproject or "
            f"gdalwarp -t_srs EPSG:326xx)"
        )
    if not pcrs.is_projected:
        raise CRSError(
            f"CRS {name} is not a projected CRS; expected a projected CRS in metres "
            f"(e.g. the site's UTM zone); reproject the raster first"
        )
    horizontal = pcrs.axis_info[:2]
    if not horizontal or any(ax.unit_conversion_factor != 1.0 for ax in horizontal):
        units = sorted({ax.unit_name for ax in horizontal})
        raise CRSError(
            f"CRS {name} has axis units {units}, expected metres; reproject the raster to a "
            f"projected CRS in metres first"
        )
    return pcrs


def _polygonise(
    labels: np.ndarray, n: int, transform: Affine, tolerance: float
) -> dict[int, MultiPolygon]:
    """Label -> MultiPolygon in the transform's coordinates, simplified and valid."""
    parts: dict[int, list[Polygon]] = {}
    for geom, value in rasterio.features.shapes(
        labels, mask=labels > 0, transform=transform, connectivity=8
    ):
        parts.setdefault(int(value), []).append(shape(geom))
    out: dict[int, MultiPolygon] = {}
    for lab in range(1, n + 1):
        exact = _polygonal(shapely.make_valid(shapely.union_all(parts[lab])))
        geom = exact
        if tolerance > 0:
            simplified = _polygonal(
                shapely.make_valid(shapely.simplify(exact, tolerance, preserve_topology=True))
            )
            if not simplified.is_empty:
                geom = simplified
        out[lab] = geom
    return out


def _polygonal(geom: Any) -> MultiPolygon:
    """The polygonal parts of ``geom`` as one MultiPolygon (drops stray lines/points)."""
    polys = [
        p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")
    ]
    flat: list[Polygon] = []
    for p in polys:
        flat.extend(shapely.get_parts(p) if p.geom_type == "MultiPolygon" else [p])
    if len(flat) > 1:
        merged = shapely.union_all(flat)
        flat = list(shapely.get_parts(merged))
    return MultiPolygon(flat)
