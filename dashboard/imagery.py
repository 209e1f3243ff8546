"""Small pictures of a survey's own imagery: map overviews and before/after crack chips.

* :func:`orthomosaic_overview`: a PNG of a GeoTIFF orthomosaic, at most ``max_size_px`` on
  its long side, warped to Web Mercator (EPSG:3857) so that a Leaflet ``ImageOverlay``
  stretched between its WGS 84 corners lies exactly where the raster lies. Nodata / alpha
  become transparent; non-8-bit data is stretched between the 2nd and 98th percentiles.
* :func:`photo_with_cracks`: a photo scaled down with crack polygons (pixel coordinates of
  the photo) outlined on it, for photo surveys whose cracks have no map position.
* :func:`orthomosaic_chip` / :func:`photo_chip`: a crop around a crack's bounding box with
  the crack outlined: the "before" and "after" of a crack across two surveys.

Reading is bounded by the output size (decimated reads), never by the raster size. Files
are only read; nothing is written next to the imagery.
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from PIL import Image, ImageDraw

__all__ = [
    "Overview",
    "orthomosaic_chip",
    "orthomosaic_overview",
    "photo_chip",
    "photo_with_cracks",
    "png_data_uri",
    "resolve_source",
]


@dataclass(frozen=True)
class Overview:
    """A PNG overview of an orthomosaic and its WGS 84 bounds ``(south, west, north, east)``.

    The PNG's pixel grid is Web Mercator, as Leaflet's ImageOverlay expects.
    """

    png: bytes
    bounds: tuple[float, float, float, float]
    width: int
    height: int

    def data_uri(self) -> str:
        """``data:image/png;base64,...`` of the PNG."""
        return png_data_uri(self.png)


def png_data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI (no network needed to show it)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def resolve_source(source_path: str | os.PathLike[str], image_name: str | None = None,
                   *, search: Iterable[Path] = ()) -> Path | None:
    """The imagery file of a survey (or one photo of a photo set), if it exists here.

    Args:
        source_path: the survey's recorded source (file or folder, maybe relative).
        image_name: for a photo folder, the photo's file name (searched recursively).
        search: folders to try a relative ``source_path`` against (after the CWD).

    Returns:
        The path, or None when the imagery is not on this machine.
    """
    p = Path(source_path).expanduser()
    candidates = [p] if p.is_absolute() else [p, *(Path(d) / p for d in search)]
    for c in candidates:
        if c.is_file() and (image_name is None or c.name == image_name):
            return c
        if c.is_dir():
            if image_name is None:
                return c
            direct = c / image_name
            if direct.is_file():
                return direct
            hits = sorted(q for q in c.rglob(Path(image_name).name) if q.is_file())
            if hits:
                return hits[0]
    return None


def _to_uint8(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(bands, rows, cols)`` any dtype -> uint8, 2-98 % stretch per band (uint8 kept)."""
    if data.dtype == np.uint8:
        return data
    out = np.zeros(data.shape, np.uint8)
    for b in range(data.shape[0]):
        band = data[b].astype(np.float64)
        vals = band[valid & np.isfinite(band)]
        if vals.size == 0:
            continue
        lo, hi = np.percentile(vals, [2, 98])
        if hi <= lo:
            hi = lo + 1.0
        out[b] = np.clip((band - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    return out


def _png(rgba: np.ndarray) -> bytes:
    """``(rows, cols, 3|4)`` uint8 -> PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def orthomosaic_overview(path: str | os.PathLike[str], *, max_size_px: int = 1024
                         ) -> Overview:
    """A transparent PNG overview of a georeferenced raster for a web map.

    Raises:
        FileNotFoundError: no such file. ValueError: the raster has no CRS or transform
        (it cannot be placed on a map). rasterio errors propagate for unreadable files.
    """
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.transform import array_bounds
    from rasterio.warp import calculate_default_transform, reproject, transform_bounds

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no imagery file at {p}")
    with rasterio.open(p) as src:
        if src.crs is None or src.transform.is_identity:
            raise ValueError(f"{p} has no CRS/georeferencing, so it cannot be drawn on a map")
        scale = max(src.width, src.height) / float(max_size_px)
        scale = max(scale, 1.0)
        cols, rows = max(1, round(src.width / scale)), max(1, round(src.height / scale))
        indexes = [1, 2, 3] if src.count >= 3 else [1]
        data = src.read(indexes, out_shape=(len(indexes), rows, cols),
                        resampling=Resampling.average)
        mask = src.dataset_mask(out_shape=(rows, cols), resampling=Resampling.nearest)
        transform = src.transform @ Affine.scale(src.width / cols, src.height / rows)
        src_crs = src.crs
    data = _to_uint8(data, mask > 0)
    west, south, east, north = array_bounds(rows, cols, transform)
    dst_transform, dst_cols, dst_rows = calculate_default_transform(
        src_crs, "EPSG:3857", cols, rows, left=west, bottom=south, right=east, top=north)
    out = np.zeros((len(indexes), dst_rows, dst_cols), np.uint8)
    for i in range(len(indexes)):
        reproject(data[i], out[i], src_transform=transform, src_crs=src_crs,
                  dst_transform=dst_transform, dst_crs="EPSG:3857",
                  resampling=Resampling.bilinear)
    alpha = np.zeros((dst_rows, dst_cols), np.uint8)
    reproject(mask.astype(np.uint8), alpha, src_transform=transform, src_crs=src_crs,
              dst_transform=dst_transform, dst_crs="EPSG:3857", resampling=Resampling.nearest,
              src_nodata=None, dst_nodata=0)
    rgb = np.repeat(out, 3, axis=0) if out.shape[0] == 1 else out
    rgba = np.dstack([rgb[0], rgb[1], rgb[2], np.where(alpha > 0, 255, 0).astype(np.uint8)])
    w, s, e, n = transform_bounds("EPSG:3857", "EPSG:4326",
                                  *array_bounds(dst_rows, dst_cols, dst_transform))
    return Overview(png=_png(rgba), bounds=(s, w, n, e), width=dst_cols, height=dst_rows)


def _outline(draw: ImageDraw.ImageDraw, geom: shapely.Geometry, to_px, colour: str,
             width: int) -> None:
    for poly in getattr(geom, "geoms", [geom]):
        if poly.is_empty or poly.geom_type != "Polygon":
            continue
        pts = [to_px(x, y) for x, y in poly.exterior.coords]
        if len(pts) >= 2:
            draw.line(pts + [pts[0]], fill=colour, width=width)


def photo_with_cracks(path: str | os.PathLike[str], polygons: Iterable[shapely.Geometry], *,
                      max_size_px: int = 1280, colour: str = "#ff1744",
                      colours: Iterable[str] | None = None) -> bytes:
    """A photo scaled to at most ``max_size_px`` with crack polygons (photo pixel
    coordinates, x right, y down) outlined in ``colour``, or each in its own of ``colours``
    (one per polygon, e.g. by severity as on the map); PNG bytes."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = min(1.0, max_size_px / max(im.size))
        if scale < 1.0:
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
    draw = ImageDraw.Draw(im)
    polygons = list(polygons)
    per_crack = list(colours) if colours is not None else [colour] * len(polygons)
    for g, col in zip(polygons, per_crack, strict=True):
        if g is not None:
            _outline(draw, g, lambda x, y: (x * scale, y * scale), col, 2)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _chip_box(bounds: tuple[float, float, float, float], pad_fraction: float,
              min_size: float) -> tuple[float, float, float, float]:
    """A square box around ``bounds`` padded by ``pad_fraction`` and at least ``min_size``."""
    minx, miny, maxx, maxy = bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    side = max(maxx - minx, maxy - miny) * (1 + 2 * pad_fraction)
    side = max(side, min_size)
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def orthomosaic_chip(
    path: str | os.PathLike[str],
    bounds: tuple[float, float, float, float],
    *,
    crs_epsg: int,
    outlines: Iterable[shapely.Geometry] = (),
    size_px: int = 320,
    pad_fraction: float = 0.25,
    min_size_m: float = 0.5,
) -> bytes:
    """A square crop of an orthomosaic around ``bounds`` (site CRS) with outlines; PNG.

    The box is padded by ``pad_fraction`` of the bounds' larger side and is at least
    ``min_size_m`` wide. Outside the raster is black. If the raster's CRS is not the
    site's, the box and outlines are reprojected to it (only to crop; nothing is measured).

    Raises:
        FileNotFoundError: no such file. ValueError: the raster has no CRS.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import transform_bounds, transform_geom
    from rasterio.windows import from_bounds

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no imagery file at {p}")
    box = _chip_box(bounds, pad_fraction, min_size_m)
    geoms = [g for g in outlines if g is not None]
    with rasterio.open(p) as src:
        if src.crs is None:
            raise ValueError(f"{p} has no CRS; cannot find the crack's place on it")
        if src.crs.to_epsg() != int(crs_epsg):
            box = transform_bounds(f"EPSG:{crs_epsg}", src.crs, *box)
            geoms = [shapely.geometry.shape(transform_geom(f"EPSG:{crs_epsg}", src.crs,
                                                           shapely.geometry.mapping(g)))
                     for g in geoms]
        window = from_bounds(*box, transform=src.transform)
        indexes = [1, 2, 3] if src.count >= 3 else [1]
        data = src.read(indexes, window=window, out_shape=(len(indexes), size_px, size_px),
                        boundless=True, fill_value=0, resampling=Resampling.bilinear)
    data = _to_uint8(data, np.ones(data.shape[1:], bool))
    rgb = np.repeat(data, 3, axis=0) if data.shape[0] == 1 else data
    im = Image.fromarray(np.dstack(list(rgb[:3])))
    draw = ImageDraw.Draw(im)
    minx, miny, maxx, maxy = box

    def to_px(x: float, y: float) -> tuple[float, float]:
        return ((x - minx) / (maxx - minx) * size_px, (maxy - y) / (maxy - miny) * size_px)

    for g in geoms:
        _outline(draw, g, to_px, "#ff1744", 2)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def photo_chip(
    path: str | os.PathLike[str],
    bounds_px: tuple[float, float, float, float],
    *,
    outlines: Iterable[shapely.Geometry] = (),
    size_px: int = 320,
    pad_fraction: float = 0.25,
    min_size_px: float = 64,
) -> bytes:
    """A square crop of a photo around ``bounds_px`` (x right, y down) with outlines; PNG."""
    minx, miny, maxx, maxy = _chip_box(bounds_px, pad_fraction, min_size_px)
    with Image.open(path) as im:
        im = im.convert("RGB")
        crop = im.crop((math.floor(minx), math.floor(miny), math.ceil(maxx), math.ceil(maxy)))
    sx = size_px / max(crop.width, 1)
    sy = size_px / max(crop.height, 1)
    crop = crop.resize((size_px, size_px))
    draw = ImageDraw.Draw(crop)
    for g in outlines:
        if g is not None:
            _outline(draw, g, lambda x, y: ((x - math.floor(minx)) * sx,
                                            (y - math.floor(miny)) * sy), "#ff1744", 2)
    buf = io.BytesIO()
    crop.save(buf, format="PNG")
    return buf.getvalue()


def registered_photo_chip(
    path: str | os.PathLike[str],
    homography: np.ndarray,
    bounds_view: tuple[float, float, float, float],
    *,
    outlines: Iterable[shapely.Geometry] = (),
    size_px: int = 320,
    pad_fraction: float = 0.25,
    min_size_px: float = 64,
) -> bytes:
    """A square crop of a *view's* frame around ``bounds_view`` (view px, x right, y down),
    rendered from a photo registered into that view: the photo is warped by ``homography``
    (3x3, photo px -> view px; OpenCV ``warpPerspective``, bilinear), so crops of photos of
    different inspections show the same surface in the same place. ``outlines`` are in view
    px, drawn red. Parts of the crop the photo does not cover are grey. PNG bytes."""
    import cv2

    minx, miny, maxx, maxy = _chip_box(bounds_view, pad_fraction, min_size_px)
    scale = size_px / max(maxx - minx, maxy - miny, 1e-9)
    # view px -> chip px: scale about the crop's corner
    to_chip = np.array([[scale, 0.0, -minx * scale], [0.0, scale, -miny * scale],
                        [0.0, 0.0, 1.0]])
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    chip = cv2.warpPerspective(rgb, to_chip @ np.asarray(homography, dtype=np.float64),
                               (size_px, size_px), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    out = Image.fromarray(chip)
    draw = ImageDraw.Draw(out)
    for g in outlines:
        if g is not None:
            _outline(draw, g, lambda x, y: ((x - minx) * scale, (y - miny) * scale),
                     "#ff1744", 2)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()

